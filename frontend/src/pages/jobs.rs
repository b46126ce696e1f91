//! Jobs: the list (public jobs and the caller's) with each one's newest build, and one job's
//! page with its recipe, "Run now", its builds grouped by main binary, and how reproducible it is.
//! Read-only parts are markup from `crate::html` (see there why).

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use petrel_wire::builds::{Build, Job, ReproducibilitySummary, Schedule, Visibility};
use petrel_wire::workers::{QueuedBuild, RunJob};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::components::{
    Paged, PagedFooter, Shell, draw_as, error_view, fetched_markup, loading, raw, section, short_hash,
    short_id, status_html, when,
};
use crate::html::{self, el, esc, link, row, text};
use crate::treemap::human_size;

pub fn schedule_name(s: Schedule) -> &'static str {
    match s {
        Schedule::Hourly => "hourly",
        Schedule::Daily => "daily",
        Schedule::Weekly => "weekly",
        Schedule::Never => "never",
    }
}

pub fn visibility_name(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

/// Where "Run now" goes in the job's markup (a character markup never contains).
const RUN_NOW: char = '\u{1}';

#[component]
pub fn JobList() -> impl IntoView {
    view! {
        <Shell public=true>
            <JobListBody/>
        </Shell>
    }
}

/// A job's newest build, as far as it is known.
#[derive(Clone, PartialEq)]
enum Newest {
    Build(Box<Build>),
    None,
    Failed(String),
}

#[component]
fn JobListBody() -> impl IntoView {
    let jobs = Paged::<Job>::new("/api/v1/jobs".into());
    let newest = RwSignal::new(Vec::<(Uuid, Newest)>::new());
    // One request per row, once per job.
    let asked = StoredValue::new(Vec::<Uuid>::new());
    Effect::new(move |_| {
        for job in jobs.items.get() {
            let new = asked.try_update_value(|a| {
                !a.contains(&job.id) && {
                    a.push(job.id);
                    true
                }
            });
            if !new.unwrap_or(false) {
                continue;
            }
            leptos::task::spawn_local(async move {
                let url = format!("/api/v1/builds?job_id={}&limit=1", job.id);
                let found = match api::get_page::<Build>(&url).await {
                    Ok(page) => {
                        page.items.into_iter().next().map_or(Newest::None, |b| Newest::Build(Box::new(b)))
                    }
                    Err(e) => Newest::Failed(e.message),
                };
                let _ = newest.try_update(|n| n.push((job.id, found)));
            });
        }
    });
    view! {
        <h1>"Jobs"</h1>
        {move || newest.with(|n| jobs.items.with(|js| raw(jobs_table(js, n))))}
        <PagedFooter paged=jobs/>
    }
}

fn jobs_table(jobs: &[Job], newest: &[(Uuid, Newest)]) -> String {
    let rows: Vec<String> = jobs
        .iter()
        .map(|j| {
            let status = match newest.iter().find(|(id, _)| *id == j.id).map(|(_, n)| n) {
                None => text("span", "muted", "…"),
                Some(Newest::None) => text("span", "muted", "no builds yet"),
                Some(Newest::Failed(m)) => el("span", &[("class", "error"), ("title", m)], "unknown"),
                Some(Newest::Build(b)) => format!(
                    "{} {}",
                    el(
                        "a",
                        &[("href", &format!("/builds/{}", b.id)), ("data-testid", "newest-build")],
                        &status_html(b.status)
                    ),
                    text("span", "muted", &b.platform)
                ),
            };
            row(
                "job-row",
                &[
                    link(&format!("/jobs/{}", j.id), &j.name),
                    text("span", "mono", &j.qualified_name),
                    esc(&j.platforms.join(", ")),
                    esc(schedule_name(j.schedule)),
                    text("span", "badge", visibility_name(j.visibility)),
                    esc(j.synopsis.as_deref().unwrap_or_default()),
                    status,
                ],
            )
        })
        .collect();
    html::table(
        "jobs",
        &["Name", "Qualified name", "Platforms", "Schedule", "Visibility", "Synopsis", "Newest build"],
        &rows,
    )
}

#[component]
pub fn JobPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").and_then(|s| s.parse::<Uuid>().ok()));
    view! {
        <Shell public=true>
            {move || match id.get() {
                Some(id) => view! { <JobBody id=id/> }.into_any(),
                None => view! { <h1>"Job"</h1><p class="error" role="alert">"There is no such job."</p> }.into_any(),
            }}
        </Shell>
    }
}

