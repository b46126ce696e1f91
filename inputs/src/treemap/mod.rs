//! Size treemap of an ELF binary: where its bytes go, by library, module and function.
//!
//! The successor of builder-web's modulectomy visualisation. Sizes come from the symbol table
//! (of the separate `*.debug` file when there is one, since shipped binaries are stripped);
//! symbols are classified by name ([`classify_symbol`]): OCaml, the OCaml runtime, Rust, and
//! the rest, which DWARF compilation units group when the debug info is there. Each section's
//! bytes that no symbol covers are counted as `unattributed`, so the tree adds up to the
//! loadable size exactly (overlapping symbols, i.e. aliases, count once).

mod classify;
mod dwarf;

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol, SectionIndex, SymbolKind, SymbolSection};
use petrel_wire::treemap::{
    SectionKind, SymbolSource, TREEMAP_VERSION, Treemap, TreemapNode, TreemapNodeKind, TreemapSection,
    TreemapTotals,
};

pub use classify::{SymbolClass, classify_symbol};

/// Why no treemap could be made.
#[derive(Debug, thiserror::Error)]
pub enum TreemapError {
    #[error("the binary is not a readable ELF file: {0}")]
    Binary(object::Error),
    #[error("the debug file is not a readable ELF file: {0}")]
    DebugFile(object::Error),
    #[error("the binary is not an ELF file")]
    NotElf,
    /// The debug file comes from another link than the binary.
    #[error("the debug file does not match the binary: {0}")]
    DebugMismatch(String),
}

const SHF_WRITE: u64 = 0x1;
const SHF_ALLOC: u64 = 0x2;
const SHF_EXECINSTR: u64 = 0x4;
const SHF_TLS: u64 = 0x400;

/// Function names this long (Rust generics) are cut: the document stays bounded.
const MAX_NAME_LEN: usize = 512;

const GROUP_RUNTIME: &str = "OCaml runtime";
const GROUP_OTHER: &str = "C / other";
const GROUP_UNATTRIBUTED: &str = "unattributed";
const NO_CU: &str = "(no compilation unit)";

