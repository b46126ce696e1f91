//! Black-box tests of the API service: one binary (one link, one copy on disk), one module per area.

mod auth;
mod browser;
mod builds;
mod cli;
mod clients;
mod compat;
mod deployments;
mod faults;
mod https;
mod isolation;
mod kvm;
mod migrations;
mod openapi;
mod pagination;
mod problems;
mod queue;
mod restart;
mod roles;
mod s3;
mod schemathesis;
mod spa;
mod telemetry;
mod tokens;
mod workers;
