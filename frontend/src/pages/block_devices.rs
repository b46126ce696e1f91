//! Block devices: a tenant's list (size, agent, the deployment it backs, a pending upload, the
//! agent's last message), creating one (its size counts against the quota's block storage),
//! deleting one, and its contents: downloaded with a link, uploaded from a file with its
//! SHA-256 (computed here with `crypto.subtle`).

use leptos::prelude::*;
use leptos::wasm_bindgen::{JsCast, JsValue};
use leptos_router::hooks::use_query_map;
use petrel_wire::deployments::{BlockDevice, CreateBlockDevice};
use petrel_wire::identity::{Role, Tenant};
use uuid::Uuid;
use wasm_bindgen_futures::JsFuture;

use super::deploy_new::problem_html;
use crate::api;
use crate::components::{Paged, PagedFooter, Shell, raw, short_id, target_with};
use crate::forms::{self, Values, by_id};
use crate::html::{self, el, esc, link, row};

#[component]
pub fn BlockDevices() -> impl IntoView {
    view! {
        <Shell>
            <BlockDevicesBody/>
        </Shell>
    }
}

#[component]
fn BlockDevicesBody() -> impl IntoView {
    let query = use_query_map();
    let tenants = Paged::<Tenant>::new("/api/v1/tenants".into());
    let chosen = RwSignal::new(None::<Uuid>);
    let tenant = Memo::new(move |_| {
        let wanted = chosen.get().or_else(|| query.read().get("tenant").and_then(|t| t.parse().ok()));
        tenants.items.with(|ts| ts.iter().find(|t| Some(t.id) == wanted).or_else(|| ts.first()).map(|t| t.id))
    });
    // Bumped after a change: the list is fetched again.
    let version = RwSignal::new(0u32);
    let reload = move || version.update(|v| *v += 1);
    let say = |id: &str, markup: &str| {
        if let Some(e) = by_id(id) {
            e.set_inner_html(markup);
        }
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some((form, v)) = Values::of(&ev) else { return };
        let Some(tenant) = tenant.get_untracked() else { return };
        let body = CreateBlockDevice {
            name: v.get("name"),
            size_mib: v.number("size_mib", 0).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            agent_id: None,
        };
        leptos::task::spawn_local(async move {
            let answer = api::send::<_, BlockDevice>(
                "POST",
                &format!("/api/v1/tenants/{tenant}/block-devices"),
                &body,
            )
            .await;
            let others = forms::show_errors(&form, answer.as_ref().err());
            say(
                "block-create-problem",
                &answer.as_ref().err().map(|e| problem_html(e, &others, Some(tenant))).unwrap_or_default(),
            );
            if answer.is_ok() {
                form.reset();
                reload();
            }
        });
    };
    let on_click = move |ev: leptos::ev::MouseEvent| {
        let Some(button) = target_with(&ev, "data-delete") else { return };
        let id = button.get_attribute("data-delete").unwrap_or_default();
        leptos::task::spawn_local(async move {
            match api::send_empty("DELETE", &format!("/api/v1/block-devices/{id}")).await {
                Ok(()) => {
                    say("block-problem", "");
                    reload();
                }
                Err(e) => say("block-problem", &html::text("p", "", &e.message)),
            }
        });
    };
    let on_change = move |ev: leptos::ev::Event| {
        if target_with(&ev, "data-tenant-select").is_some() {
            chosen.set(event_target_value(&ev).parse().ok());
        } else if let Some(input) = target_with(&ev, "data-upload") {
            let id = input.get_attribute("data-upload").unwrap_or_default();
            let Some(file) = input
                .dyn_into::<web_sys::HtmlInputElement>()
                .ok()
                .and_then(|i| i.files())
                .and_then(|f| f.get(0))
            else {
                return;
            };
            say("block-status", &esc(&format!("Uploading {}…", file.name())));
            leptos::task::spawn_local(async move {
                let sent = match read_and_hash(&file).await {
                    Ok((bytes, sha256)) => {
                        api::upload(&format!("/api/v1/block-devices/{id}/content"), &sha256, bytes).await
                    }
                    Err(_) => Err(api::ApiError {
                        status: 0,
                        problem: None,
                        message: "the file could not be read".into(),
                    }),
                };
                match sent {
                    Ok(()) => {
                        say("block-status", "Uploaded: its agent writes it into the device.");
                        say("block-problem", "");
                        reload();
                    }
                    Err(e) => {
                        say("block-status", "");
                        say("block-problem", &html::text("p", "", &e.message));
                    }
                }
            });
        }
    };
    view! {
        <div on:click=on_click on:change=on_change on:submit=on_submit>
            {raw(intro_html())}
            <label class="inline-label">"Tenant "
                <select name="block-tenant" data-tenant-select=""
                    inner_html=move || tenants.items.with(|ts| {
                        let current = tenant.get();
                        let items: Vec<(String, &str, bool)> =
                            ts.iter().map(|t| (t.id.to_string(), t.name.as_str(), Some(t.id) == current)).collect();
                        html::options(items.iter().map(|(id, name, on)| (id.as_str(), *name, *on)))
                    })>
                </select>
            </label>
            {move || {
                version.track();
                let t = tenant.get()?;
                let operator = tenants.items.with(|ts| ts.iter().any(|x| x.id == t && x.my_role != Role::Viewer));
                Some(view! { <DeviceTable tenant=t operator=operator/> })
            }}
            {raw(create_html())}
        </div>
    }
}

