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
    petrel_api::telemetry::init(config.log_format);
    tracing::debug!(?config, "configuration");
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
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
