//! Symbol names to a place in the treemap: OCaml library/module/value, the OCaml runtime, Rust
//! crate/module/function, or "other" (C and the rest, placed by DWARF when possible).

use std::borrow::Cow;

/// Where a symbol belongs, from its name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolClass<'a> {
    /// `camlLib__Mod__value_123` and OCaml ≥ 5.1's `camlLib__Mod.value_123`.
    OCaml { library: Cow<'a, str>, module: Cow<'a, str>, value: Cow<'a, str> },
    /// `caml_*`: C primitives of the runtime and compiler-generated helpers.
    OCamlRuntime { name: &'a str },
    /// A mangled Rust symbol: the crate, the module path (maybe empty) and the item.
    Rust { krate: String, modules: Vec<String>, item: String },
    /// Anything else (C, assembly, C++): the name without GCC clone suffixes.
    Other { name: &'a str },
}

/// Deeper Rust module paths are joined into their last level; it keeps trees shallow enough
/// to draw and bounds the work on hostile names.
const MAX_RUST_MODULES: usize = 8;

/// Classifies one symbol name. Never panics, whatever the bytes.
pub fn classify_symbol(name: &str) -> SymbolClass<'_> {
    if let Some(rest) = name.strip_prefix("caml") {
        if rest.starts_with('_') {
            return SymbolClass::OCamlRuntime { name };
        }
        if rest.starts_with(|c: char| c.is_ascii_uppercase())
            && let Some(class) = classify_ocaml(rest)
        {
            return class;
        }
    }
    if is_rust_mangled(name)
        && let Some(class) = classify_rust(name)
    {
        return class;
    }
    SymbolClass::Other { name: strip_clone_suffix(name) }
}

/// `rest` is the name after `caml`, starting with an uppercase letter.
fn classify_ocaml(rest: &str) -> Option<SymbolClass<'_>> {
    // OCaml ≥ 5.1 separates the compilation unit from the value (and inner modules) by '.'.
    let (unit_path, value) = match rest.split_once('.') {
        Some((unit, value)) => (unit, value),
        None => split_unit_and_value(rest),
    };
    let mut units = unit_path.split("__");
    let first = units.next().filter(|s| !s.is_empty())?;
    let rest_units = unit_path.get(first.len() + 2..).unwrap_or("");
    // The stdlib's internal units are not prefixed by `Stdlib__` but belong to it.
    let (library, module) = if first.starts_with("Camlinternal") || first == "Std_exit" {
        ("Stdlib", unit_path)
    } else if rest_units.is_empty() {
        // The library's main unit (or an unwrapped library's only one).
        (first, first)
    } else {
        (first, rest_units)
    };
    let value = strip_ocaml_stamp(value);
    let value = if value.is_empty() { "(module block)" } else { value };
    Some(SymbolClass::OCaml {
        library: Cow::Borrowed(library),
        module: Cow::Borrowed(module),
        value: Cow::Borrowed(value),
    })
}

/// OCaml < 5.1: `Lib__Mod__value`. Leading capitalised `__` components are the unit path;
/// the value starts at the first lowercase (or `_`) component.
fn split_unit_and_value(rest: &str) -> (&str, &str) {
    let mut offset = 0;
    for component in rest.split("__") {
        if !component.starts_with(|c: char| c.is_ascii_uppercase()) {
            break;
        }
        offset += component.len() + 2;
    }
    // `offset` overshoots by the trailing separator when every component is a unit.
    let unit_end = offset.saturating_sub(2).min(rest.len());
    let value = rest.get(offset..).unwrap_or("");
    (rest.get(..unit_end).unwrap_or(rest), value)
}

/// `map_123` → `map`, `fun_1234` → `fun`, `map_123_closure` → `map` (flambda), `map_0_280_code`
/// → `map` (flambda 2), `frametable` unchanged: anonymous functions and versions of a value
/// are merged.
fn strip_ocaml_stamp(value: &str) -> &str {
    let mut value = value.strip_suffix("_closure").or_else(|| value.strip_suffix("_code")).unwrap_or(value);
    for _ in 0..2 {
        match value.rfind('_') {
            Some(i)
                if i > 0
                    && i + 1 < value.len()
                    && value.as_bytes()[i + 1..].iter().all(u8::is_ascii_digit) =>
            {
                value = &value[..i];
            }
            _ => break,
        }
    }
    value
}

/// v0 (`_R`) symbols, and legacy `_ZN…17h<16 hex>E` ones (the hash tells Rust from C++).
fn is_rust_mangled(name: &str) -> bool {
    if name.starts_with("_R") {
        return true;
    }
    if !name.starts_with("_ZN") {
        return false;
    }
    let bytes = name.as_bytes();
    bytes
        .windows(20)
        .any(|w| w.starts_with(b"17h") && w[3..19].iter().all(u8::is_ascii_hexdigit) && w[19] == b'E')
}

