//! KVM agents: administrators create one-time enrollment tokens, an agent trades its token for
//! a credential (and reports its inventory), administrators list and revoke agents.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use petrel_wire::deployments::{
    AGENT_TOKEN_PREFIX, Agent, CreateEnrollment, ENROLLMENT_TOKEN_PREFIX, EnrollRequest, Enrolled,
    Enrollment, EnrollmentState, EnrollmentToken, Inventory,
};
use petrel_wire::page::PageQuery;
use petrel_wire::{FieldError, Page};
use sqlx::types::Json as DbJson;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::Caller;
use crate::auth::secret::{random_secret, storage_hash};
use crate::deploy::REACHABLE_SECS;
use crate::error::{ApiError, is_unique_violation};
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;

const ENROLLMENT_HOURS: i64 = 24;

/// Create a one-time enrollment token for a new agent (administrators). It expires in a day.
#[utoipa::path(
    tag = "agents",
    request_body = CreateEnrollment,
    responses((status = 201, description = "The token, shown once", body = Enrollment)),
    security(("bearer" = []), ("session" = []))
)]
#[post("/agents/enrollments")]
pub async fn create_enrollment(
    state: web::Data<AppState>,
    caller: Caller,
    Json(body): Json<CreateEnrollment>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    crate::validate::job_name(&body.name).map_err(|m| ApiError::field("name", m))?;
    let token = format!("{ENROLLMENT_TOKEN_PREFIX}{}", random_secret());
    let mut tx = state.db.begin().await?;
    let (id, expires_at): (Uuid, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO agent_enrollments (token_sha256, name, expires_at, created_by)
         VALUES ($1, $2, now() + make_interval(hours => $3), $4) RETURNING id, expires_at",
    )
    .bind(storage_hash(&token))
    .bind(&body.name)
    .bind(ENROLLMENT_HOURS as i32)
    .bind(caller.user_id)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        None,
        &Actor::from(&caller),
        "agent.enrollment",
        Some(id.to_string()),
        serde_json::json!({"name": body.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(Enrollment { id, name: body.name, token, expires_at }))
}

#[derive(sqlx::FromRow)]
struct EnrollmentRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    expired: bool,
}

