//! The `opam-switch` file orb records: `opam switch export --full --freeze`.
//!
//! Top-level fields are the switch selections (`compiler`, `roots`, `installed`, `pinned`, each
//! a list of `"name.version"` strings); every installed package's opam file follows as a
//! `package "name" { ... }` overlay section. With `--full`, files shipped beside opam files
//! travel along as a top-level `extra-files` list of `[checksum base64-contents]` pairs.

use std::collections::BTreeMap;

use super::print::{render_file, render_normalised, render_values};
use super::syntax::parse_opam_file;
use super::{Item, OpamError, OpamFile, Value};

/// `name.version`; opam package names never contain a dot, versions may.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PackageAtom {
    pub name: String,
    pub version: String,
}

impl PackageAtom {
    fn parse(field: &str, text: &str) -> Result<Self, OpamError> {
        match text.split_once('.') {
            Some((name, version)) if !name.is_empty() && !version.is_empty() => {
                Ok(PackageAtom { name: name.to_owned(), version: version.to_owned() })
            }
            _ => Err(OpamError::field(field, format!("expected \"name.version\", found {text:?}"))),
        }
    }
}

/// One dependency of a package, as written in its `depends:` or `depopts:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    /// The filter and version constraint, rendered (`>= "4.08" & build`), if any.
    pub constraint: Option<String>,
}

/// A file the export carries (`extra-files: [[checksum contents] ...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// An opam checksum, `algo=hex`.
    pub checksum: String,
    /// The file's contents, base64 as opam writes them.
    pub base64: String,
}

/// One `x-opam-monorepo-duniverse-dirs` entry of a MirageOS 4 unikernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuniverseDir {
    pub url: String,
    pub dir: String,
    /// `algo=hex` strings; empty for git sources (their URL pins a commit).
    pub hashes: Vec<String>,
}

/// A package's opam file as the switch export embeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpamPackage {
    pub name: String,
    /// The `version:` field (the export normally has it; see [`SwitchExport::version_of`]).
    pub version: Option<String>,
    /// Every field and section, structured.
    pub opam: OpamFile,
    /// The opam file in canonical layout, for display and diffs.
    pub canonical: String,
    /// Canonical layout with fields sorted: equal strings mean effectively equal files.
    pub normalised: String,
    pub depends: Vec<Dependency>,
    pub depopts: Vec<Dependency>,
}

impl OpamPackage {
    fn from_section(label: Option<&str>, items: &[Item]) -> Result<Self, OpamError> {
        let opam = OpamFile { items: items.to_vec() };
        let name = match (label, opam.string_field("name")) {
            (Some(label), _) => label.to_owned(),
            (None, Some(name)) => name.to_owned(),
            (None, None) => return Err(OpamError::field("package", "a package section without a name")),
        };
        let version = opam.string_field("version").map(str::to_owned);
        let depends = dependencies(opam.field("depends"));
        let depopts = dependencies(opam.field("depopts"));
        Ok(OpamPackage {
            name,
            version,
            canonical: render_file(&opam),
            normalised: render_normalised(&opam),
            opam,
            depends,
            depopts,
        })
    }

    /// Names in `depends` then `depopts`, without duplicates, in order of appearance.
    pub fn dependency_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for d in self.depends.iter().chain(&self.depopts) {
            if !names.contains(&d.name.as_str()) {
                names.push(&d.name);
            }
        }
        names
    }

    /// The MirageOS 4 vendored sources, if the field is present.
    pub fn duniverse_dirs(&self) -> Option<Result<Vec<DuniverseDir>, OpamError>> {
        const FIELD: &str = "x-opam-monorepo-duniverse-dirs";
        let value = self.opam.field(FIELD)?;
        Some(list_items(value).iter().map(|entry| duniverse_dir(FIELD, entry)).collect())
    }

    /// orb's `x-orb-dependencies`: package name to the names it depends on (the duniverse
    /// dependency graph of a MirageOS 4 unikernel, root included).
    pub fn orb_dependencies(&self) -> Option<Result<BTreeMap<String, Vec<String>>, OpamError>> {
        const FIELD: &str = "x-orb-dependencies";
        let value = self.opam.field(FIELD)?;
        let parse = || {
            let mut graph = BTreeMap::new();
            for entry in list_items(value) {
                let Value::List(pair) = entry else {
                    return Err(OpamError::field(FIELD, "expected [name [dependencies]] entries"));
                };
                let [Value::String(name), deps] = pair.as_slice() else {
                    return Err(OpamError::field(FIELD, "expected [name [dependencies]] entries"));
                };
                let deps = strings(FIELD, deps)?;
                graph.insert(name.clone(), deps);
            }
            Ok(graph)
        };
        Some(parse())
    }
}

