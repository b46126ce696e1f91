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
