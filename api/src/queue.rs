//! The build queue. A queued build is a row of `builds` with status `queued`, carrying the
//! recipe and limits it will run with; each platform is its own queue. Workers claim with
//! `FOR UPDATE SKIP LOCKED`, hold a lease renewed by heartbeats, and lose the build when the
//! lease lapses (the scheduler re-queues it, counting the attempt).

use std::time::Duration;

use chrono::{DateTime, Utc};
use petrel_wire::workers::{BuildLimits, Claim, Recipe};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::events;

/// One platform's outcome of asking for a build.
#[derive(Debug, Clone)]
pub struct Queued {
    pub platform: String,
    pub build_id: Uuid,
    /// False when a build of this job was queued for the platform already.
    pub new: bool,
}

/// The job's limits as a queued build stores them.
const LIMITS_JSON: &str = "jsonb_build_object('timeout_secs', j.timeout_secs, 'memory_mib', j.memory_mib, \
     'output_mib', j.output_mib, 'max_attempts', j.max_attempts)";

/// Queues a build of the job for each platform, unless one is queued already (then that one
/// is returned). The job must have a recipe. Runs in the caller's transaction.
#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "INSERT builds (enqueue)", db.system.name = "postgresql"))]
pub async fn enqueue_job(
    conn: &mut PgConnection,
    job_id: Uuid,
    platforms: &[String],
    requested_by: Option<Uuid>,
) -> Result<Vec<Queued>, sqlx::Error> {
    let new: Vec<Uuid> = sqlx::query_scalar(&format!(
        "INSERT INTO builds (id, tenant_id, job_id, platform, status, recipe, limits, source_date_epoch, requested_by)
         SELECT gen_random_uuid(), j.tenant_id, j.id, p, 'queued', j.recipe, {LIMITS_JSON}, j.source_date_epoch, $3
           FROM jobs j, unnest($2::text[]) p
          WHERE j.id = $1 AND j.recipe IS NOT NULL
         ON CONFLICT (job_id, platform) WHERE status = 'queued' AND rebuild_of IS NULL DO NOTHING
         RETURNING id"
    ))
    .bind(job_id)
    .bind(platforms)
    .bind(requested_by)
    .fetch_all(&mut *conn)
    .await?;
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT platform, id FROM builds
          WHERE job_id = $1 AND status = 'queued' AND rebuild_of IS NULL AND platform = ANY($2)
          ORDER BY platform",
    )
    .bind(job_id)
    .bind(platforms)
    .fetch_all(&mut *conn)
    .await?;
    if !new.is_empty() {
        events::work_queued(conn).await?;
    }
    Ok(rows
        .into_iter()
        .map(|(platform, build_id)| Queued { platform, new: new.contains(&build_id), build_id })
        .collect())
}

/// Queues a rebuild of a finished build: the same recipe, limits and epoch, on the same
/// platform. Returns the new build's id.
pub async fn enqueue_rebuild(
    conn: &mut PgConnection,
    original: Uuid,
    requested_by: Option<Uuid>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let id: Option<Uuid> = sqlx::query_scalar(&format!(
        "INSERT INTO builds (id, tenant_id, job_id, platform, status, recipe, limits, source_date_epoch,
                             rebuild_of, requested_by)
         SELECT gen_random_uuid(), b.tenant_id, b.job_id, b.platform, 'queued', b.recipe,
                coalesce(b.limits, {LIMITS_JSON}), coalesce(b.source_date_epoch, j.source_date_epoch), b.id, $2
           FROM builds b JOIN jobs j ON j.id = b.job_id
          WHERE b.id = $1 AND b.recipe IS NOT NULL
         RETURNING id"
    ))
    .bind(original)
    .bind(requested_by)
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_some() {
        events::work_queued(conn).await?;
    }
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: Uuid,
    /// Seconds since the build was enqueued.
    waited_secs: Option<f64>,
    job_id: Uuid,
    job_name: String,
    platform: String,
    attempt: i32,
    recipe: Option<Json<Recipe>>,
    limits: Option<Json<BuildLimits>>,
    source_date_epoch: Option<i64>,
    rebuild_of: Option<Uuid>,
    lease_expires_at: Option<DateTime<Utc>>,
}

