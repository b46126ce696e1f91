//! Recipe templates, as builder's orb-build template: a named script with a variant per
//! platform family and `{{NAME}}` substitutions. A job's recipe names one instead of carrying
//! a script; the claim hands the worker the script rendered for the build's platform (and the
//! upload records that script with the build).

use std::collections::BTreeMap;

use petrel_wire::FieldError;
use petrel_wire::workers::{Recipe, RecipeTemplate};

struct Template {
    name: &'static str,
    description: &'static str,
    variables: &'static [(&'static str, &'static str)],
    optional: &'static [&'static str],
    /// (platform prefix, script); the first matching prefix wins.
    variants: &'static [(&'static str, &'static str)],
}

const CARGO: &str = r#"export CARGO_HOME="$HOME/.cargo"
export RUSTFLAGS="--remap-path-prefix=$PWD=/build"
cargo build --locked --release --offline {{CARGO_ARGS}}
mkdir -p "$PETREL_OUTPUT/bin"
cp target/release/{{BIN}} "$PETREL_OUTPUT/bin/"
"#;

const MAKE_GNU: &str = r#"make {{MAKE_ARGS}} {{TARGET}}
mkdir -p "$PETREL_OUTPUT/bin"
cp {{TARGET}} "$PETREL_OUTPUT/bin/"
"#;

/// FreeBSD's make is BSD make; GNU make is `gmake` there.
const MAKE_BSD: &str = r#"gmake {{MAKE_ARGS}} {{TARGET}}
mkdir -p "$PETREL_OUTPUT/bin"
cp {{TARGET}} "$PETREL_OUTPUT/bin/"
"#;

