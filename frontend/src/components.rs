//! Pieces every page uses: the shell with navigation, error messages, paged lists, fetching
//! (plain, and while the server computes the answer), read-only markup sections.

use petrel_wire::time::{DateTime, Utc};
use std::rc::Rc;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use petrel_wire::builds::BuildStatus;
use serde::de::DeserializeOwned;

use crate::api::{self, ApiError};
use crate::html;
use crate::session::{Session, use_session};

/// The frame of every page. Sends signed-out visitors to the sign-in page, except on `public`
/// pages (jobs, builds, comparisons: public jobs are readable by anyone, as on builder-web).
#[component]
pub fn Shell(children: ChildrenFn, #[prop(optional)] public: bool) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if !public && session.0.get() == Session::SignedOut {
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
    // Memos, so the parts below are drawn again only when these change.
    let signed_in = Memo::new(move |_| session.me().is_some());
    let admin = Memo::new(move |_| session.is_admin());
    // The first page drawn (signed in, or a public page): the time-to-first-render mark.
    Effect::new(move |_| {
        if session.0.with(|s| *s != Session::Loading) {
            mark_rendered();
        }
    });
    let theme = RwSignal::new(stored_theme());
    Effect::new(move |_| apply_theme(&theme.get()));
    let toggle_theme = move |_| {
        theme.update(|t| *t = if t == "dark" { "light".into() } else { "dark".into() });
    };
    view! {
        <header class="top">
            <a class="brand" href="/tenants">"Petrel"</a>
            <nav aria-label="Main">
                <A href="/jobs">"Jobs"</A>
                <A href="/fleet">"Fleet search"</A>
                {move || signed_in.get().then(|| view! {
                    <A href="/deployments">"Deployments"</A>
                    <A href="/block-devices">"Block devices"</A>
                    <A href="/quotas">"Quotas"</A>
                    <A href="/tenants">"Tenants"</A>
                    <A href="/tokens">"API tokens"</A>
                })}
                {move || admin.get().then(|| view! {
                    <A href="/workers">"Workers"</A>
                    <A href="/agents">"Agents"</A>
                    <A href="/users">"Users"</A>
                    <A href="/audit">"Audit log"</A>
                })}
                <a href="/api/v1/docs/">"API docs"</a>
            </nav>
            <span class="muted" data-testid="whoami">
                {move || session.me().map(|m| m.user.username).unwrap_or_default()}
            </span>
            <button class="secondary" on:click=toggle_theme aria-label="Switch between light and dark theme">
                {move || if theme.get() == "dark" { "Light theme" } else { "Dark theme" }}
            </button>
            {move || if signed_in.get() {
                view! { <button class="secondary" on:click=sign_out>"Sign out"</button> }.into_any()
            } else {
                view! { <a href="/login">"Sign in"</a> }.into_any()
            }}
        </header>
        <main>
            {move || match session.0.get() {
                Session::SignedIn(_) => children().into_any(),
                Session::SignedOut if public => children().into_any(),
                _ => loading(),
            }}
        </main>
    }
}

