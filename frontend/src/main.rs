//! Petrel's web UI: a Leptos single-page app (client-side rendering) over the JSON API.
//! `pages/` has one module per screen; `api` talks to the server; `session` knows who is
//! signed in.

mod api;
mod components;
mod pages;
mod session;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::components::Shell;
use crate::pages::{audit, login, tenants, tokens, users};

#[component]
fn App() -> impl IntoView {
    session::provide();
    view! {
        <Router>
            <Routes fallback=|| view! { <Shell><h1>"Not found"</h1><p>"There is no such page."</p></Shell> }>
                <Route path=path!("/login") view=login::Login/>
                <Route path=path!("/") view=tenants::TenantList/>
                <Route path=path!("/tenants") view=tenants::TenantList/>
                <Route path=path!("/tenants/:id") view=tenants::TenantPage/>
                <Route path=path!("/tokens") view=tokens::Tokens/>
                <Route path=path!("/users") view=users::Users/>
                <Route path=path!("/audit") view=audit::Audit/>
            </Routes>
        </Router>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
