//! The HTTP handlers. Each webhook handler runs: authenticate → limits →
//! normalize → idempotency flow → answer, inside one span carrying
//! `route`, `event_id` and `conversation_id`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde_json::json;
use tracing::Instrument;

use crate::auth::Presented;
use crate::config::BodyLimits;
use crate::error::Reject;
use crate::flow::{self, Accepted};
use crate::metrics as m;
use crate::normalize::{self, Source};
use crate::sns::{self, Kind};
use crate::{Shared, limits, trace};

/// A webhook route's fixed properties.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub name: &'static str,
    /// Its path, and the span name `POST <path>`.
    pub path: &'static str,
    pub span_name: &'static str,
    pub source: Source,
    pub content_types: &'static [&'static str],
    pub limit: fn(&BodyLimits) -> usize,
}

fn richpanel_limit(l: &BodyLimits) -> usize {
    l.richpanel
}
fn email_limit(l: &BodyLimits) -> usize {
    l.email
}
fn ses_limit(l: &BodyLimits) -> usize {
    l.ses
}

pub(crate) const RICHPANEL: Route = Route {
    name: "richpanel",
    path: "/webhooks/richpanel",
    span_name: "POST /webhooks/richpanel",
    source: Source::Richpanel,
    content_types: &["application/json", "text/plain"],
    limit: richpanel_limit,
};
pub(crate) const EMAIL: Route = Route {
    name: "email",
    path: "/webhooks/email",
    span_name: "POST /webhooks/email",
    source: Source::Email,
    content_types: &["message/rfc822", "application/octet-stream"],
    limit: email_limit,
};
pub(crate) const SES: Route = Route {
    name: "ses",
    path: "/webhooks/ses",
    span_name: "POST /webhooks/ses",
    source: Source::Ses,
    // SNS posts `text/plain; charset=UTF-8`.
    content_types: &["text/plain", "application/json"],
    limit: ses_limit,
};

/// The body of a 202/200 ack: `{"event_id": ..., "status": ...}`.
#[derive(serde::Serialize)]
struct AckBody<'a> {
    event_id: &'a str,
    status: &'static str,
}

