//! `petrel deploy ...` and `petrel quota ...`.

use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use super::{Ctx, Page, body, paged, tenant_or_only};
use crate::error::CliError;
use crate::generated::types;
use crate::output::Column;

const DEPLOYMENT: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("STATE", "/state"),
    ("MEMORY MIB", "/memory_mib"),
    ("AGENT", "/agent_id"),
    ("RESTARTS", "/restarts"),
    ("IMAGE", "/image_sha256"),
];
const DEPLOYMENT_DETAIL: &[Column] = &[
    ("id", "/id"),
    ("name", "/name"),
    ("state", "/state"),
    ("exit code", "/exit_code"),
    ("message", "/message"),
    ("image", "/image_sha256"),
    ("build", "/build_id"),
    ("memory (MiB)", "/memory_mib"),
    ("cpus", "/cpus"),
    ("args", "/args"),
    ("nets", "/nets"),
    ("blocks", "/blocks"),
    ("restart", "/restart/kind"),
    ("restarts", "/restarts"),
    ("previous image", "/previous_image_sha256"),
    ("update available", "/update_available/image_sha256"),
    ("compare", "/update_available/compare"),
    ("priority", "/startup_priority"),
    ("agent", "/agent_id"),
    ("updated", "/updated_at"),
];

#[derive(Subcommand)]
pub enum Deploy {
    List {
        #[arg(long)]
        tenant: Option<Uuid>,
        #[command(flatten)]
        page: Page,
    },
    Show {
        id: Uuid,
    },
    /// Run a unikernel image (an artifact's SHA-256, e.g. a build's main binary).
    Create {
        name: String,
        #[arg(long)]
        tenant: Option<Uuid>,
        /// The image's SHA-256 (see `petrel build show`).
        #[arg(long)]
        image: String,
        #[arg(long, default_value_t = 32)]
        memory_mib: i32,
        /// A CPU id it may run on (repeat).
        #[arg(long = "cpu")]
        cpus: Vec<i32>,
        /// An argument for the unikernel (repeat).
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// DEVICE=BRIDGE: attach the manifest's network device to a host bridge (repeat).
        #[arg(long = "net", value_parser = super::key_value)]
        nets: Vec<(String, String)>,
        /// DEVICE=BLOCK[@SECTOR_SIZE]: back the manifest's block device with one of the tenant's
        /// block devices (repeat).
        #[arg(long = "block", value_parser = super::key_value)]
        blocks: Vec<(String, String)>,
        /// never, or on-failure.
        #[arg(long, default_value = "never")]
        restart: String,
        /// Restart on failure only after these exit codes (repeat).
        #[arg(long = "restart-on", requires = "restart")]
        restart_on: Vec<i32>,
        /// Pin it to this agent.
        #[arg(long)]
        agent: Option<Uuid>,
    },
    Destroy {
        id: Uuid,
    },
    /// Restart it, optionally with new arguments (replacing the old ones) or memory.
    Restart {
        id: Uuid,
        /// A new argument (repeat; replaces all of them).
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Remove every argument.
        #[arg(long, conflicts_with = "args")]
        no_args: bool,
        #[arg(long)]
        memory_mib: Option<i32>,
    },
    /// Move it to another image: the available update (a newer build of its job), or `--image`.
    Update {
        id: Uuid,
        #[arg(long)]
        image: Option<String>,
    },
    /// Return to the image it ran before its last update.
    Rollback {
        id: Uuid,
    },
    /// CPU time, memory and network counters of the running unikernel, latest and recent.
    Stats {
        id: Uuid,
    },
    /// The last console lines; `--follow` streams new ones.
    Console {
        id: Uuid,
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        count: Option<i64>,
    },
    /// State changes with exit codes.
    Events {
        id: Uuid,
        #[command(flatten)]
        page: Page,
    },
}