#[component]
fn JobBody(id: Uuid) -> impl IntoView {
    // The job's head and its recipe, split where "Run now" goes.
    let job = fetched_markup(
        format!("/api/v1/jobs/{id}"),
        None,
        draw_as(|j: &Job| format!("{}{RUN_NOW}{}", job_head(j), job_recipe(j))),
    );
    let builds = Paged::<Build>::new(format!("/api/v1/builds?job_id={id}"));
    let found = Memo::new(move |_| job.with(|j| matches!(j, Some(Ok(_)))));
    view! {
        {move || job.with(|j| match j {
            None => loading(),
            Some(Err(e)) => view! { <h1>"Job"</h1>{error_view(e.clone())} }.into_any(),
            Some(Ok(markup)) => {
                let (head, recipe) = markup.split_once(RUN_NOW).unwrap_or((markup, ""));
                view! { {raw(head.to_string())} <RunNow job=id builds=builds/> {raw(recipe.to_string())} }.into_any()
            }
        })}
        // The rest only for a job that exists.
        {move || found.get().then(|| view! {
            <h2>"Builds"</h2>
            {move || builds.items.with(|b| raw(builds_table(b)))}
            <PagedFooter paged=builds/>
            <h2>"Builds by main binary"</h2>
            {move || builds.items.with(|b| raw(binary_groups(b)))}
            <h2>"Reproducibility"</h2>
            {section(format!("/api/v1/jobs/{id}/reproducibility"), None, draw_as(reproducibility_summary))}
        })}
    }
}

fn job_head(job: &Job) -> String {
    let limits = job.limits;
    let mut out = text("h1", "", &job.name);
    out += &el(
        "p",
        &[("class", "muted")],
        &format!(
            "{} · {}",
            text("span", "mono", &job.qualified_name),
            text("span", "badge", visibility_name(job.visibility))
        ),
    );
    if let Some(s) = &job.synopsis {
        out += &text("p", "", s);
    }
    let schedule = match job.next_run_at {
        Some(t) => format!("{} (next run {})", schedule_name(job.schedule), when(&t)),
        None => schedule_name(job.schedule).to_string(),
    };
    let platforms = if job.platforms.is_empty() { "none".to_string() } else { job.platforms.join(", ") };
    out += &html::facts(
        "job-facts",
        &[
            ("Schedule", el("span", &[("data-testid", "job-schedule")], &esc(&schedule))),
            ("Platforms", el("span", &[("data-testid", "job-platforms")], &esc(&platforms))),
            ("SOURCE_DATE_EPOCH", text("span", "mono", &job.source_date_epoch.to_string())),
            (
                "Limits",
                el(
                    "span",
                    &[("data-testid", "job-limits")],
                    &esc(&format!(
                        "{} s per attempt, {} MiB of memory, {} MiB of output, {} attempts",
                        limits.timeout_secs, limits.memory_mib, limits.output_mib, limits.max_attempts
                    )),
                ),
            ),
            ("Retention", esc(&retention_text(job))),
        ],
    );
    out
}