/// Builds the treemap of `binary`, with symbols and DWARF from `debug` when given (builder
/// uploads the unstripped binary as `<main binary>.debug`; `objcopy --only-keep-debug`
/// output works too). Sizes and sections are the binary's.
pub fn treemap(binary: &[u8], debug: Option<&[u8]>) -> Result<Treemap, TreemapError> {
    let main = object::File::parse(binary).map_err(TreemapError::Binary)?;
    if main.format() != object::BinaryFormat::Elf {
        return Err(TreemapError::NotElf);
    }
    let debug_file = match debug {
        Some(bytes) => {
            let file = object::File::parse(bytes).map_err(TreemapError::DebugFile)?;
            if file.format() != object::BinaryFormat::Elf {
                return Err(TreemapError::NotElf);
            }
            Some(file)
        }
        None => None,
    };

    let mut warnings = Vec::new();
    let mut sections = read_sections(&main);
    if let Some(debug) = &debug_file {
        check_same_link(&main, debug, &sections)?;
    }

    // The symbol table: the debug file's, else the binary's, else its dynamic one.
    let (symbol_file, source) = match &debug_file {
        Some(debug) if debug.symbols().next().is_some() => (debug, SymbolSource::DebugFile),
        _ if main.symbols().next().is_some() => (&main, SymbolSource::Binary),
        _ if main.dynamic_symbols().next().is_some() => (&main, SymbolSource::Dynamic),
        _ => (&main, SymbolSource::None),
    };
    match source {
        SymbolSource::Dynamic => {
            warnings.push("no symbol table: only exported (dynamic) symbols are attributed".to_owned())
        }
        SymbolSource::None => warnings.push("no symbols: every byte is unattributed".to_owned()),
        SymbolSource::DebugFile | SymbolSource::Binary => {}
    }
    if debug.is_some() && source != SymbolSource::DebugFile {
        warnings.push("the debug file has no symbol table".to_owned());
    }

    let mut symbols = collect_symbols(symbol_file, source, &sections);
    let slot_bounds: Vec<(u64, u64)> = sections
        .iter()
        .map(|s| (s.section.address, s.section.address.saturating_add(s.section.size)))
        .collect();
    infer_ocaml_label_sizes(&mut symbols, &slot_bounds);

    // Pass 1: the bytes each symbol adds, and its class.
    let mut covered_end = vec![0u64; sections.len()];
    let mut placed: Vec<(&Sym<'_>, u64, SymbolClass<'_>)> = Vec::new();
    for sym in &symbols {
        let slot = sym.slot as usize;
        let (Some(&(sec_start, sec_end)), Some(covered)) = (slot_bounds.get(slot), covered_end.get_mut(slot))
        else {
            continue;
        };
        let start = sym.address.max(*covered).max(sec_start);
        let end = sym.address.saturating_add(sym.size).min(sec_end);
        if end <= start {
            continue;
        }
        *covered = end;
        let size = end - start;
        if let Some(section) = sections.get_mut(slot) {
            section.section.attributed += size;
        }
        placed.push((sym, size, classify_symbol(sym.name)));
    }

    // DWARF units, looked up only for the symbols that need one.
    let dwarf_file =
        debug_file.as_ref().filter(|d| d.section_by_name(".debug_info").is_some()).unwrap_or(&main);
    let mut other_addresses: Vec<u64> = placed
        .iter()
        .filter(|(_, _, class)| matches!(class, SymbolClass::Other { .. }))
        .map(|(sym, _, _)| sym.address)
        .collect();
    other_addresses.sort_unstable();
    other_addresses.dedup();
    let cus = match dwarf::unit_names(dwarf_file, &other_addresses) {
        Ok(cus) => cus,
        Err(e) => {
            warnings.push(format!("DWARF unusable, C symbols are not grouped: {e}"));
            None
        }
    };

    // Pass 2: the tree.
    let mut tree = TreeBuilder::new();
    for (sym, size, class) in &placed {
        let leaf_kind = match sym.kind {
            SymKind::Code => TreemapNodeKind::Function,
            SymKind::Data => TreemapNodeKind::Data,
        };
        let mut path = Path::default();
        match class {
            SymbolClass::OCaml { library, module, value } => {
                path.push(TreemapNodeKind::Library, library);
                path.push(TreemapNodeKind::Module, module);
                path.push(leaf_kind, value);
            }
            SymbolClass::OCamlRuntime { name } => {
                path.push(TreemapNodeKind::Group, GROUP_RUNTIME);
                path.push(leaf_kind, name);
            }
            SymbolClass::Rust { krate, modules, item } => {
                path.push(TreemapNodeKind::Library, krate);
                for m in modules {
                    path.push(TreemapNodeKind::Module, m);
                }
                path.push(leaf_kind, if item.is_empty() { "(item)" } else { item });
            }
            SymbolClass::Other { name } => {
                path.push(TreemapNodeKind::Group, GROUP_OTHER);
                if let Some(cus) = &cus {
                    // DWARF ranges cover code; static data is placed by the symbol table's
                    // FILE entries instead.
                    let cu = cus.get(&sym.address).map(String::as_str).or(sym.file).unwrap_or(NO_CU);
                    path.push(TreemapNodeKind::CompilationUnit, cu);
                }
                path.push(leaf_kind, if name.is_empty() { "(unnamed)" } else { name });
            }
        }
        tree.add(path.as_slice(), *size, 1);
    }
    let contributing = placed.len() as u64;

    let mut attributed = 0u64;
    let mut loadable = 0u64;
    for s in sections.iter().filter(|s| s.section.loadable) {
        // Saturating: section sizes in a hostile file can be anything.
        loadable = loadable.saturating_add(s.section.size);
        attributed = attributed.saturating_add(s.section.attributed);
        let rest = s.section.size.saturating_sub(s.section.attributed);
        if rest > 0 {
            let name = if s.section.name.is_empty() { "(unnamed section)" } else { &s.section.name };
            tree.add(
                &[(TreemapNodeKind::Group, GROUP_UNATTRIBUTED), (TreemapNodeKind::Section, name)],
                rest,
                0,
            );
        }
    }

    Ok(Treemap {
        version: TREEMAP_VERSION,
        root: tree.finish(),
        totals: TreemapTotals {
            file_size: binary.len() as u64,
            debug_file_size: debug.map(|d| d.len() as u64),
            loadable_size: loadable,
            attributed_size: attributed,
            unattributed_size: loadable - attributed.min(loadable),
            symbols: contributing,
            symbol_source: source,
            dwarf: cus.is_some(),
        },
        sections: sections.into_iter().map(|s| s.section).collect(),
        warnings,
    })
}

