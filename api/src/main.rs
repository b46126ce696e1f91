//! `petrel-api`: serve the API, or print its OpenAPI document.

use anyhow::Context;
use clap::{Parser, Subcommand};
use petrel_api::config::Settings;
use petrel_api::server;

#[derive(Parser)]
#[command(
    name = "petrel-api",
    version,
    about = "Petrel's multi-tenant HTTPS/OpenAPI service",
    long_about = "Petrel's multi-tenant HTTPS/OpenAPI service.\n\n\
    Options are read from defaults, then the --config TOML file, then PETREL_* environment \
    variables, then these flags. Without a database URL, Petrel runs its own PostgreSQL cluster \
    in <data-dir>/postgres."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print the OpenAPI document (the one checked in at openapi/openapi.json).
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", petrel_api::routes::openapi_json());
        return Ok(());
    }
    let config = cli.settings.resolve().context("configuration")?;
    let mut telemetry = petrel_api::telemetry::init(config.log_format);
    tracing::debug!(?config, "configuration");
    let local_worker =
        config.local_worker.then(|| (config.local_worker_dir(), config.local_worker_credential()));
    let local_agent = config.local_agent.then(|| config.local_agent_dir());
    let running = server::run(config).await?;
    let s = &running.server;
    println!("Petrel is serving at {}/", s.url);
    println!("  API docs:   {}/api/v1/docs/", s.url);
    if let Some(ca) = &s.local_ca {
        println!("  TLS CA:     {} (pin it in workers, agents and the CLI)", ca.cert_path.display());
        println!("  CA SHA-256: {}", ca.fingerprint);
        println!("  curl:       curl --cacert {} {}/healthz", ca.cert_path.display(), s.url);
    }
    if let Some(pg) = &running.embedded {
        println!("  Database:   embedded PostgreSQL, psql '{}'", pg.url(petrel_api::db::embedded::DATABASE));
    }
    if let Some(admin) = &running.first_admin {
        match &admin.password_file {
            Some(file) => println!(
                "  First start: sign in as `{}` with the password in {}",
                admin.username,
                file.display()
            ),
            None => println!("  First start: sign in as `{}` with the configured password", admin.username),
        }
    }
    let mut worker = match local_worker {
        Some((dir, credential)) => Some(
            spawn_local_worker(
                &s.url,
                s.local_ca.as_ref().map(|ca| ca.cert_path.as_path()),
                &dir,
                &credential,
            )
            .context("starting the local worker")?,
        ),
        None => None,
    };
    let ca = s.local_ca.as_ref().map(|ca| ca.cert_path.clone());
    let mut agent = match local_agent {
        Some(dir) if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok() => Some(
            start_local_agent(&s.url, ca.as_deref(), &dir, running.local_agent_enrollment.as_deref())
                .await
                .context("starting the local agent")?,
        ),
        Some(_) => {
            println!("  Agent:      not started: /dev/kvm is not usable here");
            None
        }
        None => None,
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    for child in [worker.as_mut(), agent.as_mut()].into_iter().flatten() {
        stop_child(child).await;
    }
    running.shutdown().await;
    // Spans and metrics still pending go out before the process ends.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.ok();
    Ok(())
}

/// `petrel-worker run` next to this binary, against this server, with the Rust toolchain on
/// PATH exposed to builds when there is one.
fn spawn_local_worker(
    url: &str,
    ca: Option<&std::path::Path>,
    dir: &std::path::Path,
    credential: &std::path::Path,
) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe()?.with_file_name("petrel-worker");
    anyhow::ensure!(exe.is_file(), "{} is missing (cargo build --release -p petrel-worker)", exe.display());
    let mut command = tokio::process::Command::new(&exe);
    command
        .args(["run", "--api", url, "--work-dir"])
        .arg(dir.join("work"))
        .arg("--credential-file")
        .arg(credential);
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let has_rust = std::process::Command::new("rustc")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_rust {
        command.args(["--tool-dir", "rust=auto"]);
    }
    // It exports where this process does (OTEL_*), under its own service name.
    command.env_remove("OTEL_SERVICE_NAME");
    let child = command.kill_on_drop(true).spawn().with_context(|| format!("running {}", exe.display()))?;
    println!("  Worker:     {} (one local worker, builds in {})", exe.display(), dir.join("work").display());
    Ok(child)
}

/// `petrel-agent` next to this binary: enrolled on first use, on the bridge `petrel0` (created
/// here when missing, for the default tenant's quota names it).
async fn start_local_agent(
    url: &str,
    ca: Option<&std::path::Path>,
    dir: &std::path::Path,
    enrollment: Option<&str>,
) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe()?.with_file_name("petrel-agent");
    anyhow::ensure!(
        exe.is_file(),
        "{} is missing (cargo build --release -p petrel-hypervisor)",
        exe.display()
    );
    let bridge = petrel_api::bootstrap::LOCAL_BRIDGE;
    if !std::path::Path::new("/sys/class/net").join(bridge).exists() {
        for args in [vec!["link", "add", bridge, "type", "bridge"], vec!["link", "set", bridge, "up"]] {
            let status = tokio::process::Command::new("ip").args(&args).status().await;
            if !status.is_ok_and(|s| s.success()) {
                println!(
                    "  Agent:      could not create the bridge {bridge} (ip {}); unikernels with networks will not start",
                    args.join(" ")
                );
                break;
            }
        }
    }
    let common = |command: &mut tokio::process::Command| {
        command.args(["--api", url]).arg("--state-dir").arg(dir);
        if let Some(ca) = ca {
            command.arg("--ca").arg(ca);
        }
    };
    if let Some(token) = enrollment {
        let mut enroll = tokio::process::Command::new(&exe);
        enroll.arg("enroll").args(["--token", token]);
        common(&mut enroll);
        let status = enroll.status().await.with_context(|| format!("running {}", exe.display()))?;
        anyhow::ensure!(status.success(), "petrel-agent enroll failed");
    }
    let mut run = tokio::process::Command::new(&exe);
    run.arg("run").env_remove("OTEL_SERVICE_NAME");
    common(&mut run);
    let child = run.kill_on_drop(true).spawn().with_context(|| format!("running {}", exe.display()))?;
    println!("  Agent:      {} (one local KVM agent, bridge {bridge})", exe.display());
    Ok(child)
}

async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a pid we spawned and have not reaped; no memory is involved.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    if tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
