//! A new deployment: from a build's main binary (or an image by SHA-256), with memory, CPUs,
//! arguments, network devices onto the tenant's allowed bridges, restart policy, startup
//! priority and, for administrators, a pinned agent. The API's messages go next to their
//! fields; a refusal by the quota says so, with the tenant's quota page a link away.
//!
//! Once an image is chosen (a build picked, or a whole SHA-256 typed), the form asks the API for
//! the devices its solo5 manifest declares and draws one network row per net device (with a
//! select of the bridges the tenant's quota allows) and one block row per block device (with a
//! select of the tenant's block devices): the deployment must attach exactly those. An image
//! without a manifest (not a solo5 unikernel) keeps rows added by hand.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use petrel_wire::builds::Build;
use petrel_wire::deployments::{
    Agent, BlockAttachment, BlockDevice, CreateDeployment, Deployment, ImageManifest, NetAttachment,
    QuotaUsage, RestartPolicy,
};
use petrel_wire::identity::{Role, Tenant};
use petrel_wire::{FieldError, Problem};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{Paged, Shell, fetch_then, raw, short_hash, target_with, when};
use crate::forms::{self, Values, by_id};
use crate::html::{self, el, esc};
use crate::session::use_session;

#[component]
pub fn DeploymentCreate() -> impl IntoView {
    view! {
        <Shell>
            <CreateBody/>
        </Shell>
    }
}

