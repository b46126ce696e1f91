//! The command tree (clap) and where each command is handled: one module per resource.

use clap::{Args, Parser, Subcommand};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::{self, Stored};
use crate::connect;
use crate::error::{CliError, EXIT_CODES};
use crate::generated::Client;
use crate::output::Output;

mod admin;
mod blocks;
mod builds;
mod deployments;
mod jobs;
mod session;

#[derive(Parser)]
#[command(
    name = "petrel",
    version,
    about = "Reproducible unikernel builds and their deployments, from a terminal."
)]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct Global {
    /// The API's URL (overrides the one `login` stored).
    #[arg(long, global = true, env = "PETREL_URL")]
    pub url: Option<String>,
    /// An API token (overrides the stored one).
    #[arg(long, global = true, env = "PETREL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM file with the CA to trust (overrides the stored one).
    #[arg(long, global = true, env = "PETREL_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check a token against the API and remember URL, token and CA (file mode 0600).
    Login(session::Login),
    /// Forget the stored URL, token and CA.
    Logout,
    /// Who the token belongs to, and its memberships.
    Whoami,
    /// Tenants and sub-tenants.
    #[command(subcommand)]
    Tenant(admin::Tenant),
    /// API tokens.
    #[command(subcommand)]
    Token(admin::Token),
    /// Jobs: what is built, how and when.
    #[command(subcommand)]
    Job(jobs::Job),
    /// Builds: results, consoles, artifacts, comparisons.
    #[command(subcommand)]
    Build(builds::Build),
    /// Which build produced an artifact with this SHA-256.
    Lookup { sha256: String },
    /// Which builds (and running deployments) contain a package: "are we affected?".
    Fleet {
        /// debian, freebsd, opam, cargo or system.
        ecosystem: String,
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// Only builds that live deployments were made from.
        #[arg(long)]
        deployed: bool,
        #[command(flatten)]
        page: Page,
    },
    /// Unikernel deployments on KVM hosts.
    #[command(subcommand)]
    Deploy(deployments::Deploy),
    /// Block devices: created on an agent, uploaded, attached to deployments, downloaded.
    #[command(subcommand)]
    Block(blocks::Block),
    /// A tenant's deployment quota and its usage.
    #[command(subcommand)]
    Quota(deployments::Quota),
    /// Build workers (administrators and tenant owners).
    #[command(subcommand)]
    Worker(admin::Worker),
    /// KVM agents (administrators).
    #[command(subcommand)]
    Agent(admin::Agent),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

/// What every command works with.
pub struct Ctx {
    pub api: Client,
    /// The same HTTPS client, for the streaming routes.
    pub http: reqwest::Client,
    pub url: String,
    pub out: Output,
}

impl Ctx {
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let out = Output { json: cli.global.json };
    match cli.command {
        Command::Login(login) => return session::login(login, &cli.global, out).await,
        Command::Logout => return session::logout(out),
        Command::Completions { .. } => unreachable!("handled before the runtime starts"),
        _ => {}
    }
    let ctx = connect_from(&cli.global, out)?;
    match cli.command {
        Command::Whoami => session::whoami(&ctx).await,
        Command::Tenant(c) => admin::tenant(&ctx, c).await,
        Command::Token(c) => admin::token(&ctx, c).await,
        Command::Job(c) => jobs::run(&ctx, c).await,
        Command::Build(c) => builds::run(&ctx, c).await,
        Command::Lookup { sha256 } => builds::lookup(&ctx, &sha256).await,
        Command::Fleet { ecosystem, name, version, deployed, page } => {
            builds::fleet(&ctx, &ecosystem, &name, version, deployed, page).await
        }
        Command::Deploy(c) => deployments::run(&ctx, c).await,
        Command::Block(c) => blocks::run(&ctx, c).await,
        Command::Quota(c) => deployments::quota(&ctx, c).await,
        Command::Worker(c) => admin::worker(&ctx, c).await,
        Command::Agent(c) => admin::agent(&ctx, c).await,
        Command::Login(_) | Command::Logout | Command::Completions { .. } => unreachable!(),
    }
}

/// The API client from the flags and environment, over what `login` stored.
fn connect_from(global: &Global, out: Output) -> Result<Ctx, CliError> {
    let stored = config::load().map_err(|e| CliError::Other(e.into()))?.unwrap_or_default();
    let url = global.url.clone().unwrap_or(stored.url.clone());
    let token = global.token.clone().unwrap_or(stored.token.clone());
    if url.is_empty() || token.is_empty() {
        return Err(CliError::NotLoggedIn);
    }
    let ca_pem = ca_from(global, &stored)?;
    let http = connect::http(ca_pem.as_deref(), Some(&token)).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(Ctx { api: connect::client(&url, http.clone()), http, url, out })
}

fn ca_from(global: &Global, stored: &Stored) -> Result<Option<String>, CliError> {
    match &global.ca {
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("--ca {}: {e}", path.display()))),
        None => Ok(stored.ca_pem.clone()),
    }
}

/// A request body checked against the generated type before it is sent.
pub fn body<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|e| CliError::Usage(format!("invalid request: {e}")))
}

/// `KEY=VALUE` arguments.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// Keyset pagination flags shared by the list commands.
#[derive(Args, Clone)]
pub struct Page {
    /// At most this many items (the API's default when absent).
    #[arg(long)]
    pub limit: Option<std::num::NonZeroU64>,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
}

/// The tenant to act in: `--tenant`, else the caller's only membership.
pub async fn tenant_or_only(ctx: &Ctx, tenant: Option<Uuid>) -> Result<Uuid, CliError> {
    if let Some(tenant) = tenant {
        return Ok(tenant);
    }
    let me = ctx.api.me().send().await?.into_inner();
    match me.memberships.as_slice() {
        [only] => Ok(only.tenant_id),
        [] => Err(CliError::Usage("no tenant membership: pass --tenant".into())),
        _ => Err(CliError::Usage("member of several tenants: pass --tenant".into())),
    }
}

/// Applies `--limit` and `--cursor` to a list request's builder.
macro_rules! paged {
    ($request:expr, $page:expr) => {{
        let page: &$crate::commands::Page = &$page;
        let mut request = $request;
        if let Some(limit) = page.limit {
            request = request.limit(limit);
        }
        if let Some(cursor) = &page.cursor {
            request = request.cursor(cursor.clone());
        }
        request
    }};
}
pub(crate) use paged;
