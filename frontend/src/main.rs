//! Petrel's web UI: a Leptos single-page app (client-side rendering) over the JSON API.
//! `pages/` has one module per screen; `api` talks to the server; `session` knows who is
//! signed in.

mod api;
mod components;
mod forms;
mod graph_layout;
mod html;
mod pages;
mod session;
mod treemap;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::components::Shell;
use crate::pages::{
    agents, audit, block_devices, build, compare, deployments, fleet, jobs, login, quotas, tenants, tokens,
    users, workers,
};

#[component]
fn App() -> impl IntoView {
    session::provide();
    view! {
        <Router>
            <Routes fallback=|| view! { <Shell><h1>"Not found"</h1><p>"There is no such page."</p></Shell> }>
                <Route path=path!("/login") view=login::Login/>
                <Route path=path!("/") view=tenants::TenantList/>
                // At most 16 routes (leptos_router's tuples): a list and its items share one.
                <Route path=path!("/tenants/:id?") view=tenants::Tenants/>
                <Route path=path!("/tokens") view=tokens::Tokens/>
                <Route path=path!("/users") view=users::Users/>
                <Route path=path!("/audit") view=audit::Audit/>
                <Route path=path!("/jobs") view=jobs::JobList/>
                <Route path=path!("/jobs/:id") view=jobs::JobPage/>
                <Route path=path!("/builds/:id") view=build::BuildPage/>
                <Route path=path!("/builds/:a/compare/:b") view=compare::ComparePage/>
                <Route path=path!("/fleet") view=fleet::Fleet/>
                <Route path=path!("/workers") view=workers::Workers/>
                <Route path=path!("/deployments/:id?") view=deployments::Deployments/>
                <Route path=path!("/quotas") view=quotas::Quotas/>
                <Route path=path!("/agents") view=agents::Agents/>
                <Route path=path!("/block-devices") view=block_devices::BlockDevices/>
            </Routes>
        </Router>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
