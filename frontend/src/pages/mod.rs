//! One module per screen.

pub mod agents;
pub mod audit;
pub mod block_devices;
pub mod build;
pub mod build_viz;
pub mod compare;
pub mod deploy_new;
pub mod deployments;
pub mod fleet;
pub mod jobs;
pub mod login;
pub mod quotas;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod workers;
