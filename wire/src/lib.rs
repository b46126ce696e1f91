//! The JSON types on Petrel's wire.
//!
//! One crate names every field once: the API serialises these, and the worker, the agent, the
//! CLI and the SPA deserialise the very same structs. Schemas for the OpenAPI document come from
//! the `utoipa::ToSchema` derives here.

pub mod audit;
pub mod builds;
pub mod compare;
pub mod deployments;
pub mod graph;
#[cfg(feature = "http")]
pub mod http;
pub mod identity;
#[cfg(not(feature = "full"))]
pub mod lean;
pub mod page;
#[cfg(not(target_arch = "wasm32"))]
pub mod perf;
pub mod problem;
#[cfg(feature = "telemetry")]
pub mod telemetry;
pub mod time;
pub mod treemap;
pub mod workers;

pub use page::Page;
pub use problem::{FieldError, Problem};

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";
/// The name of the browser session cookie.
pub const SESSION_COOKIE: &str = "petrel_session";
/// The header that carries the CSRF token on state-changing requests made with a session cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The prefix of every API token, so leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "petrel_";
