//! Malformed ELF files and manifests, made by patching a good guest's bytes:
//! each must make the tender exit 1 with a message naming the file and the problem.

use crate::args;
use crate::common::*;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// File offsets of the interesting parts of a guest binary.
struct Layout {
    /// Offsets of program headers, in table order.
    phdrs: Vec<usize>,
    /// File offset of the ABI note and of the manifest note.
    abi_note: usize,
    mft_note: usize,
}

fn layout(b: &[u8]) -> Layout {
    let phoff = u64_at(b, 32) as usize;
    let phnum = u16_at(b, 56) as usize;
    let phdrs: Vec<usize> = (0..phnum).map(|i| phoff + i * 56).collect();
    let mut abi_note = None;
    let mut mft_note = None;
    for &p in &phdrs {
        if u32_at(b, p) != PT_NOTE {
            continue;
        }
        let off = u64_at(b, p + 8) as usize;
        if &b[off + 12..off + 18] != b"Solo5\0" {
            continue;
        }
        match u32_at(b, off + 8) {
            0x3149_4241 => abi_note = Some(off),
            0x3154_464d => mft_note = Some(off),
            t => panic!("unexpected Solo5 note type {t:#x}"),
        }
    }
    Layout { phdrs, abi_note: abi_note.unwrap(), mft_note: mft_note.unwrap() }
}

fn load_phdrs(b: &[u8], l: &Layout) -> Vec<usize> {
    l.phdrs.iter().copied().filter(|&p| u32_at(b, p) == PT_LOAD).collect()
}

/// Runs a patched copy of guest `base`; must fail with `msg` in stderr.
#[track_caller]
fn reject(base: &str, extra: &[&str], msg: &str, patch: impl FnOnce(&mut Vec<u8>, &Layout)) {
    require_kvm();
    let mut b = std::fs::read(guest(base)).unwrap();
    let l = layout(&b);
    patch(&mut b, &l);
    let dir = TempDir::new("elf");
    let kernel = dir.write("bad.hvt", &b);
    let disk = dir.zero_file("disk", 4096);
    let mut a = args!["--mem=4"];
    if base == "blk" {
        a.push(opt("--block:storage=", &disk));
    }
    a.extend(extra.iter().map(|s| s.into()));
    a.push(kernel.clone().into());
    let r = run(a);
    r.tender_error(msg).stdout_lacks("SUCCESS");
    // Every image refusal names the file, whether found while parsing or while loading.
    let prefix = format!("petrel-hvt: {}: ", kernel.display());
    assert!(r.stderr.starts_with(&prefix), "message does not start with {prefix:?}\n{}", r.stderr);
}

/// Offset of manifest entry `i` in the file.
fn mft_entry(l: &Layout, i: usize) -> usize {
    l.mft_note + 24 + 8 + 104 * i
}

#[test]
fn layout_of_the_good_guests_is_accepted() {
    // Guards the patch tests below: the unpatched files must run.
    require_kvm();
    run(args!["--mem=4", guest("hello")]).code(0);
    let b = std::fs::read(guest("blk")).unwrap();
    let l = layout(&b);
    assert_eq!(u32_at(&b, l.phdrs[0]), 3, "PT_INTERP comes first");
    assert_eq!(u32_at(&b, l.abi_note + 4), 16, "ABI descsz");
    assert_eq!(u32_at(&b, l.mft_note + 4), 4 + 8 + 2 * 104, "manifest descsz");
    let loads = load_phdrs(&b, &l);
    assert_eq!(u32_at(&b, loads[0] + 4), 1, "text segment is X only");
    assert_eq!(u64_at(&b, loads[0] + 16), 0x10_0000, "text at 1 MiB");
    assert!(loads.iter().any(|&p| u64_at(&b, p + 32) == 0), "a bss PT_LOAD with p_filesz 0");
}

#[test]
fn empty_file() {
    reject("hello", &[], "elf", |b, _| b.clear());
}

#[test]
fn truncated_header() {
    reject("hello", &[], "elf", |b, _| b.truncate(40));
}

#[test]
fn truncated_before_segments() {
    // Headers intact, but the text segment's bytes are cut off.
    reject("hello", &[], "segment", |b, _| b.truncate(0x800));
}

#[test]
fn not_an_elf_file() {
    reject("hello", &[], "elf", |b, _| *b = b"#!/bin/sh\necho this is not a unikernel\n".repeat(10));
}

#[test]
fn bad_magic() {
    reject("hello", &[], "elf", |b, _| b[1] = b'X');
}

#[test]
fn elf32_class() {
    reject("hello", &[], "elf", |b, _| b[4] = 1);
}

#[test]
fn big_endian() {
    reject("hello", &[], "elf", |b, _| b[5] = 2);
}

#[test]
fn wrong_machine() {
    reject("hello", &[], "x86_64", |b, _| b[18..20].copy_from_slice(&183u16.to_le_bytes()));
}

#[test]
fn not_et_exec() {
    // ET_DYN
    reject("hello", &[], "exec", |b, _| b[16..18].copy_from_slice(&3u16.to_le_bytes()));
}

