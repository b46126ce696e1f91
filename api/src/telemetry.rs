//! Logging and OpenTelemetry setup (shared with the worker and the agent: see
//! `petrel_wire::telemetry`). What the API records is in [`crate::otel`].

use petrel_wire::telemetry::{self, Telemetry};

use crate::config::LogFormat;

/// Logs to stderr (`RUST_LOG` filters, default `info`); exports traces and metrics over OTLP
/// when the `OTEL_*` variables ask for it. Keep the guard until exit: dropping it flushes.
pub fn init(format: LogFormat) -> Telemetry {
    let format = match format {
        LogFormat::Text => telemetry::LogFormat::Text,
        LogFormat::Json => telemetry::LogFormat::Json,
    };
    telemetry::init("petrel-api", format, "info,sqlx=warn")
}
