//! The `input_id` of a build: equal ids mean the same inputs, so the same output is expected.
//!
//! builder-web's rule, kept so ids of OCaml builds match theirs: SHA-256 over the concatenated
//! raw SHA-256 digests of `opam-switch`, `build-environment` and `system-packages`, in that
//! order, over the files' exact bytes; no id if any of the three is missing.
//!
//! Petrel's extension for Rust builds: a build without an `opam-switch` but with a `Cargo.lock`
//! uses the `Cargo.lock` in the opam-switch's place (first digest). An `opam-switch`, when
//! present, always wins, so ids of OCaml builds never change because of a stray `Cargo.lock`.
//! The rule is positional (the same bytes give the same id in either slot); an opam-switch and
//! a Cargo.lock never have the same bytes, so the two kinds do not share ids in practice.

use sha2::{Digest, Sha256};

/// The recorded files that make up a build's inputs (raw bytes as uploaded).
#[derive(Debug, Clone, Copy, Default)]
pub struct InputFiles<'a> {
    pub opam_switch: Option<&'a [u8]>,
    pub build_environment: Option<&'a [u8]>,
    pub system_packages: Option<&'a [u8]>,
    pub cargo_lock: Option<&'a [u8]>,
}

/// The input id, or `None` when a required file is missing (see the module documentation).
pub fn input_id(files: &InputFiles<'_>) -> Option<[u8; 32]> {
    let first = files.opam_switch.or(files.cargo_lock)?;
    let mut outer = Sha256::new();
    for file in [first, files.build_environment?, files.system_packages?] {
        outer.update(Sha256::digest(file));
    }
    Some(outer.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn matches_builder_web() {
        let files = InputFiles {
            opam_switch: Some(b"opam-version: \"2.0\"\n"),
            build_environment: Some(b"OS=linux"),
            system_packages: Some(b"libc6=2.36"),
            cargo_lock: None,
        };
        let mut concatenated = Vec::new();
        concatenated.extend(sha(b"opam-version: \"2.0\"\n"));
        concatenated.extend(sha(b"OS=linux"));
        concatenated.extend(sha(b"libc6=2.36"));
        assert_eq!(input_id(&files), Some(sha(&concatenated)));
    }

    #[test]
    fn known_vector() {
        // Three empty files: sha256(3 x sha256("")).
        let files = InputFiles {
            opam_switch: Some(b""),
            build_environment: Some(b""),
            system_packages: Some(b""),
            cargo_lock: None,
        };
        assert_eq!(
            input_id(&files).map(hex::encode).as_deref(),
            Some("1a03c02fb531d7e1ce353b2f20711c79af2b66730d6de865fb130734973ccd2c")
        );
    }

    #[test]
    fn missing_file_means_no_id() {
        let full = InputFiles {
            opam_switch: Some(b"a"),
            build_environment: Some(b"b"),
            system_packages: Some(b"c"),
            cargo_lock: None,
        };
        assert!(input_id(&full).is_some());
        assert_eq!(input_id(&InputFiles { opam_switch: None, ..full }), None);
        assert_eq!(input_id(&InputFiles { build_environment: None, ..full }), None);
        assert_eq!(input_id(&InputFiles { system_packages: None, ..full }), None);
    }

    #[test]
    fn cargo_lock_stands_in_for_opam_switch() {
        let rust = InputFiles {
            opam_switch: None,
            build_environment: Some(b"b"),
            system_packages: Some(b"c"),
            cargo_lock: Some(b"version = 4\n"),
        };
        let same_bytes_as_opam = InputFiles { opam_switch: Some(b"version = 4\n"), cargo_lock: None, ..rust };
        // Same digest chain: the rule is positional, documented above.
        assert_eq!(input_id(&rust), input_id(&same_bytes_as_opam));
        // An opam-switch wins over a Cargo.lock.
        let both = InputFiles { opam_switch: Some(b"a"), ..rust };
        let opam_only = InputFiles { cargo_lock: None, ..both };
        assert_eq!(input_id(&both), input_id(&opam_only));
        // Order matters.
        let swapped = InputFiles { build_environment: Some(b"c"), system_packages: Some(b"b"), ..rust };
        assert_ne!(input_id(&rust), input_id(&swapped));
    }
}
