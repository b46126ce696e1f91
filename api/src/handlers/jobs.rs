//! Jobs: what is built, for which platforms, how often, and who may see it.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use petrel_wire::builds::{CreateJob, Job, Retention, Schedule, UpdateJob, Visibility};
use petrel_wire::identity::Role;
use petrel_wire::page::PageQuery;
use petrel_wire::workers::{BuildLimits, Recipe};
use petrel_wire::{FieldError, Page};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::read::{MaybeCaller, ReadScope};
use crate::auth::{Caller, TenantScope};
use crate::error::{ApiError, is_unique_violation};
use crate::extract::{Json, Query};
use crate::pagination::{keyset, page};
use crate::server::AppState;

pub(crate) const JOB_COLUMNS: &str = "j.id, j.tenant_id, j.name, j.platforms, j.schedule::text AS schedule, \
     j.visibility::text AS visibility, j.synopsis, j.readme, j.keep_last, j.keep_days, j.recipe, j.timeout_secs, \
     j.memory_mib, j.output_mib, j.max_attempts, j.source_date_epoch, j.next_run_at, j.created_at, j.updated_at, \
     p.path";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    platforms: Vec<String>,
    schedule: String,
    visibility: String,
    synopsis: Option<String>,
    readme: Option<String>,
    keep_last: Option<i32>,
    keep_days: Option<i32>,
    recipe: Option<sqlx::types::Json<Recipe>>,
    timeout_secs: i32,
    memory_mib: i32,
    output_mib: i32,
    max_attempts: i32,
    source_date_epoch: i64,
    next_run_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    path: String,
}

fn job(r: JobRow) -> Job {
    Job {
        id: r.id,
        tenant_id: r.tenant_id,
        qualified_name: format!("{}:{}", r.path, r.name),
        name: r.name,
        platforms: r.platforms,
        schedule: match r.schedule.as_str() {
            "hourly" => Schedule::Hourly,
            "daily" => Schedule::Daily,
            "weekly" => Schedule::Weekly,
            _ => Schedule::Never,
        },
        visibility: if r.visibility == "public" { Visibility::Public } else { Visibility::Private },
        synopsis: r.synopsis,
        readme: r.readme,
        retention: Retention { keep_last: r.keep_last, keep_days: r.keep_days },
        recipe: r.recipe.map(|j| j.0),
        limits: BuildLimits {
            timeout_secs: r.timeout_secs,
            memory_mib: r.memory_mib,
            output_mib: r.output_mib,
            max_attempts: r.max_attempts,
        },
        source_date_epoch: r.source_date_epoch,
        next_run_at: r.next_run_at,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn schedule_str(s: Schedule) -> &'static str {
    match s {
        Schedule::Hourly => "hourly",
        Schedule::Daily => "daily",
        Schedule::Weekly => "weekly",
        Schedule::Never => "never",
    }
}

fn visibility_str(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

struct JobFields<'a> {
    name: Option<&'a str>,
    platforms: Option<&'a [String]>,
    synopsis: Option<&'a str>,
    readme: Option<&'a str>,
    retention: Option<&'a Retention>,
    recipe: Option<&'a Recipe>,
    limits: Option<&'a BuildLimits>,
}

fn validate_fields(fields: JobFields<'_>) -> Result<(), ApiError> {
    let JobFields { name, platforms, synopsis, readme, retention, recipe, limits } = fields;
    let mut errors = Vec::new();
    if let Some(recipe) = recipe {
        crate::validate::recipe(recipe, &mut errors);
    }
    if let Some(limits) = limits {
        crate::validate::build_limits(limits, &mut errors);
    }
    if let Some(Err(m)) = name.map(crate::validate::job_name) {
        errors.push(FieldError::new("name", m));
    }
    if let Some(platforms) = platforms {
        for (i, p) in platforms.iter().enumerate() {
            if let Err(m) = crate::validate::platform(p) {
                errors.push(FieldError::new(format!("platforms[{i}]"), m));
            }
        }
        if platforms.len() > 32 {
            errors.push(FieldError::new("platforms", "at most 32 platforms"));
        }
    }
    if synopsis.is_some_and(|s| s.chars().count() > 500) {
        errors.push(FieldError::new("synopsis", "at most 500 characters"));
    }
    if readme.is_some_and(|s| s.len() > 256 * 1024) {
        errors.push(FieldError::new("readme", "at most 256 KiB"));
    }
    if let Some(r) = retention {
        if r.keep_last.is_some_and(|n| n < 1) {
            errors.push(FieldError::new("retention.keep_last", "must be at least 1"));
        }
        if r.keep_days.is_some_and(|n| n < 1) {
            errors.push(FieldError::new("retention.keep_days", "must be at least 1"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::fields(errors)) }
}

/// A recipe's template must exist, get its variables, and have a variant for every platform.
fn template_fits(recipe: &Recipe, platforms: &[String]) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    crate::templates::validate(recipe, platforms, &mut errors);
    if errors.is_empty() { Ok(()) } else { Err(ApiError::fields(errors)) }
}

/// A job the caller may read, by id (404 otherwise).
pub(crate) async fn readable_job(db: &PgPool, scope: &ReadScope, job_id: Uuid) -> Result<Job, ApiError> {
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN tenant_paths p ON p.id = j.tenant_id
          WHERE {} AND j.id = $3",
        ReadScope::SQL
    ))
    .bind(scope.all())
    .bind(scope.tenants())
    .bind(job_id)
    .fetch_optional(db)
    .await?;
    row.map(job).ok_or(ApiError::NotFound("job"))
}

