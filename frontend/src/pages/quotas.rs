//! Quotas: a tenant's usage against each limit (bars), its sub-tenants with theirs, and the
//! form to change its quota (administrators, and owners of the parent tenant).

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use petrel_wire::deployments::{Quota, QuotaUsage};
use petrel_wire::identity::{Role, Tenant};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{Paged, Shell, error_view, fetch_then, loading, raw, target_with};
use crate::forms::{self, Values, by_id};
use crate::html::{self, el, esc, link, row};
use crate::session::use_session;

#[component]
pub fn Quotas() -> impl IntoView {
    view! {
        <Shell>
            <QuotasBody/>
        </Shell>
    }
}

#[component]
fn QuotasBody() -> impl IntoView {
    let session = use_session();
    let query = use_query_map();
    let tenants = Paged::<Tenant>::new("/api/v1/tenants".into());
    let chosen = RwSignal::new(None::<Uuid>);
    let tenant = Memo::new(move |_| {
        let wanted = chosen.get().or_else(|| query.read().get("tenant").and_then(|t| t.parse().ok()));
        tenants.items.with(|ts| ts.iter().find(|t| Some(t.id) == wanted).or_else(|| ts.first()).map(|t| t.id))
    });
    // Bumped after a change: the usage is fetched again.
    let version = RwSignal::new(0u32);
    let usage = RwSignal::new(None::<Result<QuotaUsage, ApiError>>);
    // The sub-tenants, each with its quota once it arrives.
    let subs = RwSignal::new(Vec::<SubQuota>::new());
    Effect::new(move |_| {
        version.track();
        let Some(id) = tenant.get() else { return };
        fetch_then(format!("/api/v1/tenants/{id}/quota"), move |answer| {
            let _ = usage.try_set(Some(answer.and_then(|text| api::parse::<QuotaUsage>(&text))));
        });
        let children: Vec<SubQuota> = tenants.items.with_untracked(|ts| {
            ts.iter().filter(|t| t.parent_id == Some(id)).map(|t| (t.id, t.name.clone(), None)).collect()
        });
        for (i, (child, _, _)) in children.iter().enumerate() {
            fetch_then(format!("/api/v1/tenants/{child}/quota"), move |answer| {
                let answer = answer.and_then(|text| api::parse::<QuotaUsage>(&text));
                let _ = subs.try_update(|s| {
                    if let Some(row) = s.get_mut(i) {
                        row.2 = Some(answer);
                    }
                });
            });
        }
        subs.set(children);
    });
    // Administrators set any quota; owners of the parent set their sub-tenants'.
    let can_edit = Memo::new(move |_| {
        session.is_admin()
            || tenants.items.with(|ts| {
                let parent = ts.iter().find(|t| Some(t.id) == tenant.get()).and_then(|t| t.parent_id);
                ts.iter().any(|t| Some(t.id) == parent && t.my_role == Role::Owner)
            })
    });
    let saved = RwSignal::new(false);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some((form, v)) = Values::of(&ev) else { return };
        let Some(id) = tenant.get_untracked() else { return };
        let body = Quota {
            unikernels: v.number("unikernels", -1).clamp(-1, i64::from(i32::MAX)) as i32,
            memory_mib: v.number("memory_mib", -1),
            block_mib: v.number("block_mib", -1),
            cpus: forms::numbers(&v.list("cpus")),
            bridges: v.list("bridges"),
        };
        leptos::task::spawn_local(async move {
            let answer = api::send::<_, Quota>("PUT", &format!("/api/v1/tenants/{id}/quota"), &body).await;
            let others = forms::show_errors(&form, answer.as_ref().err());
            match answer {
                Ok(_) => {
                    saved.set(true);
                    version.update(|v| *v += 1);
                }
                Err(e) => {
                    if let Some(box_) = by_id("quota-problem") {
                        let list: String = others.iter().map(|m| html::text("li", "", m)).collect();
                        box_.set_inner_html(&format!(
                            "{}{}",
                            html::text("p", "", &e.message),
                            el("ul", &[], &list)
                        ));
                    }
                }
            }
        });
    };
    let on_change = move |ev: leptos::ev::Event| {
        if target_with(&ev, "data-tenant-select").is_some() {
            saved.set(false);
            chosen.set(event_target_value(&ev).parse().ok());
        }
    };
    view! {
        <div on:change=on_change on:submit=on_submit>
            {raw(format!(
                "{}{}",
                el("h1", &[], "Quotas"),
                html::text("p", "muted", "What each tenant may deploy, and what it uses (its sub-tenants' deployments count too). Quotas nest: a sub-tenant's fits inside its parent's."),
            ))}
            <label class="inline-label">"Tenant "
                <select name="quota-tenant" data-tenant-select=""
                    inner_html=move || tenants.items.with(|ts| {
                        let current = tenant.get();
                        let items: Vec<(String, &str, bool)> =
                            ts.iter().map(|t| (t.id.to_string(), t.name.as_str(), Some(t.id) == current)).collect();
                        html::options(items.iter().map(|(id, name, on)| (id.as_str(), *name, *on)))
                    })>
                </select>
            </label>
            {move || usage.with(|u| match u {
                None => loading(),
                Some(Err(e)) => error_view(e.clone()),
                Some(Ok(u)) => raw(format!(
                    "{}{}",
                    usage_html(u),
                    if can_edit.get() { quota_form(u.quota.as_ref(), saved.get()) } else { String::new() }
                )),
            })}
            {move || subs.with(|s| raw(sub_quotas_html(s)))}
        </div>
    }
}

