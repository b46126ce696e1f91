//! Command line, console, exit status and trap paths.

use crate::args;
use crate::common::*;

#[test]
fn version_reports_abi_2() {
    let r = run(["--version"]);
    r.code(0);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("ABI version 2"), "--version output: {all:?}");
}

#[test]
fn help_prints_usage_and_exits_1() {
    let r = run(["--help"]);
    r.code(1);
    let all = format!("{}{}", r.stdout, r.stderr).to_lowercase();
    assert!(all.contains("usage") && all.contains("--mem"), "--help output: {all:?}");
}

#[test]
fn unknown_option_is_refused() {
    run(args!["--frobnicate=1", "--", guest("hello")]).code(1);
}

#[test]
fn missing_kernel_is_refused() {
    run(["--mem=8"]).code(1);
}

#[test]
fn nonexistent_kernel_is_refused() {
    run(["--", "/nonexistent/kernel.hvt"]).tender_error("/nonexistent/kernel.hvt");
}

#[test]
fn guest_binary_cannot_be_executed_by_the_host() {
    // PT_INTERP "/nonexistent/solo5/" makes execve fail.
    let err = std::process::Command::new(guest("hello")).output().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn hello_prints_command_line() {
    require_kvm();
    run(args!["--", guest("hello"), "Hello_Solo5"])
        .code(0)
        .stdout_has("Solo5: ")
        .stdout_has("Hello, World\n")
        .stdout_has("Command line is: 'Hello_Solo5'\n")
        .stdout_has("SUCCESS\n");
}

#[test]
fn hello_joins_arguments_with_spaces() {
    require_kvm();
    run(args!["--mem=4", guest("hello"), "a", "b=c", "--d"])
        .code(0)
        .stdout_has("Command line is: 'a b=c --d'\n");
}

#[test]
fn hello_empty_command_line() {
    require_kvm();
    run(args![guest("hello")]).code(0).stdout_has("Command line is: ''\n");
}

#[test]
fn solo5_quiet_prefix_is_stripped_and_silences_banner() {
    require_kvm();
    run(args!["--", guest("hello"), "--solo5:quiet", "app_arg"])
        .code(0)
        .stdout_has("Command line is: 'app_arg'\n")
        .stdout_has("SUCCESS\n")
        .stdout_lacks("Solo5:");
}

#[test]
fn solo5_debug_prefix_is_stripped_and_keeps_banner() {
    require_kvm();
    run(args!["--", guest("hello"), "--solo5:debug", "x"])
        .code(0)
        .stdout_has("Solo5: ")
        .stdout_has("Command line is: 'x'\n");
}

#[test]
fn quiet_guest_exits_0_without_output() {
    require_kvm();
    let r = run(args!["--mem=4", guest("quiet")]);
    r.code(0);
    assert_eq!(r.stdout, "", "quiet guest printed something");
}

#[test]
fn exit_status_passes_through() {
    require_kvm();
    for status in [0, 7, 254] {
        run(args!["--mem=4", guest("exit"), status.to_string()])
            .code(status)
            .stdout_has(&format!("exiting with status {status}\n"));
    }
}

#[test]
fn abort_exits_255() {
    require_kvm();
    run(args!["--mem=4", guest("abort")]).code(255).stdout_has("Solo5: ABORT: solo5_abort() called");
}

#[test]
fn zero_page_write_traps_and_aborts() {
    require_kvm();
    run(args!["--mem=4", guest("zeropage")])
        .code(255)
        .stdout_has("type=#PF")
        .stdout_has("cr2=0x8\n")
        .stdout_has("ABORT")
        .stdout_lacks("FAILURE");
}

#[test]
fn write_to_16_gib_traps_and_aborts() {
    require_kvm();
    run(args!["--mem=4", guest("unmapped"), "16g"])
        .code(255)
        .stdout_has("cr2=0x400000000\n")
        .stdout_has("ABORT")
        .stdout_lacks("FAILURE");
}

#[test]
fn write_beyond_guest_memory_traps_and_aborts() {
    require_kvm();
    // 8 MiB of memory: the page 2 MiB past its end has no page-table entry.
    run(args!["--mem=8", guest("unmapped")])
        .code(255)
        .stdout_has("writing to 0xa00000")
        .stdout_has("cr2=0xa00000\n")
        .stdout_has("ABORT")
        .stdout_lacks("FAILURE");
}

#[test]
fn write_to_text_is_a_tender_fault() {
    require_kvm();
    run(args!["--mem=4", guest("xwrite")])
        .tender_error("host/guest translation fault")
        .stdout_has("writing to text")
        .stdout_lacks("FAILURE");
}

#[test]
fn memory_size_is_rounded_down_to_2_mib() {
    require_kvm();
    // The guest banner shows the guest-visible size the tender settled on.
    run(args!["--mem=5", guest("hello")]).code(0).stdout_has("mem_size=0x400000 ");
    run(args!["--mem=8", guest("hello")]).code(0).stdout_has("mem_size=0x800000 ");
}

#[test]
fn default_memory_is_512_mib() {
    require_kvm();
    run(args![guest("hello")]).code(0).stdout_has("mem_size=0x20000000 ");
}

#[test]
fn too_much_memory_is_refused() {
    require_kvm();
    run(args!["--mem=4097", guest("hello")]).code(1);
}

#[test]
fn malformed_memory_option_is_refused() {
    require_kvm();
    run(args!["--mem=lots", guest("hello")]).code(1);
}

#[test]
fn time_walltime_monotonic_and_poll_timeouts() {
    require_kvm();
    run(args!["--mem=4", guest("time")])
        .code(0)
        .stdout_has("poll(200ms)")
        .stdout_has("SUCCESS\n")
        .stdout_lacks("FAILURE");
}

#[test]
fn sigterm_while_guest_sleeps_in_poll() {
    require_kvm();
    let dir = TempDir::new("sig");
    let disk = dir.zero_file("disk", 4096);
    let mut t = Running::spawn(tender_cmd(args![
        "--mem=4",
        opt("--block:storage=", &disk),
        guest("hostile"),
        "sleep"
    ]));
    t.wait_for_stdout("SLEEPING\n", TIMEOUT);
    std::thread::sleep(std::time::Duration::from_millis(200));
    t.signal(libc::SIGTERM);
    t.finish(TIMEOUT).tender_error("Exiting on signal 15");
}

#[test]
fn sigterm_while_guest_spins() {
    require_kvm();
    let dir = TempDir::new("sig");
    let disk = dir.zero_file("disk", 4096);
    let mut t = Running::spawn(tender_cmd(args![
        "--mem=4",
        opt("--block:storage=", &disk),
        guest("hostile"),
        "spin"
    ]));
    t.wait_for_stdout("SPINNING\n", TIMEOUT);
    std::thread::sleep(std::time::Duration::from_millis(200));
    t.signal(libc::SIGTERM);
    t.finish(TIMEOUT).tender_error("Exiting on signal 15");
}

#[test]
fn sigint_while_guest_sleeps_in_poll() {
    require_kvm();
    let dir = TempDir::new("sig");
    let disk = dir.zero_file("disk", 4096);
    let mut t = Running::spawn(tender_cmd(args![
        "--mem=4",
        opt("--block:storage=", &disk),
        guest("hostile"),
        "sleep"
    ]));
    t.wait_for_stdout("SLEEPING\n", TIMEOUT);
    t.signal(libc::SIGINT);
    t.finish(TIMEOUT).tender_error("Exiting on signal 2");
}

#[test]
fn maximum_memory_4_gib() {
    require_kvm();
    // The stack then starts just below 4 GiB, the top of the 32-bit range
    // that hypercall argument pointers can reach.
    run(args!["--mem=4096", guest("hello")])
        .code(0)
        .stdout_has("mem_size=0x100000000 ")
        .stdout_has("SUCCESS\n");
}

#[test]
fn command_line_limit_is_8191_bytes() {
    require_kvm();
    // ARGS are joined with spaces; the boot-info area holds 8191 bytes + NUL.
    let ok = "x".repeat(8191);
    run(args!["--mem=4", guest("exit"), format!("5 {}", &ok[2..])]).code(5);
    let long = "x".repeat(8190);
    run(args!["--mem=4", guest("exit"), "5", long]).tender_error("command line");
}