#[component]
fn CreateBody() -> impl IntoView {
    let session = use_session();
    let admin = session.is_admin();
    let navigate = use_navigate();
    let query = use_query_map();
    let tenants = Paged::<Tenant>::new("/api/v1/tenants".into());
    let chosen = RwSignal::new(None::<Uuid>);
    // Tenants where the caller may deploy (operators and owners).
    let tenant = Memo::new(move |_| {
        let wanted = chosen.get().or_else(|| query.read().get("tenant").and_then(|t| t.parse().ok()));
        tenants.items.with(|ts| {
            let deployable = || ts.iter().filter(|t| t.my_role != Role::Viewer);
            deployable().find(|t| Some(t.id) == wanted).or_else(|| deployable().next()).map(|t| t.id)
        })
    });
    // The tenant's allowed bridges (from its quota), recent builds with a main binary, and (for
    // administrators) the agents to pin to.
    let bridges = RwSignal::new(Vec::<String>::new());
    // The tenant's block devices, by name.
    let blocks = RwSignal::new(Vec::<String>::new());
    Effect::new(move |_| {
        let Some(id) = tenant.get() else { return };
        fetch_then(format!("/api/v1/tenants/{id}/quota"), move |answer| {
            let allowed = answer
                .and_then(|text| api::parse::<QuotaUsage>(&text))
                .ok()
                .and_then(|u| u.quota)
                .map(|q| q.bridges)
                .unwrap_or_default();
            let _ = bridges.try_set(allowed);
        });
        fetch_then(format!("/api/v1/tenants/{id}/block-devices?limit=200"), move |answer| {
            let names = answer
                .and_then(|text| api::parse_page::<BlockDevice>(&text))
                .map(|page| page.items.into_iter().map(|d| d.name).collect())
                .unwrap_or_default();
            let _ = blocks.try_set(names);
        });
    });
    let builds = RwSignal::new(Vec::<Build>::new());
    let agents = RwSignal::new(Vec::<Agent>::new());
    leptos::task::spawn_local(async move {
        if let Ok(page) = api::get_page::<Build>("/api/v1/builds?status=succeeded&limit=100").await {
            let _ = builds.try_set(page.items.into_iter().filter(|b| b.main_binary.is_some()).collect());
        }
        if admin && let Ok(page) = api::get_page::<Agent>("/api/v1/agents?limit=200").await {
            let _ = agents.try_set(page.items.into_iter().filter(|a| !a.revoked).collect());
        }
    });
    // The page is markup (see `forms`): this fills its lists as their data arrives.
    Effect::new(move |_| {
        let current = tenant.get();
        let set = |id: &str, markup: &str| {
            if let Some(e) = by_id(id) {
                e.set_inner_html(markup);
            }
        };
        set("deploy-tenant", &tenants.items.with(|ts| tenant_options(ts, current)));
        set("f-build", &builds.with(|bs| build_options(bs, current)));
        bridges.with(|bs| {
            set(
                "bridges-allowed",
                &esc(&if bs.is_empty() {
                    "The tenant's quota allows no bridges: deployments without network devices only."
                        .to_string()
                } else {
                    format!("Bridges the tenant's quota allows: {}.", bs.join(", "))
                }),
            );
        });
        if admin {
            set("f-agent_id", &agents.with(|list| agent_options(list)));
        }
        let none = !tenants.loading.get() && current.is_none();
        set(
            "deploy-no-tenant",
            if none {
                "You may deploy in no tenant: deploying takes the operator or owner role."
            } else {
                ""
            },
        );
    });
    // Apart from the other lists: drawing these again resets the rows' choices.
    Effect::new(move |_| {
        bridges.with(|bs| {
            if let Some(rows) = by_id("net-rows") {
                for select in forms::all(&rows, "select[name=net-bridge]") {
                    select.set_inner_html(&bridge_options(bs));
                }
            }
        });
        blocks.with(|bs| {
            let options = block_options(bs);
            if let Some(rows) = by_id("block-rows") {
                for select in forms::all(&rows, "select[name=block-name]") {
                    select.set_inner_html(&options);
                }
            }
            if let Some(e) = by_id("blocks-available") {
                e.set_text_content(Some(&if bs.is_empty() {
                    "The tenant has no block devices (create them on the block devices page).".to_string()
                } else {
                    format!("The tenant's block devices: {}.", bs.join(", "))
                }));
            }
        });
    });

    let busy = StoredValue::new(false);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some((form, v)) = Values::of(&ev) else { return };
        let Some(tenant) = tenant.get_untracked() else { return };
        if busy.get_value() {
            return;
        }
        let show = move |form: &web_sys::Element, e: Option<&ApiError>| {
            let others = forms::show_errors(form, e);
            if let Some(box_) = by_id("deploy-problem") {
                box_.set_inner_html(&e.map(|e| problem_html(e, &others, Some(tenant))).unwrap_or_default());
            }
        };
        let body = match request(&v) {
            Ok(body) => body,
            Err(e) => return show(&form, Some(&e)),
        };
        busy.set_value(true);
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            let answer =
                api::send::<_, Deployment>("POST", &format!("/api/v1/tenants/{tenant}/deployments"), &body)
                    .await;
            busy.set_value(false);
            show(&form, answer.as_ref().err());
            if let Ok(d) = answer {
                navigate(&format!("/deployments/{}", d.id), Default::default());
            }
        });
    };
    let on_click = move |ev: leptos::ev::MouseEvent| {
        let Some(button) = target_with(&ev, "data-action") else { return };
        match button.get_attribute("data-action").as_deref() {
            Some("add-net") => {
                if let Some(rows) = by_id("net-rows") {
                    let n = forms::all(&rows, "[data-row]").len();
                    let options = bridges.with_untracked(|bs| bridge_options(bs));
                    let _ = rows.insert_adjacent_html("beforeend", &net_row(n, "", &options));
                }
            }
            Some("add-block") => {
                if let Some(rows) = by_id("block-rows") {
                    let n = forms::all(&rows, "[data-row]").len();
                    let options = blocks.with_untracked(|bs| block_options(bs));
                    let _ = rows.insert_adjacent_html("beforeend", &block_row(n, "", &options));
                }
            }
            Some("remove-net") => {
                if let Some(row) = button.closest("[data-row]").ok().flatten() {
                    row.remove();
                }
            }
            _ => {}
        }
    };
    // The image whose manifest was asked for last: older answers are dropped.
    let wanted = StoredValue::new(String::new());
    let manifest = move |sha: String| {
        if let Some(tenant) = tenant.get_untracked() {
            load_manifest(tenant, sha, wanted, bridges, blocks);
        }
    };
    let on_change = move |ev: leptos::ev::Event| {
        if target_with(&ev, "data-build-select").is_some() {
            // Picking a build fills in its main binary's SHA-256, and its devices.
            let sha = event_target_value(&ev);
            forms::set_value("f-image_sha256", &sha);
            if !sha.is_empty() {
                manifest(sha);
            }
        } else if target_with(&ev, "data-tenant-select").is_some() {
            chosen.set(event_target_value(&ev).parse().ok());
            // Whether the tenant may deploy the image, and so its devices, depend on the tenant.
            let sha = wanted.get_value();
            if !sha.is_empty() {
                manifest(sha);
            }
        }
    };
    // A typed SHA-256, once whole.
    let on_input = move |ev: leptos::ev::Event| {
        if target_with(&ev, "data-image-input").is_some() {
            let sha = event_target_value(&ev).trim().to_ascii_lowercase();
            if sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) && sha != wanted.get_value() {
                manifest(sha);
            }
        }
    };
    view! {
        <div on:click=on_click on:change=on_change on:input=on_input on:submit=on_submit>
            {raw(page_html(admin))}
        </div>
    }
}

