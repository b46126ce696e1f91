//! Petrel's API service: a multi-tenant HTTPS/OpenAPI server over PostgreSQL.
//!
//! Where things are: `routes` declares every route; `handlers/` holds one module per resource;
//! `auth` decides who the caller is and what they may touch; `db` connects, migrates, and runs
//! the embedded PostgreSQL; `server` binds and starts everything. Builds are queued in `queue`, handed out by
//! `handlers/worker_protocol` and kept moving by `scheduler`.

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod builds;
pub mod config;
pub mod console_stream;
pub mod db;
pub mod deploy;
pub mod error;
pub mod events;
pub mod examples;
pub mod extract;
pub mod handlers;
pub mod lookup_cache;
pub mod maintenance;
pub mod manifests;
pub mod otel;
pub mod pagination;
pub mod queue;
pub mod routes;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod templates;
pub mod tls;
pub mod validate;
pub mod visualize;
