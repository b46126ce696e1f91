//! A build's visualizations, drawn as inline SVG: the size treemap of its main binary
//! (squarified, zoomable) and its dependency graph (layered, with highlighting and search).
//! The layouts are pure functions in `crate::treemap` and `crate::graph_layout`; the shapes are
//! markup (`crate::html`, escaped there) with one listener per chart, which keeps the wasm small
//! however many boxes there are.

use leptos::prelude::*;
use petrel_wire::graph::{DependencyGraph, GraphSource, NodeKind};
use petrel_wire::treemap::{SymbolSource, Treemap, TreemapNode, TreemapNodeKind, TreemapTotals};
use uuid::Uuid;

use crate::components::{Ready, fetch_when_ready, loading, raw, target_with};
use crate::graph_layout::{self, Spacing};
use crate::html::{self, el, esc};
use crate::treemap::{Rect, fixed1, hue, human_size, label_fits, percent, squarify};

/// How many times a visualization still being computed (409) is asked for, a second apart.
const MAX_TRIES: u32 = 30;

/// Loading, computing (409: asked again each second), absent (404) or failed (with "Try again").
#[component]
fn Pending(state: Signal<Ready<()>>, what: &'static str, #[prop(into)] retry: Callback<()>) -> impl IntoView {
    move || match state.get() {
        Ready::Loading => loading(),
        Ready::Computing(n) => raw(el(
            "p",
            &[("class", "muted"), ("role", "status")],
            &esc(&format!("The {what} is being computed… (asked {n} of {MAX_TRIES} times)")),
        )),
        Ready::Failed(e) if e.status == 404 => {
            raw(html::text("p", "muted", &format!("There is no {what} for this build.")))
        }
        Ready::Failed(e) => view! {
            <p class="error" role="alert">{e.message}</p>
            <button type="button" class="secondary" on:click=move |_| retry.run(())>"Try again"</button>
        }
        .into_any(),
        Ready::Done(()) => ().into_any(),
    }
}

/// Fetches `url` (trying again while it is being computed) into a state the view follows.
fn load<T>(url: String) -> (RwSignal<Ready<T>>, Signal<Ready<()>>, Callback<()>)
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let state = RwSignal::new(Ready::<T>::Loading);
    fetch_when_ready(url.clone(), state, MAX_TRIES);
    let progress = Signal::derive(move || {
        state.with(|s| match s {
            Ready::Loading => Ready::Loading,
            Ready::Computing(n) => Ready::Computing(*n),
            Ready::Done(_) => Ready::Done(()),
            Ready::Failed(e) => Ready::Failed(e.clone()),
        })
    });
    let retry = Callback::new(move |()| {
        state.set(Ready::Loading);
        fetch_when_ready(url.clone(), state, MAX_TRIES);
    });
    (state, progress, retry)
}

// ---------------------------------------------------------------------------------------------
// Treemap

/// The viewBox below says the same: `"0 0 960 540"` (a literal, so no float formatting ships).
const TM_W: f64 = 960.0;
const TM_H: f64 = 540.0;
const TM_HEADER: f64 = 16.0;
const CHAR_W: f64 = 6.5;

#[component]
pub fn TreemapView(id: Uuid) -> impl IntoView {
    let (state, progress, retry) = load::<Treemap>(format!("/api/v1/builds/{id}/treemap"));
    view! {
        <Pending state=progress what="treemap" retry=retry/>
        {move || state.with(|s| match s {
            Ready::Done(t) => Some(view! { <TreemapChart treemap=t.clone()/> }),
            _ => None,
        })}
    }
}

fn node_at<'a>(root: &'a TreemapNode, path: &[usize]) -> &'a TreemapNode {
    path.iter().fold(root, |n, &i| n.children.get(i).unwrap_or(n))
}

fn kind_name(kind: TreemapNodeKind) -> &'static str {
    match kind {
        TreemapNodeKind::Root => "binary",
        TreemapNodeKind::Group => "group",
        TreemapNodeKind::Library => "library",
        TreemapNodeKind::Module => "module",
        TreemapNodeKind::CompilationUnit => "compilation unit",
        TreemapNodeKind::Function => "function",
        TreemapNodeKind::Data => "data",
        TreemapNodeKind::Section => "section",
        TreemapNodeKind::Other => "other",
    }
}