fn duniverse_dir(field: &str, entry: &Value) -> Result<DuniverseDir, OpamError> {
    let bad = || OpamError::field(field, "expected [url dir [hashes]] entries");
    let Value::List(parts) = entry else { return Err(bad()) };
    let (url, dir, hashes) = match parts.as_slice() {
        [Value::String(url), Value::String(dir)] => (url, dir, Vec::new()),
        [Value::String(url), Value::String(dir), hashes] => (url, dir, strings(field, hashes)?),
        _ => return Err(bad()),
    };
    Ok(DuniverseDir { url: url.clone(), dir: dir.clone(), hashes })
}

/// A list field's elements; opam also accepts a lone element for a one-element list.
fn list_items(value: &Value) -> &[Value] {
    match value {
        Value::List(values) => values,
        other => std::slice::from_ref(other),
    }
}

fn strings(field: &str, value: &Value) -> Result<Vec<String>, OpamError> {
    list_items(value)
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(OpamError::field(field, "expected a list of strings")),
        })
        .collect()
}

/// Package names of a formula (`depends`/`depopts`), with their constraints. Every name of a
/// disjunction is listed: callers filter by what is installed.
fn dependencies(value: Option<&Value>) -> Vec<Dependency> {
    fn walk(value: &Value, constraint: Option<&str>, out: &mut Vec<Dependency>) {
        match value {
            Value::String(name) => {
                out.push(Dependency { name: name.clone(), constraint: constraint.map(str::to_owned) })
            }
            Value::Option(inner, filter) => {
                let mut text = String::new();
                render_values(&mut text, filter);
                // A group with a filter, `("a" | "b") {build}`: the filter applies to each name.
                let text = match constraint {
                    Some(outer) => format!("{text} & {outer}"),
                    None => text,
                };
                walk(inner, Some(&text), out);
            }
            Value::Logop(_, l, r) => {
                walk(l, constraint, out);
                walk(r, constraint, out);
            }
            Value::List(values) | Value::Group(values) => {
                values.iter().for_each(|v| walk(v, constraint, out));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(value) = value {
        walk(value, None, &mut out);
    }
    out
}

/// A parsed `opam-switch` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwitchExport {
    pub opam_version: Option<String>,
    pub compiler: Vec<PackageAtom>,
    pub roots: Vec<PackageAtom>,
    pub installed: Vec<PackageAtom>,
    pub pinned: Vec<PackageAtom>,
    /// Overlays by package name.
    pub packages: BTreeMap<String, OpamPackage>,
    pub extra_files: Vec<ExtraFile>,
    /// Parts that were skipped rather than failing the whole file (e.g. an `extra-files` of
    /// unexpected shape).
    pub warnings: Vec<String>,
}

impl SwitchExport {
    /// The single root package (orb builds exactly one); `None` if there are zero or several.
    pub fn root(&self) -> Option<&PackageAtom> {
        match self.roots.as_slice() {
            [root] => Some(root),
            _ => None,
        }
    }

    /// The installed version of a package.
    pub fn installed_version(&self, name: &str) -> Option<&str> {
        self.installed.iter().find(|a| a.name == name).map(|a| a.version.as_str())
    }

    /// A package's version: installed, else its overlay's `version:` field.
    pub fn version_of(&self, name: &str) -> Option<&str> {
        self.installed_version(name).or_else(|| self.packages.get(name).and_then(|p| p.version.as_deref()))
    }
}

/// builder-web's front-page section of a build, decided on upload from its `opam-switch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontPageSection {
    Unikernels,
    UnikernelsWithInflux,
    Packages,
    /// No single root package with an opam file.
    Uncategorized,
}

impl FrontPageSection {
    /// The section's title as builder-web shows it.
    pub fn title(self) -> &'static str {
        match self {
            FrontPageSection::Unikernels => "Unikernels",
            FrontPageSection::UnikernelsWithInflux => "Unikernels (with metrics reported to Influx)",
            FrontPageSection::Packages => "Packages",
            FrontPageSection::Uncategorized => "Uncategorized",
        }
    }
}