/// Enrollment tokens, newest first, used and expired ones included (administrators). Never the
/// secret: only its hash is stored.
#[utoipa::path(
    tag = "agents",
    params(PageQuery),
    responses((status = 200, description = "A page of enrollment tokens", body = Page<EnrollmentToken>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/agents/enrollments")]
pub async fn list_enrollments(
    state: web::Data<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let ks = keyset::<(DateTime<Utc>, Uuid)>(&q)?;
    let (after_at, after_id) = ks.after.unzip();
    let rows: Vec<EnrollmentRow> = sqlx::query_as(
        "SELECT id, name, created_at, expires_at, used_at, expires_at <= now() AS expired
           FROM agent_enrollments
          WHERE $1::timestamptz IS NULL OR (created_at, id) < ($1, $2)
          ORDER BY created_at DESC, id DESC LIMIT $3",
    )
    .bind(after_at)
    .bind(after_id)
    .bind(ks.fetch())
    .fetch_all(&state.db)
    .await?;
    let tokens: Vec<EnrollmentToken> = rows
        .into_iter()
        .map(|r| EnrollmentToken {
            id: r.id,
            name: r.name,
            state: match (r.used_at, r.expired) {
                (Some(_), _) => EnrollmentState::Used,
                (None, true) => EnrollmentState::Expired,
                (None, false) => EnrollmentState::Unused,
            },
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(page(tokens, ks.limit, |t: &EnrollmentToken| (t.created_at, t.id))))
}

/// Revoke an enrollment token that no agent used yet (administrators): it is deleted, so no
/// agent can enroll with it. A used token is the agent's history; revoke the agent instead.
#[utoipa::path(
    tag = "agents",
    params(("enrollment_id" = Uuid, Path, description = "The enrollment token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such enrollment token", body = petrel_wire::Problem, content_type = "application/problem+json"),
        (status = 409, description = "An agent already enrolled with it", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/agents/enrollments/{enrollment_id}")]
pub async fn revoke_enrollment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let id = path.into_inner();
    let mut tx = state.db.begin().await?;
    // Locked, so an agent enrolling at this moment either wins (409 here) or finds it gone.
    let used: Option<bool> =
        sqlx::query_scalar("SELECT used_at IS NOT NULL FROM agent_enrollments WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    match used {
        None => return Err(ApiError::NotFound("enrollment token")),
        Some(true) => {
            return Err(ApiError::conflict(
                "enrollment-used",
                "an agent already enrolled with this token; revoke the agent instead",
            ));
        }
        Some(false) => {}
    }
    sqlx::query("DELETE FROM agent_enrollments WHERE id = $1").bind(id).execute(&mut *tx).await?;
    audit::record(
        &mut *tx,
        None,
        &Actor::from(&caller),
        "agent.enrollment.revoke",
        Some(id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

fn check_inventory(inventory: &Inventory) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if inventory.bridges.len() > 256
        || inventory.bridges.iter().any(|b| crate::validate::platform(b).is_err())
    {
        errors.push(FieldError::new("inventory.bridges", "at most 256 interface names of A-Z a-z 0-9 . _ -"));
    }
    if crate::validate::display_name(&inventory.tender_version).is_err() {
        errors.push(FieldError::new("inventory.tender_version", "must be 1 to 100 printable characters"));
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::fields(errors)) }
}

/// Trade an enrollment token for the agent's credential (the agent's first call; no other
/// authentication). A token works once, within its day.
#[utoipa::path(
    tag = "agent protocol",
    request_body = EnrollRequest,
    responses(
        (status = 201, description = "Enrolled", body = Enrolled),
        (status = 401, description = "The enrollment token is invalid, used or expired", body = petrel_wire::Problem, content_type = "application/problem+json"),
        (status = 409, description = "An agent of that name exists", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[post("/agents/enroll")]
pub async fn enroll(
    state: web::Data<AppState>,
    Json(body): Json<EnrollRequest>,
) -> Result<HttpResponse, ApiError> {
    check_inventory(&body.inventory)?;
    let mut tx = state.db.begin().await?;
    let name: Option<String> = sqlx::query_scalar(
        "UPDATE agent_enrollments SET used_at = now()
          WHERE token_sha256 = $1 AND used_at IS NULL AND expires_at > now() RETURNING name",
    )
    .bind(storage_hash(&body.token))
    .fetch_optional(&mut *tx)
    .await?;
    let name = name.ok_or(ApiError::Unauthenticated("the enrollment token is invalid, used or expired"))?;
    let id = Uuid::new_v4();
    let credential = format!("{AGENT_TOKEN_PREFIX}{}", random_secret());
    sqlx::query(
        "INSERT INTO agents (id, name, credential_sha256, inventory, last_seen_at) VALUES ($1, $2, $3, $4, now())",
    )
    .bind(id)
    .bind(&name)
    .bind(storage_hash(&credential))
    .bind(DbJson(&body.inventory))
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "agents_name_key") {
            ApiError::conflict("agent-name-taken", format!("an agent named {name:?} exists"))
        } else {
            e.into()
        }
    })?;
    let system = Actor { user_id: None, username: Some(format!("agent:{name}")), token_id: None, ip: None };
    audit::record(
        &mut *tx,
        None,
        &system,
        "agent.enroll",
        Some(id.to_string()),
        serde_json::json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(Enrolled { agent_id: id, name, credential }))
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: Uuid,
    name: String,
    inventory: Option<DbJson<Inventory>>,
    last_seen_at: Option<DateTime<Utc>>,
    reachable: bool,
    deployments: i64,
    revoked: bool,
    created_at: DateTime<Utc>,
}

/// Every agent, by name, with its inventory and health (administrators).
#[utoipa::path(
    tag = "agents",
    params(PageQuery),
    responses((status = 200, description = "A page of agents", body = Page<Agent>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/agents")]
pub async fn list_agents(
    state: web::Data<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let ks = keyset::<String>(&q)?;
    let rows: Vec<AgentRow> = sqlx::query_as(
        "SELECT a.id, a.name, a.inventory, a.last_seen_at,
                coalesce(a.last_seen_at > now() - make_interval(secs => $3), false) AS reachable,
                (SELECT count(*) FROM deployments d WHERE d.agent_id = a.id) AS deployments,
                a.revoked_at IS NOT NULL AS revoked, a.created_at
           FROM agents a WHERE ($1::text IS NULL OR a.name > $1) ORDER BY a.name LIMIT $2",
    )
    .bind(ks.after.as_deref())
    .bind(ks.fetch())
    .bind(REACHABLE_SECS)
    .fetch_all(&state.db)
    .await?;
    let agents: Vec<Agent> = rows
        .into_iter()
        .map(|r| Agent {
            id: r.id,
            name: r.name,
            inventory: r.inventory.map(|i| i.0),
            last_seen_at: r.last_seen_at,
            reachable: r.reachable,
            deployments: r.deployments,
            revoked: r.revoked,
            created_at: r.created_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(page(agents, ks.limit, |a: &Agent| a.name.clone())))
}

/// Revoke an agent's credential (administrators). Its deployments stay, shown as unknown.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = Uuid, Path, description = "The agent's id")),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/agents/{agent_id}")]
pub async fn revoke_agent(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let agent_id = path.into_inner();
    let mut tx = state.db.begin().await?;
    let revoked = sqlx::query("UPDATE agents SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1")
        .bind(agent_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if revoked == 0 {
        return Err(ApiError::NotFound("agent"));
    }
    audit::record(
        &mut *tx,
        None,
        &Actor::from(&caller),
        "agent.revoke",
        Some(agent_id.to_string()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