/// The SVG markup of the zoomed node: its children, and inside each one large enough, the
/// child's children. Coloured by top-level library (the first step from the root).
fn treemap_markup(root: &TreemapNode, zoom: &[usize]) -> String {
    let zoomed = node_at(root, zoom);
    let whole = root.size;
    let colour = |top: usize, node: &TreemapNode, depth: usize| -> String {
        let grey = root.children.get(top).is_none_or(|t| {
            matches!(t.kind, TreemapNodeKind::Section | TreemapNodeKind::Other) || t.name == "unattributed"
        }) || node.kind == TreemapNodeKind::Other;
        if grey {
            "var(--tm-grey)".into()
        } else {
            format!("hsl({} {}% var(--tm-l{depth}))", hue(top), if depth == 1 { 55 } else { 60 })
        }
    };
    let mut out = String::new();
    let mut cell = |node: &TreemapNode, rect: Rect, path: &[usize], depth: usize, fill: String| {
        let name = &node.name;
        let has_children = !node.children.is_empty();
        let tip = format!(
            "{name} ({})\n{} — {} of the binary, {} of this view",
            kind_name(node.kind),
            human_size(node.size),
            percent(node.size, whole),
            percent(node.size, zoomed.size)
        );
        // Labels only where they fit (shortened where a few characters do).
        let room = if depth == 1 && has_children { Rect { h: TM_HEADER + 4.0, ..rect } } else { rect };
        let chars = name.chars().count();
        let fits = ((room.w - 8.0) / CHAR_W).floor().max(0.0) as usize;
        let label = if label_fits(&room, chars, CHAR_W, 11.0) {
            Some(name.clone())
        } else if fits >= 4 && label_fits(&room, fits, CHAR_W, 11.0) {
            Some(format!("{}…", name.chars().take(fits - 1).collect::<String>()))
        } else {
            None
        };
        let path: Vec<String> = path.iter().map(usize::to_string).collect();
        let path = path.join(".");
        let focusable = depth == 1 && has_children;
        let mut attrs =
            vec![("class", if depth == 1 { "treemap-group depth-1" } else { "treemap-group depth-2" })];
        let aria = format!("{name}, {}: zoom in", human_size(node.size));
        if focusable {
            attrs.extend([("tabindex", "0"), ("role", "button"), ("aria-label", aria.as_str())]);
        }
        attrs.push(("data-path", &path));
        let size = node.size.to_string();
        let rect_attrs = [
            ("class", if depth == 1 { "treemap-cell depth-1" } else { "treemap-cell depth-2" }),
            ("data-name", name.as_str()),
            ("data-size", &size),
            ("x", &fixed1(rect.x)),
            ("y", &fixed1(rect.y)),
            ("width", &fixed1(rect.w)),
            ("height", &fixed1(rect.h)),
            ("style", &format!("fill: {fill}")),
        ];
        let mut inner = el("rect", &rect_attrs, &el("title", &[], &esc(&tip)));
        if let Some(l) = label {
            let pos = [
                ("class", "treemap-label"),
                ("x", &fixed1(rect.x + 4.0)),
                ("y", &fixed1(rect.y + 12.0)),
                ("aria-hidden", "true"),
            ];
            inner += &el("text", &pos, &esc(&l));
        }
        out += &el("g", &attrs, &inner);
    };
    let sizes: Vec<f64> = zoomed.children.iter().map(|c| c.size as f64).collect();
    let rects = squarify(&sizes, Rect::new(0.0, 0.0, TM_W, TM_H));
    let mut nested = Vec::new();
    for (i, (child, rect)) in zoomed.children.iter().zip(rects).enumerate() {
        if rect.area() < 1.0 {
            continue;
        }
        let top = zoom.first().copied().unwrap_or(i);
        cell(child, rect, &[i], 1, colour(top, child, 1));
        let inner = rect.inset(2.0).below(TM_HEADER);
        if child.children.is_empty() || inner.w < 24.0 || inner.h < 16.0 {
            continue;
        }
        let sizes: Vec<f64> = child.children.iter().map(|c| c.size as f64).collect();
        for (j, (grandchild, r)) in child.children.iter().zip(squarify(&sizes, inner)).enumerate() {
            if r.area() >= 2.0 {
                nested.push((grandchild, r, [i, j], colour(top, grandchild, 2)));
            }
        }
    }
    // The nested cells go last, on top of their parents.
    for (node, rect, path, fill) in nested {
        cell(node, rect, &path, 2, fill);
    }
    out
}

