//! Dependency graphs of a build, from its `opam-switch` or its `Cargo.lock`.
//!
//! opam (as opam-graph draws it): the root is the switch's single root package; its direct
//! dependencies are its `depends` and `depopts` that are installed, and the graph is their
//! transitive closure over the installed packages' opam files. A MirageOS 4 unikernel's root
//! carries orb's `x-orb-dependencies` (its vendored duniverse packages, which the switch does
//! not install): when present, that graph is used instead.
//!
//! Cargo: the root is the workspace package (the one without `source`); with several, the
//! caller names one, or a virtual root depends on all of them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petrel_wire::graph::{DependencyGraph, GraphEdge, GraphNode, GraphSource, NodeKind};

use crate::cargo_lock::{CargoLock, CargoPackageId};
use crate::opam::{OpamError, SwitchExport};

/// The id of the virtual root over several opam roots (parentheses: no package has them).
pub const VIRTUAL_OPAM_ROOT: &str = "(roots)";
/// The id of the virtual root over several Cargo workspace members.
pub const VIRTUAL_CARGO_ROOT: &str = "(workspace)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("no root package: the switch has no roots and the lock file no workspace package")]
    NoRoot,
    #[error("root package {0:?} is not in the build")]
    UnknownRoot(String),
    #[error("root package {0:?} is ambiguous (several versions, none local)")]
    AmbiguousRoot(String),
    #[error(transparent)]
    Opam(#[from] OpamError),
}

/// The dependency graph of an opam switch. `root` picks the root package by name; by default
/// it is the single `roots` entry (a virtual root over all of them if there are several).
pub fn opam_dependency_graph(
    export: &SwitchExport,
    root: Option<&str>,
) -> Result<DependencyGraph, GraphError> {
    let root = match root {
        Some(name) if export.installed_version(name).is_some() || export.packages.contains_key(name) => {
            name.to_owned()
        }
        Some(name) => return Err(GraphError::UnknownRoot(name.to_owned())),
        None => match export.roots.as_slice() {
            [] => return Err(GraphError::NoRoot),
            [one] => one.name.clone(),
            _ => VIRTUAL_OPAM_ROOT.to_owned(),
        },
    };
    let info = |id: &str| {
        if id == VIRTUAL_OPAM_ROOT {
            (id.to_owned(), None)
        } else {
            (id.to_owned(), export.version_of(id).map(str::to_owned))
        }
    };

    if let Some(orb) = export.packages.get(&root).and_then(|p| p.orb_dependencies()) {
        let adjacency: BTreeMap<String, BTreeSet<String>> =
            orb?.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect();
        return Ok(build(GraphSource::OpamDuniverse, root, &adjacency, info));
    }

    let installed: BTreeSet<&str> = export.installed.iter().map(|a| a.name.as_str()).collect();
    let mut adjacency: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, package) in &export.packages {
        let deps = package
            .dependency_names()
            .into_iter()
            .filter(|d| installed.contains(d))
            .map(str::to_owned)
            .collect();
        adjacency.insert(name.clone(), deps);
    }
    if root == VIRTUAL_OPAM_ROOT {
        adjacency.insert(root.clone(), export.roots.iter().map(|a| a.name.clone()).collect());
    }
    Ok(build(GraphSource::Opam, root, &adjacency, info))
}

