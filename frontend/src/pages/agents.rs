//! KVM hosts' agents (administrators): their health (last heartbeat, unreachable), what each
//! host offers, revoking one; and one-time enrollment tokens: created (the secret shown once),
//! listed with their state, an unused one revoked.

use leptos::prelude::*;
use petrel_wire::deployments::{Agent, CreateEnrollment, Enrollment, EnrollmentState, EnrollmentToken};
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
    let tokens = Paged::<EnrollmentToken>::new("/api/v1/agents/enrollments".into());
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
                    tokens.reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    // One listener for both tables: `data-revoke` names an agent, `data-revoke-token` a token.
    let on_table_click = move |ev: leptos::ev::MouseEvent| {
        let Some((id, token)) = ["data-revoke", "data-revoke-token"].into_iter().find_map(|attr| {
            let id = target_with(&ev, attr)?.get_attribute(attr)?.parse::<Uuid>().ok()?;
            Some((id, attr == "data-revoke-token"))
        }) else {
            return;
        };
        let path =
            if token { format!("/api/v1/agents/enrollments/{id}") } else { format!("/api/v1/agents/{id}") };
        leptos::task::spawn_local(async move {
            match api::send_empty("DELETE", &path).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e)),
            }
            if token {
                // A revoked token's secret is no use: stop showing it.
                if created.with_untracked(|c| c.as_ref().is_some_and(|e| e.id == id)) {
                    created.set(None);
                }
                tokens.reload();
            } else {
                agents.reload();
            }
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
        <h2>"Enrollment tokens"</h2>
        <div on:click=on_table_click>
            {move || tokens.items.with(|list| raw(tokens_table(list)))}
        </div>
        <PagedFooter paged=tokens/>
    }
}

/// Enrollment tokens with their state (never the secret); an unused one can be revoked.
fn tokens_table(tokens: &[EnrollmentToken]) -> String {
    let rows: Vec<String> = tokens
        .iter()
        .map(|t| {
            let state = t.state.as_str();
            let badge = el("span", &[("class", "badge"), ("data-state", state)], state);
            let action = if t.state == EnrollmentState::Unused {
                el(
                    "button",
                    &[
                        ("type", "button"),
                        ("class", "danger"),
                        ("data-revoke-token", &t.id.to_string()),
                        ("aria-label", &format!("Revoke the enrollment token for {}", t.name)),
                    ],
                    "Revoke",
                )
            } else {
                String::new()
            };
            let used = t.used_at.as_ref().map(when).unwrap_or_else(|| "—".into());
            row(
                "enrollment-row",
                &[
                    esc(&t.name),
                    badge,
                    esc(&when(&t.created_at)),
                    esc(&when(&t.expires_at)),
                    esc(&used),
                    action,
                ],
            )
        })
        .collect();
    html::table("enrollments", &["Name", "State", "Created", "Expires", "Used", "Actions"], &rows)
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
                Some(t) => {
                    el("span", &[("title", &when(t))], &esc(&age(now - petrel_wire::time::unix_seconds(t))))
                }
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
