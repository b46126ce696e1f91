//! Liveness and readiness, for load balancers and orchestrators.

use actix_web::{HttpResponse, get, web};
use petrel_wire::identity::Readiness;

use crate::server::AppState;

/// The process is alive.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "Alive", body = String, content_type = "text/plain")),
    security(())
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok\n")
}

/// The database is reachable and every migration this build knows is applied.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness),
    ),
    security(())
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (database, migrations, schema_version) = crate::db::readiness(&state.db).await;
    let body = Readiness { database, migrations, schema_version, scheduler: state.leadership.is_leader() };
    if database && migrations {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
