//! HTTP routes of the fake: fault/quota/log middleware, the three
//! downstreams' shapes, and the `/_fake` control endpoints.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::FakeConfig;
use super::state::{FakeState, LoggedRequest, QuotaVerdict, TicketState};

type Shared = Arc<Mutex<FakeState>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, FakeState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn router(state: Shared) -> Router {
    let downstreams = Router::new()
        .route("/v1/tickets/{id}", get(get_ticket).put(update_ticket))
        .route("/v1/tickets/{id}/add-tags", put(add_tags))
        .route("/v1/order/{conversation_id}", get(order_lookup))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/admin/api/{version}/orders.json", get(shopify_orders))
        .layer(middleware::from_fn_with_state(state.clone(), faults));
    let control = Router::new()
        .route("/_fake/requests", get(requests))
        .route("/_fake/config", get(get_config).post(set_config))
        .route("/_fake/reset", post(reset));
    downstreams.merge(control).with_state(state)
}

/// Log every request; apply latency, faults and the Richpanel quota; make
/// writes slow (applied first, answered late) when configured.
async fn faults(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 4 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.to_string());
    let arrived = tokio::time::Instant::now();
    let arrival = log_arrival(&state, &parts, path.clone(), &bytes);
    // Dropped when the answer is sent or the client goes away.
    let _answering = Answering {
        state: state.clone(),
        index: arrival.index,
    };
    let is_richpanel = path.starts_with("/v1/tickets") || path.starts_with("/v1/order");
    let (verdict, fault) = judge(&state, arrival.index, is_richpanel, arrived);
    if arrival.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(arrival.latency_ms)).await;
    }
    let limited_for = match (&fault, &verdict) {
        (None, Some(QuotaVerdict::Limited { retry_after_secs })) => Some(*retry_after_secs),
        _ => None,
    };
    let response = match (fault, verdict) {
        (Some(status), _) => injected_fault(status),
        (None, Some(QuotaVerdict::Limited { retry_after_secs })) => rate_limited(retry_after_secs),
        (None, verdict) => {
            let req = Request::from_parts(parts, Body::from(bytes));
            answer(next, req, verdict, arrival.answer_after_ms).await
        }
    };
    if let Some(entry) = lock(&state).log.get_mut(arrival.index) {
        entry.status = response.status().as_u16();
        if let Some(secs) = limited_for {
            entry.retry_after_secs = Some(secs);
        }
    }
    response
}

/// A request as logged on arrival, and how the fake treats it.
struct Arrival {
    /// Its place in the request log.
    index: usize,
    /// Latency added before it is handled.
    latency_ms: u64,
    /// For a slow write: how long its answer waits once it is applied.
    answer_after_ms: Option<u64>,
}

/// Log the request (still unanswered, in flight).
fn log_arrival(
    state: &Shared,
    parts: &axum::http::request::Parts,
    path: String,
    body: &[u8],
) -> Arrival {
    let mut s = lock(state);
    let entry = LoggedRequest {
        method: parts.method.to_string(),
        path,
        body: serde_json::from_slice(body).ok(),
        at_ms: s.elapsed_ms(),
        status: 0,
        retry_after_secs: None,
        idempotency_key: header(&parts.headers, "idempotency-key"),
        traceparent: header(&parts.headers, "traceparent"),
    };
    let answer_after_ms = entry.is_write().then(|| write_delay(&s.cfg)).flatten();
    s.log.push(entry);
    let index = s.log.len() - 1;
    s.in_flight.insert(index);
    Arrival {
        index,
        latency_ms: s.cfg.latency_ms,
        answer_after_ms,
    }
}

/// The fault injected into the logged request `index`, if any, and else
/// (Richpanel routes only) the quota's verdict. The quota counts a request
/// when it arrives, as the real one would.
fn judge(
    state: &Shared,
    index: usize,
    is_richpanel: bool,
    arrived: tokio::time::Instant,
) -> (Option<QuotaVerdict>, Option<u16>) {
    let mut s = lock(state);
    let at = s.log.get(index).map_or(0.0, |r| r.at_ms);
    let fault = s.fault(at);
    let verdict = if is_richpanel && fault.is_none() {
        Some(s.quota(arrived))
    } else {
        None
    };
    (verdict, fault)
}

