//! The solo5 application manifest (MFT version 1): parsing, validation and the host-filled copy
//! handed to the guest.

use thiserror::Error;

pub const MFT_VERSION: u32 = 1;
/// Entries including the reserved entry 0.
pub const MAX_ENTRIES: u32 = 64;
pub const HEADER_SIZE: usize = 8;
pub const ENTRY_SIZE: usize = 104;
const NAME_SIZE: usize = 68;
const TYPE_BLOCK_BASIC: u32 = 1;
const TYPE_NET_BASIC: u32 = 2;
const TYPE_RESERVED_FIRST: u32 = 1 << 30;

// Offsets inside an entry (B4).
const OFF_TYPE: usize = 68;
const OFF_UNION: usize = 72;
const OFF_ATTACHED: usize = 96;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is {0} bytes, too short for its header")]
    Truncated(usize),
    #[error("unsupported manifest version {0}")]
    Version(u32),
    #[error("manifest has {0} entries, must be 1..=64 (at most 63 devices)")]
    EntryCount(u32),
    #[error("manifest is {actual} bytes, expected {expected} for its entries")]
    Size { actual: usize, expected: usize },
    #[error("manifest entry 0 must be the reserved entry")]
    FirstEntry,
    #[error("manifest entry {0}: name is not NUL-terminated")]
    NameTermination(usize),
    #[error("manifest entry {0}: name must be 1 to 67 characters of [A-Za-z0-9]")]
    Name(usize),
    #[error("manifest entry {0}: unknown device type {1:#x}")]
    Type(usize, u32),
    #[error("manifest entry {0}: marked attached in the binary")]
    Attached(usize),
    #[error("manifest entry {0}: duplicate device name {1:?}")]
    Duplicate(usize, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    Block,
    Net,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Block => "BLOCK_BASIC",
            DeviceType::Net => "NET_BASIC",
        }
    }
}

/// What the tender fills in when it attaches a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    Block { capacity: u64, block_size: u16 },
    Net { mac: [u8; 6], mtu: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub kind: DeviceType,
    pub attachment: Option<Attachment>,
}

/// A validated manifest. `devices[i]` is manifest entry `i + 1`, so its guest handle is `i + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub devices: Vec<Device>,
}

