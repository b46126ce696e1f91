//! Treemaps of small programs compiled at test time (gcc, rustc, objcopy, strip).

use std::path::{Path as FsPath, PathBuf};
use std::process::Command;

use super::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} cannot start: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

const A_C: &str = r#"
#include <stdio.h>
static int table_in_a[1000] = {1};
int global_table[500] = {2};
int only_in_a(int x) { return x * 3 + table_in_a[x % 1000] + global_table[x % 500]; }
/* Names that look like OCaml's, to exercise the classifier end to end. */
int camlMylib__Util__helper_42(int x) { return x + 7; }
int caml_alloc_small(int x) { return x * 11; }
/* A bare label with no size, as ocamlopt emits for module blocks; 32 bytes follow it. */
__asm__(".data\n.globl camlMylib\ncamlMylib:\n.quad 1, 2, 3, 4\n.text\n");
int only_in_b(int);
int main(int argc, char **argv) {
    (void)argv;
    printf("%d\n", only_in_a(argc) + only_in_b(argc) + camlMylib__Util__helper_42(argc)
                   + caml_alloc_small(argc));
    return 0;
}
"#;

const B_C: &str = r#"
static char buffer_in_b[4096];
int only_in_b(int x) { buffer_in_b[x & 4095] = (char)x; return buffer_in_b[(x * 7) & 4095]; }
"#;

struct CProgram {
    _dir: tempfile::TempDir,
    full: PathBuf,
    stripped: PathBuf,
    debug: PathBuf,
}

fn c_program(extra: &str) -> CProgram {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("a.c");
    let b = dir.path().join("b.c");
    std::fs::write(&a, format!("{A_C}{extra}")).expect("write a.c");
    std::fs::write(&b, B_C).expect("write b.c");
    let full = dir.path().join("prog");
    run(Command::new("gcc")
        .current_dir(dir.path())
        .args(["-g", "-O1", "-o"])
        .arg(&full)
        .args(["a.c", "b.c"]));
    let debug = dir.path().join("prog.debug");
    run(Command::new("objcopy").arg("--only-keep-debug").arg(&full).arg(&debug));
    let stripped = dir.path().join("prog.stripped");
    run(Command::new("strip").arg("-o").arg(&stripped).arg(&full));
    CProgram { _dir: dir, full, stripped, debug }
}

fn read(path: &FsPath) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sizes add up, children are ordered, and the root is the loadable size.
fn check_invariants(t: &Treemap) {
    fn check(node: &TreemapNode) {
        if !node.children.is_empty() {
            let sum: u64 = node.children.iter().map(|c| c.size).sum();
            assert_eq!(sum, node.size, "children of {} do not add up", node.name);
            let symbols: u64 = node.children.iter().map(|c| c.symbols).sum();
            assert_eq!(symbols, node.symbols, "symbol counts of {}", node.name);
        }
        for pair in node.children.windows(2) {
            let key = |n: &TreemapNode| (std::cmp::Reverse(n.size), n.kind, n.name.clone());
            assert!(
                key(&pair[0]) < key(&pair[1]),
                "order under {}: {} / {}",
                node.name,
                pair[0].name,
                pair[1].name
            );
        }
        node.children.iter().for_each(check);
    }
    check(&t.root);
    assert_eq!(t.root.size, t.totals.loadable_size);
    assert_eq!(t.totals.attributed_size + t.totals.unattributed_size, t.totals.loadable_size);
    let loadable: u64 = t.sections.iter().filter(|s| s.loadable).map(|s| s.size).sum();
    assert_eq!(loadable, t.totals.loadable_size);
    let unattributed = find(&t.root, &["unattributed"]).map_or(0, |n| n.size);
    assert_eq!(unattributed, t.totals.unattributed_size);
}

fn find<'a>(node: &'a TreemapNode, path: &[&str]) -> Option<&'a TreemapNode> {
    match path.split_first() {
        None => Some(node),
        Some((first, rest)) => node.children.iter().filter(|c| c.name == *first).find_map(|c| find(c, rest)),
    }
}

