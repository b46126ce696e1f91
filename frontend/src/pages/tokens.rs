//! API tokens: create (the secret is shown once), list, revoke.

use leptos::prelude::*;
use petrel_wire::identity::{ApiToken, CreateToken, CreatedToken, Role, Tenant};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{
    ErrorText, FieldMessage, Paged, PagedFooter, Shell, now_seconds, raw, target_with, when,
};
use crate::html;

#[component]
pub fn Tokens() -> impl IntoView {
    view! {
        <Shell>
            <TokensBody/>
        </Shell>
    }
}

#[component]
fn TokensBody() -> impl IntoView {
    let tokens = Paged::<ApiToken>::new("/api/v1/tokens".into());
    let tenants = Paged::<Tenant>::new("/api/v1/tenants".into());
    let name = RwSignal::new(String::new());
    let tenant = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    let days = RwSignal::new("90".to_string());
    let error = RwSignal::new(None::<ApiError>);
    let created = RwSignal::new(None::<CreatedToken>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let chosen = tenant
            .get_untracked()
            .parse::<Uuid>()
            .ok()
            .or_else(|| tenants.items.get_untracked().first().map(|t| t.id));
        let body = CreateToken {
            name: name.get_untracked(),
            tenant_id: chosen,
            role: Some(role.get_untracked()),
            admin: false,
            expires_in_days: days.get_untracked().trim().parse().ok(),
        };
        leptos::task::spawn_local(async move {
            match api::send::<_, CreatedToken>("POST", "/api/v1/tokens", &body).await {
                Ok(token) => {
                    error.set(None);
                    name.set(String::new());
                    created.set(Some(token));
                    tokens.reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let revoke = move |id: Uuid| {
        leptos::task::spawn_local(async move {
            match api::send_empty("DELETE", &format!("/api/v1/tokens/{id}")).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e)),
            }
            tokens.reload();
        });
    };
    view! {
        <h1>"API tokens"</h1>
        <p class="muted">"Tokens let scripts, the CLI and generated clients act for you in one tenant: send "
            <code>"Authorization: Bearer <token>"</code> "."</p>
        {move || created.get().map(|t| view! {
            <div class="card secret" role="status" data-testid="new-token">
                <p><strong>"Copy this token now: it is shown only once."</strong></p>
                <p><code>{t.secret}</code></p>
            </div>
        })}
        <form class="card inline" on:submit=create aria-label="Create a token">
            <label>"Name"
                <input name="token-name" required maxlength="100" prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))/>
                <FieldMessage error=error field="name"/>
            </label>
            <label>"Tenant"
                <select name="token-tenant" on:change=move |ev| tenant.set(event_target_value(&ev))
                    inner_html=move || tenants.items.with(|ts| {
                        let ids: Vec<String> = ts.iter().map(|t| t.id.to_string()).collect();
                        html::options(ts.iter().zip(&ids).map(|(t, id)| (id.as_str(), t.name.as_str(), false)))
                    })>
                </select>
                <FieldMessage error=error field="tenant_id"/>
            </label>
            <label>"Role"
                <select name="token-role" on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }
                    inner_html=html::options(Role::ALL.into_iter().map(|r| (r.as_str(), r.as_str(), false)))>
                </select>
            </label>
            <label>"Expires in (days)"
                <input name="token-days" type="number" min="1" max="366" prop:value=move || days.get()
                    on:input=move |ev| days.set(event_target_value(&ev))/>
                <FieldMessage error=error field="expires_in_days"/>
            </label>
            <button type="submit">"Create token"</button>
        </form>
        <ErrorText error=error/>
        <TokenTable tokens=tokens revoke=revoke/>
    }
}

#[component]
pub fn TokenTable(
    tokens: Paged<ApiToken>,
    revoke: impl Fn(Uuid) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    // One listener for every "Revoke" button (they are markup, see `html`).
    let on_click = move |ev: leptos::ev::MouseEvent| {
        if let Some(id) = target_with(&ev, "data-revoke")
            .and_then(|b| b.get_attribute("data-revoke"))
            .and_then(|id| id.parse::<Uuid>().ok())
        {
            revoke(id);
        }
    };
    view! {
        <div on:click=on_click>{move || tokens.items.with(|ts| raw(token_table(ts)))}</div>
        <PagedFooter paged=tokens/>
    }
}

fn token_table(tokens: &[ApiToken]) -> String {
    let now = now_seconds();
    let rows: Vec<String> = tokens
        .iter()
        .map(|t| {
            let role = if t.admin { "admin" } else { t.role.map(|r| r.as_str()).unwrap_or_default() };
            let state = if t.revoked_at.is_some() {
                html::text("span", "muted", "revoked")
            } else if petrel_wire::time::unix_seconds(&t.expires_at) < now {
                html::text("span", "muted", "expired")
            } else {
                html::el(
                    "button",
                    &[
                        ("type", "button"),
                        ("class", "danger"),
                        ("data-revoke", &t.id.to_string()),
                        ("aria-label", &format!("Revoke {}", t.name)),
                    ],
                    "Revoke",
                )
            };
            html::row(
                "token-row",
                &[
                    html::esc(&t.name),
                    html::esc(role),
                    html::esc(&when(&t.created_at)),
                    html::esc(&when(&t.expires_at)),
                    html::esc(&t.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".into())),
                    state,
                ],
            )
        })
        .collect();
    html::table("", &["Name", "Role", "Created", "Expires", "Last used", "State"], &rows)
}
