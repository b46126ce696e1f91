//! The sandbox, for real: namespaces, mounts, uids and limits on this machine. These tests need
//! root (as the worker does) and fail, rather than pass, without it.
//!
//! Every test uses a uid of its own: the sandbox kills all processes of a build's uid.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use petrel_wire::builds::BuildResult;
use petrel_wire::workers::{BuildLimits, Recipe};
use petrel_worker::sandbox::{self, ConsoleLine, Outcome, SandboxError, SandboxSpec, ToolDir};
use tokio::sync::{mpsc, watch};

const SOURCE_DATE_EPOCH: i64 = 1_700_000_000;

fn require_root() {
    // SAFETY: geteuid has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the sandbox tests need root (namespaces, mounts, setuid): run them as root");
}

/// A directory for build directories, on the host's disk (not /tmp, which the sandbox hides,
/// so host paths of other builds are visible inside and only permissions protect them).
/// Traversable by everyone, so the tests show that each build directory protects itself.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("sandbox-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).expect("chmod");
        Root { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An empty build directory, as the worker creates it.
    fn build_dir(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        path
    }
}

fn spec(build_dir: PathBuf, uid: u32, script: &str) -> SandboxSpec {
    SandboxSpec {
        build_dir,
        recipe: Recipe { script: script.to_string(), ..Default::default() },
        limits: BuildLimits { timeout_secs: 120, memory_mib: 2048, output_mib: 64, max_attempts: 1 },
        source_date_epoch: SOURCE_DATE_EPOCH,
        uid,
        gid: uid,
        tool_dirs: Vec::new(),
    }
}

/// Runs to the end, collecting the console.
async fn run(spec: &SandboxSpec) -> (Outcome, Vec<ConsoleLine>) {
    let (_cancel, cancel_rx) = watch::channel(false);
    run_with(spec, cancel_rx).await.expect("the sandbox runs")
}

async fn run_with(
    spec: &SandboxSpec,
    cancel: watch::Receiver<bool>,
) -> Result<(Outcome, Vec<ConsoleLine>), SandboxError> {
    let (tx, mut rx) = mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    });
    let outcome = sandbox::run(spec, tx, cancel).await?;
    let lines = collector.await.expect("collector");
    Ok((outcome, lines))
}

fn texts(lines: &[ConsoleLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

fn assert_succeeded(outcome: &Outcome, lines: &[ConsoleLine]) {
    assert_eq!(outcome.result, BuildResult::Exited { code: 0 }, "console: {:#?}", texts(lines));
    assert!(!outcome.timed_out);
}

/// Live processes whose command name is `comm`.
fn processes_named(comm: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let entry = entry.expect("/proc entry");
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let name = status.lines().find_map(|l| l.strip_prefix("Name:")).map(str::trim);
        if name == Some(comm) {
            found.push(pid);
        }
    }
    found
}

/// A process name unique to this test run (at most 15 bytes, the kernel's limit).
fn marker(tag: &str) -> String {
    format!("pm{}{tag}", std::process::id() % 1_000_000)
}

#[tokio::test]
async fn c_build_is_bit_for_bit_reproducible_across_build_dirs() {
    let root = Root::new();
    let hello = "#include <stdio.h>\nint main(void) {\n  printf(\"hello from %s, built %s %s\\n\", __FILE__, __DATE__, __TIME__);\n  return 0;\n}\n";
    let script = "cc -g -O2 -o hello \"$PWD/hello.c\"\nmkdir -p \"$PETREL_OUTPUT/bin\"\ncp hello \"$PETREL_OUTPUT/bin/\"\n";
    let mut binaries = Vec::new();
    for (name, uid) in [("first-build", 61101), ("another-build-dir", 61102)] {
        let mut spec = spec(root.build_dir(name), uid, script);
        spec.recipe.files.insert("hello.c".into(), hello.into());
        let (outcome, lines) = run(&spec).await;
        assert_succeeded(&outcome, &lines);
        assert_eq!(outcome.output_dir, spec.build_dir.canonicalize().expect("canonical").join("output"));
        // Handed back to root, out of reach of the uid's next build.
        let meta = std::fs::metadata(&spec.build_dir).expect("build dir");
        assert_eq!((meta.uid(), meta.permissions().mode() & 0o7777), (0, 0o700));
        let binary =
            std::fs::read(outcome.output_dir.join("bin/hello")).expect("the binary is in the output");
        binaries.push(binary);
    }
    assert!(binaries[0] == binaries[1], "two builds in different host directories differ");
    let embedded = b"/tmp/build/src/hello.c";
    assert!(binaries[0].windows(embedded.len()).any(|w| w == embedded), "the fixed path is embedded");
    let host_dir = root.path().to_str().expect("utf-8").as_bytes();
    assert!(!binaries[0].windows(host_dir.len()).any(|w| w == host_dir), "no host path is embedded");

    // The binary works, and __DATE__ came from SOURCE_DATE_EPOCH (2023-11-14 22:13:20 UTC).
    let out =
        std::process::Command::new(root.path().join("first-build/output/bin/hello")).output().expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from /tmp/build/src/hello.c, built Nov 14 2023 22:13:20\n"
    );
}

