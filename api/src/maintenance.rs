//! Clean-up that keeps the store honest: expired uploads are aborted; blobs that no build, no
//! open upload and no block device references are deleted from the store and the database; and each job's retention
//! policy expires old builds, whose contents are deleted while their metadata and hashes stay
//! (so a hash look-up still answers, with "artifact expired").
//!
//! It runs periodically in every API process; a PostgreSQL advisory lock lets one replica at a
//! time do it, so two replicas never race on the same blob.

use std::time::Duration;

use sqlx::PgPool;

use crate::store::BlobStore;

const GC_LOCK: i64 = 0x7065_7472_656c_0003;

/// No live build and no open upload uses the blob `bl`.
const ONLY_EXPIRED_USE: &str =
    "NOT EXISTS (SELECT 1 FROM build_artifacts a JOIN builds b ON b.id = a.build_id
                         WHERE a.sha256 = bl.sha256 AND NOT b.expired)
            AND NOT EXISTS (SELECT 1 FROM upload_artifacts u WHERE u.sha256 = bl.sha256)
            AND NOT EXISTS (SELECT 1 FROM block_devices d
                             WHERE d.content_sha256 = bl.sha256 OR d.export_sha256 = bl.sha256)";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub uploads_expired: u64,
    pub blobs_deleted: u64,
    /// Builds whose contents retention released.
    pub builds_expired: u64,
    /// Blobs whose contents were deleted because only expired builds used them.
    pub blobs_expired: u64,
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
#[tracing::instrument(name = "task", skip_all, fields(otel.name = "clean-up and retention"))]
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
    // Staging files of uploads whose connection died long ago (a live one writes as it goes).
    let staging = store.staging.clone();
    let _ = tokio::task::spawn_blocking(move || {
        crate::store::remove_abandoned(&staging, Duration::from_secs(3600))
    })
    .await;
    let expired = sqlx::query(
        "WITH gone AS (UPDATE uploads SET state = 'aborted' WHERE state = 'open' AND expires_at < now() RETURNING id)
         DELETE FROM upload_artifacts WHERE upload_id IN (SELECT id FROM gone)",
    )
    .execute(db)
    .await?;
    report.uploads_expired = expired.rows_affected();
    report.builds_expired = sqlx::query(
        "UPDATE builds SET expired = true WHERE id IN (
           SELECT r.id FROM (
             SELECT b.id, b.status, b.finished_at, j.keep_last, j.keep_days,
                    row_number() OVER (PARTITION BY b.job_id, b.platform, b.status = 'succeeded'
                                       ORDER BY b.finished_at DESC NULLS LAST, b.id DESC) AS rank
               FROM builds b JOIN jobs j ON j.id = b.job_id
              WHERE (j.keep_last IS NOT NULL OR j.keep_days IS NOT NULL)
                AND NOT b.expired AND b.status NOT IN ('queued', 'running')) r
            WHERE NOT ((r.keep_last IS NOT NULL AND r.status = 'succeeded' AND r.rank <= r.keep_last)
                    OR (r.keep_days IS NOT NULL AND r.finished_at > now() - make_interval(days => r.keep_days))))",
    )
    .execute(db)
    .await?
    .rows_affected();
    let released: Vec<Vec<u8>> = sqlx::query_scalar(&format!(
        "SELECT bl.sha256 FROM blobs bl WHERE bl.stored
            AND EXISTS (SELECT 1 FROM build_artifacts a JOIN builds b ON b.id = a.build_id
                         WHERE a.sha256 = bl.sha256 AND b.expired)
            AND {ONLY_EXPIRED_USE} LIMIT 10000"
    ))
    .fetch_all(db)
    .await?;
    for sha in released {
        let mut tx = db.begin().await?;
        let updated = sqlx::query(&format!(
            "UPDATE blobs bl SET stored = false WHERE sha256 = $1 AND stored AND {ONLY_EXPIRED_USE}"
        ))
        .bind(&sha)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if updated == 1 {
            store.delete(&sha).await?;
            report.blobs_expired += 1;
        }
    }
    let orphans: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT sha256 FROM blobs bl
          WHERE bl.created_at < now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT 1 FROM build_artifacts a WHERE a.sha256 = bl.sha256)
            AND NOT EXISTS (SELECT 1 FROM upload_artifacts u WHERE u.sha256 = bl.sha256)
            AND NOT EXISTS (SELECT 1 FROM block_devices d
                             WHERE d.content_sha256 = bl.sha256 OR d.export_sha256 = bl.sha256)
          LIMIT 10000",
    )
    .bind(grace.as_secs_f64())
    .fetch_all(db)
    .await?;
    for sha in orphans {
        // Delete the row first, re-checking under the row lock that nothing references it now;
        // then the object; then commit. A crash before the commit leaves the row (still
        // unreferenced, so the next pass deletes it) without its object, which an upload of the
        // same content meanwhile puts back (`store_blob` checks that the object exists).
        let mut tx = db.begin().await?;
        // The grace is checked again: `store_blob` refreshes `created_at` when it claims a
        // blob, which must win over a pass that listed the blob just before.
        let deleted = sqlx::query(
            "DELETE FROM blobs bl WHERE sha256 = $1
               AND bl.created_at < now() - make_interval(secs => $2)
               AND NOT EXISTS (SELECT 1 FROM build_artifacts a WHERE a.sha256 = bl.sha256)
               AND NOT EXISTS (SELECT 1 FROM upload_artifacts u WHERE u.sha256 = bl.sha256)
               AND NOT EXISTS (SELECT 1 FROM block_devices d
                                WHERE d.content_sha256 = bl.sha256 OR d.export_sha256 = bl.sha256)",
        )
        .bind(&sha)
        .bind(grace.as_secs_f64())
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
                Ok(r) if r.uploads_expired + r.blobs_deleted + r.builds_expired + r.blobs_expired > 0 => {
                    tracing::info!(
                        uploads_expired = r.uploads_expired,
                        blobs_deleted = r.blobs_deleted,
                        builds_expired = r.builds_expired,
                        blobs_expired = r.blobs_expired,
                        "clean-up"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("clean-up failed: {e}"),
            }
        }
    })
}
