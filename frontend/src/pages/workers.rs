//! Build workers (administrators): the list, registering one (its credential is shown once),
//! revoking.

use leptos::prelude::*;
use petrel_wire::identity::{Role, Tenant};
use petrel_wire::workers::{CreateWorker, CreatedWorker, Worker};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{ErrorText, FieldMessage, Paged, PagedFooter, Shell, raw, target_with, when};
use crate::html::{self, el, esc, row, text};

#[component]
pub fn Workers() -> impl IntoView {
    view! {
        <Shell>
            <WorkersBody/>
        </Shell>
    }
}

#[component]
fn WorkersBody() -> impl IntoView {
    let workers = Paged::<Worker>::new("/api/v1/workers".into());
    let tenants = Paged::<Tenant>::new("/api/v1/tenants".into());
    let name = RwSignal::new(String::new());
    let tenant = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let created = RwSignal::new(None::<CreatedWorker>);
    let register = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body =
            CreateWorker { name: name.get_untracked(), tenant_id: tenant.get_untracked().parse().ok() };
        leptos::task::spawn_local(async move {
            match api::send::<_, CreatedWorker>("POST", "/api/v1/workers", &body).await {
                Ok(w) => {
                    error.set(None);
                    name.set(String::new());
                    created.set(Some(w));
                    workers.reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let revoke = move |id: Uuid| {
        leptos::task::spawn_local(async move {
            match api::send_empty("DELETE", &format!("/api/v1/workers/{id}")).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e)),
            }
            workers.reload();
        });
    };
    let on_table_click = move |ev: leptos::ev::MouseEvent| {
        if let Some(id) = target_with(&ev, "data-revoke")
            .and_then(|b| b.get_attribute("data-revoke"))
            .and_then(|id| id.parse::<Uuid>().ok())
        {
            revoke(id);
        }
    };
    view! {
        <h1>"Workers"</h1>
        <p class="muted">"Workers claim queued builds of their platform and run them; a tenant's private workers run only its builds."</p>
        {move || created.get().map(|w| view! {
            <div class="card secret" role="status" data-testid="new-worker">
                <p><strong>{format!("Worker {} registered. Copy its credential now: it is shown only once.", w.worker.name)}</strong></p>
                <p><code>{w.credential}</code></p>
                <p class="muted">"The worker sends it as " <code>"Authorization: Bearer <credential>"</code> "."</p>
            </div>
        })}
        <form class="card inline" on:submit=register aria-label="Register a worker">
            <label>"Name"
                <input name="worker-name" required maxlength="100" pattern="[A-Za-z0-9._\\-]+"
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                <FieldMessage error=error field="name"/>
            </label>
            <label>"Runs builds of"
                <select name="worker-tenant" on:change=move |ev| tenant.set(event_target_value(&ev))
                    inner_html=move || tenants.items.with(|ts| {
                        let owned: Vec<(String, String)> = ts.iter().filter(|t| t.my_role == Role::Owner)
                            .map(|t| (t.id.to_string(), format!("{} only", t.name))).collect();
                        let shared = std::iter::once(("", "every tenant (shared pool)", false));
                        html::options(shared.chain(owned.iter().map(|(id, label)| (id.as_str(), label.as_str(), false))))
                    })>
                </select>
                <FieldMessage error=error field="tenant_id"/>
            </label>
            <button type="submit">"Register worker"</button>
        </form>
        <ErrorText error=error/>
        // One listener for every "Revoke" button of the table (they are markup, see `html`).
        <div on:click=on_table_click>
            {move || tenants.items.with(|ts| workers.items.with(|ws| raw(workers_table(ws, ts))))}
        </div>
        <PagedFooter paged=workers/>
    }
}

fn workers_table(workers: &[Worker], tenants: &[Tenant]) -> String {
    let rows: Vec<String> = workers
        .iter()
        .map(|w| {
            let tenant = match w.tenant_id {
                None => "shared pool".to_string(),
                Some(id) => tenants
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| id.to_string()),
            };
            let state = if w.revoked {
                text("span", "muted", "revoked")
            } else {
                el(
                    "button",
                    &[
                        ("type", "button"),
                        ("class", "danger"),
                        ("data-revoke", &w.id.to_string()),
                        ("aria-label", &format!("Revoke worker {}", w.name)),
                    ],
                    "Revoke",
                )
            };
            let dash = |v: Option<String>| esc(&v.unwrap_or_else(|| "—".into()));
            row(
                "worker-row",
                &[
                    esc(&w.name),
                    esc(&tenant),
                    dash(w.platform.clone()),
                    dash(w.concurrency.map(|c| c.to_string())),
                    dash(w.version.clone()),
                    esc(&w.last_seen_at.as_ref().map(when).unwrap_or_else(|| "never".into())),
                    esc(&w.running.to_string()),
                    state,
                ],
            )
        })
        .collect();
    html::table(
        "workers",
        &["Name", "Tenant", "Platform", "Concurrency", "Version", "Last seen", "Running", "State"],
        &rows,
    )
}
