//! Deployments: a tenant's list (state, host, memory, image, "update available"), and one
//! deployment's page: its facts, restart, update (with the compare link), roll back, destroy,
//! the live console, the state history with exit codes, and memory and CPU over time.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_params_map};
use petrel_wire::deployments::{Deployment, DeploymentEvent, DeploymentState, StatsHistory};
use petrel_wire::identity::Tenant;
use petrel_wire::time::unix_millis;
use uuid::Uuid;

use super::build::LiveConsole;
use crate::api::{self, ApiError};
use crate::components::{
    ErrorText, Paged, PagedFooter, Shell, error_view, loading, raw, short_hash, short_id, when,
};
use crate::html::{self, el, esc, link, row, text};

/// `/deployments` (the list), `/deployments/new` (the form) and `/deployments/<id>`.
#[component]
pub fn Deployments() -> impl IntoView {
    let params = use_params_map();
    let which = Memo::new(move |_| params.read().get("id"));
    move || match which.get().as_deref() {
        None => view! { <DeploymentList/> }.into_any(),
        Some("new") => view! { <super::deploy_new::DeploymentCreate/> }.into_any(),
        Some(_) => view! { <DeploymentPage/> }.into_any(),
    }
}

#[component]
pub fn DeploymentList() -> impl IntoView {
    view! {
        <Shell>
            <DeploymentListBody/>
        </Shell>
    }
}

#[component]
fn DeploymentListBody() -> impl IntoView {
    let tenants = Paged::<Tenant>::new("/api/v1/tenants".into());
    let chosen = RwSignal::new(None::<Uuid>);
    // The first tenant until another is chosen.
    let tenant =
        Memo::new(move |_| chosen.get().or_else(|| tenants.items.with(|ts| ts.first().map(|t| t.id))));
    view! {
        <h1>"Deployments"</h1>
        <p class="muted">"Unikernels running on KVM hosts, by tenant. Deploy here, with " <code>"petrel deploy create"</code> " or the API."</p>
        <p><a class="button" href=move || match tenant.get() { Some(t) => format!("/deployments/new?tenant={t}"), None => "/deployments/new".into() }
            data-testid="new-deployment">"New deployment"</a></p>
        <label>"Tenant "
            <select name="deployment-tenant" on:change=move |ev| chosen.set(event_target_value(&ev).parse().ok())
                inner_html=move || tenants.items.with(|ts| {
                    let current = tenant.get();
                    let items: Vec<(String, String, bool)> =
                        ts.iter().map(|t| (t.id.to_string(), t.name.clone(), Some(t.id) == current)).collect();
                    html::options(items.iter().map(|(id, name, on)| (id.as_str(), name.as_str(), *on)))
                })>
            </select>
        </label>
        {move || tenant.get().map(|t| view! { <DeploymentTable tenant=t/> })}
    }
}

#[component]
fn DeploymentTable(tenant: Uuid) -> impl IntoView {
    let deployments = Paged::<Deployment>::new(format!("/api/v1/tenants/{tenant}/deployments"));
    view! {
        {move || deployments.items.with(|ds| raw(deployments_table(ds)))}
        <PagedFooter paged=deployments/>
    }
}

fn state_html(state: DeploymentState) -> String {
    let name = state.as_str();
    el("span", &[("class", &format!("status status-{name}")), ("data-state", name)], name)
}

fn deployments_table(deployments: &[Deployment]) -> String {
    let rows: Vec<String> = deployments
        .iter()
        .map(|d| {
            let update = match &d.update_available {
                Some(u) => el(
                    "span",
                    &[("class", "badge"), ("data-testid", "update-available")],
                    &esc(&format!("update: {}", short_hash(&u.image_sha256))),
                ),
                None => "—".into(),
            };
            row(
                "deployment-row",
                &[
                    link(&format!("/deployments/{}", d.id), &d.name),
                    state_html(d.state),
                    esc(&d.agent_id.map(|a| short_id(&a)).unwrap_or_else(|| "—".into())),
                    esc(&format!("{} MiB", d.memory_mib)),
                    text("span", "mono", &short_hash(&d.image_sha256)),
                    update,
                ],
            )
        })
        .collect();
    html::table("deployments", &["Name", "State", "Host", "Memory", "Image", "Update"], &rows)
}

