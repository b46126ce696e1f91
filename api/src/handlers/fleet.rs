//! The fleet search: which builds you can see contain package P (at version V), in one
//! ecosystem. This is how a tenant answers "are we affected by this advisory?".

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use petrel_wire::Page;
use petrel_wire::builds::{FleetHit, FleetQuery};
use petrel_wire::page::PageQuery;
use uuid::Uuid;

use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::extract::Query;
use crate::pagination::{keyset, page};
use crate::server::AppState;

const ECOSYSTEMS: [&str; 5] = ["debian", "freebsd", "opam", "cargo", "system"];

/// Builds containing a package, newest first.
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
    type Row = (Uuid, Uuid, String, String, Option<DateTime<Utc>>, String, String, String);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT b.id, b.job_id, j.name, b.platform, b.finished_at, p.ecosystem, p.name, p.version
           FROM build_packages p JOIN builds b ON b.id = p.build_id JOIN jobs j ON j.id = b.job_id
          WHERE {} AND p.ecosystem = $3 AND p.name = $4 AND ($5::text IS NULL OR p.version = $5)
            AND ($7::uuid IS NULL OR (COALESCE(b.finished_at, '-infinity'), b.id) < (COALESCE($6, '-infinity'), $7))
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
    .fetch_all(&state.db)
    .await?;
    let hits: Vec<FleetHit> = rows
        .into_iter()
        .map(|(build_id, job_id, job_name, platform, finished_at, ecosystem, name, version)| FleetHit {
            build_id,
            job_id,
            job_name,
            platform,
            finished_at,
            ecosystem,
            name,
            version,
        })
        .collect();
    Ok(HttpResponse::Ok().json(page(hits, ks.limit, |h: &FleetHit| (h.finished_at, h.build_id))))
}
