//! `petrel block ...`: tenants' block devices.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use super::{Ctx, Page, body, paged, tenant_or_only};
use crate::error::CliError;
use crate::generated::types;
use crate::output::Column;
use crate::transfer;

const BLOCK: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("SIZE MIB", "/size_mib"),
    ("AGENT", "/agent_id"),
    ("ATTACHED TO", "/attached_to"),
    ("UPLOAD PENDING", "/upload_pending"),
];
const BLOCK_DETAIL: &[Column] = &[
    ("id", "/id"),
    ("name", "/name"),
    ("size (MiB)", "/size_mib"),
    ("agent", "/agent_id"),
    ("attached to", "/attached_to"),
    ("upload pending", "/upload_pending"),
    ("message", "/message"),
    ("updated", "/updated_at"),
];

#[derive(Subcommand)]
pub enum Block {
    List {
        #[arg(long)]
        tenant: Option<Uuid>,
        #[command(flatten)]
        page: Page,
    },
    Show {
        id: Uuid,
    },
    /// A zeroed block device of SIZE MiB on an agent (counted against the block quota).
    Create {
        name: String,
        #[arg(long)]
        size_mib: i32,
        #[arg(long)]
        tenant: Option<Uuid>,
        /// Keep it on this agent.
        #[arg(long)]
        agent: Option<Uuid>,
    },
    Delete {
        id: Uuid,
    },
    /// Replace its contents with FILE (at most its size; the rest is zeroed) and wait until
    /// its agent wrote them.
    Upload {
        id: Uuid,
        file: PathBuf,
        /// Return once the API stored the file, before the agent wrote it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Copy its contents into FILE (SHA-256 verified).
    Download {
        id: Uuid,
        #[arg(long, short)]
        output: PathBuf,
    },
}

pub async fn run(ctx: &Ctx, command: Block) -> Result<(), CliError> {
    match command {
        Block::List { tenant, page } => {
            let tenant = tenant_or_only(ctx, tenant).await?;
            let list = paged!(ctx.api.list_block_devices().tenant_id(tenant), page).send().await?;
            ctx.out.list(&list.into_inner(), BLOCK);
        }
        Block::Show { id } => ctx
            .out
            .object(&ctx.api.get_block_device().block_device_id(id).send().await?.into_inner(), BLOCK_DETAIL),
        Block::Create { name, size_mib, tenant, agent } => {
            let tenant = tenant_or_only(ctx, tenant).await?;
            let request = body::<types::CreateBlockDevice>(
                json!({ "name": name, "size_mib": size_mib, "agent_id": agent }),
            )?;
            let created =
                ctx.api.create_block_device().tenant_id(tenant).body(request).send().await?.into_inner();
            ctx.out.done(
                &created,
                &format!("Created block device {} ({}), {size_mib} MiB", created.name, created.id),
            );
        }
        Block::Delete { id } => {
            ctx.api.delete_block_device().block_device_id(id).send().await?;
            ctx.out.done(&json!({ "deleted": id }), &format!("Deleted block device {id}"));
        }
        Block::Upload { id, file, no_wait } => {
            let (sha, size) = transfer::hash_file(&file).await?;
            let mut device = ctx
                .api
                .upload_block_device()
                .block_device_id(id)
                .x_petrel_sha256(&sha)
                .body(transfer::file_body(&file, size).await?)
                .send()
                .await?
                .into_inner();
            // The agent writes it next; a deployment can use the device once it did.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            while !no_wait && device.upload_pending {
                if tokio::time::Instant::now() > deadline {
                    return Err(CliError::Other(anyhow::anyhow!(
                        "the agent has not written the upload after 5 minutes; see `petrel block show {id}`"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                device = ctx.api.get_block_device().block_device_id(id).send().await?.into_inner();
            }
            if let Some(message) = device.message.as_deref().filter(|_| !no_wait) {
                return Err(CliError::Other(anyhow::anyhow!(
                    "the agent did not write the upload: {message}"
                )));
            }
            ctx.out.done(
                &device,
                &format!("{} ({size} bytes, SHA-256 {sha}) is in {}", file.display(), device.name),
            );
        }
        Block::Download { id, output } => {
            let response = ctx.api.download_block_device().block_device_id(id).send().await?;
            let header =
                |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let len = header("content-length").and_then(|v| v.parse().ok());
            let expected = header("x-petrel-sha256");
            let (sha, size) =
                transfer::download(response.into_inner().into_inner(), len, &output, expected.as_deref())
                    .await?;
            ctx.out.done(
                &json!({ "file": output, "sha256": sha, "size": size }),
                &format!("{} ({size} bytes, SHA-256 {sha} verified)", output.display()),
            );
        }
    }
    Ok(())
}