/// The answer to a request hit by an injected fault.
fn injected_fault(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({"error": "injected fault"}))).into_response()
}

/// The answer to a request over the quota.
fn rate_limited(retry_after_secs: u64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"error": "rate limit exceeded"})),
    )
        .into_response();
    r.headers_mut()
        .insert("retry-after", HeaderValue::from(retry_after_secs));
    r.headers_mut()
        .insert("x-ratelimit-remaining", HeaderValue::from(0u32));
    r
}

/// Handle the request, with the quota's remaining count in the answer and
/// a slow write's answer held back.
async fn answer(
    next: Next,
    req: Request,
    verdict: Option<QuotaVerdict>,
    answer_after_ms: Option<u64>,
) -> Response {
    let mut r = next.run(req).await;
    if let Some(QuotaVerdict::Allowed { remaining }) = verdict {
        r.headers_mut()
            .insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    }
    // A slow write: its effect is in place, the answer is not.
    if let Some(ms) = answer_after_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    r
}

/// How long a write's answer waits after the write was applied, if at all.
fn write_delay(cfg: &FakeConfig) -> Option<u64> {
    if cfg.late_answer_rate > 0.0 && rand::random::<f64>() < cfg.late_answer_rate {
        return Some(cfg.late_answer_ms);
    }
    cfg.write_latency.map(|r| r.sample())
}

/// Marks one logged request as no longer being answered when dropped:
/// after its answer, or when its client disconnected mid-way (the server
/// then drops the handler's future).
struct Answering {
    state: Shared,
    index: usize,
}

impl Drop for Answering {
    fn drop(&mut self) {
        lock(&self.state).in_flight.remove(&self.index);
    }
}

fn ticket_json(id: &str, t: &TicketState) -> Value {
    let mut comments = vec![
        json!({"id": format!("{id}-m1"), "ticket_id": id, "author_id": "cust-1", "isOperator": false,
               "type": "EmailComment", "via": {"channel": "email"},
               "created_at": "2025-12-21T00:00:00.000Z",
               "plain_body": "Hi, where is my order #1001? It has not arrived yet.",
               "body": "<p>Hi, where is my order #1001? It has not arrived yet.</p>"}),
        json!({"id": format!("{id}-m2"), "ticket_id": id, "author_id": "cust-1", "isOperator": false,
               "type": "EmailComment", "via": {"channel": "email"},
               "created_at": "2025-12-21T00:05:00.000Z",
               "plain_body": "Any update on my order?", "body": "<p>Any update on my order?</p>"}),
    ];
    comments.extend(t.comments.iter().cloned());
    json!({"ticket": {
        "id": id, "status": t.status.clone().unwrap_or_else(|| "OPEN".into()),
        "subject": "Where is my order?", "priority": "LOW",
        "tags": t.tags.iter().collect::<Vec<_>>(), "assignee_id": t.assignee_id,
        "created_at": "2025-12-21T00:00:00.000Z", "updated_at": "2025-12-21T00:05:00.000Z",
        "via": {"channel": "email"}, "url": format!("https://app.richpanel.com/{id}"),
        "comments": comments,
    }})
}

async fn get_ticket(State(state): State<Shared>, Path(id): Path<String>) -> Json<Value> {
    let s = lock(&state);
    Json(ticket_json(
        &id,
        &s.tickets.get(&id).cloned().unwrap_or_default(),
    ))
}