impl Manifest {
    /// Parses and validates the manifest payload (the note descriptor after its padding).
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() < HEADER_SIZE {
            return Err(ManifestError::Truncated(bytes.len()));
        }
        let version = le_u32(bytes, 0);
        let entries = le_u32(bytes, 4);
        if version != MFT_VERSION {
            return Err(ManifestError::Version(version));
        }
        if entries == 0 || entries > MAX_ENTRIES {
            return Err(ManifestError::EntryCount(entries));
        }
        let expected = HEADER_SIZE + ENTRY_SIZE * entries as usize;
        if bytes.len() != expected {
            return Err(ManifestError::Size { actual: bytes.len(), expected });
        }
        let mut devices: Vec<Device> = Vec::with_capacity(entries as usize - 1);
        for (i, entry) in bytes[HEADER_SIZE..].chunks_exact(ENTRY_SIZE).enumerate() {
            let name_field = &entry[..NAME_SIZE];
            if name_field[NAME_SIZE - 1] != 0 {
                return Err(ManifestError::NameTermination(i));
            }
            let len = name_field.iter().position(|&b| b == 0).unwrap_or(NAME_SIZE - 1);
            let name = &name_field[..len];
            if entry[OFF_ATTACHED] != 0 {
                return Err(ManifestError::Attached(i));
            }
            let kind = le_u32(entry, OFF_TYPE);
            if i == 0 {
                if kind != TYPE_RESERVED_FIRST || !name.is_empty() {
                    return Err(ManifestError::FirstEntry);
                }
                continue;
            }
            let kind = match kind {
                TYPE_BLOCK_BASIC => DeviceType::Block,
                TYPE_NET_BASIC => DeviceType::Net,
                other => return Err(ManifestError::Type(i, other)),
            };
            if name.is_empty() || !name.iter().all(u8::is_ascii_alphanumeric) {
                return Err(ManifestError::Name(i));
            }
            // Checked as ASCII above, so this conversion cannot lose anything.
            let name = String::from_utf8_lossy(name).into_owned();
            if devices.iter().any(|d| d.name == name) {
                return Err(ManifestError::Duplicate(i, name));
            }
            devices.push(Device { name, kind, attachment: None });
        }
        Ok(Self { devices })
    }

    /// Guest handle (manifest index) of the device called `name`.
    pub fn handle_of(&self, name: &str) -> Option<u64> {
        self.devices.iter().position(|d| d.name == name).map(|i| i as u64 + 1)
    }

    /// Device behind a guest handle, if the handle names one.
    pub fn device(&self, handle: u64) -> Option<&Device> {
        let index = usize::try_from(handle.checked_sub(1)?).ok()?;
        self.devices.get(index)
    }

    pub fn size(&self) -> usize {
        HEADER_SIZE + ENTRY_SIZE * (self.devices.len() + 1)
    }

    /// The binary manifest as the guest sees it after attaching: host-private fields are zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.size()];
        out[0..4].copy_from_slice(&MFT_VERSION.to_le_bytes());
        out[4..8].copy_from_slice(&(self.devices.len() as u32 + 1).to_le_bytes());
        let (_, entries) = out.split_at_mut(HEADER_SIZE);
        let mut chunks = entries.chunks_exact_mut(ENTRY_SIZE);
        if let Some(first) = chunks.next() {
            first[OFF_TYPE..OFF_TYPE + 4].copy_from_slice(&TYPE_RESERVED_FIRST.to_le_bytes());
        }
        for (entry, device) in chunks.zip(&self.devices) {
            // Names are at most 67 bytes (checked at parse), so the NUL terminator survives.
            entry[..device.name.len()].copy_from_slice(device.name.as_bytes());
            let kind = match device.kind {
                DeviceType::Block => TYPE_BLOCK_BASIC,
                DeviceType::Net => TYPE_NET_BASIC,
            };
            entry[OFF_TYPE..OFF_TYPE + 4].copy_from_slice(&kind.to_le_bytes());
            match device.attachment {
                Some(Attachment::Block { capacity, block_size }) => {
                    entry[OFF_UNION..OFF_UNION + 8].copy_from_slice(&capacity.to_le_bytes());
                    entry[OFF_UNION + 8..OFF_UNION + 10].copy_from_slice(&block_size.to_le_bytes());
                }
                Some(Attachment::Net { mac, mtu }) => {
                    entry[OFF_UNION..OFF_UNION + 6].copy_from_slice(&mac);
                    entry[OFF_UNION + 6..OFF_UNION + 8].copy_from_slice(&mtu.to_le_bytes());
                }
                None => {}
            }
            entry[OFF_ATTACHED] = u8::from(device.attachment.is_some());
        }
        out
    }
}

fn le_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(b)
}

