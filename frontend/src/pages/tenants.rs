//! Tenants: the list with a create form, and one tenant's page with its members, sub-tenants,
//! tokens and audit log.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use petrel_wire::identity::{AddMember, ApiToken, CreateTenant, Membership, Role, SetMemberRole, Tenant};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{
    ErrorText, FieldMessage, Paged, PagedFooter, Shell, fetch_then, raw, target_with, when,
};
use crate::html;
use crate::pages::audit::AuditTable;
use crate::session::use_session;

/// `/tenants` (the list) and `/tenants/<id>` (one tenant).
#[component]
pub fn Tenants() -> impl IntoView {
    let params = use_params_map();
    let one = Memo::new(move |_| params.read().get("id").is_some());
    move || if one.get() { view! { <TenantPage/> }.into_any() } else { view! { <TenantList/> }.into_any() }
}

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
    let can_create = Memo::new(move |_| {
        session.is_admin() || tenants.items.with(|ts| ts.iter().any(|t| t.my_role == Role::Owner))
    });
    view! {
        <h1>"Tenants"</h1>
        {move || tenants.items.with(|all| raw(tenant_table(all)))}
        <PagedFooter paged=tenants/>
        {move || can_create.get().then(|| view! {
            <form class="card inline" on:submit=create aria-label="Create a tenant">
                <label>"Name"
                    <input name="tenant-name" required pattern="[a-z0-9][a-z0-9\\-]*" maxlength="63"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev))/>
                    <FieldMessage error=error field="name"/>
                </label>
                <label>"Inside"
                    <select name="parent" on:change=move |ev| parent.set(event_target_value(&ev))
                        inner_html=move || tenants.items.with(|ts| {
                            let ids: Vec<String> = ts.iter().map(|t| t.id.to_string()).collect();
                            let top = session.is_admin().then_some(("", "(top level)", false));
                            let owned = ts.iter().zip(&ids).filter(|(t, _)| t.my_role == Role::Owner);
                            html::options(top.into_iter().chain(owned.map(|(t, id)| (id.as_str(), t.name.as_str(), false))))
                        })>
                    </select>
                </label>
                <button type="submit">"Create tenant"</button>
                <ErrorText error=error/>
            </form>
        })}
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
    // A plain signal rather than a resource: the async-resource machinery is large in wasm.
    let tenant = RwSignal::new(None::<Result<Tenant, ApiError>>);
    Effect::new(move |_| {
        tenant.set(None);
        match id() {
            Some(id) => fetch_then(format!("/api/v1/tenants/{id}"), move |answer| {
                let _ = tenant.try_set(Some(answer.and_then(|text| api::parse::<Tenant>(&text))));
            }),
            None => tenant.set(Some(Err(ApiError {
                status: 404,
                problem: None,
                message: "no such tenant".into(),
            }))),
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
        {move || all.items.with(|ts| {
            let items: String = ts
                .iter()
                .filter(|t| t.parent_id == Some(parent))
                .map(|t| html::el("li", &[], &html::link(&format!("/tenants/{}", t.id), &t.name)))
                .collect();
            let items = if items.is_empty() { html::text("li", "muted", "None") } else { items };
            raw(html::el("ul", &[], &items))
        })}
    }
}

fn role_options(selected: Role) -> String {
    html::options(Role::ALL.into_iter().map(|r| (r.as_str(), r.as_str(), r == selected)))
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
    let on_change = move |ev: leptos::ev::Event| {
        let Some(select) = target_with(&ev, "data-member") else { return };
        let user = select.get_attribute("data-member").and_then(|u| u.parse::<Uuid>().ok());
        if let (Some(user), Some(role)) = (user, Role::parse(&event_target_value(&ev))) {
            change(user, role);
        }
    };
    let on_click = move |ev: leptos::ev::MouseEvent| {
        if let Some(user) = target_with(&ev, "data-remove")
            .and_then(|b| b.get_attribute("data-remove"))
            .and_then(|u| u.parse::<Uuid>().ok())
        {
            remove(user);
        }
    };
    view! {
        <h2>"Members"</h2>
        // One listener each for the role selects and "Remove" buttons (they are markup, see `html`).
        <div on:change=on_change on:click=on_click>
            {move || members.items.with(|ms| raw(member_table(ms, owner)))}
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
                    <select name="member-role" on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }
                        inner_html=role_options(Role::Viewer)>
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

fn tenant_table(all: &[Tenant]) -> String {
    let rows: Vec<String> = all
        .iter()
        .map(|t| {
            let parent = match t.parent_id {
                None => String::new(),
                Some(p) => {
                    all.iter().find(|x| x.id == p).map_or("(not visible)".to_string(), |p| p.name.clone())
                }
            };
            html::row(
                "tenant-row",
                &[
                    html::link(&format!("/tenants/{}", t.id), &t.name),
                    html::esc(&parent),
                    html::text("span", "badge", t.my_role.as_str()),
                    html::esc(&when(&t.created_at)),
                ],
            )
        })
        .collect();
    html::table("", &["Name", "Parent", "Your role", "Created"], &rows)
}

fn member_table(members: &[Membership], owner: bool) -> String {
    let rows: Vec<String> = members
        .iter()
        .map(|m| {
            let user = m.user_id.to_string();
            let role = if owner {
                let options: String = Role::ALL
                    .into_iter()
                    .map(|r| {
                        let selected = if r == m.role { " selected" } else { "" };
                        format!("<option value=\"{0}\"{selected}>{0}</option>", r.as_str())
                    })
                    .collect();
                html::el(
                    "select",
                    &[("aria-label", &format!("Role of {}", m.username)), ("data-member", &user)],
                    &options,
                )
            } else {
                html::text("span", "badge", m.role.as_str())
            };
            let mut cells = vec![html::esc(&m.username), role, html::esc(&when(&m.created_at))];
            if owner {
                cells.push(html::el(
                    "button",
                    &[
                        ("type", "button"),
                        ("class", "danger"),
                        ("data-remove", &user),
                        ("aria-label", &format!("Remove {}", m.username)),
                    ],
                    "Remove",
                ));
            }
            html::row("member-row", &cells)
        })
        .collect();
    let headers: &[&str] =
        if owner { &["User", "Role", "Since", "Actions"] } else { &["User", "Role", "Since"] };
    html::table("", headers, &rows)
}
