//! The comparison of two builds' inputs and outputs (the compare page).
//!
//! Everything is named from the two sides, `left` and `right`: `only_left` entries are what
//! going from left to right removed, `only_right` what it added. [`Comparison::reversed`] gives
//! the comparison of right against left.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Differences between two builds, left and right.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Comparison {
    /// Counts per category, for the page's summary list.
    pub summary: Summary,
    /// `build-environment` variables.
    pub environment: EnvironmentDiff,
    /// Host packages from `system-packages`.
    pub system_packages: PackageDiff,
    /// Installed opam packages from `opam-switch`.
    pub opam_packages: PackageDiff,
    /// Packages installed in the same version on both sides whose opam files differ
    /// (formatting and field order aside).
    pub opam_files: Vec<OpamFileDiff>,
    /// Vendored sources of MirageOS 4 unikernels (the root package's duniverse).
    pub duniverse: DuniverseDiff,
    /// Crates from `Cargo.lock`.
    pub cargo_packages: PackageDiff,
    /// Build outputs, by path.
    pub artifacts: ArtifactDiff,
    /// The main binaries' sizes; absent when neither side has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_binary: Option<MainBinaryDelta>,
    /// Inputs that could not be compared (missing or unparsable files), for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<CompareNote>,
}

/// Numbers of differences per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub environment: Counts,
    pub system_packages: Counts,
    pub opam_packages: Counts,
    /// Opam files that differ for equal versions.
    pub opam_files: usize,
    pub duniverse: Counts,
    pub cargo_packages: Counts,
    pub artifacts: Counts,
    /// All of the above added up: 0 means the compared inputs and outputs are the same.
    pub total: usize,
}

/// Differences of one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Only in the left build (removed going left to right).
    pub only_left: usize,
    /// Only in the right build (added going left to right).
    pub only_right: usize,
    /// In both, different.
    pub changed: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.only_left + self.only_right + self.changed
    }

    fn reversed(self) -> Self {
        Counts { only_left: self.only_right, only_right: self.only_left, changed: self.changed }
    }
}

/// Environment variables that differ.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentDiff {
    /// Set only in the left build, sorted by key.
    pub only_left: Vec<KeyValue>,
    /// Set only in the right build, sorted by key.
    pub only_right: Vec<KeyValue>,
    /// Set in both, to different values, sorted by key.
    pub changed: Vec<ValueChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValueChange {
    pub key: String,
    /// The left build's value.
    pub left: String,
    /// The right build's value.
    pub right: String,
}

/// Packages that differ (system, opam or Cargo).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct PackageDiff {
    /// Only in the left build, sorted by name then version.
    pub only_left: Vec<PackageVersion>,
    /// Only in the right build, sorted by name then version.
    pub only_right: Vec<PackageVersion>,
    /// In both, in different versions, sorted by name.
    pub changed: Vec<VersionChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PackageVersion {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VersionChange {
    pub name: String,
    /// The left build's version.
    pub left: String,
    /// The right build's version.
    pub right: String,
}

/// The opam files of one package, same version on both sides, that differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpamFileDiff {
    pub name: String,
    pub version: String,
    /// Unified diff of the canonically formatted files, labelled `left/<name>/opam` and
    /// `right/<name>/opam`.
    pub diff: String,
}

/// Vendored source directories of the two root packages.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct DuniverseDiff {
    /// Directories vendored only in the left build, sorted by directory.
    pub only_left: Vec<DuniverseDir>,
    /// Directories vendored only in the right build, sorted by directory.
    pub only_right: Vec<DuniverseDir>,
    /// Directories on both sides from another URL or with other hashes, sorted by directory.
    pub changed: Vec<DuniverseChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DuniverseDir {
    /// The directory below `duniverse/`.
    pub dir: String,
    pub url: String,
    /// opam hashes, `algo=hex`; none for git sources (the URL pins a commit).
    pub hashes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DuniverseChange {
    pub dir: String,
    /// The left build's URL.
    pub left_url: String,
    /// The right build's URL.
    pub right_url: String,
    /// Per hash algorithm, the hashes that differ (sorted by algorithm).
    pub hashes: Vec<HashChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HashChange {
    /// `sha256`, `sha512`, `md5`.
    pub algorithm: String,
    /// The left build's hex digest, if it has one for this algorithm.
    pub left: Option<String>,
    /// The right build's hex digest, if it has one for this algorithm.
    pub right: Option<String>,
}

/// Build outputs that differ, matched by path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct ArtifactDiff {
    /// Only in the left build, sorted by path.
    pub only_left: Vec<Artifact>,
    /// Only in the right build, sorted by path.
    pub only_right: Vec<Artifact>,
    /// Same path, different SHA-256, sorted by path.
    pub changed: Vec<ArtifactChange>,
}

/// An artifact as compared (named apart from `builds::Artifact` in the OpenAPI document: two
/// schemas of one name would leave one of them described by the other).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = ComparedArtifact)]
pub struct Artifact {
    /// Path inside the build output, e.g. `bin/hello.hvt`.
    pub path: String,
    /// Lower-case hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactChange {
    pub path: String,
    pub left_sha256: String,
    pub right_sha256: String,
    pub left_size: u64,
    pub right_size: u64,
}

/// The main binaries (the single artifact under `bin/` of each build).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MainBinaryDelta {
    pub left: Option<Artifact>,
    pub right: Option<Artifact>,
    /// `right.size - left.size` in bytes, when both exist.
    pub size_delta: Option<i64>,
    /// Both exist and have the same SHA-256.
    pub identical: bool,
}

