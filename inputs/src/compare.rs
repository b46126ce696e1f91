//! Comparing two builds: what changed in their inputs and outputs, left to right.
//!
//! A category is compared only when both builds recorded its file; when one side lacks it (or
//! it does not parse) the comparison carries a note instead, so a failed upload never passes
//! for "no differences". `compare(right, left)` is exactly `compare(left, right).reversed()`:
//! opam file diffs are computed in one canonical direction and inverted when needed, because a
//! diff algorithm is not symmetric by itself.

use std::collections::{BTreeMap, BTreeSet};

use petrel_wire::compare::{
    Artifact, ArtifactChange, ArtifactDiff, CompareNote, Comparison, Counts, DuniverseChange, DuniverseDiff,
    DuniverseDir as WireDuniverseDir, EnvironmentDiff, HashChange, KeyValue, MainBinaryDelta, OpamFileDiff,
    PackageDiff, PackageVersion, Side, Summary, ValueChange, VersionChange, normalise_unified_diff,
    reverse_unified_diff, sort_notes,
};
use similar::TextDiff;

use crate::cargo_lock::{CargoLock, parse_cargo_lock};
use crate::environment::{Environment, parse_environment};
use crate::input_id::InputFiles;
use crate::opam::{OpamPackage, SwitchExport, parse_switch_export};
use crate::system_packages::{SystemPackages, parse_system_packages};

/// One build's parsed inputs and its artifacts.
#[derive(Debug, Clone, Default)]
pub struct BuildInputs {
    pub environment: Option<Environment>,
    pub system_packages: Option<SystemPackages>,
    pub opam_switch: Option<SwitchExport>,
    pub cargo_lock: Option<CargoLock>,
    pub artifacts: Vec<Artifact>,
    /// Files that were recorded but did not parse: (file name, error).
    pub problems: Vec<(String, String)>,
}

impl BuildInputs {
    /// Parses the recorded files that are present; a file that fails to parse is left out and
    /// its error kept in `problems` (the comparison shows it).
    pub fn from_files(files: &InputFiles<'_>, artifacts: Vec<Artifact>) -> BuildInputs {
        let mut problems = Vec::new();
        BuildInputs {
            environment: parsed(FILE_ENVIRONMENT, files.build_environment, parse_environment, &mut problems),
            system_packages: parsed(
                FILE_SYSTEM_PACKAGES,
                files.system_packages,
                parse_system_packages,
                &mut problems,
            ),
            opam_switch: parsed(FILE_OPAM_SWITCH, files.opam_switch, parse_switch_export, &mut problems),
            cargo_lock: parsed(FILE_CARGO_LOCK, files.cargo_lock, parse_cargo_lock, &mut problems),
            artifacts,
            problems,
        }
    }
}

fn parsed<T, E: std::fmt::Display>(
    file: &str,
    bytes: Option<&[u8]>,
    parse: fn(&[u8]) -> Result<T, E>,
    problems: &mut Vec<(String, String)>,
) -> Option<T> {
    parse(bytes?).map_err(|e| problems.push((file.to_owned(), e.to_string()))).ok()
}

const FILE_ENVIRONMENT: &str = "build-environment";
const FILE_SYSTEM_PACKAGES: &str = "system-packages";
const FILE_OPAM_SWITCH: &str = "opam-switch";
const FILE_CARGO_LOCK: &str = "Cargo.lock";

