//! What the API tells OpenTelemetry: a server span and a duration per HTTP request
//! ([`RequestTelemetry`]), the metrics of builds, uploads, deployments and unikernels, and
//! gauges sampled from the database ([`spawn_sampler`]). Everything here is a no-op unless
//! `petrel_wire::telemetry::init` installed an exporter (see the README's "Observability").
//!
//! Never recorded: request headers (Authorization, cookies, CSRF tokens), bodies, query strings.

use std::collections::BTreeMap;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use petrel_wire::builds::{BuildResult, OpenUpload};
use petrel_wire::deployments::DeploymentStats;
use petrel_wire::telemetry::opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, ObservableGauge};
use petrel_wire::telemetry::opentelemetry::trace::TraceContextExt;
use petrel_wire::telemetry::{self, KeyValue, OpenTelemetrySpanExt};
use sqlx::PgPool;
use tracing::Instrument;
use tracing::field::Empty;
use uuid::Uuid;

/// Seconds, as OpenTelemetry's semantic conventions bucket HTTP durations.
const DURATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0];
/// Builds and queue waits last from seconds to hours.
const LONG_BUCKETS: &[f64] =
    &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0];
const SIZE_BUCKETS: &[f64] =
    &[1024.0, 16384.0, 131072.0, 1048576.0, 8388608.0, 67108864.0, 536870912.0, 4294967296.0];

/// The API's instruments, made on first use (after `init` installed the meter provider).
struct Metrics {
    http_duration: Histogram<f64>,
    queue_wait: Histogram<f64>,
    build_duration: Histogram<f64>,
    builds_finished: Counter<u64>,
    upload_size: Histogram<u64>,
    upload_duration: Histogram<f64>,
    unikernel_memory: Gauge<u64>,
    unikernel_cpu: Gauge<f64>,
    unikernel_uptime: Gauge<f64>,
    unikernel_net_io: Gauge<u64>,
    unikernel_net_packets: Gauge<u64>,
}

fn meter() -> Meter {
    telemetry::global::meter("petrel-api")
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = meter();
    Metrics {
        http_duration: m
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        queue_wait: m
            .f64_histogram("petrel.build.queue.wait")
            .with_unit("s")
            .with_description("From a build's enqueueing to a worker's claim")
            .with_boundaries(LONG_BUCKETS.to_vec())
            .build(),
        build_duration: m
            .f64_histogram("petrel.build.duration")
            .with_unit("s")
            .with_description("Duration of builds (start to finish on the worker), by outcome")
            .with_boundaries(LONG_BUCKETS.to_vec())
            .build(),
        builds_finished: m
            .u64_counter("petrel.build.finished")
            .with_unit("{build}")
            .with_description("Builds whose result was accepted, by outcome")
            .build(),
        upload_size: m
            .u64_histogram("petrel.upload.size")
            .with_unit("By")
            .with_description("Size of uploaded artifacts")
            .with_boundaries(SIZE_BUCKETS.to_vec())
            .build(),
        upload_duration: m
            .f64_histogram("petrel.upload.duration")
            .with_unit("s")
            .with_description("Duration of artifact uploads (receiving, hashing, storing)")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
        unikernel_memory: m
            .u64_gauge("petrel.unikernel.memory.usage")
            .with_unit("By")
            .with_description("Resident memory of a unikernel's tender, guest memory included")
            .build(),
        unikernel_cpu: m
            .f64_gauge("petrel.unikernel.cpu.time")
            .with_unit("s")
            .with_description("CPU time of a unikernel's tender since it started, by cpu.mode")
            .build(),
        unikernel_uptime: m
            .f64_gauge("petrel.unikernel.uptime")
            .with_unit("s")
            .with_description("Time since a unikernel's tender started")
            .build(),
        unikernel_net_io: m
            .u64_gauge("petrel.unikernel.network.io")
            .with_unit("By")
            .with_description("Bytes through a unikernel's network device since it started")
            .build(),
        unikernel_net_packets: m
            .u64_gauge("petrel.unikernel.network.packets")
            .with_unit("{packet}")
            .with_description("Packets through a unikernel's network device since it started")
            .build(),
    }
});

/// The server span and `http.server.request.duration` of every request: the middleware.
pub struct RequestTelemetry;

impl<S, B> Transform<S, ServiceRequest> for RequestTelemetry
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestTelemetryService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestTelemetryService { service }))
    }
}

