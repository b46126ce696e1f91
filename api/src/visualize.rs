//! Visualizations of a build, computed once per input and shared by every build with the same
//! input: the dependency graph (from `opam-switch` or `Cargo.lock`) and the size treemap of the
//! main binary (with its `.debug` file when there is one).

use petrel_wire::graph::DependencyGraph;
use petrel_wire::treemap::TREEMAP_VERSION;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::BlobStore;
use crate::tasks::TaskError;

/// Bump when the graph's computation changes, so stored graphs are recomputed.
pub const GRAPH_VERSION: i32 = 1;

/// Which stored visualization belongs to a build: (kind, input SHA-256, version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisualizationKey {
    pub kind: &'static str,
    pub input: Vec<u8>,
    pub version: i32,
}

struct BuildFiles {
    job_name: String,
    main_binary: Option<String>,
    /// (path, sha256, stored)
    artifacts: Vec<(String, Vec<u8>, bool)>,
}

async fn build_files(db: &PgPool, build_id: Uuid) -> Result<Option<BuildFiles>, sqlx::Error> {
    let head: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT j.name, b.main_binary FROM builds b JOIN jobs j ON j.id = b.job_id WHERE b.id = $1",
    )
    .bind(build_id)
    .fetch_optional(db)
    .await?;
    let Some((job_name, main_binary)) = head else { return Ok(None) };
    let artifacts = sqlx::query_as(
        "SELECT a.path, a.sha256, bl.stored FROM build_artifacts a JOIN blobs bl ON bl.sha256 = a.sha256
          WHERE a.build_id = $1 ORDER BY a.path",
    )
    .bind(build_id)
    .fetch_all(db)
    .await?;
    Ok(Some(BuildFiles { job_name, main_binary, artifacts }))
}

impl BuildFiles {
    fn find(&self, path: &str) -> Option<&(String, Vec<u8>, bool)> {
        self.artifacts.iter().find(|(p, _, stored)| p == path && *stored)
    }

    /// The graph's source file: `opam-switch`, else `Cargo.lock`.
    fn graph_source(&self) -> Option<&(String, Vec<u8>, bool)> {
        self.find("opam-switch").or_else(|| self.find("Cargo.lock"))
    }

    /// `bin/x.hvt` pairs with a debug file named `x.hvt.debug` or `x.debug` anywhere in the build.
    fn debug_file(&self) -> Option<&(String, Vec<u8>, bool)> {
        let main = self.main_binary.as_deref()?;
        let name = main.rsplit('/').next()?;
        let stem = name.split('.').next().unwrap_or(name);
        self.artifacts.iter().find(|(p, _, stored)| {
            let file = p.rsplit('/').next().unwrap_or(p);
            *stored && (file == format!("{name}.debug") || file == format!("{stem}.debug"))
        })
    }

    fn graph_key(&self) -> Option<VisualizationKey> {
        self.graph_source().map(|(_, sha, _)| VisualizationKey {
            kind: "dependencies",
            input: sha.clone(),
            version: GRAPH_VERSION,
        })
    }

    /// Keyed by the debug file when there is one (it determines the breakdown), else the binary.
    fn treemap_key(&self) -> Option<VisualizationKey> {
        let main = self.find(self.main_binary.as_deref()?)?;
        let input = self.debug_file().unwrap_or(main);
        Some(VisualizationKey { kind: "treemap", input: input.1.clone(), version: TREEMAP_VERSION as i32 })
    }
}

async fn stored(db: &PgPool, key: &VisualizationKey) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT data FROM visualizations WHERE kind = $1 AND input_sha256 = $2 AND version = $3",
    )
    .bind(key.kind)
    .bind(&key.input)
    .bind(key.version)
    .fetch_optional(db)
    .await
}

async fn save(db: &PgPool, key: &VisualizationKey, data: serde_json::Value) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO visualizations (kind, input_sha256, version, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(key.kind)
    .bind(&key.input)
    .bind(key.version)
    .bind(data)
    .execute(db)
    .await?;
    Ok(())
}