/// Who claims.
pub struct Claimant<'a> {
    pub worker_id: Uuid,
    pub worker_name: &'a str,
    /// Tenant-private workers claim their tenant's (and sub-tenants') builds only.
    pub tenant_id: Option<Uuid>,
    pub lease: Duration,
}

/// Claims the oldest due build of the platform that this worker may run (or exactly `only`,
/// when given), if any.
#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "UPDATE builds (claim)", db.system.name = "postgresql"))]
pub async fn claim(
    conn: &mut PgConnection,
    claimant: &Claimant<'_>,
    platform: &str,
    only: Option<Uuid>,
) -> Result<Option<Claim>, sqlx::Error> {
    let lease = claimant.lease;
    let row: Option<ClaimRow> = sqlx::query_as(
        "WITH picked AS (
             SELECT q.id FROM builds q
              WHERE q.status = 'queued' AND q.platform = $3
                AND ($6::uuid IS NULL AND q.not_before <= now() OR q.id = $6)
                AND ($4::uuid IS NULL OR q.tenant_id IN (
                      WITH RECURSIVE sub(id) AS (
                          SELECT id FROM tenants WHERE id = $4
                          UNION ALL SELECT t.id FROM tenants t JOIN sub ON t.parent_id = sub.id)
                      SELECT id FROM sub))
              ORDER BY q.not_before, q.queued_at
              LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE builds b
            SET status = 'running', worker_id = $1, worker = $2, started_at = now(), attempt = b.attempt + 1,
                lease_expires_at = now() + make_interval(secs => $5)
           FROM picked
          WHERE b.id = picked.id
         RETURNING b.id, extract(epoch FROM now() - b.queued_at)::float8 AS waited_secs, b.job_id, (SELECT name FROM jobs WHERE id = b.job_id) AS job_name, b.platform,
                   b.attempt, b.recipe, b.limits, b.source_date_epoch, b.rebuild_of, b.lease_expires_at",
    )
    .bind(claimant.worker_id)
    .bind(claimant.worker_name)
    .bind(platform)
    .bind(claimant.tenant_id)
    .bind(lease.as_secs_f64())
    .bind(only)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let platform = row.platform.clone();
    crate::otel::build_claimed(&platform, Duration::from_secs_f64(row.waited_secs.unwrap_or(0.0).max(0.0)));
    // A new attempt starts with a clean console.
    sqlx::query("DELETE FROM build_console WHERE build_id = $1").bind(row.id).execute(&mut *conn).await?;
    events::build_changed(conn, row.id).await?;
    Ok(Some(Claim {
        build_id: row.id,
        job_id: row.job_id,
        job_name: row.job_name,
        platform: row.platform,
        attempt: row.attempt,
        recipe: crate::templates::render(row.recipe.map(|r| r.0).unwrap_or_default(), &platform),
        limits: row.limits.map(|l| l.0).unwrap_or_default(),
        source_date_epoch: row.source_date_epoch.unwrap_or(0),
        rebuild_of: row.rebuild_of,
        lease_expires_at: row.lease_expires_at.unwrap_or_else(Utc::now),
        lease_secs: lease.as_secs() as i32,
    }))
}

/// Renews the worker's lease on a build; `None` when it no longer holds it.
#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "UPDATE builds (renew lease)", db.system.name = "postgresql"))]
pub async fn renew(
    conn: &mut PgConnection,
    worker_id: Uuid,
    build_id: Uuid,
    lease: Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE builds SET lease_expires_at = now() + make_interval(secs => $3)
          WHERE id = $1 AND worker_id = $2 AND status = 'running'
          RETURNING lease_expires_at",
    )
    .bind(build_id)
    .bind(worker_id)
    .bind(lease.as_secs_f64())
    .fetch_optional(conn)
    .await
}

/// What the scheduler changed in one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub scheduled: u64,
    pub requeued: u64,
    pub failed: u64,
    pub timed_out: u64,
}