/// The dependency graph of a `Cargo.lock`. `root` picks the root crate by name; by default it
/// is the single workspace package (a virtual root over all of them if there are several).
pub fn cargo_dependency_graph(lock: &CargoLock, root: Option<&str>) -> Result<DependencyGraph, GraphError> {
    // Node ids: the name, unless the lock holds the name in several versions (or sources).
    let mut per_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_version: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for p in &lock.packages {
        *per_name.entry(&p.name).or_default() += 1;
        *per_version.entry((&p.name, &p.version)).or_default() += 1;
    }
    let id_of = |id: &CargoPackageId| -> String {
        if per_name.get(id.name.as_str()) == Some(&1) {
            id.name.clone()
        } else if per_version.get(&(id.name.as_str(), id.version.as_str())) == Some(&1) {
            format!("{} {}", id.name, id.version)
        } else {
            format!("{} {} ({})", id.name, id.version, id.source.as_deref().unwrap_or("local"))
        }
    };
    let mut nodes: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    let mut adjacency: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &lock.packages {
        let id = id_of(&p.id());
        nodes.insert(id.clone(), (p.name.clone(), Some(p.version.clone())));
        adjacency.insert(id, p.dependencies.iter().map(&id_of).collect());
    }

    let locals: Vec<&crate::cargo_lock::CargoPackage> = lock.local_packages().collect();
    let root = match root {
        Some(name) => {
            let local: Vec<_> = locals.iter().filter(|p| p.name == name).collect();
            let any: Vec<_> = lock.packages.iter().filter(|p| p.name == name).collect();
            match (local.as_slice(), any.as_slice()) {
                ([one], _) => id_of(&one.id()),
                (_, [one]) => id_of(&one.id()),
                (_, []) => return Err(GraphError::UnknownRoot(name.to_owned())),
                _ => return Err(GraphError::AmbiguousRoot(name.to_owned())),
            }
        }
        None => match locals.as_slice() {
            [] => return Err(GraphError::NoRoot),
            [one] => id_of(&one.id()),
            several => {
                let members = several.iter().map(|p| id_of(&p.id())).collect();
                adjacency.insert(VIRTUAL_CARGO_ROOT.to_owned(), members);
                nodes.insert(VIRTUAL_CARGO_ROOT.to_owned(), (VIRTUAL_CARGO_ROOT.to_owned(), None));
                VIRTUAL_CARGO_ROOT.to_owned()
            }
        },
    };
    let info = |id: &str| nodes.get(id).cloned().unwrap_or_else(|| (id.to_owned(), None));
    Ok(build(GraphSource::Cargo, root, &adjacency, info))
}

/// Breadth-first closure from the root, then nodes, edges and reverse-dependency counts in a
/// deterministic order.
fn build(
    source: GraphSource,
    root: String,
    adjacency: &BTreeMap<String, BTreeSet<String>>,
    info: impl Fn(&str) -> (String, Option<String>),
) -> DependencyGraph {
    let empty = BTreeSet::new();
    let deps = |id: &str| adjacency.get(id).unwrap_or(&empty);
    let direct: BTreeSet<&str> = deps(&root).iter().map(String::as_str).filter(|d| *d != root).collect();
    let mut reached: BTreeSet<&str> = BTreeSet::from([root.as_str()]);
    let mut queue: VecDeque<&str> = VecDeque::from([root.as_str()]);
    let mut edges: BTreeSet<GraphEdge> = BTreeSet::new();
    while let Some(id) = queue.pop_front() {
        for dep in deps(id) {
            if dep == id {
                continue;
            }
            edges.insert(GraphEdge { from: id.to_owned(), to: dep.clone() });
            if reached.insert(dep) {
                queue.push_back(dep);
            }
        }
    }
    let mut reverse: BTreeMap<&str, u32> = BTreeMap::new();
    for e in &edges {
        *reverse.entry(e.to.as_str()).or_default() += 1;
    }
    let node = |id: &str, kind| {
        let (name, version) = info(id);
        GraphNode {
            id: id.to_owned(),
            name,
            version,
            kind,
            reverse_dependencies: reverse.get(id).copied().unwrap_or(0),
        }
    };
    let mut nodes = vec![node(&root, NodeKind::Root)];
    nodes.extend(direct.iter().map(|id| node(id, NodeKind::Direct)));
    nodes.extend(
        reached
            .iter()
            .filter(|id| **id != root && !direct.contains(*id))
            .map(|id| node(id, NodeKind::Transitive)),
    );
    DependencyGraph { source, root, nodes, edges: edges.into_iter().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cargo_lock::parse_cargo_lock;
    use crate::opam::parse_switch_export;

    fn ids(g: &DependencyGraph, kind: NodeKind) -> Vec<&str> {
        g.nodes.iter().filter(|n| n.kind == kind).map(|n| n.id.as_str()).collect()
    }

    fn node<'a>(g: &'a DependencyGraph, id: &str) -> &'a GraphNode {
        g.nodes.iter().find(|n| n.id == id).unwrap_or_else(|| panic!("no node {id}"))
    }

    /// app -> left, right; left -> base; right -> base; base -> (nothing); plus an unrelated
    /// installed package and a depopt that is not installed.
    const DIAMOND: &str = r#"opam-version: "2.0"
