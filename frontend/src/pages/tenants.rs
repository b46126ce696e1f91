//! Tenants: the list with a create form, and one tenant's page with its members, sub-tenants,
//! tokens and audit log.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use petrel_wire::identity::{AddMember, ApiToken, CreateTenant, Membership, Role, SetMemberRole, Tenant};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{ErrorText, FieldMessage, Paged, PagedFooter, Shell, when};
use crate::pages::audit::AuditTable;
use crate::session::use_session;

#[component]
pub fn TenantList() -> impl IntoView {
    view! {
        <Shell>
            <TenantListBody/>
        </Shell>
    }
}

#[component]
fn TenantListBody() -> impl IntoView {
    let session = use_session();
    let tenants = Paged::<Tenant>::new("/api/v1/tenants".into());
    let name = RwSignal::new(String::new());
    let parent = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body =
            CreateTenant { name: name.get_untracked(), parent_id: parent.get_untracked().parse().ok() };
        leptos::task::spawn_local(async move {
            match api::send::<_, Tenant>("POST", "/api/v1/tenants", &body).await {
                Ok(_) => {
                    error.set(None);
                    name.set(String::new());
                    tenants.reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let can_create =
        move || session.is_admin() || tenants.items.with(|ts| ts.iter().any(|t| t.my_role == Role::Owner));
    view! {
        <h1>"Tenants"</h1>
        <div class="table-wrap">
            <table>
                <thead><tr><th scope="col">"Name"</th><th scope="col">"Parent"</th><th scope="col">"Your role"</th><th scope="col">"Created"</th></tr></thead>
                <tbody>
                    {move || {
                        let all = tenants.items.get();
                        all.iter().map(|t| {
                            let parent_name = t.parent_id.and_then(|p| all.iter().find(|x| x.id == p)).map(|p| p.name.clone())
                                .or_else(|| t.parent_id.map(|_| "(not visible)".to_string())).unwrap_or_default();
                            view! {
                                <tr data-testid="tenant-row">
                                    <td><a href=format!("/tenants/{}", t.id)>{t.name.clone()}</a></td>
                                    <td>{parent_name}</td>
                                    <td><span class="badge">{t.my_role.as_str()}</span></td>
                                    <td>{when(&t.created_at)}</td>
                                </tr>
                            }
                        }).collect_view()
                    }}
                </tbody>
            </table>
        </div>
        <PagedFooter paged=tenants/>
        <Show when=can_create>
            <form class="card inline" on:submit=create aria-label="Create a tenant">
                <label>"Name"
                    <input name="tenant-name" required pattern="[a-z0-9][a-z0-9-]*" maxlength="63"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                    <FieldMessage error=error field="name"/>
                </label>
                <label>"Inside"
                    <select name="parent" on:change=move |ev| parent.set(event_target_value(&ev))>
                        <Show when=move || session.is_admin()>
                            <option value="">"(top level)"</option>
                        </Show>
                        {move || tenants.items.get().into_iter().filter(|t| t.my_role == Role::Owner).map(|t| {
                            view! { <option value=t.id.to_string()>{t.name}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit">"Create tenant"</button>
                <ErrorText error=error/>
            </form>
        </Show>
    }
}

#[component]
pub fn TenantPage() -> impl IntoView {
    view! {
        <Shell>
            <TenantPageBody/>
        </Shell>
    }
}

#[component]
fn TenantPageBody() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<Uuid>().ok());
    let tenant = LocalResource::new(move || async move {
        match id() {
            Some(id) => api::get::<Tenant>(&format!("/api/v1/tenants/{id}")).await,
            None => Err(ApiError { status: 404, problem: None, message: "no such tenant".into() }),
        }
    });
    view! {
        {move || match tenant.get() {
            None => view! { <p class="muted" role="status">"Loading…"</p> }.into_any(),
            Some(Err(e)) => view! { <h1>"Tenant"</h1><p class="error" role="alert">{e.message}</p> }.into_any(),
            Some(Ok(t)) => view! { <TenantDetails tenant=t/> }.into_any(),
        }}
    }
}

#[component]
fn TenantDetails(tenant: Tenant) -> impl IntoView {
    let owner = tenant.my_role == Role::Owner;
    let id = tenant.id;
    view! {
        <h1>{tenant.name.clone()}</h1>
        <p class="muted">"Your role: " <span class="badge">{tenant.my_role.as_str()}</span> " · created " {when(&tenant.created_at)}</p>
        <SubTenants parent=id/>
        <Members tenant=id owner=owner/>
        {owner.then(|| view! {
            <TenantTokens tenant=id/>
            <h2>"Audit log"</h2>
            <AuditTable path=format!("/api/v1/tenants/{id}/audit")/>
        })}
    }
}

#[component]
fn SubTenants(parent: Uuid) -> impl IntoView {
    let all = Paged::<Tenant>::new("/api/v1/tenants".into());
    view! {
        <h2>"Sub-tenants"</h2>
        <ul>
            {move || {
                let children: Vec<Tenant> = all.items.get().into_iter().filter(|t| t.parent_id == Some(parent)).collect();
                if children.is_empty() {
                    view! { <li class="muted">"None"</li> }.into_any()
                } else {
                    children.into_iter().map(|t| view! { <li><a href=format!("/tenants/{}", t.id)>{t.name}</a></li> }).collect_view().into_any()
                }
            }}
        </ul>
    }
}

fn role_options(selected: Role) -> impl IntoView {
    Role::ALL
        .into_iter()
        .map(move |r| view! { <option value=r.as_str() selected=r == selected>{r.as_str()}</option> })
        .collect_view()
}

#[component]
fn Members(tenant: Uuid, owner: bool) -> impl IntoView {
    let members = Paged::<Membership>::new(format!("/api/v1/tenants/{tenant}/members"));
    let username = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    let error = RwSignal::new(None::<ApiError>);
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = AddMember { username: username.get_untracked(), role: role.get_untracked() };
        leptos::task::spawn_local(async move {
            match api::send::<_, Membership>("POST", &format!("/api/v1/tenants/{tenant}/members"), &body)
                .await
            {
                Ok(_) => {
                    error.set(None);
                    username.set(String::new());
                    members.reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    let change = move |user: Uuid, new_role: Role| {
        leptos::task::spawn_local(async move {
            let body = SetMemberRole { role: new_role };
            match api::send::<_, Membership>(
                "PUT",
                &format!("/api/v1/tenants/{tenant}/members/{user}"),
                &body,
            )
            .await
            {
                Ok(_) => error.set(None),
                Err(e) => error.set(Some(e)),
            }
            members.reload();
        });
    };
    let remove = move |user: Uuid| {
        leptos::task::spawn_local(async move {
            match api::send_empty("DELETE", &format!("/api/v1/tenants/{tenant}/members/{user}")).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e)),
            }
            members.reload();
        });
    };
    view! {
        <h2>"Members"</h2>
        <div class="table-wrap">
            <table>
                <thead><tr><th scope="col">"User"</th><th scope="col">"Role"</th><th scope="col">"Since"</th>{owner.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}</tr></thead>
                <tbody>
                    {move || members.items.get().into_iter().map(|m| {
                        let user = m.user_id;
                        view! {
                            <tr data-testid="member-row">
                                <td>{m.username.clone()}</td>
                                <td>
                                    {if owner {
                                        view! {
                                            <select aria-label=format!("Role of {}", m.username)
                                                on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { change(user, r) }>
                                                {role_options(m.role)}
                                            </select>
                                        }.into_any()
                                    } else {
                                        view! { <span class="badge">{m.role.as_str()}</span> }.into_any()
                                    }}
                                </td>
                                <td>{when(&m.created_at)}</td>
                                {owner.then(|| view! { <td><button class="danger" on:click=move |_| remove(user)>"Remove"</button></td> })}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <PagedFooter paged=members/>
        <ErrorText error=error/>
        {owner.then(|| view! {
            <form class="card inline" on:submit=add aria-label="Add a member">
                <label>"Username"
                    <input name="member-username" required prop:value=move || username.get()
                        on:input=move |ev| username.set(event_target_value(&ev))/>
                    <FieldMessage error=error field="username"/>
                </label>
                <label>"Role"
                    <select name="member-role" on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }>
                        {role_options(Role::Viewer)}
                    </select>
                </label>
                <button type="submit">"Add member"</button>
            </form>
        })}
    }
}

#[component]
fn TenantTokens(tenant: Uuid) -> impl IntoView {
    let tokens = Paged::<ApiToken>::new(format!("/api/v1/tenants/{tenant}/tokens"));
    let error = RwSignal::new(None::<ApiError>);
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
        <h2>"API tokens acting in this tenant"</h2>
        <crate::pages::tokens::TokenTable tokens=tokens revoke=revoke/>
        <ErrorText error=error/>
    }
}