#[tokio::test]
async fn the_script_sees_exactly_the_sanitised_environment() {
    let root = Root::new();
    let tool = root.path().join("tool");
    std::fs::create_dir_all(tool.join("bin")).expect("mkdir");
    let mut spec = spec(root.build_dir("b"), 61103, "env\n");
    spec.recipe.env = BTreeMap::from([("CFLAGS".into(), "-O2 -g".into()), ("EMPTY".into(), String::new())]);
    spec.tool_dirs = vec![ToolDir { host: tool, name: "ocaml".into() }];
    // Control: the worker's own environment is not empty, and none of it may reach the script.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some() && std::env::var_os("PATH").is_some());
    let (outcome, lines) = run(&spec).await;
    assert_succeeded(&outcome, &lines);

    let expected: BTreeMap<String, String> = [
        ("CFLAGS", "-O2 -g"),
        ("EMPTY", ""),
        ("HOME", "/tmp/build/home"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("PATH", "/opt/petrel/ocaml/bin:/usr/local/bin:/usr/bin:/bin"),
        ("PETREL_OUTPUT", "/tmp/build/output"),
        ("SOURCE_DATE_EPOCH", "1700000000"),
        ("TZ", "UTC"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(outcome.environment, expected);
    let mut seen: BTreeMap<String, String> = lines
        .iter()
        .map(|l| l.text.split_once('=').expect("KEY=VALUE"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The shell itself exports its working directory.
    assert_eq!(seen.remove("PWD").as_deref(), Some("/tmp/build/src"));
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_script_runs_unprivileged_as_the_given_uid_in_its_own_namespaces() {
    let root = Root::new();
    let script = "id -u; id -g; id -G; echo pid=$$; hostname; pwd\n\
                  grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status\n\
                  ls /proc | grep -cE '^[0-9]+$'\n";
    let (outcome, lines) = run(&spec(root.build_dir("b"), 61104, script)).await;
    assert_succeeded(&outcome, &lines);
    let text = texts(&lines);
    assert_eq!(&text[..6], ["61104", "61104", "61104", "pid=1", "petrel", "/tmp/build/src"]);
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(text.contains(&format!("{cap}:\t0000000000000000").as_str()), "{cap}: {text:?}");
    }
    assert!(text.contains(&"NoNewPrivs:\t1"), "{text:?}");
    // sh, grep's pipeline and ls: only the build's own processes are visible.
    let visible: usize = text.last().expect("count").parse().expect("a number");
    assert!(visible <= 4, "{visible} processes visible: {text:?}");
}

#[tokio::test]
async fn another_build_directory_cannot_be_read() {
    let root = Root::new();
    let other = root.build_dir("other");
    std::fs::write(other.join("secret"), "s3cret").expect("write");
    std::os::unix::fs::chown(&other, Some(61106), Some(61106)).expect("chown");
    std::os::unix::fs::chown(other.join("secret"), Some(61106), Some(61106)).expect("chown");
    let secret = other.join("secret");
    // Control: the file is there for whoever may read it.
    assert_eq!(std::fs::read_to_string(&secret).expect("root reads it"), "s3cret");

    let script = format!(
        "ls -ld {dir} || true\nif cat {secret}; then echo LEAKED; else echo DENIED; fi\n",
        dir = other.display(),
        secret = secret.display()
    );
    let (outcome, lines) = run(&spec(root.build_dir("b"), 61105, &script)).await;
    assert_succeeded(&outcome, &lines);
    let text = texts(&lines);
    assert!(text.contains(&"DENIED"), "{text:?}");
    assert!(!text.iter().any(|l| l.contains("s3cret") || l.contains("LEAKED")), "{text:?}");
    // Visible (the path exists inside) but not readable: the build directory's own protection.
    assert!(text.iter().any(|l| l.contains("Permission denied")), "{text:?}");
}

#[tokio::test]
async fn nothing_outside_the_build_directory_can_be_written() {
    let root = Root::new();
    let tag = marker("w");
    let script = format!(
        "t() {{ if \"$@\" 2>/dev/null; then echo \"OK $*\"; else echo \"FAIL $*\"; fi; }}\n\
         t touch /etc/petrel-escape\n\
         t touch {root}/escape\n\
         t ls /root\n\
         t touch /usr/local/petrel-escape\n\
         t touch /var/tmp/{tag}\n\
         t touch /dev/shm/{tag}\n\
         t touch /tmp/{tag}\n\
         t touch $HOME/ok\n\
         echo run: $(ls -A /run | wc -l)\n\
         awk '$5 == \"/\" {{ print \"root:\", $6 }}' /proc/self/mountinfo\n",
        root = root.path().display(),
    );
    let (outcome, lines) = run(&spec(root.build_dir("b"), 61107, &script)).await;
    assert_succeeded(&outcome, &lines);
    let text = texts(&lines);
    for denied in ["touch /etc/petrel-escape", "ls /root", "touch /usr/local/petrel-escape"] {
        assert!(text.contains(&format!("FAIL {denied}").as_str()), "{denied}: {text:?}");
    }
    assert!(text.contains(&format!("FAIL touch {}/escape", root.path().display()).as_str()), "{text:?}");
    // The world-writable places are private and empty: writable, and nothing reaches the host.
    for private in ["/var/tmp", "/dev/shm", "/tmp"] {
        assert!(text.contains(&format!("OK touch {private}/{tag}").as_str()), "{private}: {text:?}");
        assert!(!Path::new(&format!("{private}/{tag}")).exists(), "{private}/{tag} reached the host");
    }
    assert!(text.contains(&"OK touch /tmp/build/home/ok"), "{text:?}");
    // Without the network, the host's /run (and its unix sockets) is hidden.
    assert!(text.contains(&"run: 0"), "{text:?}");
    // Read-only whatever the host's permissions say (root's own files included).
    assert!(text.iter().any(|l| l.starts_with("root: ro,")), "{text:?}");
    assert!(!Path::new("/etc/petrel-escape").exists());
    assert!(!root.path().join("escape").exists());
}

/// A non-loopback address of this host, if it has one.
fn host_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // Connecting a UDP socket sends nothing; it picks the source address of the route.
    socket.connect("192.0.2.1:9").or_else(|_| socket.connect("8.8.8.8:53")).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn without_network_only_the_sandbox_loopback_is_reachable() {
    let root = Root::new();
    let listener = std::net::TcpListener::bind("0.0.0.0:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    let mut targets = vec!["127.0.0.1".to_string()];
    if let Some(ip) = host_address() {
        targets.push(ip.to_string());
    }
    let connect = |target: &str| {
        format!(
            "if timeout 10 bash -c 'exec 3<>/dev/tcp/{target}/{port}' 2>/dev/null; \
             then echo CONNECTED {target}; else echo UNREACHABLE {target}; fi\n"
        )
    };
    let loopback = "python3 -c '\nimport socket\ns = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen()\n\
                    c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b\"ping\")\n\
                    print(\"LOOPBACK\", a.recv(4).decode())\n'\n";
    let script: String = targets.iter().map(|t| connect(t)).collect::<String>() + loopback;

    let (outcome, lines) = run(&spec(root.build_dir("isolated"), 61108, &script)).await;
    assert_succeeded(&outcome, &lines);
    let text = texts(&lines);
    for target in &targets {
        assert!(text.contains(&format!("UNREACHABLE {target}").as_str()), "{target}: {text:?}");
    }
    assert!(text.contains(&"LOOPBACK ping"), "{text:?}");

    // Control: with the network, the same host listener answers.
    let mut spec = spec(root.build_dir("networked"), 61108, &script);
    spec.recipe.network = true;
    let (outcome, lines) = run(&spec).await;
    assert_succeeded(&outcome, &lines);
    let text = texts(&lines);
    for target in &targets {
        assert!(text.contains(&format!("CONNECTED {target}").as_str()), "{target}: {text:?}");
    }
    drop(listener);
}

/// Polls until processes named `name` exist (the control that the test would see them).
async fn wait_for_process(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes_named(name).is_empty() {
        assert!(Instant::now() < deadline, "process {name} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn timeout_kills_the_script_and_everything_it_started() {
    let root = Root::new();
    let (background, detached) = (marker("bg"), marker("sid"));
    let script = format!(
        "cp /bin/sleep \"$HOME/{background}\"; cp /bin/sleep \"$HOME/{detached}\"\n\
         \"$HOME/{background}\" 1000 &\n\
         setsid \"$HOME/{detached}\" 1000 &\n\
         echo started\nsleep 1000\n"
    );
    let mut spec = spec(root.build_dir("b"), 61109, &script);
    spec.limits.timeout_secs = 4;
    let started = Instant::now();
    let (result, ()) = tokio::join!(run(&spec), async {
        wait_for_process(&background).await;
        wait_for_process(&detached).await;
    });
    let (outcome, lines) = result;
    assert!(started.elapsed() < Duration::from_secs(4 + 15), "took {:?}", started.elapsed());
    assert!(outcome.timed_out);
    assert_eq!(outcome.result, BuildResult::Message { message: "timed out after 4 s".into() });
    assert_eq!(texts(&lines), ["started"]);
    assert_eq!(processes_named(&background), Vec::<u32>::new(), "the background process survived");
    assert_eq!(processes_named(&detached), Vec::<u32>::new(), "the setsid process survived");
}

#[tokio::test]
async fn background_processes_end_with_the_script() {
    let root = Root::new();
    let name = marker("end");
    let script = format!("cp /bin/sleep \"$HOME/{name}\"\n\"$HOME/{name}\" 1000 &\necho done\n");
    let (outcome, lines) = run(&spec(root.build_dir("b"), 61110, &script)).await;
    assert_succeeded(&outcome, &lines);
    assert_eq!(texts(&lines), ["done"]);
    assert_eq!(processes_named(&name), Vec::<u32>::new(), "the background process survived");
}

#[tokio::test]
async fn cancelling_kills_the_build() {
    let root = Root::new();
    let name = marker("can");
    let script = format!("cp /bin/sleep \"$HOME/{name}\"\nexec \"$HOME/{name}\" 1000\n");
    let spec = spec(root.build_dir("b"), 61111, &script);
    let (cancel, cancel_rx) = watch::channel(false);
    let started = Instant::now();
    let (result, ()) = tokio::join!(run_with(&spec, cancel_rx), async {
        wait_for_process(&name).await;
        cancel.send(true).expect("the build listens");
    });
    let (outcome, _) = result.expect("runs");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(outcome.result, BuildResult::Message { message: "cancelled".into() });
    assert!(!outcome.timed_out);
    assert_eq!(processes_named(&name), Vec::<u32>::new(), "the build survived");
}

#[tokio::test]
async fn dropping_the_run_kills_the_build() {
    let root = Root::new();
    let name = marker("drop");
    let script = format!("cp /bin/sleep \"$HOME/{name}\"\nexec \"$HOME/{name}\" 1000\n");
    let spec = spec(root.build_dir("b"), 61119, &script);
    let (_cancel, cancel_rx) = watch::channel(false);
    let (tx, _rx) = mpsc::channel(16);
    let run = sandbox::run(&spec, tx, cancel_rx);
    tokio::select! {
        _ = run => panic!("the build ended on its own"),
        () = wait_for_process(&name) => {}
    }
    // The future is dropped here.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_named(&name).is_empty() {
        assert!(Instant::now() < deadline, "the build survived its dropped future");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn exit_codes_and_signals_are_passed_on() {
    let root = Root::new();
    let (outcome, _) = run(&spec(root.build_dir("exit"), 61120, "echo failing\nexit 3\n")).await;
    assert_eq!(outcome.result, BuildResult::Exited { code: 3 });
    // A command failing under `sh -e` ends the script with its status.
    let (outcome, _) = run(&spec(root.build_dir("false"), 61120, "false\necho UNREACHED\n")).await;
    assert_eq!(outcome.result, BuildResult::Exited { code: 1 });

    let script = "exec python3 -c 'import ctypes; ctypes.string_at(0)'\n";
    let (outcome, _) = run(&spec(root.build_dir("segv"), 61120, script)).await;
    assert_eq!(outcome.result, BuildResult::Signalled { signal: libc::SIGSEGV });

    // SIGKILL from outside (as the OOM killer sends it), not by the sandbox's timeout.
    let name = marker("kill");
    let script = format!("cp /bin/sleep \"$HOME/{name}\"\nexec \"$HOME/{name}\" 1000\n");
    let spec = spec(root.build_dir("killed"), 61120, &script);
    let (result, ()) = tokio::join!(run(&spec), async {
        wait_for_process(&name).await;
        for pid in processes_named(&name) {
            // SAFETY: kill has no memory arguments.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    });
    let (outcome, lines) = result;
    assert_eq!(outcome.result, BuildResult::Signalled { signal: libc::SIGKILL });
    assert!(!outcome.timed_out);
    assert_eq!(texts(&lines), Vec::<&str>::new(), "the sandbox's own messages stay off the console");
}

#[tokio::test]
async fn exceeding_the_memory_limit_fails_cleanly() {
    let root = Root::new();
    let script = "python3 -c 'bytearray(64 << 20)' && echo SMALL-OK\npython3 -c 'bytearray(2 << 30)'\necho UNREACHED\n";
    let mut spec = spec(root.build_dir("b"), 61112, script);
    spec.limits.memory_mib = 256;
    let (outcome, lines) = run(&spec).await;
    let text = texts(&lines);
    assert!(text.contains(&"SMALL-OK"), "64 MiB fit under 256 MiB: {text:?}");
    assert!(text.contains(&"MemoryError"), "{text:?}");
    assert!(!text.contains(&"UNREACHED"), "{text:?}");
    assert_eq!(outcome.result, BuildResult::Exited { code: 1 });
    assert!(!outcome.timed_out);
}

#[tokio::test]
async fn output_over_the_cap_is_refused() {
    let root = Root::new();
    // Two files under the per-file limit (RLIMIT_FSIZE), too much together.
    let script =
        "head -c 700000 /dev/zero > \"$PETREL_OUTPUT/a\"\nhead -c 700000 /dev/zero > \"$PETREL_OUTPUT/b\"\n";
    let mut spec = spec(root.build_dir("total"), 61113, script);
    spec.limits.output_mib = 1;
    let (outcome, _) = run(&spec).await;
    assert_eq!(outcome.result, BuildResult::Message { message: "output exceeds 1 MiB".into() });
    assert!(!outcome.timed_out);

    // A single file over the limit fails while it is written.
    let script = "head -c 2000000 /dev/zero > \"$PETREL_OUTPUT/big\"\necho UNREACHED\n";
    let mut spec = self::spec(root.build_dir("single"), 61113, script);
    spec.limits.output_mib = 1;
    let (outcome, lines) = run(&spec).await;
    assert!(!matches!(outcome.result, BuildResult::Exited { code: 0 }), "{:?}", outcome.result);
    assert!(!texts(&lines).contains(&"UNREACHED"));
    let size = std::fs::metadata(outcome.output_dir.join("big")).expect("partial file").len();
    assert!(size <= 1024 * 1024, "{size}");

    // Within the cap: fine.
    let script = "head -c 500000 /dev/zero > \"$PETREL_OUTPUT/a\"\n";
    let mut spec = self::spec(root.build_dir("fits"), 61113, script);
    spec.limits.output_mib = 1;
    let (outcome, lines) = run(&spec).await;
    assert_succeeded(&outcome, &lines);
}

#[tokio::test]
async fn links_and_special_files_in_the_output_are_refused() {
    let root = Root::new();
    let script = "mkdir -p \"$PETREL_OUTPUT/bin\"\nln -s /etc/shadow \"$PETREL_OUTPUT/bin/link\"\n";
    let (outcome, _) = run(&spec(root.build_dir("link"), 61114, script)).await;
    assert_eq!(
        outcome.result,
        BuildResult::Message { message: "output contains a symbolic link: bin/link".into() }
    );

    let script = "mkfifo \"$PETREL_OUTPUT/fifo\"\n";
    let (outcome, _) = run(&spec(root.build_dir("fifo"), 61114, script)).await;
    assert_eq!(
        outcome.result,
        BuildResult::Message { message: "output contains a special file: fifo".into() }
    );

    let script = "rm -r \"$PETREL_OUTPUT\"\nln -s /etc \"$PETREL_OUTPUT\"\n";
    let (outcome, _) = run(&spec(root.build_dir("swapped"), 61114, script)).await;
    assert!(matches!(outcome.result, BuildResult::Message { .. }), "{:?}", outcome.result);
}

#[tokio::test]
async fn bad_recipes_are_refused_before_anything_runs() {
    let root = Root::new();
    for (i, bad) in ["../x", "/etc/passwd", "a//b", "a/../../x", ""].into_iter().enumerate() {
        let dir = root.build_dir(&format!("file-{i}"));
        let mut spec = spec(dir.clone(), 61115, "echo ran > /tmp/build/output/ran\n");
        spec.recipe.files.insert(bad.into(), "x".into());
        let (_cancel, cancel_rx) = watch::channel(false);
        match run_with(&spec, cancel_rx).await {
            Err(SandboxError::Invalid { what, .. }) => assert!(what.contains(&format!("{bad:?}")), "{what}"),
            other => panic!("{bad:?} was not refused: {:?}", other.map(|(o, _)| o)),
        }
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0, "the build directory was touched");
    }
    let mut as_root = spec(root.build_dir("root"), 0, "true\n");
    let (_cancel, cancel_rx) = watch::channel(false);
    assert!(matches!(run_with(&as_root, cancel_rx.clone()).await, Err(SandboxError::Invalid { .. })));
    as_root.uid = 61115;
    as_root.gid = 0;
    assert!(matches!(run_with(&as_root, cancel_rx).await, Err(SandboxError::Invalid { .. })), "gid 0");
    for bad in
        ["PATH", "HOME", "PETREL_OUTPUT", "PETREL_ANYTHING", "SOURCE_DATE_EPOCH", "TZ", "lower", "1X", "A-B"]
    {
        let mut spec = spec(root.build_dir(&format!("env-{bad}")), 61115, "true\n");
        spec.recipe.env.insert(bad.into(), "x".into());
        let (_cancel, cancel_rx) = watch::channel(false);
        match run_with(&spec, cancel_rx).await {
            Err(SandboxError::Invalid { what, .. }) => assert!(what.contains(bad), "{what}"),
            other => panic!("{bad:?} was not refused: {:?}", other.map(|(o, _)| o)),
        }
    }
}

#[tokio::test]
async fn console_lines_arrive_in_order_split_and_with_the_last_unterminated_line() {
    let root = Root::new();
    let script =
        "echo one\necho two >&2\necho three\nhead -c 150000 /dev/zero | tr '\\0' x\necho\nprintf last\n";
    let (outcome, lines) = run(&spec(root.build_dir("b"), 61116, script)).await;
    assert_succeeded(&outcome, &lines);
    let text = texts(&lines);
    assert_eq!(&text[..3], ["one", "two", "three"]);
    let lengths: Vec<usize> = text[3..6].iter().map(|l| l.len()).collect();
    assert_eq!(lengths, [65536, 65536, 150000 - 2 * 65536]);
    assert!(text[3..6].iter().all(|l| l.bytes().all(|b| b == b'x')));
    assert_eq!(&text[6..], ["last"]);
    assert!(lines.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
}

#[tokio::test]
async fn tool_directories_are_on_path_and_read_only() {
    let root = Root::new();
    let make_tool = |base: &Path, greeting: &str| {
        std::fs::create_dir_all(base.join("bin")).expect("mkdir");
        let script = base.join("bin").join(format!("greet-{greeting}"));
        std::fs::write(&script, format!("#!/bin/sh\necho hello {greeting}\n")).expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    // One under /tmp, which the sandbox replaces by its own.
    let in_tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(in_tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    make_tool(in_tmp.path(), "a");
    make_tool(&root.path().join("tool-b"), "b");
    let opt_before: Vec<_> =
        std::fs::read_dir("/opt").expect("/opt").map(|e| e.expect("entry").file_name()).collect();

    let script = "greet-a\ngreet-b\nif touch /opt/petrel/a/x 2>/dev/null; then echo WRITABLE; else echo READ-ONLY; fi\n\
                  ls -A /opt | tr '\\n' ' '; echo\n";
    let mut spec = spec(root.build_dir("b"), 61117, script);
    spec.tool_dirs = vec![
        ToolDir { host: in_tmp.path().to_path_buf(), name: "a".into() },
        ToolDir { host: root.path().join("tool-b"), name: "b".into() },
    ];
    let (outcome, lines) = run(&spec).await;
    assert_succeeded(&outcome, &lines);
    let text = texts(&lines);
    assert_eq!(&text[..3], ["hello a", "hello b", "READ-ONLY"]);
    // The host's /opt entries are all still there, next to petrel.
    let inside: Vec<&str> = text[3].split_whitespace().collect();
    for entry in &opt_before {
        assert!(inside.contains(&entry.to_str().expect("utf-8")), "{entry:?} missing in {inside:?}");
    }
    assert!(inside.contains(&"petrel"));
    let opt_after: Vec<_> =
        std::fs::read_dir("/opt").expect("/opt").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(opt_before, opt_after, "the host's /opt changed");
    assert!(!in_tmp.path().join("x").exists());
}

#[tokio::test]
async fn recorded_inputs_of_a_build_parse() {
    let root = Root::new();
    let lock = "version = 4\n\n[[package]]\nname = \"demo\"\nversion = \"1.0.0\"\n";
    let mut spec = spec(root.build_dir("b"), 61118, "cp Cargo.lock.in Cargo.lock\n");
    spec.recipe.files.insert("Cargo.lock.in".into(), lock.into());
    let (outcome, lines) = run(&spec).await;
    assert_succeeded(&outcome, &lines);
    let recorded =
        petrel_worker::record::record(&outcome.environment, &spec.build_dir).await.expect("records");
    assert_eq!(recorded.files["Cargo.lock"], lock.as_bytes());
    let env =
        petrel_inputs::environment::parse_environment(&recorded.files["build-environment"]).expect("parses");
    assert_eq!(env, outcome.environment);
    petrel_inputs::system_packages::parse_system_packages(&recorded.files["system-packages"])
        .expect("parses");
}
