//! `petrel-agent`: runs the unikernels a Petrel API assigns to this KVM host. All logic lives in
//! the library (`petrel_hypervisor::agent`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use petrel_hypervisor::agent::{self, AgentConfig};
use petrel_wire::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "petrel-agent",
    version,
    about = "Runs the unikernels a Petrel API assigns to this KVM host"
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
    /// Trade a one-time enrollment token for this agent's credential (stored in the state
    /// directory as `credential`, with `agent.json`).
    Enroll {
        #[command(flatten)]
        common: Common,
        /// The enrollment token (`petrele_...`) an administrator created.
        #[arg(long, env = "PETREL_ENROLLMENT_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Run the assigned unikernels until SIGTERM or SIGINT (which stop them all).
    Run {
        #[command(flatten)]
        common: Common,
        /// Seconds between two stats samples of each running unikernel.
        #[arg(long, env = "PETREL_AGENT_STATS_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        stats_interval: u64,
    },
}

#[derive(Args)]
struct Common {
    /// The API's base URL.
    #[arg(long, env = "PETREL_API_URL")]
    api: String,
    /// The API's CA certificate (PEM); the only one trusted.
    #[arg(long, env = "PETREL_CA")]
    ca: PathBuf,
    /// Credential, identity and image cache.
    #[arg(long, env = "PETREL_AGENT_STATE_DIR", default_value = "/var/lib/petrel-agent")]
    state_dir: PathBuf,
    /// The tender; by default `petrel-hvt` next to this executable, else from PATH.
    #[arg(long, env = "PETREL_TENDER")]
    tender: Option<PathBuf>,
}

impl Common {
    fn config(self) -> anyhow::Result<AgentConfig> {
        let ca_pem = std::fs::read(&self.ca).with_context(|| format!("reading {}", self.ca.display()))?;
        Ok(AgentConfig {
            api: self.api,
            ca_pem,
            state_dir: self.state_dir,
            tender: self.tender.unwrap_or_else(agent::default_tender),
            stats_interval: agent::DEFAULT_STATS_INTERVAL,
        })
    }
}

/// Resolves at the first SIGTERM or SIGINT. The handlers are installed at once, so that a
/// signal arriving during start-up is not fatal.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop requested");
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Colours only for people: journald and log files get plain text.
    let mut telemetry = telemetry::init("petrel-agent", cli.log_format, "info");
    let result = command(cli.command).await;
    // Spans and metrics still pending go out before the process ends.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.ok();
    result
}

async fn command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Enroll { common, token } => {
            let config = common.config()?;
            let identity = agent::enroll(&config, token.trim()).await.context("enrolling")?;
            println!(
                "enrolled as {} ({}); the credential is in {}",
                identity.name,
                identity.agent_id,
                config.credential_path().display()
            );
            Ok(())
        }
        Command::Run { common, stats_interval } => {
            let stop = stop_signal()?;
            let mut config = common.config()?;
            config.stats_interval = std::time::Duration::from_secs(stats_interval);
            agent::run(config, stop).await?;
            Ok(())
        }
    }
}
