//! Logging and OpenTelemetry for Petrel's processes (API, worker, agent): one [`init`].
//!
//! Logs go to stderr through `tracing`, as text or JSON lines, filtered by `RUST_LOG`. Traces
//! and metrics are exported over OTLP (HTTP/protobuf) when the standard `OTEL_*` variables ask
//! for it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! / `..._METRICS_ENDPOINT`), `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` / `_ARG`, `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_BSP_*`; `OTEL_SDK_DISABLED=true` or `OTEL_{TRACES,METRICS}_EXPORTER=none` turn a signal
//! off. Without an endpoint no exporter, no OpenTelemetry layer and no meter provider is
//! installed: spans stay plain `tracing` spans (the fine-grained ones are at DEBUG level and
//! disabled outright), instruments are no-ops, and [`traces_enabled`] / [`metrics_enabled`]
//! let callers skip even building attributes.
//!
//! Trace context crosses processes as W3C `traceparent`: [`inject`] on the client side (the
//! `http` feature's [`crate::http::ApiHttp`] does it for every request), [`extract`] on the
//! server side. While a span with a trace is current, every log line carries its `trace_id`
//! and `span_id`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::{LookupSpan, SpanData};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use opentelemetry::{self, Context, KeyValue, global};
pub use tracing_opentelemetry::OpenTelemetrySpanExt;

static TRACES: AtomicBool = AtomicBool::new(false);
static METRICS: AtomicBool = AtomicBool::new(false);

/// Spans are exported: worth creating request spans and propagating context.
pub fn traces_enabled() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// Metrics are exported: worth recording.
pub fn metrics_enabled() -> bool {
    METRICS.load(Ordering::Relaxed)
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// For people (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{s:?}: expected text or json")),
        }
    }
}

/// Flushes and stops the exporters when shut down or dropped: keep it alive for the process's
/// life and let it go (or call [`Telemetry::shutdown`]) on a graceful exit.
#[must_use = "dropping it stops the export"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Whether anything is exported.
    pub fn exporting(&self) -> bool {
        self.tracer.is_some() || self.meter.is_some()
    }

    /// Exports what is pending, then stops. Blocks (briefly) on the exporters' threads.
    pub fn shutdown(&mut self) {
        TRACES.store(false, Ordering::Relaxed);
        METRICS.store(false, Ordering::Relaxed);
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.force_flush();
            let _ = tracer.shutdown();
        }
        if let Some(meter) = self.meter.take() {
            let _ = meter.force_flush();
            let _ = meter.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the `OTEL_*` variables ask for.
#[derive(Debug, Default)]
struct Wanted {
    traces: bool,
    metrics: bool,
    /// A protocol other than http/protobuf was asked for.
    unsupported_protocol: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn wanted() -> Wanted {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Wanted::default();
    }
    let general = env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    let signal = |name: &str| {
        let exporter_off =
            env(&format!("OTEL_{name}_EXPORTER")).is_some_and(|v| v.eq_ignore_ascii_case("none"));
        !exporter_off && (general || env(&format!("OTEL_EXPORTER_OTLP_{name}_ENDPOINT")).is_some())
    };
    let protocol = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .filter_map(|name| env(name))
    .find(|p| p != "http/protobuf");
    Wanted { traces: signal("TRACES"), metrics: signal("METRICS"), unsupported_protocol: protocol }
}

/// The resource: `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` win over `service`.
fn resource(service: &'static str) -> Resource {
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|a| a.split(',').any(|kv| kv.trim().starts_with("service.name=")));
    let mut builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attribute(KeyValue::new("service.namespace", "petrel"));
    if !named {
        builder = builder.with_service_name(service);
    }
    builder.build()
}

