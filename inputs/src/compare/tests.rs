use super::*;
use crate::opam::tests::MIRAGE4;

const ENV_LEFT: &[u8] =
    b"HOME=/home/builder\nPATH=/bin:/usr/bin\nOS=linux\nOS_VERSION=12\nORB_DATA=2\nTZ=UTC";
const ENV_RIGHT: &[u8] =
    b"HOME=/home/builder\nPATH=/bin:/usr/bin\nOS=linux\nOS_VERSION=13\nORB_DATA=2\nLANG=C";
const PKGS_LEFT: &[u8] = b"libc6=2.36-9+deb12u4\ngcc-12=12.2.0-14\nlibgmp-dev=2:6.2.1+dfsg1-1.1\n";
const PKGS_RIGHT: &[u8] = b"libc6=2.36-9+deb12u7\ngcc-12=12.2.0-14\nlibseccomp-dev=2.5.4-1+b3\n";

fn artifact(path: &str, sha: &str, size: u64) -> Artifact {
    Artifact { path: path.into(), sha256: sha.into(), size }
}

/// The right build: dune upgraded, ocamlfind gone, cstruct installed, mirage's opam file edited
/// (same version), base-unix's reformatted only, and the duniverse moved on.
fn right_switch() -> String {
    let text = MIRAGE4
        .replace("\"dune.3.11.1\"", "\"dune.3.12.0\"")
        .replace("version: \"3.11.1\"", "version: \"3.12.0\"")
        .replace("  \"ocamlfind.1.9.6\"\n", "  \"cstruct.6.2.0\"\n")
        .replace(
            "  license: \"ISC\"\n  depends: [\n    \"ocaml\" {>= \"4.08.0\"}",
            "  license: \"ISC\"\n  depends: [\n    \"ocaml\" {>= \"4.10.0\"}",
        )
        .replace(
            "  synopsis: \"Unix library distributed with the OCaml compiler\"\n  maintainer",
            "  synopsis: \"Unix library distributed with the OCaml compiler\" (* reformatted *)   maintainer",
        )
        .replace(
            "sha256=9a78073392580e8349148fa3ab4b1b2e989dc9d30d07401b04c96b7c60f03e62",
            "sha256=0000073392580e8349148fa3ab4b1b2e989dc9d30d07401b04c96b7c60f03e62",
        )
        .replace(
            "git+https://github.com/mirage/mirage-solo5.git#b0f8f5f0a0f2b3a4c2e1d0b1a2f3e4d5c6b7a890",
            "git+https://github.com/mirage/mirage-solo5.git#c1a9e6e1b1e3c4b5d3f2e1c2b3a4f5e6d7c8b901",
        );
    // Drop the vendored mirage tarball, add one for fmt.
    let start = text.find("    [\n      \"https://github.com/mirage/mirage-runtime").expect("fixture");
    let end = text[start..].find("    ]\n    [\n").expect("fixture") + start + "    ]\n".len();
    let fmt = "    [\n      \"https://erratique.ch/software/fmt/releases/fmt-0.9.0.tbz\"\n      \"fmt\"\n      [\"sha512=66cf4b8bb92232a091dfda5e94d1c178486a358ab4f0f4f4e5e1d7a4a6b0c6e0f0b0e5d6c3a1f0e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6f7e8d9\"]\n    ]\n";
    format!("{}{}{}", &text[..start], fmt, &text[end..])
}

fn left() -> BuildInputs {
    BuildInputs::from_files(
        &InputFiles {
            opam_switch: Some(MIRAGE4.as_bytes()),
            build_environment: Some(ENV_LEFT),
            system_packages: Some(PKGS_LEFT),
            cargo_lock: None,
        },
        vec![
            artifact("bin/hello.hvt", "aa", 5_000_000),
            artifact("hello.hvt.debug", "bb", 9_000_000),
            artifact("share/doc/hello/README.md", "cc", 100),
        ],
    )
}

fn right() -> BuildInputs {
    let switch = right_switch();
    BuildInputs::from_files(
        &InputFiles {
            opam_switch: Some(switch.as_bytes()),
            build_environment: Some(ENV_RIGHT),
            system_packages: Some(PKGS_RIGHT),
            cargo_lock: None,
        },
        vec![
            artifact("bin/hello.hvt", "dd", 5_004_096),
            artifact("hello.hvt.debug", "bb", 9_000_000),
            artifact("hello.hvt.map", "ee", 42),
        ],
    )
}

