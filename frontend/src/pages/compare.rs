//! Two builds side by side (builder-web's compare page): what changed between their inputs
//! and outputs, left to right. All of it is read-only markup from `crate::html`.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use petrel_wire::builds::Build;
use petrel_wire::compare::{
    ArtifactDiff, Comparison, Counts, DuniverseDiff, EnvironmentDiff, OpamFileDiff, PackageDiff, Side,
    Summary,
};
use uuid::Uuid;

use crate::components::{Shell, draw_as, section, short_hash, short_id, status_html, when};
use crate::html::{self, el, esc, link, row, text};
use crate::treemap::human_size;

#[component]
pub fn ComparePage() -> impl IntoView {
    let params = use_params_map();
    let ids = Memo::new(move |_| {
        let p = params.read();
        let a = p.get("a").and_then(|s| s.parse::<Uuid>().ok());
        let b = p.get("b").and_then(|s| s.parse::<Uuid>().ok());
        a.zip(b)
    });
    view! {
        <Shell public=true>
            {move || match ids.get() {
                Some((a, b)) => view! { <CompareBody left=a right=b/> }.into_any(),
                None => view! { <h1>"Compare"</h1><p class="error" role="alert">"These are not two builds."</p> }.into_any(),
            }}
        </Shell>
    }
}

#[component]
fn CompareBody(left: Uuid, right: Uuid) -> impl IntoView {
    let card = |side: &'static str, id: Uuid| {
        section(format!("/api/v1/builds/{id}"), None, draw_as(move |b: &Build| build_card(side, id, b)))
    };
    view! {
        <h1>"Compare builds"</h1>
        <p><a href=format!("/builds/{right}/compare/{left}") data-testid="swap">"⇄ Swap left and right"</a></p>
        <div class="side-by-side">
            <div>{card("Left", left)}</div>
            <div>{card("Right", right)}</div>
        </div>
        {section(format!("/api/v1/compare/{left}/{right}"), None, draw_as(comparison_html))}
    }
}

fn build_card(side: &str, id: Uuid, b: &Build) -> String {
    let heading = el(
        "h2",
        &[],
        &format!("{side}: {}", html::link_class(&format!("/builds/{id}"), "mono", &short_id(&id))),
    );
    let binary = b
        .main_binary
        .as_ref()
        .map(|a| {
            el(
                "span",
                &[("class", "mono"), ("title", &a.sha256)],
                &esc(&format!("{} ({})", short_hash(&a.sha256), human_size(a.size.max(0) as u64))),
            )
        })
        .unwrap_or_else(|| "—".into());
    let input = b.input_id.as_deref().unwrap_or("—");
    let facts = html::facts(
        "",
        &[
            ("Job", link(&format!("/jobs/{}", b.job_id), &b.job_name)),
            ("Platform", esc(&b.platform)),
            ("Status", status_html(b.status)),
            ("Finished", esc(&b.finished_at.as_ref().map(when).unwrap_or_else(|| "—".into()))),
            ("Input id", el("span", &[("class", "mono"), ("title", input)], &esc(&short_hash(input)))),
            ("Main binary", binary),
        ],
    );
    el(
        "section",
        &[("class", "card"), ("data-testid", &format!("compare-{}", side.to_lowercase()))],
        &(heading + &facts),
    )
}

fn summary_rows(s: &Summary) -> Vec<(&'static str, Option<Counts>, usize)> {
    vec![
        ("Environment", Some(s.environment), s.environment.total()),
        ("System packages", Some(s.system_packages), s.system_packages.total()),
        ("opam packages", Some(s.opam_packages), s.opam_packages.total()),
        ("opam files (same version)", None, s.opam_files),
        ("Vendored sources (duniverse)", Some(s.duniverse), s.duniverse.total()),
        ("Cargo crates", Some(s.cargo_packages), s.cargo_packages.total()),
        ("Artifacts", Some(s.artifacts), s.artifacts.total()),
    ]
}

