//! One build: status and timings, cancel and rebuild, artifacts, inputs, reproducibility,
//! rebuild verdicts, the live console, and (in `build_viz`) the size treemap and the dependency
//! graph. Read-only parts are markup from `crate::html` (see there why).

use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::wasm_bindgen::closure::Closure;
use leptos_router::hooks::use_params_map;
use petrel_wire::builds::{
    Artifact, Build, BuildInputs, BuildRef, BuildResult, BuildStatus, ConsoleLine, Reproducibility,
};
use petrel_wire::time::{DateTime, Utc, unix_seconds};
use petrel_wire::workers::{QueuedBuild, RebuildVerdict};
use uuid::Uuid;
use web_sys::{Event, EventSource, MessageEvent};

use crate::api::{self, ApiError};
use crate::components::{
    Shell, draw_as, error_view, is_active, loading, raw, section, short_hash, short_id, when,
};
use crate::html::{self, el, esc, link, row, text};
use crate::pages::build_viz::{DependencyGraphView, TreemapView};
use crate::session::use_session;
use crate::treemap::human_size;

#[component]
pub fn BuildPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").and_then(|s| s.parse::<Uuid>().ok()));
    view! {
        <Shell public=true>
            {move || match id.get() {
                Some(id) => view! { <BuildBody id=id/> }.into_any(),
                None => view! { <h1>"Build"</h1><p class="error" role="alert">"There is no such build."</p> }.into_any(),
            }}
        </Shell>
    }
}

#[component]
fn BuildBody(id: Uuid) -> impl IntoView {
    let build = RwSignal::new(None::<Result<Build, ApiError>>);
    // Bumped when the build changed (finished, cancelled): the sections below fetch again.
    let version = RwSignal::new(0u32);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            let answer = api::fetch::<Build>(format!("/api/v1/builds/{id}")).await;
            // Unchanged: nothing to draw again.
            if build.try_with_untracked(|b| b.as_ref() == Some(&answer)).unwrap_or(true) {
                return;
            }
            let changed = match (&answer, build.get_untracked()) {
                (Ok(new), Some(Ok(old))) => new.status != old.status || new.main_binary != old.main_binary,
                _ => false,
            };
            if build.try_set(Some(answer)).is_none() && changed {
                version.update(|v| *v += 1);
            }
        });
    };
    refresh();
    let status =
        Memo::new(move |_| build.with(|b| b.as_ref().and_then(|b| b.as_ref().ok()).map(|b| b.status)));
    let finished = Memo::new(move |_| status.get().is_some_and(|s| !is_active(s)));
    // Console news: its first line (a queued build started running) and its end refresh the
    // status, unless it was known to be final already.
    let on_news = move || {
        if !finished.get_untracked() {
            refresh();
        }
    };
    // The rest of the page once the build is known to exist (and then for good: a failed
    // refresh must not close the console).
    let found = Memo::new(move |before: Option<&bool>| {
        before.copied().unwrap_or(false) || build.with(|b| matches!(b, Some(Ok(_))))
    });
    view! {
        {move || match build.get() {
            None => loading(),
            Some(Err(e)) => view! { <h1>"Build"</h1>{error_view(e)} }.into_any(),
            Some(Ok(b)) => view! { {raw(summary(&b))}<BuildActions id=b.id active=is_active(b.status) refresh=refresh/> }.into_any(),
        }}
        {move || found.get().then(|| view! { <BuildDetails id=id version=version finished=finished on_news=on_news/> })}
    }
}

/// The console, the build's outputs and inputs, and (once it has finished) its visualizations.
#[component]
fn BuildDetails(
    id: Uuid,
    version: RwSignal<u32>,
    finished: Memo<bool>,
    on_news: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <h2 id="console-heading">"Console"</h2>
        <LiveConsole stream=format!("/api/v1/builds/{id}/console/stream") on_news=on_news/>
        <h2>"Artifacts"</h2>
        {section(format!("/api/v1/builds/{id}/artifacts"), Some(version), draw_as(move |a: &Vec<Artifact>| artifacts(id, a)))}
        <h2>"Inputs"</h2>
        {section(format!("/api/v1/builds/{id}/inputs"), Some(version), draw_as(inputs))}
        <h2>"Reproducibility"</h2>
        {section(format!("/api/v1/builds/{id}/reproducibility"), Some(version), draw_as(move |r: &Reproducibility| reproducibility(id, r)))}
        <h2>"Rebuilds"</h2>
        {section(format!("/api/v1/builds/{id}/rebuilds"), Some(version), draw_as(|v: &Vec<RebuildVerdict>| rebuilds(v)))}
        // The visualizations exist once a build has finished; mounted once, when it has.
        {move || {
            if finished.get() {
                view! {
                    <h2>"Binary size"</h2>
                    <TreemapView id=id/>
                    <h2>"Dependencies"</h2>
                    <DependencyGraphView id=id/>
                }
                .into_any()
            } else {
                view! { <p class="muted">"The size treemap and the dependency graph appear when the build has finished."</p> }.into_any()
            }
        }}
    }
}