struct SectionInfo {
    section: TreemapSection,
    /// Index in the binary's section table.
    index: SectionIndex,
    /// TLS symbols hold offsets into the TLS block, not addresses: not attributed.
    tls: bool,
}

fn elf_flags(section: &object::Section<'_, '_>) -> u64 {
    match section.flags() {
        object::SectionFlags::Elf { sh_flags } => sh_flags,
        _ => 0,
    }
}

fn read_sections(file: &object::File<'_>) -> Vec<SectionInfo> {
    file.sections()
        // Index 0 is the null section.
        .filter(|s| s.index().0 != 0)
        .map(|s| {
            let flags = elf_flags(&s);
            let loadable = flags & SHF_ALLOC != 0;
            let tls = flags & SHF_TLS != 0;
            let nobits = matches!(
                s.kind(),
                object::SectionKind::UninitializedData | object::SectionKind::UninitializedTls
            );
            let kind = if !loadable {
                SectionKind::NonLoadable
            } else if tls {
                SectionKind::Tls
            } else if flags & SHF_EXECINSTR != 0 {
                SectionKind::Text
            } else if nobits {
                SectionKind::Bss
            } else if flags & SHF_WRITE != 0 {
                SectionKind::Data
            } else {
                SectionKind::Rodata
            };
            SectionInfo {
                section: TreemapSection {
                    name: String::from_utf8_lossy(s.name_bytes().unwrap_or_default()).into_owned(),
                    kind,
                    address: s.address(),
                    size: s.size(),
                    loadable,
                    attributed: 0,
                },
                index: s.index(),
                tls,
            }
        })
        .collect()
}