/// Something that could not be compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompareNote {
    /// Which build the note is about.
    pub side: Side,
    /// The recorded file, e.g. `opam-switch`.
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

impl Comparison {
    /// The comparison of right against left: sides swapped everywhere, diffs inverted.
    pub fn reversed(&self) -> Comparison {
        let s = &self.summary;
        let mut notes: Vec<CompareNote> = self
            .notes
            .iter()
            .map(|n| CompareNote { side: n.side.other(), file: n.file.clone(), message: n.message.clone() })
            .collect();
        sort_notes(&mut notes);
        Comparison {
            summary: Summary {
                environment: s.environment.reversed(),
                system_packages: s.system_packages.reversed(),
                opam_packages: s.opam_packages.reversed(),
                opam_files: s.opam_files,
                duniverse: s.duniverse.reversed(),
                cargo_packages: s.cargo_packages.reversed(),
                artifacts: s.artifacts.reversed(),
                total: s.total,
            },
            environment: EnvironmentDiff {
                only_left: self.environment.only_right.clone(),
                only_right: self.environment.only_left.clone(),
                changed: self
                    .environment
                    .changed
                    .iter()
                    .map(|c| ValueChange { key: c.key.clone(), left: c.right.clone(), right: c.left.clone() })
                    .collect(),
            },
            system_packages: self.system_packages.reversed(),
            opam_packages: self.opam_packages.reversed(),
            opam_files: self
                .opam_files
                .iter()
                .map(|f| OpamFileDiff {
                    name: f.name.clone(),
                    version: f.version.clone(),
                    diff: reverse_unified_diff(&f.diff),
                })
                .collect(),
            duniverse: DuniverseDiff {
                only_left: self.duniverse.only_right.clone(),
                only_right: self.duniverse.only_left.clone(),
                changed: self
                    .duniverse
                    .changed
                    .iter()
                    .map(|c| DuniverseChange {
                        dir: c.dir.clone(),
                        left_url: c.right_url.clone(),
                        right_url: c.left_url.clone(),
                        hashes: c
                            .hashes
                            .iter()
                            .map(|h| HashChange {
                                algorithm: h.algorithm.clone(),
                                left: h.right.clone(),
                                right: h.left.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
            },
            cargo_packages: self.cargo_packages.reversed(),
            artifacts: ArtifactDiff {
                only_left: self.artifacts.only_right.clone(),
                only_right: self.artifacts.only_left.clone(),
                changed: self
                    .artifacts
                    .changed
                    .iter()
                    .map(|c| ArtifactChange {
                        path: c.path.clone(),
                        left_sha256: c.right_sha256.clone(),
                        right_sha256: c.left_sha256.clone(),
                        left_size: c.right_size,
                        right_size: c.left_size,
                    })
                    .collect(),
            },
            main_binary: self.main_binary.as_ref().map(|m| MainBinaryDelta {
                left: m.right.clone(),
                right: m.left.clone(),
                size_delta: m.size_delta.map(|d| -d),
                identical: m.identical,
            }),
            notes,
        }
    }
}

/// Notes in a stable order (left first, then by file), so reversing twice is the identity.
pub fn sort_notes(notes: &mut [CompareNote]) {
    notes.sort_by(|a, b| (a.side, &a.file, &a.message).cmp(&(b.side, &b.file, &b.message)));
}

impl PackageDiff {
    fn reversed(&self) -> PackageDiff {
        PackageDiff {
            only_left: self.only_right.clone(),
            only_right: self.only_left.clone(),
            changed: self
                .changed
                .iter()
                .map(|c| VersionChange { name: c.name.clone(), left: c.right.clone(), right: c.left.clone() })
                .collect(),
        }
    }
}

/// The unified diff of the same two texts in the other direction: hunk ranges swapped, `-` and
/// `+` lines exchanged, and each run of changes put back in the usual order (removals before
/// additions). The `---`/`+++` labels are kept: they name the sides, which trade contents. Applied to its own output it gives the input back, provided
/// the input has its changes in that order (see [`normalise_unified_diff`]).
pub fn reverse_unified_diff(diff: &str) -> String {
    rewrite_unified_diff(diff, true)
}

/// Puts each run of changed lines of a unified diff in the usual order (removals before
/// additions), without changing what the diff says.
pub fn normalise_unified_diff(diff: &str) -> String {
    rewrite_unified_diff(diff, false)
}

fn rewrite_unified_diff(diff: &str, reverse: bool) -> String {
    let mut out = String::with_capacity(diff.len());
    let mut removed: Vec<&str> = Vec::new();
    let mut added: Vec<&str> = Vec::new();
    let flush = |out: &mut String, removed: &mut Vec<&str>, added: &mut Vec<&str>| {
        let (minus, plus) = if reverse { (&*added, &*removed) } else { (&*removed, &*added) };
        for line in minus {
            out.push('-');
            out.push_str(line);
        }
        for line in plus {
            out.push('+');
            out.push_str(line);
        }
        removed.clear();
        added.clear();
    };
    let mut lines = diff.split_inclusive('\n').peekable();
    // File headers stay: their labels name positions (`left/...`, `right/...`), not contents.
    if let Some(old) = lines.next_if(|l| l.starts_with("--- ")) {
        out.push_str(old);
        if let Some(new) = lines.next_if(|l| l.starts_with("+++ ")) {
            out.push_str(new);
        }
    }
    for line in lines {
        if let Some(rest) = line.strip_prefix('-') {
            removed.push(rest);
        } else if let Some(rest) = line.strip_prefix('+') {
            added.push(rest);
        } else {
            flush(&mut out, &mut removed, &mut added);
            match line.strip_prefix("@@ ").filter(|_| reverse).and_then(swap_hunk_ranges) {
                Some(swapped) => out.push_str(&swapped),
                None => out.push_str(line),
            }
        }
    }
    flush(&mut out, &mut removed, &mut added);
    out
}

/// `-a,b +c,d @@...` (after the leading `@@ `) to `@@ -c,d +a,b @@...`.
fn swap_hunk_ranges(rest: &str) -> Option<String> {
    let (old, rest) = rest.strip_prefix('-')?.split_once(' ')?;
    let (new, tail) = rest.strip_prefix('+')?.split_once(' ')?;
    Some(format!("@@ -{new} +{old} {tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "--- left/dune/opam\n+++ right/dune/opam\n@@ -1,4 +1,4 @@\n a\n-b\n-c\n+B\n d\n@@ -10 +10,2 @@\n x\n+y\n";

    #[test]
    fn reversing_a_diff_swaps_changes_and_keeps_labels() {
        let reversed = reverse_unified_diff(DIFF);
        assert_eq!(
            reversed,
            "--- left/dune/opam\n+++ right/dune/opam\n@@ -1,4 +1,4 @@\n a\n-B\n+b\n+c\n d\n@@ -10,2 +10 @@\n x\n-y\n"
        );
        assert_eq!(reverse_unified_diff(&reversed), DIFF);
    }

    #[test]
    fn normalising_orders_runs() {
        assert_eq!(normalise_unified_diff("@@ -1 +1 @@\n+n\n-o\n"), "@@ -1 +1 @@\n-o\n+n\n");
    }

    #[test]
    fn reversed_twice_is_identity() {
        let c = Comparison {
            environment: EnvironmentDiff {
                only_left: vec![KeyValue { key: "A".into(), value: "1".into() }],
                only_right: vec![],
                changed: vec![ValueChange { key: "B".into(), left: "x".into(), right: "y".into() }],
            },
            main_binary: Some(MainBinaryDelta {
                left: Some(Artifact { path: "bin/a".into(), sha256: "00".into(), size: 10 }),
                right: Some(Artifact { path: "bin/a".into(), sha256: "11".into(), size: 15 }),
                size_delta: Some(5),
                identical: false,
            }),
            opam_files: vec![OpamFileDiff { name: "dune".into(), version: "3".into(), diff: DIFF.into() }],
            notes: vec![CompareNote {
                side: Side::Left,
                file: "opam-switch".into(),
                message: "missing".into(),
            }],
            ..Comparison::default()
        };
        let r = c.reversed();
        assert_eq!(r.environment.only_right.len(), 1);
        assert_eq!(r.environment.changed[0].left, "y");
        assert_eq!(r.main_binary.as_ref().and_then(|m| m.size_delta), Some(-5));
        assert_eq!(r.notes[0].side, Side::Right);
        assert_eq!(r.reversed(), c);
    }
}
