//! A build's dependency graph and size treemap, computed in the background after upload.

use actix_web::{HttpResponse, get, web};
use petrel_wire::graph::DependencyGraph;
use petrel_wire::treemap::Treemap;
use uuid::Uuid;

use super::builds::readable_build;
use crate::auth::read::{MaybeCaller, ReadScope};
use crate::error::ApiError;
use crate::server::AppState;
use crate::visualize::{Lookup, lookup};

async fn answer(
    state: &AppState,
    caller: MaybeCaller,
    build_id: Uuid,
    kind: &str,
) -> Result<HttpResponse, ApiError> {
    let scope = ReadScope::of(caller.0.as_ref(), &state.db).await?;
    let build = readable_build(&state.db, &scope, build_id).await?;
    match lookup(&state.db, build.id, kind).await? {
        Lookup::Ready(data) => Ok(HttpResponse::Ok().json(data)),
        Lookup::Pending => {
            Err(ApiError::NotReady(format!("the {kind} of this build is being computed; try again shortly")))
        }
        Lookup::NotApplicable => Err(ApiError::NotFound("visualization")),
    }
}

/// The build's dependency graph (from its `opam-switch` or `Cargo.lock`).
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The graph", body = DependencyGraph),
        (status = 409, description = "Still being computed", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/dependencies")]
pub async fn get_dependencies(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, caller, path.into_inner(), "dependencies").await
}

/// The size treemap of the build's main binary (with its `.debug` file when there is one);
/// entries under 0.1 % of the binary are folded into "other".
#[utoipa::path(
    tag = "builds",
    params(("build_id" = Uuid, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The treemap", body = Treemap),
        (status = 409, description = "Still being computed", body = petrel_wire::Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []), ("session" = []))
)]
#[get("/builds/{build_id}/treemap")]
pub async fn get_treemap(
    state: web::Data<AppState>,
    caller: MaybeCaller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, caller, path.into_inner(), "treemap").await
}