async fn update_ticket(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid JSON"})),
        )
            .into_response();
    };
    let Some(t) = v.get("ticket").and_then(Value::as_object) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "missing ticket"})),
        )
            .into_response();
    };
    let mut s = lock(&state);
    let n = s.log.len();
    let entry = s.tickets.entry(id.clone()).or_default();
    if let Some(tags) = t.get("tags").and_then(Value::as_array) {
        entry.tags = tags
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    if let Some(st) = t.get("status").and_then(Value::as_str) {
        entry.status = Some(st.to_owned());
    }
    if let Some(a) = t.get("assignee_id").and_then(Value::as_str) {
        entry.assignee_id = Some(a.to_owned());
    }
    if let Some(c) = t.get("comment") {
        let body = c.get("body").and_then(Value::as_str).unwrap_or_default();
        entry.comments.push(
            json!({"id": format!("{id}-op{n}"), "ticket_id": id, "isOperator": true,
            "type": "EmailComment", "via": {"channel": "email"}, "plain_body": body, "body": body,
            "public": c.get("public").and_then(Value::as_bool).unwrap_or(true)}),
        );
    }
    let snapshot = entry.clone();
    Json(ticket_json(&id, &snapshot)).into_response()
}

async fn add_tags(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let tags = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("tags").cloned());
    let Some(Value::Array(tags)) = tags else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "tags must be an array"})),
        )
            .into_response();
    };
    let mut s = lock(&state);
    let entry = s.tickets.entry(id.clone()).or_default();
    entry
        .tags
        .extend(tags.iter().filter_map(Value::as_str).map(str::to_owned));
    let snapshot = entry.clone();
    Json(ticket_json(&id, &snapshot)).into_response()
}

async fn order_lookup(Path(conversation_id): Path<String>) -> Json<Value> {
    Json(
        json!({"order": {"conversationId": conversation_id, "orderId": "1001", "orderNumber": "#1001",
        "status": "fulfilled", "trackingNumber": "1Z999AA10123456784"}}),
    )
}

/// Picks the first label whose words all appear in the user's message,
/// else the first label.
async fn chat_completions(body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "invalid JSON"}})),
        )
            .into_response();
    };
    let labels: Vec<String> = v
        .pointer("/response_format/json_schema/schema/properties/intent/enum")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let text = v
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content").and_then(Value::as_str))
        .unwrap_or_default()
        .to_lowercase();
    let Some(first) = labels.first() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "no intent enum"}})),
        )
            .into_response();
    };
    let hit = labels.iter().find(|l| {
        l.to_lowercase()
            .split(['_', '-', ' '])
            .all(|w| text.contains(w))
    });
    let (intent, confidence) = hit.map_or((first, 0.4), |l| (l, 0.92));
    let content = json!({"intent": intent, "confidence": confidence}).to_string();
    Json(
        json!({"id": "chatcmpl-fake", "object": "chat.completion", "model": v.get("model"),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}]}),
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct OrdersQuery {
    name: Option<String>,
}

/// Orders numbered 1000 and up exist; lower numbers find nothing.
async fn shopify_orders(Path(_version): Path<String>, Query(q): Query<OrdersQuery>) -> Json<Value> {
    let number = q
        .name
        .as_deref()
        .map(|n| n.trim_start_matches('#'))
        .and_then(|n| n.parse::<u64>().ok());
    let orders = match number {
        Some(n) if n >= 1000 => vec![json!({
            "id": 450_789_000u64 + n, "name": format!("#{n}"), "order_number": n,
            "financial_status": "paid", "fulfillment_status": "fulfilled",
            "created_at": "2025-12-20T10:00:00-05:00", "cancelled_at": null,
            "total_price": "59.90", "currency": "USD",
            "fulfillments": [{"status": "success", "tracking_company": "UPS",
                              "tracking_number": "1Z999AA10123456784",
                              "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}],
        })],
        _ => vec![],
    };
    Json(json!({ "orders": orders }))
}

async fn requests(State(state): State<Shared>) -> Json<Vec<LoggedRequest>> {
    Json(lock(&state).log.clone())
}

async fn get_config(State(state): State<Shared>) -> Json<FakeConfig> {
    Json(lock(&state).cfg.clone())
}

async fn set_config(State(state): State<Shared>, Json(cfg): Json<FakeConfig>) -> Json<FakeConfig> {
    lock(&state).cfg = cfg.clone();
    Json(cfg)
}

async fn reset(State(state): State<Shared>) -> StatusCode {
    lock(&state).reset();
    StatusCode::NO_CONTENT
}

fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
