//! Deployments' rules: quota admission (albatross' policies, nested), placement on an agent,
//! and what an agent is assigned.

use petrel_wire::FieldError;
use petrel_wire::deployments::{
    AgentBlockDevice, AssignedBlock, Assignment, NetAttachment, Quota, RestartPolicy,
};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::ApiError;

/// An agent is reachable while its heartbeats (every 10 s) keep coming.
pub const REACHABLE_SECS: f64 = 30.0;

/// What a deployment asks of its tenant's quotas.
pub struct Request<'a> {
    pub memory_mib: i64,
    pub cpus: &'a [i32],
    pub bridges: Vec<&'a str>,
    /// A deployment being changed (restarted with more memory) does not count twice.
    pub replacing: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct QuotaRow {
    path: String,
    unikernels: i32,
    memory_mib: i64,
    cpus: Vec<i32>,
    bridges: Vec<String>,
    used_unikernels: i64,
    used_memory: i64,
}

/// Admits a deployment in `tenant_id` against the quota of the tenant and of every ancestor
/// that has one (usage counts the whole subtree). Serialised per tenant tree (the root's row
/// is locked until the caller's transaction ends), so concurrent creates never overshoot.
#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "admit deployment (quotas)", db.system.name = "postgresql"))]
pub async fn admit(conn: &mut PgConnection, tenant_id: Uuid, request: &Request<'_>) -> Result<(), ApiError> {
    lock_tenant_tree(conn, tenant_id).await?;
    let quotas: Vec<QuotaRow> = sqlx::query_as(
        "WITH RECURSIVE chain(id, parent_id) AS (
             SELECT id, parent_id FROM tenants WHERE id = $1
             UNION ALL SELECT t.id, t.parent_id FROM tenants t JOIN chain c ON t.id = c.parent_id),
         sub(root, id) AS (
             SELECT q.tenant_id, q.tenant_id FROM quotas q WHERE q.tenant_id IN (SELECT id FROM chain)
             UNION ALL SELECT s.root, t.id FROM tenants t JOIN sub s ON t.parent_id = s.id)
         SELECT p.path, q.unikernels, q.memory_mib, q.cpus, q.bridges,
                count(d.id) AS used_unikernels, coalesce(sum(d.memory_mib), 0)::bigint AS used_memory
           FROM quotas q
           JOIN tenant_paths p ON p.id = q.tenant_id
           JOIN sub s ON s.root = q.tenant_id
           LEFT JOIN deployments d ON d.tenant_id = s.id AND d.state <> 'stopped'
                                  AND ($2::uuid IS NULL OR d.id <> $2)
          GROUP BY q.tenant_id, p.path, q.unikernels, q.memory_mib, q.cpus, q.bridges",
    )
    .bind(tenant_id)
    .bind(request.replacing)
    .fetch_all(&mut *conn)
    .await?;
    if quotas.is_empty() {
        return Err(no_quota());
    }
    let mut errors = Vec::new();
    for q in &quotas {
        if q.used_unikernels + 1 > i64::from(q.unikernels) {
            errors.push(FieldError::new(
                "name",
                format!(
                    "tenant {} allows {} unikernels and has {} already",
                    q.path, q.unikernels, q.used_unikernels
                ),
            ));
        }
        let memory = q.used_memory + request.memory_mib;
        if memory > q.memory_mib {
            errors.push(FieldError::new(
                "memory_mib",
                format!(
                    "exceeds tenant {}'s quota by {} MiB ({} MiB allowed, {} MiB in use)",
                    q.path,
                    memory - q.memory_mib,
                    q.memory_mib,
                    q.used_memory
                ),
            ));
        }
        for cpu in request.cpus {
            if !q.cpus.contains(cpu) {
                errors
                    .push(FieldError::new("cpus", format!("CPU {cpu} is not allowed in tenant {}", q.path)));
            }
        }
        for bridge in &request.bridges {
            if !q.bridges.iter().any(|b| b == bridge) {
                errors.push(FieldError::new(
                    "nets",
                    format!("bridge {bridge} is not allowed in tenant {}", q.path),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::QuotaExceeded {
            detail: "the deployment does not fit the tenant's quota".into(),
            errors,
        })
    }
}

fn no_quota() -> ApiError {
    ApiError::forbidden("no-quota", "the tenant has no quota for deployments; an administrator must set one")
}

/// Serialises admissions per tenant tree: the root tenant's row stays locked until the
/// caller's transaction ends.
async fn lock_tenant_tree(conn: &mut PgConnection, tenant_id: Uuid) -> Result<(), ApiError> {
    sqlx::query(
        "WITH RECURSIVE chain(id, parent_id) AS (
             SELECT id, parent_id FROM tenants WHERE id = $1
             UNION ALL SELECT t.id, t.parent_id FROM tenants t JOIN chain c ON t.id = c.parent_id)
         SELECT 1 FROM tenants WHERE id = (SELECT id FROM chain WHERE parent_id IS NULL) FOR UPDATE",
    )
    .bind(tenant_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Admits a new block device of `size_mib` against the `block_mib` quota of the tenant and of
/// every ancestor with a quota (block devices of the whole subtree count), atomically as
/// [`admit`].
pub async fn admit_block(conn: &mut PgConnection, tenant_id: Uuid, size_mib: i64) -> Result<(), ApiError> {
    lock_tenant_tree(conn, tenant_id).await?;
    let quotas: Vec<(String, i64, i64)> = sqlx::query_as(
        "WITH RECURSIVE chain(id, parent_id) AS (
             SELECT id, parent_id FROM tenants WHERE id = $1
             UNION ALL SELECT t.id, t.parent_id FROM tenants t JOIN chain c ON t.id = c.parent_id),
         sub(root, id) AS (
             SELECT q.tenant_id, q.tenant_id FROM quotas q WHERE q.tenant_id IN (SELECT id FROM chain)
             UNION ALL SELECT s.root, t.id FROM tenants t JOIN sub s ON t.parent_id = s.id)
         SELECT p.path, q.block_mib, coalesce(sum(b.size_mib), 0)::bigint
           FROM quotas q
           JOIN tenant_paths p ON p.id = q.tenant_id
           JOIN sub s ON s.root = q.tenant_id
           LEFT JOIN block_devices b ON b.tenant_id = s.id
          GROUP BY q.tenant_id, p.path, q.block_mib",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    if quotas.is_empty() {
        return Err(no_quota());
    }
    let errors: Vec<FieldError> = quotas
        .iter()
        .filter(|(_, allowed, used)| used + size_mib > *allowed)
        .map(|(path, allowed, used)| {
            FieldError::new(
                "size_mib",
                format!(
                    "exceeds tenant {path}'s block quota by {} MiB ({allowed} MiB allowed, {used} MiB in use)",
                    used + size_mib - allowed
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::QuotaExceeded {
            detail: "the block device does not fit the tenant's quota".into(),
            errors,
        })
    }
}

/// The agent to keep a new block device: the pinned one, or the reachable agent with the most
/// free block storage (its capacity less the block devices it keeps). Locked as [`place`].
pub async fn place_block(
    conn: &mut PgConnection,
    pinned: Option<Uuid>,
    size_mib: i64,
) -> Result<Uuid, ApiError> {
    let candidate: Option<(Uuid, i64)> = sqlx::query_as(
        "SELECT a.id,
                (a.inventory->>'block_mib')::bigint
                  - coalesce((SELECT sum(b.size_mib) FROM block_devices b WHERE b.agent_id = a.id), 0)::bigint AS free
           FROM agents a
          WHERE a.revoked_at IS NULL AND a.inventory IS NOT NULL
            AND a.last_seen_at > now() - make_interval(secs => $2)
            AND ($1::uuid IS NULL OR a.id = $1)
          ORDER BY free DESC, a.name
          LIMIT 1
          FOR UPDATE OF a",
    )
    .bind(pinned)
    .bind(REACHABLE_SECS)
    .fetch_optional(&mut *conn)
    .await?;
    match candidate {
        Some((id, free)) if free >= size_mib => Ok(id),
        Some((_, free)) => Err(ApiError::conflict(
            "no-capacity",
            format!("no reachable agent has {size_mib} MiB of block storage free (the best has {free} MiB)"),
        )),
        None => Err(ApiError::conflict(
            "no-capacity",
            if pinned.is_some() { "the agent is unknown or unreachable" } else { "no agent is reachable" }
                .to_string(),
        )),
    }
}

/// The agent to run a deployment: the pinned one, or the reachable agent with the bridges and
/// the most free memory. The agent's row stays locked until the caller's transaction ends.
pub async fn place(
    conn: &mut PgConnection,
    pinned: Option<Uuid>,
    memory_mib: i64,
    bridges: &[&str],
    replacing: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    let bridges: Vec<String> = bridges.iter().map(|b| b.to_string()).collect();
    let candidate: Option<(Uuid, i64)> = sqlx::query_as(
        "SELECT a.id,
                (a.inventory->>'memory_mib')::bigint
                  - coalesce((SELECT sum(d.memory_mib) FROM deployments d
                               WHERE d.agent_id = a.id AND d.state <> 'stopped'
                                 AND ($4::uuid IS NULL OR d.id <> $4)), 0)::bigint AS free
           FROM agents a
          WHERE a.revoked_at IS NULL AND a.inventory IS NOT NULL
            AND a.last_seen_at > now() - make_interval(secs => $5)
            AND ($1::uuid IS NULL OR a.id = $1)
            AND (a.inventory->'bridges') @> to_jsonb($2::text[])
          ORDER BY free DESC, a.name
          LIMIT 1
          FOR UPDATE OF a",
    )
    .bind(pinned)
    .bind(&bridges)
    .bind(memory_mib)
    .bind(replacing)
    .bind(REACHABLE_SECS)
    .fetch_optional(&mut *conn)
    .await?;
    match candidate {
        Some((id, free)) if free >= memory_mib => Ok(id),
        Some((_, free)) => Err(ApiError::conflict(
            "no-capacity",
            format!("no reachable agent has {memory_mib} MiB free (the best has {free} MiB)"),
        )),
        None if pinned.is_some() => Err(ApiError::conflict(
            "no-capacity",
            "the agent is unknown, unreachable, or lacks one of the bridges".to_string(),
        )),
        None => {
            Err(ApiError::conflict("no-capacity", format!("no reachable agent has the bridges {bridges:?}")))
        }
    }
}

/// A quota row's limits.
#[derive(sqlx::FromRow)]
pub struct QuotaLimits {
    pub unikernels: i32,
    pub memory_mib: i64,
    pub block_mib: i64,
    pub cpus: Vec<i32>,
    pub bridges: Vec<String>,
}

impl From<QuotaLimits> for Quota {
    fn from(q: QuotaLimits) -> Quota {
        Quota {
            unikernels: q.unikernels,
            memory_mib: q.memory_mib,
            block_mib: q.block_mib,
            cpus: q.cpus,
            bridges: q.bridges,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PathQuota {
    path: String,
    #[sqlx(flatten)]
    limits: QuotaLimits,
}

/// Checks a quota against the parent's effective quota (it must fit inside) and against the
/// sub-tenants' quotas (they must fit inside it).
pub async fn check_nesting(conn: &mut PgConnection, tenant_id: Uuid, quota: &Quota) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    // The nearest ancestor with a quota.
    let parent: Option<PathQuota> = sqlx::query_as(
        "WITH RECURSIVE chain(id, parent_id, depth) AS (
             SELECT parent_id, NULL::uuid, 1 FROM tenants WHERE id = $1 AND parent_id IS NOT NULL
             UNION ALL SELECT t.parent_id, NULL::uuid, c.depth + 1 FROM tenants t JOIN chain c ON t.id = c.id
               WHERE t.parent_id IS NOT NULL)
         SELECT p.path, q.unikernels, q.memory_mib, q.block_mib, q.cpus, q.bridges
           FROM chain c JOIN quotas q ON q.tenant_id = c.id JOIN tenant_paths p ON p.id = c.id
          ORDER BY c.depth LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(parent) = parent {
        fits("the parent", &parent.path, quota, &parent.limits.into(), &mut errors);
    }
    let children: Vec<PathQuota> = sqlx::query_as(
        "SELECT p.path, q.unikernels, q.memory_mib, q.block_mib, q.cpus, q.bridges
           FROM tenants t JOIN quotas q ON q.tenant_id = t.id JOIN tenant_paths p ON p.id = t.id
          WHERE t.parent_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    for child in children {
        fits("a sub-tenant", &child.path, &child.limits.into(), quota, &mut errors);
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::fields(errors)) }
}

fn fits(whose: &str, path: &str, inner: &Quota, outer: &Quota, errors: &mut Vec<FieldError>) {
    let (inner_is, outer_is) =
        if whose == "the parent" { ("this", "the parent's") } else { ("sub-tenant", "this") };
    if inner.unikernels > outer.unikernels {
        errors.push(FieldError::new("unikernels", format!("{inner_is} quota exceeds {outer_is} ({path})")));
    }
    if inner.memory_mib > outer.memory_mib {
        errors.push(FieldError::new("memory_mib", format!("{inner_is} quota exceeds {outer_is} ({path})")));
    }
    if inner.block_mib > outer.block_mib {
        errors.push(FieldError::new("block_mib", format!("{inner_is} quota exceeds {outer_is} ({path})")));
    }
    if inner.cpus.iter().any(|c| !outer.cpus.contains(c)) {
        errors.push(FieldError::new(
            "cpus",
            format!("{inner_is} quota allows CPUs {outer_is} does not ({path})"),
        ));
    }
    if inner.bridges.iter().any(|b| !outer.bridges.contains(b)) {
        errors.push(FieldError::new(
            "bridges",
            format!("{inner_is} quota allows bridges {outer_is} does not ({path})"),
        ));
    }
}

#[derive(sqlx::FromRow)]
struct AssignmentRow {
    id: Uuid,
    path: String,
    name: String,
    image_sha256: Vec<u8>,
    memory_mib: i32,
    cpus: Vec<i32>,
    args: Vec<String>,
    nets: Json<Vec<NetAttachment>>,
    restart: Json<RestartPolicy>,
    startup_priority: i32,
    revision: i64,
}

/// The agent's generation, everything it must run now, and the block devices it keeps.
#[tracing::instrument(level = "debug", name = "db", skip_all, fields(otel.kind = "client", otel.name = "SELECT assignments", db.system.name = "postgresql"))]
pub async fn assignments(
    conn: &mut PgConnection,
    agent_id: Uuid,
) -> Result<(i64, Vec<Assignment>, Vec<AgentBlockDevice>), sqlx::Error> {
    let generation: i64 = sqlx::query_scalar("SELECT generation FROM agents WHERE id = $1")
        .bind(agent_id)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<AssignmentRow> = sqlx::query_as(
        "SELECT d.id, p.path, d.name, d.image_sha256, d.memory_mib, d.cpus, d.args, d.nets, d.restart,
                d.startup_priority, d.revision
           FROM deployments d JOIN tenant_paths p ON p.id = d.tenant_id
          WHERE d.agent_id = $1 AND d.state <> 'stopped'
          ORDER BY d.startup_priority, d.created_at",
    )
    .bind(agent_id)
    .fetch_all(&mut *conn)
    .await?;
    let blocks: Vec<(Uuid, String, Uuid, i32)> = sqlx::query_as(
        "SELECT db.deployment_id, db.device, db.block_device_id, db.sector_size
           FROM deployment_blocks db JOIN deployments d ON d.id = db.deployment_id
          WHERE d.agent_id = $1 AND d.state <> 'stopped'
          ORDER BY db.deployment_id, db.device",
    )
    .bind(agent_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut blocks_of: std::collections::HashMap<Uuid, Vec<AssignedBlock>> = Default::default();
    for (deployment, device, block_device_id, sector_size) in blocks {
        blocks_of.entry(deployment).or_default().push(AssignedBlock { device, block_device_id, sector_size });
    }
    let devices: Vec<(Uuid, i32, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, size_mib, content_version, applied_version, export_requested, export_version
           FROM block_devices WHERE agent_id = $1 ORDER BY id",
    )
    .bind(agent_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok((
        generation,
        rows.into_iter()
            .map(|r| Assignment {
                deployment_id: r.id,
                name: format!("{}.{}", r.path.replace(':', "."), r.name),
                image_sha256: hex::encode(r.image_sha256),
                memory_mib: r.memory_mib,
                cpus: r.cpus,
                args: r.args,
                nets: r.nets.0,
                blocks: blocks_of.remove(&r.id).unwrap_or_default(),
                restart: r.restart.0,
                startup_priority: r.startup_priority,
                revision: r.revision,
            })
            .collect(),
        devices
            .into_iter()
            .map(|(id, size_mib, content_version, applied_version, export_requested, export_version)| {
                AgentBlockDevice {
                    id,
                    size_mib,
                    content_version,
                    applied_version,
                    export_requested,
                    export_version,
                }
            })
            .collect(),
    ))
}