pub async fn run(ctx: &Ctx, command: Deploy) -> Result<(), CliError> {
    match command {
        Deploy::List { tenant, page } => {
            let tenant = tenant_or_only(ctx, tenant).await?;
            let list = paged!(ctx.api.list_deployments().tenant_id(tenant), page).send().await?;
            ctx.out.list(&list.into_inner(), DEPLOYMENT);
        }
        Deploy::Show { id } => ctx.out.object(
            &ctx.api.get_deployment().deployment_id(id).send().await?.into_inner(),
            DEPLOYMENT_DETAIL,
        ),
        Deploy::Create {
            name,
            tenant,
            image,
            memory_mib,
            cpus,
            args,
            nets,
            blocks,
            restart,
            restart_on,
            agent,
        } => {
            let tenant = tenant_or_only(ctx, tenant).await?;
            let restart = match restart.as_str() {
                "never" => json!({ "kind": "never" }),
                "on-failure" | "on_failure" => {
                    json!({ "kind": "on_failure", "exit_codes": (!restart_on.is_empty()).then_some(restart_on) })
                }
                other => {
                    return Err(CliError::Usage(format!("--restart {other:?}: use never or on-failure")));
                }
            };
            let nets: Vec<_> = nets
                .into_iter()
                .map(|(device, bridge)| json!({ "device": device, "bridge": bridge }))
                .collect();
            let blocks = blocks
                .into_iter()
                .map(|(device, block)| {
                    let (block, sector_size) = match block.split_once('@') {
                        Some((block, size)) => (
                            block.to_owned(),
                            Some(size.parse::<i32>().map_err(|_| {
                                CliError::Usage(format!(
                                    "--block {device}={block}@{size}: the sector size is a number"
                                ))
                            })?),
                        ),
                        None => (block, None),
                    };
                    Ok(json!({ "device": device, "block_device": block, "sector_size": sector_size }))
                })
                .collect::<Result<Vec<_>, CliError>>()?;
            let request = body::<types::CreateDeployment>(json!({
                "name": name, "image_sha256": image, "memory_mib": memory_mib, "cpus": cpus,
                "args": args, "nets": nets, "blocks": blocks, "restart": restart, "agent_id": agent,
            }))?;
            let created =
                ctx.api.create_deployment().tenant_id(tenant).body(request).send().await?.into_inner();
            ctx.out.done(
                &created,
                &format!("Created deployment {} ({}), {}", created.name, created.id, created.state),
            );
        }
        Deploy::Destroy { id } => {
            ctx.api.destroy_deployment().deployment_id(id).send().await?;
            ctx.out.done(&json!({ "destroyed": id }), &format!("Destroying deployment {id}"));
        }
        Deploy::Restart { id, args, no_args, memory_mib } => {
            let args = if no_args { Some(Vec::new()) } else { (!args.is_empty()).then_some(args) };
            let request =
                body::<types::RestartDeployment>(json!({ "args": args, "memory_mib": memory_mib }))?;
            let deployment =
                ctx.api.restart_deployment().deployment_id(id).body(request).send().await?.into_inner();
            ctx.out.done(&deployment, &format!("Restarting {}", deployment.name));
        }
        Deploy::Update { id, image } => {
            let request = body::<types::UpdateDeployment>(json!({ "image_sha256": image }))?;
            let deployment =
                ctx.api.update_deployment().deployment_id(id).body(request).send().await?.into_inner();
            ctx.out.done(
                &deployment,
                &format!(
                    "Updating {} to {} (was {})",
                    deployment.name,
                    deployment.image_sha256,
                    deployment.previous_image_sha256.as_deref().unwrap_or("-")
                ),
            );
        }
        Deploy::Rollback { id } => {
            let deployment = ctx.api.rollback_deployment().deployment_id(id).send().await?.into_inner();
            ctx.out.done(
                &deployment,
                &format!("Rolling {} back to {}", deployment.name, deployment.image_sha256),
            );
        }
        Deploy::Stats { id } => {
            let stats = ctx.api.get_stats().deployment_id(id).send().await?.into_inner();
            if ctx.out.json {
                ctx.out.object(&stats, &[]);
            } else {
                ctx.out.list(
                    &stats.history,
                    &[
                        ("AT", "/at"),
                        ("UPTIME MS", "/uptime_ms"),
                        ("CPU USER MS", "/cpu_user_ms"),
                        ("CPU SYS MS", "/cpu_system_ms"),
                        ("RSS KIB", "/rss_kib"),
                        ("RX BYTES", "/nets/0/rx_bytes"),
                        ("TX BYTES", "/nets/0/tx_bytes"),
                    ],
                );
            }
        }
        Deploy::Console { id, follow, count } => {
            // The last `count` lines (all kept ones by default), then, following, what comes.
            let mut request = ctx.api.get_deployment_console().deployment_id(id);
            if let Some(count) = count {
                request = request.count(count);
            }
            let lines = request.send().await?.into_inner();
            for line in &lines {
                super::builds::print_line(ctx, &serde_json::to_value(line).expect("serializes"));
            }
            if !follow {
                return Ok(());
            }
            let after = lines.last().map(|l| l.number).unwrap_or(-1);
            let stream = ctx
                .api
                .stream_deployment_console()
                .deployment_id(id)
                .after(after)
                .follow(true)
                .send()
                .await?;
            super::builds::follow_events(ctx, stream.into_inner().into_inner()).await?;
        }
        Deploy::Events { id, page } => {
            let events = paged!(ctx.api.list_events().deployment_id(id), page).send().await?;
            ctx.out.list(
                &events.into_inner(),
                &[("AT", "/at"), ("STATE", "/state"), ("EXIT", "/exit_code"), ("MESSAGE", "/message")],
            );
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum Quota {
    /// A tenant's limits and what its subtree uses.
    Show {
        #[arg(long)]
        tenant: Option<Uuid>,
    },
    /// Set a tenant's limits (administrators, or the parent tenant's owners).
    Set {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        unikernels: i32,
        #[arg(long)]
        memory_mib: i64,
        #[arg(long, default_value_t = 0)]
        block_mib: i64,
        /// An allowed CPU id (repeat).
        #[arg(long = "cpu")]
        cpus: Vec<i32>,
        /// An allowed bridge (repeat).
        #[arg(long = "bridge")]
        bridges: Vec<String>,
    },
}

pub async fn quota(ctx: &Ctx, command: Quota) -> Result<(), CliError> {
    match command {
        Quota::Show { tenant } => {
            let tenant = tenant_or_only(ctx, tenant).await?;
            let usage = ctx.api.get_quota().tenant_id(tenant).send().await?.into_inner();
            ctx.out.object(
                &usage,
                &[
                    ("unikernels", "/unikernels"),
                    ("  limit", "/quota/unikernels"),
                    ("memory (MiB)", "/memory_mib"),
                    ("  limit", "/quota/memory_mib"),
                    ("block limit (MiB)", "/quota/block_mib"),
                    ("cpus", "/quota/cpus"),
                    ("bridges", "/quota/bridges"),
                ],
            );
        }
        Quota::Set { tenant, unikernels, memory_mib, block_mib, cpus, bridges } => {
            let request = body::<types::Quota>(json!({
                "unikernels": unikernels, "memory_mib": memory_mib, "block_mib": block_mib,
                "cpus": cpus, "bridges": bridges,
            }))?;
            let quota = ctx.api.set_quota().tenant_id(tenant).body(request).send().await?.into_inner();
            ctx.out.done(&quota, &format!("Quota of {tenant} set"));
        }
    }
    Ok(())
}
