//! User accounts (administrators).

use leptos::prelude::*;
use petrel_wire::identity::{CreateUser, User};

use crate::api::{self, ApiError};
use crate::components::{ErrorText, FieldMessage, Paged, PagedFooter, Shell, raw, when};
use crate::html;

#[component]
pub fn Users() -> impl IntoView {
    view! {
        <Shell>
            <UsersBody/>
        </Shell>
    }
}

#[component]
fn UsersBody() -> impl IntoView {
    let users = Paged::<User>::new("/api/v1/users".into());
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let is_admin = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = CreateUser {
            username: username.get_untracked(),
            password: password.get_untracked(),
            is_admin: is_admin.get_untracked(),
        };
        leptos::task::spawn_local(async move {
            match api::send::<_, User>("POST", "/api/v1/users", &body).await {
                Ok(_) => {
                    error.set(None);
                    username.set(String::new());
                    password.set(String::new());
                    users.reload();
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    view! {
        <h1>"Users"</h1>
        {move || users.items.with(|us| {
            let rows: Vec<String> = us
                .iter()
                .map(|u| {
                    html::row(
                        "user-row",
                        &[html::esc(&u.username), html::esc(if u.is_admin { "yes" } else { "" }), html::esc(&when(&u.created_at))],
                    )
                })
                .collect();
            raw(html::table("", &["Username", "Administrator", "Created"], &rows))
        })}
        <PagedFooter paged=users/>
        <form class="card inline" on:submit=create aria-label="Create a user">
            <label>"Username"
                <input name="new-username" required prop:value=move || username.get()
                    on:input=move |ev| username.set(event_target_value(&ev))/>
                <FieldMessage error=error field="username"/>
            </label>
            <label>"Password"
                <input name="new-password" type="password" autocomplete="new-password" required prop:value=move || password.get()
                    on:input=move |ev| password.set(event_target_value(&ev))/>
                <FieldMessage error=error field="password"/>
            </label>
            <label>"Administrator"
                <input name="new-admin" type="checkbox" prop:checked=move || is_admin.get()
                    on:change=move |ev| is_admin.set(event_target_checked(&ev))/>
            </label>
            <button type="submit">"Create user"</button>
            <ErrorText error=error/>
        </form>
    }
}