/// A job the caller may change with at least `min`, with the scope of its tenant.
pub(crate) async fn writable_job(
    db: &PgPool,
    caller: &Caller,
    job_id: Uuid,
    min: Role,
) -> Result<(TenantScope, Job), ApiError> {
    let scope = ReadScope::of(Some(caller), db).await?;
    let job = readable_job(db, &scope, job_id).await?;
    let tenant = caller.tenant(db, job.tenant_id, min).await.map_err(|e| match e {
        // A public job of another tenant: its existence is no secret, the change is forbidden.
        ApiError::NotFound(_) => ApiError::forbidden(
            "insufficient-role",
            format!("this needs the {} role in the job's tenant", min.as_str()),
        ),
        other => other,
    })?;
    Ok((tenant, job))
}

/// The tenant's jobs, by name.
#[utoipa::path(
    tag = "jobs",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id"), PageQuery),
    responses((status = 200, description = "A page of jobs", body = Page<Job>)),
    security(("bearer" = []), ("session" = []))
)]
#[get("/tenants/{tenant_id}/jobs")]
pub async fn list_jobs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Viewer).await?;
    let jobs = job_page(&state.db, &ReadScope::from(&tenant), Some(tenant.tenant_id()), &q).await?;
    Ok(HttpResponse::Ok().json(jobs))
}

/// A page of the jobs `scope` may read, of one tenant or all, by name.
async fn job_page(
    db: &PgPool,
    scope: &ReadScope,
    tenant: Option<Uuid>,
    q: &PageQuery,
) -> Result<Page<Job>, ApiError> {
    let ks = keyset::<(String, Uuid)>(q)?;
    let (after_name, after_id) = ks.after.clone().unzip();
    let rows: Vec<JobRow> = sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN tenant_paths p ON p.id = j.tenant_id
          WHERE {} AND ($3::uuid IS NULL OR j.tenant_id = $3) AND ($4::text IS NULL OR (j.name, j.id) > ($4, $5))
          ORDER BY j.name, j.id LIMIT $6",
        ReadScope::SQL
    ))
    .bind(scope.all())
    .bind(scope.tenants())
    .bind(tenant)
    .bind(after_name)
    .bind(after_id)
    .bind(ks.fetch())
    .fetch_all(db)
    .await?;
    let jobs: Vec<Job> = rows.into_iter().map(job).collect();
    Ok(page(jobs, ks.limit, |j: &Job| (j.name.clone(), j.id)))
}

/// Public jobs of every tenant, by name: what builds.robur.coop's front page lists.
#[utoipa::path(
    tag = "jobs",
    params(PageQuery),
    responses((status = 200, description = "A page of jobs", body = Page<Job>)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/jobs")]
pub async fn list_visible_jobs(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    Query(q): Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    Ok(HttpResponse::Ok().json(job_page(&state.db, &scope, None, &q).await?))
}

/// Create a job (operators).
#[utoipa::path(
    tag = "jobs",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    request_body = CreateJob,
    responses(
        (status = 201, description = "Created", body = Job),
        (status = 409, description = "The tenant has a job of that name", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("session" = []))
)]
#[post("/tenants/{tenant_id}/jobs")]
pub async fn create_job(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(body): Json<CreateJob>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant(&state.db, path.into_inner(), Role::Operator).await?;
    validate_fields(JobFields {
        name: Some(&body.name),
        platforms: Some(&body.platforms),
        synopsis: body.synopsis.as_deref(),
        readme: body.readme.as_deref(),
        retention: body.retention.as_ref(),
        recipe: body.recipe.as_ref(),
        limits: body.limits.as_ref(),
    })?;
    if let Some(recipe) = &body.recipe {
        template_fits(recipe, &body.platforms)?;
    }
    let id = Uuid::new_v4();
    let retention = body.retention.clone().unwrap_or_default();
    let limits = body.limits.unwrap_or_default();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, name, platforms, schedule, visibility, synopsis, readme, keep_last, keep_days,
                           recipe, timeout_secs, memory_mib, output_mib, max_attempts, source_date_epoch, next_run_at)
         VALUES ($1, $2, $3, $4, $5::job_schedule, $6::job_visibility, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 coalesce($16, extract(epoch FROM now())::bigint), CASE WHEN $5 = 'never' THEN NULL ELSE now() END)",
    )
    .bind(id)
    .bind(tenant.tenant_id())
    .bind(&body.name)
    .bind(&body.platforms)
    .bind(schedule_str(body.schedule.unwrap_or(Schedule::Never)))
    .bind(visibility_str(body.visibility.unwrap_or(Visibility::Private)))
    .bind(&body.synopsis)
    .bind(&body.readme)
    .bind(retention.keep_last)
    .bind(retention.keep_days)
    .bind(body.recipe.as_ref().map(sqlx::types::Json))
    .bind(limits.timeout_secs)
    .bind(limits.memory_mib)
    .bind(limits.output_mib)
    .bind(limits.max_attempts)
    .bind(body.source_date_epoch)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "jobs_tenant_id_name_key") {
            ApiError::conflict("job-name-taken", format!("the tenant has a job named {:?}", body.name))
        } else {
            e.into()
        }
    })?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "job.create",
        Some(id.to_string()),
        serde_json::json!({"name": body.name}),
    )
    .await?;
    tx.commit().await?;
    let created = readable_job(&state.db, &ReadScope::of(Some(&caller), &state.db).await?, id).await?;
    Ok(HttpResponse::Created().json(created))
}

