use super::*;

pub(crate) const MIRAGE4: &str = include_str!("../../testdata/opam-switch-mirage4");

fn v(input: &str) -> Value {
    parse_opam_value(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn b(value: Value) -> Box<Value> {
    Box::new(value)
}

#[test]
fn atoms() {
    assert_eq!(v("true"), Value::Bool(true));
    assert_eq!(v("false"), Value::Bool(false));
    assert_eq!(v("trueish"), Value::Ident("trueish".into()));
    assert_eq!(v("42"), Value::Int(42));
    assert_eq!(v("-7"), Value::Int(-7));
    assert_eq!(v("1_000"), Value::Int(1000));
    assert_eq!(v("with-test"), Value::Ident("with-test".into()));
    assert_eq!(v("ocaml:version"), Value::Ident("ocaml:version".into()));
    assert_eq!(v("_:doc"), Value::Ident("_:doc".into()));
    assert_eq!(
        v("conf-gmp+conf-gmp-powm-sec:installed"),
        Value::Ident("conf-gmp+conf-gmp-powm-sec:installed".into())
    );
    assert_eq!(v("12abc"), Value::Ident("12abc".into()), "longest match: an identifier");
    // Bare versions are not values: `4` lexes as an int, then `.` is no token.
    assert!(parse_opam_value("4.14").is_err());
}

#[test]
fn strings_and_escapes() {
    assert_eq!(v(r#""a\"b\\c\n\t\x41\065\ d""#), s("a\"b\\c\n\tAA d"));
    assert_eq!(v("\"line one \\\n      continued\""), s("line one continued"));
    assert_eq!(v("\"raw\nnewline\""), s("raw\nnewline"));
    assert_eq!(v(r#""""has "quotes" inside""""#), s("has \"quotes\" inside"));
    assert_eq!(v("\"\"\"\nmulti\nline\n\"\"\""), s("\nmulti\nline\n"));
    assert_eq!(v(r#""""#), s(""));
    assert_eq!(v(r#""%{bin}%/x""#), s("%{bin}%/x"));
    assert_eq!(v("\"ünïcödé\""), s("ünïcödé"));
}

#[test]
fn string_errors() {
    assert!(
        matches!(parse_opam_value("\"open"), Err(OpamError::Syntax { message, .. }) if message == "unterminated string")
    );
    assert!(
        matches!(parse_opam_value(r#""\q""#), Err(OpamError::Syntax { message, .. }) if message == "illegal escape sequence")
    );
    assert!(parse_opam_value(r#""\256""#).is_err());
    assert!(parse_opam_value(r#""\xg0""#).is_err());
    // A lone continuation byte is not UTF-8.
    assert!(parse_opam_value(r#""\xff""#).is_err());
}

#[test]
fn lists_options_and_operators() {
    assert_eq!(
        v(r#""ocaml" {>= "4.08" & < "5.0"}"#),
        Value::Option(
            b(s("ocaml")),
            vec![Value::Logop(
                LogOp::And,
                b(Value::PrefixRelop(RelOp::Geq, b(s("4.08")))),
                b(Value::PrefixRelop(RelOp::Lt, b(s("5.0")))),
            )]
        )
    );
    // `|` binds looser than `&`, and both are left-associative.
    assert_eq!(
        v("a | b & c | d"),
        Value::Logop(
            LogOp::Or,
            b(Value::Logop(
                LogOp::Or,
                b(Value::Ident("a".into())),
                b(Value::Logop(LogOp::And, b(Value::Ident("b".into())), b(Value::Ident("c".into())))),
            )),
            b(Value::Ident("d".into())),
        )
    );
    // `!` binds tighter than `&` but looser than an option.
    assert_eq!(
        v("!a & b"),
        Value::Logop(
            LogOp::And,
            b(Value::Pfxop(PfxOp::Not, b(Value::Ident("a".into())))),
            b(Value::Ident("b".into()))
        )
    );
    assert_eq!(
        v("!a {x}"),
        Value::Pfxop(
            PfxOp::Not,
            b(Value::Option(b(Value::Ident("a".into())), vec![Value::Ident("x".into())]))
        )
    );
    assert_eq!(v("?foo"), Value::Pfxop(PfxOp::Defined, b(Value::Ident("foo".into()))));
    assert_eq!(v(r#"os != "win32""#), Value::Relop(RelOp::Neq, b(Value::Ident("os".into())), b(s("win32"))));
    assert_eq!(v(r#"~ "1""#), Value::PrefixRelop(RelOp::Geq, b(s("1"))));
    assert_eq!(
        v(r#"[PATH += "%{bin}%" FOO := "x" BAR =+= "y" BAZ =: "z" Q =+ "w"]"#),
        Value::List(vec![
            Value::EnvBinding(b(Value::Ident("PATH".into())), EnvOp::PlusEq, b(s("%{bin}%"))),
            Value::EnvBinding(b(Value::Ident("FOO".into())), EnvOp::ColonEq, b(s("x"))),
            Value::EnvBinding(b(Value::Ident("BAR".into())), EnvOp::EqPlusEq, b(s("y"))),
            Value::EnvBinding(b(Value::Ident("BAZ".into())), EnvOp::EqColon, b(s("z"))),
            Value::EnvBinding(b(Value::Ident("Q".into())), EnvOp::EqPlus, b(s("w"))),
        ])
    );
    assert_eq!(v("(a b)"), Value::Group(vec![Value::Ident("a".into()), Value::Ident("b".into())]));
    assert_eq!(v("[]"), Value::List(vec![]));
    assert_eq!(
        v("[[] [[1]]]"),
        Value::List(vec![Value::List(vec![]), Value::List(vec![Value::List(vec![Value::Int(1)])])])
    );
}

#[test]
fn comments() {
    let file = parse_opam_file(
        "# a line comment\nopam-version: \"2.0\" (* block (* nested *) comment *)\nname: (* here *) \"x\" # tail\n",
    )
    .expect("valid");
    assert_eq!(file.string_field("opam-version"), Some("2.0"));
    assert_eq!(file.string_field("name"), Some("x"));
    assert!(matches!(parse_opam_file("(* open"), Err(OpamError::Syntax { line: 1, column: 1, .. })));
}

#[test]
fn sections() {
    let file =
        parse_opam_file("url {\n  src: \"https://x/y.tgz\"\n}\nextra-source \"p.patch\" { src: \"u\" }\n")
            .expect("valid");
    assert_eq!(file.items.len(), 2);
    let Item::Section { kind, name, items } = &file.items[1] else { panic!("section expected") };
    assert_eq!(kind, "extra-source");
    assert_eq!(name.as_deref(), Some("p.patch"));
    assert_eq!(items.len(), 1);
}

#[test]
fn syntax_errors_have_positions() {
    let err = parse_opam_file("opam-version: \"2.0\"\ndepends: [\n  \"a\" {>= }\n]\n").expect_err("invalid");
    assert_eq!(err, OpamError::Syntax { line: 3, column: 11, message: "expected a value, found '}'".into() });
    assert!(
        matches!(parse_opam_file("a: [1 2"), Err(OpamError::Syntax { message, .. }) if message.contains("']'"))
    );
    assert!(matches!(parse_opam_file("a \"b\" c"), Err(OpamError::Syntax { .. })));
    assert!(
        matches!(parse_opam_file("a: $"), Err(OpamError::Syntax { message, .. }) if message.contains("'$'"))
    );
    assert!(
        matches!(parse_opam_file("a: 99999999999999999999"), Err(OpamError::Syntax { message, .. }) if message.contains("out of range"))
    );
    assert!(parse_opam_file("a: b = c = d = e").is_err(), "a field holds one value");
    assert!(parse_opam_file("}").is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(
        matches!(parse_opam_file(&deep), Err(OpamError::Syntax { message, .. }) if message.contains("nested"))
    );
    let chain = format!("a: x{}", " | x".repeat(10_000));
    assert!(parse_opam_file(&chain).is_err());
    let nots = format!("a: {}x", "!".repeat(10_000));
    assert!(parse_opam_file(&nots).is_err());
    let sections = format!("{}{}", "s {".repeat(10_000), "}".repeat(10_000));
    assert!(parse_opam_file(&sections).is_err());
    // Within the bound, fine.
    let ok = format!("a: {}{}", "[".repeat(60), "]".repeat(60));
    assert!(parse_opam_file(&ok).is_ok());
}

#[test]
fn rendering_is_canonical_and_round_trips() {
    let messy = "opam-version:\"2.0\"\ndepends:[\"a\"{>=\"1\"&build}   \"b\"]\n# comment\nbuild:[[\"make\"]{os=\"linux\"}]\nurl{src:\"x\"}\n";
    let tidy = "opam-version: \"2.0\"\n\
                depends: [\n  \"a\" {>= \"1\" & build}\n  \"b\"\n]\n\
                build: [[\"make\"] {os = \"linux\"}]\n\
                url {\n  src: \"x\"\n}\n";
    let file = parse_opam_file(messy).expect("valid");
    assert_eq!(render_file(&file), tidy);
    assert_eq!(parse_opam_file(tidy).expect("valid"), file);
    // Whole realistic export round-trips.
    let export = parse_opam_file(MIRAGE4).expect("valid");
    assert_eq!(parse_opam_file(&render_file(&export)).expect("valid"), export);
}

#[test]
fn tricky_values_round_trip() {
    for input in [
        r#"! = "x""#,
        r#""a\"b\\c\r\x01""#,
        "a = b {c}",
        ">= \"1\" {x}",
        "[a = b = c]",
        "[(a) >= \"1\"]",
        "(a | b) & c",
        "!(a & b)",
        "!!?x",
        "[A += \"b\"]",
        "\"\"\"tri\"ple\"\"\"",
    ] {
        let value = v(input);
        let rendered = value_to_string(&value);
        assert_eq!(v(&rendered), value, "{input:?} rendered as {rendered:?}");
    }
}

#[test]
fn normalised_ignores_field_order_and_layout() {
    let a = parse_opam_file("version: \"1\"\ndepends: [\"x\" \"y\"]\n").expect("valid");
    let b = parse_opam_file("depends: [ \"x\"\n\"y\" ] (* c *)\nversion:   \"1\"").expect("valid");
    assert_ne!(render_file(&a), render_file(&b));
    assert_eq!(render_normalised(&a), render_normalised(&b));
}

#[test]
fn switch_export() {
    let export = parse_switch_export(MIRAGE4.as_bytes()).expect("valid");
    assert_eq!(export.opam_version.as_deref(), Some("2.0"));
    assert_eq!(
        export.compiler,
        [PackageAtom { name: "ocaml-base-compiler".into(), version: "4.14.1".into() }]
    );
    assert_eq!(export.root().map(|r| r.name.as_str()), Some("hello"));
    assert_eq!(export.installed.len(), 13);
    assert_eq!(export.installed_version("ocaml-solo5"), Some("0.8.1"));
    assert_eq!(export.packages.len(), 13);
    assert!(export.warnings.is_empty());

    let dune = &export.packages["dune"];
    assert_eq!(dune.version.as_deref(), Some("3.11.1"));
    let names: Vec<_> = dune.depends.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["ocaml", "ocaml", "ocamlfind-secondary", "base-unix", "base-threads"]);
    assert_eq!(dune.depends[0].constraint.as_deref(), Some(">= \"4.08\""));
    assert_eq!(dune.dependency_names(), ["ocaml", "ocamlfind-secondary", "base-unix", "base-threads"]);
    assert!(dune.canonical.starts_with("opam-version: \"2.0\"\nversion: \"3.11.1\"\n"));

    let findlib = &export.packages["ocamlfind"];
    assert_eq!(findlib.depopts, [Dependency { name: "graphics".into(), constraint: None }]);

    let hello = &export.packages["hello"];
    assert_eq!(hello.depends[1].constraint.as_deref(), Some("build & >= \"4.4.0\" & < \"4.5.0\""));
    let dirs = hello.duniverse_dirs().expect("present").expect("valid");
    assert_eq!(dirs.len(), 3);
    assert_eq!(dirs[1].dir, "ocaml-cstruct");
    assert_eq!(dirs[1].hashes, ["sha256=9a78073392580e8349148fa3ab4b1b2e989dc9d30d07401b04c96b7c60f03e62"]);
    assert!(dirs[2].hashes.is_empty(), "git sources carry no hashes");
    let graph = hello.orb_dependencies().expect("present").expect("valid");
    assert_eq!(graph["hello"], ["mirage-runtime", "mirage-solo5", "ocaml-solo5"]);
    assert_eq!(graph["cstruct"], Vec::<String>::new());
    assert!(export.packages["dune"].duniverse_dirs().is_none());

    let config = &export.packages["ocaml-config"];
    assert!(matches!(config.opam.field("extra-files"), Some(Value::List(files)) if files.len() == 2));
}

#[test]
fn switch_export_extra_files_and_pins() {
    let text = "opam-version: \"2.0\"\nroots: \"a.1\"\ninstalled: [\"a.1\"]\npinned: [\"a.1\" {\"git+https://x#abc\"}]\n\
                extra-files: [[\"md5=a4b41e3236593d8271295b84b0969172\" \"bGV0IHggPSAx\"]]\n\
                package \"a\" { opam-version: \"2.0\" version: \"1\" }\n";
    let export = parse_switch_export(text.as_bytes()).expect("valid");
    assert_eq!(export.roots, [PackageAtom { name: "a".into(), version: "1".into() }]);
    assert_eq!(export.pinned.len(), 1);
    assert_eq!(
        export.extra_files,
        [ExtraFile {
            checksum: "md5=a4b41e3236593d8271295b84b0969172".into(),
            base64: "bGV0IHggPSAx".into()
        }]
    );
    let odd = parse_switch_export(b"extra-files: [\"x\"]\n").expect("still valid");
    assert_eq!(odd.warnings.len(), 1);
}

#[test]
fn switch_export_errors() {
    assert_eq!(parse_switch_export(b"\xff"), Err(OpamError::NotUtf8));
    assert!(matches!(
        parse_switch_export(b"installed: [\"noversion\"]"),
        Err(OpamError::Field { field, message }) if field == "installed" && message.contains("noversion")
    ));
    assert!(matches!(parse_switch_export(b"roots: [1]"), Err(OpamError::Field { .. })));
    assert!(matches!(
        parse_switch_export(b"package \"a\" {}\npackage \"a\" {}"),
        Err(OpamError::Field { message, .. }) if message.contains("twice")
    ));
    assert!(matches!(parse_switch_export(b"package { version: \"1\" }"), Err(OpamError::Field { .. })));
    // The name may come from the `name:` field instead of the label.
    let export = parse_switch_export(b"package { name: \"x\" version: \"1\" }").expect("valid");
    assert!(export.packages.contains_key("x"));
    // Several or no roots: no single root.
    let export = parse_switch_export(b"roots: [\"a.1\" \"b.2\"]").expect("valid");
    assert!(export.root().is_none());
}

#[test]
fn malformed_duniverse_and_orb_fields_are_reported_lazily() {
    let text = "package \"r\" {\n  x-opam-monorepo-duniverse-dirs: [[\"url\"]]\n  x-orb-dependencies: [[\"a\" [1]]]\n}\n";
    let export = parse_switch_export(text.as_bytes()).expect("the file itself is fine");
    let r = &export.packages["r"];
    assert!(matches!(r.duniverse_dirs(), Some(Err(OpamError::Field { .. }))));
    assert!(matches!(r.orb_dependencies(), Some(Err(OpamError::Field { .. }))));
}

#[test]
fn front_page_section() {
    let export = parse_switch_export(MIRAGE4.as_bytes()).expect("valid");
    assert_eq!(export.section(), FrontPageSection::Unikernels);
    assert_eq!(
        export.root_package().and_then(|p| p.opam.string_field("synopsis")),
        Some("This is a dummy package")
    );
    let influx = MIRAGE4.replace("  \"mirage.4.4.1\"\n", "  \"mirage.4.4.1\"\n  \"metrics-influx.0.3.0\"\n");
    assert_eq!(
        parse_switch_export(influx.as_bytes()).expect("valid").section(),
        FrontPageSection::UnikernelsWithInflux
    );
    let monitoring =
        MIRAGE4.replace("\"solo5\" {build & >= \"0.7.5\"}", "\"mirage-monitoring\" {>= \"0.0.5\"}");
    assert_eq!(
        parse_switch_export(monitoring.as_bytes()).expect("valid").section(),
        FrontPageSection::UnikernelsWithInflux
    );
    let package = MIRAGE4.replace("  x-mirage-opam-lock-location: \"mirage/hello-hvt.opam.locked\"\n", "");
    let package = parse_switch_export(package.as_bytes()).expect("valid");
    assert_eq!(package.section(), FrontPageSection::Packages);
    assert_eq!(package.section().title(), "Packages");
    let legacy = "roots: [\"mirage-unikernel-dns.1\"]\npackage \"mirage-unikernel-dns\" { version: \"1\" }";
    assert_eq!(
        parse_switch_export(legacy.as_bytes()).expect("valid").section(),
        FrontPageSection::Unikernels
    );
    assert_eq!(SwitchExport::default().section(), FrontPageSection::Uncategorized);
}
