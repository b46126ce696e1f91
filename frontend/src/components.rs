//! Pieces every page uses: the signed-in shell with navigation, error messages, paged lists.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use petrel_wire::Page;
use serde::de::DeserializeOwned;

use crate::api::{self, ApiError};
use crate::session::{Session, use_session};

/// The frame of every signed-in page. Sends signed-out visitors to the sign-in page.
#[component]
pub fn Shell(children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if session.0.get() == Session::SignedOut {
            navigate("/login", Default::default());
        }
    });
    let sign_out = move |_| {
        leptos::task::spawn_local(async move {
            let _ = api::send_empty("POST", "/api/v1/auth/logout").await;
            api::set_csrf(None);
            session.0.set(Session::SignedOut);
        });
    };
    let theme = RwSignal::new(stored_theme());
    Effect::new(move |_| apply_theme(&theme.get()));
    let toggle_theme = move |_| {
        theme.update(|t| *t = if t == "dark" { "light".into() } else { "dark".into() });
    };
    view! {
        <header class="top">
            <a class="brand" href="/tenants">"Petrel"</a>
            <nav aria-label="Main">
                <A href="/tenants">"Tenants"</A>
                <A href="/tokens">"API tokens"</A>
                <Show when=move || session.is_admin()>
                    <A href="/users">"Users"</A>
                    <A href="/audit">"Audit log"</A>
                </Show>
                <a href="/api/v1/docs/">"API docs"</a>
            </nav>
            <span class="muted" data-testid="whoami">
                {move || session.me().map(|m| m.user.username).unwrap_or_default()}
            </span>
            <button class="secondary" on:click=toggle_theme aria-label="Switch between light and dark theme">
                {move || if theme.get() == "dark" { "Light theme" } else { "Dark theme" }}
            </button>
            <button class="secondary" on:click=sign_out>"Sign out"</button>
        </header>
        <main>
            {move || match session.0.get() {
                Session::SignedIn(_) => children().into_any(),
                _ => view! { <p class="muted" role="status">"Loading…"</p> }.into_any(),
            }}
        </main>
    }
}

fn stored_theme() -> String {
    web_sys::window()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item("petrel-theme").ok().flatten())
        .unwrap_or_default()
}

fn apply_theme(theme: &str) {
    let Some(window) = web_sys::window() else { return };
    if let Some(storage) = window.local_storage().ok().flatten() {
        let _ = storage.set_item("petrel-theme", theme);
    }
    if let Some(root) = window.document().and_then(|d| d.document_element()) {
        let _ = if theme.is_empty() {
            root.remove_attribute("data-theme")
        } else {
            root.set_attribute("data-theme", theme)
        };
    }
}

/// An error message for the whole form (role="alert" so screen readers announce it).
#[component]
pub fn ErrorText(error: RwSignal<Option<ApiError>>) -> impl IntoView {
    move || error.get().map(|e| view! { <p class="error" role="alert">{e.message}</p> })
}

/// The API's message for one field, shown under it.
#[component]
pub fn FieldMessage(error: RwSignal<Option<ApiError>>, field: &'static str) -> impl IntoView {
    move || {
        error
            .get()
            .and_then(|e| e.field(field))
            .map(|m| view! { <span class="field-error" role="alert">{m}</span> })
    }
}

/// A list fetched page by page with "Load more".
pub struct Paged<T: Send + Sync + 'static> {
    pub items: RwSignal<Vec<T>>,
    pub next: RwSignal<Option<String>>,
    pub loading: RwSignal<bool>,
    pub error: RwSignal<Option<ApiError>>,
    path: StoredValue<String>,
    session: crate::session::SessionState,
    /// Bumped by `reload`, so answers to superseded requests are dropped.
    generation: StoredValue<u64>,
}

// Signals are handles: a `Paged` copies freely whatever `T` is (a derive would demand `T: Copy`).
impl<T: Send + Sync + 'static> Clone for Paged<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Send + Sync + 'static> Copy for Paged<T> {}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Paged<T> {
    pub fn new(path: String) -> Self {
        let paged = Paged {
            items: RwSignal::new(Vec::new()),
            next: RwSignal::new(None),
            loading: RwSignal::new(false),
            error: RwSignal::new(None),
            path: StoredValue::new(path),
            session: use_session(),
            generation: StoredValue::new(0),
        };
        paged.reload();
        paged
    }

    pub fn reload(&self) {
        self.generation.update_value(|g| *g += 1);
        self.items.set(Vec::new());
        self.next.set(None);
        self.fetch(None);
    }

    pub fn load_more(&self) {
        if let Some(cursor) = self.next.get_untracked() {
            self.fetch(Some(cursor));
        }
    }

    fn fetch(&self, cursor: Option<String>) {
        let this = *self;
        this.loading.set(true);
        let generation = this.generation.get_value();
        leptos::task::spawn_local(async move {
            let base = this.path.get_value();
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = match cursor {
                Some(c) => format!("{base}{sep}limit=50&cursor={c}"),
                None => format!("{base}{sep}limit=50"),
            };
            let answer = api::get::<Page<T>>(&url).await;
            if this.generation.get_value() != generation {
                return;
            }
            match answer {
                Ok(page) => {
                    this.items.update(|items| items.extend(page.items));
                    this.next.set(page.next_cursor);
                    this.error.set(None);
                }
                // A session that ended sends the reader back to the sign-in page.
                Err(e) if e.is_unauthenticated() => this.session.0.set(Session::SignedOut),
                Err(e) => this.error.set(Some(e)),
            }
            this.loading.set(false);
        });
    }
}

/// The "Load more" button and loading/error states of a paged list.
#[component]
pub fn PagedFooter<T: DeserializeOwned + Clone + Send + Sync + 'static>(paged: Paged<T>) -> impl IntoView {
    view! {
        <ErrorText error=paged.error/>
        <Show when=move || paged.loading.get()>
            <p class="muted" role="status">"Loading…"</p>
        </Show>
        <Show when=move || paged.next.get().is_some() && !paged.loading.get()>
            <button class="secondary" on:click=move |_| paged.load_more()>"Load more"</button>
        </Show>
        <Show when=move || !paged.loading.get() && paged.error.get().is_none() && paged.items.with(Vec::is_empty)>
            <p class="muted">"Nothing here yet."</p>
        </Show>
    }
}

pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
