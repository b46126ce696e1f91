//! The background work queue: rows in `background_tasks`, taken by any API replica with
//! `FOR UPDATE SKIP LOCKED` (so no task runs twice at once), woken by `NOTIFY petrel_tasks`.
//! A task's row stays locked while it runs: if the process dies, the transaction ends and the
//! task becomes due again. Failures are retried with exponential backoff.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::store::BlobStore;

const CHANNEL: &str = "petrel_tasks";
const MAX_ATTEMPTS: i32 = 8;
/// Binaries larger than this are not read into memory for a treemap.
const MAX_TREEMAP_INPUT: usize = 512 * 1024 * 1024;
/// Treemap entries smaller than this share of the binary fold into "other", as modulectomy
/// hides entries under 0.4 %; a finer cut keeps more detail for the SPA's zoom.
const TREEMAP_FOLD_PER_MILLE: u64 = 1;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Compute the dependency graph and the size treemap of a build.
    Visualize { build_id: Uuid },
}

impl Task {
    fn kind(&self) -> &'static str {
        match self {
            Task::Visualize { .. } => "visualize",
        }
    }
}

/// Queues a task (in the caller's transaction, so it exists exactly when the change commits).
pub async fn enqueue(conn: &mut PgConnection, task: &Task) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO background_tasks (kind, payload) VALUES ($1, $2)")
        .bind(task.kind())
        .bind(serde_json::to_value(task).unwrap_or_default())
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut *conn).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Failed(String),
}

/// Runs due tasks until none is left; returns how many ran.
pub async fn run_due(db: &PgPool, store: &BlobStore) -> Result<usize, TaskError> {
    let mut ran = 0;
    while run_one(db, store).await? {
        ran += 1;
    }
    Ok(ran)
}

async fn run_one(db: &PgPool, store: &BlobStore) -> Result<bool, TaskError> {
    let mut tx = db.begin().await?;
    let row: Option<(i64, serde_json::Value, i32)> = sqlx::query_as(
        "SELECT id, payload, attempts FROM background_tasks WHERE run_after <= now()
          ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, payload, attempts)) = row else { return Ok(false) };
    let outcome = match serde_json::from_value::<Task>(payload) {
        Ok(Task::Visualize { build_id }) => crate::visualize::visualize(db, store, build_id).await,
        Err(e) => Err(TaskError::Failed(format!("unknown task: {e}"))),
    };
    match outcome {
        Ok(()) => {
            sqlx::query("DELETE FROM background_tasks WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        Err(e) if attempts + 1 >= MAX_ATTEMPTS => {
            tracing::error!(task = id, error = %e, "background task failed for good");
            sqlx::query("DELETE FROM background_tasks WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        Err(e) => {
            tracing::warn!(task = id, error = %e, "background task failed; retrying later");
            sqlx::query(
                "UPDATE background_tasks SET attempts = attempts + 1, last_error = $2,
                        run_after = now() + make_interval(secs => least(3600, power(2, attempts + 1)))
                  WHERE id = $1",
            )
            .bind(id)
            .bind(e.to_string())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// Runs tasks as they are queued, until the process ends.
pub fn spawn_runner(db: PgPool, store: BlobStore) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut listener = match PgListener::connect_with(&db).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => Some(l),
                Err(e) => {
                    tracing::warn!("cannot LISTEN for tasks, polling instead: {e}");
                    None
                }
            },
            Err(e) => {
                tracing::warn!("cannot LISTEN for tasks, polling instead: {e}");
                None
            }
        };
        loop {
            if let Err(e) = run_due(&db, &store).await {
                tracing::warn!("background tasks: {e}");
            }
            // A notification wakes us at once; the timeout catches retries that become due.
            match listener.as_mut() {
                Some(l) => {
                    let _ = tokio::time::timeout(Duration::from_secs(30), l.recv()).await;
                }
                None => tokio::time::sleep(Duration::from_secs(5)).await,
            }
        }
    })
}

pub(crate) fn treemap_fold_size(total: u64) -> u64 {
    total * TREEMAP_FOLD_PER_MILLE / 1000
}

pub(crate) const fn max_treemap_input() -> usize {
    MAX_TREEMAP_INPUT
}