/// A 2xx answer.
enum Answer {
    /// The idempotency flow ran: 202 accepted or 200 duplicate.
    Acked(Accepted, String),
    /// 200 with just a status word (`subscribed`, `ignored`).
    Status(&'static str),
}

type Outcome = Result<Answer, Reject>;

pub(crate) async fn richpanel(
    State(st): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    token_route(st, RICHPANEL, headers, body).await
}

pub(crate) async fn email(
    State(st): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    token_route(st, EMAIL, headers, body).await
}

async fn token_route(st: Arc<Shared>, route: Route, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let span = webhook_span(route, &headers);
    let outcome = async {
        let presented = st.auth.check_headers(&headers).await?;
        limits::content_type(&headers, route.content_types)?;
        let bytes = limits::read_body(&headers, body, (route.limit)(&st.cfg.limits)).await?;
        if let Presented::Signature = presented {
            st.auth.check_signature(&headers, &bytes).await?;
        }
        let prepared = normalize::prepare(route.source, &bytes, &st.cfg.normalize)?;
        accept(&st, route, &headers, prepared).await
    }
    .instrument(span.clone())
    .await;
    answered(&span, span.in_scope(|| respond(route, started, outcome)))
}

pub(crate) async fn ses(State(st): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let span = webhook_span(SES, &headers);
    let outcome = async {
        limits::content_type(&headers, SES.content_types)?;
        let bytes = limits::read_body(&headers, body, (SES.limit)(&st.cfg.limits)).await?;
        let msg = sns::parse_delivery(&bytes).map_err(|e| match e {
            sns::ParseError::Invalid(_) => Reject::bad_request("invalid_sns", e.to_string()),
            sns::ParseError::UnexpectedField(_) => {
                Reject::bad_request("unexpected_sns_field", e.to_string())
            }
        })?;
        let kind = sns::kind(&msg).ok_or_else(|| {
            Reject::bad_request("unsupported_sns_type", "SNS Type is not handled here")
        })?;
        // Who may send, before any certificate is fetched.
        sns::check_origin(&st.cfg.sns, &msg, chrono::Utc::now())
            .and_then(|()| {
                sns::check_url_region(&msg, "SigningCertURL", msg.signing_cert_url.as_deref())
            })
            .map_err(origin_reject)?;
        st.sns.verify(&msg).await.map_err(|e| {
            if e.is_transient() {
                Reject::unavailable(e.to_string(), Duration::from_secs(5))
            } else {
                Reject::unauthorized(e.to_string())
            }
        })?;
        match kind {
            // Only the verified document is normalized: its content comes
            // from the signed `Message`, nothing else of the body.
            Kind::Notification => {
                let prepared = normalize::prepare_sns(msg, &st.cfg.normalize)?;
                accept(&st, SES, &headers, prepared).await
            }
            Kind::SubscriptionConfirmation => {
                sns::check_url_region(&msg, "SubscribeURL", msg.subscribe_url.as_deref())
                    .map_err(origin_reject)?;
                let url = msg.subscribe_url.as_deref().unwrap_or_default();
                st.sns.confirm(url).await.map_err(|e| {
                    if e.is_transient() {
                        Reject::unavailable(
                            format!("subscription not confirmed: {e}"),
                            Duration::from_secs(5),
                        )
                    } else {
                        Reject::bad_request("subscribe_url_not_allowed", e.to_string())
                    }
                })?;
                tracing::info!(topic = %msg.topic_arn, "SNS subscription confirmed");
                Ok(Answer::Status("subscribed"))
            }
            Kind::UnsubscribeConfirmation => Ok(Answer::Status("ignored")),
        }
    }
    .instrument(span.clone())
    .await;
    answered(&span, span.in_scope(|| respond(SES, started, outcome)))
}

/// `response`, its status recorded on the request's span.
fn answered(span: &tracing::Span, response: Response) -> Response {
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// 400 for a malformed field, 403 for a sender that is not let in.
fn origin_reject(e: sns::OriginError) -> Reject {
    if e.is_malformed() {
        Reject::bad_request("invalid_sns", e.to_string())
    } else {
        Reject::new(
            StatusCode::FORBIDDEN,
            "sns_sender_not_allowed",
            e.to_string(),
        )
    }
}

/// The request's span: a server span continuing the sender's W3C trace
/// context when it sent a valid `traceparent`.
fn webhook_span(route: Route, headers: &HeaderMap) -> tracing::Span {
    ports::otel::root_span(
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
        || {
            tracing::info_span!(
                "webhook",
                otel.name = route.span_name,
                otel.kind = "server",
                http.request.method = "POST",
                http.route = route.path,
                http.response.status_code = tracing::field::Empty,
                route = route.name,
                event_id = tracing::field::Empty,
                conversation_id = tracing::field::Empty
            )
        },
    )
}

/// Run the idempotency flow for a normalized body.
async fn accept(
    st: &Shared,
    route: Route,
    headers: &HeaderMap,
    prepared: normalize::Normalized,
) -> Outcome {
    let p = match prepared {
        normalize::Normalized::Event(p) => p,
        normalize::Normalized::Ignored => return Ok(Answer::Status("ignored")),
    };
    let span = tracing::Span::current();
    // Redacting costs a scan of each id: only for a span that is logged.
    if !span.is_disabled() {
        span.record("event_id", envelope::redact::log_id(&p.event_id).as_str());
        span.record(
            "conversation_id",
            envelope::redact::log_id(&p.conversation_id).as_str(),
        );
    }
    // The producer span of the queue message: the worker's processing is
    // its child, through the message's `traceparent`.
    let send = tracing::info_span!(
        "intake",
        otel.name = "events send",
        otel.kind = "producer",
        messaging.system = st.backend.messaging_system,
        messaging.operation.type = "send",
        messaging.destination.name = "events",
    );
    let traceparent = ports::otel::message_traceparent(&send, || trace::traceparent(headers));
    let event_id = p.event_id.clone();
    let accepted = flow::enqueue_once(&st.backend, st.flow, route.name, p, traceparent)
        .instrument(send)
        .await?;
    Ok(Answer::Acked(accepted, event_id))
}

/// Turn an outcome into the response, with its metric and log line.
fn respond(route: Route, started: Instant, outcome: Outcome) -> Response {
    match outcome {
        Ok(Answer::Status(word)) => {
            tracing::info!(status = 200, outcome = word, "webhook acknowledged");
            (StatusCode::OK, Json(json!({ "status": word }))).into_response()
        }
        Ok(Answer::Acked(accepted, event_id)) => {
            let (status, word) = accepted.status();
            let name = match accepted {
                Accepted::New => m::ACCEPTED,
                Accepted::Duplicate => m::DUPLICATE,
            };
            m::outcome(name, route.name);
            m::ack_latency(route.name, started.elapsed().as_secs_f64());
            tracing::info!(
                status = status.as_u16(),
                outcome = word,
                "webhook acknowledged"
            );
            let body = AckBody {
                event_id: &event_id,
                status: word,
            };
            (status, Json(body)).into_response()
        }
        Err(reject) => {
            let code = reject.status.as_u16();
            // Conflicts and 503s have their own counters (in the flow).
            if reject.status.is_client_error() && reject.status != StatusCode::CONFLICT {
                m::rejected(route.name, code, reject.error);
            }
            tracing::info!(status = code, error = reject.error, "webhook rejected");
            reject.into_response()
        }
    }
}

pub(crate) async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

pub(crate) async fn readyz(State(st): State<Arc<Shared>>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), st.backend.ready()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %envelope::redact::redacted(&e), "backend not ready");
            Reject::unavailable("backend not reachable", Duration::from_secs(5)).into_response()
        }
        Err(_) => Reject::unavailable("backend readiness check timed out", Duration::from_secs(5))
            .into_response(),
    }
}

pub(crate) async fn metrics(State(st): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}
