//! The audit log: the whole log for administrators, and a table tenant pages reuse.

use leptos::prelude::*;
use petrel_wire::audit::AuditEvent;

use crate::components::{Paged, PagedFooter, Shell, when};

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
        <div class="table-wrap">
            <table>
                <thead><tr><th scope="col">"When"</th><th scope="col">"Who"</th><th scope="col">"What"</th><th scope="col">"Target"</th><th scope="col">"From"</th></tr></thead>
                <tbody>
                    {move || events.items.get().into_iter().map(|e| view! {
                        <tr data-testid="audit-row">
                            <td>{when(&e.at)}</td>
                            <td>{e.actor_username.unwrap_or_default()}{e.actor_token_id.map(|_| " (token)")}</td>
                            <td><code>{e.action}</code></td>
                            <td class="mono">{e.target.unwrap_or_default()}</td>
                            <td>{e.source_ip.unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
        <PagedFooter paged=events/>
    }
}
