//! Sign-in.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use petrel_wire::identity::{LoginRequest, Me};

use crate::api::{self, ApiError};
use crate::components::ErrorText;
use crate::session::{Session, signed_in, use_session};

#[component]
pub fn Login() -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let nav = navigate.clone();
    Effect::new(move |_| {
        if matches!(session.0.get(), Session::SignedIn(_)) {
            nav("/tenants", Default::default());
        }
    });
    Effect::new(move |_| crate::components::mark_rendered());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        let body = LoginRequest { username: username.get_untracked(), password: password.get_untracked() };
        leptos::task::spawn_local(async move {
            match api::send::<_, Me>("POST", "/api/v1/auth/login", &body).await {
                Ok(me) => {
                    error.set(None);
                    signed_in(session, me);
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <main class="login">
            <h1>"Sign in to Petrel"</h1>
            <form on:submit=submit aria-describedby="login-error">
                <label>"Username"
                    <input name="username" autocomplete="username" required
                        prop:value=move || username.get()
                        on:input=move |ev| username.set(event_target_value(&ev))/>
                </label>
                <label>"Password"
                    <input name="password" type="password" autocomplete="current-password" required
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))/>
                </label>
                <div id="login-error"><ErrorText error=error/></div>
                <button type="submit" disabled=move || busy.get()>"Sign in"</button>
            </form>
        </main>
    }
}
