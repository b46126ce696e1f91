//! The one error type of the HTTP API, and how it becomes an `application/problem+json` body.
//!
//! Handlers return `Result<_, ApiError>`. Database and internal errors are logged with their
//! text and answered with a generic 500: their text never reaches a client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use petrel_wire::{FieldError, PROBLEM_JSON, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is well-formed JSON but some fields are wrong.
    #[error("{detail}")]
    Validation { detail: String, errors: Vec<FieldError> },
    /// 400 with a specific code (malformed JSON, bad cursor, ...).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String, errors: Vec<FieldError> },
    /// 401: no or bad credentials.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// 403: authenticated, allowed to see the object, not allowed to do this.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// 403 `quota-exceeded`: which limits, by how much, per field.
    #[error("{detail}")]
    QuotaExceeded { detail: String, errors: Vec<FieldError> },
    /// 404: the object does not exist *for this caller* (other tenants' objects included).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the object exists but is not ready yet (computed in the background).
    #[error("{0}")]
    NotReady(String),
    /// 410: the object is known but its contents are gone (retention).
    #[error("{0}")]
    Gone(String),
    /// 409
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 413
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after_secs: u64 },
    /// 503: the database is unreachable or the pool is exhausted.
    #[error("service unavailable")]
    Unavailable,
    /// 500: a database error that is not the client's fault. Logged, never shown.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// 500: any other bug or host failure. Logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::Unavailable
            }
            sqlx::Error::Database(ref db) if db.code().as_deref().is_some_and(server_going_away) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::Unavailable
            }
            other => ApiError::Database(other),
        }
    }
}

/// SQLSTATEs of a server that is stopping, restarting or not reachable: a connection the
/// server ends while it shuts down (57P01 on a fast stop, 57P02 after a crash), one refused
/// while it starts (57P03), and the connection exceptions (class 08). The request may succeed
/// once it is back, so 503, not 500.
fn server_going_away(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let error = FieldError::new(field, message);
        ApiError::Validation {
            detail: format!("invalid field `{}`: {}", error.field, error.message),
            errors: vec![error],
        }
    }

    pub fn fields(errors: Vec<FieldError>) -> Self {
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        ApiError::Validation { detail: format!("invalid fields: {}", names.join(", ")), errors }
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Forbidden { code, detail: detail.into() }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict { code, detail: detail.into() }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation-failed",
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden { code, .. } => code,
            ApiError::QuotaExceeded { .. } => "quota-exceeded",
            ApiError::NotFound(_) => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::Gone(_) => "gone",
            ApiError::NotReady(_) => "not-ready",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable => "unavailable",
            ApiError::Database(_) | ApiError::Internal(_) => "internal",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let detail = match self {
            ApiError::Database(_) | ApiError::Internal(_) => {
                "an internal error occurred; it has been logged".to_string()
            }
            ApiError::Unavailable => "the database is unavailable; try again shortly".to_string(),
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Validation { errors, .. }
            | ApiError::BadRequest { errors, .. }
            | ApiError::QuotaExceeded { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        problem(status, self.code(), detail, errors)
    }
}

/// A problem body for a status and code.
pub fn problem(status: StatusCode, code: &str, detail: String, errors: Vec<FieldError>) -> Problem {
    Problem {
        type_uri: format!("urn:petrel:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        code: code.to_string(),
        detail,
        errors,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::NotReady(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Database(e) = self {
            tracing::error!(error = %e, "database error");
        } else if let ApiError::Internal(e) = self {
            tracing::error!(error = %e, "internal error");
        }
        let mut response = problem_response(&self.problem());
        if let ApiError::TooManyRequests { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if let ApiError::Unauthenticated(_) = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"petrel\""));
        }
        response
    }
}

pub fn problem_response(problem: &Problem) -> HttpResponse {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(serde_json::to_vec(problem).unwrap_or_default())
}

/// True when `e` is a unique-constraint violation of the named constraint or index.
pub fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// True when `e` is a foreign-key violation (the referenced row vanished or is still used).
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23503"))
}
