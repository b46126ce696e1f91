//! The build worker: registers with the API, long-polls for claims, runs each recipe in a
//! sandbox (`sandbox`), records its inputs as orb does (`record`), and uploads the result
//! through the API's staged upload protocol, keeping it on disk until accepted.

pub mod client;
pub mod record;
pub mod run;
pub mod sandbox;
pub mod spool;