fn totals_html(totals: &TreemapTotals, warnings: &[String]) -> String {
    let total = totals.loadable_size;
    let mut line = format!(
        "Treemap total {} (loadable sections) for a binary of {} ({} of the file size)",
        human_size(total),
        human_size(totals.file_size),
        percent(total, totals.file_size)
    );
    if let Some(d) = totals.debug_file_size {
        line += &format!("; debug file {}", human_size(d));
    }
    line += &format!(
        ". Attributed to {} symbols: {} ({}); unattributed: {}. Symbols from {}{}.",
        totals.symbols,
        human_size(totals.attributed_size),
        percent(totals.attributed_size, total),
        human_size(totals.unattributed_size),
        symbol_source_text(totals.symbol_source),
        if totals.dwarf { ", C grouped by DWARF compilation units" } else { "" }
    );
    let mut out = el("p", &[("class", "treemap-totals"), ("data-testid", "treemap-totals")], &esc(&line));
    if !warnings.is_empty() {
        let items: String = warnings.iter().map(|w| html::text("li", "muted", w)).collect();
        out += &el("ul", &[("class", "warnings")], &items);
    }
    out
}

fn symbol_source_text(s: SymbolSource) -> &'static str {
    match s {
        SymbolSource::DebugFile => "the separate debug file's symbol table",
        SymbolSource::Binary => "the binary's symbol table",
        SymbolSource::Dynamic => "the dynamic symbol table only",
        SymbolSource::None => "no symbols",
    }
}

#[component]
fn TreemapChart(treemap: Treemap) -> impl IntoView {
    let head = totals_html(&treemap.totals, &treemap.warnings);
    let root = StoredValue::new(treemap.root);
    let zoom = RwSignal::new(Vec::<usize>::new());
    // Zooms into the cell at `relative` (below the zoomed node): into the deepest node on the
    // way that has something inside.
    let zoom_into = move |relative: &str| {
        let base = zoom.get_untracked();
        let mut full = base.clone();
        full.extend(relative.split('.').filter_map(|p| p.parse::<usize>().ok()));
        root.with_value(|r| {
            while full.len() > base.len() && node_at(r, &full).children.is_empty() {
                full.pop();
            }
        });
        if full != base {
            zoom.set(full);
        }
    };
    let on_click = move |ev: leptos::ev::MouseEvent| {
        if let Some(path) = target_with(&ev, "data-path").and_then(|e| e.get_attribute("data-path")) {
            zoom_into(&path);
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let activate = ev.key() == "Enter" || ev.key() == " ";
        if let Some(path) =
            target_with(&ev, "data-path").and_then(|e| e.get_attribute("data-path")).filter(|_| activate)
        {
            ev.prevent_default();
            zoom_into(&path);
            // The focused box was drawn anew: keyboard users go on from the first one (or from
            // "Back" where nothing inside can be zoomed into).
            request_animation_frame(|| {
                use leptos::wasm_bindgen::JsCast;
                let find = |css| document().query_selector(css).ok().flatten();
                if let Some(next) = find("#treemap [tabindex]").or_else(|| find("[data-testid=treemap-back]"))
                {
                    let _ = next.unchecked_into::<web_sys::HtmlElement>().focus();
                }
            });
        }
    };
    let back = move |_| zoom.update(|z| _ = z.pop());
    // The path from the root to the zoomed node, as buttons that zoom out to there (markup, with
    // one listener); the last one is where we are.
    let crumbs = move || {
        let z = zoom.get();
        let items: String = root.with_value(|r| {
            (0..=z.len())
                .map(|k| {
                    let name = &node_at(r, &z[..k]).name;
                    let depth = k.to_string();
                    let mut attrs =
                        vec![("type", "button"), ("class", "link"), ("data-depth", depth.as_str())];
                    if k == z.len() {
                        attrs.push(("aria-current", "location"));
                        attrs.push(("disabled", ""));
                    }
                    el("li", &[], &el("button", &attrs, &esc(name)))
                })
                .collect()
        });
        raw(el("ol", &[("class", "crumbs")], &items))
    };
    let on_crumb = move |ev: leptos::ev::MouseEvent| {
        if let Some(depth) = target_with(&ev, "data-depth")
            .and_then(|b| b.get_attribute("data-depth"))
            .and_then(|d| d.parse::<usize>().ok())
        {
            zoom.update(|z| z.truncate(depth));
        }
    };
    view! {
        {raw(head)}
        <nav class="treemap-nav" aria-label="Treemap zoom">
            <button type="button" class="secondary" on:click=back disabled=move || zoom.with(Vec::is_empty)
                data-testid="treemap-back">"Back"</button>
            <div class="crumbs-wrap" on:click=on_crumb>{crumbs}</div>
        </nav>
        <svg id="treemap" class="treemap" viewBox="0 0 960 540" role="group"
            aria-label="Size treemap of the main binary: choose a box to zoom in"
            on:click=on_click on:keydown=on_key
            inner_html=move || zoom.with(|z| root.with_value(|r| treemap_markup(r, z)))>
        </svg>
    }
}

// ---------------------------------------------------------------------------------------------
// Dependency graph

const LABEL_CHARS: usize = 26;

#[component]
pub fn DependencyGraphView(id: Uuid) -> impl IntoView {
    let (state, progress, retry) = load::<DependencyGraph>(format!("/api/v1/builds/{id}/dependencies"));
    view! {
        <Pending state=progress what="dependency graph" retry=retry/>
        {move || state.with(|s| match s {
            Ready::Done(g) => Some(view! { <GraphChart graph=g.clone()/> }),
            _ => None,
        })}
    }
}

fn source_text(s: GraphSource) -> &'static str {
    match s {
        GraphSource::Opam => "the opam switch",
        GraphSource::OpamDuniverse => "the unikernel's vendored (duniverse) packages",
        GraphSource::Cargo => "Cargo.lock",
    }
}