/// Installs logging (`RUST_LOG`, else `default_filter`) and, as the `OTEL_*` variables ask,
/// the OTLP exporters, the global meter provider and the W3C trace-context propagator.
/// `service` is the default `service.name` (`petrel-api`, `petrel-worker`, `petrel-agent`).
pub fn init(service: &'static str, format: LogFormat, default_filter: &str) -> Telemetry {
    let wanted = wanted();
    let mut problems = Vec::new();
    let resource = (wanted.traces || wanted.metrics).then(|| resource(service));
    let tracer = if wanted.traces {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
        {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource.clone().expect("built above"))
                    .build(),
            ),
            Err(e) => {
                problems.push(format!("the OTLP trace exporter: {e}"));
                None
            }
        }
    } else {
        None
    };
    let meter = if wanted.metrics {
        match opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
        {
            Ok(exporter) => Some(
                SdkMeterProvider::builder()
                    .with_periodic_exporter(exporter)
                    .with_resource(resource.clone().expect("built above"))
                    .build(),
            ),
            Err(e) => {
                problems.push(format!("the OTLP metric exporter: {e}"));
                None
            }
        }
    } else {
        None
    };

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let ids = tracer.is_some();
    let fmt_layer = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .event_format(WithTraceIds {
                inner: tracing_subscriber::fmt::format().with_ansi(ansi),
                json: false,
                ids,
            })
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .event_format(WithTraceIds { inner: tracing_subscriber::fmt::format().json(), json: true, ids })
            .with_filter(filter)
            .boxed(),
    };
    let otel_layer = tracer.as_ref().map(|provider| {
        // Petrel's own spans, the DEBUG ones (database queries) included; nobody else's.
        let targets = Targets::new()
            .with_target("petrel_api", LevelFilter::DEBUG)
            .with_target("petrel_worker", LevelFilter::DEBUG)
            .with_target("petrel_hypervisor", LevelFilter::DEBUG)
            .with_target("petrel_wire", LevelFilter::DEBUG)
            .with_target("petrel_agent", LevelFilter::DEBUG)
            .with_default(LevelFilter::OFF);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_target(false)
            .with_filter(targets)
    });
    let _ = Registry::default().with(fmt_layer).with(otel_layer).try_init();

    if let Some(provider) = &tracer {
        global::set_tracer_provider(provider.clone());
        global::set_text_map_propagator(TraceContextPropagator::new());
        TRACES.store(true, Ordering::Relaxed);
    }
    if let Some(provider) = &meter {
        global::set_meter_provider(provider.clone());
        METRICS.store(true, Ordering::Relaxed);
    }
    for problem in problems {
        tracing::warn!("OpenTelemetry: {problem}; not exporting it");
    }
    if let Some(protocol) = wanted.unsupported_protocol
        && (tracer.is_some() || meter.is_some())
    {
        tracing::warn!("OpenTelemetry: protocol {protocol:?} is not supported; exporting with http/protobuf");
    }
    if tracer.is_some() || meter.is_some() {
        tracing::info!(
            traces = tracer.is_some(),
            metrics = meter.is_some(),
            "exporting OpenTelemetry over OTLP"
        );
    }
    Telemetry { tracer, meter }
}

/// The `traceparent` (and `tracestate`) headers for `span`'s trace, when it has one.
pub fn inject(span: &tracing::Span) -> HashMap<String, String> {
    let mut headers = HashMap::new();
    if traces_enabled() {
        TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    }
    headers
}

/// The remote parent that a request's `traceparent` (and `tracestate`) name; an empty context
/// without one.
pub fn extract<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Context {
    let mut headers = HashMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = header(name) {
            headers.insert(name.to_string(), value.to_string());
        }
    }
    if headers.is_empty() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&headers)
}

/// The OpenTelemetry trace and span ids of the innermost span that has them, whichever layer
/// sees it (request and database spans are DEBUG: exported, but not formatted into log lines).
fn current_ids() -> Option<(String, String)> {
    tracing::dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let mut id = tracing::Subscriber::current_span(registry).id()?.clone();
        loop {
            let data = registry.span_data(&id)?;
            if let Some(otel) = data.extensions().get::<tracing_opentelemetry::OtelData>()
                && let (Some(trace), Some(span)) = (otel.trace_id(), otel.span_id())
                && trace != opentelemetry::TraceId::INVALID
            {
                return Some((trace.to_string(), span.to_string()));
            }
            id = data.parent()?.clone();
        }
    })
}

/// The usual text or JSON line, with `trace_id` and `span_id` when a span has them.
struct WithTraceIds<F> {
    inner: F,
    json: bool,
    /// Whether spans can have ids at all (traces are exported).
    ids: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let ids = if self.ids { current_ids() } else { None };
        let Some((trace_id, span_id)) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        if self.json {
            match line.strip_prefix('{') {
                Some(rest) => {
                    write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}")
                }
                None => writer.write_str(&line),
            }
        } else {
            let body = line.strip_suffix('\n').unwrap_or(&line);
            writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn a_traceparent_is_extracted() {
        let cx = extract(|name| {
            (name == "traceparent").then_some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        });
        use opentelemetry::trace::TraceContextExt;
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_remote());
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        let none = extract(|_| None);
        assert!(!none.span().span_context().is_valid());
    }
}