/// builder-web's main binary: the single artifact under `bin/`; none if there are zero or
/// several.
pub fn main_binary(artifacts: &[Artifact]) -> Option<&Artifact> {
    let mut in_bin = artifacts.iter().filter(|a| a.path.starts_with("bin/"));
    match (in_bin.next(), in_bin.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// Compares two builds (see the module documentation).
pub fn compare(left: &BuildInputs, right: &BuildInputs) -> Comparison {
    let mut notes = Vec::new();
    for (side, inputs) in [(Side::Left, left), (Side::Right, right)] {
        for (file, message) in &inputs.problems {
            notes.push(CompareNote { side, file: file.clone(), message: message.clone() });
        }
    }
    let mut c = Comparison::default();
    if both(
        &mut notes,
        left,
        right,
        FILE_ENVIRONMENT,
        left.environment.is_some(),
        right.environment.is_some(),
    ) && let (Some(l), Some(r)) = (&left.environment, &right.environment)
    {
        c.environment = environment_diff(l, r);
    }
    if both(
        &mut notes,
        left,
        right,
        FILE_SYSTEM_PACKAGES,
        left.system_packages.is_some(),
        right.system_packages.is_some(),
    ) && let (Some(l), Some(r)) = (&left.system_packages, &right.system_packages)
    {
        c.system_packages = map_diff(&l.packages, &r.packages);
    }
    if both(
        &mut notes,
        left,
        right,
        FILE_OPAM_SWITCH,
        left.opam_switch.is_some(),
        right.opam_switch.is_some(),
    ) && let (Some(l), Some(r)) = (&left.opam_switch, &right.opam_switch)
    {
        let installed = |s: &SwitchExport| -> BTreeMap<String, String> {
            s.installed.iter().map(|a| (a.name.clone(), a.version.clone())).collect()
        };
        let (li, ri) = (installed(l), installed(r));
        c.opam_packages = map_diff(&li, &ri);
        c.opam_files = opam_file_diffs(l, r, &li, &ri);
        c.duniverse = duniverse_diff(l, r, &mut notes);
    }
    if both(&mut notes, left, right, FILE_CARGO_LOCK, left.cargo_lock.is_some(), right.cargo_lock.is_some())
        && let (Some(l), Some(r)) = (&left.cargo_lock, &right.cargo_lock)
    {
        c.cargo_packages = cargo_diff(l, r);
    }
    c.artifacts = artifact_diff(&left.artifacts, &right.artifacts);
    let (lb, rb) = (main_binary(&left.artifacts), main_binary(&right.artifacts));
    if lb.is_some() || rb.is_some() {
        let size_delta = match (lb, rb) {
            (Some(l), Some(r)) => {
                i64::try_from(r.size).ok().zip(i64::try_from(l.size).ok()).map(|(r, l)| r - l)
            }
            _ => None,
        };
        c.main_binary = Some(MainBinaryDelta {
            left: lb.cloned(),
            right: rb.cloned(),
            size_delta,
            identical: matches!((lb, rb), (Some(l), Some(r)) if l.sha256 == r.sha256),
        });
    }
    sort_notes(&mut notes);
    c.notes = notes;
    c.summary = summary(&c);
    c
}

/// Whether both sides have `file`; notes the side that lacks it when the other has it (unless it
/// failed to parse: that is noted already).
fn both(
    notes: &mut Vec<CompareNote>,
    left: &BuildInputs,
    right: &BuildInputs,
    file: &str,
    l: bool,
    r: bool,
) -> bool {
    let failed = |inputs: &BuildInputs| inputs.problems.iter().any(|(f, _)| f == file);
    for (side, has, inputs, other_has) in [(Side::Left, l, left, r), (Side::Right, r, right, l)] {
        if !has && other_has && !failed(inputs) {
            notes.push(CompareNote {
                side,
                file: file.to_owned(),
                message: "not recorded, so not compared".into(),
            });
        }
    }
    l && r
}

fn counts(only_left: usize, only_right: usize, changed: usize) -> Counts {
    Counts { only_left, only_right, changed }
}

fn package_counts(d: &PackageDiff) -> Counts {
    counts(d.only_left.len(), d.only_right.len(), d.changed.len())
}

fn summary(c: &Comparison) -> Summary {
    let mut s = Summary {
        environment: counts(
            c.environment.only_left.len(),
            c.environment.only_right.len(),
            c.environment.changed.len(),
        ),
        system_packages: package_counts(&c.system_packages),
        opam_packages: package_counts(&c.opam_packages),
        opam_files: c.opam_files.len(),
        duniverse: counts(
            c.duniverse.only_left.len(),
            c.duniverse.only_right.len(),
            c.duniverse.changed.len(),
        ),
        cargo_packages: package_counts(&c.cargo_packages),
        artifacts: counts(
            c.artifacts.only_left.len(),
            c.artifacts.only_right.len(),
            c.artifacts.changed.len(),
        ),
        total: 0,
    };
    s.total = s.environment.total()
        + s.system_packages.total()
        + s.opam_packages.total()
        + s.opam_files
        + s.duniverse.total()
        + s.cargo_packages.total()
        + s.artifacts.total();
    s
}

fn environment_diff(l: &Environment, r: &Environment) -> EnvironmentDiff {
    let mut d = EnvironmentDiff::default();
    for (key, lv) in l {
        match r.get(key) {
            None => d.only_left.push(KeyValue { key: key.clone(), value: lv.clone() }),
            Some(rv) if rv != lv => {
                d.changed.push(ValueChange { key: key.clone(), left: lv.clone(), right: rv.clone() })
            }
            Some(_) => {}
        }
    }
    for (key, rv) in r {
        if !l.contains_key(key) {
            d.only_right.push(KeyValue { key: key.clone(), value: rv.clone() });
        }
    }
    d
}

/// Name-to-version maps (system and opam packages: one version per name).
fn map_diff(l: &BTreeMap<String, String>, r: &BTreeMap<String, String>) -> PackageDiff {
    let mut d = PackageDiff::default();
    for (name, lv) in l {
        match r.get(name) {
            None => d.only_left.push(PackageVersion { name: name.clone(), version: lv.clone() }),
            Some(rv) if rv != lv => {
                d.changed.push(VersionChange { name: name.clone(), left: lv.clone(), right: rv.clone() })
            }
            Some(_) => {}
        }
    }
    for (name, rv) in r {
        if !l.contains_key(name) {
            d.only_right.push(PackageVersion { name: name.clone(), version: rv.clone() });
        }
    }
    d
}

/// A crate's version as compared: registry crates by version; git and other sources with the
/// source appended, so a moved git commit shows as a change.
fn cargo_label(version: &str, source: Option<&str>) -> String {
    match source {
        Some(s) if !s.starts_with("registry+") && !s.starts_with("sparse+") => format!("{version} ({s})"),
        _ => version.to_owned(),
    }
}

/// Cargo allows several versions of one crate. Per name, versions on one side only are
/// reported as changes when both sides have the same number of them (paired in sorted order,
/// e.g. 1.0.1 -> 1.0.2), otherwise as removed and added.
fn cargo_diff(l: &CargoLock, r: &CargoLock) -> PackageDiff {
    fn versions(lock: &CargoLock) -> BTreeMap<&str, BTreeSet<String>> {
        let mut map: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for p in &lock.packages {
            map.entry(&p.name).or_default().insert(cargo_label(&p.version, p.source.as_deref()));
        }
        map
    }
    let (lv, rv) = (versions(l), versions(r));
    let names: BTreeSet<&str> = lv.keys().chain(rv.keys()).copied().collect();
    let empty = BTreeSet::new();
    let mut d = PackageDiff::default();
    for name in names {
        let (ls, rs) = (lv.get(name).unwrap_or(&empty), rv.get(name).unwrap_or(&empty));
        let lo: Vec<&String> = ls.difference(rs).collect();
        let ro: Vec<&String> = rs.difference(ls).collect();
        if !lo.is_empty() && lo.len() == ro.len() {
            for (a, b) in lo.iter().zip(&ro) {
                d.changed.push(VersionChange {
                    name: name.to_owned(),
                    left: (*a).clone(),
                    right: (*b).clone(),
                });
            }
        } else {
            let pv = |v: &&String| PackageVersion { name: name.to_owned(), version: (*v).clone() };
            d.only_left.extend(lo.iter().map(pv));
            d.only_right.extend(ro.iter().map(pv));
        }
    }
    d
}

fn opam_file_diffs(
    l: &SwitchExport,
    r: &SwitchExport,
    li: &BTreeMap<String, String>,
    ri: &BTreeMap<String, String>,
) -> Vec<OpamFileDiff> {
    let mut out = Vec::new();
    for (name, version) in li {
        if ri.get(name) != Some(version) {
            continue;
        }
        let (Some(lp), Some(rp)) = (l.packages.get(name), r.packages.get(name)) else { continue };
        if lp.normalised == rp.normalised {
            continue;
        }
        out.push(OpamFileDiff {
            name: name.clone(),
            version: version.clone(),
            diff: opam_diff(name, lp, rp),
        });
    }
    out
}

/// The unified diff left -> right, computed from the smaller text to the larger one so that
/// swapping the sides gives exactly the inverted diff.
fn opam_diff(name: &str, l: &OpamPackage, r: &OpamPackage) -> String {
    let (ll, rl) = (format!("left/{name}/opam"), format!("right/{name}/opam"));
    let unified = |old: &str, new: &str, old_label: &str, new_label: &str| {
        TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .missing_newline_hint(false)
            .header(old_label, new_label)
            .to_string()
    };
    if l.canonical <= r.canonical {
        normalise_unified_diff(&unified(&l.canonical, &r.canonical, &ll, &rl))
    } else {
        reverse_unified_diff(&normalise_unified_diff(&unified(&r.canonical, &l.canonical, &ll, &rl)))
    }
}

fn duniverse_diff(l: &SwitchExport, r: &SwitchExport, notes: &mut Vec<CompareNote>) -> DuniverseDiff {
    let dirs = |side: Side, s: &SwitchExport, notes: &mut Vec<CompareNote>| {
        let root = s.root().and_then(|root| s.packages.get(&root.name))?;
        match root.duniverse_dirs()? {
            Ok(dirs) => Some(
                dirs.into_iter()
                    .map(|d| (d.dir.clone(), WireDuniverseDir { dir: d.dir, url: d.url, hashes: d.hashes }))
                    .collect::<BTreeMap<_, _>>(),
            ),
            Err(e) => {
                notes.push(CompareNote { side, file: FILE_OPAM_SWITCH.into(), message: e.to_string() });
                None
            }
        }
    };
    let (ld, rd) = (dirs(Side::Left, l, notes), dirs(Side::Right, r, notes));
    let (ld, rd) = (ld.unwrap_or_default(), rd.unwrap_or_default());
    let mut d = DuniverseDiff::default();
    for (dir, left) in &ld {
        match rd.get(dir) {
            None => d.only_left.push(left.clone()),
            Some(right) => {
                let hashes = hash_changes(&left.hashes, &right.hashes);
                if left.url != right.url || !hashes.is_empty() {
                    d.changed.push(DuniverseChange {
                        dir: dir.clone(),
                        left_url: left.url.clone(),
                        right_url: right.url.clone(),
                        hashes,
                    });
                }
            }
        }
    }
    d.only_right = rd.iter().filter(|(dir, _)| !ld.contains_key(*dir)).map(|(_, v)| v.clone()).collect();
    d
}

fn hash_changes(l: &[String], r: &[String]) -> Vec<HashChange> {
    let by_algorithm = |hashes: &[String]| -> BTreeMap<String, String> {
        hashes
            .iter()
            .map(|h| match h.split_once('=') {
                Some((algo, hex)) => (algo.to_owned(), hex.to_owned()),
                None => (String::new(), h.clone()),
            })
            .collect()
    };
    let (lm, rm) = (by_algorithm(l), by_algorithm(r));
    let algorithms: BTreeSet<&String> = lm.keys().chain(rm.keys()).collect();
    algorithms
        .into_iter()
        .filter(|a| lm.get(*a) != rm.get(*a))
        .map(|a| HashChange { algorithm: a.clone(), left: lm.get(a).cloned(), right: rm.get(a).cloned() })
        .collect()
}

fn artifact_diff(l: &[Artifact], r: &[Artifact]) -> ArtifactDiff {
    let by_path = |a: &[Artifact]| -> BTreeMap<String, Artifact> {
        a.iter().map(|a| (a.path.clone(), a.clone())).collect()
    };
    let (lm, rm) = (by_path(l), by_path(r));
    let mut d = ArtifactDiff::default();
    for (path, la) in &lm {
        match rm.get(path) {
            None => d.only_left.push(la.clone()),
            Some(ra) if !ra.sha256.eq_ignore_ascii_case(&la.sha256) => d.changed.push(ArtifactChange {
                path: path.clone(),
                left_sha256: la.sha256.clone(),
                right_sha256: ra.sha256.clone(),
                left_size: la.size,
                right_size: ra.size,
            }),
            Some(_) => {}
        }
    }
    d.only_right = rm.iter().filter(|(p, _)| !lm.contains_key(*p)).map(|(_, a)| a.clone()).collect();
    d
}

#[cfg(test)]
mod tests;