/// Asks for the image's manifest and draws one row per device it declares (see the module
/// comment); otherwise says why not and leaves the rows as they are.
fn load_manifest(
    tenant: Uuid,
    sha: String,
    wanted: StoredValue<String>,
    bridges: RwSignal<Vec<String>>,
    blocks: RwSignal<Vec<String>>,
) {
    wanted.set_value(sha.clone());
    fetch_then(format!("/api/v1/tenants/{tenant}/images/{sha}/manifest"), move |answer| {
        if wanted.try_get_value().as_ref() != Some(&sha) {
            return;
        }
        let note = match answer.and_then(|text| api::parse::<ImageManifest>(&text)) {
            Ok(m) => {
                let options = bridges.with_untracked(|bs| bridge_options(bs));
                let nets: String = m.nets.iter().enumerate().map(|(n, d)| net_row(n, d, &options)).collect();
                let options = blocks.with_untracked(|bs| block_options(bs));
                let rows: String =
                    m.blocks.iter().enumerate().map(|(n, d)| block_row(n, d, &options)).collect();
                for (id, markup) in [("net-rows", nets), ("block-rows", rows)] {
                    if let Some(e) = by_id(id) {
                        e.set_inner_html(&markup);
                    }
                }
                let list =
                    |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
                format!(
                    "The image's manifest declares network devices: {}; block devices: {}.",
                    list(&m.nets),
                    list(&m.blocks)
                )
            }
            Err(e) => {
                format!("No manifest ({}): add its devices by hand.", e.field("sha256").unwrap_or(e.message))
            }
        };
        if let Some(e) = by_id("manifest-note") {
            e.set_text_content(Some(&note));
        }
    });
}

fn tenant_options(tenants: &[Tenant], current: Option<Uuid>) -> String {
    let items: Vec<(String, &str, bool)> = tenants
        .iter()
        .filter(|t| t.my_role != Role::Viewer)
        .map(|t| (t.id.to_string(), t.name.as_str(), Some(t.id) == current))
        .collect();
    html::options(items.iter().map(|(id, name, on)| (id.as_str(), *name, *on)))
}

fn agent_options(agents: &[Agent]) -> String {
    let items: Vec<(String, String)> = agents
        .iter()
        .map(|a| (a.id.to_string(), format!("{}{}", a.name, if a.reachable { "" } else { " (unreachable)" })))
        .collect();
    let any = std::iter::once(("", "any agent with room (Petrel picks)", true));
    html::options(any.chain(items.iter().map(|(id, label)| (id.as_str(), label.as_str(), false))))
}

fn page_html(admin: bool) -> String {
    let tenant = el(
        "label",
        &[("class", "inline-label")],
        &format!(
            "Tenant {}",
            el(
                "select",
                &[("id", "deploy-tenant"), ("name", "deploy-tenant"), ("data-tenant-select", "")],
                ""
            )
        ),
    );
    let form = el(
        "form",
        &[("class", "card deploy-form"), ("aria-label", "Create a deployment"), ("novalidate", "")],
        &format!(
            "{}{}{}",
            form_fields(admin),
            el("div", &[("id", "deploy-problem"), ("class", "problem")], ""),
            el("div", &[("class", "actions")], &el("button", &[("type", "submit")], "Deploy")),
        ),
    );
    format!(
        "{}{}{tenant}{}{form}",
        el("h1", &[], "New deployment"),
        el("p", &[("class", "muted")], &html::link("/deployments", "← Deployments")),
        el("p", &[("class", "error"), ("id", "deploy-no-tenant"), ("role", "alert")], ""),
    )
}