/// Refuses a debug file from another link: build IDs differ, or a loadable section of the
/// binary sits elsewhere or has another size in the debug file.
fn check_same_link(
    main: &object::File<'_>,
    debug: &object::File<'_>,
    sections: &[SectionInfo],
) -> Result<(), TreemapError> {
    if let (Ok(Some(a)), Ok(Some(b))) = (main.build_id(), debug.build_id())
        && a != b
    {
        return Err(TreemapError::DebugMismatch("build IDs differ".to_owned()));
    }
    for s in sections.iter().filter(|s| s.section.loadable) {
        if let Some(d) = debug.section_by_name_bytes(s.section.name.as_bytes())
            && (d.address() != s.section.address || d.size() != s.section.size)
        {
            return Err(TreemapError::DebugMismatch(format!(
                "section {} is at {:#x}+{:#x} in the binary, {:#x}+{:#x} in the debug file",
                s.section.name,
                s.section.address,
                s.section.size,
                d.address(),
                d.size()
            )));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SymKind {
    Code,
    Data,
}

struct Sym<'a> {
    /// Index into the binary's sections (as read by `read_sections`).
    slot: u32,
    address: u64,
    size: u64,
    name: &'a str,
    kind: SymKind,
    /// For a local symbol, the source file of the preceding FILE symbol.
    file: Option<&'a str>,
}

fn collect_symbols<'a>(
    file: &object::File<'a>,
    source: SymbolSource,
    sections: &[SectionInfo],
) -> Vec<Sym<'a>> {
    // Section indices of the symbol file → slots of the binary's sections, by name and address
    // (a debug file's section table need not line up with the stripped binary's).
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (slot, s) in sections.iter().enumerate() {
        if s.section.loadable && !s.tls {
            by_name.entry(s.section.name.as_str()).or_default().push(slot);
        }
    }
    let same_file = source != SymbolSource::DebugFile;
    let mut slot_of: HashMap<SectionIndex, u32> = HashMap::new();
    for s in file.sections() {
        let name = String::from_utf8_lossy(s.name_bytes().unwrap_or_default());
        let found = by_name.get(&*name).and_then(|slots| {
            slots.iter().copied().find(|&slot| {
                sections.get(slot).is_some_and(|info| {
                    if same_file { info.index == s.index() } else { info.section.address == s.address() }
                })
            })
        });
        if let Some(slot) = found.and_then(|slot| u32::try_from(slot).ok()) {
            slot_of.insert(s.index(), slot);
        }
    }

    let iter = match source {
        SymbolSource::Dynamic => file.dynamic_symbols(),
        SymbolSource::None => return Vec::new(),
        SymbolSource::DebugFile | SymbolSource::Binary => file.symbols(),
    };
    let mut out = Vec::new();
    // ELF lists each object's local symbols after a FILE symbol naming its source.
    let mut file: Option<&'a str> = None;
    for sym in iter {
        if sym.kind() == SymbolKind::File {
            file = sym.name().ok().filter(|n| !n.is_empty());
            continue;
        }
        let kind = match sym.kind() {
            SymbolKind::Text => SymKind::Code,
            SymbolKind::Data | SymbolKind::Unknown | SymbolKind::Label => SymKind::Data,
            _ => continue,
        };
        let SymbolSection::Section(index) = sym.section() else { continue };
        let Some(&slot) = slot_of.get(&index) else { continue };
        let Ok(name) = sym.name() else { continue };
        // ARM/AArch64 mapping symbols ($x, $d) mark code/data boundaries, not objects.
        if name.starts_with('$') {
            continue;
        }
        let kind = match (kind, sections.get(slot as usize).map(|s| s.section.kind)) {
            (SymKind::Data, Some(SectionKind::Text)) if sym.kind() != SymbolKind::Data => SymKind::Code,
            (k, _) => k,
        };
        let file = if sym.is_local() { file } else { None };
        out.push(Sym { slot, address: sym.address(), size: sym.size(), name: truncate(name), kind, file });
    }
    // Per section by address; at one address the largest first, so aliases add nothing.
    out.sort_unstable_by(|a, b| {
        (a.slot, a.address, std::cmp::Reverse(a.size), a.name).cmp(&(
            b.slot,
            b.address,
            std::cmp::Reverse(b.size),
            b.name,
        ))
    });
    out
}

