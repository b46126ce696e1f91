//! The `system-packages` file: the host's packages at build time, one per line.
//!
//! orb writes `dpkg-query -W` output on Debian (`name=version`) and `pkg query %n-%v` on FreeBSD
//! (`name-version`). FreeBSD package names contain dashes (`gmake-4.4.1`, `py311-setuptools-63.1.0`)
//! but versions never do, so the FreeBSD form is split at the *last* dash (builder-web splits
//! at the first and mis-parses such names). Debian names and versions never contain `=`, so a
//! line with `=` is Debian and one without is FreeBSD: detection is per line and unambiguous.

use std::collections::BTreeMap;

use crate::environment::truncate;

/// The flavour of a `system-packages` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageFormat {
    /// No packages (empty file).
    Empty,
    /// `name=version` (dpkg).
    Debian,
    /// `name-version` (FreeBSD pkg).
    FreeBsd,
    /// Lines of both kinds; accepted, but no real host writes this.
    Mixed,
}

/// Parsed `system-packages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPackages {
    pub format: PackageFormat,
    /// Version by package name. dpkg prints multi-arch packages once per architecture with the
    /// same name; the last line wins.
    pub packages: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SystemPackagesError {
    #[error("system-packages line {line}: not valid UTF-8")]
    NotUtf8 { line: usize },
    #[error("system-packages line {line}: expected name=version or name-version, found {text:?}")]
    Malformed { line: usize, text: String },
}

/// Parses a `system-packages` file (see the module documentation for the formats).
pub fn parse_system_packages(input: &[u8]) -> Result<SystemPackages, SystemPackagesError> {
    let mut packages = BTreeMap::new();
    let (mut debian, mut freebsd) = (false, false);
    for (index, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|_| SystemPackagesError::NotUtf8 { line })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let split = if text.contains('=') {
            debian = true;
            text.split_once('=')
        } else {
            freebsd = true;
            text.rsplit_once('-')
        };
        match split {
            Some((name, version)) if valid_part(name) && valid_part(version) && !version.contains('=') => {
                packages.insert(name.to_owned(), version.to_owned());
            }
            _ => return Err(SystemPackagesError::Malformed { line, text: truncate(text) }),
        }
    }
    let format = match (debian, freebsd) {
        (false, false) => PackageFormat::Empty,
        (true, false) => PackageFormat::Debian,
        (false, true) => PackageFormat::FreeBsd,
        (true, true) => PackageFormat::Mixed,
    };
    Ok(SystemPackages { format, packages })
}

fn valid_part(part: &str) -> bool {
    !part.is_empty() && !part.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian() {
        let p = parse_system_packages(
            b"adduser=3.134\nlibc6=2.36-9+deb12u4\nlibc6-dev=2.36-9+deb12u4\ngcc-12=12.2.0-14\n",
        )
        .expect("valid");
        assert_eq!(p.format, PackageFormat::Debian);
        assert_eq!(p.packages["libc6"], "2.36-9+deb12u4");
        assert_eq!(p.packages["gcc-12"], "12.2.0-14");
        assert_eq!(p.packages.len(), 4);
    }

    #[test]
    fn debian_epoch_versions() {
        let p = parse_system_packages(b"tzdata=2024a-0+deb12u1\nperl=5.36.0-7+deb12u1\nvim=2:9.0.1378-2\n")
            .expect("valid");
        assert_eq!(p.packages["vim"], "2:9.0.1378-2");
    }

    #[test]
    fn freebsd_splits_at_the_last_dash() {
        let p = parse_system_packages(
            b"gmake-4.4.1\npy311-setuptools-63.1.0_1\nca_root_nss-3.93_2\nlibffi-3.4.4_1\npkg-1.20.9\n",
        )
        .expect("valid");
        assert_eq!(p.format, PackageFormat::FreeBsd);
        assert_eq!(p.packages["py311-setuptools"], "63.1.0_1");
        assert_eq!(p.packages["gmake"], "4.4.1");
        assert_eq!(p.packages["ca_root_nss"], "3.93_2");
        assert!(!p.packages.contains_key("py311"));
    }

    #[test]
    fn freebsd_port_epoch_comma() {
        let p =
            parse_system_packages(b"gettext-runtime-0.22.3\nperl5-5.36.3_1\nbash-5.2.21,1\n").expect("valid");
        assert_eq!(p.packages["gettext-runtime"], "0.22.3");
        assert_eq!(p.packages["bash"], "5.2.21,1");
    }

    #[test]
    fn empty_and_blank() {
        let p = parse_system_packages(b"\n\n  \n").expect("valid");
        assert_eq!(p.format, PackageFormat::Empty);
        assert!(p.packages.is_empty());
    }

    #[test]
    fn mixed_is_detected() {
        let p = parse_system_packages(b"libc6=2.36\ngmake-4.4.1\n").expect("valid");
        assert_eq!(p.format, PackageFormat::Mixed);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse_system_packages(b"libc6=2.36\nnodash\n"),
            Err(SystemPackagesError::Malformed { line: 2, text: "nodash".into() })
        );
        assert!(parse_system_packages(b"=1.0").is_err());
        assert!(parse_system_packages(b"name=").is_err());
        assert!(parse_system_packages(b"trailing-").is_err());
        assert!(parse_system_packages(b"-1.0").is_err());
        assert!(parse_system_packages(b"a=b=c").is_err());
        assert!(parse_system_packages(b"two words=1").is_err());
        assert_eq!(parse_system_packages(b"a=1\n\xfe"), Err(SystemPackagesError::NotUtf8 { line: 2 }));
    }
}
