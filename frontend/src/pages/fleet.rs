//! Fleet search: which builds contain a package (in a version). The search lives in the URL
//! (`/fleet?ecosystem=opam&name=...&version=...`), so results can be linked to.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use petrel_wire::builds::FleetHit;

use crate::api;
use crate::components::{Paged, PagedFooter, Shell, raw, short_id, when};
use crate::html::{self, esc, link, row, text};

const ECOSYSTEMS: [&str; 4] = ["opam", "debian", "freebsd", "cargo"];

#[derive(Clone, Debug, PartialEq)]
struct Search {
    ecosystem: String,
    name: String,
    version: String,
}

impl Search {
    fn query(&self) -> String {
        let mut q = format!("ecosystem={}&name={}", api::encode(&self.ecosystem), api::encode(&self.name));
        if !self.version.is_empty() {
            q.push_str(&format!("&version={}", api::encode(&self.version)));
        }
        q
    }
}

#[component]
pub fn Fleet() -> impl IntoView {
    view! {
        <Shell public=true>
            <FleetBody/>
        </Shell>
    }
}

#[component]
fn FleetBody() -> impl IntoView {
    let query = use_query_map();
    let navigate = use_navigate();
    let search = Memo::new(move |_| {
        let q = query.read();
        let name = q.get("name").unwrap_or_default().trim().to_string();
        (!name.is_empty()).then(|| Search {
            ecosystem: q.get("ecosystem").filter(|e| !e.is_empty()).unwrap_or_else(|| "opam".into()),
            name,
            version: q.get("version").unwrap_or_default().trim().to_string(),
        })
    });
    let initial = search.get_untracked();
    let ecosystem =
        RwSignal::new(initial.as_ref().map(|s| s.ecosystem.clone()).unwrap_or_else(|| "opam".into()));
    let name = RwSignal::new(initial.as_ref().map(|s| s.name.clone()).unwrap_or_default());
    let version = RwSignal::new(initial.map(|s| s.version).unwrap_or_default());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let s = Search {
            ecosystem: ecosystem.get_untracked(),
            name: name.get_untracked().trim().to_string(),
            version: version.get_untracked().trim().to_string(),
        };
        navigate(&format!("/fleet?{}", s.query()), Default::default());
    };
    view! {
        <h1>"Fleet search"</h1>
        <p class="muted">"Which builds contain a package: find the unikernels to rebuild after a security fix."</p>
        <form class="card inline" on:submit=submit aria-label="Search builds by package" role="search">
            <label>"Ecosystem"
                <select name="ecosystem" on:change=move |ev| ecosystem.set(event_target_value(&ev))
                    inner_html=html::options(ECOSYSTEMS.map(|e| (e, e, ecosystem.get_untracked() == e)))>
                </select>
            </label>
            <label>"Package name"
                <input name="name" required prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
            </label>
            <label>"Version (optional)"
                <input name="version" prop:value=move || version.get() on:input=move |ev| version.set(event_target_value(&ev))/>
            </label>
            <button type="submit">"Search"</button>
        </form>
        {move || search.get().map(|s| view! { <FleetResults search=s/> })}
    }
}

#[component]
fn FleetResults(search: Search) -> impl IntoView {
    let hits = Paged::<FleetHit>::new(format!("/api/v1/fleet/packages?{}", search.query()));
    let what = if search.version.is_empty() {
        format!("{} package {} (any version)", search.ecosystem, search.name)
    } else {
        format!("{} package {} {}", search.ecosystem, search.name, search.version)
    };
    view! {
        <h2>"Builds with the " {what}</h2>
        {move || hits.items.with(|h| raw(results(h)))}
        <PagedFooter paged=hits/>
    }
}

fn results(hits: &[FleetHit]) -> String {
    let rows: Vec<String> = hits
        .iter()
        .map(|h| {
            row(
                "fleet-row",
                &[
                    html::link_class(&format!("/builds/{}", h.build_id), "mono", &short_id(&h.build_id)),
                    link(&format!("/jobs/{}", h.job_id), &h.job_name),
                    esc(&h.platform),
                    text("span", "mono", &h.version),
                    esc(&h.finished_at.as_ref().map(when).unwrap_or_else(|| "—".into())),
                    esc(&running_as(h)),
                ],
            )
        })
        .collect();
    html::table("fleet-results", &["Build", "Job", "Platform", "Version", "Finished", "Running as"], &rows)
}

/// The live deployments made from the build, by name.
fn running_as(hit: &FleetHit) -> String {
    if hit.deployments.is_empty() {
        return "—".into();
    }
    hit.deployments.iter().map(|d| format!("{} ({})", d.name, d.state)).collect::<Vec<_>>().join(", ")
}
