//! Command line of `petrel-hvt`, compatible with `solo5-hvt` (ABI B5).
//!
//! Parsing has two passes like upstream: [`parse`] checks the syntax and finds KERNEL, then,
//! once the image's manifest is known, [`resolve`] matches device options against it. Both are
//! pure so they can be unit tested.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::io::RawFd;
use std::path::PathBuf;

use thiserror::Error;

use crate::manifest::{DeviceType, Manifest};

pub const USAGE: &str = "\
usage: petrel-hvt [ OPTIONS ] [ -- ] KERNEL [ ARGS ]
KERNEL is the filename of the unikernel to run.
ARGS are optional arguments passed to the unikernel.
Core options:
  [ --mem=512 ] (guest memory in MB)
  --help (display this help)
  --version (display version information)
Compiled-in modules: net block
Module options:
  [ --block:NAME=PATH ] (attach block device/file at PATH as block storage NAME)
  [ --block-sector-size:NAME=N ] (sector size of block device NAME in bytes, default 512)
  [ --net:NAME=IFACE | @FD ] (attach tap at IFACE or already open tap FD as network NAME)
  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CliError {
    #[error("missing KERNEL argument")]
    MissingKernel,
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error("option {0}: malformed value {1:?}")]
    BadValue(String, String),
    #[error("option {0}: invalid block size {1:?} (a power of two, at least 512)")]
    BlockSize(String, String),
    #[error("option {0} given more than once")]
    Duplicate(String),
    #[error("unknown device {name:?} in {option} (not in the unikernel's manifest)")]
    UnknownDevice { option: String, name: String },
    #[error("{option}: device {name:?} is declared as {declared}")]
    WrongType { option: String, name: String, declared: &'static str },
    #[error("device {name:?} of type {kind} declared but not attached (use {hint})")]
    NotAttached { name: String, kind: &'static str, hint: &'static str },
}

/// Where a network device's tap comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetSource {
    /// Name of an existing tap interface.
    Interface(String),
    /// A tap file descriptor inherited from the parent process.
    Fd(RawFd),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    Run(Options),
}

/// Result of the first pass: syntax checked, devices still unmatched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    pub mem_mib: Option<u64>,
    pub blocks: BTreeMap<String, PathBuf>,
    pub sector_sizes: BTreeMap<String, u64>,
    pub nets: BTreeMap<String, NetSource>,
    pub macs: BTreeMap<String, [u8; 6]>,
    pub kernel: PathBuf,
    pub kernel_args: Vec<OsString>,
}

/// A device option matched against the manifest. `handle` is the manifest index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Block { handle: u64, name: String, path: PathBuf, sector_size: Option<u64> },
    Net { handle: u64, name: String, source: NetSource, mac: Option<[u8; 6]> },
}

/// First pass over the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Command, CliError> {
    let mut opts = Options::default();
    let mut args = args.into_iter();
    let kernel = loop {
        let Some(arg) = args.next() else {
            return Err(CliError::MissingKernel);
        };
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            break args.next().ok_or(CliError::MissingKernel)?;
        }
        if !bytes.starts_with(b"-") {
            break arg;
        }
        match bytes {
            b"--help" => return Ok(Command::Help),
            b"--version" => return Ok(Command::Version),
            _ => parse_option(&mut opts, bytes)?,
        }
    };
    opts.kernel = PathBuf::from(kernel);
    opts.kernel_args = args.collect();
    Ok(Command::Run(opts))
}