/// The request the form describes, or a message for a field the browser could not read.
fn request(v: &Values) -> Result<CreateDeployment, ApiError> {
    let agent = v.get("agent_id");
    let agent_id = match agent.as_str() {
        "" => None,
        s => Some(s.parse::<Uuid>().map_err(|_| local_error("agent_id", "must be an agent's id"))?),
    };
    let devices = v.all("net-device");
    let bridges = v.all("net-bridge");
    let macs = v.all("net-mac");
    let nets = devices
        .into_iter()
        .zip(bridges)
        .zip(macs)
        .map(|((device, bridge), mac)| NetAttachment {
            device,
            bridge,
            mac: (!mac.is_empty()).then_some(mac),
        })
        .collect();
    let blocks = v
        .all("block-device")
        .into_iter()
        .zip(v.all("block-name"))
        .zip(v.all("block-sector"))
        .map(|((device, block_device), sector)| BlockAttachment {
            device,
            block_device,
            // One that is not a number becomes -1, which the API refuses with its message.
            sector_size: (!sector.is_empty()).then(|| sector.parse().unwrap_or(-1)),
        })
        .collect();
    let restart = match v.get("restart").as_str() {
        "on-failure" => {
            let codes = v.list("exit_codes");
            RestartPolicy::OnFailure { exit_codes: (!codes.is_empty()).then(|| forms::numbers(&codes)) }
        }
        _ => RestartPolicy::Never,
    };
    let priority = v.get("startup_priority");
    Ok(CreateDeployment {
        name: v.get("name"),
        image_sha256: v.get("image_sha256").to_ascii_lowercase(),
        memory_mib: v.number("memory_mib", 0).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        cpus: forms::numbers(&v.list("cpus")),
        args: v.get("args").lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect(),
        nets,
        blocks,
        restart,
        startup_priority: match priority.as_str() {
            "" => None,
            p => Some(p.parse().map_err(|_| local_error("startup_priority", "must be a whole number"))?),
        },
        agent_id,
    })
}

/// A message for one field, found before asking the API.
fn local_error(field: &str, message: &str) -> ApiError {
    ApiError {
        status: 400,
        problem: Some(Problem {
            type_uri: String::new(),
            title: String::new(),
            status: 400,
            code: "validation-failed".into(),
            detail: "the request has invalid fields".into(),
            errors: vec![FieldError::new(field, message)],
        }),
        message: "the request has invalid fields".into(),
    }
}

fn build_options(builds: &[Build], tenant: Option<Uuid>) -> String {
    // The tenant's own builds first, then others it may read (public ones).
    let mut ordered: Vec<&Build> = builds.iter().filter(|b| Some(b.tenant_id) == tenant).collect();
    ordered.extend(builds.iter().filter(|b| Some(b.tenant_id) != tenant));
    let items: Vec<(String, String)> = ordered
        .iter()
        .filter_map(|b| {
            let bin = b.main_binary.as_ref()?;
            let finished = b.finished_at.as_ref().map(when).unwrap_or_default();
            let label =
                format!("{} · {} · {} · {}", b.job_name, b.platform, short_hash(&bin.sha256), finished);
            Some((bin.sha256.clone(), label))
        })
        .collect();
    let none = std::iter::once(("", "(enter an image's SHA-256 below)", true));
    html::options(none.chain(items.iter().map(|(sha, label)| (sha.as_str(), label.as_str(), false))))
}