fn result_text(result: &Option<BuildResult>) -> String {
    match result {
        None => "—".into(),
        Some(BuildResult::Exited { code }) => format!("exited with code {code}"),
        Some(BuildResult::Signalled { signal }) => format!("killed by signal {signal}"),
        Some(BuildResult::Stopped { signal }) => format!("stopped by signal {signal}"),
        Some(BuildResult::Message { message }) => message.clone(),
    }
}

fn duration_text(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (unix_seconds(&to) - unix_seconds(&from)).max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

fn opt_when(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(when).unwrap_or_else(|| "—".into())
}

fn summary(b: &Build) -> String {
    let id = b.id;
    let name = b.status.as_str();
    let mut out = el("h1", &[], &format!("Build {}", text("span", "mono", &short_id(&id))));
    out += &el(
        "p",
        &[("class", "muted")],
        &format!("Job {} · {}", link(&format!("/jobs/{}", b.job_id), &b.job_name), esc(&b.platform)),
    );
    let took = match b.started_at.zip(b.finished_at) {
        Some((s, f)) => format!(" (took {})", duration_text(s, f)),
        None => String::new(),
    };
    let binary = match &b.main_binary {
        Some(a) => format!("{} {}", link(&api::file_url(id, &a.path), &a.path), esc(&a.sha256)),
        None => "—".into(),
    };
    let mut facts = vec![
        (
            "Status",
            el(
                "span",
                &[("id", "build-status"), ("class", &format!("status status-{name}")), ("data-status", name)],
                name,
            ),
        ),
        ("Result", el("span", &[("data-testid", "build-result")], &esc(&result_text(&b.result)))),
        ("Attempt", esc(&b.attempt.to_string())),
        ("Queued", esc(&when(&b.queued_at))),
        ("Started", esc(&opt_when(&b.started_at))),
        ("Finished", esc(&format!("{}{took}", opt_when(&b.finished_at)))),
        ("Worker", esc(b.worker.as_deref().unwrap_or("—"))),
        (
            "Input id",
            el(
                "span",
                &[("class", "mono"), ("data-testid", "input-id")],
                &esc(b.input_id.as_deref().unwrap_or("—")),
            ),
        ),
        ("Main binary", el("span", &[("class", "mono")], &binary)),
    ];
    if let Some(o) = b.rebuild_of {
        facts.push((
            "Rebuild of",
            format!(
                "{} · {}",
                link(&format!("/builds/{o}"), &o.to_string()),
                link(&format!("/builds/{o}/compare/{id}"), "compare")
            ),
        ));
    }
    out + &html::facts("build-facts", &facts)
}

/// "Cancel" while queued or running, "Rebuild" once finished (for signed-in callers; the API
/// decides whether they may).
#[component]
fn BuildActions(id: Uuid, active: bool, refresh: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let session = use_session();
    let error = RwSignal::new(None::<ApiError>);
    let queued = RwSignal::new(None::<QueuedBuild>);
    let busy = RwSignal::new(false);
    let act = move |_| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            if active {
                match api::send_empty("POST", &format!("/api/v1/builds/{id}/cancel")).await {
                    Ok(()) => error.set(None),
                    Err(e) => error.set(Some(e)),
                }
                refresh();
            } else {
                match api::post_for::<QueuedBuild>(&format!("/api/v1/builds/{id}/rebuild")).await {
                    Ok(q) => {
                        error.set(None);
                        queued.set(Some(q));
                    }
                    Err(e) => error.set(Some(e)),
                }
            }
            busy.set(false);
        });
    };
    let (label, class, testid) =
        if active { ("Cancel", "danger", "cancel-build") } else { ("Rebuild", "", "rebuild-build") };
    view! {
        {move || session.me().is_some().then(|| view! {
            <div class="actions">
                <button type="button" class=class on:click=act disabled=move || busy.get() data-testid=testid>{label}</button>
                {move || error.get().map(|e| view! { <span class="error" role="alert" data-testid="action-error">{e.message}</span> })}
                {move || queued.get().map(|q| raw(el("span", &[("role", "status"), ("data-testid", "rebuild-queued")],
                    &format!("Rebuild queued: {}", link(&format!("/builds/{}", q.build_id), &q.build_id.to_string())))))}
            </div>
        })}
    }
}