fn truncate(name: &str) -> &str {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let mut end = MAX_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// OCaml emits some symbols as bare labels without a size (module data blocks,
/// `code_begin`/`data_begin`): they extend to the next symbol or the section end.
fn infer_ocaml_label_sizes(symbols: &mut [Sym<'_>], bounds: &[(u64, u64)]) {
    // Walking backwards over (slot, address) order: `seen` is the last symbol's position and
    // `greater` the nearest address above it in the same section.
    let mut seen: Option<(u32, u64)> = None;
    let mut greater: Option<u64> = None;
    for sym in symbols.iter_mut().rev() {
        match seen {
            Some((slot, address)) if slot == sym.slot => {
                if address > sym.address {
                    greater = Some(address);
                }
            }
            _ => greater = None,
        }
        seen = Some((sym.slot, sym.address));
        if sym.size == 0 && sym.name.starts_with("caml") && !sym.name.starts_with("caml_") {
            let limit = greater.or_else(|| bounds.get(sym.slot as usize).map(|&(_, end)| end));
            if let Some(limit) = limit {
                sym.size = limit.saturating_sub(sym.address);
            }
        }
    }
}

/// A node path of bounded length (classification caps Rust module depth), without allocating.
struct Path<'a> {
    items: [(TreemapNodeKind, &'a str); 12],
    len: usize,
}

impl Default for Path<'_> {
    fn default() -> Self {
        Path { items: [(TreemapNodeKind::Other, ""); 12], len: 0 }
    }
}

impl<'a> Path<'a> {
    fn push(&mut self, kind: TreemapNodeKind, name: &'a str) {
        // Over-long paths lose their middle levels, never the leaf: it replaces the last slot.
        let at = self.len.min(self.items.len() - 1);
        if let Some(item) = self.items.get_mut(at) {
            *item = (kind, name);
        }
        self.len = (at + 1).min(self.items.len());
    }

    fn as_slice(&self) -> &[(TreemapNodeKind, &'a str)] {
        &self.items[..self.len]
    }
}

/// The tree under construction: an arena, children found through per-node maps.
struct TreeBuilder {
    nodes: Vec<BuildNode>,
    /// Reused lookup key: kind tag + name, so lookups do not allocate.
    key: String,
}

struct BuildNode {
    name: String,
    kind: TreemapNodeKind,
    size: u64,
    symbols: u64,
    index: HashMap<String, usize>,
    children: Vec<usize>,
}

impl TreeBuilder {
    fn new() -> Self {
        let root = BuildNode {
            name: "binary".to_owned(),
            kind: TreemapNodeKind::Root,
            size: 0,
            symbols: 0,
            index: HashMap::new(),
            children: Vec::new(),
        };
        TreeBuilder { nodes: vec![root], key: String::new() }
    }

    fn add(&mut self, path: &[(TreemapNodeKind, &str)], size: u64, symbols: u64) {
        let mut at = 0;
        self.bump(at, size, symbols);
        for &(kind, name) in path {
            self.key.clear();
            self.key.push(kind_tag(kind));
            self.key.push_str(name);
            let existing = self.nodes.get(at).and_then(|n| n.index.get(self.key.as_str()).copied());
            let child = match existing {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(BuildNode {
                        name: name.to_owned(),
                        kind,
                        size: 0,
                        symbols: 0,
                        index: HashMap::new(),
                        children: Vec::new(),
                    });
                    if let Some(parent) = self.nodes.get_mut(at) {
                        parent.index.insert(self.key.clone(), child);
                        parent.children.push(child);
                    }
                    child
                }
            };
            self.bump(child, size, symbols);
            at = child;
        }
    }

    fn bump(&mut self, node: usize, size: u64, symbols: u64) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.size = n.size.saturating_add(size);
            n.symbols = n.symbols.saturating_add(symbols);
        }
    }

    fn finish(mut self) -> TreemapNode {
        let mut taken: Vec<Option<BuildNode>> = self.nodes.drain(..).map(Some).collect();
        convert(&mut taken, 0)
    }
}

fn convert(nodes: &mut [Option<BuildNode>], at: usize) -> TreemapNode {
    let Some(node) = nodes.get_mut(at).and_then(Option::take) else {
        return TreemapNode {
            name: String::new(),
            kind: TreemapNodeKind::Other,
            size: 0,
            symbols: 0,
            children: Vec::new(),
        };
    };
    // Depth is bounded by the paths built above (at most a dozen levels).
    let mut children: Vec<TreemapNode> = node.children.iter().map(|&c| convert(nodes, c)).collect();
    children.sort_unstable_by(|a, b| {
        b.size.cmp(&a.size).then(a.kind.cmp(&b.kind)).then_with(|| a.name.cmp(&b.name))
    });
    TreemapNode { name: node.name, kind: node.kind, size: node.size, symbols: node.symbols, children }
}

fn kind_tag(kind: TreemapNodeKind) -> char {
    match kind {
        TreemapNodeKind::Root => 'r',
        TreemapNodeKind::Group => 'g',
        TreemapNodeKind::Library => 'l',
        TreemapNodeKind::Module => 'm',
        TreemapNodeKind::CompilationUnit => 'c',
        TreemapNodeKind::Function => 'f',
        TreemapNodeKind::Data => 'd',
        TreemapNodeKind::Section => 's',
        TreemapNodeKind::Other => 'o',
    }
}

#[cfg(test)]
mod tests;