#[test]
fn entry_below_1_mib() {
    reject("hello", &[], "entry", |b, _| put64(b, 24, 0x1000));
}

#[test]
fn entry_beyond_memory() {
    reject("hello", &[], "entry", |b, _| put64(b, 24, 0x40_0000 + 0x20));
}

#[test]
fn program_headers_outside_file() {
    reject("hello", &[], "program header", |b, _| put64(b, 32, 0xffff_0000));
}

#[test]
fn text_segment_write_and_execute() {
    reject("hello", &[], "segment", |b, l| {
        let text = load_phdrs(b, l)[0];
        put32(b, text + 4, 7);
    });
}

#[test]
fn segment_below_1_mib() {
    reject("hello", &[], "segment", |b, l| {
        let text = load_phdrs(b, l)[0];
        put64(b, text + 16, 0x8_0000);
        put64(b, text + 24, 0x8_0000);
    });
}

#[test]
fn segment_beyond_memory() {
    reject("hello", &[], "segment", |b, l| {
        let data = load_phdrs(b, l)[2];
        put64(b, data + 16, 0x7fff_0000_0000);
        put64(b, data + 24, 0x7fff_0000_0000);
    });
}

#[test]
fn segment_filesz_larger_than_memsz() {
    reject("hello", &[], "segment", |b, l| {
        let rodata = load_phdrs(b, l)[1];
        let filesz = u64_at(b, rodata + 32);
        put64(b, rodata + 40, filesz - 8);
    });
}

#[test]
fn segment_bad_alignment() {
    reject("hello", &[], "segment", |b, l| {
        let text = load_phdrs(b, l)[0];
        put64(b, text + 48, 0x1001);
    });
}

#[test]
fn segments_overlap() {
    reject("hello", &[], "segment", |b, l| {
        let loads = load_phdrs(b, l);
        let text_vaddr = u64_at(b, loads[0] + 16);
        put64(b, loads[1] + 16, text_vaddr);
        put64(b, loads[1] + 24, text_vaddr);
    });
}

#[test]
fn abi_version_1() {
    reject("hello", &[], "version 1", |b, l| put32(b, l.abi_note + 20 + 4, 1));
}

#[test]
fn abi_version_3() {
    reject("hello", &[], "version 3", |b, l| put32(b, l.abi_note + 20 + 4, 3));
}

#[test]
fn abi_target_spt() {
    reject("hello", &[], "target 2", |b, l| put32(b, l.abi_note + 20, 2));
}

#[test]
fn abi_note_name_wrong() {
    reject("hello", &[], "ABI note not found", |b, l| b[l.abi_note + 16] = b'6');
}

#[test]
fn abi_note_descsz_too_big() {
    reject("hello", &[], "valid size", |b, l| put32(b, l.abi_note + 4, 0x1000));
}

#[test]
fn abi_note_descsz_zero() {
    reject("hello", &[], "valid size", |b, l| put32(b, l.abi_note + 4, 0));
}

#[test]
fn manifest_note_missing() {
    // Turn the manifest PT_NOTE into PT_NULL.
    reject("hello", &[], "manifest note not found", |b, l| {
        let p = l.phdrs.iter().copied().find(|&p| u64_at(b, p + 8) as usize == l.mft_note);
        put32(b, p.unwrap(), 0);
    });
}

#[test]
fn manifest_version_2() {
    reject("blk", &[], "manifest version 2", |b, l| put32(b, l.mft_note + 24, 2));
}

#[test]
fn manifest_65_entries() {
    reject("blk", &[], "65 entries", |b, l| put32(b, l.mft_note + 24 + 4, 65));
}

#[test]
fn manifest_0_entries() {
    reject("blk", &[], "0 entries", |b, l| put32(b, l.mft_note + 24 + 4, 0));
}

#[test]
fn manifest_entry_count_disagrees_with_size() {
    reject("blk", &[], "manifest", |b, l| put32(b, l.mft_note + 24 + 4, 3));
}

#[test]
fn manifest_descsz_too_big() {
    reject("blk", &[], "valid size", |b, l| put32(b, l.mft_note + 4, 6669));
}

#[test]
fn manifest_name_unterminated() {
    reject("blk", &[], "NUL-terminated", |b, l| {
        let e = mft_entry(l, 1);
        b[e..e + 68].fill(b'A');
    });
}

#[test]
fn manifest_name_bad_characters() {
    reject("blk", &[], "entry 1", |b, l| b[mft_entry(l, 1) + 3] = b'-');
}

#[test]
fn manifest_attached_in_binary() {
    reject("blk", &[], "attached", |b, l| b[mft_entry(l, 1) + 96] = 1);
}

#[test]
fn manifest_first_entry_not_reserved() {
    reject("blk", &[], "reserved", |b, l| put32(b, mft_entry(l, 0) + 68, 1));
}

#[test]
fn manifest_unknown_device_type() {
    reject("blk", &[], "type", |b, l| put32(b, mft_entry(l, 1) + 68, 7));
}

#[test]
fn manifest_note_name_wrong() {
    reject("blk", &[], "manifest note not found", |b, l| b[l.mft_note + 12] = b's');
}