roots: ["app.1.0"]
installed: ["app.1.0" "left.2" "right.3" "base.4" "unrelated.5"]
package "app" { version: "1.0" depends: ["left" {>= "2"} "right"] depopts: ["not-installed"] }
package "left" { version: "2" depends: ["base" {build}] }
package "right" { version: "3" depends: ["base" | "other"] }
package "base" { version: "4" depends: [] }
package "unrelated" { version: "5" depends: ["base"] }
"#;

    #[test]
    fn opam_diamond() {
        let export = parse_switch_export(DIAMOND.as_bytes()).expect("valid");
        let g = opam_dependency_graph(&export, None).expect("graph");
        assert_eq!(g.source, GraphSource::Opam);
        assert_eq!(g.root, "app");
        assert_eq!(ids(&g, NodeKind::Root), ["app"]);
        assert_eq!(ids(&g, NodeKind::Direct), ["left", "right"]);
        assert_eq!(ids(&g, NodeKind::Transitive), ["base"]);
        assert_eq!(g.nodes.len(), 4, "unrelated and not-installed are left out");
        assert_eq!(node(&g, "base").reverse_dependencies, 2, "shared by both sides of the diamond");
        assert_eq!(node(&g, "left").reverse_dependencies, 1);
        assert_eq!(node(&g, "app").reverse_dependencies, 0);
        assert_eq!(node(&g, "right").version.as_deref(), Some("3"));
        let edges: Vec<_> = g.edges.iter().map(|e| format!("{}->{}", e.from, e.to)).collect();
        assert_eq!(edges, ["app->left", "app->right", "left->base", "right->base"]);
        // Deterministic.
        assert_eq!(opam_dependency_graph(&export, None).expect("graph"), g);
    }

    #[test]
    fn opam_cycles_and_explicit_root() {
        let text = r#"roots: ["a.1"]
installed: ["a.1" "b.1" "c.1"]
package "a" { depends: ["b"] }
package "b" { depends: ["c" "b"] }
package "c" { depends: ["a"] }
"#;
        let export = parse_switch_export(text.as_bytes()).expect("valid");
        let g = opam_dependency_graph(&export, None).expect("graph");
        assert_eq!(g.nodes.len(), 3);
        assert_eq!(node(&g, "a").reverse_dependencies, 1);
        assert!(g.edges.iter().all(|e| e.from != e.to), "self-loops dropped");
        let g = opam_dependency_graph(&export, Some("c")).expect("graph");
        assert_eq!(g.root, "c");
        assert_eq!(ids(&g, NodeKind::Direct), ["a"]);
        assert_eq!(opam_dependency_graph(&export, Some("zzz")), Err(GraphError::UnknownRoot("zzz".into())));
    }

    #[test]
    fn opam_roots() {
        let none = parse_switch_export(b"installed: [\"a.1\"]").expect("valid");
        assert_eq!(opam_dependency_graph(&none, None), Err(GraphError::NoRoot));
        let two =
            parse_switch_export(b"roots: [\"a.1\" \"b.1\"]\ninstalled: [\"a.1\" \"b.1\"]").expect("valid");
        let g = opam_dependency_graph(&two, None).expect("graph");
        assert_eq!(g.root, VIRTUAL_OPAM_ROOT);
        assert_eq!(ids(&g, NodeKind::Direct), ["a", "b"]);
        assert_eq!(node(&g, VIRTUAL_OPAM_ROOT).version, None);
    }

    #[test]
    fn opam_mirage4_uses_orb_dependencies() {
        let export = parse_switch_export(crate::opam::tests::MIRAGE4.as_bytes()).expect("valid");
        let g = opam_dependency_graph(&export, None).expect("graph");
        assert_eq!(g.source, GraphSource::OpamDuniverse);
        assert_eq!(ids(&g, NodeKind::Direct), ["mirage-runtime", "mirage-solo5", "ocaml-solo5"]);
        assert_eq!(ids(&g, NodeKind::Transitive), ["cstruct"]);
        assert_eq!(node(&g, "cstruct").reverse_dependencies, 2);
        assert_eq!(node(&g, "ocaml-solo5").version.as_deref(), Some("0.8.1"), "installed: version known");
        assert_eq!(node(&g, "cstruct").version, None, "vendored only: no version");
        let bad = crate::opam::tests::MIRAGE4.replace("[\"cstruct\" []]", "[\"cstruct\" [1]]");
        let export = parse_switch_export(bad.as_bytes()).expect("valid");
        assert!(matches!(opam_dependency_graph(&export, None), Err(GraphError::Opam(_))));
    }

    #[test]
    fn opam_without_orb_field_uses_depends() {
        let text = crate::opam::tests::MIRAGE4.replace("x-orb-dependencies", "x-something-else");
        let export = parse_switch_export(text.as_bytes()).expect("valid");
        let g = opam_dependency_graph(&export, None).expect("graph");
        assert_eq!(g.source, GraphSource::Opam);
        assert_eq!(ids(&g, NodeKind::Direct), ["mirage", "ocaml", "ocaml-solo5", "opam-monorepo", "solo5"]);
        assert!(ids(&g, NodeKind::Transitive).contains(&"dune"));
        assert!(!ids(&g, NodeKind::Transitive).contains(&"ocamlfind-secondary"), "not installed");
    }

    const CARGO_DIAMOND: &str = r#"version = 4
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["left", "right"]
[[package]]
name = "left"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = ["base 1.0.0"]
[[package]]
name = "right"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = ["base 1.0.0", "base 2.0.0"]
[[package]]
name = "base"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "base"
version = "2.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

    #[test]
    fn cargo_diamond_with_two_versions() {
        let lock = parse_cargo_lock(CARGO_DIAMOND.as_bytes()).expect("valid");
        let g = cargo_dependency_graph(&lock, None).expect("graph");
        assert_eq!(g.source, GraphSource::Cargo);
        assert_eq!(g.root, "app");
        assert_eq!(ids(&g, NodeKind::Direct), ["left", "right"]);
        assert_eq!(ids(&g, NodeKind::Transitive), ["base 1.0.0", "base 2.0.0"]);
        assert_eq!(node(&g, "base 1.0.0").reverse_dependencies, 2);
        assert_eq!(node(&g, "base 2.0.0").reverse_dependencies, 1);
        assert_eq!(node(&g, "base 2.0.0").name, "base");
        assert_eq!(g.edges.len(), 5);
    }

    #[test]
    fn cargo_workspace_roots() {
        let two = CARGO_DIAMOND.replace(
            "[[package]]\nname = \"left\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"",
            "[[package]]\nname = \"left\"\nversion = \"1.0.0\"",
        );
        let lock = parse_cargo_lock(two.as_bytes()).expect("valid");
        let g = cargo_dependency_graph(&lock, None).expect("graph");
        assert_eq!(g.root, VIRTUAL_CARGO_ROOT);
        assert_eq!(ids(&g, NodeKind::Direct), ["app", "left"]);
        assert_eq!(node(&g, "left").reverse_dependencies, 2, "the virtual root and app");
        let g = cargo_dependency_graph(&lock, Some("left")).expect("graph");
        assert_eq!(g.root, "left");
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(cargo_dependency_graph(&lock, Some("nope")), Err(GraphError::UnknownRoot("nope".into())));
        assert_eq!(
            cargo_dependency_graph(&lock, Some("base")),
            Err(GraphError::AmbiguousRoot("base".into()))
        );
        let empty = parse_cargo_lock(b"version = 4").expect("valid");
        assert_eq!(cargo_dependency_graph(&empty, None), Err(GraphError::NoRoot));
    }
}
