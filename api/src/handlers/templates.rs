//! The recipe templates jobs may name instead of a script.

use actix_web::{HttpResponse, get};
use petrel_wire::workers::RecipeTemplate;

use crate::auth::read::MaybeCaller;

/// Every recipe template, with its variables and the platforms it has variants for.
#[utoipa::path(
    tag = "jobs",
    responses((status = 200, description = "The templates", body = Vec<RecipeTemplate>)),
    security(())
)]
#[get("/recipe-templates")]
pub async fn list_templates(_caller: MaybeCaller) -> HttpResponse {
    // The caller is only checked: dead credentials get 401 here as on every other route.
    HttpResponse::Ok().json(crate::templates::list())
}