pub struct RequestTelemetryService<S> {
    service: S,
}

type BoxedResponse<B> = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, Error>>>>;

impl<S, B> Service<ServiceRequest> for RequestTelemetryService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = futures_util::future::Either<S::Future, BoxedResponse<B>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let (traces, metrics) = (telemetry::traces_enabled(), telemetry::metrics_enabled());
        if !traces && !metrics {
            return futures_util::future::Either::Left(self.service.call(req));
        }
        let started = Instant::now();
        let method = req.method().as_str().to_owned();
        let scheme = req.connection_info().scheme().to_owned();
        let span = if traces {
            let parent = telemetry::extract(|name| req.headers().get(name).and_then(|v| v.to_str().ok()));
            // DEBUG: exported, but not formatted by the log layer on every request.
            let span = tracing::debug_span!(
                "http.server",
                otel.name = %method,
                otel.kind = "server",
                otel.status_code = Empty,
                http.request.method = %method,
                http.route = Empty,
                http.response.status_code = Empty,
                url.path = req.path(),
                url.scheme = %scheme,
                user_agent.original = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
                enduser.id = Empty,
                petrel.token_id = Empty,
                petrel.tenant_id = Empty,
                petrel.worker.name = Empty,
                petrel.agent.name = Empty,
            );
            let _ = span.set_parent(parent);
            span
        } else {
            tracing::Span::none()
        };
        let fut = span.in_scope(|| self.service.call(req));
        futures_util::future::Either::Right(Box::pin(async move {
            let result = fut.instrument(span.clone()).await;
            let (status, route, tenant) = match &result {
                Ok(res) => {
                    let request = res.request();
                    let route = request.match_pattern();
                    // Routes under a tenant name it in their path.
                    let tenant = route
                        .as_deref()
                        .filter(|r| r.starts_with("/api/v1/tenants/{tenant_id}"))
                        .and_then(|_| request.match_info().get("tenant_id"))
                        .and_then(|id| id.parse::<Uuid>().ok());
                    (res.status().as_u16(), route, tenant)
                }
                Err(e) => (e.as_response_error().status_code().as_u16(), None, None),
            };
            if traces {
                if let Some(route) = &route {
                    span.record("http.route", route.as_str());
                    // Known only after routing, when the span has started: renamed in place.
                    span.context().span().update_name(format!("{method} {route}"));
                }
                span.record("http.response.status_code", status);
                if let Some(tenant) = tenant {
                    span.record("petrel.tenant_id", tenant.to_string());
                }
                if status >= 500 {
                    span.record("otel.status_code", "error");
                }
            }
            if metrics {
                let mut attributes = vec![
                    KeyValue::new("http.request.method", method),
                    KeyValue::new("http.response.status_code", i64::from(status)),
                    KeyValue::new("url.scheme", scheme),
                ];
                if let Some(route) = route {
                    attributes.push(KeyValue::new("http.route", route));
                }
                METRICS.http_duration.record(started.elapsed().as_secs_f64(), &attributes);
            }
            result
        }))
    }
}

/// Notes who calls on the request's span (ids only, never credentials).
pub fn note_user(user_id: Uuid, token_id: Option<Uuid>) {
    if telemetry::traces_enabled() {
        let span = tracing::Span::current();
        span.record("enduser.id", user_id.to_string());
        if let Some(token) = token_id {
            span.record("petrel.token_id", token.to_string());
        }
    }
}

/// Notes the tenant a request acts in on its span.
pub fn note_tenant(tenant_id: Uuid) {
    if telemetry::traces_enabled() {
        tracing::Span::current().record("petrel.tenant_id", tenant_id.to_string());
    }
}

/// Notes the calling worker or agent on the request's span.
pub fn note_machine(worker: Option<&str>, agent: Option<&str>) {
    if telemetry::traces_enabled() {
        let span = tracing::Span::current();
        if let Some(worker) = worker {
            span.record("petrel.worker.name", worker);
        }
        if let Some(agent) = agent {
            span.record("petrel.agent.name", agent);
        }
    }
}

/// A worker claimed a build that was enqueued `waited` ago.
pub fn build_claimed(platform: &str, waited: Duration) {
    if telemetry::metrics_enabled() {
        METRICS
            .queue_wait
            .record(waited.as_secs_f64(), &[KeyValue::new("petrel.platform", platform.to_owned())]);
    }
}

