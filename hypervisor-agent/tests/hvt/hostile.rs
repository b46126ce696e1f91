//! Hostile guest actions: each must end in tender exit 1 with a message,
//! within the timeout, never a hang, a crash or a guest-chosen status.

use crate::args;
use crate::common::*;

#[track_caller]
fn hostile(action: &str, msg: &str) {
    require_kvm();
    let dir = TempDir::new("hostile");
    let disk = dir.zero_file("disk", 4096);
    let r = run(args!["--mem=4", opt("--block:storage=", &disk), guest("hostile"), action]);
    r.tender_error(msg)
        .stdout_has(&format!("hostile action: {action}\n"))
        .stdout_lacks("FAILURE")
        .stdout_lacks("ABORT");
    // No guest data may have been written to the disk by a refused request.
    assert!(std::fs::read(&disk).unwrap().iter().all(|&x| x == 0));
}

// The message substrings are what the fact sheet gives for solo5-hvt:
// "Invalid guest access" for bad pointers, "Invalid guest port access" for bad
// ports; other exits just need a petrel-hvt: message.

#[test]
fn puts_pointer_beyond_memory() {
    hostile("puts-beyond", "invalid guest access");
}

#[test]
fn puts_crossing_end_of_memory() {
    hostile("puts-top", "invalid guest access");
}

#[test]
fn puts_length_larger_than_memory() {
    hostile("puts-huge", "invalid guest access");
}

#[test]
fn puts_pointer_plus_length_wraps() {
    hostile("puts-wrap", "invalid guest access");
}

#[test]
fn puts_pointer_at_4_gib() {
    hostile("puts-4g", "invalid guest access");
}

#[test]
fn hypercall_argument_beyond_memory() {
    hostile("arg-beyond", "invalid guest access");
}

#[test]
fn hypercall_argument_crossing_end_of_memory() {
    hostile("arg-top", "invalid guest access");
}

#[test]
fn walltime_result_crossing_end_of_memory() {
    hostile("walltime-top", "invalid guest access");
}

#[test]
fn poll_argument_crossing_end_of_memory() {
    hostile("poll-top", "invalid guest access");
}

#[test]
fn block_read_into_buffer_beyond_memory() {
    hostile("blkread-beyond", "invalid guest access");
}

#[test]
fn block_write_from_buffer_beyond_memory() {
    hostile("blkwrite-beyond", "invalid guest access");
}

#[test]
fn block_read_buffer_wraps() {
    hostile("blkread-wrap", "invalid guest access");
}

#[test]
fn halt_cookie_crossing_end_of_memory() {
    hostile("halt-cookie", "invalid guest access");
}

#[test]
fn halt_cookie_wraps() {
    hostile("halt-cookie-wrap", "invalid guest access");
}

#[test]
fn hypercall_number_0() {
    hostile("port-0x500", "invalid guest port access");
}

#[test]
fn hypercall_number_9() {
    hostile("port-0x509", "invalid guest port access");
}

#[test]
fn port_below_hypercall_range() {
    hostile("port-0x4ff", "invalid guest port access");
}

#[test]
fn ring_kick_port_without_net_device() {
    hostile("port-0x600", "invalid guest port access");
}

#[test]
fn out_of_size_1() {
    hostile("out8", "invalid guest port access");
}

#[test]
fn out_of_size_2() {
    hostile("out16", "invalid guest port access");
}

#[test]
fn in_from_hypercall_port() {
    hostile("in32", "invalid guest port access");
}

#[test]
fn hlt_instruction() {
    hostile("hlt", "petrel-hvt:");
}

#[test]
fn triple_fault() {
    hostile("triple-fault", "petrel-hvt:");
}

#[test]
fn net_write_on_a_block_handle_does_not_write() {
    // handle 1 is the block device and the buffer crosses the end of memory:
    // a tender may answer EINVAL (guest then exits 3) or exit 1, but must not
    // read past memory or touch the disk.
    require_kvm();
    let dir = TempDir::new("hostile");
    let disk = dir.zero_file("disk", 4096);
    let r = run(args!["--mem=4", opt("--block:storage=", &disk), guest("hostile"), "netwrite-beyond"]);
    if r.status.code() == Some(3) {
        r.stdout_has("NET_WRITE on a block handle returned 2\n");
    } else {
        r.tender_error("petrel-hvt:");
    }
    assert!(std::fs::read(&disk).unwrap().iter().all(|&x| x == 0));
}
