//! Network device tests. Each test makes its own network namespace with a
//! bridge (10.x.y.1/24) and a tap attached to it, runs the tender inside, and
//! pings the guest from the namespace. All traffic stays in that namespace.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::args;
use crate::common::*;

struct NetNs {
    name: String,
}

fn sh(args: &[&str]) -> std::process::Output {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

impl NetNs {
    /// Namespace with br0 = `subnet`.1/24 and tap0 (MTU `mtu`) on the bridge;
    /// `up` false leaves tap0 administratively down.
    fn new(subnet: &str, mtu: u32, up: bool) -> NetNs {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("petrel-t{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        sh(&["ip", "netns", "add", &name]);
        let ns = NetNs { name };
        let mtu = mtu.to_string();
        let addr = format!("{subnet}.1/24");
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "link", "add", "br0", "mtu", &mtu, "type", "bridge"]);
        ns.exec(&["ip", "addr", "add", &addr, "dev", "br0"]);
        ns.exec(&["ip", "link", "set", "br0", "up"]);
        ns.exec(&["ip", "tuntap", "add", "tap0", "mode", "tap"]);
        ns.exec(&["ip", "link", "set", "tap0", "mtu", &mtu, "master", "br0"]);
        if up {
            ns.exec(&["ip", "link", "set", "tap0", "up"]);
        }
        ns
    }

    fn exec(&self, args: &[&str]) -> std::process::Output {
        let mut a = vec!["ip", "netns", "exec", &self.name];
        a.extend_from_slice(args);
        sh(&a)
    }

    /// The tender inside the namespace.
    fn tender(&self, args: Vec<std::ffi::OsString>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, TENDER]).args(args);
        c
    }

    fn ping(&self, ip: &str, extra: &[&str]) -> String {
        // -w: keep sending until the -c count of replies arrived (or 30 s), so
        // a slow (emulated) guest under load does not fail on ping's timing.
        let mut a = vec!["ping", "-n", "-W", "5", "-w", "30"];
        a.extend_from_slice(extra);
        a.push(ip);
        String::from_utf8_lossy(&self.exec(&a).stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// MAC printed by the guest: "Serving A.B.C.D on xx:xx:xx:xx:xx:xx".
fn served_mac(stdout: &str) -> String {
    let line = stdout.lines().find(|l| l.starts_with("Serving ")).expect("Serving line");
    line.rsplit(' ').next().unwrap().to_string()
}

const GUEST_UP: Duration = Duration::from_secs(30);

#[test]
fn net_answers_arp_and_ping() {
    require_kvm();
    let ns = NetNs::new("10.0.0", 1500, true);
    let mut t =
        Running::spawn(ns.tender(args!["--mem=8", "--net:service0=tap0", "--", guest("net"), "limit=3"]));
    t.wait_for_stdout("Serving 10.0.0.2 on ", GUEST_UP);
    let out = ns.ping("10.0.0.2", &["-c", "3", "-i", "0.3"]);
    assert!(out.contains(" 3 received"), "ping: {out}");
    let r = t.finish(TIMEOUT);
    r.code(0).stdout_has("MTU is 1500\n").stdout_has("3 echo replies sent\nSUCCESS\n");
    // No --net-mac: a random unicast, locally administered address.
    let mac = served_mac(&r.stdout);
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 0x03, 0x02, "generated MAC {mac} must be local unicast");
    // The namespace learnt the guest's MAC through ARP.
    let neigh = String::from_utf8_lossy(&ns.exec(&["ip", "neigh", "show", "10.0.0.2"]).stdout).into_owned();
    assert!(neigh.contains(&mac), "neighbour table {neigh:?} lacks {mac}");
}

/// Flood ping (bounded count) through the given I/O path; all must be answered.
fn flood(subnet: &str, ring: bool) {
    require_kvm();
    let ns = NetNs::new(subnet, 1500, true);
    let ip = format!("{subnet}.2");
    let mut a = args!["--mem=8", "--net:service0=tap0", guest("net"), format!("ip={ip}"), "limit=300"];
    if ring {
        a.push("ring".into());
    }
    let mut t = Running::spawn(ns.tender(a));
    t.wait_for_stdout("Serving", GUEST_UP);
    let out = ns.ping(&ip, &["-f", "-q", "-c", "300"]);
    assert!(out.contains(" 300 received"), "ping: {out}");
    let r = t.finish(TIMEOUT);
    r.code(0).stdout_has("300 echo replies sent\nSUCCESS\n");
    if ring {
        r.stdout_has("using ring I/O\n");
    }
}

#[test]
fn net_flood_ping_hypercall_io() {
    flood("10.77.8", false);
}

#[test]
fn net_flood_ping_ring_io() {
    flood("10.77.9", true);
}

#[test]
fn net_ring_offered_above_guest_memory_and_payload_intact() {
    require_kvm();
    let ns = NetNs::new("10.77.10", 1500, true);
    let mut t = Running::spawn(ns.tender(args![
        "--mem=8",
        "--net:service0=tap0",
        guest("net"),
        "ip=10.77.10.2",
        "limit=10",
        "ring"
    ]));
    t.wait_for_stdout("Serving", GUEST_UP);
    // ping checks that each reply carries the request's payload pattern.
    // A slow interval: this checks integrity, the flood tests check rate.
    let out = ns.ping("10.77.10.2", &["-c", "10", "-i", "0.2", "-s", "1400", "-p", "deadbeef"]);
    assert!(out.contains("10 received"), "ping: {out}");
    assert!(!out.contains("wrong data"), "ping: {out}");
    let r = t.finish(TIMEOUT);
    // B10: the ring is the 2 MiB above the guest-visible memory.
    r.code(0)
        .stdout_has("ring: host_features=0x1 net_ring=0x800000 mem_size=0x800000\n")
        .stdout_has("SUCCESS\n");
}

#[test]
fn net_mac_option_and_sigterm_in_poll() {
    require_kvm();
    let ns = NetNs::new("10.77.1", 1500, true);
    let mut t = Running::spawn(ns.tender(args![
        "--mem=8",
        "--net:service0=tap0",
        "--net-mac:service0=02:aa:bb:cc:dd:0e",
        "--",
        guest("net"),
        "ip=10.77.1.2",
        "verbose"
    ]));
    t.wait_for_stdout("Serving 10.77.1.2 on 02:aa:bb:cc:dd:0e\n", GUEST_UP);
    let out = ns.ping("10.77.1.2", &["-c", "1"]);
    assert!(out.contains("1 received"), "ping: {out}");
    t.wait_for_stdout("-> reply", GUEST_UP);
    // The guest is now idle in POLL (1 s timeout loop): SIGTERM ends it.
    t.signal(libc::SIGTERM);
    let r = t.finish(TIMEOUT);
    r.tender_error("Exiting on signal 15").stdout_has("ICMP echo seq 1 -> reply");
}

#[test]
fn net_mtu_9000_and_jumbo_ping() {
    require_kvm();
    let ns = NetNs::new("10.77.2", 9000, true);
    let mut t = Running::spawn(ns.tender(args![
        "--mem=8",
        "--net:service0=tap0",
        guest("net"),
        "ip=10.77.2.2",
        "limit=2"
    ]));
    t.wait_for_stdout("Serving", GUEST_UP);
    // 8000 bytes of ICMP payload: one unfragmented jumbo frame each way.
    let out = ns.ping("10.77.2.2", &["-c", "2", "-i", "0.3", "-s", "8000", "-M", "do"]);
    assert!(out.contains("2 received"), "ping: {out}");
    t.finish(TIMEOUT).code(0).stdout_has("MTU is 9000\n").stdout_has("SUCCESS\n");
}

#[test]
fn net_tap_passed_as_fd() {
    require_kvm();
    let ns = NetNs::new("10.77.3", 1500, true);
    let nsfile = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
    let nsfd = nsfile.as_raw_fd();
    let tun = CString::new("/dev/net/tun").unwrap();
    const CHILD_FD: i32 = 100;
    let mut cmd = tender_cmd(args![
        "--mem=8",
        format!("--net:service0=@{CHILD_FD}"),
        guest("net"),
        "ip=10.77.3.2",
        "limit=2"
    ]);
    // SAFETY: only async-signal-safe syscalls between fork and exec. The tap
    // must be opened inside the namespace, so the child joins it first (the
    // tender then runs there too).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(nsfd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(tun.as_ptr(), libc::O_RDWR);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut ifr = [0u8; 40];
            ifr[..4].copy_from_slice(b"tap0");
            let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as u16;
            ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
            if libc::ioctl(fd, libc::TUNSETIFF, ifr.as_mut_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 leaves the new descriptor without FD_CLOEXEC.
            if libc::dup2(fd, CHILD_FD) != CHILD_FD {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let mut t = Running::spawn(cmd);
    t.wait_for_stdout("Serving", GUEST_UP);
    let out = ns.ping("10.77.3.2", &["-c", "2", "-i", "0.3"]);
    assert!(out.contains("2 received"), "ping: {out}");
    t.finish(TIMEOUT).code(0).stdout_has("MTU is 1500\n").stdout_has("SUCCESS\n");
    drop(nsfile);
}

#[test]
fn net_puts_from_ring_area_is_refused() {
    require_kvm();
    let ns = NetNs::new("10.77.4", 1500, true);
    let r = Running::spawn(ns.tender(args!["--mem=8", "--net:service0=tap0", guest("net"), "puts-ring"]))
        .finish(TIMEOUT);
    r.tender_error("invalid guest access").stdout_has("PUTS from 0x800000").stdout_lacks("FAILURE");
}

#[test]
fn net_missing_tap_is_refused() {
    require_kvm();
    let ns = NetNs::new("10.77.5", 1500, true);
    Running::spawn(ns.tender(args!["--mem=8", "--net:service0=nosuchtap", guest("net")]))
        .finish(TIMEOUT)
        .tender_error("nosuchtap");
}

#[test]
fn net_tap_down_is_refused() {
    require_kvm();
    let ns = NetNs::new("10.77.6", 1500, false);
    Running::spawn(ns.tender(args!["--mem=8", "--net:service0=tap0", guest("net")]))
        .finish(TIMEOUT)
        .tender_error("tap0");
}

#[test]
fn net_bad_mac_option_is_refused() {
    require_kvm();
    let ns = NetNs::new("10.77.7", 1500, true);
    for mac in ["02:aa:bb:cc:dd", "zz:aa:bb:cc:dd:ee"] {
        Running::spawn(ns.tender(args![
            "--mem=8",
            "--net:service0=tap0",
            format!("--net-mac:service0={mac}"),
            guest("net")
        ]))
        .finish(TIMEOUT)
        .tender_error("mac");
    }
}

#[test]
fn net_device_not_attached_is_refused() {
    require_kvm();
    run(args!["--mem=8", guest("net")]).tender_error("service0");
}

/// One bad entry on the shared ring: the tender's I/O thread must end the
/// run (exit 1, message), never hang, crash or touch memory outside the guest.
fn ring_hostile(subnet: &str, action: &str, msg: &str) {
    require_kvm();
    let ns = NetNs::new(subnet, 1500, true);
    let r = Running::spawn(ns.tender(args![
        "--mem=8",
        "--net:service0=tap0",
        guest("net"),
        format!("ring-hostile={action}")
    ]))
    .finish(TIMEOUT);
    r.tender_error(msg)
        .stdout_has(&format!("ring hostile action: {action}\n"))
        .stdout_lacks("commit ret=")
        .stdout_lacks("no commit");
}

#[test]
fn ring_write_from_beyond_memory() {
    ring_hostile("10.77.11", "write-beyond", "invalid guest access");
}

#[test]
fn ring_read_into_beyond_memory() {
    ring_hostile("10.77.12", "read-beyond", "invalid guest access");
}

#[test]
fn ring_unknown_operation() {
    ring_hostile("10.77.13", "bad-op", "operation");
}

#[test]
fn ring_write_on_bad_handle() {
    ring_hostile("10.77.14", "bad-handle", "net ring");
}

#[test]
fn ring_tail_more_than_slots_ahead() {
    ring_hostile("10.77.15", "tail-jump", "net ring");
}

#[test]
fn net_ring_at_top_of_4_gib() {
    // --mem=4096 with a NIC: the ring takes the top 2 MiB, the guest sees
    // 4094 MiB, and the ring stays outside what hypercalls may touch.
    require_kvm();
    let ns = NetNs::new("10.77.16", 1500, true);
    let r = Running::spawn(ns.tender(args!["--mem=4096", "--net:service0=tap0", guest("net"), "puts-ring"]))
        .finish(TIMEOUT);
    r.tender_error("invalid guest access")
        .stdout_has("PUTS from 0xffe00000 (ring 0xffe00000)\n")
        .stdout_lacks("FAILURE");
}
