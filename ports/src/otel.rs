//! Traces: `tracing` spans exported over OpenTelemetry (OTLP/HTTP,
//! protobuf), and the W3C trace context carried through the queue.
//!
//! Configured only by the standard variables, read by the SDK itself:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
//! and `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*` (batching),
//! `OTEL_EXPORTER_OTLP_TIMEOUT`. Off — no layer, no exporter, nothing
//! recorded — when no endpoint is set or `OTEL_SDK_DISABLED=true`.
//! `OTEL_EXPORTER_OTLP_PROTOCOL` must be `http/protobuf` (the default):
//! another value is refused with a warning and tracing stays off.
//!
//! The exporter never holds up a request: a finished span goes to a bounded
//! queue ([`QUEUE_LIMIT`] spans in flight), a thread of the SDK exports
//! batches with a blocking HTTP client, and a span that finds the queue full
//! or whose batch the collector refused is counted in
//! [`SPANS_DROPPED`] and dropped. [`flush`] exports what is queued (Lambda:
//! at the end of each invocation); [`Tracing`]'s drop flushes and shuts the
//! exporter down.
//!
//! Only the spans of this workspace's crates are exported (at INFO), not
//! those of the SDKs or HTTP libraries underneath.
//!
//! Sampling is decided once per trace, where it starts ([`root_span`]: the
//! ingress request, the worker's message, the Lambda invocation), by the
//! sampler `OTEL_TRACES_SAMPLER[_ARG]` names. A trace it drops costs next
//! to nothing: the export layer's filter turns its spans, and every span
//! under them, off before they are built.
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler,
    SamplingDecision, SdkTracerProvider, ShouldSample, Span, SpanData, SpanExporter, SpanProcessor,
};
use tracing::subscriber::Interest;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context as LayerContext, Filter};
use tracing_subscriber::registry::LookupSpan;

/// Counter: spans not exported — the queue was full or the collector
/// refused or did not answer. No labels.
pub const SPANS_DROPPED: &str = "switchyard_otel_spans_dropped_total";
/// Counter: spans exported. No labels.
pub const SPANS_EXPORTED: &str = "switchyard_otel_spans_exported_total";
/// Most finished spans waiting for export; more are dropped (and counted).
pub const QUEUE_LIMIT: usize = 4096;

/// The crates whose spans are exported.
const OUR_CRATES: [&str; 7] = [
    "ingress",
    "worker",
    "downstream",
    "ports",
    "conversation",
    "ops",
    "switchyard",
];

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
/// The sampler of trace roots, while tracing is on.
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

thread_local! {
    /// While [`root_span`] builds a root: whether its trace is kept.
    static ROOT_KEPT: Cell<Option<bool>> = const { Cell::new(None) };
}

/// The tracer provider while tracing is on. Flushes and shuts down on drop.
#[derive(Debug)]
#[must_use = "dropping it shuts the exporter down"]
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Drop for Tracing {
    fn drop(&mut self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

/// Why tracing stays off although it was asked for.
fn refused(why: &str) {
    // No subscriber yet: stderr is the only place to say it.
    eprintln!("switchyard: OpenTelemetry tracing off: {why}");
}

/// Whether the environment turns tracing on.
fn wanted() -> Option<()> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
    let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".to_owned());
    if protocol.trim() != "http/protobuf" {
        refused(&format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol:?}; only http/protobuf is built in"
        ));
        return None;
    }
    Some(())
}

/// The export layer for a subscriber, when the environment turns tracing on
/// (see the module docs); `service` is the `service.name` unless
/// `OTEL_SERVICE_NAME` says otherwise. Keep the [`Tracing`] until the
/// process ends.
pub fn layer<S>(service: &str) -> Option<(Tracing, impl Layer<S> + Send + Sync + 'static)>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    wanted()?;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            refused(&format!("the OTLP exporter could not be built: {e}"));
            return None;
        }
    };
    let queued = Arc::new(AtomicUsize::new(0));
    let batches = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        queued: queued.clone(),
    })
    // Room beyond our own limit: the SDK's queue never drops uncounted.
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE_LIMIT * 2)
            .build(),
    )
    .build();
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    // Roots are sampled by `root_span`, before their spans exist; a span
    // that reaches the SDK belongs to a kept trace.
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_span_processor(Bounded {
            inner: batches,
            queued,
        })
        .with_resource(resource.build())
        .build();
    let _ = SAMPLER.set(sampler_from_env());
    let _ = PROVIDER.set(provider.clone());
    let tracer = provider.tracer("switchyard");
    let mut targets = Targets::new();
    for c in OUR_CRATES {
        targets = targets.with_target(c, LevelFilter::INFO);
    }
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_filter(KeptTraces { targets });
    Some((Tracing { provider }, layer))
}

