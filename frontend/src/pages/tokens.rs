//! API tokens: create (the secret is shown once), list, revoke.

use leptos::prelude::*;
use petrel_wire::identity::{ApiToken, CreateToken, CreatedToken, Role, Tenant};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{ErrorText, FieldMessage, Paged, PagedFooter, Shell, when};

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
                <select name="token-tenant" on:change=move |ev| tenant.set(event_target_value(&ev))>
                    {move || tenants.items.get().into_iter().map(|t| view! { <option value=t.id.to_string()>{t.name}</option> }).collect_view()}
                </select>
                <FieldMessage error=error field="tenant_id"/>
            </label>
            <label>"Role"
                <select name="token-role" on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }>
                    {Role::ALL.into_iter().map(|r| view! { <option value=r.as_str()>{r.as_str()}</option> }).collect_view()}
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
    view! {
        <div class="table-wrap">
            <table>
                <thead><tr><th scope="col">"Name"</th><th scope="col">"Role"</th><th scope="col">"Created"</th><th scope="col">"Expires"</th><th scope="col">"Last used"</th><th scope="col">"State"</th></tr></thead>
                <tbody>
                    {move || tokens.items.get().into_iter().map(|t| {
                        let id = t.id;
                        let revoked = t.revoked_at.is_some();
                        let expired = t.expires_at < chrono::Utc::now();
                        view! {
                            <tr data-testid="token-row">
                                <td>{t.name.clone()}</td>
                                <td>{if t.admin { "admin".to_string() } else { t.role.map(|r| r.as_str().to_string()).unwrap_or_default() }}</td>
                                <td>{when(&t.created_at)}</td>
                                <td>{when(&t.expires_at)}</td>
                                <td>{t.last_used_at.as_ref().map(when).unwrap_or_else(|| "never".into())}</td>
                                <td>{if revoked {
                                        view! { <span class="muted">"revoked"</span> }.into_any()
                                    } else if expired {
                                        view! { <span class="muted">"expired"</span> }.into_any()
                                    } else {
                                        view! { <button class="danger" on:click=move |_| revoke(id)>"Revoke"</button> }.into_any()
                                    }}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <PagedFooter paged=tokens/>
    }
}
