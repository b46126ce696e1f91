//! The audit log: the whole log for administrators, and a table tenant pages reuse.

use leptos::prelude::*;
use petrel_wire::audit::AuditEvent;

use crate::components::{Paged, PagedFooter, Shell, raw, when};
use crate::html;

#[component]
pub fn Audit() -> impl IntoView {
    view! {
        <Shell>
            <h1>"Audit log"</h1>
            <AuditTable path="/api/v1/audit".to_string()/>
        </Shell>
    }
}

#[component]
pub fn AuditTable(path: String) -> impl IntoView {
    let events = Paged::<AuditEvent>::new(path);
    view! {
        {move || events.items.with(|es| {
            let rows: Vec<String> = es
                .iter()
                .map(|e| {
                    let who = format!(
                        "{}{}",
                        e.actor_username.as_deref().unwrap_or_default(),
                        if e.actor_token_id.is_some() { " (token)" } else { "" }
                    );
                    html::row(
                        "audit-row",
                        &[
                            html::esc(&when(&e.at)),
                            html::esc(&who),
                            html::text("code", "", &e.action),
                            html::text("span", "mono", e.target.as_deref().unwrap_or_default()),
                            html::esc(e.source_ip.as_deref().unwrap_or_default()),
                        ],
                    )
                })
                .collect();
            raw(html::table("", &["When", "Who", "What", "Target", "From"], &rows))
        })}
        <PagedFooter paged=events/>
    }
}