fn job_recipe(job: &Job) -> String {
    let mut out = text("h2", "", "README");
    out += &match job.readme.as_deref().filter(|r| !r.trim().is_empty()) {
        Some(r) => el("pre", &[("class", "readme"), ("data-testid", "job-readme")], &esc(r)),
        None => text("p", "muted", "No README."),
    };
    out += &text("h2", "", "Recipe");
    match &job.recipe {
        None => out += &text("p", "muted", "No recipe: this job only receives uploads."),
        Some(r) => {
            out += &el("pre", &[("class", "script"), ("data-testid", "recipe-script")], &esc(&r.script));
            let files = if r.files.is_empty() {
                text("span", "muted", "none")
            } else {
                let items: String = r.files.keys().map(|f| text("li", "mono", f)).collect();
                el("ul", &[("class", "inline-list"), ("data-testid", "recipe-files")], &items)
            };
            out += &el("div", &[], &format!("Files: {files}"));
            if !r.env.is_empty() {
                let names: Vec<&str> = r.env.keys().map(String::as_str).collect();
                out += &el("p", &[], &format!("Environment: {}", text("span", "mono", &names.join(", "))));
            }
            let network = if r.network { "allowed (to fetch sources)" } else { "none (loopback only)" };
            out += &text("p", "", &format!("Network: {network}"));
        }
    }
    out
}

fn retention_text(job: &Job) -> String {
    let r = &job.retention;
    let mut parts = Vec::new();
    if let Some(n) = r.keep_last {
        parts.push(format!("the newest {n} successful builds per platform"));
    }
    if let Some(d) = r.keep_days {
        parts.push(format!("builds of the last {d} days"));
    }
    if parts.is_empty() { "everything".into() } else { format!("keeps {}", parts.join(" and ")) }
}

/// "Run now": queues a build per platform and links to them.
#[component]
fn RunNow(job: Uuid, builds: Paged<Build>) -> impl IntoView {
    let queued = RwSignal::new(Vec::<QueuedBuild>::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let run = move |_| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            let body = RunJob::default();
            match api::send::<_, Vec<QueuedBuild>>("POST", &format!("/api/v1/jobs/{job}/runs"), &body).await {
                Ok(q) => {
                    error.set(None);
                    queued.set(q);
                    builds.reload();
                }
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="actions">
            <button type="button" on:click=run disabled=move || busy.get() data-testid="run-now">"Run now"</button>
            {move || error.get().map(|e| view! { <span class="error" role="alert" data-testid="run-error">{e.message}</span> })}
        </div>
        {move || queued.with(|q| {
            let items: String = q.iter().map(|q| {
                let again = if q.new { "" } else { " (was queued already)" };
                el("li", &[], &format!("{}{}", link(&format!("/builds/{}", q.build_id),
                    &format!("{}: build {}", q.platform, q.build_id)), again))
            }).collect();
            (!q.is_empty()).then(|| raw(el("ul", &[("class", "queued"), ("role", "status"), ("data-testid", "queued-builds")], &items)))
        })}
    }
}

fn builds_table(builds: &[Build]) -> String {
    let rows: Vec<String> = builds
        .iter()
        .map(|b| {
            let hash = b.main_binary.as_ref().map(|a| a.sha256.as_str()).unwrap_or_default();
            row(
                "build-row",
                &[
                    link_mono(&format!("/builds/{}", b.id), &short_id(&b.id)),
                    status_html(b.status),
                    esc(&b.platform),
                    esc(&b.finished_at.as_ref().map(when).unwrap_or_else(|| "—".into())),
                    el("span", &[("class", "mono"), ("title", hash)], &esc(&short_hash(hash))),
                    esc(&b
                        .main_binary
                        .as_ref()
                        .map(|a| human_size(a.size.max(0) as u64))
                        .unwrap_or_default()),
                ],
            )
        })
        .collect();
    html::table("builds", &["Build", "Status", "Platform", "Finished", "Main binary", "Size"], &rows)
}

fn link_mono(href: &str, label: &str) -> String {
    html::link_class(href, "mono", label)
}

/// Builds grouped by their main binary's SHA-256, in the order each hash first appears (newest
/// first), as builder-web lists them; builds without a main binary last.
pub fn group_by_binary(builds: &[Build]) -> Vec<(Option<&str>, Vec<&Build>)> {
    let mut groups: Vec<(Option<&str>, Vec<&Build>)> = Vec::new();
    for b in builds {
        let key = b.main_binary.as_ref().map(|a| a.sha256.as_str());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(b),
            None => groups.push((key, vec![b])),
        }
    }
    if let Some(at) = groups.iter().position(|(k, _)| k.is_none()) {
        let none = groups.remove(at);
        groups.push(none);
    }
    groups
}

