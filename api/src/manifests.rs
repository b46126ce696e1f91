//! The devices a solo5 image's manifest declares, read once per image with the tender's own
//! parser and kept by SHA-256 (`image_manifests`): deployments are checked against them when
//! created or updated (albatross refuses a mismatch at create, A5), and an update is offered
//! only to an image that declares the same devices.

use petrel_hypervisor::DeviceType;

use crate::error::ApiError;
use crate::server::AppState;

/// Larger blobs are not read for their manifest (unikernels are a few MiB).
const MAX_IMAGE: usize = 256 * 1024 * 1024;

/// The net and block device names an image declares, each sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    pub nets: Vec<String>,
    pub blocks: Vec<String>,
}

impl Devices {
    /// What a deployment attaches.
    pub fn requested<'a>(
        nets: impl Iterator<Item = &'a str>,
        blocks: impl Iterator<Item = &'a str>,
    ) -> Devices {
        Devices { nets: sorted(nets), blocks: sorted(blocks) }
    }

    /// Field errors naming what differs from `requested`, as albatross words it.
    pub fn mismatch(&self, requested: &Devices) -> Vec<petrel_wire::FieldError> {
        let mut errors = Vec::new();
        let list = |names: &[String]| format!("[{}]", names.join(", "));
        if self.nets != requested.nets {
            errors.push(petrel_wire::FieldError::new(
                "nets",
                format!(
                    "the image's manifest declares net devices {} but the deployment attaches {}",
                    list(&self.nets),
                    list(&requested.nets)
                ),
            ));
        }
        if self.blocks != requested.blocks {
            errors.push(petrel_wire::FieldError::new(
                "blocks",
                format!(
                    "the image's manifest declares block devices {} but the deployment attaches {}",
                    list(&self.blocks),
                    list(&requested.blocks)
                ),
            ));
        }
        errors
    }
}

/// Device names in the order the comparisons use.
fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = names.map(str::to_owned).collect();
    v.sort();
    v
}

/// The image's devices, read from its blob the first time. None when it is not a solo5 hvt
/// image (or too large to be one): only the agent can say more then.
pub async fn devices(state: &AppState, sha256: &[u8]) -> Result<Option<Devices>, ApiError> {
    let known: Option<(bool, Vec<String>, Vec<String>)> =
        sqlx::query_as("SELECT solo5, nets, blocks FROM image_manifests WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&state.db)
            .await?;
    if let Some((solo5, nets, blocks)) = known {
        return Ok(solo5.then_some(Devices { nets, blocks }));
    }
    let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE sha256 = $1 AND stored")
        .bind(sha256)
        .fetch_optional(&state.db)
        .await?;
    let Some(size) = size.filter(|s| *s as usize <= MAX_IMAGE) else { return Ok(None) };
    let bytes =
        state.store.read_all(sha256, size as usize).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let devices = tokio::task::spawn_blocking(move || {
        let info = petrel_hypervisor::inspect(&bytes).ok()?;
        let names = |kind| sorted(info.devices.iter().filter(|d| d.kind == kind).map(|d| d.name.as_str()));
        Some(Devices { nets: names(DeviceType::Net), blocks: names(DeviceType::Block) })
    })
    .await
    .map_err(ApiError::internal)?;
    let (nets, blocks) = devices.as_ref().map(|d| (d.nets.clone(), d.blocks.clone())).unwrap_or_default();
    sqlx::query(
        "INSERT INTO image_manifests (sha256, solo5, nets, blocks) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(sha256)
    .bind(devices.is_some())
    .bind(&nets)
    .bind(&blocks)
    .execute(&state.db)
    .await?;
    Ok(devices)
}

/// Reads the manifest of a new build's main binary, so that deployments of older builds of
/// its job can tell whether it is an update for them. Failures are only logged: the build is
/// in already, and the manifest is read again when someone deploys it.
pub async fn read_for_build(state: &AppState, build_id: uuid::Uuid) {
    let main: Result<Option<Vec<u8>>, sqlx::Error> = sqlx::query_scalar(
        "SELECT a.sha256 FROM builds b JOIN build_artifacts a ON a.build_id = b.id AND a.path = b.main_binary
          WHERE b.id = $1",
    )
    .bind(build_id)
    .fetch_optional(&state.db)
    .await;
    let result = match main {
        Ok(Some(sha)) => devices(state, &sha).await.map(drop),
        Ok(None) => Ok(()),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        tracing::warn!(build = %build_id, "reading the main binary's manifest: {e}");
    }
}