/// Sets `data-rendered` on `<html>` to the milliseconds since navigation started, once, when
/// the first page has been drawn (read by the `spa` benchmark in tests/benches).
pub fn mark_rendered() {
    let Some(window) = web_sys::window() else { return };
    let Some(root) = window.document().and_then(|d| d.document_element()) else { return };
    if !root.has_attribute("data-rendered") {
        let now = window.performance().map(|p| p.now()).unwrap_or_default();
        let _ = root.set_attribute("data-rendered", &(now as i64).to_string());
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
        let base = this.path.get_value();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = match cursor {
            Some(c) => format!("{base}{sep}limit=50&cursor={c}"),
            None => format!("{base}{sep}limit=50"),
        };
        // The request is not generic (see `fetch_then`); only the parsing is per item type.
        fetch_then(url, move |answer| {
            if this.generation.try_get_value() != Some(generation) {
                return;
            }
            match answer.and_then(|text| api::parse_page::<T>(&text)) {
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
    // The view itself is not generic, so it is compiled once for every kind of list.
    paged_footer(
        paged.loading,
        paged.error,
        Signal::derive(move || paged.next.with(Option::is_some)),
        Signal::derive(move || paged.items.with(Vec::is_empty)),
        Callback::new(move |()| paged.load_more()),
    )
}

fn paged_footer(
    busy: RwSignal<bool>,
    error: RwSignal<Option<ApiError>>,
    has_next: Signal<bool>,
    empty: Signal<bool>,
    more: Callback<()>,
) -> AnyView {
    view! {
        <ErrorText error=error/>
        {move || busy.get().then(loading)}
        {move || (has_next.get() && !busy.get()).then(|| view! {
            <button class="secondary" on:click=move |_| more.run(())>"Load more"</button>
        })}
        {move || (!busy.get() && error.with(Option::is_none) && empty.get())
            .then(|| raw(html::text("p", "muted", "Nothing here yet.")))}
    }
    .into_any()
}

pub fn when(t: &DateTime<Utc>) -> String {
    let c = petrel_wire::time::civil(t);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", c.year, c.month, c.day, c.hour, c.minute)
}

/// Now, in seconds since the Unix epoch (the browser's clock).
pub fn now_seconds() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// The element of an event (or its nearest ancestor) that has attribute `attr`: how one listener
/// serves every button of a table drawn as markup.
pub fn target_with(ev: &web_sys::Event, attr: &str) -> Option<web_sys::Element> {
    use leptos::wasm_bindgen::JsCast;
    ev.target()?.dyn_into::<web_sys::Element>().ok()?.closest(&format!("[{attr}]")).ok().flatten()
}

/// "Loading…", announced to screen readers.
pub fn loading() -> AnyView {
    raw(html::el("p", &[("class", "muted"), ("role", "status")], "Loading…"))
}

/// An error message for one section of a page.
pub fn error_view(e: ApiError) -> AnyView {
    view! { <p class="error" role="alert">{e.message}</p> }.into_any()
}

/// Whether the build may still change (and so can be cancelled).
pub fn is_active(status: BuildStatus) -> bool {
    matches!(status, BuildStatus::Queued | BuildStatus::Running)
}

/// A coloured badge with the status' name, as markup (see `html`).
pub fn status_html(status: BuildStatus) -> String {
    let name = status.as_str();
    html::el("span", &[("class", &format!("badge status status-{name}")), ("data-status", name)], name)
}

/// Read-only markup made by `html` (escaped there), in a wrapper that takes no room of its own.
pub fn raw(markup: String) -> AnyView {
    view! { <div class="raw" inner_html=markup></div> }.into_any()
}

/// The first characters of a hex hash, for tables (the whole hash goes in a tooltip).
pub fn short_hash(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// The first block of a UUID, for tables and headings (the whole id is in the link).
pub fn short_id(id: &uuid::Uuid) -> String {
    id.to_string().chars().take(8).collect()
}

/// A fetch that may answer 409 `not-ready` while the server computes the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Ready<T> {
    Loading,
    /// Being computed; the number of tries so far.
    Computing(u32),
    Done(T),
    Failed(ApiError),
}

/// Fetches `url` and hands its body (or the error) to `done`. Not generic (the closure is
/// boxed), so each type fetched adds only its parsing to the wasm.
pub fn fetch_then(url: String, done: impl FnOnce(Result<String, ApiError>) + 'static) {
    fetch_boxed(url, Box::new(done));
}

fn fetch_boxed(url: String, done: Box<dyn FnOnce(Result<String, ApiError>)>) {
    leptos::task::spawn_local(async move { done(api::get_text(&url).await) });
}

/// Parses an answer and draws it as markup (see `html`).
pub type Draw = Rc<dyn Fn(&str) -> Result<String, ApiError>>;

/// `draw` for answers of type `T`: parse, then draw.
pub fn draw_as<T: DeserializeOwned + 'static>(draw: impl Fn(&T) -> String + 'static) -> Draw {
    Rc::new(move |text| api::parse::<T>(text).map(|value| draw(&value)))
}

/// Markup drawn from what `url` answers (fetched again whenever `version` changes, when given);
/// `None` until the first answer. A refetch keeps the old markup until the new one arrives.
/// Nothing here is generic: a section costs the wasm only its parsing and drawing.
pub fn fetched_markup(
    url: String,
    version: Option<RwSignal<u32>>,
    draw: Draw,
) -> RwSignal<Option<Result<String, ApiError>>> {
    let state = RwSignal::new(None);
    Effect::new(move |_| {
        if let Some(v) = version {
            v.track();
        }
        let draw = draw.clone();
        fetch_then(url.clone(), move |answer| {
            let _ = state.try_set(Some(answer.and_then(|text| draw(&text))));
        });
    });
    state
}

/// Fetched markup with loading and error states.
pub fn show_markup(state: RwSignal<Option<Result<String, ApiError>>>) -> AnyView {
    (move || {
        state.with(|s| match s {
            None => loading(),
            Some(Err(e)) => error_view(e.clone()),
            Some(Ok(markup)) => raw(markup.clone()),
        })
    })
    .into_any()
}

/// A read-only section: `url`'s answer drawn by `draw`, with loading and error states.
pub fn section(url: String, version: Option<RwSignal<u32>>, draw: Draw) -> AnyView {
    show_markup(fetched_markup(url, version, draw))
}

/// Fetches `url` into `state`, trying again each second while the API answers 409 (at most
/// `max_tries` times). Stops when `state` is disposed (the reader left the page).
pub fn fetch_when_ready<T>(url: String, state: RwSignal<Ready<T>>, max_tries: u32)
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    let report: Rc<dyn Fn(Ready<String>)> = Rc::new(move |answer| {
        let next = match answer {
            Ready::Done(text) => match api::parse::<T>(&text) {
                Ok(value) => Ready::Done(value),
                Err(e) => Ready::Failed(e),
            },
            Ready::Loading => Ready::Loading,
            Ready::Computing(n) => Ready::Computing(n),
            Ready::Failed(e) => Ready::Failed(e),
        };
        let _ = state.try_set(next);
    });
    let alive: Rc<dyn Fn() -> bool> = Rc::new(move || state.try_with_untracked(|_| ()).is_some());
    poll_until_ready(url, 0, max_tries, report, alive);
}

fn poll_until_ready(
    url: String,
    tries: u32,
    max_tries: u32,
    report: Rc<dyn Fn(Ready<String>)>,
    alive: Rc<dyn Fn() -> bool>,
) {
    leptos::task::spawn_local(async move {
        match api::get_text(&url).await {
            Ok(text) => report(Ready::Done(text)),
            Err(e) if e.status == 409 && tries + 1 < max_tries => {
                report(Ready::Computing(tries + 1));
                set_timeout(
                    move || {
                        if alive() {
                            poll_until_ready(url, tries + 1, max_tries, report, alive);
                        }
                    },
                    std::time::Duration::from_secs(1),
                );
            }
            Err(e) => report(Ready::Failed(e)),
        }
    });
}