impl SwitchExport {
    /// The root package's opam file.
    pub fn root_package(&self) -> Option<&OpamPackage> {
        self.root().and_then(|root| self.packages.get(&root.name))
    }

    /// The front-page section: a unikernel if the root's opam file has
    /// `x-mirage-opam-lock-location` (mirage >= 4.2) or its name starts with
    /// `mirage-unikernel-`; "with Influx metrics" if `metrics-influx` is installed or the root
    /// depends on `mirage-monitoring`.
    pub fn section(&self) -> FrontPageSection {
        let Some(root) = self.root_package() else { return FrontPageSection::Uncategorized };
        let unikernel = root.opam.field("x-mirage-opam-lock-location").is_some()
            || root.name.starts_with("mirage-unikernel-");
        let influx = self.installed_version("metrics-influx").is_some()
            || root.depends.iter().any(|d| d.name == "mirage-monitoring");
        match (unikernel, influx) {
            (true, true) => FrontPageSection::UnikernelsWithInflux,
            (true, false) => FrontPageSection::Unikernels,
            (false, _) => FrontPageSection::Packages,
        }
    }
}

/// Parses an `opam-switch` file.
pub fn parse_switch_export(input: &[u8]) -> Result<SwitchExport, OpamError> {
    let text = std::str::from_utf8(input).map_err(|_| OpamError::NotUtf8)?;
    let file = parse_opam_file(text)?;
    let mut export = SwitchExport::default();
    for item in &file.items {
        match item {
            Item::Field { name, value } => match name.as_str() {
                "opam-version" => match value {
                    Value::String(v) => export.opam_version = Some(v.clone()),
                    _ => return Err(OpamError::field(name, "expected a string")),
                },
                "compiler" => export.compiler = atoms(name, value)?,
                "roots" => export.roots = atoms(name, value)?,
                "installed" => export.installed = atoms(name, value)?,
                "pinned" => export.pinned = atoms(name, value)?,
                "extra-files" => match extra_files(value) {
                    Some(files) => export.extra_files = files,
                    None => export.warnings.push("extra-files: unexpected shape, skipped".into()),
                },
                _ => {}
            },
            Item::Section { kind, name, items } if kind == "package" => {
                let package = OpamPackage::from_section(name.as_deref(), items)?;
                if export.packages.contains_key(&package.name) {
                    return Err(OpamError::field("package", format!("{} appears twice", package.name)));
                }
                export.packages.insert(package.name.clone(), package);
            }
            Item::Section { .. } => {}
        }
    }
    Ok(export)
}

/// `["a.1" "b.2" {"pin-url"}]`: the option (a pin target) is not needed here.
fn atoms(field: &str, value: &Value) -> Result<Vec<PackageAtom>, OpamError> {
    list_items(value)
        .iter()
        .map(|v| match v {
            Value::String(s) => PackageAtom::parse(field, s),
            Value::Option(inner, _) => match &**inner {
                Value::String(s) => PackageAtom::parse(field, s),
                _ => Err(OpamError::field(field, "expected a list of \"name.version\" strings")),
            },
            _ => Err(OpamError::field(field, "expected a list of \"name.version\" strings")),
        })
        .collect()
}

fn extra_files(value: &Value) -> Option<Vec<ExtraFile>> {
    list_items(value)
        .iter()
        .map(|entry| match entry {
            Value::List(pair) => match pair.as_slice() {
                [Value::String(checksum), Value::String(base64)] => {
                    Some(ExtraFile { checksum: checksum.clone(), base64: base64.clone() })
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}
