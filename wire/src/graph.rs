//! A build's dependency graph (from its `opam-switch` or `Cargo.lock`), for the dependency view.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The packages reachable from a build's root and the dependencies between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DependencyGraph {
    /// Where the graph comes from.
    pub source: GraphSource,
    /// The root node's `id`.
    pub root: String,
    /// Root first, then direct dependencies, then transitive ones; each group sorted by `id`.
    pub nodes: Vec<GraphNode>,
    /// Sorted by `from`, then `to`; no duplicates, no self-loops.
    pub edges: Vec<GraphEdge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GraphSource {
    /// The opam packages installed in the switch (`depends` and `depopts`).
    Opam,
    /// A MirageOS 4 unikernel's vendored (duniverse) packages, from orb's `x-orb-dependencies`.
    OpamDuniverse,
    /// The crates of a `Cargo.lock`.
    Cargo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GraphNode {
    /// Unique within the graph: the package name, or `name version` where one name has several
    /// versions (Cargo).
    pub id: String,
    pub name: String,
    /// Unknown for vendored packages that are not installed in the switch, and for a virtual
    /// workspace root.
    pub version: Option<String>,
    pub kind: NodeKind,
    /// How many nodes of the graph depend on this one directly (how shared it is).
    pub reverse_dependencies: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// The package the build is about (or a virtual root over several workspace members).
    Root,
    /// A dependency of the root.
    Direct,
    /// Reachable from the root only through other packages.
    Transitive,
}

/// `from` depends on `to` (node ids).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
}
