//! Request handlers, one module per resource. Each handler carries its `utoipa::path`.

pub mod agent_protocol;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod block_devices;
pub mod builds;
pub mod compare;
pub mod compat;
pub mod deployments;
pub mod fleet;
pub mod health;
pub mod jobs;
pub mod members;
pub mod quotas;
pub mod reproducibility;
pub mod runs;
pub mod templates;
pub mod tenants;
pub mod tokens;
pub mod uploads;
pub mod users;
pub mod visualizations;
pub mod worker_protocol;
pub mod workers;

use actix_web::HttpResponse;
use actix_web::http::header;
use petrel_wire::identity::Role;

use crate::error::ApiError;
use crate::server::AppState;

/// A role as the database spells it (`member_role::text`).
pub(crate) fn db_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| ApiError::internal(format!("unknown role {s:?} in the database")))
}

// Raw bytes in a request or response body: `{"type": "string", "format": "binary"}`, which
// generated clients turn into a byte stream (a `Vec<u8>` would be described as an array of
// integers).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary, description = "Raw bytes")]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// One server-sent event of a console stream (`text/event-stream`): `line` events carry a
/// `ConsoleLine` as JSON in `data` and its number in `id`; one `end` event (data: a JSON string,
/// the final status or `"caught-up"`) closes the stream; `error` says the console could not be
/// read.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ServerSentEvent {
    event: ServerSentEventKind,
    /// JSON text.
    data: String,
    /// The line's number (`line` events); send it back as `Last-Event-ID` to resume.
    id: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ServerSentEventKind {
    Line,
    End,
    Error,
}

/// A stored blob as the body of a response, with its length and SHA-256, as stored (gzip on
/// the fly would be slow and drop the length).
pub(crate) async fn blob_response(
    state: &AppState,
    sha256: &[u8],
    size: i64,
) -> Result<HttpResponse, ApiError> {
    let stream = state.store.get(sha256).await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((header::CONTENT_LENGTH, size.to_string()))
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header((uploads::SHA256_HEADER, hex::encode(sha256)))
        .streaming(futures_util::StreamExt::map(stream, |c| {
            c.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))
        })))
}