/// Where the live console's connection stands.
#[derive(Clone, Debug, PartialEq)]
enum Link {
    Connecting,
    Live,
    Reconnecting,
    Ended(String),
    Failed(String),
}

impl Link {
    fn name(&self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Live => "live",
            Link::Reconnecting => "reconnecting",
            Link::Ended(_) => "ended",
            Link::Failed(_) => "failed",
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Link::Live => "ok",
            Link::Reconnecting => "warn",
            Link::Failed(_) => "error",
            _ => "muted",
        }
    }

    fn text(&self) -> String {
        match self {
            Link::Connecting => "connecting…".into(),
            Link::Live => "● live".into(),
            Link::Reconnecting => "reconnecting…".into(),
            Link::Ended(status) => format!("ended: {status}"),
            Link::Failed(message) => message.clone(),
        }
    }
}

/// The EventSource and the listeners it calls; kept until the console leaves the page.
struct Stream {
    source: EventSource,
    _listeners: Vec<Closure<dyn FnMut(Event)>>,
}

/// The console at `stream` (a build's or a deployment's), followed live over server-sent events
/// (all lines, then new ones as they come, then the end). EventSource reconnects by itself,
/// sending `Last-Event-ID`.
#[component]
pub(crate) fn LiveConsole(
    stream: String,
    on_news: impl Fn() + Copy + 'static,
    /// Lines carry wall-clock times (a deployment's), not times since the start (a build's).
    #[prop(optional)]
    wall_clock: bool,
) -> impl IntoView {
    // Lines are appended to the DOM as they come (never re-rendered): only their count is state.
    let count = RwSignal::new(0usize);
    let last = StoredValue::new(None::<i64>);
    let link = RwSignal::new(Link::Connecting);
    // Follow the end unless the reader scrolled up.
    let follow = RwSignal::new(true);
    let console = NodeRef::<leptos::html::Div>::new();
    let pending = StoredValue::new(Vec::<ConsoleLine>::new());
    let flush_scheduled = StoredValue::new(false);
    let url = stream;
    let stream = StoredValue::new_local(None::<Stream>);

    let scroll_to_end = move || {
        if let Some(el) = console.get_untracked() {
            el.set_scroll_top(el.scroll_height());
        }
    };
    // Lines arrive in bursts (a thousand at a time on a reconnect): one render per frame.
    let flush = move || {
        flush_scheduled.set_value(false);
        // Not mounted yet: the lines wait for the next flush.
        let Some(el) = console.get_untracked() else { return };
        let new = pending.try_update_value(std::mem::take).unwrap_or_default();
        let document = document();
        let mut added = 0;
        for line in new {
            if last.get_value().is_some_and(|n| line.number <= n) {
                continue;
            }
            last.set_value(Some(line.number));
            if let Ok(row) = document.create_element("div") {
                row.set_class_name("console-line");
                let _ = row.set_attribute("data-number", &line.number.to_string());
                if let (Ok(time), Ok(text)) =
                    (document.create_element("span"), document.create_element("span"))
                {
                    time.set_class_name("console-time");
                    let _ = time.set_attribute("aria-hidden", "true");
                    let at = if wall_clock { time_of_day(line.at_ms) } else { format_ms(line.at_ms) };
                    time.set_text_content(Some(&at));
                    text.set_class_name("console-text");
                    text.set_text_content(Some(&line.text));
                    let _ = row.append_child(&time);
                    let _ = row.append_child(&text);
                }
                let _ = el.append_child(&row);
                added += 1;
            }
        }
        if added > 0 {
            if count.get_untracked() == 0 {
                on_news();
            }
            let _ = count.try_update(|c| *c += added);
            if follow.get_untracked() {
                scroll_to_end();
            }
        }
    };
    // Stops the stream. The listeners stay until the console leaves the page: this runs inside
    // them, and a listener must not be dropped while it runs.
    let close = move || {
        stream.with_value(|s| {
            if let Some(s) = s {
                s.source.close();
            }
        });
    };

    match EventSource::new(&url) {
        Err(_) => link.set(Link::Failed("this browser cannot follow the console".into())),
        Ok(source) => {
            let on_line = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
                let Some(text) = ev.dyn_ref::<MessageEvent>().and_then(|m| m.data().as_string()) else {
                    return;
                };
                if let Ok(line) = serde_json::from_str::<ConsoleLine>(&text) {
                    pending.update_value(|p| {
                        if p.last().is_none_or(|l| line.number > l.number) {
                            p.push(line)
                        }
                    });
                    if !flush_scheduled.get_value() {
                        flush_scheduled.set_value(true);
                        request_animation_frame(flush);
                    }
                }
            });
            let on_end_event = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
                let status = ev
                    .dyn_ref::<MessageEvent>()
                    .and_then(|m| m.data().as_string())
                    .and_then(|d| serde_json::from_str::<BuildStatus>(&d).ok());
                close();
                flush();
                let _ = link
                    .try_set(Link::Ended(status.map(BuildStatus::as_str).unwrap_or("finished").to_string()));
                on_news();
            });
            let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                let _ = link.try_set(Link::Live);
            });
            let on_error = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
                // The server's own `event: error` carries a message; the browser's has none.
                if let Some(message) = ev.dyn_ref::<MessageEvent>().and_then(|m| m.data().as_string()) {
                    close();
                    let message = serde_json::from_str::<String>(&message).unwrap_or(message);
                    let _ = link.try_set(Link::Failed(message));
                    return;
                }
                let closed = stream
                    .try_with_value(|s| {
                        s.as_ref().is_none_or(|s| s.source.ready_state() == EventSource::CLOSED)
                    })
                    .unwrap_or(true);
                let state = if closed {
                    close();
                    Link::Failed("the console is not available".into())
                } else {
                    Link::Reconnecting
                };
                let _ = link.try_set(state);
            });
            let listen = |name: &str, f: &Closure<dyn FnMut(Event)>| {
                let _ = source.add_event_listener_with_callback(name, f.as_ref().unchecked_ref());
            };
            listen("line", &on_line);
            listen("end", &on_end_event);
            listen("open", &on_open);
            listen("error", &on_error);
            stream.set_value(Some(Stream {
                source,
                _listeners: vec![on_line, on_end_event, on_open, on_error],
            }));
        }
    }
    on_cleanup(move || {
        close();
        stream.set_value(None);
    });

    let on_scroll = move |_| {
        if let Some(el) = console.get_untracked() {
            let at_end = el.scroll_top() + el.client_height() >= el.scroll_height() - 8;
            if follow.get_untracked() != at_end {
                follow.set(at_end);
            }
        }
    };
    let jump = move |_| {
        follow.set(true);
        scroll_to_end();
    };
    view! {
        <div class="console-bar">
            <span class=move || format!("console-state {}", link.with(Link::class)) data-testid="console-state"
                data-state=move || link.with(Link::name) role="status">
                {move || link.with(Link::text)}
            </span>
            <span class="muted">{move || html::plural(count.get(), "line", "lines")}</span>
            {move || (!follow.get()).then(|| view! {
                <button type="button" class="secondary" on:click=jump>"Follow the end"</button>
            })}
        </div>
        <div id="console" class="console" node_ref=console on:scroll=on_scroll tabindex="0"
            role="log" aria-labelledby="console-heading" aria-live="off">
        </div>
        {move || (count.get() == 0 && matches!(link.get(), Link::Ended(_)))
            .then(|| raw(html::el("p", &[("class", "muted"), ("data-testid", "console-empty")], "The console is empty.")))}
    }
}

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn time_of_day(ms: i64) -> String {
    let seconds = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

fn format_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}

