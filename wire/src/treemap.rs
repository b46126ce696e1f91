//! Size treemap of a build's main binary (what modulectomy draws for builder-web).
//!
//! One tree carries the full detail; the views are cut from it ([`Treemap::coarse`],
//! [`TreemapNode::cut`], [`TreemapNode::fold_small`]) by the server or the SPA, so one cached
//! document serves both. Every node's `size` is the sum of its children's, and the root's is
//! the binary's loadable size: bytes no symbol covers appear under `unattributed`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Bumped whenever the classification or the shape changes, so cached treemaps are rebuilt
/// (as builder-web keys its cache by the generator's version).
pub const TREEMAP_VERSION: u32 = 1;

/// A binary's size, broken down by library, module and function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Treemap {
    /// [`TREEMAP_VERSION`] of the generator.
    pub version: u32,
    /// The breakdown; its size equals `totals.loadable_size`.
    pub root: TreemapNode,
    pub totals: TreemapTotals,
    /// Every section of the binary, loadable or not, in file order.
    pub sections: Vec<TreemapSection>,
    /// What limited the breakdown (e.g. no symbol table, unreadable DWARF).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One box of the treemap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TreemapNode {
    pub name: String,
    pub kind: TreemapNodeKind,
    /// Bytes, including every descendant.
    pub size: u64,
    /// Symbols merged into this node (0 for unattributed bytes).
    pub symbols: u64,
    /// Ordered by size descending, then kind, then name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub children: Vec<TreemapNode>,
}

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TreemapNodeKind {
    /// The whole binary.
    Root,
    /// A grouping without a source-level meaning: `OCaml runtime`, `C / other`, `unattributed`.
    Group,
    /// An OCaml library (first component of the module path) or a Rust crate.
    Library,
    /// An OCaml compilation unit or a Rust module.
    Module,
    /// A C (or other) compilation unit, from DWARF.
    CompilationUnit,
    /// Code.
    Function,
    /// Data.
    Data,
    /// Bytes of one section that no symbol covers.
    Section,
    /// Smaller siblings folded together by [`TreemapNode::fold_small`].
    Other,
}

/// Sizes to put the treemap in proportion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TreemapTotals {
    /// Size of the main binary's file.
    pub file_size: u64,
    /// Size of the separate debug file, when one was given.
    pub debug_file_size: Option<u64>,
    /// Sum of the loadable (SHF_ALLOC) sections, `.bss` included: the treemap's total.
    pub loadable_size: u64,
    /// Bytes covered by symbols.
    pub attributed_size: u64,
    /// `loadable_size - attributed_size`.
    pub unattributed_size: u64,
    /// Symbols that contributed bytes.
    pub symbols: u64,
    /// Where the symbols came from.
    pub symbol_source: SymbolSource,
    /// Whether DWARF compilation units grouped the C symbols.
    pub dwarf: bool,
}

/// The symbol table the treemap was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SymbolSource {
    /// `.symtab` of the separate debug file.
    DebugFile,
    /// `.symtab` of the binary itself.
    Binary,
    /// Only `.dynsym` (a stripped, dynamically linked binary).
    Dynamic,
    /// No symbols at all: everything is unattributed.
    None,
}

/// One ELF section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TreemapSection {
    pub name: String,
    pub kind: SectionKind,
    pub address: u64,
    /// Bytes in memory (for `.bss`, none of them in the file).
    pub size: u64,
    /// Whether the section is loaded (SHF_ALLOC) and so counted in the treemap.
    pub loadable: bool,
    /// Bytes of this section covered by symbols.
    pub attributed: u64,
}

/// Broad class of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    /// Executable code.
    Text,
    /// Read-only data.
    Rodata,
    /// Writable initialised data.
    Data,
    /// Zero-initialised data: occupies memory, not file space.
    Bss,
    /// Thread-local templates.
    Tls,
    /// Not loaded: symbol tables, DWARF, notes...
    NonLoadable,
}

impl Treemap {
    /// Libraries and their modules (OCaml units, top-level Rust modules), C compilation
    /// units and sections: no functions. Sizes are unchanged.
    pub fn coarse(&self) -> Treemap {
        fn keep(node: &TreemapNode, parent: TreemapNodeKind) -> Option<TreemapNode> {
            let kept = match node.kind {
                TreemapNodeKind::Function | TreemapNodeKind::Data | TreemapNodeKind::Other => false,
                TreemapNodeKind::Module => parent == TreemapNodeKind::Library,
                _ => true,
            };
            kept.then(|| TreemapNode {
                children: node.children.iter().filter_map(|c| keep(c, node.kind)).collect(),
                ..node.shallow()
            })
        }
        Treemap {
            root: keep(&self.root, TreemapNodeKind::Root).unwrap_or_else(|| self.root.shallow()),
            ..self.clone_without_root()
        }
    }