/// Builds whose lease lapsed (their worker is gone): queued again after a backoff, or failed
/// once they used up their attempts (or when a newer build of the job is queued already).
pub async fn reap_lapsed_leases(conn: &mut PgConnection) -> Result<(u64, u64), sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "WITH lapsed AS (
             SELECT b.id,
                    b.attempt >= coalesce((b.limits->>'max_attempts')::int, 3)
                    OR (b.rebuild_of IS NULL AND EXISTS (
                          SELECT 1 FROM builds o WHERE o.job_id = b.job_id AND o.platform = b.platform
                             AND o.status = 'queued' AND o.rebuild_of IS NULL)) AS give_up
               FROM builds b
              WHERE b.status = 'running' AND b.lease_expires_at < now()
              FOR UPDATE SKIP LOCKED)
         UPDATE builds b
            SET status = CASE WHEN l.give_up THEN 'failed' ELSE 'queued' END::build_status,
                result_kind = CASE WHEN l.give_up THEN 'message' END::build_result_kind,
                result_message = CASE WHEN l.give_up
                    THEN format('the worker was lost (attempt %s of %s)', b.attempt,
                                coalesce((b.limits->>'max_attempts')::int, 3)) END,
                finished_at = CASE WHEN l.give_up THEN now() END,
                started_at = CASE WHEN l.give_up THEN b.started_at END,
                -- The worker stays named: should its result arrive before another worker
                -- claims the build, it is still taken (nothing is lost to a short outage).
                lease_expires_at = NULL,
                not_before = now() + make_interval(secs => least(300, 2 ^ b.attempt))
           FROM lapsed l
          WHERE b.id = l.id
         RETURNING b.id, b.status::text",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (id, _) in &rows {
        events::build_changed(conn, *id).await?;
    }
    let requeued = rows.iter().filter(|(_, s)| s == "queued").count() as u64;
    Ok((requeued, rows.len() as u64 - requeued))
}

/// Running builds past their timeout (plus a grace for the worker's own report) are ended
/// here, so a stuck worker cannot hold a build forever.
pub async fn reap_timeouts(conn: &mut PgConnection, grace: Duration) -> Result<u64, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE builds
            SET status = 'timed_out', result_kind = 'message',
                result_message = format('timed out after %s s (no result from the worker)',
                                        coalesce((limits->>'timeout_secs')::int, 3600)),
                finished_at = now(), lease_expires_at = NULL
          WHERE status = 'running'
            AND started_at + make_interval(secs => coalesce((limits->>'timeout_secs')::int, 3600) + $1) < now()
         RETURNING id",
    )
    .bind(grace.as_secs_f64())
    .fetch_all(&mut *conn)
    .await?;
    for id in &ids {
        events::build_changed(conn, *id).await?;
    }
    Ok(ids.len() as u64)
}

/// Queues every job whose schedule is due, once per platform, and sets its next run.
pub async fn schedule_due(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let queued: Vec<Uuid> = sqlx::query_scalar(&format!(
        "WITH due AS (
             UPDATE jobs SET next_run_at = now() + CASE schedule WHEN 'hourly' THEN interval '1 hour'
                                                                 WHEN 'daily' THEN interval '1 day'
                                                                 ELSE interval '7 days' END
              WHERE next_run_at <= now() AND schedule <> 'never' AND recipe IS NOT NULL
             RETURNING id)
         INSERT INTO builds (id, tenant_id, job_id, platform, status, recipe, limits, source_date_epoch)
         SELECT gen_random_uuid(), j.tenant_id, j.id, p, 'queued', j.recipe, {LIMITS_JSON}, j.source_date_epoch
           FROM jobs j JOIN due ON due.id = j.id, unnest(j.platforms) p
         ON CONFLICT (job_id, platform) WHERE status = 'queued' AND rebuild_of IS NULL DO NOTHING
         RETURNING id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    Ok(queued.len() as u64)
}

/// Whether a build queued with a backoff became due since `since` (waiting claims must look).
pub async fn became_due(conn: &mut PgConnection, since: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM builds WHERE status = 'queued' AND not_before > $1 AND not_before <= now())",
    )
    .bind(since)
    .fetch_one(conn)
    .await
}