#[component]
pub fn DeploymentPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").and_then(|s| s.parse::<Uuid>().ok()));
    view! {
        <Shell>
            {move || match id.get() {
                Some(id) => view! { <DeploymentBody id=id/> }.into_any(),
                None => view! { <h1>"Deployment"</h1><p class="error" role="alert">"There is no such deployment."</p> }.into_any(),
            }}
        </Shell>
    }
}

#[component]
fn DeploymentBody(id: Uuid) -> impl IntoView {
    let deployment = RwSignal::new(None::<Result<Deployment, ApiError>>);
    let history = RwSignal::new(0u32);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            let answer = api::fetch::<Deployment>(format!("/api/v1/deployments/{id}")).await;
            if deployment.try_set(Some(answer)).is_some() {
                return;
            }
            history.update(|h| *h += 1);
        });
    };
    refresh();
    let found = Memo::new(move |before: Option<&bool>| {
        before.copied().unwrap_or(false) || deployment.with(|d| matches!(d, Some(Ok(_))))
    });
    view! {
        {move || match deployment.get() {
            None => loading(),
            Some(Err(e)) => view! { <h1>"Deployment"</h1>{error_view(e)} }.into_any(),
            Some(Ok(d)) => view! { {raw(summary(&d))}<DeploymentActions deployment=d refresh=refresh/> }.into_any(),
        }}
        {move || found.get().then(|| view! {
            <h2 id="console-heading">"Console"</h2>
            <LiveConsole stream=format!("/api/v1/deployments/{id}/console/stream") on_news=refresh wall_clock=true/>
            <h2>"Memory and CPU"</h2>
            <Stats id=id version=history/>
            <h2>"State history"</h2>
            <Events id=id version=history/>
        })}
    }
}

fn summary(d: &Deployment) -> String {
    let mut out = el("h1", &[], &format!("Deployment {}", esc(&d.name)));
    let build = match d.build_id {
        Some(b) => link(&format!("/builds/{b}"), &short_id(&b)),
        None => "—".into(),
    };
    let exit = d.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into());
    let mut facts = vec![
        (
            "State",
            el("span", &[("id", "deployment-state"), ("data-state", d.state.as_str())], &state_html(d.state)),
        ),
        ("Exit code", esc(&exit)),
        ("Message", esc(d.message.as_deref().unwrap_or("—"))),
        (
            "Image",
            el("span", &[("class", "mono"), ("data-testid", "deployment-image")], &esc(&d.image_sha256)),
        ),
        ("Build", build),
        ("Memory", esc(&format!("{} MiB", d.memory_mib))),
        ("Arguments", el("span", &[("class", "mono")], &esc(&d.args.join(" ")))),
        ("Host", esc(&d.agent_id.map(|a| a.to_string()).unwrap_or_else(|| "—".into()))),
        ("Restarts", esc(&d.restarts.to_string())),
        ("Updated", esc(&when(&d.updated_at))),
    ];
    if let Some(previous) = &d.previous_image_sha256 {
        facts.push(("Previous image", el("span", &[("class", "mono")], &esc(previous))));
    }
    if let (Some(u), Some(current)) = (&d.update_available, d.build_id) {
        facts.push((
            "Update available",
            el(
                "span",
                &[("data-testid", "update-available")],
                &format!(
                    "{} · {}",
                    link(&format!("/builds/{}", u.build_id), &short_hash(&u.image_sha256)),
                    link(&format!("/builds/{current}/compare/{}", u.build_id), "what changes")
                ),
            ),
        ));
    }
    out += &html::facts("deployment-facts", &facts);
    out
}

/// Restart, update (when one is available), roll back (after an update), destroy.
#[component]
fn DeploymentActions(
    deployment: Deployment,
    refresh: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = deployment.id;
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let act = move |path: &'static str| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::post_for::<Deployment>(&format!("/api/v1/deployments/{id}/{path}")).await {
                Ok(_) => error.set(None),
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
            refresh();
        });
    };
    let destroy = move |_| {
        busy.set(true);
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match api::send_empty("DELETE", &format!("/api/v1/deployments/{id}")).await {
                Ok(()) => navigate("/deployments", Default::default()),
                Err(e) => {
                    error.set(Some(e));
                    busy.set(false);
                }
            }
        });
    };
    let can_update = deployment.update_available.is_some();
    let can_roll_back = deployment.previous_image_sha256.is_some();
    view! {
        <div class="actions">
            <button type="button" on:click=move |_| act("restart") disabled=move || busy.get() data-testid="restart">"Restart"</button>
            {can_update.then(|| view! {
                <button type="button" on:click=move |_| act("update") disabled=move || busy.get() data-testid="update">"Update"</button>
            })}
            {can_roll_back.then(|| view! {
                <button type="button" class="secondary" on:click=move |_| act("rollback") disabled=move || busy.get() data-testid="rollback">"Roll back"</button>
            })}
            <button type="button" class="danger" on:click=destroy disabled=move || busy.get() data-testid="destroy">"Destroy"</button>
        </div>
        <ErrorText error=error/>
    }
}

