//! A local AWS Lambda Runtime API: the HTTP protocol a function's runtime
//! client polls (`GET /2018-06-01/runtime/invocation/next`, then
//! `POST …/{request id}/response` or `…/error`, or `POST …/init/error`).
//! It lets a test run a Lambda binary the way Lambda runs it — the real
//! `lambda_runtime` client inside the binary, a child process — and time
//! its cold start (spawn → first poll → first answer).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mut api = loadtest::lambda_api::RuntimeApi::start("switchyard-worker").await?;
//! let child = std::process::Command::new("bootstrap")
//!     .envs(api.lambda_env())
//!     .spawn()?;
//! api.invoke("req-1", r#"{"Records":[]}"#);
//! let answer = api.answer(std::time::Duration::from_secs(60)).await;
//! # drop(child); Ok(()) }
//! ```
//!
//! Shapes of the events the two functions receive, from a fixture of the
//! real service's events: [`apigw_v2_post`] (API Gateway HTTP API) and
//! [`sqs_record`] (the SQS event source).
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

/// The trace header every invocation carries (`lambda-runtime-trace-id`).
pub const TRACE_ID: &str =
    "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c;Parent=53995c3f42cd8ad8;Sampled=1";

/// How the function answered an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    /// `POST …/{id}/response`.
    Response,
    /// `POST …/{id}/error`: the handler failed.
    Error,
    /// `POST …/init/error`: the function failed before its first poll.
    InitError,
}

/// One answer the function posted.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The invocation's request id (`init` for an init error).
    pub request_id: String,
    /// Response, error or init error.
    pub kind: AnswerKind,
    /// The posted body as it came.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Answer {
    /// The body as JSON (a JSON string when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| Value::String(self.body.clone()))
    }
}

struct Shared {
    pending: Mutex<VecDeque<(String, String)>>,
    more: Notify,
    answers: mpsc::UnboundedSender<Answer>,
    first_poll: OnceLock<Instant>,
    function_arn: String,
    deadline: Duration,
}

/// The server, on a free loopback port; stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    answers: mpsc::UnboundedReceiver<Answer>,
    function_name: String,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("addr", &self.addr)
            .field("function_name", &self.function_name)
            .finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// Serve the Runtime API of a function named `function_name`; each
    /// invocation's deadline is 60 s after it is handed out.
    pub async fn start(function_name: &str) -> std::io::Result<RuntimeApi> {
        Self::with_deadline(function_name, Duration::from_secs(60)).await
    }

    /// As [`RuntimeApi::start`], with invocations due `deadline` after
    /// they are handed out (`lambda-runtime-deadline-ms`).
    pub async fn with_deadline(
        function_name: &str,
        deadline: Duration,
    ) -> std::io::Result<RuntimeApi> {
        let (tx, answers) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            more: Notify::new(),
            answers: tx,
            first_poll: OnceLock::new(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            deadline,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            shared,
            answers,
            function_name: function_name.to_owned(),
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The variables Lambda sets for a function (256 MB, `$LATEST`), with
    /// `AWS_LAMBDA_RUNTIME_API` pointing here.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.function_name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Queue one invocation; the function's next poll gets it.
    pub fn invoke(&self, request_id: &str, event: impl Into<String>) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((request_id.to_owned(), event.into()));
        self.shared.more.notify_one();
    }

    /// The next answer, or `None` after `within`.
    pub async fn answer(&mut self, within: Duration) -> Option<Answer> {
        tokio::time::timeout(within, self.answers.recv())
            .await
            .ok()
            .flatten()
    }

    /// When the function first polled for work: its init was done.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.first_poll.get().copied()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(s): State<Arc<Shared>>) -> (HeaderMap, String) {
    let _ = s.first_poll.set(Instant::now());
    let (id, event) = loop {
        let more = s.more.notified();
        let popped = s
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        if let Some(p) = popped {
            break p;
        }
        // No invocation yet: the poll waits, as Lambda's does.
        more.await;
    };
    let deadline = chrono::Utc::now().timestamp_millis()
        + i64::try_from(s.deadline.as_millis()).unwrap_or(i64::MAX);
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            s.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", TRACE_ID.to_owned()),
    ] {
        if let Ok(v) = value.parse() {
            h.insert(name, v);
        }
    }
    (h, event)
}

fn answered(s: &Shared, request_id: String, kind: AnswerKind, body: String) -> &'static str {
    let _ = s.answers.send(Answer {
        request_id,
        kind,
        body,
        at: Instant::now(),
    });
    r#"{"status":"OK"}"#
}

async fn respond(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    answered(&s, id, AnswerKind::Response, body)
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: String) -> &'static str {
    answered(&s, id, AnswerKind::Error, body)
}

async fn init_error(State(s): State<Arc<Shared>>, body: String) -> &'static str {
    answered(&s, "init".to_owned(), AnswerKind::InitError, body)
}

/// An API Gateway HTTP API (v2) event: `fixture` (a real event) turned
/// into a `POST` to `path` with exactly `headers` and `body` (base64 when
/// `base64`, as API Gateway sends binary bodies).
pub fn apigw_v2_post(
    fixture: &Value,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> Value {
    let mut ev = fixture.clone();
    ev["rawPath"] = json!(path);
    ev["rawQueryString"] = json!("");
    if let Some(o) = ev.as_object_mut() {
        o.remove("queryStringParameters");
        o.remove("cookies");
    }
    ev["requestContext"]["http"]["method"] = json!("POST");
    ev["requestContext"]["http"]["path"] = json!(path);
    let mut h = serde_json::Map::new();
    h.insert(
        "host".into(),
        json!("abc.execute-api.us-east-1.amazonaws.com"),
    );
    for (k, v) in headers {
        h.insert((*k).to_owned(), json!(v));
    }
    ev["headers"] = Value::Object(h);
    ev["body"] = if base64 {
        json!(base64::engine::general_purpose::STANDARD.encode(body))
    } else {
        json!(String::from_utf8_lossy(body))
    };
    ev["isBase64Encoded"] = json!(base64);
    ev
}

/// One record of an SQS event source batch carrying `m`, shaped like
/// `fixture` (a real FIFO record).
pub fn sqs_record(fixture: &Value, m: &ports::ReceivedMessage) -> Value {
    let mut r = fixture.clone();
    r["messageId"] = m.message_id.clone().into();
    r["receiptHandle"] = m.receipt.clone().into();
    r["body"] = m.body.clone().into();
    r["attributes"]["MessageGroupId"] = m.group_id.clone().into();
    r["attributes"]["MessageDeduplicationId"] = m.dedup_id.clone().into();
    r["attributes"]["ApproximateReceiveCount"] = m.receive_count.to_string().into();
    r["attributes"]["SentTimestamp"] = m.sent_at.timestamp_millis().to_string().into();
    r["messageAttributes"] = m
        .attributes
        .iter()
        .map(|(k, v)| {
            let attr = json!({ "stringValue": v, "stringListValues": [], "binaryListValues": [], "dataType": "String" });
            (k.clone(), attr)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    r
}