fn parse_option(opts: &mut Options, arg: &[u8]) -> Result<(), CliError> {
    let text = String::from_utf8_lossy(arg).into_owned();
    let unknown = || CliError::UnknownOption(text.clone());
    let (key, value) = split_once(arg, b'=').ok_or_else(unknown)?;
    let bad = || CliError::BadValue(text.clone(), String::from_utf8_lossy(value).into_owned());
    if key == b"--mem" {
        let mib = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        if opts.mem_mib.replace(mib).is_some() {
            return Err(CliError::Duplicate("--mem".into()));
        }
        return Ok(());
    }
    let (option, name) = split_once(key, b':').ok_or_else(unknown)?;
    let name = std::str::from_utf8(name).ok().filter(|n| !n.is_empty()).ok_or_else(unknown)?.to_owned();
    let duplicate = || CliError::Duplicate(String::from_utf8_lossy(key).into_owned());
    let inserted = match option {
        b"--block" => {
            if value.is_empty() {
                return Err(bad());
            }
            let path = PathBuf::from(OsString::from_vec(value.to_vec()));
            opts.blocks.insert(name, path).is_none()
        }
        b"--block-sector-size" => {
            let n = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).ok_or_else(|| {
                CliError::BlockSize(text.clone(), String::from_utf8_lossy(value).into_owned())
            })?;
            opts.sector_sizes.insert(name, n).is_none()
        }
        b"--net" => {
            let value = std::str::from_utf8(value).map_err(|_| bad())?;
            let source = match value.strip_prefix('@') {
                Some(fd) => NetSource::Fd(fd.parse().ok().filter(|&fd: &RawFd| fd >= 0).ok_or_else(bad)?),
                None if !value.is_empty() && value.len() < libc::IFNAMSIZ => {
                    NetSource::Interface(value.to_owned())
                }
                None => return Err(bad()),
            };
            opts.nets.insert(name, source).is_none()
        }
        b"--net-mac" => {
            let mac = std::str::from_utf8(value).ok().and_then(parse_mac).ok_or_else(bad)?;
            opts.macs.insert(name, mac).is_none()
        }
        _ => return Err(unknown()),
    };
    if inserted { Ok(()) } else { Err(duplicate()) }
}

fn split_once(bytes: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == sep)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// Parses `xx:xx:xx:xx:xx:xx` (hex digits, two per octet).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for octet in &mut mac {
        let part = parts.next().filter(|p| p.len() == 2)?;
        *octet = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Second pass: matches the device options against the manifest. Every option must name a