fn binary_groups(builds: &[Build]) -> String {
    let groups = group_by_binary(builds);
    if groups.is_empty() {
        return text("p", "muted", "No builds yet.");
    }
    groups
        .into_iter()
        .map(|(hash, list)| {
            let heading = match hash {
                Some(h) => text("h3", "mono", h),
                None => text("h3", "", "No main binary"),
            };
            let items: String = list
                .iter()
                .map(|b| {
                    let label = b.finished_at.as_ref().map(when).unwrap_or_else(|| b.id.to_string());
                    let input = b
                        .input_id
                        .as_deref()
                        .map(|i| {
                            format!(
                                " {}",
                                el(
                                    "span",
                                    &[("class", "muted mono"), ("title", i)],
                                    &esc(&format!("input {}", short_hash(i)))
                                )
                            )
                        })
                        .unwrap_or_default();
                    el(
                        "li",
                        &[],
                        &format!(
                            "{} {} {}{input}",
                            link(&format!("/builds/{}", b.id), &label),
                            status_html(b.status),
                            text("span", "muted", &b.platform)
                        ),
                    )
                })
                .collect();
            el(
                "section",
                &[
                    ("class", "binary-group"),
                    ("data-testid", "binary-group"),
                    ("data-sha256", hash.unwrap_or_default()),
                ],
                &format!(
                    "{heading}{}{}",
                    text("p", "muted", &html::plural(list.len(), "build", "builds")),
                    el("ul", &[], &items)
                ),
            )
        })
        .collect()
}

fn reproducibility_summary(s: &ReproducibilitySummary) -> String {
    let bad = if s.unreproducible_inputs > 0 { "error" } else { "" };
    html::facts(
        "job-reproducibility",
        &[
            ("Successful builds with inputs and a main binary", esc(&s.builds.to_string())),
            ("Distinct inputs", esc(&s.inputs.to_string())),
            ("Reproducible inputs", text("span", "ok", &s.reproducible_inputs.to_string())),
            ("Unreproducible inputs", text("span", bad, &s.unreproducible_inputs.to_string())),
            ("Inputs built once", esc(&s.single_build_inputs.to_string())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_wire::builds::{Artifact, BuildStatus};

    fn build(n: u128, sha: Option<&str>) -> Build {
        Build {
            id: Uuid::from_u128(n),
            tenant_id: Uuid::nil(),
            job_id: Uuid::nil(),
            job_name: "hello".into(),
            platform: "debian-12".into(),
            status: BuildStatus::Succeeded,
            result: None,
            queued_at: petrel_wire::time::from_unix_seconds(0),
            started_at: None,
            finished_at: None,
            worker: None,
            input_id: None,
            main_binary: sha.map(|s| Artifact {
                path: "bin/x".into(),
                sha256: s.into(),
                size: 1,
                available: true,
            }),
            attempt: 1,
            rebuild_of: None,
        }
    }

    #[test]
    fn groups_by_main_binary_newest_first_without_binary_last() {
        let builds = [build(1, None), build(2, Some("bb")), build(3, Some("aa")), build(4, Some("bb"))];
        let groups = group_by_binary(&builds);
        let shape: Vec<(Option<&str>, Vec<u128>)> =
            groups.iter().map(|(h, bs)| (*h, bs.iter().map(|b| b.id.as_u128()).collect())).collect();
        assert_eq!(shape, vec![(Some("bb"), vec![2, 4]), (Some("aa"), vec![3]), (None, vec![1])]);
        let markup = binary_groups(&builds);
        assert_eq!(markup.matches("data-testid=\"binary-group\"").count(), 3);
        assert!(markup.contains("data-sha256=\"bb\""));
    }
}