fn form_fields(admin: bool) -> String {
    let number = |min: &'static str| vec![("type", "number"), ("min", min), ("inputmode", "numeric")];
    let mut memory = number("1");
    memory.push(("value", "32"));
    let mut priority = number("0");
    priority.push(("placeholder", "50"));
    let agent = if admin {
        forms::field("Pinned agent", "agent_id", &[("data-kind", "select")], "Optional: run it on this host.")
    } else {
        forms::field(
            "Pinned agent (id)",
            "agent_id",
            &[("autocomplete", "off")],
            "Optional: an agent's id; otherwise Petrel picks a host with room and the bridges.",
        )
    };
    let restart = el(
        "div",
        &[("class", "field")],
        &format!(
            "{}{}{}",
            el("label", &[("for", "f-restart")], "Restart policy"),
            el(
                "select",
                &[("id", "f-restart"), ("name", "restart"), ("aria-describedby", "f-restart-error")],
                &html::options([
                    ("never", "never", true),
                    ("on-failure", "on failure (as albatross: not after exit 1, 60–64 or a signal)", false)
                ]),
            ),
            forms::error_span("f-restart-error", "restart"),
        ),
    );
    let nets = el(
        "fieldset",
        &[("class", "nets")],
        &format!(
            "{}{}{}{}{}",
            el("legend", &[], "Network devices"),
            el("p", &[("class", "muted"), ("id", "bridges-allowed")], ""),
            forms::error_span("f-nets-error", "nets"),
            el("div", &[("id", "net-rows")], ""),
            el(
                "button",
                &[("type", "button"), ("class", "secondary"), ("data-action", "add-net")],
                "Add network device"
            ),
        ),
    );
    let blocks = el(
        "fieldset",
        &[("class", "nets")],
        &format!(
            "{}{}{}{}{}",
            el("legend", &[], "Block devices"),
            el("p", &[("class", "muted"), ("id", "blocks-available")], ""),
            forms::error_span("f-blocks-error", "blocks"),
            el("div", &[("id", "block-rows")], ""),
            el(
                "button",
                &[("type", "button"), ("class", "secondary"), ("data-action", "add-block")],
                "Add block device"
            ),
        ),
    );
    [
        forms::field(
            "Build",
            "build",
            &[("data-kind", "select"), ("data-build-select", "")],
            "A successful build's main binary.",
        ),
        forms::field(
            "Image (SHA-256)",
            "image_sha256",
            &[
                ("class", "mono"),
                ("autocomplete", "off"),
                ("spellcheck", "false"),
                ("size", "64"),
                ("data-image-input", ""),
            ],
            "",
        ),
        el("p", &[("class", "muted"), ("id", "manifest-note"), ("role", "status")], ""),
        forms::field(
            "Name",
            "name",
            &[("autocomplete", "off"), ("maxlength", "63")],
            "a-z, 0-9 and -; unique in the tenant.",
        ),
        forms::field("Memory (MiB)", "memory_mib", &memory, ""),
        forms::field(
            "CPUs",
            "cpus",
            &[("autocomplete", "off")],
            "Optional: CPU ids it may run on, e.g. 0, 1.",
        ),
        forms::field(
            "Arguments",
            "args",
            &[("data-kind", "textarea"), ("rows", "3"), ("spellcheck", "false")],
            "One per line, e.g. --ipv4=10.0.0.2/24.",
        ),
        nets,
        blocks,
        restart,
        forms::field(
            "Exit codes that restart it",
            "exit_codes",
            &[("autocomplete", "off")],
            "For \"on failure\": e.g. 2, 3; empty for any other code.",
        ),
        forms::field(
            "Startup priority",
            "startup_priority",
            &priority,
            "Lower starts first after a host restart (default 50).",
        ),
        agent,
    ]
    .concat()
}

/// A labelled field of a repeated row (`kind` "n" for network devices, "b" for block devices),
/// with the span for its message (see `forms::show_errors`).
fn row_cell(
    kind: &str,
    n: usize,
    label: &str,
    name: &str,
    suffix: &str,
    attrs: &[(&str, &str)],
    select: Option<&str>,
) -> String {
    let id = format!("{kind}-{n}-{suffix}");
    let error_id = format!("{id}-error");
    let mut all: Vec<(&str, &str)> = vec![("id", &id), ("name", name), ("aria-describedby", &error_id)];
    all.extend_from_slice(attrs);
    let input = match select {
        Some(options) => el("select", &all, options),
        None => el("input", &all, ""),
    };
    el(
        "div",
        &[("class", "field")],
        &format!(
            "{}{input}{}",
            el("label", &[("for", &id)], &esc(label)),
            el(
                "span",
                &[("class", "field-error"), ("id", &error_id), ("data-row-field", suffix), ("role", "alert")],
                ""
            ),
        ),
    )
}

