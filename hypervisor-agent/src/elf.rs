//! Parsing and validation of solo5 hvt unikernel images: ELF header, program headers, the ABI
//! note and the manifest note (ABI B2–B4). Pure functions over `&[u8]`, so they can be unit
//! tested and fuzzed without KVM.

use thiserror::Error;

use crate::manifest::{Manifest, ManifestError};

/// Lowest guest-physical address an image may load at.
pub const LOAD_BASE: u64 = 0x10_0000;
pub const PAGE_SIZE: u64 = 0x1000;
/// solo5 `abi_target` of hvt.
pub const ABI_TARGET_HVT: u32 = 1;
pub const ABI_VERSION: u32 = 2;

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

const NOTE_HEADER_SIZE: u64 = 20;
const NOTE_NAME: &[u8; 6] = b"Solo5\0";
const ABI_NOTE_TYPE: u32 = 0x3149_4241; // "ABI1"
const ABI_NOTE_MAX_DESC: u32 = 32;
const ABI_PAYLOAD_SIZE: u64 = 16;
const MFT_NOTE_TYPE: u32 = 0x3154_464d; // "MFT1"
const MFT_NOTE_MAX_DESC: u32 = 6668;
/// The manifest payload is 8-byte aligned, so 4 pad bytes follow the 20-byte note header.
const MFT_PAYLOAD_PAD: u64 = 4;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("file is {0} bytes, too small for an ELF header")]
    TooSmall(usize),
    #[error("not an ELF64 little-endian x86_64 executable ({0})")]
    Header(&'static str),
    #[error("program headers lie outside the file")]
    ProgramHeaders,
    #[error("entry point {0:#x} is outside guest memory")]
    Entry(u64),
    #[error("segment {index}: {reason}")]
    Segment { index: usize, reason: &'static str },
    #[error("note segment {0} lies outside the file")]
    NoteOutsideFile(usize),
    #[error("{0} note not found (is this a solo5 hvt unikernel?)")]
    NoteMissing(&'static str),
    #[error("{0} note appears more than once")]
    NoteDuplicate(&'static str),
    #[error("{0} note does not fall within valid size")]
    NoteSize(&'static str),
    #[error("unsupported ABI: target {target}, version {version} (need hvt = 1, version 2)")]
    Abi { target: u32, version: u32 },
    #[error("invalid manifest: {0}")]
    Manifest(#[from] ManifestError),
}

pub type Result<T> = std::result::Result<T, ElfError>;

/// One PT_LOAD program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub flags: u32,
    pub align: u64,
}

impl Segment {
    /// Start rounded down to the segment alignment.
    fn aligned_start(&self) -> u64 {
        self.vaddr & !(self.align - 1)
    }

    /// End of memory image rounded up to the segment alignment; `None` on overflow.
    fn aligned_end(&self) -> Option<u64> {
        self.vaddr.checked_add(self.memsz)?.checked_add(self.align - 1).map(|e| e & !(self.align - 1))
    }

    /// Page range used for host-side protection: `(start, length)`.
    pub fn pages(&self) -> (u64, u64) {
        let start = self.vaddr & !(PAGE_SIZE - 1);
        // Validated at parse time, so no overflow here.
        let end = (self.vaddr + self.memsz).next_multiple_of(PAGE_SIZE);
        (start, end - start)
    }
}

/// A parsed, structurally valid hvt image borrowing the file bytes.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    data: &'a [u8],
    pub entry: u64,
    /// PT_LOAD segments with file contents, in ascending address order.
    pub loads: Vec<Segment>,
    /// PT_LOAD segments with `p_filesz == 0` (bss): not copied, only bounds checked.
    pub zero_fill: Vec<Segment>,
    pub abi_target: u32,
    pub abi_version: u32,
    pub manifest: Manifest,
}

impl<'a> Image<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        if data.len() < EHDR_SIZE {
            return Err(ElfError::TooSmall(data.len()));
        }
        check_header(data)?;
        let entry = u64_at(data, 24);
        let phoff = u64_at(data, 32);
        let phnum = u16_at(data, 56) as u64;
        let table_end = phnum
            .checked_mul(PHDR_SIZE as u64)
            .and_then(|size| phoff.checked_add(size))
            .ok_or(ElfError::ProgramHeaders)?;
        if table_end > data.len() as u64 {
            return Err(ElfError::ProgramHeaders);
        }
        if entry < LOAD_BASE {
            return Err(ElfError::Entry(entry));
        }

        let mut loads: Vec<Segment> = Vec::new();
        let mut zero_fill = Vec::new();
        let mut notes = Vec::new();
        for index in 0..phnum as usize {
            let ph = &data[phoff as usize + index * PHDR_SIZE..][..PHDR_SIZE];
            let kind = u32_at(ph, 0);
            let seg = Segment {
                flags: u32_at(ph, 4),
                offset: u64_at(ph, 8),
                vaddr: u64_at(ph, 16),
                filesz: u64_at(ph, 32),
                memsz: u64_at(ph, 40),
                align: u64_at(ph, 48).max(1),
            };
            match kind {
                PT_LOAD => {
                    check_load(&seg, data.len() as u64, loads.last())
                        .map_err(|reason| ElfError::Segment { index, reason })?;
                    if seg.filesz == 0 {
                        zero_fill.push(seg);
                    } else {
                        loads.push(seg);
                    }
                }
                PT_NOTE => {
                    let end = seg.offset.checked_add(seg.filesz);
                    if end.is_none_or(|end| end > data.len() as u64) {
                        return Err(ElfError::NoteOutsideFile(index));
                    }
                    notes.push(&data[seg.offset as usize..][..seg.filesz as usize]);
                }
                _ => {}
            }
        }
        if loads.is_empty() {
            return Err(ElfError::Segment { index: 0, reason: "no loadable segment" });
        }

        let abi = find_note(&notes, ABI_NOTE_TYPE, ABI_NOTE_MAX_DESC, 0, "ABI")?;
        // The payload is 16 bytes; trailing reserved space up to the maximum is tolerated.
        if (abi.len() as u64) < ABI_PAYLOAD_SIZE {
            return Err(ElfError::NoteSize("ABI"));
        }
        let abi_target = u32_at(abi, 0);
        let abi_version = u32_at(abi, 4);
        if abi_target != ABI_TARGET_HVT || abi_version != ABI_VERSION {
            return Err(ElfError::Abi { target: abi_target, version: abi_version });
        }
        let mft = find_note(&notes, MFT_NOTE_TYPE, MFT_NOTE_MAX_DESC, MFT_PAYLOAD_PAD, "manifest")?;
        let manifest = Manifest::parse(mft)?;

        Ok(Self { data, entry, loads, zero_fill, abi_target, abi_version, manifest })
    }

    /// Checks that the image fits in `mem_size` bytes of guest memory and returns `kernel_end`
    /// (the highest aligned end of a loaded segment, as in B2).
    pub fn check_fits(&self, mem_size: u64) -> Result<u64> {
        if self.entry >= mem_size {
            return Err(ElfError::Entry(self.entry));
        }
        let mut kernel_end = 0;
        for (index, seg) in self.loads.iter().chain(&self.zero_fill).enumerate() {
            let end = seg.aligned_end().filter(|&end| end <= mem_size);
            let end = end.ok_or(ElfError::Segment { index, reason: "does not fit in guest memory" })?;
            if seg.filesz > 0 {
                kernel_end = kernel_end.max(end);
            }
        }
        Ok(kernel_end)
    }

    /// File contents of a loaded segment (bounds were checked at parse time).
    pub fn contents(&self, seg: &Segment) -> &'a [u8] {
        &self.data[seg.offset as usize..][..seg.filesz as usize]
    }

    /// Highest end address of any PT_LOAD including bss: a lower bound for guest memory.
    pub fn memory_end(&self) -> u64 {
        self.loads.iter().chain(&self.zero_fill).filter_map(Segment::aligned_end).max().unwrap_or(0)
    }
}