/// manifest device of the right type, and every manifest device must be attached.
pub fn resolve(opts: &Options, manifest: &Manifest) -> Result<Vec<DeviceSpec>, CliError> {
    let check = |option: &str, name: &str, want: DeviceType| -> Result<u64, CliError> {
        let handle = manifest
            .handle_of(name)
            .ok_or_else(|| CliError::UnknownDevice { option: option.to_owned(), name: name.to_owned() })?;
        let declared = manifest.device(handle).map(|d| d.kind).unwrap_or(want);
        if declared != want {
            return Err(CliError::WrongType {
                option: option.to_owned(),
                name: name.to_owned(),
                declared: declared.as_str(),
            });
        }
        Ok(handle)
    };
    for name in opts.blocks.keys() {
        check("--block", name, DeviceType::Block)?;
    }
    for name in opts.sector_sizes.keys() {
        check("--block-sector-size", name, DeviceType::Block)?;
    }
    for name in opts.nets.keys() {
        check("--net", name, DeviceType::Net)?;
    }
    for name in opts.macs.keys() {
        check("--net-mac", name, DeviceType::Net)?;
    }

    let mut specs = Vec::with_capacity(manifest.devices.len());
    for (index, device) in manifest.devices.iter().enumerate() {
        let handle = index as u64 + 1;
        let name = device.name.clone();
        let spec = match device.kind {
            DeviceType::Block => opts.blocks.get(&name).map(|path| DeviceSpec::Block {
                handle,
                path: path.clone(),
                sector_size: opts.sector_sizes.get(&name).copied(),
                name: name.clone(),
            }),
            DeviceType::Net => opts.nets.get(&name).map(|source| DeviceSpec::Net {
                handle,
                source: source.clone(),
                mac: opts.macs.get(&name).copied(),
                name: name.clone(),
            }),
        };
        let hint = match device.kind {
            DeviceType::Block => "--block:NAME=PATH",
            DeviceType::Net => "--net:NAME=IFACE",
        };
        specs.push(spec.ok_or(CliError::NotAttached { name, kind: device.kind.as_str(), hint })?);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::build;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn run(list: &[&str]) -> Result<Options, CliError> {
        match parse(args(list))? {
            Command::Run(opts) => Ok(opts),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn kernel_and_args() {
        let o = run(&["--mem=64", "k.hvt", "--solo5:quiet", "a", "--mem=2"]).unwrap();
        assert_eq!(o.mem_mib, Some(64));
        assert_eq!(o.kernel, PathBuf::from("k.hvt"));
        assert_eq!(o.kernel_args, args(&["--solo5:quiet", "a", "--mem=2"]));
        let o = run(&["--", "-k.hvt", "x"]).unwrap();
        assert_eq!(o.kernel, PathBuf::from("-k.hvt"));
        assert_eq!(o.kernel_args, args(&["x"]));
        assert_eq!(run(&[]), Err(CliError::MissingKernel));
        assert_eq!(run(&["--mem=4"]), Err(CliError::MissingKernel));
        assert_eq!(run(&["--"]), Err(CliError::MissingKernel));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(args(&["--help", "k"])), Ok(Command::Help));
        assert_eq!(parse(args(&["--mem=2", "--version"])), Ok(Command::Version));
        // After KERNEL these belong to the guest.
        assert!(matches!(parse(args(&["k", "--help"])), Ok(Command::Run(_))));
    }

    #[test]
    fn device_options() {
        let o = run(&[
            "--block:storage=/tmp/disk img",
            "--block-sector-size:storage=4096",
            "--net:service0=tap100",
            "--net:service1=@7",
            "--net-mac:service0=02:00:00:aB:cd:ef",
            "k",
        ])
        .unwrap();
        assert_eq!(o.blocks["storage"], PathBuf::from("/tmp/disk img"));
        assert_eq!(o.sector_sizes["storage"], 4096);
        assert_eq!(o.nets["service0"], NetSource::Interface("tap100".into()));
        assert_eq!(o.nets["service1"], NetSource::Fd(7));
        assert_eq!(o.macs["service0"], [2, 0, 0, 0xab, 0xcd, 0xef]);
    }

    #[test]
    fn malformed_options() {
        for bad in [
            "--mem",
            "--mem=",
            "--mem=-1",
            "--mem=12x",
            "--block:=x",
            "--block:a=",
            "--net:a=",
            "--net:a=@",
            "--net:a=@-3",
            "--net:a=@x",
            "--net:a=averyveryverylongname",
            "--net-mac:a=02:00:00:00:00",
            "--net-mac:a=02:00:00:00:00:00:00",
            "--net-mac:a=2:00:00:00:00:00",
            "--net-mac:a=zz:00:00:00:00:00",
            "--block-sector-size:a=big",
            "--frob=1",
            "--block",
            "-x",
        ] {
            assert!(run(&[bad, "k"]).is_err(), "{bad} accepted");
        }
        assert_eq!(run(&["--frob=1", "k"]), Err(CliError::UnknownOption("--frob=1".into())));
    }

    #[test]
    fn duplicates() {
        assert_eq!(run(&["--mem=2", "--mem=4", "k"]), Err(CliError::Duplicate("--mem".into())));
        assert_eq!(run(&["--block:a=x", "--block:a=y", "k"]), Err(CliError::Duplicate("--block:a".into())));
        assert!(run(&["--block:a=x", "--block:b=y", "k"]).is_ok());
    }

    #[test]
    fn resolve_matches_manifest() {
        let m = Manifest::parse(&build(&[("storage", 1), ("service0", 2)])).unwrap();
        let o = run(&[
            "--net:service0=tap0",
            "--block:storage=disk",
            "--net-mac:service0=02:00:00:00:00:01",
            "k",
        ])
        .unwrap();
        let specs = resolve(&o, &m).unwrap();
        assert_eq!(
            specs,
            vec![
                DeviceSpec::Block {
                    handle: 1,
                    name: "storage".into(),
                    path: "disk".into(),
                    sector_size: None
                },
                DeviceSpec::Net {
                    handle: 2,
                    name: "service0".into(),
                    source: NetSource::Interface("tap0".into()),
                    mac: Some([2, 0, 0, 0, 0, 1]),
                },
            ]
        );
    }

    #[test]
    fn resolve_errors() {
        let m = Manifest::parse(&build(&[("storage", 1), ("service0", 2)])).unwrap();
        let o = run(&["--net:service0=tap0", "k"]).unwrap();
        assert!(matches!(resolve(&o, &m), Err(CliError::NotAttached { name, .. }) if name == "storage"));
        let o = run(&["--net:service0=tap0", "--block:storage=d", "--block:other=d", "k"]).unwrap();
        assert!(matches!(resolve(&o, &m), Err(CliError::UnknownDevice { name, .. }) if name == "other"));
        let o = run(&["--net:storage=tap0", "--block:service0=d", "k"]).unwrap();
        assert!(matches!(resolve(&o, &m), Err(CliError::WrongType { .. })));
        let o =
            run(&["--net:service0=tap0", "--block:storage=d", "--net-mac:storage=02:00:00:00:00:01", "k"])
                .unwrap();
        assert!(matches!(resolve(&o, &m), Err(CliError::WrongType { .. })));
        let empty = Manifest::parse(&build(&[])).unwrap();
        assert_eq!(resolve(&run(&["k"]).unwrap(), &empty), Ok(vec![]));
    }
}