/// What hovering needs: each node's dependencies and dependents, and its edges.
struct Links {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    out_edges: Vec<Vec<usize>>,
    in_edges: Vec<Vec<usize>>,
}

/// The graph's SVG markup (edges, then nodes: `rect.graph-node#gn-<i>`, `path.graph-edge#ge-<k>`),
/// its size, and its links.
fn graph_markup(graph: &DependencyGraph) -> (String, f64, f64, Links) {
    let n = graph.nodes.len();
    // Node ids to indices: a sorted list (smaller in wasm than a hash map).
    let mut index: Vec<(&str, usize)> =
        graph.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    index.sort_unstable();
    let find = |id: &str| index.binary_search_by(|(k, _)| (*k).cmp(id)).ok().map(|at| index[at].1);
    let edges: Vec<(usize, usize)> =
        graph.edges.iter().filter_map(|e| Some((find(&e.from)?, find(&e.to)?))).collect();
    let root = find(&graph.root).unwrap_or(0);
    let labels: Vec<String> = graph
        .nodes
        .iter()
        .map(|n| {
            if n.name.chars().count() > LABEL_CHARS {
                format!("{}…", n.name.chars().take(LABEL_CHARS - 1).collect::<String>())
            } else {
                n.name.clone()
            }
        })
        .collect();
    let widths: Vec<f64> = labels
        .iter()
        .map(|l| graph_layout::box_width(l.chars().count(), CHAR_W + 0.5, 40.0, 200.0))
        .collect();
    let layout = graph_layout::layout(&widths, &edges, root, Spacing::default());
    let (deps, dependents) = graph_layout::neighbours(n, &edges);
    let mut out_edges = vec![Vec::new(); n];
    let mut in_edges = vec![Vec::new(); n];
    let mut markup = String::from("<g class=\"graph-edges\">");
    for (k, &(from, to)) in edges.iter().enumerate() {
        out_edges[from].push(k);
        in_edges[to].push(k);
        let d = graph_layout::edge_path(&layout.nodes[from], &layout.nodes[to]);
        markup += &el("path", &[("id", &format!("ge-{k}")), ("class", "graph-edge"), ("d", &d)], "");
    }
    markup += "</g><g class=\"graph-nodes\">";
    let max = graph.nodes.iter().map(|n| n.reverse_dependencies).max().unwrap_or(0);
    for (i, node) in graph.nodes.iter().enumerate() {
        let p = layout.nodes[i];
        let kind = match node.kind {
            NodeKind::Root => "root",
            NodeKind::Direct => "direct",
            NodeKind::Transitive => "transitive",
        };
        let count = node.reverse_dependencies;
        let tip = format!(
            "{}{}: {count} package{} depend{} on it directly",
            node.name,
            node.version.as_ref().map(|v| format!(" {v}")).unwrap_or_default(),
            if count == 1 { "" } else { "s" },
            if count == 1 { "s" } else { "" },
        );
        let class = format!("graph-node shade-{} {kind}", graph_layout::shade(count, max));
        let rect = el(
            "rect",
            &[
                ("id", &format!("gn-{i}")),
                ("class", &class),
                ("data-id", &node.id),
                ("data-dependents", &count.to_string()),
                ("x", &fixed1(p.x)),
                ("y", &fixed1(p.y)),
                ("width", &fixed1(p.w)),
                ("height", &fixed1(p.h)),
                ("rx", "4"),
            ],
            &el("title", &[], &esc(&tip)),
        );
        let label = el(
            "text",
            &[
                ("class", "graph-label"),
                ("x", &fixed1(p.center_x())),
                ("y", &fixed1(p.y + p.h / 2.0 + 4.0)),
                ("text-anchor", "middle"),
                ("aria-hidden", "true"),
            ],
            &esc(&labels[i]),
        );
        let index = i.to_string();
        let attrs = [
            ("class", "graph-node-group"),
            ("data-index", index.as_str()),
            ("tabindex", "0"),
            ("role", "img"),
            ("aria-label", tip.as_str()),
        ];
        markup += &el("g", &attrs, &(rect + &label));
    }
    markup += "</g>";
    (markup, layout.width, layout.height, Links { deps, dependents, out_edges, in_edges })
}

