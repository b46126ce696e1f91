//! The platform name a worker reports, e.g. `debian-12-x86_64`: jobs list the platforms they
//! are built on and a worker only claims builds of its own.

/// The API's rule for platform names (`validate::platform`): 1 to 100 bytes of
/// `A-Z a-z 0-9 . _ -`.
const MAX_LEN: usize = 100;

/// This host's platform: `<ID>-<major VERSION_ID>-<arch>` from `/etc/os-release`, or
/// `<os>-<arch>` (e.g. `linux-x86_64`) without it.
pub fn detect() -> String {
    let os_release = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok();
    from_os_release(os_release.as_deref(), std::env::consts::OS, std::env::consts::ARCH)
}

/// The platform name from the text of an os-release file (if any), the OS and the architecture.
pub fn from_os_release(os_release: Option<&str>, os: &str, arch: &str) -> String {
    let field = |name: &str| os_release.and_then(|text| os_release_field(text, name)).map(|v| sanitise(&v));
    let id = field("ID").filter(|id| !id.is_empty()).unwrap_or_else(|| sanitise(os));
    let major =
        field("VERSION_ID").and_then(|v| v.split('.').next().map(str::to_string)).filter(|v| !v.is_empty());
    let arch = sanitise(arch);
    let name = match major {
        Some(major) => format!("{id}-{major}-{arch}"),
        // Rolling releases (Debian sid, Arch) have no version.
        None => format!("{id}-{arch}"),
    };
    let mut name: String = name.chars().take(MAX_LEN).collect();
    if name.is_empty() {
        name = "unknown".into();
    }
    name
}

/// The value of `name=` in os-release syntax (shell-like: optional quotes, backslash escapes).
fn os_release_field(text: &str, name: &str) -> Option<String> {
    let raw = text.lines().rev().find_map(|line| line.trim().strip_prefix(name)?.strip_prefix('='))?;
    let raw = raw.trim();
    let unquoted = match raw.as_bytes().first() {
        Some(q @ (b'"' | b'\'')) => {
            let q = *q as char;
            raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)).unwrap_or(&raw[1..])
        }
        _ => raw,
    };
    let mut value = String::new();
    let mut chars = unquoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            c => value.push(c),
        }
    }
    Some(value)
}

/// Lower case, and anything outside the API's alphabet becomes `_`.
fn sanitise(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `validate::platform` in api/src/validate.rs (the API is not a dependency of this crate).
    fn api_accepts(s: &str) -> bool {
        (1..=100).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                          VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

    #[test]
    fn known_systems() {
        assert_eq!(from_os_release(Some(DEBIAN), "linux", "x86_64"), "debian-12-x86_64");
        let ubuntu = "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n";
        assert_eq!(from_os_release(Some(ubuntu), "linux", "aarch64"), "ubuntu-24-aarch64");
        let freebsd = "NAME=FreeBSD\nVERSION_ID=\"14.1\"\nID=freebsd\n";
        assert_eq!(from_os_release(Some(freebsd), "freebsd", "x86_64"), "freebsd-14-x86_64");
        let sid = "PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nID=debian\n";
        assert_eq!(from_os_release(Some(sid), "linux", "x86_64"), "debian-x86_64");
    }

    #[test]
    fn fallbacks() {
        assert_eq!(from_os_release(None, "linux", "x86_64"), "linux-x86_64");
        assert_eq!(from_os_release(Some("garbage\n"), "linux", "x86_64"), "linux-x86_64");
        assert_eq!(from_os_release(Some("ID=\n"), "linux", "x86_64"), "linux-x86_64");
    }

    #[test]
    fn odd_values_still_pass_the_api() {
        for text in [
            "ID='My OS/2'\nVERSION_ID=\"1.2\"\n",
            "ID=\"a\\\"b\"\n",
            &format!("ID={}\n", "x".repeat(300)),
            "ID=ünïcödé\nVERSION_ID=ß\n",
        ] {
            let name = from_os_release(Some(text), "linux", "x86_64");
            assert!(api_accepts(&name), "{text:?} gave {name:?}");
        }
        assert_eq!(
            from_os_release(Some("ID='My OS/2'\nVERSION_ID=\"1.2\"\n"), "linux", "x86_64"),
            "my_os_2-1-x86_64"
        );
    }

    #[test]
    fn this_host() {
        let name = detect();
        assert!(api_accepts(&name), "{name:?}");
        assert!(name.ends_with(std::env::consts::ARCH), "{name:?}");
    }
}