/// Builds binary manifests for tests (here and in `elf`).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn entry(name: &str, kind: u32) -> Vec<u8> {
        let mut e = vec![0u8; ENTRY_SIZE];
        e[..name.len()].copy_from_slice(name.as_bytes());
        e[OFF_TYPE..OFF_TYPE + 4].copy_from_slice(&kind.to_le_bytes());
        e
    }

    /// A manifest with the reserved entry followed by `devices` (1 = block, 2 = net).
    pub fn build(devices: &[(&str, u32)]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&MFT_VERSION.to_le_bytes());
        m.extend_from_slice(&(devices.len() as u32 + 1).to_le_bytes());
        m.extend(entry("", TYPE_RESERVED_FIRST));
        for (name, kind) in devices {
            m.extend(entry(name, *kind));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{build, entry};
    use super::*;

    #[test]
    fn parses_devices_in_order() {
        let m = Manifest::parse(&build(&[("storage", 1), ("service0", 2)])).unwrap();
        assert_eq!(m.devices.len(), 2);
        assert_eq!(m.devices[0].kind, DeviceType::Block);
        assert_eq!(m.devices[1].name, "service0");
        assert_eq!(m.handle_of("service0"), Some(2));
        assert_eq!(m.device(2).unwrap().kind, DeviceType::Net);
        assert!(m.device(0).is_none());
        assert!(m.device(3).is_none());
        assert!(m.device(u64::MAX).is_none());
    }

    #[test]
    fn only_reserved_entry_is_valid() {
        assert!(Manifest::parse(&build(&[])).unwrap().devices.is_empty());
    }

    #[test]
    fn round_trips_with_attachments() {
        let raw = build(&[("storage", 1), ("service0", 2)]);
        let mut m = Manifest::parse(&raw).unwrap();
        assert_eq!(m.to_bytes(), raw);
        m.devices[0].attachment = Some(Attachment::Block { capacity: 4096, block_size: 512 });
        m.devices[1].attachment = Some(Attachment::Net { mac: [2, 0, 0, 0, 0, 1], mtu: 1500 });
        let bytes = m.to_bytes();
        let e1 = &bytes[HEADER_SIZE + ENTRY_SIZE..];
        assert_eq!(&e1[72..80], &4096u64.to_le_bytes());
        assert_eq!(&e1[80..82], &512u16.to_le_bytes());
        assert_eq!(e1[96], 1);
        let e2 = &bytes[HEADER_SIZE + 2 * ENTRY_SIZE..];
        assert_eq!(&e2[72..78], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&e2[78..80], &1500u16.to_le_bytes());
        assert_eq!(e2[96], 1);
    }

    #[test]
    fn rejects_malformed() {
        let good = build(&[("a", 1)]);
        assert_eq!(Manifest::parse(&good[..7]), Err(ManifestError::Truncated(7)));
        assert!(matches!(Manifest::parse(&good[..good.len() - 1]), Err(ManifestError::Size { .. })));
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(Manifest::parse(&longer), Err(ManifestError::Size { .. })));

        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(Manifest::parse(&bad), Err(ManifestError::Version(2)));

        let mut bad = good.clone();
        bad[4] = 0;
        assert_eq!(Manifest::parse(&bad), Err(ManifestError::EntryCount(0)));

        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Manifest::parse(&bad), Err(ManifestError::EntryCount(u32::MAX)));

        let mut bad = good.clone();
        bad[HEADER_SIZE + ENTRY_SIZE + 67] = b'x';
        assert_eq!(Manifest::parse(&bad), Err(ManifestError::NameTermination(1)));

        let mut bad = good.clone();
        bad[HEADER_SIZE + ENTRY_SIZE + 96] = 1;
        assert_eq!(Manifest::parse(&bad), Err(ManifestError::Attached(1)));

        let mut bad = good.clone();
        bad[HEADER_SIZE + OFF_TYPE] = 1;
        assert_eq!(Manifest::parse(&bad), Err(ManifestError::FirstEntry));

        assert_eq!(Manifest::parse(&build(&[("a", 3)])), Err(ManifestError::Type(1, 3)));
        assert_eq!(Manifest::parse(&build(&[("", 1)])), Err(ManifestError::Name(1)));
        assert_eq!(Manifest::parse(&build(&[("a-b", 1)])), Err(ManifestError::Name(1)));
        assert!(matches!(
            Manifest::parse(&build(&[("a", 1), ("a", 2)])),
            Err(ManifestError::Duplicate(2, _))
        ));
    }

    #[test]
    fn entry_limits() {
        let names: Vec<String> = (0..63).map(|i| format!("storage{i}")).collect();
        let devices: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        assert_eq!(Manifest::parse(&build(&devices)).unwrap().devices.len(), 63);

        let mut too_many = build(&devices);
        too_many[4..8].copy_from_slice(&65u32.to_le_bytes());
        too_many.extend(entry("extra", 1));
        too_many.extend(entry("extra2", 1));
        assert_eq!(Manifest::parse(&too_many), Err(ManifestError::EntryCount(65)));

        let long = "a".repeat(67);
        assert_eq!(Manifest::parse(&build(&[(&long, 2)])).unwrap().devices[0].name, long);
    }
}
