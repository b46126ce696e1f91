//! Reading the audit log.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use petrel_wire::Page;
use petrel_wire::audit::AuditEvent;
use petrel_wire::identity::Role;
use petrel_wire::page::PageQuery;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::pagination::{keyset, page};
use crate::server::AppState;

type AuditRow = (
    i64,
    DateTime<Utc>,
    Option<Uuid>,
    Option<Uuid>,
    Option<String>,
    Option<Uuid>,
    String,
    Option<String>,
    Option<String>,
    serde_json::Value,
);

fn event(r: AuditRow) -> AuditEvent {
    let (
        id,
        at,
        tenant_id,
        actor_user_id,
        actor_username,
        actor_token_id,
        action,
        target,
        source_ip,
        details,
    ) = r;
    AuditEvent {
        id,
        at,
        tenant_id,
        actor_user_id,
        actor_username,
        actor_token_id,
        action,
        target,
        source_ip,
        details,
    }
}

const AUDIT_COLUMNS: &str =
    "id, at, tenant_id, actor_user_id, actor_username, actor_token_id, action, target, source_ip, details";

/// The tenant's audit log, newest first (owners).
#[utoipa::path(
    tag = "audit",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), PageQuery),
    responses((status = 200, description = "A page of events", body = Page<AuditEvent>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/audit")]
pub async fn list_tenant_audit(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.tenant(&state.db, path.into_inner(), Role::Owner).await?;
    let ks = keyset::<i64>(&q)?;
    let rows: Vec<AuditRow> = sqlx::query_as(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log
          WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(scope.tenant_id())
    .bind(ks.after)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let events: Vec<AuditEvent> = rows.into_iter().map(event).collect();
    Ok(HttpResponse::Ok().json(page(events, ks.limit, |e: &AuditEvent| e.id)))
}

/// The whole audit log, global events included, newest first (administrators).
#[utoipa::path(
    tag = "audit",
    params(PageQuery),
    responses((status = 200, description = "A page of events", body = Page<AuditEvent>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let ks = keyset::<i64>(&q)?;
    let rows: Vec<AuditRow> = sqlx::query_as(&format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(ks.after)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let events: Vec<AuditEvent> = rows.into_iter().map(event).collect();
    Ok(HttpResponse::Ok().json(page(events, ks.limit, |e: &AuditEvent| e.id)))
}