#[test]
fn full_comparison() {
    let (l, r) = (left(), right());
    assert!(l.problems.is_empty() && r.problems.is_empty(), "{:?} {:?}", l.problems, r.problems);
    let c = compare(&l, &r);

    assert_eq!(c.environment.only_left, [KeyValue { key: "TZ".into(), value: "UTC".into() }]);
    assert_eq!(c.environment.only_right, [KeyValue { key: "LANG".into(), value: "C".into() }]);
    assert_eq!(
        c.environment.changed,
        [ValueChange { key: "OS_VERSION".into(), left: "12".into(), right: "13".into() }]
    );

    assert_eq!(
        c.system_packages.only_left,
        [PackageVersion { name: "libgmp-dev".into(), version: "2:6.2.1+dfsg1-1.1".into() }]
    );
    assert_eq!(c.system_packages.only_right[0].name, "libseccomp-dev");
    assert_eq!(
        c.system_packages.changed,
        [VersionChange {
            name: "libc6".into(),
            left: "2.36-9+deb12u4".into(),
            right: "2.36-9+deb12u7".into()
        }]
    );

    assert_eq!(
        c.opam_packages.only_left,
        [PackageVersion { name: "ocamlfind".into(), version: "1.9.6".into() }]
    );
    assert_eq!(
        c.opam_packages.only_right,
        [PackageVersion { name: "cstruct".into(), version: "6.2.0".into() }]
    );
    assert_eq!(
        c.opam_packages.changed,
        [VersionChange { name: "dune".into(), left: "3.11.1".into(), right: "3.12.0".into() }]
    );

    // mirage changed; base-unix only in layout and a comment; dune changed version (not here).
    assert_eq!(c.opam_files.len(), 2, "{:#?}", c.opam_files);
    let mirage = c.opam_files.iter().find(|f| f.name == "mirage").expect("mirage diff");
    assert_eq!(mirage.version, "4.4.1");
    assert!(mirage.diff.starts_with("--- left/mirage/opam\n+++ right/mirage/opam\n@@ "), "{}", mirage.diff);
    assert!(
        mirage.diff.contains("\n-  \"ocaml\" {>= \"4.08.0\"}\n+  \"ocaml\" {>= \"4.10.0\"}\n"),
        "{}",
        mirage.diff
    );
    // The root's opam file differs through its duniverse field.
    assert!(c.opam_files.iter().any(|f| f.name == "hello"));
    assert!(!c.opam_files.iter().any(|f| f.name == "base-unix"), "formatting-only change");

    let d = &c.duniverse;
    assert_eq!(d.only_left.iter().map(|x| x.dir.as_str()).collect::<Vec<_>>(), ["mirage"]);
    assert_eq!(d.only_right.iter().map(|x| x.dir.as_str()).collect::<Vec<_>>(), ["fmt"]);
    assert_eq!(d.changed.len(), 2);
    let cstruct = &d.changed[1];
    assert_eq!(cstruct.dir, "ocaml-cstruct");
    assert_eq!(cstruct.left_url, cstruct.right_url);
    assert_eq!(cstruct.hashes.len(), 1);
    assert_eq!(cstruct.hashes[0].algorithm, "sha256");
    let solo5 = &d.changed[0];
    assert_eq!(solo5.dir, "mirage-solo5");
    assert_ne!(solo5.left_url, solo5.right_url);
    assert!(solo5.hashes.is_empty(), "git sources compare by URL");

    assert_eq!(c.artifacts.only_left[0].path, "share/doc/hello/README.md");
    assert_eq!(c.artifacts.only_right[0].path, "hello.hvt.map");
    assert_eq!(c.artifacts.changed.len(), 1);
    assert_eq!(c.artifacts.changed[0].right_sha256, "dd");
    let main = c.main_binary.as_ref().expect("main binaries");
    assert_eq!(main.size_delta, Some(4096));
    assert!(!main.identical);

    assert!(c.notes.is_empty(), "{:?}", c.notes);
    let s = c.summary;
    assert_eq!(s.environment, Counts { only_left: 1, only_right: 1, changed: 1 });
    assert_eq!(s.opam_packages, Counts { only_left: 1, only_right: 1, changed: 1 });
    assert_eq!(s.opam_files, 2);
    assert_eq!(s.duniverse, Counts { only_left: 1, only_right: 1, changed: 2 });
    assert_eq!(s.artifacts, Counts { only_left: 1, only_right: 1, changed: 1 });
    assert_eq!(s.cargo_packages.total(), 0);
    assert_eq!(s.total, 3 + 3 + 3 + 2 + 4 + 3);
}

#[test]
fn mirror_symmetry() {
    let (l, r) = (left(), right());
    let forward = compare(&l, &r);
    let backward = compare(&r, &l);
    assert_eq!(backward, forward.reversed());
    assert_eq!(backward.reversed(), forward);
    let mirage = backward.opam_files.iter().find(|f| f.name == "mirage").expect("diff");
    assert!(mirage.diff.starts_with("--- left/mirage/opam\n+++ right/mirage/opam\n"));
    assert!(mirage.diff.contains("\n-  \"ocaml\" {>= \"4.10.0\"}\n+  \"ocaml\" {>= \"4.08.0\"}\n"));
    assert_eq!(backward.main_binary.as_ref().and_then(|m| m.size_delta), Some(-4096));
}

#[test]
fn identical_builds() {
    let c = compare(&left(), &left());
    assert_eq!(c.summary.total, 0);
    assert_eq!(c, Comparison { main_binary: c.main_binary.clone(), ..Comparison::default() });
    assert!(c.main_binary.as_ref().is_some_and(|m| m.identical && m.size_delta == Some(0)));
}

