//! `Cargo.lock`, format versions 1 to 4.
//!
//! v1 keeps checksums in a `[metadata]` table (`"checksum NAME VERSION (SOURCE)" = "hex"`) and
//! may carry the root package in `[root]`; v1 and v2 write every dependency as
//! `"NAME VERSION (SOURCE)"`; v3 and v4 write `"NAME"` and add the version (and source) only
//! where the name alone is ambiguous. Dependencies are resolved to exact packages here, so
//! callers never see the abbreviations.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A package's identity within one lock file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CargoPackageId {
    pub name: String,
    pub version: String,
    /// `registry+https://...` or `git+https://...#commit`; `None` for workspace and path crates.
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoPackage {
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub checksum: Option<String>,
    /// Resolved, sorted, without duplicates.
    pub dependencies: Vec<CargoPackageId>,
}

impl CargoPackage {
    pub fn id(&self) -> CargoPackageId {
        CargoPackageId { name: self.name.clone(), version: self.version.clone(), source: self.source.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoLock {
    /// The format version (1 to 4); files without `version` are 1 or 2, told apart by their
    /// `[metadata]` checksums or `[root]` table.
    pub version: u32,
    /// Sorted by name, version, source.
    pub packages: Vec<CargoPackage>,
}

impl CargoLock {
    /// Workspace and path packages (those without a source).
    pub fn local_packages(&self) -> impl Iterator<Item = &CargoPackage> {
        self.packages.iter().filter(|p| p.source.is_none())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CargoLockError {
    #[error("Cargo.lock is not valid UTF-8")]
    NotUtf8,
    #[error("Cargo.lock is not valid TOML for a lock file: {0}")]
    Toml(String),
    #[error("Cargo.lock version {0} is not supported (1 to 4 are)")]
    UnsupportedVersion(u32),
    #[error("Cargo.lock lists {0} twice")]
    Duplicate(String),
    #[error("Cargo.lock: dependency {dependency:?} of {package} {problem}")]
    Dependency { package: String, dependency: String, problem: &'static str },
}

#[derive(Deserialize)]
struct RawLock {
    version: Option<u32>,
    #[serde(default)]
    package: Vec<RawPackage>,
    root: Option<RawPackage>,
    #[serde(default)]
    metadata: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// Parses a `Cargo.lock`.
pub fn parse_cargo_lock(input: &[u8]) -> Result<CargoLock, CargoLockError> {
    let text = std::str::from_utf8(input).map_err(|_| CargoLockError::NotUtf8)?;
    let raw: RawLock = toml::from_str(text).map_err(|e| CargoLockError::Toml(e.message().to_owned()))?;
    let version = match raw.version {
        Some(v @ 1..=4) => v,
        Some(v) => return Err(CargoLockError::UnsupportedVersion(v)),
        None if raw.root.is_some() || raw.metadata.keys().any(|k| k.starts_with("checksum ")) => 1,
        None => 2,
    };

    let mut raw_packages = raw.package;
    raw_packages.extend(raw.root);
    let mut ids: Vec<CargoPackageId> = raw_packages
        .iter()
        .map(|p| CargoPackageId {
            name: p.name.clone(),
            version: p.version.clone(),
            source: p.source.clone(),
        })
        .collect();
    ids.sort();
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(CargoLockError::Duplicate(format!("{} {}", pair[0].name, pair[0].version)));
    }

    let mut packages = Vec::with_capacity(raw_packages.len());
    for raw in raw_packages {
        let mut dependencies = raw
            .dependencies
            .iter()
            .map(|dep| resolve(&ids, &raw.name, dep))
            .collect::<Result<Vec<_>, _>>()?;
        dependencies.sort();
        dependencies.dedup();
        packages.push(CargoPackage {
            name: raw.name,
            version: raw.version,
            source: raw.source,
            checksum: raw.checksum,
            dependencies,
        });
    }
    // v1: checksums from `[metadata]`, keyed by the package's full spec.
    for p in &mut packages {
        if p.checksum.is_none()
            && let Some(source) = &p.source
        {
            let key = format!("checksum {} {} ({source})", p.name, p.version);
            if let Some(toml::Value::String(sum)) = raw.metadata.get(&key)
                && sum != "<none>"
            {
                p.checksum = Some(sum.clone());
            }
        }
    }
    packages.sort_by(|a, b| (&a.name, &a.version, &a.source).cmp(&(&b.name, &b.version, &b.source)));
    Ok(CargoLock { version, packages })
}

/// `NAME`, `NAME VERSION` or `NAME VERSION (SOURCE)` to the one package it denotes.
fn resolve(ids: &[CargoPackageId], package: &str, spec: &str) -> Result<CargoPackageId, CargoLockError> {
    let error = |problem| CargoLockError::Dependency {
        package: package.to_owned(),
        dependency: spec.to_owned(),
        problem,
    };
    let mut parts = spec.splitn(3, ' ');
    let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(|| error("is empty"))?;
    let version = parts.next();
    let source = match parts.next() {
        Some(s) => {
            Some(s.strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(|| error("is malformed"))?)
        }
        None => None,
    };
    let mut matching = ids.iter().filter(|id| {
        id.name == name
            && version.is_none_or(|v| id.version == v)
            && source.is_none_or(|s| id.source.as_deref() == Some(s))
    });
    match (matching.next(), matching.next()) {
        (Some(id), None) => Ok(id.clone()),
        (None, _) => Err(error("is not in the lock file")),
        (Some(_), Some(_)) => Err(error("is ambiguous")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = r#"# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "serde",
 "syn 2.0.87",
 "util",
]

[[package]]
name = "proc-macro2"
version = "1.0.89"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "f139b0662de085916d1fb67d2b4169d1addddda1919e696f3252b740b629986e"
dependencies = [
 "unicode-ident",
]

[[package]]
name = "serde"
version = "1.0.214"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "f55c3193aca71c12ad7890f1785d2b73e1b9f63a0bbc353c08ef26fe03fc56b5"

[[package]]
name = "syn"
version = "1.0.109"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "72b64191b275b66ffe2469e8af2c1cfe3bafa67b529ead792a6d0160888b4237"
dependencies = [
 "proc-macro2",
 "unicode-ident",
]

[[package]]
name = "syn"
version = "2.0.87"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "25aa4ce346d03a6dcd68dd8b4010bcb74e54e62c90c573f394c46eae99aba32d"
dependencies = [
 "proc-macro2",
 "unicode-ident",
]

[[package]]
name = "unicode-ident"
version = "1.0.13"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "e91b56cd4cadaeb79bbf1a5645f6b4f8dc5bde8834ad5894a8db35fda9efa1fe"

[[package]]
name = "util"
version = "0.1.0"
dependencies = [
 "syn 1.0.109",
]
"#;

    #[test]
    fn v4_with_ambiguous_names() {
        let lock = parse_cargo_lock(V4.as_bytes()).expect("valid");
        assert_eq!(lock.version, 4);
        assert_eq!(lock.packages.len(), 7);
        let app = &lock.packages[0];
        assert_eq!(app.name, "app");
        assert_eq!(app.source, None);
        let deps: Vec<_> = app.dependencies.iter().map(|d| format!("{} {}", d.name, d.version)).collect();
        assert_eq!(deps, ["serde 1.0.214", "syn 2.0.87", "util 0.1.0"]);
        let util = lock.packages.iter().find(|p| p.name == "util").expect("util");
        assert_eq!(util.dependencies[0].version, "1.0.109");
        assert_eq!(lock.local_packages().count(), 2);
        assert_eq!(
            lock.packages[1].checksum.as_deref(),
            Some("f139b0662de085916d1fb67d2b4169d1addddda1919e696f3252b740b629986e")
        );
    }

    #[test]
    fn v3() {
        let lock = parse_cargo_lock(V4.replace("version = 4", "version = 3").as_bytes()).expect("valid");
        assert_eq!(lock.version, 3);
    }

    #[test]
    fn v2_full_specs() {
        let text = r#"
[[package]]
name = "a"
version = "0.1.0"
dependencies = [
 "b 1.0.0 (registry+https://github.com/rust-lang/crates.io-index)",
 "c 0.2.0 (git+https://example.org/c#0123abc)",
]

[[package]]
name = "b"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00"

[[package]]
name = "c"
version = "0.2.0"
source = "git+https://example.org/c#0123abc"
"#;
        let lock = parse_cargo_lock(text.as_bytes()).expect("valid");
        assert_eq!(lock.version, 2);
        assert_eq!(lock.packages[0].dependencies.len(), 2);
        assert_eq!(
            lock.packages[0].dependencies[1].source.as_deref(),
            Some("git+https://example.org/c#0123abc")
        );
    }

    #[test]
    fn v1_root_and_metadata_checksums() {
        let text = r#"
[root]
name = "app"
version = "0.1.0"
dependencies = [
 "libc 0.2.20 (registry+https://github.com/rust-lang/crates.io-index)",
]

[[package]]
name = "libc"
version = "0.2.20"
source = "registry+https://github.com/rust-lang/crates.io-index"

[metadata]
"checksum libc 0.2.20 (registry+https://github.com/rust-lang/crates.io-index)" = "684f330624d8c3784fb9558ca46c4ce488073a8d22450415c5eb4f4cfb0d11b5"
"#;
        let lock = parse_cargo_lock(text.as_bytes()).expect("valid");
        assert_eq!(lock.version, 1);
        assert_eq!(lock.packages.len(), 2);
        let libc = &lock.packages[1];
        assert_eq!(
            libc.checksum.as_deref(),
            Some("684f330624d8c3784fb9558ca46c4ce488073a8d22450415c5eb4f4cfb0d11b5")
        );
        assert_eq!(lock.packages[0].dependencies[0].name, "libc");
    }

    #[test]
    fn errors() {
        assert_eq!(parse_cargo_lock(b"\xff"), Err(CargoLockError::NotUtf8));
        assert!(matches!(parse_cargo_lock(b"[[package]]\nname = 1"), Err(CargoLockError::Toml(_))));
        assert!(
            matches!(parse_cargo_lock(b"[[package]]\nname = \"a\""), Err(CargoLockError::Toml(m)) if m.contains("version"))
        );
        assert_eq!(parse_cargo_lock(b"version = 9"), Err(CargoLockError::UnsupportedVersion(9)));
        let dup = "[[package]]\nname = \"a\"\nversion = \"1\"\n[[package]]\nname = \"a\"\nversion = \"1\"\n";
        assert_eq!(parse_cargo_lock(dup.as_bytes()), Err(CargoLockError::Duplicate("a 1".into())));
        let missing = "version = 3\n[[package]]\nname = \"a\"\nversion = \"1\"\ndependencies = [\"b\"]\n";
        assert!(matches!(
            parse_cargo_lock(missing.as_bytes()),
            Err(CargoLockError::Dependency { problem: "is not in the lock file", .. })
        ));
        let ambiguous = V4.replace("\"syn 2.0.87\"", "\"syn\"");
        assert!(matches!(
            parse_cargo_lock(ambiguous.as_bytes()),
            Err(CargoLockError::Dependency { problem: "is ambiguous", .. })
        ));
        let malformed =
            "version = 3\n[[package]]\nname = \"a\"\nversion = \"1\"\ndependencies = [\"a 1 src\"]\n";
        assert!(matches!(
            parse_cargo_lock(malformed.as_bytes()),
            Err(CargoLockError::Dependency { problem: "is malformed", .. })
        ));
    }

    #[test]
    fn empty_lock() {
        let lock = parse_cargo_lock(b"version = 4\n").expect("valid");
        assert!(lock.packages.is_empty());
    }
}
