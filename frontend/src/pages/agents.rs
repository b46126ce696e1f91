//! KVM hosts' agents (administrators): their health (last heartbeat, unreachable), what each
//! host offers, revoking one; and one-time enrollment tokens (shown once).

use leptos::prelude::*;
use petrel_wire::deployments::{Agent, CreateEnrollment, Enrollment};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{ErrorText, Paged, PagedFooter, Shell, now_seconds, raw, target_with, when};
use crate::forms::{self, Values};
use crate::html::{self, el, esc, row, text};

#[component]
pub fn Agents() -> impl IntoView {
    view! {
        <Shell>
            <AgentsBody/>
        </Shell>
    }
}

#[component]
fn AgentsBody() -> impl IntoView {
    let agents = Paged::<Agent>::new("/api/v1/agents".into());
    let error = RwSignal::new(None::<ApiError>);
    let created = RwSignal::new(None::<Enrollment>);
    let enroll = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some((form, values)) = Values::of(&ev) else { return };
        let body = CreateEnrollment { name: values.get("name") };
        leptos::task::spawn_local(async move {
            let answer = api::send::<_, Enrollment>("POST", "/api/v1/agents/enrollments", &body).await;
            forms::show_errors(&form, answer.as_ref().err());
            match answer {
                Ok(e) => {
                    error.set(None);
                    form.reset();
                    created.set(Some(e));
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let on_table_click = move |ev: leptos::ev::MouseEvent| {
        let Some(id) = target_with(&ev, "data-revoke")
            .and_then(|b| b.get_attribute("data-revoke"))
            .and_then(|id| id.parse::<Uuid>().ok())
        else {
            return;
        };
        leptos::task::spawn_local(async move {
            match api::send_empty("DELETE", &format!("/api/v1/agents/{id}")).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e)),
            }
            agents.reload();
        });
    };
    view! {
        <h1>"Agents"</h1>
        <p class="muted">"Each KVM host runs " <code>"petrel-agent"</code>
            ", which heartbeats every few seconds; an agent silent for longer is unreachable and its deployments show as unknown."</p>
        <div on:click=on_table_click>
            {move || agents.items.with(|list| raw(agents_table(list)))}
        </div>
        <PagedFooter paged=agents/>
        <h2>"Enroll a host"</h2>
        {move || created.get().map(|e| raw(enrollment_html(&e)))}
        <form class="card inline" on:submit=enroll aria-label="Create an enrollment token" novalidate>
            {raw(forms::field("Host name", "name", &[("required", ""), ("maxlength", "100"), ("autocomplete", "off")], ""))}
            <button type="submit">"Create enrollment token"</button>
        </form>
        <ErrorText error=error/>
    }
}

fn enrollment_html(e: &Enrollment) -> String {
    let inner = format!(
        "{}{}{}{}",
        el(
            "p",
            &[],
            &el(
                "strong",
                &[],
                &esc(&format!("Enrollment token for {}: copy it now, it is shown only once.", e.name))
            )
        ),
        el("p", &[], &text("code", "", &e.token)),
        text("p", "muted", &format!("It works once, until {}. On the host:", when(&e.expires_at))),
        el(
            "pre",
            &[("class", "script")],
            &esc(&format!(
                "petrel-agent enroll --api {} --ca ca.pem --token {} --state-dir /var/lib/petrel-agent",
                origin(),
                e.token
            ))
        ),
    );
    el("div", &[("class", "card secret"), ("role", "status"), ("data-testid", "new-enrollment")], &inner)
}

fn origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default()
}

/// "12 s ago", "3 min ago", "2 h ago", "4 days ago".
pub fn age(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn agents_table(agents: &[Agent]) -> String {
    let now = now_seconds();
    let rows: Vec<String> = agents
        .iter()
        .map(|a| {
            let (state, class) = if a.revoked {
                ("revoked", "muted")
            } else if a.reachable {
                ("reachable", "ok")
            } else {
                ("unreachable", "error")
            };
            let health = el("span", &[("class", &format!("badge {class}")), ("data-health", state)], state);
            let seen = match &a.last_seen_at {
                Some(t) => el("span", &[("title", &when(t))], &esc(&age(now - petrel_wire::time::unix_seconds(t)))),
                None => esc("never"),
            };
            let (cpus, memory, bridges, tender) = match &a.inventory {
                Some(i) => (
                    i.cpus.to_string(),
                    format!("{} MiB", i.memory_mib),
                    if i.bridges.is_empty() { "none".to_string() } else { i.bridges.join(", ") },
                    i.tender_version.clone(),
                ),
                None => ("—".into(), "—".into(), "—".into(), "—".into()),
            };
            let action = if a.revoked {
                String::new()
            } else {
                el(
                    "button",
                    &[
                        ("type", "button"),
                        ("class", "danger"),
                        ("data-revoke", &a.id.to_string()),
                        ("aria-label", &format!("Revoke agent {}", a.name)),
                    ],
                    "Revoke",
                )
            };
            row(
                "agent-row",
                &[
                    esc(&a.name),
                    health,
                    seen,
                    esc(&cpus),
                    esc(&memory),
                    esc(&bridges),
                    esc(&tender),
                    esc(&a.deployments.to_string()),
                    action,
                ],
            )
        })
        .collect();
    html::table(
        "agents",
        &[
            "Name",
            "Health",
            "Last heartbeat",
            "CPUs",
            "Memory",
            "Bridges",
            "Tender",
            "Deployments",
            "Actions",
        ],
        &rows,
    )
}
