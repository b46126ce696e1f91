//! Errors as `application/problem+json` (RFC 9457).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error answer. `code` is stable and meant for programs; `detail` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:petrel:problem:validation-failed",
    "title": "Bad Request",
    "status": 400,
    "code": "validation-failed",
    "detail": "the request has invalid fields",
    "errors": [{"field": "name", "message": "must be 1 to 63 characters"}]
}))]
pub struct Problem {
    /// `urn:petrel:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Stable machine-readable error code.
    pub code: String,
    /// What went wrong, for people.
    pub detail: String,
    /// Per-field messages, for validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's name or JSON path (`members[2].role`), or the query/path parameter.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
