//! An OTLP/HTTP receiver for tests: a small HTTP/1.1 server on 127.0.0.1 that accepts
//! `POST /v1/traces` and `POST /v1/metrics` (protobuf, as Petrel exports them), decodes them
//! with `opentelemetry-proto` and keeps every span and data point, flattened, for assertions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One received span.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// 1 internal, 2 server, 3 client (OTLP's SpanKind).
    pub kind: i32,
    pub attributes: HashMap<String, String>,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One received data point: a gauge or sum's value, or a histogram's count.
#[derive(Debug, Clone)]
pub struct Point {
    pub service: String,
    pub metric: String,
    pub unit: String,
    pub attributes: HashMap<String, String>,
    pub value: f64,
    /// Histograms only: the sum of the recorded values.
    pub sum: Option<f64>,
}

impl Point {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    points: Vec<Point>,
    /// Every request's headers and body, as text (lossy), to check that no secret left.
    raw: Vec<String>,
}

/// The receiver; stops with the test's runtime.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    received: Arc<Mutex<Received>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the OTLP receiver");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, shared.clone()));
            }
        });
        Receiver { endpoint, received }
    }

    /// The `OTEL_*` variables that point a Petrel process here, exporting quickly.
    pub fn env(&self, service: &str) -> Vec<(String, String)> {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.as_str()),
            ("OTEL_SERVICE_NAME", service),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }

    pub fn points(&self) -> Vec<Point> {
        self.received.lock().unwrap().points.clone()
    }

    /// Everything received, as text, for "never this secret" checks.
    pub fn raw(&self) -> String {
        self.received.lock().unwrap().raw.join("\n")
    }

    /// Polls until `find` finds something in what was received (for at most `limit`).
    pub async fn until<T>(&self, what: &str, limit: Duration, find: impl Fn(&Receiver) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = find(self) {
                return found;
            }
            if Instant::now() > deadline {
                let spans: Vec<String> = self
                    .spans()
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} {}<-{} {:?}",
                            s.service, s.name, s.span_id, s.parent_span_id, s.attributes
                        )
                    })
                    .collect();
                let mut metrics: Vec<String> =
                    self.points().iter().map(|p| format!("{} {}", p.service, p.metric)).collect();
                metrics.sort();
                metrics.dedup();
                panic!(
                    "never received {what}\nspans:\n{}\nmetrics:\n{}",
                    spans.join("\n"),
                    metrics.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The span and its ancestors (among the spans received), innermost first.
    pub fn ancestry(&self, span: &Span) -> Vec<Span> {
        let spans = self.spans();
        let mut chain = vec![span.clone()];
        let mut current = span.clone();
        while !current.parent_span_id.is_empty() {
            let Some(parent) =
                spans.iter().find(|s| s.trace_id == current.trace_id && s.span_id == current.parent_span_id)
            else {
                break;
            };
            chain.push(parent.clone());
            current = parent.clone();
        }
        chain
    }
}

async fn connection(stream: tokio::net::TcpStream, received: Arc<Mutex<Received>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut length = 0usize;
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
            headers.push_str(&line);
        }
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let status = match record(&path, &body, &received) {
            Ok(()) => "200 OK",
            Err(()) => "400 Bad Request",
        };
        received
            .lock()
            .unwrap()
            .raw
            .push(format!("{request_line}{headers}{}", String::from_utf8_lossy(&body)));
        let answer =
            format!("HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
        if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

fn service(resource: &Option<opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource.as_ref().and_then(|r| attributes(&r.attributes).remove("service.name")).unwrap_or_default()
}

fn record(path: &str, body: &[u8], received: &Mutex<Received>) -> Result<(), ()> {
    let mut received = received.lock().unwrap();
    match path {
        "/v1/traces" => {
            let request = ExportTraceServiceRequest::decode(body).map_err(drop)?;
            for resource_spans in request.resource_spans {
                let service = service(&resource_spans.resource);
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        received.spans.push(Span {
                            service: service.clone(),
                            trace_id: hex::encode(&span.trace_id),
                            span_id: hex::encode(&span.span_id),
                            parent_span_id: hex::encode(&span.parent_span_id),
                            name: span.name,
                            kind: span.kind,
                            attributes: attributes(&span.attributes),
                        });
                    }
                }
            }
            Ok(())
        }
        "/v1/metrics" => {
            let request = ExportMetricsServiceRequest::decode(body).map_err(drop)?;
            for resource_metrics in request.resource_metrics {
                let service = service(&resource_metrics.resource);
                for scope in resource_metrics.scope_metrics {
                    for m in scope.metrics {
                        let point =
                            |attributes: HashMap<String, String>, value: f64, sum: Option<f64>| Point {
                                service: service.clone(),
                                metric: m.name.clone(),
                                unit: m.unit.clone(),
                                attributes,
                                value,
                                sum,
                            };
                        let number = |v: &Option<number_data_point::Value>| match v {
                            Some(number_data_point::Value::AsDouble(d)) => *d,
                            Some(number_data_point::Value::AsInt(i)) => *i as f64,
                            None => f64::NAN,
                        };
                        let points: Vec<Point> = match &m.data {
                            Some(metric::Data::Gauge(g)) => g
                                .data_points
                                .iter()
                                .map(|p| point(attributes(&p.attributes), number(&p.value), None))
                                .collect(),
                            Some(metric::Data::Sum(s)) => s
                                .data_points
                                .iter()
                                .map(|p| point(attributes(&p.attributes), number(&p.value), None))
                                .collect(),
                            Some(metric::Data::Histogram(h)) => h
                                .data_points
                                .iter()
                                .map(|p| point(attributes(&p.attributes), p.count as f64, p.sum))
                                .collect(),
                            _ => Vec::new(),
                        };
                        received.points.extend(points);
                    }
                }
            }
            Ok(())
        }
        _ => Err(()),
    }
}