fn artifacts(id: Uuid, list: &[Artifact]) -> String {
    if list.is_empty() {
        return text("p", "muted", "No artifacts.");
    }
    let rows: Vec<String> = list
        .iter()
        .map(|a| {
            let path = if a.available {
                el("a", &[("href", &api::file_url(id, &a.path)), ("download", "")], &esc(&a.path))
            } else {
                format!("{} {}", esc(&a.path), text("span", "muted", "(deleted by retention)"))
            };
            row(
                "artifact-row",
                &[
                    path,
                    el(
                        "span",
                        &[("title", &format!("{} bytes", a.size))],
                        &esc(&human_size(a.size.max(0) as u64)),
                    ),
                    text("span", "mono", &a.sha256),
                ],
            )
        })
        .collect();
    html::table("artifacts", &["Path", "Size", "SHA-256"], &rows)
}

fn inputs(i: &BuildInputs) -> String {
    let env = if i.environment.is_empty() {
        text("p", "muted", "None recorded.")
    } else {
        let rows: String = i
            .environment
            .iter()
            .map(|e| {
                format!(
                    "<tr><th scope=\"row\" class=\"mono\">{}</th>{}</tr>",
                    esc(&e.key),
                    text("td", "mono", &e.value)
                )
            })
            .collect();
        el("table", &[("data-testid", "environment")], &el("tbody", &[], &rows))
    };
    let packages = if i.packages.is_empty() {
        text("p", "muted", "None recorded.")
    } else {
        let rows: Vec<String> = i
            .packages
            .iter()
            .map(|p| {
                let search = format!(
                    "/fleet?ecosystem={}&name={}&version={}",
                    api::encode(&p.ecosystem),
                    api::encode(&p.name),
                    api::encode(&p.version)
                );
                row(
                    "",
                    &[
                        esc(&p.ecosystem),
                        el(
                            "a",
                            &[("href", &search), ("title", "Other builds with this package")],
                            &esc(&p.name),
                        ),
                        text("span", "mono", &p.version),
                    ],
                )
            })
            .collect();
        html::table("packages", &["Ecosystem", "Name", "Version"], &rows)
    };
    let details = |title: &str, n: usize, inner: String| {
        let open = if n <= 40 { " open" } else { "" };
        format!("<details{open}><summary>{}</summary>{inner}</details>", esc(&format!("{title} ({n})")))
    };
    details("Environment", i.environment.len(), env) + &details("Packages", i.packages.len(), packages)
}