/// One job: public ones for anyone, private ones for their tenant's members.
#[utoipa::path(
    tag = "jobs",
    params(("job_id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = Job)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/jobs/{job_id}")]
pub async fn get_job(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    Ok(HttpResponse::Ok().json(readable_job(&state.db, &scope, path.into_inner()).await?))
}

/// Change a job (operators); absent fields stay.
#[utoipa::path(
    tag = "jobs",
    params(("job_id" = Uuid, Path, description = "The job's id")),
    request_body = UpdateJob,
    responses((status = 200, description = "The changed job", body = Job)),
    security(("bearer" = []), ("session" = []))
)]
#[patch("/jobs/{job_id}")]
pub async fn update_job(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(body): Json<UpdateJob>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, current) = writable_job(&state.db, &caller, path.into_inner(), Role::Operator).await?;
    validate_fields(JobFields {
        name: None,
        platforms: body.platforms.as_deref(),
        synopsis: body.synopsis.as_deref(),
        readme: body.readme.as_deref(),
        retention: body.retention.as_ref(),
        recipe: body.recipe.as_ref(),
        limits: body.limits.as_ref(),
    })?;
    if let Some(recipe) = body.recipe.as_ref().or(current.recipe.as_ref()) {
        template_fits(recipe, body.platforms.as_ref().unwrap_or(&current.platforms))?;
    }
    let retention = body.retention.clone().unwrap_or(current.retention.clone());
    let limits = body.limits.unwrap_or(current.limits);
    let mut tx = state.db.begin().await?;
    // A changed schedule takes effect now: the next run is due at once (or never).
    sqlx::query(
        "UPDATE jobs SET platforms = $3, schedule = $4::job_schedule, visibility = $5::job_visibility,
                synopsis = $6, readme = $7, keep_last = $8, keep_days = $9, recipe = $10, timeout_secs = $11,
                memory_mib = $12, output_mib = $13, max_attempts = $14,
                next_run_at = CASE WHEN $4 = 'never' THEN NULL
                                   WHEN schedule::text = $4 THEN next_run_at ELSE now() END,
                updated_at = now()
          WHERE id = $1 AND tenant_id = $2",
    )
    .bind(current.id)
    .bind(tenant.tenant_id())
    .bind(body.platforms.as_ref().unwrap_or(&current.platforms))
    .bind(schedule_str(body.schedule.unwrap_or(current.schedule)))
    .bind(visibility_str(body.visibility.unwrap_or(current.visibility)))
    .bind(body.synopsis.as_ref().or(current.synopsis.as_ref()))
    .bind(body.readme.as_ref().or(current.readme.as_ref()))
    .bind(retention.keep_last)
    .bind(retention.keep_days)
    .bind(body.recipe.as_ref().or(current.recipe.as_ref()).map(sqlx::types::Json))
    .bind(limits.timeout_secs)
    .bind(limits.memory_mib)
    .bind(limits.output_mib)
    .bind(limits.max_attempts)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "job.update",
        Some(current.id.to_string()),
        serde_json::to_value(&body).unwrap_or_default(),
    )
    .await?;
    crate::events::jobs_changed(&mut tx).await?;
    tx.commit().await?;
    let updated =
        readable_job(&state.db, &ReadScope::of(Some(&caller), &state.db).await?, current.id).await?;
    Ok(HttpResponse::Ok().json(updated))
}

/// Delete a job with all its builds (owners). Artifact contents no other build uses are
/// removed by the next clean-up.
#[utoipa::path(
    tag = "jobs",
    params(("job_id" = Uuid, Path, description = "The job's id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []), ("session" = []))
)]
#[delete("/jobs/{job_id}")]
pub async fn delete_job(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, job) = writable_job(&state.db, &caller, path.into_inner(), Role::Owner).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query("DELETE FROM jobs WHERE id = $1 AND tenant_id = $2")
        .bind(job.id)
        .bind(tenant.tenant_id())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        Some(tenant.tenant_id()),
        &Actor::from(&caller),
        "job.delete",
        Some(job.id.to_string()),
        serde_json::json!({"name": job.name}),
    )
    .await?;
    crate::events::jobs_changed(&mut tx).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