#[component]
fn DeviceTable(tenant: Uuid, operator: bool) -> impl IntoView {
    let devices = Paged::<BlockDevice>::new(format!("/api/v1/tenants/{tenant}/block-devices"));
    view! {
        {move || devices.items.with(|ds| raw(devices_table(ds, operator)))}
        <PagedFooter paged=devices/>
    }
}

/// The file's bytes and their SHA-256 (hex).
async fn read_and_hash(file: &web_sys::File) -> Result<(js_sys::ArrayBuffer, String), JsValue> {
    let bytes: js_sys::ArrayBuffer = JsFuture::from(file.array_buffer()).await?.dyn_into()?;
    let subtle = web_sys::window().ok_or(JsValue::NULL)?.crypto()?.subtle();
    let digest = JsFuture::from(subtle.digest_with_str_and_buffer_source("SHA-256", &bytes)?).await?;
    let hex = js_sys::Uint8Array::new(&digest).to_vec().iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, hex))
}

fn intro_html() -> String {
    format!(
        "{}{}{}{}",
        el("h1", &[], "Block devices"),
        html::text(
            "p",
            "muted",
            "Disks for unikernels (albatross' block devices): each lives on one agent, its size counts against the tenant's block storage quota, and a deployment that uses one runs on its agent."
        ),
        el(
            "div",
            &[("class", "error"), ("id", "block-problem"), ("role", "alert"), ("data-testid", "block-error")],
            ""
        ),
        el("p", &[("class", "muted"), ("id", "block-status"), ("role", "status")], ""),
    )
}

fn create_html() -> String {
    format!(
        "{}{}",
        el("h2", &[], "New block device"),
        el(
            "form",
            &[("class", "card"), ("aria-label", "Create a block device"), ("novalidate", "")],
            &format!(
                "{}{}{}{}",
                forms::field(
                    "Name",
                    "name",
                    &[("autocomplete", "off"), ("maxlength", "63")],
                    "a-z, 0-9 and -; unique in the tenant."
                ),
                forms::field(
                    "Size (MiB)",
                    "size_mib",
                    &[("type", "number"), ("min", "1"), ("inputmode", "numeric")],
                    "Zeroed; Petrel picks the agent with the most free block storage."
                ),
                el("div", &[("id", "block-create-problem")], ""),
                el("div", &[("class", "actions")], &el("button", &[("type", "submit")], "Create")),
            ),
        )
    )
}

fn devices_table(devices: &[BlockDevice], operator: bool) -> String {
    let rows: Vec<String> = devices
        .iter()
        .map(|d| {
            let id = d.id.to_string();
            let attached = match d.attached_to {
                Some(dep) => link(&format!("/deployments/{dep}"), &short_id(&dep)),
                None => "—".into(),
            };
            let pending = if d.upload_pending {
                el("span", &[("class", "badge"), ("data-testid", "upload-pending")], "upload pending")
            } else {
                "—".into()
            };
            let download = el(
                "a",
                &[("href", &format!("/api/v1/block-devices/{id}/content")), ("download", &d.name)],
                "Download",
            );
            let actions = if operator {
                let label = format!("Upload contents of {}", d.name);
                format!(
                    "{download} {}{}",
                    el("input", &[("type", "file"), ("data-upload", &id), ("aria-label", &label)], ""),
                    el(
                        "button",
                        &[
                            ("type", "button"),
                            ("class", "danger"),
                            ("data-delete", &id),
                            ("aria-label", &format!("Delete {}", d.name))
                        ],
                        "Delete"
                    ),
                )
            } else {
                download
            };
            row(
                "block-device-row",
                &[
                    el("span", &[("data-testid", "block-name")], &esc(&d.name)),
                    esc(&format!("{} MiB", d.size_mib)),
                    esc(&d.agent_id.map(|a| short_id(&a)).unwrap_or_else(|| "gone".into())),
                    attached,
                    pending,
                    esc(d.message.as_deref().unwrap_or("")),
                    actions,
                ],
            )
        })
        .collect();
    html::table("block-devices", &["Name", "Size", "Agent", "Used by", "Upload", "Message", ""], &rows)
}