fn comparison_html(c: &Comparison) -> String {
    let s = c.summary;
    let mut out = text("h2", "", "Summary");
    out += &if s.total == 0 {
        el(
            "p",
            &[("class", "ok"), ("data-testid", "compare-identical")],
            "The compared inputs and outputs are the same.",
        )
    } else {
        el(
            "p",
            &[("data-testid", "compare-total")],
            &esc(&html::plural(s.total, "difference.", "differences.")),
        )
    };
    let rows: Vec<String> = summary_rows(&s)
        .into_iter()
        .map(|(name, counts, total)| {
            let cells = match counts {
                Some(k) => [k.only_left.to_string(), k.only_right.to_string(), k.changed.to_string()],
                None => ["—".into(), "—".into(), total.to_string()],
            };
            let class = if total == 0 { " class=\"muted\"" } else { "" };
            format!(
                "<tr{class}><th scope=\"row\">{}</th>{}</tr>",
                esc(name),
                cells.iter().map(|c| text("td", "", c)).collect::<String>()
            )
        })
        .collect();
    out += &html::table(
        "compare-summary",
        &["What", "Removed (left only)", "Added (right only)", "Changed"],
        &rows,
    );
    if let Some(m) = &c.main_binary {
        let verdict = if m.identical {
            text("strong", "ok", "identical")
        } else {
            text("strong", "error", "different")
        };
        let side = |a: &Option<petrel_wire::compare::Artifact>| {
            a.as_ref()
                .map(|a| format!("{} ({})", short_hash(&a.sha256), human_size(a.size)))
                .unwrap_or_else(|| "none".into())
        };
        let delta =
            m.size_delta.map(|d| format!(", {}{d} bytes", if d > 0 { "+" } else { "" })).unwrap_or_default();
        out += &text("h2", "", "Main binary");
        out += &el(
            "p",
            &[("data-testid", "compare-main-binary")],
            &format!("{verdict}{}", esc(&format!(": {} → {}{delta}", side(&m.left), side(&m.right)))),
        );
    }
    if !c.notes.is_empty() {
        out += &text("h2", "", "Not compared");
        let items: String = c
            .notes
            .iter()
            .map(|n| {
                let side = if n.side == Side::Left { "left" } else { "right" };
                text("li", "", &format!("{side}: {}: {}", n.file, n.message))
            })
            .collect();
        out += &el("ul", &[], &items);
    }
    out += &packages("opam packages", "opam-packages", &c.opam_packages);
    out += &opam_files(&c.opam_files);
    out += &environment(&c.environment);
    out += &packages("System packages", "system-packages", &c.system_packages);
    out += &duniverse(&c.duniverse);
    out += &packages("Cargo crates", "cargo-packages", &c.cargo_packages);
    out += &artifacts(&c.artifacts);
    out
}

fn part(testid: &str, title: &str, inner: String) -> String {
    el("section", &[("data-testid", testid)], &(text("h2", "", title) + &inner))
}

fn no_differences() -> String {
    text("p", "muted", "No differences.")
}

fn packages(title: &str, testid: &str, diff: &PackageDiff) -> String {
    if diff.only_left.is_empty() && diff.only_right.is_empty() && diff.changed.is_empty() {
        return part(testid, title, no_differences());
    }
    let mut inner = String::new();
    let list = |class: &str, heading: &str, items: &[petrel_wire::compare::PackageVersion]| {
        let lis: String =
            items.iter().map(|p| text("li", "mono", &format!("{} {}", p.name, p.version))).collect();
        text("h3", "", &format!("{heading} ({})", items.len())) + &el("ul", &[("class", class)], &lis)
    };
    if !diff.only_left.is_empty() {
        inner += &list("removed", "Removed", &diff.only_left);
    }
    if !diff.only_right.is_empty() {
        inner += &list("added", "Added", &diff.only_right);
    }
    if !diff.changed.is_empty() {
        inner += &text("h3", "", &format!("Changed ({})", diff.changed.len()));
        let rows: Vec<String> = diff
            .changed
            .iter()
            .map(|v| {
                row(
                    "",
                    &[
                        esc(&v.name),
                        text("span", "mono diff-del", &v.left),
                        text("span", "mono diff-add", &v.right),
                    ],
                )
            })
            .collect();
        inner += &html::table("", &["Package", "Left", "Right"], &rows);
    }
    part(testid, title, inner)
}