fn classify_rust(name: &str) -> Option<SymbolClass<'static>> {
    let demangled = rustc_demangle::try_demangle(name).ok()?;
    // `{:#}` leaves out the hash.
    let path = format!("{demangled:#}");
    let segments = split_path(&path);
    let (first, rest) = segments.split_first()?;
    let (krate, qualified) =
        if first.starts_with('<') { (crate_of_qualified(first), true) } else { (*first, false) };
    let (item, middle) = match rest.split_last() {
        Some((item, middle)) => (*item, middle),
        // A one-segment path: a crate-level item such as `main`.
        None if qualified => ("", &[][..]),
        None => (*first, &[][..]),
    };
    let mut modules: Vec<String> = Vec::new();
    if qualified {
        modules.push((*first).to_owned());
    }
    for m in middle {
        if modules.len() == MAX_RUST_MODULES {
            if let Some(last) = modules.last_mut() {
                last.push_str("::");
                last.push_str(m);
            }
        } else {
            modules.push((*m).to_owned());
        }
    }
    Some(SymbolClass::Rust { krate: krate.to_owned(), modules, item: item.to_owned() })
}

/// Splits on `::` outside `<…>`, `(…)` and `[…]`.
fn split_path(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            // `->` in fn types is not a closing bracket.
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                out.push(&path[start..i]);
                i += 2;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&path[start..]);
    out
}

/// `<alloc::vec::Vec<T> as core::ops::Drop>` → `alloc`; `<u8 as core::fmt::Debug>` → `core`
/// (a primitive type has no crate, its trait does); `<[T]>` → `core`.
fn crate_of_qualified(segment: &str) -> &str {
    let inner = segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(segment);
    let (ty, trait_) = match find_top_level(inner, " as ") {
        Some(i) => (&inner[..i], Some(&inner[i + 4..])),
        None => (inner, None),
    };
    let ty = ty.trim_start_matches(['&', '*']).trim_start_matches("mut ").trim_start_matches("const ");
    let ty = ty.trim_start_matches("dyn ");
    fn path_crate(p: &str) -> Option<&str> {
        let first = split_path(p).into_iter().next()?;
        (first.len() < p.len() && !first.is_empty() && !first.contains(['<', '[', '(', ' '])).then_some(first)
    }
    path_crate(ty).or_else(|| trait_.and_then(path_crate)).unwrap_or("core")
}

fn find_top_level(s: &str, needle: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            _ if depth == 0 && s.as_bytes()[i..].starts_with(needle.as_bytes()) => return Some(i),
            _ => {}
        }
    }
    None
}

