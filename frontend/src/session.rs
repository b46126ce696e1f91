//! Who is signed in, shared by every page through Leptos' context.

use leptos::prelude::*;
use petrel_wire::identity::Me;

use crate::api;

#[derive(Clone, Debug, PartialEq)]
pub enum Session {
    Loading,
    SignedOut,
    SignedIn(Box<Me>),
}

#[derive(Clone, Copy)]
pub struct SessionState(pub RwSignal<Session>);

pub fn provide() {
    let state = SessionState(RwSignal::new(Session::Loading));
    provide_context(state);
    leptos::task::spawn_local(async move { refresh(state).await });
}

pub fn use_session() -> SessionState {
    expect_context::<SessionState>()
}

/// Asks the API who we are.
pub async fn refresh(state: SessionState) {
    match api::get::<Me>("/api/v1/me").await {
        Ok(me) => signed_in(state, me),
        Err(_) => {
            api::set_csrf(None);
            state.0.set(Session::SignedOut);
        }
    }
}

pub fn signed_in(state: SessionState, me: Me) {
    api::set_csrf(me.csrf_token.clone());
    state.0.set(Session::SignedIn(Box::new(me)));
}

impl SessionState {
    pub fn me(&self) -> Option<Me> {
        match self.0.get() {
            Session::SignedIn(me) => Some(*me),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.me().is_some_and(|m| m.user.is_admin)
    }
}