/// The outcome of an upload's build, as `insert_build` decides it.
fn outcome(meta: &OpenUpload) -> &'static str {
    if meta.timed_out {
        "timed_out"
    } else if matches!(meta.result, BuildResult::Exited { code: 0 }) {
        "succeeded"
    } else {
        "failed"
    }
}

/// A build's result was accepted.
pub fn build_finished(meta: &OpenUpload) {
    if telemetry::metrics_enabled() {
        let seconds = (meta.finished_at - meta.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        let attributes = [
            KeyValue::new("petrel.platform", meta.platform.clone()),
            KeyValue::new("petrel.build.outcome", outcome(meta)),
        ];
        METRICS.build_duration.record(seconds, &attributes);
        METRICS.builds_finished.add(1, &attributes);
    }
}

/// An artifact of `bytes` was received and stored in `took`.
pub fn artifact_uploaded(bytes: u64, took: Duration) {
    if telemetry::metrics_enabled() {
        METRICS.upload_size.record(bytes, &[]);
        METRICS.upload_duration.record(took.as_secs_f64(), &[]);
    }
}

/// A stats sample an agent sent for one of its unikernels.
pub fn unikernel_stats(deployment: Uuid, agent: &str, stats: &DeploymentStats) {
    if !telemetry::metrics_enabled() {
        return;
    }
    let base = [
        KeyValue::new("petrel.deployment.id", deployment.to_string()),
        KeyValue::new("petrel.agent.name", agent.to_owned()),
    ];
    let with = |extra: &[KeyValue]| base.iter().cloned().chain(extra.iter().cloned()).collect::<Vec<_>>();
    let m = &*METRICS;
    m.unikernel_memory.record(stats.rss_kib.saturating_mul(1024), &base);
    m.unikernel_uptime.record(stats.uptime_ms as f64 / 1000.0, &base);
    m.unikernel_cpu.record(stats.cpu_user_ms as f64 / 1000.0, &with(&[KeyValue::new("cpu.mode", "user")]));
    m.unikernel_cpu
        .record(stats.cpu_system_ms as f64 / 1000.0, &with(&[KeyValue::new("cpu.mode", "system")]));
    for net in &stats.nets {
        for (direction, bytes, packets) in
            [("receive", net.rx_bytes, net.rx_packets), ("transmit", net.tx_bytes, net.tx_packets)]
        {
            let attributes = with(&[
                KeyValue::new("network.interface.name", net.device.clone()),
                KeyValue::new("network.io.direction", direction),
            ]);
            m.unikernel_net_io.record(bytes, &attributes);
            m.unikernel_net_packets.record(packets, &attributes);
        }
    }
}

/// Gauges read from the database now and then: queue depth per platform, deployments by
/// state per agent, heartbeat ages. The callbacks read the last sample.
#[derive(Default)]
struct Sample {
    queue_depth: BTreeMap<String, u64>,
    deployments: BTreeMap<(String, String), u64>,
    agent_heartbeat_age: BTreeMap<String, f64>,
    worker_heartbeat_age: BTreeMap<String, f64>,
}

static SAMPLE: LazyLock<Mutex<Sample>> = LazyLock::new(Mutex::default);
/// Registered once per process (the callbacks live as long as the meter provider).
static GAUGES: OnceLock<Vec<ObservableGauge<f64>>> = OnceLock::new();

fn register_gauges() {
    GAUGES.get_or_init(|| {
        let m = meter();
        let sample = || SAMPLE.lock().unwrap_or_else(|e| e.into_inner());
        vec![
            m.f64_observable_gauge("petrel.build.queue.depth")
                .with_unit("{build}")
                .with_description("Builds waiting for a worker, per platform")
                .with_callback(move |o| {
                    let rows: Vec<_> = sample().queue_depth.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    for (platform, n) in rows {
                        o.observe(n as f64, &[KeyValue::new("petrel.platform", platform)]);
                    }
                })
                .build(),
            m.f64_observable_gauge("petrel.deployments")
                .with_unit("{deployment}")
                .with_description("Deployments by state, per agent")
                .with_callback(move |o| {
                    let rows: Vec<_> = sample().deployments.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    for ((agent, state), n) in rows {
                        o.observe(
                            n as f64,
                            &[
                                KeyValue::new("petrel.agent.name", agent),
                                KeyValue::new("petrel.deployment.state", state),
                            ],
                        );
                    }
                })
                .build(),
            m.f64_observable_gauge("petrel.agent.heartbeat.age")
                .with_unit("s")
                .with_description("Time since each agent was last heard from")
                .with_callback(move |o| {
                    let rows: Vec<_> =
                        sample().agent_heartbeat_age.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    for (agent, age) in rows {
                        o.observe(age, &[KeyValue::new("petrel.agent.name", agent)]);
                    }
                })
                .build(),
            m.f64_observable_gauge("petrel.worker.heartbeat.age")
                .with_unit("s")
                .with_description("Time since each worker was last heard from")
                .with_callback(move |o| {
                    let rows: Vec<_> =
                        sample().worker_heartbeat_age.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    for (worker, age) in rows {
                        o.observe(age, &[KeyValue::new("petrel.worker.name", worker)]);
                    }
                })
                .build(),
        ]
    });
}

/// How often the gauges are sampled: as often as metrics are exported, within 1 to 15 s.
fn sample_interval() -> Duration {
    let ms = std::env::var("OTEL_METRIC_EXPORT_INTERVAL").ok().and_then(|v| v.trim().parse::<u64>().ok());
    Duration::from_millis(ms.unwrap_or(15_000).clamp(200, 15_000))
}

async fn take_sample(db: &PgPool, seen: &mut Sample) -> Result<(), sqlx::Error> {
    // Every platform a worker serves, and every platform with queued builds.
    let queued: Vec<(String, i64)> = sqlx::query_as(
        "SELECT p.platform, (SELECT count(*) FROM builds b WHERE b.status = 'queued' AND b.platform = p.platform)
           FROM (SELECT platform FROM workers WHERE platform IS NOT NULL AND revoked_at IS NULL
                 UNION SELECT platform FROM builds WHERE status = 'queued') p",
    )
    .fetch_all(db)
    .await?;
    let deployments: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT coalesce(a.name, ''), d.state::text, count(*)
           FROM deployments d LEFT JOIN agents a ON a.id = d.agent_id GROUP BY 1, 2",
    )
    .fetch_all(db)
    .await?;
    let agents: Vec<(String, f64)> = sqlx::query_as(
        "SELECT name, extract(epoch FROM now() - last_seen_at)::float8 FROM agents
          WHERE revoked_at IS NULL AND last_seen_at IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    let workers: Vec<(String, f64)> = sqlx::query_as(
        "SELECT name, extract(epoch FROM now() - last_seen_at)::float8 FROM workers
          WHERE revoked_at IS NULL AND last_seen_at IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    // What was seen once and is gone now reads 0 (an empty queue), not "no data".
    for n in seen.queue_depth.values_mut() {
        *n = 0;
    }
    for n in seen.deployments.values_mut() {
        *n = 0;
    }
    seen.queue_depth.extend(queued.into_iter().map(|(p, n)| (p, n as u64)));
    seen.deployments.extend(deployments.into_iter().map(|(a, s, n)| ((a, s), n as u64)));
    seen.agent_heartbeat_age = agents.into_iter().collect();
    seen.worker_heartbeat_age = workers.into_iter().collect();
    let mut shared = SAMPLE.lock().unwrap_or_else(|e| e.into_inner());
    shared.queue_depth = seen.queue_depth.clone();
    shared.deployments = seen.deployments.clone();
    shared.agent_heartbeat_age = seen.agent_heartbeat_age.clone();
    shared.worker_heartbeat_age = seen.worker_heartbeat_age.clone();
    Ok(())
}

/// Samples the database gauges while the server runs; `None` when metrics are not exported.
pub fn spawn_sampler(db: PgPool) -> Option<tokio::task::JoinHandle<()>> {
    if !telemetry::metrics_enabled() {
        return None;
    }
    register_gauges();
    let every = sample_interval();
    Some(tokio::spawn(async move {
        let mut seen = Sample::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = take_sample(&db, &mut seen).await {
                tracing::debug!("sampling the gauges: {e}");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_match_insert_build() {
        let now = chrono::Utc::now();
        let mut meta = OpenUpload {
            platform: "p".into(),
            build_id: None,
            started_at: now,
            finished_at: now,
            result: BuildResult::Exited { code: 0 },
            script: None,
            worker: None,
            timed_out: false,
        };
        assert_eq!(outcome(&meta), "succeeded");
        meta.result = BuildResult::Exited { code: 2 };
        assert_eq!(outcome(&meta), "failed");
        meta.timed_out = true;
        assert_eq!(outcome(&meta), "timed_out");
    }
}
