//! Build inputs and outputs as data.
//!
//! Everything here is pure (bytes in, values out), so it is unit-tested and fuzzed without a
//! database: parsers of what a build records, the `input_id`, comparisons of two builds,
//! dependency graphs, builder's ASN.1 upload format, and binary size treemaps.
pub mod cargo_lock;
pub mod compare;
pub mod environment;
pub mod exec;
pub mod graph;
pub mod input_id;
pub mod opam;
pub mod platform;
pub mod system_packages;
pub mod treemap;