/// Adds or removes `class` on the element with id `id`.
fn mark(document: &web_sys::Document, id: &str, class: &str, on: bool) {
    if let Some(e) = document.get_element_by_id(id) {
        let _ = e.class_list().toggle_with_force(class, on);
    }
}

#[component]
fn GraphChart(graph: DependencyGraph) -> impl IntoView {
    let (markup, width, height, links) = graph_markup(&graph);
    let links = StoredValue::new(links);
    let names = StoredValue::new(graph.nodes.iter().map(|n| n.name.to_ascii_lowercase()).collect::<Vec<_>>());
    let svg = NodeRef::<leptos::svg::Svg>::new();
    let hovered = StoredValue::new(None::<usize>);
    let matches = RwSignal::new(None::<usize>);
    // Highlights (or clears) a node, its dependencies, its dependents and their edges.
    let highlight = move |node: usize, on: bool| {
        let document = document();
        links.with_value(|l| {
            mark(&document, &format!("gn-{node}"), "hovered", on);
            for &d in &l.deps[node] {
                mark(&document, &format!("gn-{d}"), "dependency", on);
            }
            for &d in &l.dependents[node] {
                mark(&document, &format!("gn-{d}"), "dependent", on);
            }
            for &k in &l.out_edges[node] {
                mark(&document, &format!("ge-{k}"), "edge-out", on);
            }
            for &k in &l.in_edges[node] {
                mark(&document, &format!("ge-{k}"), "edge-in", on);
            }
        });
        if let Some(svg) = svg.get_untracked() {
            let _ = svg.class_list().toggle_with_force("has-hover", on);
        }
    };
    let hover = move |node: Option<usize>| {
        let before = hovered.get_value();
        if before == node {
            return;
        }
        if let Some(b) = before {
            highlight(b, false);
        }
        if let Some(n) = node {
            highlight(n, true);
        }
        hovered.set_value(node);
    };
    let node_of = |ev: &web_sys::Event| {
        target_with(ev, "data-index").and_then(|e| e.get_attribute("data-index")).and_then(|i| i.parse().ok())
    };
    let search = move |query: String| {
        let q = query.trim().to_ascii_lowercase();
        let document = document();
        let found = names.with_value(|ns| {
            let mut found = 0;
            for (i, name) in ns.iter().enumerate() {
                let hit = !q.is_empty() && name.contains(&q);
                found += usize::from(hit);
                mark(&document, &format!("gn-{i}"), "match", hit);
                mark(&document, &format!("gn-{i}"), "dim", !q.is_empty() && !hit);
            }
            found
        });
        matches.set((!q.is_empty()).then_some(found));
    };
    let direct = graph.nodes.iter().filter(|n| n.kind == NodeKind::Direct).count();
    let summary = format!(
        "{} packages ({direct} direct dependencies), {} dependencies between them, from {}. Darker boxes are \
         packages more others depend on. Hover or focus a package to highlight ",
        graph.nodes.len(),
        graph.edges.len(),
        source_text(graph.source)
    );
    let summary = el(
        "p",
        &[("class", "muted"), ("data-testid", "graph-summary")],
        &format!(
            "{}{} and its {}.",
            esc(&summary),
            html::text("span", "legend dependency", "its dependencies"),
            html::text("span", "legend dependent", "dependents")
        ),
    );
    view! {
        {raw(summary)}
        <label class="graph-search">"Find a package"
            <input type="search" name="graph-search" placeholder="name" on:input=move |ev| search(event_target_value(&ev))/>
        </label>
        " "
        <span role="status" class="muted" data-testid="graph-matches">
            {move || matches.get().map(|n| html::plural(n, "package matches", "packages match"))}
        </span>
        <div class="graph-wrap">
            <svg id="dependency-graph" class="dependency-graph" node_ref=svg width=fixed1(width)
                height=fixed1(height) viewBox=format!("0 0 {} {}", fixed1(width), fixed1(height)) role="group"
                aria-label="Dependency graph"
                on:mouseover=move |ev| hover(node_of(&ev))
                on:mouseleave=move |_| hover(None)
                on:focusin=move |ev| hover(node_of(&ev))
                on:focusout=move |_| hover(None)
                inner_html=markup>
            </svg>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_wire::graph::{GraphEdge, GraphNode};

    fn node(name: &str, kind: TreemapNodeKind, size: u64, children: Vec<TreemapNode>) -> TreemapNode {
        TreemapNode { name: name.into(), kind, size, symbols: 1, children }
    }

    #[test]
    fn treemap_markup_draws_two_levels_with_paths_and_escapes() {
        use TreemapNodeKind::*;
        let root = node(
            "bin",
            Root,
            100,
            vec![
                node(
                    "<lib>",
                    Library,
                    70,
                    vec![node("a", Module, 40, vec![]), node("b", Module, 30, vec![])],
                ),
                node("unattributed", Group, 30, vec![]),
            ],
        );
        let markup = treemap_markup(&root, &[]);
        assert_eq!(markup.matches("class=\"treemap-cell depth-1\"").count(), 2);
        assert_eq!(markup.matches("class=\"treemap-cell depth-2\"").count(), 2);
        assert!(markup.contains("data-path=\"0.1\""));
        assert!(markup.contains("data-name=\"&lt;lib&gt;\""));
        assert!(!markup.contains("<lib>"));
        // Unattributed bytes are grey, libraries coloured.
        assert!(markup.contains("var(--tm-grey)"));
        assert!(markup.contains("hsl(0 55% var(--tm-l1))"));
        // Zoomed into the library: its modules are the top level.
        let zoomed = treemap_markup(&root, &[0]);
        assert_eq!(zoomed.matches("class=\"treemap-cell depth-1\"").count(), 2);
        assert!(zoomed.contains("data-name=\"a\""));
    }

    #[test]
    fn graph_markup_has_a_node_per_package_and_links() {
        let n = |id: &str, kind, rdeps| GraphNode {
            id: id.into(),
            name: id.into(),
            version: None,
            kind,
            reverse_dependencies: rdeps,
        };
        let graph = DependencyGraph {
            source: GraphSource::Opam,
            root: "app".into(),
            nodes: vec![
                n("app", NodeKind::Root, 0),
                n("fmt", NodeKind::Direct, 2),
                n("ocaml", NodeKind::Transitive, 1),
            ],
            edges: vec![
                GraphEdge { from: "app".into(), to: "fmt".into() },
                GraphEdge { from: "app".into(), to: "ocaml".into() },
                GraphEdge { from: "fmt".into(), to: "ocaml".into() },
                GraphEdge { from: "fmt".into(), to: "missing".into() },
            ],
        };
        let (markup, width, height, links) = graph_markup(&graph);
        assert_eq!(markup.matches("<rect id=\"gn-").count(), 3);
        assert_eq!(markup.matches("class=\"graph-edge\"").count(), 3);
        assert!(markup.contains("class=\"graph-node shade-4 direct\""));
        assert!(width > 0.0 && height > 0.0);
        assert_eq!(links.deps[0], vec![1, 2]);
        assert_eq!(links.dependents[2], vec![0, 1]);
        assert_eq!(links.out_edges[1], vec![2]);
    }
}
