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
