//! Field rules shared by handlers and configuration. Each returns the message shown to clients.

pub fn is_username(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn username(s: &str) -> Result<(), String> {
    if is_username(s) { Ok(()) } else { Err("must be 1 to 64 characters of A-Z a-z 0-9 . _ -".into()) }
}

pub fn password(s: &str) -> Result<(), String> {
    match s.chars().count() {
        0..=9 => Err("must be at least 10 characters".into()),
        10..=1024 => Ok(()),
        _ => Err("must be at most 1024 characters".into()),
    }
}

/// A DNS-label-like name: tenants (and later jobs, deployments) are addressed by it.
pub fn label(s: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err("must be 1 to 63 characters of a-z 0-9 -, not starting with -".into()) }
}

pub fn display_name(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if (1..=100).contains(&n) && !s.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("must be 1 to 100 printable characters".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(label("robur").is_ok());
        assert!(label("a-1").is_ok());
        assert!(label("-a").is_err());
        assert!(label("A").is_err());
        assert!(label("").is_err());
        assert!(label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(password("ééééééééé").is_err());
        assert!(password("éééééééééé").is_ok());
    }
}

/// A build platform such as `debian-12-x86_64` or `freebsd-14`.
pub fn platform(s: &str) -> Result<(), String> {
    let ok = (1..=100).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err("must be 1 to 100 characters of A-Z a-z 0-9 . _ -".into()) }
}

/// A path inside a build's output: relative, `/`-separated, no `.`/`..`/empty components,
/// no NUL or backslash, at most 1024 bytes.
pub fn artifact_path(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 1024 {
        return Err("must be 1 to 1024 bytes".into());
    }
    if s.starts_with('/') {
        return Err("must be relative".into());
    }
    if s.contains('\0') || s.contains('\\') || s.chars().any(char::is_control) {
        return Err("must not contain NUL, backslashes or control characters".into());
    }
    if s.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("must not contain empty, `.` or `..` components".into());
    }
    Ok(())
}

#[cfg(test)]
mod artifact_path_tests {
    use super::artifact_path;

    #[test]
    fn traversal_and_odd_paths_are_refused() {
        for ok in ["bin/hello.hvt", "opam-switch", "a/b.c/d"] {
            assert!(artifact_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a\0b", "a\\b", "a/", "\n"] {
            assert!(artifact_path(bad).is_err(), "{bad:?}");
        }
    }
}

/// A job's name, unique within its tenant.
pub fn job_name(s: &str) -> Result<(), String> {
    platform(s)
}

/// Environment names the worker sets itself; a recipe may not override them.
const RESERVED_ENV: &[&str] = &["PATH", "HOME", "SOURCE_DATE_EPOCH", "TZ", "LC_ALL", "LANG"];
const MAX_RECIPE_BYTES: usize = 4 * 1024 * 1024;

/// A job's recipe: a non-empty script, files at safe relative paths, well-formed environment
/// names that leave the worker's own alone, at most 4 MiB in all.
pub fn recipe(recipe: &petrel_wire::workers::Recipe, errors: &mut Vec<petrel_wire::FieldError>) {
    use petrel_wire::FieldError;
    if recipe.template.is_none() && recipe.script.trim().is_empty() {
        errors.push(FieldError::new("recipe.script", "must not be empty (or name a template)"));
    }
    let mut total = recipe.script.len();
    if recipe.files.len() > 1000 {
        errors.push(FieldError::new("recipe.files", "at most 1000 files"));
    }
    for (path, content) in &recipe.files {
        total += path.len() + content.len();
        if let Err(m) = artifact_path(path) {
            errors.push(FieldError::new(format!("recipe.files[{path:?}]"), m));
        }
    }
    for (name, value) in &recipe.env {
        total += name.len() + value.len();
        let well_formed = !name.is_empty()
            && name.len() <= 100
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            errors.push(FieldError::new(
                format!("recipe.env.{name}"),
                "names are A-Z 0-9 _, not starting with a digit",
            ));
        } else if RESERVED_ENV.contains(&name.as_str()) || name.starts_with("PETREL_") {
            errors.push(FieldError::new(format!("recipe.env.{name}"), "is set by the worker"));
        }
        if value.contains('\0') {
            errors.push(FieldError::new(format!("recipe.env.{name}"), "must not contain NUL"));
        }
    }
    if total > MAX_RECIPE_BYTES {
        errors.push(FieldError::new("recipe", "at most 4 MiB in all"));
    }
}

pub fn build_limits(limits: &petrel_wire::workers::BuildLimits, errors: &mut Vec<petrel_wire::FieldError>) {
    use petrel_wire::FieldError;
    let ranges = [
        ("limits.timeout_secs", limits.timeout_secs, 1, 604_800),
        ("limits.memory_mib", limits.memory_mib, 16, 1_048_576),
        ("limits.output_mib", limits.output_mib, 1, 1_048_576),
        ("limits.max_attempts", limits.max_attempts, 1, 20),
    ];
    for (field, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            errors.push(FieldError::new(field, format!("must be between {min} and {max}")));
        }
    }
}