#[component]
fn Events(id: Uuid, version: RwSignal<u32>) -> impl IntoView {
    let events = Paged::<DeploymentEvent>::new(format!("/api/v1/deployments/{id}/events"));
    Effect::new(move |before: Option<u32>| {
        let now = version.get();
        if before.is_some_and(|b| b != now) {
            events.reload();
        }
        now
    });
    view! {
        {move || events.items.with(|es| {
            let rows: Vec<String> = es
                .iter()
                .map(|e| {
                    row("event-row", &[
                        esc(&when(&e.at)),
                        state_html(e.state),
                        esc(&e.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())),
                        esc(e.message.as_deref().unwrap_or("")),
                    ])
                })
                .collect();
            raw(html::table("deployment-events", &["When", "State", "Exit code", "Message"], &rows))
        })}
        <PagedFooter paged=events/>
    }
}

#[component]
fn Stats(id: Uuid, version: RwSignal<u32>) -> impl IntoView {
    let stats = RwSignal::new(None::<Result<StatsHistory, ApiError>>);
    Effect::new(move |_| {
        version.track();
        leptos::task::spawn_local(async move {
            let answer = api::fetch::<StatsHistory>(format!("/api/v1/deployments/{id}/stats")).await;
            let _ = stats.try_set(Some(answer));
        });
    });
    view! {
        {move || match stats.get() {
            None => loading(),
            Some(Err(e)) => error_view(e),
            Some(Ok(s)) => raw(stats_charts(&s)),
        }}
    }
}

/// Two small line charts (resident memory, and CPU time per sample interval) as SVG.
fn stats_charts(stats: &StatsHistory) -> String {
    if stats.history.len() < 2 {
        return el(
            "p",
            &[("class", "muted"), ("data-testid", "no-stats")],
            "No samples yet: the agent sends one every 10 seconds while the unikernel runs.",
        );
    }
    let memory: Vec<f64> = stats.history.iter().map(|s| s.rss_kib as f64 / 1024.0).collect();
    let cpu: Vec<f64> = stats
        .history
        .windows(2)
        .map(|w| {
            let used =
                (w[1].cpu_user_ms + w[1].cpu_system_ms).saturating_sub(w[0].cpu_user_ms + w[0].cpu_system_ms);
            let span = (unix_millis(&w[1].at) - unix_millis(&w[0].at)).max(1) as f64;
            100.0 * used as f64 / span
        })
        .collect();
    let latest = stats.latest.as_ref().expect("a history has a latest sample");
    let net: String = latest
        .nets
        .iter()
        .map(|n| format!("{}: {} B in, {} B out", n.device, n.tx_bytes, n.rx_bytes))
        .collect::<Vec<_>>()
        .join(" · ");
    format!(
        "<div class=\"charts\">{}{}</div>{}",
        line_chart("memory-chart", "Resident memory (MiB)", &memory),
        line_chart("cpu-chart", "CPU (% of one core)", &cpu),
        el("p", &[("class", "muted")], &esc(&net))
    )
}

/// A line chart of `values` scaled to the largest, in integer coordinates (a pixel's precision
/// is all a 320×100 chart shows).
fn line_chart(testid: &str, title: &str, values: &[f64]) -> String {
    const W: i64 = 320;
    const H: i64 = 100;
    let max = values.iter().cloned().fold(f64::MIN_POSITIVE, f64::max);
    let last = values.len().max(2) as i64 - 1;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{},{}", i as i64 * W / last, H - (v / max * (H - 4) as f64) as i64))
        .collect();
    let tenths = (max * 10.0).round() as i64;
    format!(
        "<figure class=\"chart\"><figcaption>{} (max {}.{})</figcaption>\
         <svg data-testid=\"{testid}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\
         <polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/></svg></figure>",
        esc(title),
        tenths / 10,
        tenths % 10,
        esc(title),
        points.join(" ")
    )
}