/// `foo.part.0`, `foo.cold`, `foo.constprop.1`, `counter.0` → `foo`/`counter`: GCC's clones and
/// static locals belong with their function.
fn strip_clone_suffix(name: &str) -> &str {
    match name.find('.') {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ocaml(name: &str) -> (String, String, String) {
        match classify_symbol(name) {
            SymbolClass::OCaml { library, module, value } => (library.into(), module.into(), value.into()),
            other => panic!("{name} classified as {other:?}"),
        }
    }

    fn t(l: &str, m: &str, v: &str) -> (String, String, String) {
        (l.into(), m.into(), v.into())
    }

    #[test]
    fn ocaml_names() {
        assert_eq!(ocaml("camlStdlib__List__map_123"), t("Stdlib", "List", "map"));
        assert_eq!(ocaml("camlStdlib__List.map_280"), t("Stdlib", "List", "map"));
        assert_eq!(ocaml("camlStdlib__print_endline_345"), t("Stdlib", "Stdlib", "print_endline"));
        assert_eq!(ocaml("camlStdlib"), t("Stdlib", "Stdlib", "(module block)"));
        assert_eq!(ocaml("camlStdlib__Format"), t("Stdlib", "Format", "(module block)"));
        assert_eq!(ocaml("camlStdlib__Format__code_begin"), t("Stdlib", "Format", "code_begin"));
        assert_eq!(
            ocaml("camlCamlinternalFormat__make_printf_42"),
            t("Stdlib", "CamlinternalFormat", "make_printf")
        );
        assert_eq!(ocaml("camlStd_exit__entry"), t("Stdlib", "Std_exit", "entry"));
        assert_eq!(ocaml("camlMirage_crypto__Hash__fun_1234"), t("Mirage_crypto", "Hash", "fun"));
        assert_eq!(
            ocaml("camlMirage_crypto_rng__Fortuna__reseed_77"),
            t("Mirage_crypto_rng", "Fortuna", "reseed")
        );
        assert_eq!(ocaml("camlMirage_runtime__at_exit_5"), t("Mirage_runtime", "Mirage_runtime", "at_exit"));
        assert_eq!(ocaml("camlLwt__bind_123_closure"), t("Lwt", "Lwt", "bind"));
        assert_eq!(ocaml("camlTcpip__Tcp__Segment__input_9"), t("Tcpip", "Tcp__Segment", "input"));
        assert_eq!(ocaml("camlFoo___private_1"), t("Foo", "Foo", "_private"));
        assert_eq!(ocaml("camlFoo__x__Y_3"), t("Foo", "Foo", "x__Y"));
        assert_eq!(ocaml("camlFoo.Bar.baz_12"), t("Foo", "Foo", "Bar.baz"));
        assert_eq!(ocaml("camlFoo__frametable"), t("Foo", "Foo", "frametable"));
        assert_eq!(ocaml("camlFoo__gc_roots"), t("Foo", "Foo", "gc_roots"));
        assert_eq!(ocaml("camlFoo__v_"), t("Foo", "Foo", "v_"));
        assert_eq!(ocaml("camlStdlib__List__map_0_280_code"), t("Stdlib", "List", "map"));
        assert_eq!(ocaml("camlFoo__x_1_2_3"), t("Foo", "Foo", "x_1"));
        assert_eq!(ocaml("camlFoo__"), t("Foo", "Foo", "(module block)"));
        assert_eq!(ocaml("camlA____b"), t("A", "A", "__b"));
    }

    #[test]
    fn runtime_and_other() {
        assert_eq!(classify_symbol("caml_alloc_shr"), SymbolClass::OCamlRuntime { name: "caml_alloc_shr" });
        assert_eq!(classify_symbol("caml_curry3_2"), SymbolClass::OCamlRuntime { name: "caml_curry3_2" });
        assert_eq!(classify_symbol("caml"), SymbolClass::Other { name: "caml" });
        assert_eq!(classify_symbol("camlfoo"), SymbolClass::Other { name: "camlfoo" });
        assert_eq!(classify_symbol("memcpy"), SymbolClass::Other { name: "memcpy" });
        assert_eq!(classify_symbol("foo.part.0"), SymbolClass::Other { name: "foo" });
        assert_eq!(classify_symbol(".L.str"), SymbolClass::Other { name: ".L.str" });
        // C++ is not Rust: no Rust hash.
        assert_eq!(classify_symbol("_ZN3foo3barEv"), SymbolClass::Other { name: "_ZN3foo3barEv" });
        assert_eq!(classify_symbol(""), SymbolClass::Other { name: "" });
    }

    fn rust(name: &str) -> (String, Vec<String>, String) {
        match classify_symbol(name) {
            SymbolClass::Rust { krate, modules, item } => (krate, modules, item),
            other => panic!("{name} classified as {other:?}"),
        }
    }

    #[test]
    fn rust_names() {
        assert_eq!(
            rust("_ZN4core3fmt5write17h0123456789abcdefE"),
            ("core".into(), vec!["fmt".into()], "write".into())
        );
        assert_eq!(rust("_ZN5hello4main17h0123456789abcdefE"), ("hello".into(), vec![], "main".into()));
        assert_eq!(
            rust("_ZN4core3ptr42drop_in_place$LT$alloc..string..String$GT$17h0123456789abcdefE"),
            ("core".into(), vec!["ptr".into()], "drop_in_place<alloc::string::String>".into())
        );
        assert_eq!(
            rust(
                "_ZN66_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h0123456789abcdefE"
            ),
            ("alloc".into(), vec!["<alloc::vec::Vec<T> as core::ops::drop::Drop>".into()], "drop".into())
        );
        assert_eq!(
            rust("_ZN39_$LT$u8$u20$as$u20$core..fmt..Debug$GT$3fmt17h0123456789abcdefE"),
            ("core".into(), vec!["<u8 as core::fmt::Debug>".into()], "fmt".into())
        );
        // v0 mangling.
        assert_eq!(rust("_RNvCs1234_7mycrate3foo"), ("mycrate".into(), vec![], "foo".into()));
        // Not actually Rust-demanglable: falls back to other.
        assert_eq!(classify_symbol("_Rxyz"), SymbolClass::Other { name: "_Rxyz" });
    }

    #[test]
    fn rust_module_depth_is_bounded() {
        let mut mangled = String::from("_ZN");
        for _ in 0..20 {
            mangled.push_str("1m");
        }
        mangled.push_str("1f17h0123456789abcdefE");
        let (krate, modules, item) = rust(&mangled);
        assert_eq!((krate.as_str(), item.as_str()), ("m", "f"));
        assert_eq!(modules.len(), MAX_RUST_MODULES);
    }

    #[test]
    fn path_splitting() {
        assert_eq!(split_path("a::b<c::d>::e"), vec!["a", "b<c::d>", "e"]);
        assert_eq!(split_path("a::<fn() -> x::y>::e"), vec!["a", "<fn() -> x::y>", "e"]);
        assert_eq!(split_path(""), vec![""]);
        assert_eq!(crate_of_qualified("<[T]>"), "core");
        assert_eq!(crate_of_qualified("<&mut std::io::Stdout as std::io::Write>"), "std");
        assert_eq!(crate_of_qualified("<dyn core::any::Any>"), "core");
    }
}