fn leaf_names(node: &TreemapNode) -> Vec<&str> {
    node.children.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn c_program_grouped_by_compilation_unit() {
    let p = c_program("");
    let t = treemap(&read(&p.full), None).expect("treemap");
    check_invariants(&t);
    assert_eq!(t.totals.symbol_source, SymbolSource::Binary);
    assert!(t.totals.dwarf, "warnings: {:?}", t.warnings);
    let a = find(&t.root, &["C / other", "a.c"]).expect("a.c unit");
    assert!(leaf_names(a).contains(&"only_in_a"), "{:?}", leaf_names(a));
    assert!(leaf_names(a).contains(&"table_in_a"));
    let table = find(a, &["table_in_a"]).expect("table");
    assert_eq!((table.kind, table.size), (TreemapNodeKind::Data, 4000));
    // Global data is in no DWARF range and after the FILE-scoped locals.
    let global = find(&t.root, &["C / other", "(no compilation unit)", "global_table"]).expect("global");
    assert_eq!(global.size, 2000);
    let b = find(&t.root, &["C / other", "b.c"]).expect("b.c unit");
    let buffer = find(b, &["buffer_in_b"]).expect("static buffer");
    assert_eq!((buffer.kind, buffer.size), (TreemapNodeKind::Data, 4096));
    assert_eq!(find(b, &["only_in_b"]).map(|n| n.kind), Some(TreemapNodeKind::Function));

    let helper = find(&t.root, &["Mylib", "Util", "helper"]).expect("OCaml-named function");
    assert_eq!(helper.kind, TreemapNodeKind::Function);
    assert!(find(&t.root, &["OCaml runtime", "caml_alloc_small"]).is_some());
    // The bare label takes the 32 bytes after it (and maybe padding up to the next symbol).
    let block = find(&t.root, &["Mylib", "Mylib", "(module block)"]).expect("module block");
    assert!(block.size >= 32, "{}", block.size);

    let bss = t.sections.iter().find(|s| s.name == ".bss").expect(".bss");
    assert_eq!(bss.kind, SectionKind::Bss);
    assert!(bss.attributed >= 4096);
    assert!(t.sections.iter().any(|s| s.name == ".debug_info" && !s.loadable));
    assert!(t.totals.file_size > t.totals.attributed_size);
}

#[test]
fn stripped_binary_with_debug_file_matches_unstripped() {
    let p = c_program("");
    let full = treemap(&read(&p.full), None).expect("full");
    let split = treemap(&read(&p.stripped), Some(&read(&p.debug))).expect("split");
    check_invariants(&split);
    assert_eq!(split.totals.symbol_source, SymbolSource::DebugFile);
    assert!(split.totals.dwarf);
    assert_eq!(split.root, full.root);
    assert!(split.totals.file_size < full.totals.file_size);

    // The unstripped binary serves as its own debug file too.
    let with_full = treemap(&read(&p.stripped), Some(&read(&p.full))).expect("full as debug");
    assert_eq!(with_full.root, full.root);

    // Without any symbols everything is unattributed, still adding up.
    let bare = treemap(&read(&p.stripped), None).expect("stripped");
    check_invariants(&bare);
    assert!(matches!(bare.totals.symbol_source, SymbolSource::Dynamic | SymbolSource::None));
    assert!(!bare.warnings.is_empty());
}

#[test]
fn debug_file_of_another_build_is_refused() {
    let p = c_program("");
    let other = c_program("int extra_function(int x) { return x ^ 5; }\n");
    let err = treemap(&read(&p.stripped), Some(&read(&other.debug))).expect_err("mismatch");
    assert!(matches!(err, TreemapError::DebugMismatch(_)), "{err}");
}

#[test]
fn rust_program_grouped_by_crate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("hello.rs");
    std::fs::write(
        &src,
        "mod greet { #[inline(never)] pub fn greeting(n: usize) -> String { \"hello \".repeat(n) } }\n\
         fn main() { println!(\"{}\", greet::greeting(std::env::args().count())); }\n",
    )
    .expect("write");
    let bin = dir.path().join("hello");
    run(Command::new("rustc")
        .args(["--edition", "2021", "-C", "opt-level=1", "-C", "debuginfo=0", "-o"])
        .arg(&bin)
        .arg(&src));
    let t = treemap(&read(&bin), None).expect("treemap");
    check_invariants(&t);
    let greeting = find(&t.root, &["hello", "greet", "greeting"]).expect("hello::greet::greeting");
    assert_eq!(greeting.kind, TreemapNodeKind::Function);
    assert!(
        find(&t.root, &["hello", "main"]).is_some(),
        "{:?}",
        leaf_names(find(&t.root, &["hello"]).unwrap())
    );
    let std_like = t.root.children.iter().filter(|c| ["std", "core", "alloc"].contains(&c.name.as_str()));
    assert!(std_like.map(|c| c.size).sum::<u64>() > 10_000);
    assert!(t.root.children.iter().all(|c| c.kind != TreemapNodeKind::Library || !c.name.starts_with('<')));
}

#[test]
fn hostile_files_do_not_panic() {
    assert!(matches!(treemap(b"not an elf", None), Err(TreemapError::Binary(_))));
    assert!(treemap(&[], None).is_err());
    let p = c_program("");
    let good = read(&p.full);
    for cut in [16, 64, 100, 1000, good.len() / 2, good.len() - 1] {
        let _ = treemap(&good[..cut], None);
        let _ = treemap(&read(&p.stripped), Some(&good[..cut]));
    }
    // Corrupt bytes in headers, section headers and tables.
    let shoff =
        usize::try_from(u64::from_le_bytes(good[0x28..0x30].try_into().expect("8 bytes"))).expect("fits");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        let mut bad = good.clone();
        for _ in 0..8 {
            // xorshift: reproducible without a rand dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let r = state as usize >> 8;
            let at = match state % 3 {
                0 => r % 64,
                1 => shoff + r % (good.len() - shoff),
                _ => r % good.len(),
            };
            if let Some(b) = bad.get_mut(at) {
                *b = (state >> 32) as u8;
            }
        }
        let _ = treemap(&bad, None);
    }
}