/// Install `log` and, when the environment turns tracing on, the export
/// layer (`service` as `service.name`) as the process's subscriber. Does
/// nothing if the process already has one. Keep the [`Tracing`] returned.
pub fn install(
    log: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>,
    service: &str,
) -> Option<Tracing> {
    use tracing_subscriber::prelude::*;
    let (traces, export) = match layer(service) {
        Some((t, l)) => (Some(t), Some(l)),
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(export)
        .try_init();
    traces
}

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name
/// (the SDK's names and defaults: `parentbased_always_on`; a ratio that is
/// missing or outside 0..=1 is 1).
fn sampler_from_env() -> Sampler {
    let ratio = || {
        std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0)
    };
    let name = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio())))
        }
        "" | "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        other => {
            refused(&format!(
                "OTEL_TRACES_SAMPLER={other:?} is not one this build knows; sampling as parentbased_always_on"
            ));
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
        }
    }
}

/// Whether the trace a root continues from `parent` (a `traceparent`), or
/// starts, is kept.
fn keep(parent: Option<&Context>, name: &str) -> bool {
    let Some(sampler) = SAMPLER.get() else {
        return false;
    };
    let trace_id = parent
        .map(|cx| cx.span().span_context().trace_id())
        .unwrap_or_else(|| RandomIdGenerator::default().new_trace_id());
    let result = sampler.should_sample(parent, trace_id, name, &SpanKind::Internal, &[], &[]);
    result.decision == SamplingDecision::RecordAndSample
}

/// Build the span where a trace starts or enters this process — `make`
/// creates it — as a child of `parent` (an inbound header, a message
/// attribute; `None` or invalid: a new trace). The sampler decides here
/// whether the trace is exported; a dropped one's spans are never built for
/// export. While tracing is off this is just `make()`.
pub fn root_span(parent: Option<&str>, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if !enabled() {
        return make();
    }
    let cx = parent.and_then(extract);
    let kept = keep(cx.as_ref(), "root");
    ROOT_KEPT.with(|k| k.set(Some(kept)));
    let span = make();
    ROOT_KEPT.with(|k| k.set(None));
    if let Some(cx) = cx.filter(|_| kept) {
        let _ = span.set_parent(cx);
    }
    span
}

/// The export layer's filter: this workspace's spans and events at INFO,
/// and of those only a root [`root_span`] kept and what happens inside a
/// kept span.
#[derive(Debug)]
struct KeptTraces {
    targets: Targets,
}

impl<S> Filter<S> for KeptTraces
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &LayerContext<'_, S>) -> bool {
        if !self.targets.would_enable(meta.target(), meta.level()) {
            return false;
        }
        if meta.is_span()
            && let Some(kept) = ROOT_KEPT.with(Cell::get)
        {
            return kept;
        }
        // Only spans this filter enabled are seen here.
        cx.lookup_current().is_some()
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        if self.targets.would_enable(meta.target(), meta.level()) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }
}

/// Export what is queued now and wait for it (bounded by the exporter's
/// timeout). A no-op while tracing is off. Blocks: call it from
/// `spawn_blocking` in async code.
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}

/// True while spans are exported.
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// The span processor that bounds the queue: a finished span over
/// [`QUEUE_LIMIT`] in flight is dropped here and counted.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queued: Arc<AtomicUsize>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE_LIMIT {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!(SPANS_DROPPED).increment(1);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, counting what it exported and what it lost.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.queued.fetch_sub(n, Ordering::Relaxed);
        let name = if result.is_ok() {
            SPANS_EXPORTED
        } else {
            SPANS_DROPPED
        };
        metrics::counter!(name).increment(u64::try_from(n).unwrap_or(u64::MAX));
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The W3C trace context in `traceparent`, if valid.
fn extract(traceparent: &str) -> Option<Context> {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Make `span` a child of the trace context `traceparent` (an inbound
/// header, a queue message's attribute). Call before the span is entered.
/// Nothing happens while tracing is off or when `traceparent` is invalid.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(cx) = traceparent.filter(|_| enabled()).and_then(extract) {
        let _ = span.set_parent(cx);
    }
}

