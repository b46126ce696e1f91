//! The fleet search: which builds you can see contain package P (at version V), in one
//! ecosystem. This is how a tenant answers "are we affected by this advisory?".

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use petrel_wire::Page;
use petrel_wire::builds::{DeployedFrom, FleetHit, FleetQuery};
use petrel_wire::page::PageQuery;
use sqlx::types::Json as DbJson;
use uuid::Uuid;

use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::extract::Query;
use crate::pagination::{keyset, page};
use crate::server::AppState;

const ECOSYSTEMS: [&str; 5] = ["debian", "freebsd", "opam", "cargo", "system"];

/// Builds containing a package, newest first, each with the live deployments made from it
/// (`deployed=true`: only those): which builds, and which running unikernels, are affected.
#[utoipa::path(
    tag = "builds",
    params(FleetQuery),
    responses((status = 200, description = "A page of builds with the package", body = Page<FleetHit>)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/fleet/packages")]
pub async fn search_fleet(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    Query(q): Query<FleetQuery>,
) -> Result<HttpResponse, ApiError> {
    if !ECOSYSTEMS.contains(&q.ecosystem.as_str()) {
        return Err(ApiError::field("ecosystem", format!("must be one of {}", ECOSYSTEMS.join(", "))));
    }
    if q.name.is_empty() || q.name.len() > 200 {
        return Err(ApiError::field("name", "must be 1 to 200 characters"));
    }
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let ks =
        keyset::<(Option<DateTime<Utc>>, Uuid)>(&PageQuery { limit: q.limit, cursor: q.cursor.clone() })?;
    let (after_at, after_id) = match ks.after {
        Some((at, id)) => (at, Some(id)),
        None => (None, None),
    };
    #[derive(sqlx::FromRow)]
    struct Row {
        build_id: Uuid,
        job_id: Uuid,
        job_name: String,
        platform: String,
        finished_at: Option<DateTime<Utc>>,
        ecosystem: String,
        name: String,
        version: String,
        deployments: DbJson<Vec<DeployedFrom>>,
    }
    // Deployments are never public: only those of the caller's tenants (all for administrators).
    const LIVE_DEPLOYMENTS: &str = "FROM deployments d WHERE d.build_id = b.id
        AND d.state IN ('pending', 'running', 'restarting') AND ($1::boolean OR d.tenant_id = ANY($2::uuid[]))";
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT b.id AS build_id, b.job_id, j.name AS job_name, b.platform, b.finished_at, p.ecosystem, p.name,
                p.version,
                COALESCE((SELECT json_agg(json_build_object('deployment_id', d.id, 'tenant_id', d.tenant_id,
                                                            'name', d.name, 'state', d.state) ORDER BY d.name)
                          {LIVE_DEPLOYMENTS}), '[]') AS deployments
           FROM build_packages p JOIN builds b ON b.id = p.build_id JOIN jobs j ON j.id = b.job_id
          WHERE {} AND p.ecosystem = $3 AND p.name = $4 AND ($5::text IS NULL OR p.version = $5)
            AND ($7::uuid IS NULL OR (COALESCE(b.finished_at, '-infinity'), b.id) < (COALESCE($6, '-infinity'), $7))
            AND (NOT $9 OR EXISTS (SELECT 1 {LIVE_DEPLOYMENTS}))
          ORDER BY COALESCE(b.finished_at, '-infinity') DESC, b.id DESC LIMIT $8",
        ReadScope::SQL
    ))
    .bind(scope.all())
    .bind(scope.tenants())
    .bind(&q.ecosystem)
    .bind(&q.name)
    .bind(&q.version)
    .bind(after_at)
    .bind(after_id)
    .bind(ks.fetch())
    .bind(q.deployed.unwrap_or(false))
    .fetch_all(&state.db)
    .await?;
    let hits: Vec<FleetHit> = rows
        .into_iter()
        .map(|r| FleetHit {
            build_id: r.build_id,
            job_id: r.job_id,
            job_name: r.job_name,
            platform: r.platform,
            finished_at: r.finished_at,
            ecosystem: r.ecosystem,
            name: r.name,
            version: r.version,
            deployments: r.deployments.0,
        })
        .collect();
    Ok(HttpResponse::Ok().json(page(hits, ks.limit, |h: &FleetHit| (h.finished_at, h.build_id))))
}
