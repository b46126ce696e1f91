//! One module per screen.

pub mod audit;
pub mod login;
pub mod tenants;
pub mod tokens;
pub mod users;
