//! Reproducibility: which builds reproduced a build (same output from the same or other
//! inputs), which did not (same input, other output), and a per-job summary.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use petrel_wire::builds::{BuildRef, Reproducibility, ReproducibilitySummary};
use uuid::Uuid;

use super::builds::{parse_sha256, readable_build};
use super::jobs::readable_job;
use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::server::AppState;

type RefRow = (Uuid, Uuid, String, String, Option<DateTime<Utc>>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Builds related to one by input id and main-binary hash. `$1/$2` scope, `$3` this build,
/// `$4` its input id, `$5` its main binary's hash.
const RELATED: &str = "SELECT b.id, b.job_id, j.name, b.platform, b.finished_at, b.input_id, a.sha256
   FROM builds b JOIN jobs j ON j.id = b.job_id
   JOIN build_artifacts a ON a.build_id = b.id AND a.path = b.main_binary";

fn build_ref(this: Uuid, r: RefRow) -> BuildRef {
    let (id, job_id, job_name, platform, finished_at, input_id, sha) = r;
    BuildRef {
        id,
        job_id,
        job_name,
        platform,
        finished_at,
        input_id: input_id.map(hex::encode),
        main_binary_sha256: sha.map(hex::encode),
        compare: format!("/api/v1/compare/{this}/{id}"),
    }
}

/// Which builds reproduced this one and which did not.
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses((status = 200, description = "Related builds", body = Reproducibility)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/reproducibility")]
pub async fn build_reproducibility(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, path.into_inner()).await?;
    let input = build.input_id.as_deref().map(|i| parse_sha256("input_id", i)).transpose()?;
    let sha = build.main_binary.as_ref().map(|m| parse_sha256("sha256", &m.sha256)).transpose()?;
    let mut answer = Reproducibility {
        build_id: build.id,
        input_id: build.input_id.clone(),
        main_binary_sha256: build.main_binary.as_ref().map(|m| m.sha256.clone()),
        same_input_same_output: Vec::new(),
        other_input_same_output: Vec::new(),
        same_input_other_output: Vec::new(),
    };
    let (Some(input), Some(sha)) = (input, sha) else { return Ok(HttpResponse::Ok().json(answer)) };
    let query = |condition: &str, distinct: bool| {
        let select = if distinct {
            RELATED.replacen("SELECT", "SELECT DISTINCT ON (b.input_id)", 1)
        } else {
            RELATED.into()
        };
        format!(
            "{select} WHERE {} AND b.id <> $3 AND {condition}
              ORDER BY {}b.finished_at DESC NULLS LAST, b.id LIMIT 200",
            ReadScope::SQL,
            if distinct { "b.input_id, " } else { "" }
        )
    };
    for (condition, distinct, out) in [
        ("b.input_id = $4 AND a.sha256 = $5", false, &mut answer.same_input_same_output),
        ("b.input_id IS DISTINCT FROM $4 AND a.sha256 = $5", true, &mut answer.other_input_same_output),
        ("b.input_id = $4 AND a.sha256 <> $5", false, &mut answer.same_input_other_output),
    ] {
        let rows: Vec<RefRow> = sqlx::query_as(&query(condition, distinct))
            .bind(scope.all())
            .bind(scope.tenants())
            .bind(build.id)
            .bind(&input)
            .bind(&sha)
            .fetch_all(&state.db)
            .await?;
        out.extend(rows.into_iter().map(|r| build_ref(build.id, r)));
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// How reproducible the job's outputs are.
#[utoipa::path(
    tag = "jobs",
    params(("job_id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, description = "The summary", body = ReproducibilitySummary)),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/jobs/{job_id}/reproducibility")]
pub async fn job_reproducibility(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let job = readable_job(&state.db, &scope, path.into_inner()).await?;
    let (builds, inputs, reproducible, unreproducible, single): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "WITH per_input AS (
             SELECT b.input_id, count(*) AS builds, count(DISTINCT a.sha256) AS outputs
               FROM builds b JOIN build_artifacts a ON a.build_id = b.id AND a.path = b.main_binary
              WHERE b.job_id = $1 AND b.status = 'succeeded' AND b.input_id IS NOT NULL
              GROUP BY b.input_id)
         SELECT COALESCE(sum(builds), 0)::bigint, count(*),
                count(*) FILTER (WHERE builds > 1 AND outputs = 1),
                count(*) FILTER (WHERE outputs > 1),
                count(*) FILTER (WHERE builds = 1)
           FROM per_input",
    )
    .bind(job.id)
    .fetch_one(&state.db)
    .await?;
    Ok(HttpResponse::Ok().json(ReproducibilitySummary {
        job_id: job.id,
        builds,
        inputs,
        reproducible_inputs: reproducible,
        unreproducible_inputs: unreproducible,
        single_build_inputs: single,
    }))
}