fn remove_button(action: &str, label: &str) -> String {
    el(
        "button",
        &[("type", "button"), ("class", "danger"), ("data-action", action), ("aria-label", label)],
        "Remove",
    )
}

/// The allowed bridges as `<option>`s (the first one chosen).
fn bridge_options(names: &[String]) -> String {
    html::options(names.iter().enumerate().map(|(i, b)| (b.as_str(), b.as_str(), i == 0)))
}

/// One network device row: its name in the manifest, the bridge, an optional MAC address.
fn net_row(n: usize, device: &str, bridges: &str) -> String {
    el(
        "div",
        &[("class", "net-row"), ("data-row", "nets")],
        &format!(
            "{}{}{}{}",
            row_cell(
                "net",
                n,
                "Device",
                "net-device",
                "device",
                &[("autocomplete", "off"), ("placeholder", "service"), ("value", device)],
                None
            ),
            row_cell("net", n, "Bridge", "net-bridge", "bridge", &[], Some(bridges)),
            row_cell(
                "net",
                n,
                "MAC (optional)",
                "net-mac",
                "mac",
                &[("autocomplete", "off"), ("placeholder", "generated")],
                None
            ),
            remove_button("remove-net", "Remove this network device"),
        ),
    )
}

/// The tenant's block devices as `<option>`s.
fn block_options(names: &[String]) -> String {
    html::options(names.iter().map(|b| (b.as_str(), b.as_str(), false)))
}

/// One block device row: its name in the manifest, the tenant's block device, a sector size.
fn block_row(n: usize, device: &str, options: &str) -> String {
    let sectors = html::options([
        ("", "512 (default)", true),
        ("512", "512", false),
        ("1024", "1024", false),
        ("2048", "2048", false),
        ("4096", "4096", false),
    ]);
    el(
        "div",
        &[("class", "net-row"), ("data-row", "blocks")],
        &format!(
            "{}{}{}{}",
            row_cell(
                "block",
                n,
                "Device",
                "block-device",
                "device",
                &[("autocomplete", "off"), ("placeholder", "storage"), ("value", device)],
                None
            ),
            row_cell("block", n, "Block device", "block-name", "block_device", &[], Some(options)),
            row_cell("block", n, "Sector size", "block-sector", "sector_size", &[], Some(&sectors)),
            remove_button("remove-net", "Remove this block device"),
        ),
    )
}

/// What the API refused: the quota (with a link to the tenant's), or the request.
pub(crate) fn problem_html(e: &ApiError, others: &[String], tenant: Option<Uuid>) -> String {
    let code = e.problem.as_ref().map(|p| p.code.as_str()).unwrap_or_default();
    let list = if others.is_empty() {
        String::new()
    } else {
        el("ul", &[], &others.iter().map(|m| html::text("li", "", m)).collect::<String>())
    };
    if code == "quota-exceeded" || code == "no-quota" {
        let link = tenant
            .map(|t| format!(" {}", html::link(&format!("/quotas?tenant={t}"), "See the tenant's quota.")))
            .unwrap_or_default();
        return el(
            "div",
            &[("class", "card quota-exceeded"), ("role", "alert"), ("data-testid", "quota-exceeded")],
            &format!(
                "{}{list}",
                el(
                    "p",
                    &[],
                    &format!("{}{link}", el("strong", &[], &esc(&format!("Over the quota: {}.", e.message))))
                )
            ),
        );
    }
    el(
        "div",
        &[("class", "error"), ("role", "alert"), ("data-testid", "form-error")],
        &format!("{}{list}", html::text("p", "", &e.message)),
    )
}