fn check_header(data: &[u8]) -> Result<()> {
    let check = |ok: bool, what| {
        if ok { Ok(()) } else { Err(ElfError::Header(what)) }
    };
    check(&data[0..4] == b"\x7fELF", "bad magic")?;
    check(data[4] == 2, "not ELFCLASS64")?;
    check(data[5] == 1, "not little endian")?;
    check(data[6] == 1 && u32_at(data, 20) == 1, "not EV_CURRENT")?;
    check(u16_at(data, 16) == ET_EXEC, "not ET_EXEC")?;
    check(u16_at(data, 18) == EM_X86_64, "not EM_X86_64")?;
    check(u16_at(data, 52) as usize == EHDR_SIZE, "bad e_ehsize")?;
    check(u16_at(data, 54) as usize == PHDR_SIZE, "bad e_phentsize")?;
    check(u16_at(data, 56) >= 1, "no program headers")
}

/// Validates one PT_LOAD against the file size and the previous loaded segment.
fn check_load(seg: &Segment, file_len: u64, prev: Option<&Segment>) -> std::result::Result<(), &'static str> {
    if !seg.align.is_power_of_two() {
        return Err("alignment is not a power of two");
    }
    if seg.memsz < seg.filesz {
        return Err("p_memsz smaller than p_filesz");
    }
    let end = seg.aligned_end().ok_or("address overflow")?;
    if !seg.aligned_start().is_multiple_of(PAGE_SIZE) || !end.is_multiple_of(PAGE_SIZE) {
        return Err("not 4 KiB aligned");
    }
    if seg.flags & PF_W != 0 && seg.flags & PF_X != 0 {
        return Err("writable and executable");
    }
    if seg.vaddr < LOAD_BASE {
        return Err("below the load base 0x100000");
    }
    if seg.filesz == 0 {
        return Ok(());
    }
    if seg.offset.checked_add(seg.filesz).is_none_or(|e| e > file_len) {
        return Err("contents lie outside the file");
    }
    if let Some(prev) = prev {
        // `prev` passed these checks, so its end does not overflow.
        if seg.vaddr < prev.vaddr + prev.memsz {
            return Err("not in ascending order or overlaps the previous segment");
        }
    }
    Ok(())
}