fn opam_files(files: &[OpamFileDiff]) -> String {
    if files.is_empty() {
        return part(
            "opam-files",
            "opam files",
            text("p", "muted", "No opam file differs for a package of the same version."),
        );
    }
    let inner: String = files
        .iter()
        .map(|f| text("h3", "mono", &format!("{} {}", f.name, f.version)) + &html::diff(&f.diff))
        .collect();
    part("opam-files", "opam files", inner)
}

fn environment(diff: &EnvironmentDiff) -> String {
    if diff.only_left.is_empty() && diff.only_right.is_empty() && diff.changed.is_empty() {
        return part("environment-diff", "Environment", no_differences());
    }
    let unset = || text("span", "muted", "(unset)");
    let line = |key: &str, left: String, right: String| {
        format!("<tr><th scope=\"row\" class=\"mono\">{}</th><td>{left}</td><td>{right}</td></tr>", esc(key))
    };
    let mut rows = Vec::new();
    for kv in &diff.only_left {
        rows.push(line(&kv.key, text("span", "mono diff-del", &kv.value), unset()));
    }
    for kv in &diff.only_right {
        rows.push(line(&kv.key, unset(), text("span", "mono diff-add", &kv.value)));
    }
    for c in &diff.changed {
        rows.push(line(
            &c.key,
            text("span", "mono diff-del", &c.left),
            text("span", "mono diff-add", &c.right),
        ));
    }
    part("environment-diff", "Environment", html::table("", &["Variable", "Left", "Right"], &rows))
}

fn duniverse(diff: &DuniverseDiff) -> String {
    let title = "Vendored sources (duniverse)";
    if diff.only_left.is_empty() && diff.only_right.is_empty() && diff.changed.is_empty() {
        return part("duniverse-diff", title, no_differences());
    }
    let mut items = String::new();
    for d in &diff.only_left {
        items += &text("li", "mono diff-del", &format!("- {} {}", d.dir, d.url));
    }
    for d in &diff.only_right {
        items += &text("li", "mono diff-add", &format!("+ {} {}", d.dir, d.url));
    }
    for c in &diff.changed {
        let mut inner = text("span", "mono", &c.dir);
        if c.left_url != c.right_url {
            inner += &text("div", "mono diff-del", &format!("- {}", c.left_url));
            inner += &text("div", "mono diff-add", &format!("+ {}", c.right_url));
        }
        for h in &c.hashes {
            let short = |x: &Option<String>| x.as_deref().map(short_hash).unwrap_or_else(|| "none".into());
            inner += &text(
                "div",
                "mono muted",
                &format!("{}: {} → {}", h.algorithm, short(&h.left), short(&h.right)),
            );
        }
        items += &el("li", &[], &inner);
    }
    part("duniverse-diff", title, el("ul", &[], &items))
}

fn artifacts(diff: &ArtifactDiff) -> String {
    if diff.only_left.is_empty() && diff.only_right.is_empty() && diff.changed.is_empty() {
        return part(
            "artifacts-diff",
            "Artifacts",
            text("p", "muted", "The same artifacts, with the same hashes."),
        );
    }
    let hash = |class: &str, sha: &str, size: u64| {
        el(
            "span",
            &[("class", class), ("title", sha)],
            &esc(&format!("{} ({})", short_hash(sha), human_size(size))),
        )
    };
    let absent = || text("span", "muted", "(absent)");
    let mut rows = Vec::new();
    for a in &diff.only_left {
        rows.push(row(
            "",
            &[text("span", "mono", &a.path), hash("mono diff-del", &a.sha256, a.size), absent()],
        ));
    }
    for a in &diff.only_right {
        rows.push(row(
            "",
            &[text("span", "mono", &a.path), absent(), hash("mono diff-add", &a.sha256, a.size)],
        ));
    }
    for c in &diff.changed {
        rows.push(row(
            "",
            &[
                text("span", "mono", &c.path),
                hash("mono diff-del", &c.left_sha256, c.left_size),
                hash("mono diff-add", &c.right_sha256, c.right_size),
            ],
        ));
    }
    part("artifacts-diff", "Artifacts", html::table("", &["Path", "Left", "Right"], &rows))
}