fn build_refs(this: Uuid, title: &str, refs: &[BuildRef], testid: &str) -> String {
    let list = if refs.is_empty() {
        el("p", &[("class", "muted"), ("data-testid", testid)], "None.")
    } else {
        let items: String = refs
            .iter()
            .map(|r| {
                let label = r.finished_at.as_ref().map(when).unwrap_or_else(|| r.id.to_string());
                let hash = r
                    .main_binary_sha256
                    .as_deref()
                    .map(|h| {
                        format!(" {}", el("span", &[("class", "mono"), ("title", h)], &esc(&short_hash(h))))
                    })
                    .unwrap_or_default();
                el(
                    "li",
                    &[],
                    &format!(
                        "{} {}{hash} · {}",
                        link(&format!("/builds/{}", r.id), &label),
                        text("span", "muted", &format!("{} · {}", r.job_name, r.platform)),
                        link(&format!("/builds/{this}/compare/{}", r.id), "compare")
                    ),
                )
            })
            .collect();
        el("ul", &[("data-testid", testid)], &items)
    };
    text("h3", "", title) + &list
}

fn reproducibility(id: Uuid, r: &Reproducibility) -> String {
    build_refs(id, "Same inputs, same main binary", &r.same_input_same_output, "same-input-same-output")
        + &build_refs(
            id,
            "Same inputs, another main binary (not reproducible)",
            &r.same_input_other_output,
            "same-input-other-output",
        )
        + &build_refs(
            id,
            "Other inputs, same main binary",
            &r.other_input_same_output,
            "other-input-same-output",
        )
}

fn rebuilds(list: &[RebuildVerdict]) -> String {
    if list.is_empty() {
        return text("p", "muted", "Not rebuilt yet.");
    }
    let short = |h: &Option<String>| {
        let full = h.as_deref().unwrap_or("absent");
        el("span", &[("class", "mono"), ("title", full)], &esc(&short_hash(full)))
    };
    list.iter()
        .map(|v| {
            let verdict = if v.reproducible {
                text("strong", "ok", "reproducible")
            } else {
                text("strong", "error", &html::plural(v.differences.len(), "file differs", "files differ"))
            };
            let head = el(
                "p",
                &[],
                &format!(
                    "{} checked {}: {verdict} · {}",
                    link(&format!("/builds/{}", v.rebuild_id), "Rebuild"),
                    esc(&when(&v.checked_at)),
                    link(&format!("/builds/{}/compare/{}", v.build_id, v.rebuild_id), "compare")
                ),
            );
            let rows: Vec<String> = v
                .differences
                .iter()
                .map(|d| {
                    row(
                        "",
                        &[text("span", "mono", &d.path), short(&d.original_sha256), short(&d.rebuild_sha256)],
                    )
                })
                .collect();
            let table = if rows.is_empty() {
                String::new()
            } else {
                html::table("", &["Path", "Original", "Rebuild"], &rows)
            };
            el(
                "div",
                &[
                    ("class", "card verdict"),
                    ("data-testid", "rebuild-verdict"),
                    ("data-reproducible", if v.reproducible { "true" } else { "false" }),
                ],
                &(head + &table),
            )
        })
        .collect()
}