/// A sub-tenant: id, name, and its quota and usage once fetched.
type SubQuota = (Uuid, String, Option<Result<QuotaUsage, ApiError>>);

/// One bar: `used` of `limit`, as an ARIA meter.
fn meter(testid: &str, label: &str, used: i64, limit: i64, unit: &str) -> String {
    let percent = if limit > 0 {
        (used.max(0) * 100 / limit).min(100)
    } else if used > 0 {
        100
    } else {
        0
    };
    let level = if used > limit {
        "meter over"
    } else if percent >= 90 {
        "meter high"
    } else {
        "meter"
    };
    let text = format!("{used}{unit} of {limit}{unit}");
    let label_id = format!("meter-{testid}");
    let bar = el(
        "div",
        &[
            ("class", level),
            ("role", "meter"),
            ("aria-labelledby", &label_id),
            ("aria-valuemin", "0"),
            ("aria-valuemax", &limit.to_string()),
            ("aria-valuenow", &used.min(limit).max(0).to_string()),
            ("aria-valuetext", &text),
            ("data-testid", testid),
            ("data-used", &used.to_string()),
        ],
        &el("div", &[("class", "meter-fill"), ("style", &format!("width: {percent}%"))], ""),
    );
    el(
        "div",
        &[("class", "meter-row")],
        &format!(
            "{}{bar}{}",
            el("span", &[("id", &label_id), ("class", "meter-label")], &esc(label)),
            el("span", &[("class", "meter-value")], &esc(&text))
        ),
    )
}

fn list_or(items: &[String], none: &str) -> String {
    if items.is_empty() { none.to_string() } else { items.join(", ") }
}

fn usage_html(u: &QuotaUsage) -> String {
    let Some(q) = &u.quota else {
        return el(
            "div",
            &[("class", "card"), ("data-testid", "no-quota")],
            &format!(
                "{}{}",
                html::text(
                    "p",
                    "",
                    "No quota of its own: the nearest parent's quota applies (without any, it cannot deploy)."
                ),
                html::text(
                    "p",
                    "muted",
                    &format!(
                        "In use: {} unikernels, {} MiB of memory, {} MiB of block storage.",
                        u.unikernels, u.memory_mib, u.block_mib
                    )
                )
            ),
        );
    };
    let cpus: Vec<String> = q.cpus.iter().map(|c| c.to_string()).collect();
    let facts = html::facts(
        "quota-sets",
        &[
            (
                "Allowed CPUs",
                el(
                    "span",
                    &[("data-testid", "quota-cpus")],
                    &esc(&list_or(&cpus, "none (deployments run unpinned)")),
                ),
            ),
            (
                "Allowed bridges",
                el("span", &[("data-testid", "quota-bridges")], &esc(&list_or(&q.bridges, "none"))),
            ),
        ],
    );
    el(
        "div",
        &[("class", "card meters"), ("data-testid", "quota-usage")],
        &format!(
            "{}{}{}{facts}",
            meter("quota-unikernels", "Unikernels", u.unikernels, i64::from(q.unikernels), ""),
            meter("quota-memory", "Memory", u.memory_mib, q.memory_mib, " MiB"),
            meter("quota-block", "Block storage", u.block_mib, q.block_mib, " MiB"),
        ),
    )
}