/// Finds the Solo5 note of `kind` at the start of one of the note segments and returns its
/// payload (descriptor minus `pad`).
fn find_note<'a>(
    notes: &[&'a [u8]],
    kind: u32,
    max_desc: u32,
    pad: u64,
    what: &'static str,
) -> Result<&'a [u8]> {
    let mut found = None;
    for seg in notes {
        if (seg.len() as u64) < NOTE_HEADER_SIZE {
            continue;
        }
        let namesz = u32_at(seg, 0);
        let descsz = u32_at(seg, 4);
        if u32_at(seg, 8) != kind || namesz != NOTE_NAME.len() as u32 || &seg[12..18] != NOTE_NAME {
            continue;
        }
        if found.is_some() {
            return Err(ElfError::NoteDuplicate(what));
        }
        let descsz = descsz as u64;
        if descsz < 1
            || descsz > max_desc as u64
            || descsz <= pad
            || (seg.len() as u64) < NOTE_HEADER_SIZE + descsz
        {
            return Err(ElfError::NoteSize(what));
        }
        found = Some(&seg[(NOTE_HEADER_SIZE + pad) as usize..(NOTE_HEADER_SIZE + descsz) as usize]);
    }
    found.ok_or(ElfError::NoteMissing(what))
}

// Callers guarantee the offsets are in range (fixed-size header and program-header slices).
fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// Programmatic construction of hvt images for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub struct Load {
        pub vaddr: u64,
        pub flags: u32,
        pub data: Vec<u8>,
        pub memsz: u64,
        pub align: u64,
    }

    impl Load {
        pub fn text(vaddr: u64, code: &[u8]) -> Self {
            Self {
                vaddr,
                flags: PF_R | PF_X,
                data: code.to_vec(),
                memsz: code.len() as u64,
                align: PAGE_SIZE,
            }
        }
    }

    pub fn note(kind: u32, pad: usize, payload: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&6u32.to_le_bytes());
        n.extend_from_slice(&((pad + payload.len()) as u32).to_le_bytes());
        n.extend_from_slice(&kind.to_le_bytes());
        n.extend_from_slice(b"Solo5\0\0\0");
        n.extend(std::iter::repeat_n(0u8, pad));
        n.extend_from_slice(payload);
        n
    }

    pub fn abi_note(target: u32, version: u32) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&target.to_le_bytes());
        p.extend_from_slice(&version.to_le_bytes());
        p.extend_from_slice(&[0; 8]);
        note(ABI_NOTE_TYPE, 0, &p)
    }

    pub fn mft_note(manifest: &[u8]) -> Vec<u8> {
        note(MFT_NOTE_TYPE, 4, manifest)
    }

    /// An ELF image with the given PT_LOADs (in the given order) and PT_NOTE segments.
    pub fn image(entry: u64, loads: &[Load], notes: &[Vec<u8>]) -> Vec<u8> {
        let phnum = loads.len() + notes.len();
        let mut out = vec![0u8; EHDR_SIZE + phnum * PHDR_SIZE];
        out[0..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        out[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut phdrs = Vec::new();
        for load in loads {
            let offset = out.len() as u64;
            out.extend_from_slice(&load.data);
            phdrs.push((
                PT_LOAD,
                load.flags,
                offset,
                load.vaddr,
                load.data.len() as u64,
                load.memsz,
                load.align,
            ));
        }
        for n in notes {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            let offset = out.len() as u64;
            out.extend_from_slice(n);
            phdrs.push((PT_NOTE, PF_R, offset, 0, n.len() as u64, n.len() as u64, 8));
        }
        for (i, (kind, flags, offset, vaddr, filesz, memsz, align)) in phdrs.into_iter().enumerate() {
            let ph = &mut out[EHDR_SIZE + i * PHDR_SIZE..][..PHDR_SIZE];
            ph[0..4].copy_from_slice(&kind.to_le_bytes());
            ph[4..8].copy_from_slice(&flags.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&filesz.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&align.to_le_bytes());
        }
        out
    }

    /// A valid hvt image running `code` at 0x100000 with the given manifest devices.
    pub fn hvt_image(code: &[u8], devices: &[(&str, u32)]) -> Vec<u8> {
        image(
            LOAD_BASE,
            &[Load::text(LOAD_BASE, code)],
            &[abi_note(ABI_TARGET_HVT, ABI_VERSION), mft_note(&crate::manifest::testing::build(devices))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::manifest::DeviceType;

    fn notes() -> Vec<Vec<u8>> {
        vec![abi_note(1, 2), mft_note(&crate::manifest::testing::build(&[("storage", 1)]))]
    }

    fn segment_error(bytes: &[u8]) -> &'static str {
        match Image::parse(bytes) {
            Err(ElfError::Segment { reason, .. }) => reason,
            other => panic!("expected a segment error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_minimal_image() {
        let bytes = hvt_image(&[0xf4], &[("storage", 1), ("net0", 2)]);
        let img = Image::parse(&bytes).unwrap();
        assert_eq!(img.entry, LOAD_BASE);
        assert_eq!(img.loads.len(), 1);
        assert_eq!(img.contents(&img.loads[0]), &[0xf4]);
        assert_eq!(img.manifest.devices[1].kind, DeviceType::Net);
        assert_eq!(img.check_fits(4 << 20).unwrap(), LOAD_BASE + PAGE_SIZE);
        assert!(img.check_fits(LOAD_BASE).is_err());
    }

    #[test]
    fn skips_but_bounds_checks_bss() {
        let mut bss = Load::text(0x20_0000, &[]);
        bss.flags = PF_R | PF_W;
        bss.memsz = 0x20_0000;
        let bytes = image(LOAD_BASE, &[Load::text(LOAD_BASE, &[0xf4]), bss], &notes());
        let img = Image::parse(&bytes).unwrap();
        assert_eq!(img.loads.len(), 1);
        assert_eq!(img.zero_fill.len(), 1);
        // kernel_end ignores bss, but bss must still fit.
        assert_eq!(img.check_fits(0x40_0000).unwrap(), LOAD_BASE + PAGE_SIZE);
        assert!(img.check_fits(0x3f_f000).is_err());
        assert_eq!(img.memory_end(), 0x40_0000);
    }

    #[test]
    fn rejects_bad_headers() {
        let good = hvt_image(&[0xf4], &[]);
        assert_eq!(Image::parse(&good[..63]).unwrap_err(), ElfError::TooSmall(63));
        for (offset, value) in
            [(0, 0u8), (4, 1), (5, 2), (6, 0), (16, 3), (18, 3), (52, 63), (54, 55), (56, 0)]
        {
            let mut bad = good.clone();
            bad[offset] = value;
            if offset == 56 {
                bad[57] = 0;
            }
            assert!(Image::parse(&bad).is_err(), "offset {offset} accepted");
        }
        // Program header table beyond the file.
        let mut bad = good.clone();
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Image::parse(&bad).unwrap_err(), ElfError::ProgramHeaders);
        // Truncated anywhere after the header fails cleanly.
        for len in EHDR_SIZE..good.len() {
            assert!(Image::parse(&good[..len]).is_err(), "truncated to {len} accepted");
        }
    }

    #[test]
    fn rejects_bad_entry() {
        let bytes = image(0xfffff, &[Load::text(LOAD_BASE, &[0xf4])], &notes());
        assert_eq!(Image::parse(&bytes).unwrap_err(), ElfError::Entry(0xfffff));
        let bytes = image(0x80_0000, &[Load::text(LOAD_BASE, &[0xf4])], &notes());
        assert_eq!(Image::parse(&bytes).unwrap().check_fits(0x80_0000), Err(ElfError::Entry(0x80_0000)));
    }

    #[test]
    fn rejects_bad_segments() {
        let text = || Load::text(LOAD_BASE, &[0x90; 16]);
        let mut wx = text();
        wx.flags = PF_R | PF_W | PF_X;
        assert_eq!(segment_error(&image(LOAD_BASE, &[wx], &notes())), "writable and executable");

        let low = Load::text(0xff000, &[0x90]);
        assert_eq!(segment_error(&image(LOAD_BASE, &[low], &notes())), "below the load base 0x100000");

        let mut small = text();
        small.memsz = 1;
        assert_eq!(segment_error(&image(LOAD_BASE, &[small], &notes())), "p_memsz smaller than p_filesz");

        let mut odd = text();
        odd.align = 3;
        assert_eq!(segment_error(&image(LOAD_BASE, &[odd], &notes())), "alignment is not a power of two");

        let mut unaligned = Load::text(LOAD_BASE + 8, &[0x90]);
        unaligned.align = 8;
        assert_eq!(segment_error(&image(LOAD_BASE, &[unaligned], &notes())), "not 4 KiB aligned");

        let mut huge = text();
        huge.memsz = u64::MAX - LOAD_BASE;
        assert_eq!(segment_error(&image(LOAD_BASE, &[huge], &notes())), "address overflow");

        let overlap = [text(), Load::text(LOAD_BASE, &[0x90])];
        assert!(segment_error(&image(LOAD_BASE, &overlap, &notes())).contains("overlaps"));
        let descending = [Load::text(LOAD_BASE + 0x2000, &[0x90]), text()];
        assert!(segment_error(&image(LOAD_BASE, &descending, &notes())).contains("ascending"));
        let mut data = Load::text(LOAD_BASE + 0x1000, &[1]);
        data.flags = PF_R | PF_W;
        let ok = [text(), data];
        assert_eq!(Image::parse(&image(LOAD_BASE, &ok, &notes())).unwrap().loads.len(), 2);
    }

    #[test]
    fn rejects_contents_outside_file() {
        let mut bytes = hvt_image(&[0x90; 16], &[]);
        // Point the first PT_LOAD's p_offset past the end.
        let ph = EHDR_SIZE;
        bytes[ph + 8..ph + 16].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        assert_eq!(segment_error(&bytes), "contents lie outside the file");
    }

    #[test]
    fn rejects_missing_or_bad_notes() {
        let text = || vec![Load::text(LOAD_BASE, &[0xf4])];
        let mft = mft_note(&crate::manifest::testing::build(&[]));
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), std::slice::from_ref(&mft))).unwrap_err(),
            ElfError::NoteMissing("ABI")
        );
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[abi_note(1, 2)])).unwrap_err(),
            ElfError::NoteMissing("manifest")
        );
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[abi_note(1, 1), mft.clone()])).unwrap_err(),
            ElfError::Abi { target: 1, version: 1 }
        );
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[abi_note(2, 2), mft.clone()])).unwrap_err(),
            ElfError::Abi { target: 2, version: 2 }
        );
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[abi_note(1, 2), abi_note(1, 2), mft.clone()]))
                .unwrap_err(),
            ElfError::NoteDuplicate("ABI")
        );

        // descsz claims more than the segment holds (buggyelf).
        let mut big = abi_note(1, 2);
        big[4..8].copy_from_slice(&24u32.to_le_bytes());
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[big, mft.clone()])).unwrap_err(),
            ElfError::NoteSize("ABI")
        );
        let mut zero = mft.clone();
        zero[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[abi_note(1, 2), zero])).unwrap_err(),
            ElfError::NoteSize("manifest")
        );
        let mut over_max = mft.clone();
        over_max[4..8].copy_from_slice(&6669u32.to_le_bytes());
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[abi_note(1, 2), over_max])).unwrap_err(),
            ElfError::NoteSize("manifest")
        );
        let short_abi = note(ABI_NOTE_TYPE, 0, &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[short_abi, mft.clone()])).unwrap_err(),
            ElfError::NoteSize("ABI")
        );

        // Wrong name or name size: the note is not ours, so it is "missing".
        let mut wrong_name = abi_note(1, 2);
        wrong_name[12] = b's';
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[wrong_name, mft.clone()])).unwrap_err(),
            ElfError::NoteMissing("ABI")
        );
        let mut wrong_namesz = abi_note(1, 2);
        wrong_namesz[0] = 5;
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[wrong_namesz, mft.clone()])).unwrap_err(),
            ElfError::NoteMissing("ABI")
        );

        // Manifest contents are validated too.
        let mut bad_mft = crate::manifest::testing::build(&[]);
        bad_mft[0] = 9;
        assert_eq!(
            Image::parse(&image(LOAD_BASE, &text(), &[abi_note(1, 2), mft_note(&bad_mft)])).unwrap_err(),
            ElfError::Manifest(ManifestError::Version(9))
        );

        // Foreign notes (OpenBSD ident) and tiny note segments are skipped.
        let foreign = vec![0u8; 8];
        let ok = image(LOAD_BASE, &text(), &[foreign, abi_note(1, 2), mft]);
        assert!(Image::parse(&ok).is_ok());
    }

    #[test]
    fn parses_an_upstream_sized_manifest_note() {
        // test_hello declares no device: only the reserved entry, descsz 0x74.
        let n = mft_note(&crate::manifest::testing::build(&[]));
        assert_eq!(u32_at(&n, 4), 0x74);
    }
}
