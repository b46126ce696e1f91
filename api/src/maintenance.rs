//! Clean-up that keeps the store honest: expired uploads are aborted, and blobs that no build
//! and no open upload references are deleted from the store and the database.
//!
//! It runs periodically in every API process; a PostgreSQL advisory lock lets one replica at a
//! time do it, so two replicas never race on the same blob.

use std::time::Duration;

use sqlx::PgPool;

use crate::store::BlobStore;

const GC_LOCK: i64 = 0x7065_7472_656c_0003;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub uploads_expired: u64,
    pub blobs_deleted: u64,
    /// False when another replica held the lock.
    pub ran: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// One clean-up pass. Blobs younger than `grace` are kept: an upload may be about to
/// reference them.
pub async fn collect_garbage(db: &PgPool, store: &BlobStore, grace: Duration) -> Result<GcReport, GcError> {
    let mut conn = db.acquire().await?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(GC_LOCK).fetch_one(&mut *conn).await?;
    if !locked {
        return Ok(GcReport::default());
    }
    let result = pass(db, store, grace).await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(GC_LOCK).execute(&mut *conn).await?;
    result
}

async fn pass(db: &PgPool, store: &BlobStore, grace: Duration) -> Result<GcReport, GcError> {
    let mut report = GcReport { ran: true, ..Default::default() };
    let expired = sqlx::query(
        "WITH gone AS (UPDATE uploads SET state = 'aborted' WHERE state = 'open' AND expires_at < now() RETURNING id)
         DELETE FROM upload_artifacts WHERE upload_id IN (SELECT id FROM gone)",
    )
    .execute(db)
    .await?;
    report.uploads_expired = expired.rows_affected();
    let orphans: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT sha256 FROM blobs bl
          WHERE bl.created_at < now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT 1 FROM build_artifacts a WHERE a.sha256 = bl.sha256)
            AND NOT EXISTS (SELECT 1 FROM upload_artifacts u WHERE u.sha256 = bl.sha256)
          LIMIT 10000",
    )
    .bind(grace.as_secs_f64())
    .fetch_all(db)
    .await?;
    for sha in orphans {
        // Delete the row first, re-checking under the row lock that nothing references it now;
        // then the object. A crash in between leaves an object without a row, which a later
        // upload of the same content simply overwrites.
        let mut tx = db.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM blobs bl WHERE sha256 = $1
               AND NOT EXISTS (SELECT 1 FROM build_artifacts a WHERE a.sha256 = bl.sha256)
               AND NOT EXISTS (SELECT 1 FROM upload_artifacts u WHERE u.sha256 = bl.sha256)",
        )
        .bind(&sha)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 1 {
            store.delete(&sha).await?;
            report.blobs_deleted += 1;
        }
        tx.commit().await?;
    }
    Ok(report)
}

/// Runs [`collect_garbage`] every `every` until the process ends.
pub fn spawn_periodic(db: PgPool, store: BlobStore, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match collect_garbage(&db, &store, Duration::from_secs(3600)).await {
                Ok(r) if r.uploads_expired + r.blobs_deleted > 0 => {
                    tracing::info!(
                        uploads_expired = r.uploads_expired,
                        blobs_deleted = r.blobs_deleted,
                        "clean-up"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("clean-up failed: {e}"),
            }
        }
    })
}