#[test]
fn missing_and_broken_files_become_notes() {
    let l = left();
    let r = BuildInputs::from_files(
        &InputFiles {
            opam_switch: Some(b"installed: [\"broken\"]"),
            build_environment: None,
            system_packages: Some(b"not a package line"),
            cargo_lock: None,
        },
        vec![],
    );
    let c = compare(&l, &r);
    assert_eq!(c.summary.opam_packages.total(), 0, "not compared");
    let notes: Vec<_> = c.notes.iter().map(|n| (n.side, n.file.as_str())).collect();
    assert_eq!(
        notes,
        [(Side::Right, "build-environment"), (Side::Right, "opam-switch"), (Side::Right, "system-packages")]
    );
    assert!(c.notes[1].message.contains("broken"));
    assert!(c.notes[0].message.contains("not recorded"));
    assert_eq!(c.main_binary.as_ref().map(|m| (m.left.is_some(), m.right.is_some())), Some((true, false)));
    assert_eq!(compare(&r, &l), c.reversed());
}

#[test]
fn main_binary_rule() {
    assert!(main_binary(&[]).is_none());
    assert!(main_binary(&[artifact("bin/a", "1", 1), artifact("bin/b", "2", 2)]).is_none());
    assert_eq!(
        main_binary(&[artifact("a.debug", "1", 1), artifact("bin/b", "2", 2)]).map(|a| a.size),
        Some(2)
    );
    let c = compare(&BuildInputs::default(), &BuildInputs::default());
    assert_eq!(c.main_binary, None);
    assert_eq!(c, Comparison::default());
}

const LOCK_LEFT: &str = r#"version = 4
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["serde", "syn 1.0.109", "syn 2.0.87", "gitdep"]
[[package]]
name = "serde"
version = "1.0.214"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "syn"
version = "1.0.109"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "syn"
version = "2.0.87"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "gitdep"
version = "0.3.0"
source = "git+https://example.org/gitdep#1111111"
[[package]]
name = "old"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

#[test]
fn cargo_packages() {
    let right_lock = LOCK_LEFT
        .replace("\"1.0.214\"", "\"1.0.215\"")
        .replace("2.0.87", "2.0.90")
        .replace("#1111111", "#2222222")
        .replace("name = \"old\"", "name = \"new\"");
    let side = |lock: &str| {
        BuildInputs::from_files(
            &InputFiles { cargo_lock: Some(lock.as_bytes()), ..InputFiles::default() },
            vec![],
        )
    };
    let (l, r) = (side(LOCK_LEFT), side(&right_lock));
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let c = compare(&l, &r);
    let changed: Vec<_> =
        c.cargo_packages.changed.iter().map(|v| format!("{} {} -> {}", v.name, v.left, v.right)).collect();
    assert_eq!(
        changed,
        [
            "gitdep 0.3.0 (git+https://example.org/gitdep#1111111) -> 0.3.0 (git+https://example.org/gitdep#2222222)",
            "serde 1.0.214 -> 1.0.215",
            "syn 2.0.87 -> 2.0.90",
        ]
    );
    assert_eq!(c.cargo_packages.only_left, [PackageVersion { name: "old".into(), version: "1.0.0".into() }]);
    assert_eq!(c.cargo_packages.only_right, [PackageVersion { name: "new".into(), version: "1.0.0".into() }]);
    assert_eq!(compare(&r, &l), c.reversed());

    // One version becomes two: reported as added, not as a change.
    let two = LOCK_LEFT
        .replace("name = \"old\"\nversion = \"1.0.0\"", "name = \"serde\"\nversion = \"0.9.0\"")
        .replace("[\"serde\", ", "[\"serde 1.0.214\", ");
    let two = side(&two);
    assert!(two.problems.is_empty(), "{:?}", two.problems);
    let c = compare(&l, &two);
    assert!(c.cargo_packages.changed.is_empty());
    assert_eq!(
        c.cargo_packages.only_right,
        [PackageVersion { name: "serde".into(), version: "0.9.0".into() }]
    );
}

#[test]
fn opam_file_equal_after_normalisation_is_not_reported() {
    let reordered = MIRAGE4.replace(
        "  version: \"2\"\n  synopsis: \"OCaml Switch Configuration\"\n",
        "  synopsis: \"OCaml Switch Configuration\"\n  version: \"2\"\n",
    );
    assert_ne!(reordered, MIRAGE4);
    let side = |text: &str| {
        BuildInputs::from_files(
            &InputFiles { opam_switch: Some(text.as_bytes()), ..InputFiles::default() },
            vec![],
        )
    };
    let c = compare(&side(MIRAGE4), &side(&reordered));
    assert_eq!(c.summary.total, 0, "{:#?}", c.opam_files);
}

#[test]
fn comparison_serialises() {
    let c = compare(&left(), &right());
    let json = serde_json::to_value(&c).expect("serialises");
    assert_eq!(json["summary"]["opam_files"], 2);
    assert_eq!(json["environment"]["changed"][0]["left"], "12");
    let back: Comparison = serde_json::from_value(json).expect("deserialises");
    assert_eq!(back, c);
}
