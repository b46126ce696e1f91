//! Block device attach, I/O and refusal of bad requests and geometries.

use crate::args;
use crate::common::*;

/// Same pattern as guests/blk.c.
fn pattern(block: u64, word: u64) -> u64 {
    (block << 32) | (word ^ 0x5a5a)
}

/// The backing file must hold the pattern exactly in the blocks the guest
/// wrote (every step-th and the last) and zeros elsewhere, which proves the
/// tender used the right file offsets.
fn check_image(bytes: &[u8], bs: u64, step: u64) {
    let nblocks = bytes.len() as u64 / bs;
    for b in 0..nblocks {
        let written = b % step == 0 || b == nblocks - 1;
        let block = &bytes[(b * bs) as usize..((b + 1) * bs) as usize];
        for (i, w) in block.chunks_exact(8).enumerate() {
            let got = u64::from_le_bytes(w.try_into().unwrap());
            let want = if written { pattern(b, i as u64) } else { 0 };
            assert_eq!(got, want, "block {b} word {i} (block size {bs})");
        }
    }
}

fn blk_run(bs: u64, size: u64) {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", size);
    let mut a = args!["--mem=4", opt("--block:storage=", &disk)];
    if bs != 512 {
        a.push(format!("--block-sector-size:storage={bs}").into());
    }
    a.extend(args!["--", guest("blk")]);
    run(a)
        .code(0)
        .stdout_has(&format!("Block size is {bs}, capacity {size}\n"))
        .stdout_has("SUCCESS\n")
        .stdout_lacks("FAILURE");
    let nblocks = size / bs;
    check_image(&std::fs::read(&disk).unwrap(), bs, (nblocks / 8).max(1));
}

#[test]
fn blk_write_read_back_512() {
    blk_run(512, 1 << 20);
}

#[test]
fn blk_write_read_back_4096() {
    blk_run(4096, 1 << 20);
}

#[test]
fn blk_single_block_device() {
    blk_run(512, 512);
}

#[test]
fn blk_unaligned_backing_file_is_refused() {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", 6 * 1024);
    run(args!["--mem=4", opt("--block:storage=", &disk), "--block-sector-size:storage=4096", guest("blk")])
        .tender_error("block aligned");
}

#[test]
fn blk_odd_or_small_sector_sizes_are_refused() {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", 1 << 20);
    for bs in ["521", "256", "0", "1000", "x"] {
        let r = run(args![
            "--mem=4",
            opt("--block:storage=", &disk),
            format!("--block-sector-size:storage={bs}"),
            guest("blk")
        ]);
        r.tender_error("block size");
    }
}

#[test]
fn blk_empty_backing_file_is_refused() {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", 0);
    run(args!["--mem=4", opt("--block:storage=", &disk), guest("blk")]).code(1);
}

#[test]
fn blk_missing_backing_file_is_refused() {
    require_kvm();
    run(args!["--mem=4", "--block:storage=/nonexistent/disk.img", guest("blk")])
        .tender_error("/nonexistent/disk.img");
}

#[test]
fn declared_device_not_attached_is_refused() {
    require_kvm();
    run(args!["--mem=4", guest("blk")]).tender_error("storage");
}

#[test]
fn unknown_device_name_is_refused() {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", 4096);
    run(args!["--mem=4", opt("--block:storage=", &disk), opt("--block:nosuch=", &disk), guest("blk")])
        .tender_error("nosuch");
}

#[test]
fn sector_size_for_unknown_device_is_refused() {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", 4096);
    run(args!["--mem=4", opt("--block:storage=", &disk), "--block-sector-size:other=4096", guest("blk")])
        .tender_error("other");
}

#[test]
fn block_option_for_a_net_device_is_refused() {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", 4096);
    run(args!["--mem=4", opt("--block:service0=", &disk), guest("net")]).tender_error("service0");
}

#[test]
fn net_option_for_a_guest_without_net_device_is_refused() {
    require_kvm();
    run(args!["--mem=4", "--net:service0=tap0", guest("hello")]).tender_error("service0");
}

#[test]
fn sixty_three_block_devices() {
    require_kvm();
    let dir = TempDir::new("many");
    let mut a = args!["--mem=4"];
    let mut disks = Vec::new();
    for i in 0..63 {
        let d = dir.zero_file(&format!("d{i}"), 512 * (1 + i % 3));
        a.push(opt(&format!("--block:storage{i}="), &d));
        disks.push(d);
    }
    a.push(guest("manydev").into());
    run(a).code(0).stdout_has("SUCCESS\n").stdout_lacks("FAILURE");
    for (i, d) in disks.iter().enumerate() {
        let bytes = std::fs::read(d).unwrap();
        let tag = format!("petrel-dev-{i}\0");
        assert_eq!(&bytes[..tag.len()], tag.as_bytes(), "device {i} wrote to the wrong file");
    }
}

#[test]
fn sector_size_option_may_precede_block_option() {
    require_kvm();
    let dir = TempDir::new("blk");
    let disk = dir.zero_file("disk.img", 64 * 1024);
    run(args!["--mem=4", "--block-sector-size:storage=4096", opt("--block:storage=", &disk), guest("blk")])
        .code(0)
        .stdout_has("Block size is 4096, capacity 65536\n")
        .stdout_has("SUCCESS\n");
}
