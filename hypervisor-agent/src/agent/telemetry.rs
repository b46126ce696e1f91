//! The agent's spans that outlive a reconcile pass. Logging and export are set up by
//! `petrel_wire::telemetry::init` (in `petrel-agent`).

use petrel_wire::deployments::Assignment;
use petrel_wire::telemetry::{self, OpenTelemetrySpanExt};

/// The span of one deployment's supervision (fetch, start, restarts, state reports), for as
/// long as it runs here. Its trace is the reconcile pass's that started it, but it does not
/// keep that pass's span open: the pass ends (and is exported) when its starts are done.
pub fn deployment_span(a: &Assignment) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "deployment",
        otel.name = "supervise deployment",
        petrel.deployment.id = %a.deployment_id,
        petrel.deployment.name = %a.name,
        petrel.deployment.revision = a.revision,
    );
    if telemetry::traces_enabled() {
        let _ = span.set_parent(tracing::Span::current().context());
    }
    span
}