/// A MirageOS unikernel from a git repository, as orb-build does it (needs `network: true`
/// for opam and git): a fresh opam root, the unikernel's dependencies, the build, and the
/// switch export recorded as `opam-switch`.
const MIRAGE: &str = r#"export OPAMROOT="$HOME/.opam" OPAMYES=1 OPAMCONFIRMLEVEL=unsafe-yes
git clone --depth 1 --branch {{REF}} {{REPOSITORY}} unikernel
opam init --bare --disable-sandboxing --no-setup default {{OPAM_REPOSITORY}}
opam switch create petrel {{COMPILER}}
eval "$(opam env --switch petrel)"
opam install mirage
cd unikernel/{{DIRECTORY}}
mirage configure -t {{TARGET}}
make depend
make build
opam switch export --full --freeze ../../opam-switch
mkdir -p "$PETREL_OUTPUT/bin"
cp dist/*.{{TARGET}} "$PETREL_OUTPUT/bin/"
"#;

const TEMPLATES: &[Template] = &[
    Template {
        name: "cargo",
        description: "A Rust program: `cargo build --locked --release --offline`, its Cargo.lock recorded",
        variables: &[
            ("BIN", "the binary's name under target/release"),
            ("CARGO_ARGS", "more arguments to cargo build"),
        ],
        optional: &["CARGO_ARGS"],
        variants: &[("", CARGO)],
    },
    Template {
        name: "make",
        description: "`make TARGET` with GNU make; TARGET is the artifact",
        variables: &[("TARGET", "the file make builds"), ("MAKE_ARGS", "more arguments to make")],
        optional: &["MAKE_ARGS"],
        variants: &[("freebsd-", MAKE_BSD), ("", MAKE_GNU)],
    },
    Template {
        name: "mirage",
        description: "A MirageOS unikernel from git with opam (needs network: true), as orb-build",
        variables: &[
            ("REPOSITORY", "git URL of the unikernel"),
            ("REF", "branch or tag"),
            ("DIRECTORY", "the unikernel's directory in the repository"),
            ("TARGET", "mirage target: hvt, spt, virtio ..."),
            ("COMPILER", "the OCaml compiler package, e.g. ocaml-base-compiler.4.14.2"),
            ("OPAM_REPOSITORY", "opam repository URL"),
        ],
        optional: &["DIRECTORY"],
        variants: &[("", MIRAGE)],
    },
];

/// Every template, as the API lists them.
pub fn list() -> Vec<RecipeTemplate> {
    TEMPLATES
        .iter()
        .map(|t| RecipeTemplate {
            name: t.name.to_string(),
            description: t.description.to_string(),
            variables: t.variables.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            optional: t.optional.iter().map(|s| s.to_string()).collect(),
            platforms: t
                .variants
                .iter()
                .map(|(p, _)| if p.is_empty() { "*".into() } else { format!("{p}*") })
                .collect(),
        })
        .collect()
}

/// Checks a recipe's template use against the job's platforms.
pub fn validate(recipe: &Recipe, platforms: &[String], errors: &mut Vec<FieldError>) {
    let Some(reference) = &recipe.template else { return };
    if !recipe.script.is_empty() {
        errors.push(FieldError::new("recipe.script", "must be empty when a template gives the script"));
    }
    let Some(template) = TEMPLATES.iter().find(|t| t.name == reference.name) else {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        errors.push(FieldError::new("recipe.template.name", format!("unknown; one of {}", names.join(", "))));
        return;
    };
    for (name, _) in template.variables {
        if !template.optional.contains(name) && !reference.vars.contains_key(*name) {
            errors.push(FieldError::new(format!("recipe.template.vars.{name}"), "is required"));
        }
    }
    for name in reference.vars.keys() {
        if !template.variables.iter().any(|(n, _)| n == name) {
            errors.push(FieldError::new(
                format!("recipe.template.vars.{name}"),
                "is not a variable of the template",
            ));
        }
    }
    for platform in platforms {
        if variant(template, platform).is_none() {
            errors.push(FieldError::new(
                "recipe.template.name",
                format!("has no variant for platform {platform}"),
            ));
        }
    }
}

fn variant(template: &Template, platform: &str) -> Option<&'static str> {
    template.variants.iter().find(|(prefix, _)| platform.starts_with(prefix)).map(|(_, script)| *script)
}

/// The recipe as a worker runs it on `platform`: a template's script rendered in place of the
/// script (unchanged without a template, or when the template is unknown or has no variant:
/// validation refused those when the job was saved).
pub fn render(mut recipe: Recipe, platform: &str) -> Recipe {
    let Some(reference) = recipe.template.take() else { return recipe };
    let Some(script) = TEMPLATES.iter().find(|t| t.name == reference.name).and_then(|t| variant(t, platform))
    else {
        recipe.template = Some(reference);
        return recipe;
    };
    recipe.script = substitute(script, &reference.vars);
    recipe
}

/// Replaces each `{{NAME}}` by the value, quoted as one shell word (absent: nothing).
fn substitute(script: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                if let Some(value) = vars.get(&after[..end]) {
                    out.push_str(&shell_quote(value));
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_wire::workers::TemplateRef;

    fn reference(name: &str, vars: &[(&str, &str)]) -> Recipe {
        Recipe {
            template: Some(TemplateRef {
                name: name.into(),
                vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn values_are_substituted_as_quoted_words_and_absent_optional_ones_vanish() {
        let rendered = render(reference("cargo", &[("BIN", "it's")]), "debian-12-x86_64");
        assert!(rendered.template.is_none());
        assert!(rendered.script.contains(r"cp target/release/'it'\''s' "), "{}", rendered.script);
        assert!(rendered.script.contains("--offline \n"), "{}", rendered.script);
    }

    #[test]
    fn the_variant_follows_the_platform() {
        let debian = render(reference("make", &[("TARGET", "a.hvt")]), "debian-12-x86_64");
        let freebsd = render(reference("make", &[("TARGET", "a.hvt")]), "freebsd-14-amd64");
        assert!(debian.script.starts_with("make  'a.hvt'"), "{}", debian.script);
        assert!(freebsd.script.starts_with("gmake  'a.hvt'"), "{}", freebsd.script);
    }

    #[test]
    fn validation_names_each_problem() {
        let mut errors = Vec::new();
        let mut recipe = reference("make", &[("NOPE", "x")]);
        recipe.script = "echo".into();
        validate(&recipe, &["debian-12-x86_64".into()], &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["recipe.script", "recipe.template.vars.TARGET", "recipe.template.vars.NOPE"]);
        let mut errors = Vec::new();
        validate(&reference("nope", &[]), &[], &mut errors);
        assert_eq!(errors[0].field, "recipe.template.name");
    }
}