/// The background task: computes what is missing for the build.
#[tracing::instrument(name = "task", skip_all, fields(otel.name = "visualize build", petrel.build_id = %build_id))]
pub async fn visualize(db: &PgPool, store: &BlobStore, build_id: Uuid) -> Result<(), TaskError> {
    let Some(files) = build_files(db, build_id).await? else { return Ok(()) };
    let read = |sha: Vec<u8>| async move {
        store
            .read_all(&sha, crate::tasks::max_treemap_input())
            .await
            .map_err(|e| TaskError::Failed(e.to_string()))
    };
    if let Some(key) = files.graph_key()
        && stored(db, &key).await?.is_none()
    {
        let (path, sha, _) = files.graph_source().cloned().unwrap_or_default();
        let bytes = read(sha).await?;
        let graph = graph_of(&path, &bytes, &files.job_name);
        // A file that does not parse gets no graph; that is not worth retrying.
        match graph {
            Ok(graph) => save(db, &key, serde_json::to_value(graph).unwrap_or_default()).await?,
            Err(e) => tracing::info!(%build_id, "no dependency graph: {e}"),
        }
    }
    if let Some(key) = files.treemap_key()
        && stored(db, &key).await?.is_none()
    {
        let main = files.find(files.main_binary.as_deref().unwrap_or_default()).cloned().unwrap_or_default();
        let binary = read(main.1).await?;
        let debug = match files.debug_file() {
            Some((_, sha, _)) => Some(read(sha.clone()).await?),
            None => None,
        };
        let computed =
            tokio::task::spawn_blocking(move || petrel_inputs::treemap::treemap(&binary, debug.as_deref()))
                .await
                .map_err(|e| TaskError::Failed(e.to_string()))?;
        match computed {
            Ok(mut treemap) => {
                treemap.root = treemap.root.fold_small(crate::tasks::treemap_fold_size(treemap.root.size));
                save(db, &key, serde_json::to_value(treemap).unwrap_or_default()).await?;
            }
            Err(e) => tracing::info!(%build_id, "no treemap: {e}"),
        }
    }
    Ok(())
}

fn graph_of(path: &str, bytes: &[u8], job_name: &str) -> Result<DependencyGraph, String> {
    if path == "opam-switch" {
        let export = petrel_inputs::opam::parse_switch_export(bytes).map_err(|e| e.to_string())?;
        petrel_inputs::graph::opam_dependency_graph(&export, None).map_err(|e| e.to_string())
    } else {
        let lock = petrel_inputs::cargo_lock::parse_cargo_lock(bytes).map_err(|e| e.to_string())?;
        let root = lock.local_packages().any(|p| p.name == job_name).then_some(job_name);
        petrel_inputs::graph::cargo_dependency_graph(&lock, root).map_err(|e| e.to_string())
    }
}

/// What a build's visualization endpoint answers.
pub enum Lookup {
    Ready(serde_json::Value),
    /// Queued or running.
    Pending,
    /// The build has nothing to draw it from.
    NotApplicable,
}

pub async fn lookup(db: &PgPool, build_id: Uuid, kind: &str) -> Result<Lookup, sqlx::Error> {
    let Some(files) = build_files(db, build_id).await? else { return Ok(Lookup::NotApplicable) };
    let key = if kind == "treemap" { files.treemap_key() } else { files.graph_key() };
    let Some(key) = key else { return Ok(Lookup::NotApplicable) };
    // The task first, then the result: a task that finishes in between is then seen as done
    // (its result stored), never as "nothing to draw".
    let pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM background_tasks WHERE kind = 'visualize' AND payload->>'build_id' = $1)",
    )
    .bind(build_id.to_string())
    .fetch_one(db)
    .await?;
    if let Some(data) = stored(db, &key).await? {
        return Ok(Lookup::Ready(data));
    }
    Ok(if pending { Lookup::Pending } else { Lookup::NotApplicable })
}