/// Link `span` to the trace context `traceparent` (a batch's messages).
pub fn add_link(span: &tracing::Span, traceparent: &str) {
    if let Some(cx) = Some(traceparent).filter(|_| enabled()).and_then(extract) {
        span.add_link(cx.span().span_context().clone());
    }
}

/// `span`'s own trace context as a `traceparent`, while tracing is on.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format_traceparent(&sc))
}

/// The `traceparent` a message sent inside `span` carries: `span`'s context
/// when its trace is exported; else `fallback` (a hand-made one keeping the
/// trace id), with its sampled flag cleared when tracing is on — the trace
/// was dropped here, so the consumer drops it too.
pub fn message_traceparent(span: &tracing::Span, fallback: impl FnOnce() -> String) -> String {
    if let Some(tp) = traceparent(span) {
        return tp;
    }
    let tp = fallback();
    if !enabled() {
        return tp;
    }
    match tp.rsplit_once('-') {
        Some((head, flags)) => match u8::from_str_radix(flags, 16) {
            Ok(f) => format!("{head}-{:02x}", f & !1),
            Err(_) => tp,
        },
        None => tp,
    }
}

fn format_traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Hand `set` the `traceparent` header of `span`'s context (an outgoing
/// request), while tracing is on.
pub fn inject(span: &tracing::Span, mut set: impl FnMut(&'static str, String)) {
    if let Some(tp) = traceparent(span) {
        set("traceparent", tp);
    }
}

/// An X-Ray trace header (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;
/// Sampled=<0|1>`, SQS's `AWSTraceHeader`) as a `traceparent`.
pub fn traceparent_from_xray(header: &str) -> Option<String> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = "01";
    for part in header.split(';') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Root" => root = Some(v),
            "Parent" => parent = Some(v),
            "Sampled" if v == "0" => sampled = "00",
            _ => {}
        }
    }
    let mut r = root?.split('-');
    let (ver, time, rest) = (r.next()?, r.next()?, r.next()?);
    let trace = format!("{time}{rest}");
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (ver == "1" && r.next().is_none() && hex(&trace, 32) && hex(parent?, 16)).then(|| {
        format!(
            "00-{}-{}-{sampled}",
            trace.to_ascii_lowercase(),
            parent.unwrap_or_default().to_ascii_lowercase()
        )
    })
}

/// A `traceparent` as an X-Ray trace header, for SQS's `AWSTraceHeader`.
pub fn xray_from_traceparent(traceparent: &str) -> Option<String> {
    let cx = extract(traceparent)?;
    let sc = cx.span().span_context().clone();
    let trace = sc.trace_id().to_string();
    Some(format!(
        "Root=1-{}-{};Parent={};Sampled={}",
        &trace[..8],
        &trace[8..],
        sc.span_id(),
        u8::from(sc.is_sampled())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_headers_and_traceparents_convert_both_ways() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let tp = traceparent_from_xray(xray).expect("valid");
        assert_eq!(
            tp,
            "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
        );
        assert_eq!(xray_from_traceparent(&tp).as_deref(), Some(xray));
        assert_eq!(
            traceparent_from_xray(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
            )
            .as_deref(),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00")
        );
        // Lambda's own header may carry more fields (Lineage) and no Parent.
        assert!(
            traceparent_from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1").is_none()
        );
        assert!(
            traceparent_from_xray(
                "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8"
            )
            .is_none()
        );
        assert!(traceparent_from_xray("garbage").is_none());
        assert!(
            xray_from_traceparent("00-00000000000000000000000000000000-53995c3f42cd8ad8-01")
                .is_none()
        );
    }

    #[test]
    fn off_without_an_endpoint_and_nothing_is_propagated() {
        // The test process sets no OTEL_* endpoint: no provider is set up.
        assert!(!enabled());
        let span = tracing::info_span!("x");
        assert_eq!(traceparent(&span), None);
        set_parent(
            &span,
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"),
        );
    }
}
