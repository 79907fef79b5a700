//! A local OpenTelemetry collector for traces: an OTLP/HTTP receiver
//! (`POST /v1/traces`, protobuf `ExportTraceServiceRequest`) that decodes
//! every export with the protocol's own message types
//! (`opentelemetry-proto`) and keeps the spans, for tests and for the
//! tracing-cost measurement (`loadtest run --otlp`).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// One exported span, flattened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportedSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    /// Attributes, values as strings.
    pub attributes: BTreeMap<String, String>,
    /// `(trace id, span id)` of each link.
    pub links: Vec<(String, String)>,
    /// Names of its events.
    pub events: Vec<String>,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// The status code: `unset`, `ok` or `error`.
    pub status: String,
}

impl ExportedSpan {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<ExportedSpan>,
    requests: usize,
    undecodable: usize,
}

/// The receiver, on a free loopback port; stops when dropped.
pub struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Listen on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Collector> {
        Self::start_on("127.0.0.1:0").await
    }

    /// Listen on `addr`.
    pub async fn start_on(addr: &str) -> std::io::Result<Collector> {
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Collector {
            addr,
            received,
            server,
        })
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.lock().spans.clone()
    }

    /// Export requests received, and how many of them did not decode.
    pub fn requests(&self) -> (usize, usize) {
        let r = self.lock();
        (r.requests, r.undecodable)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn export(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    let decoded = ExportTraceServiceRequest::decode(body);
    let mut r = received.lock().unwrap_or_else(|e| e.into_inner());
    r.requests += 1;
    let Ok(req) = decoded else {
        r.undecodable += 1;
        return StatusCode::BAD_REQUEST;
    };
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|res| value_of(&res.attributes, "service.name"))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                r.spans.push(ExportedSpan {
                    service: service.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: match s.kind {
                        1 => "internal",
                        2 => "server",
                        3 => "client",
                        4 => "producer",
                        5 => "consumer",
                        _ => "unspecified",
                    }
                    .to_owned(),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), any_to_string(kv.value.as_ref())))
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    events: s.events.iter().map(|e| e.name.clone()).collect(),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    status: match s.status.map(|st| st.code) {
                        Some(1) => "ok",
                        Some(2) => "error",
                        _ => "unset",
                    }
                    .to_owned(),
                });
            }
        }
    }
    StatusCode::OK
}

fn value_of(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| any_to_string(kv.value.as_ref()))
}

fn any_to_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(b: &[u8]) -> String {
    base16ct::lower::encode_string(b)
}

/// One trace as an SVG waterfall, the way trace viewers draw it: a row per
/// span (children under their parent, in start order), a bar from its
/// start to its end on a shared time axis, its service, name, duration and
/// the attributes in `show`.
pub fn waterfall(spans: &[ExportedSpan], show: &[&str]) -> String {
    const W: f64 = 1000.0;
    const LABEL: f64 = 430.0;
    const ROW: f64 = 34.0;
    const TOP: f64 = 40.0;
    let Some(t0) = spans.iter().map(|s| s.start_ns).min() else {
        return r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="10" y="25">no spans</text></svg>"#.to_owned();
    };
    let t1 = spans
        .iter()
        .map(|s| s.end_ns)
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    let scale = (W - LABEL - 20.0) / (t1 - t0) as f64;
    let rows = ordered(spans);
    let height = TOP + ROW * rows.len() as f64 + 30.0;
    let total_ms = (t1 - t0) as f64 / 1e6;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="11"><rect width="{W}" height="{height}" fill="white"/><text x="10" y="18" font-size="13" font-weight="bold">trace {} — {} spans, {total_ms:.1} ms</text>"#,
        esc(&spans[0].trace_id),
        spans.len()
    );
    for tick in 0..=4 {
        let x = LABEL + (W - LABEL - 20.0) * f64::from(tick) / 4.0;
        svg += &format!(
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle" fill="#666">{:.1} ms</text>"##,
            TOP - 8.0,
            height - 24.0,
            height - 10.0,
            total_ms * f64::from(tick) / 4.0
        );
    }
    for (i, (depth, s)) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let x = LABEL + (s.start_ns - t0) as f64 * scale;
        let w = ((s.end_ns.saturating_sub(s.start_ns)) as f64 * scale).max(1.5);
        let color = match s.service.as_str() {
            v if v.contains("ingress") => "#4e79a7",
            v if v.contains("worker") => "#59a14f",
            _ => match s.kind.as_str() {
                "server" | "producer" => "#4e79a7",
                "consumer" => "#59a14f",
                "client" => "#f28e2b",
                _ => "#9c755f",
            },
        };
        let ms = s.end_ns.saturating_sub(s.start_ns) as f64 / 1e6;
        let extra: Vec<String> = show
            .iter()
            .filter_map(|k| s.attr(k).map(|v| format!("{k}={v}")))
            .collect();
        svg += &format!(
            r##"<text x="{}" y="{}" font-weight="bold">{}</text><text x="{}" y="{}" fill="#555">{} · {} · {ms:.2} ms</text><rect x="{x:.1}" y="{}" width="{w:.1}" height="14" rx="2" fill="{color}"/><text x="{:.1}" y="{}" fill="#333">{}</text>"##,
            10.0 + 14.0 * f64::from(*depth),
            y + 12.0,
            esc(&s.name),
            10.0 + 14.0 * f64::from(*depth),
            y + 25.0,
            esc(&s.service),
            esc(&s.kind),
            y + 2.0,
            x.min(W - 330.0),
            y + 28.0,
            esc(&extra.join("  "))
        );
    }
    svg + "</svg>"
}

/// Depth-first from the roots, children in start order.
fn ordered(spans: &[ExportedSpan]) -> Vec<(u32, &ExportedSpan)> {
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut roots: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_str()))
        .collect();
    roots.sort_by_key(|s| s.start_ns);
    let mut out = Vec::new();
    let mut stack: Vec<(u32, &ExportedSpan)> = roots.into_iter().rev().map(|s| (0, s)).collect();
    while let Some((d, s)) = stack.pop() {
        out.push((d, s));
        let mut kids: Vec<&ExportedSpan> = spans
            .iter()
            .filter(|c| c.parent_span_id == s.span_id)
            .collect();
        kids.sort_by_key(|c| std::cmp::Reverse(c.start_ns));
        stack.extend(kids.into_iter().map(|c| (d + 1, c)));
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