/// The form that changes the quota, filled with the current one.
fn quota_form(q: Option<&Quota>, saved: bool) -> String {
    let saved = if saved {
        el("span", &[("class", "ok"), ("role", "status"), ("data-testid", "quota-saved")], "Saved.")
    } else {
        String::new()
    };
    format!(
        "{}{}",
        el("h2", &[], "Change the quota"),
        el(
            "form",
            &[("class", "card quota-form"), ("aria-label", "Change the quota"), ("novalidate", "")],
            &format!(
                "{}{}{}",
                quota_form_fields(q),
                el(
                    "div",
                    &[("class", "actions")],
                    &format!("{}{saved}", el("button", &[("type", "submit")], "Save quota"))
                ),
                el("div", &[("class", "error"), ("id", "quota-problem"), ("role", "alert")], ""),
            ),
        )
    )
}

fn quota_form_fields(q: Option<&Quota>) -> String {
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let cpus =
        q.map(|q| q.cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
    let bridges = q.map(|q| q.bridges.join(", ")).unwrap_or_default();
    fn with_value(value: &str) -> [(&'static str, &str); 4] {
        [("type", "number"), ("min", "0"), ("inputmode", "numeric"), ("value", value)]
    }
    let (u, m, b) =
        (n(q.map(|q| i64::from(q.unikernels))), n(q.map(|q| q.memory_mib)), n(q.map(|q| q.block_mib)));
    [
        forms::field("Unikernels", "unikernels", &with_value(&u), ""),
        forms::field("Memory (MiB)", "memory_mib", &with_value(&m), ""),
        forms::field("Block storage (MiB)", "block_mib", &with_value(&b), ""),
        forms::field("CPUs", "cpus", &[("value", &cpus)], "CPU ids, e.g. 0, 1"),
        forms::field("Bridges", "bridges", &[("value", &bridges)], "host bridges, e.g. br0, petrel0"),
    ]
    .concat()
}

/// The sub-tenants with their quotas and usage.
fn sub_quotas_html(subs: &[SubQuota]) -> String {
    let body: Vec<String> = subs
        .iter()
        .map(|(id, name, usage)| {
            let name_link = link(&format!("/quotas?tenant={id}"), name);
            let cells = match usage {
                None => vec![name_link, esc("…"), String::new(), String::new(), String::new()],
                Some(Err(e)) => vec![name_link, esc(&e.message), String::new(), String::new(), String::new()],
                Some(Ok(u)) => match &u.quota {
                    None => vec![
                        name_link,
                        esc(&format!("{} (no quota of its own)", u.unikernels)),
                        esc(&format!("{} MiB", u.memory_mib)),
                        esc("—"),
                        esc("—"),
                    ],
                    Some(q) => {
                        let cpus: Vec<String> = q.cpus.iter().map(|c| c.to_string()).collect();
                        vec![
                            name_link,
                            meter(
                                &format!("sub-unikernels-{name}"),
                                &format!("{name}: unikernels"),
                                u.unikernels,
                                i64::from(q.unikernels),
                                "",
                            ),
                            meter(
                                &format!("sub-memory-{name}"),
                                &format!("{name}: memory"),
                                u.memory_mib,
                                q.memory_mib,
                                " MiB",
                            ),
                            esc(&list_or(&cpus, "unpinned only")),
                            esc(&list_or(&q.bridges, "none")),
                        ]
                    }
                },
            };
            row("sub-tenant-quota", &cells)
        })
        .collect();
    let table = if body.is_empty() {
        html::text("p", "muted", "None.")
    } else {
        html::table("sub-tenant-quotas", &["Tenant", "Unikernels", "Memory", "CPUs", "Bridges"], &body)
    };
    format!("{}{table}", el("h2", &[], "Sub-tenants"))
}