    fn clone_without_root(&self) -> Treemap {
        Treemap {
            version: self.version,
            root: self.root.shallow(),
            totals: self.totals.clone(),
            sections: self.sections.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

impl TreemapNode {
    /// The node without its children.
    pub fn shallow(&self) -> TreemapNode {
        TreemapNode {
            name: self.name.clone(),
            kind: self.kind,
            size: self.size,
            symbols: self.symbols,
            children: Vec::new(),
        }
    }

    /// The tree down to `depth` levels below this node (0 = this node alone).
    pub fn cut(&self, depth: usize) -> TreemapNode {
        TreemapNode {
            children: match depth.checked_sub(1) {
                Some(d) => self.children.iter().map(|c| c.cut(d)).collect(),
                None => Vec::new(),
            },
            ..self.shallow()
        }
    }

    /// Folds, at every level, the children smaller than `min_size` into one `Other` node (as
    /// modulectomy's "smaller excluded entries"), so the document stays small.
    pub fn fold_small(&self, min_size: u64) -> TreemapNode {
        let mut children = Vec::new();
        let mut other = TreemapNode {
            name: String::new(),
            kind: TreemapNodeKind::Other,
            size: 0,
            symbols: 0,
            children: Vec::new(),
        };
        let mut folded = 0u64;
        for child in &self.children {
            if child.size >= min_size {
                children.push(child.fold_small(min_size));
            } else {
                other.size += child.size;
                other.symbols += child.symbols;
                folded += 1;
            }
        }
        if folded > 0 {
            other.name = format!("{folded} smaller entries");
            // Children stay ordered by size: the folded node goes where its size puts it.
            let at = children.partition_point(|c| c.size >= other.size);
            children.insert(at, other);
        }
        TreemapNode { children, ..self.shallow() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, kind: TreemapNodeKind, size: u64, children: Vec<TreemapNode>) -> TreemapNode {
        TreemapNode { name: name.into(), kind, size, symbols: 1, children }
    }

    fn sample() -> Treemap {
        use TreemapNodeKind::*;
        let f = |n: &str, s| node(n, Function, s, vec![]);
        Treemap {
            version: TREEMAP_VERSION,
            root: node(
                "bin",
                Root,
                100,
                vec![
                    node("Lib", Library, 60, vec![node("Mod", Module, 60, vec![f("a", 50), f("b", 10)])]),
                    node(
                        "core",
                        Library,
                        40,
                        vec![node("fmt", Module, 40, vec![node("rt", Module, 40, vec![f("c", 40)])])],
                    ),
                ],
            ),
            totals: TreemapTotals {
                file_size: 200,
                debug_file_size: None,
                loadable_size: 100,
                attributed_size: 100,
                unattributed_size: 0,
                symbols: 3,
                symbol_source: SymbolSource::Binary,
                dwarf: false,
            },
            sections: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn coarse_keeps_libraries_and_first_modules() {
        let coarse = sample().coarse();
        assert_eq!(coarse.root.size, 100);
        assert_eq!(coarse.root.children[0].children[0].children, vec![]);
        assert_eq!(coarse.root.children[1].children[0].name, "fmt");
        assert_eq!(coarse.root.children[1].children[0].children, vec![]);
    }

    #[test]
    fn cut_and_fold() {
        let t = sample();
        assert_eq!(t.root.cut(1).children.iter().map(|c| c.children.len()).sum::<usize>(), 0);
        let folded = t.root.fold_small(45);
        assert_eq!(folded.children.len(), 2);
        assert_eq!(folded.children[0].children[0].children[0].name, "a");
        assert_eq!(folded.children[0].children[0].children[1].name, "1 smaller entries");
        assert_eq!(folded.children[1].kind, TreemapNodeKind::Other);
        assert_eq!(folded.children[1].size, 40);
    }

    #[test]
    fn json_shape() {
        let json = serde_json::to_value(sample().coarse()).expect("serialises");
        assert_eq!(json["root"]["children"][0]["kind"], "library");
        assert_eq!(json["totals"]["symbol_source"], "binary");
        assert!(json.get("warnings").is_none());
    }
}
