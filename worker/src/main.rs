//! `petrel-worker`: runs builds for a Petrel API (see the crate docs).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use petrel_wire::telemetry::{self, LogFormat, Telemetry};
use petrel_worker::client::ApiClient;
use petrel_worker::run::{REBUILD_SLOT, Runner, WorkerConfig};
use petrel_worker::sandbox::ToolDir;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "petrel-worker",
    version,
    about = "Claims builds from a Petrel API and runs them in a sandbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as human-readable text or JSON (text or json). Traces and metrics go out
    /// over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (see the README).
    #[arg(long, global = true, env = "PETREL_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Claim and run builds until stopped (SIGTERM or Ctrl-C).
    Run(Connection),
    /// Rebuild a finished build here, compare every artifact with the original, print the verdict.
    Rebuild {
        #[command(flatten)]
        connection: Connection,
        /// The build to rebuild.
        build: Uuid,
    },
    /// Print the platform this machine reports (e.g. debian-12-x86_64).
    Platform,
}

#[derive(Args)]
struct Connection {
    /// The API's base URL.
    #[arg(long, env = "PETREL_API_URL", default_value = "https://127.0.0.1:8443")]
    api: String,
    /// The API's CA certificate (PEM) to pin; the system roots when absent.
    #[arg(long, env = "PETREL_CA")]
    ca: Option<PathBuf>,
    /// A file holding the worker credential (`petrelw_...`).
    #[arg(long, env = "PETREL_WORKER_CREDENTIAL_FILE")]
    credential_file: PathBuf,
    /// Builds and results not yet accepted are kept here.
    #[arg(long, env = "PETREL_WORKER_DIR", default_value = "/var/lib/petrel-worker")]
    work_dir: PathBuf,
    /// Builds run at once.
    #[arg(long, env = "PETREL_WORKER_CONCURRENCY", default_value_t = 1)]
    concurrency: u32,
    /// The platform to build for; detected when absent.
    #[arg(long, env = "PETREL_WORKER_PLATFORM")]
    platform: Option<String>,
    /// Builds of slot N run as uid/gid BASE+N.
    #[arg(long, env = "PETREL_WORKER_UID_BASE", default_value_t = 61000)]
    uid_base: u32,
    /// A host directory shown read-only to builds at /opt/petrel/NAME (its bin/ on PATH), as
    /// NAME=PATH; repeatable. `rust=auto` exposes this machine's Rust toolchain.
    #[arg(long = "tool-dir", value_name = "NAME=PATH")]
    tool_dirs: Vec<String>,
}

impl Connection {
    fn runner(&self) -> anyhow::Result<Runner> {
        let credential = std::fs::read_to_string(&self.credential_file)
            .with_context(|| format!("reading {}", self.credential_file.display()))?
            .trim()
            .to_string();
        let ca = match &self.ca {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
            None => None,
        };
        let client = ApiClient::new(&self.api, ca.as_deref(), credential)?;
        let mut tool_dirs = Vec::new();
        for spec in &self.tool_dirs {
            tool_dirs.push(parse_tool_dir(spec)?);
        }
        if !(1..=64).contains(&self.concurrency) {
            bail!("--concurrency must be between 1 and 64");
        }
        let config = WorkerConfig {
            work_dir: self.work_dir.clone(),
            platform: self.platform.clone().unwrap_or_else(petrel_inputs::platform::detect),
            concurrency: self.concurrency,
            uid_base: self.uid_base,
            tool_dirs,
        };
        Runner::new(client, config).with_context(|| format!("preparing {}", self.work_dir.display()))
    }
}

fn parse_tool_dir(spec: &str) -> anyhow::Result<ToolDir> {
    let (name, path) = spec.split_once('=').context("--tool-dir takes NAME=PATH")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        bail!("--tool-dir: the name {name:?} must be letters, digits, - and _");
    }
    let host = if path == "auto" && name == "rust" { rust_sysroot()? } else { PathBuf::from(path) };
    if !host.is_dir() {
        bail!("--tool-dir: {} is not a directory", host.display());
    }
    Ok(ToolDir { host, name: name.to_string() })
}

/// The toolchain `rustc` on PATH belongs to (its bin/ holds rustc and cargo).
fn rust_sysroot() -> anyhow::Result<PathBuf> {
    let out =
        std::process::Command::new("rustc").args(["--print", "sysroot"]).output().context("running rustc")?;
    if !out.status.success() {
        bail!("rustc --print sysroot failed");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// Exports what is pending (spans, metrics) before the process ends.
async fn flush(mut telemetry: Telemetry) {
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.ok();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init("petrel-worker", cli.log_format, "info");
    let result = command(cli.command).await;
    flush(telemetry).await;
    match result {
        Ok(0) => Ok(()),
        Ok(code) => std::process::exit(code),
        Err(e) => Err(e),
    }
}

/// Runs the command; answers the exit code.
async fn command(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Platform => {
            println!("{}", petrel_inputs::platform::detect());
            Ok(0)
        }
        Command::Run(connection) => {
            let runner = Arc::new(connection.runner()?);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                tracing::info!("stopping");
                let _ = stop_tx.send(true);
            });
            runner.run(stop_rx).await;
            Ok(0)
        }
        Command::Rebuild { connection, build } => {
            let runner = connection.runner()?;
            let claim = runner.client().claim_rebuild(build).await.context("asking for the rebuild")?;
            let rebuild_id = claim.build_id;
            eprintln!("rebuilding {build} as {rebuild_id}");
            runner.execute(claim, REBUILD_SLOT).await.context("the rebuild's result was not accepted")?;
            let verdict = runner.client().verdict(rebuild_id).await.context("fetching the verdict")?;
            println!("{}", serde_json::to_string_pretty(&verdict)?);
            if verdict.reproducible {
                eprintln!("reproducible: every artifact has the same SHA-256");
                Ok(0)
            } else {
                eprintln!("NOT reproducible: {} artifact(s) differ", verdict.differences.len());
                Ok(2)
            }
        }
    }
}
