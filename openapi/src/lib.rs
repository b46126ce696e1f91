//! Petrel's API client, generated at build time from `openapi/openapi.json`, and the `petrel`
//! command line built on it.

pub mod commands;
pub mod config;
pub mod connect;
pub mod error;
pub mod output;
pub mod transfer;

#[allow(clippy::all, clippy::pedantic, unused, missing_docs, mismatched_lifetime_syntaxes)]
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/client.rs"));
}
