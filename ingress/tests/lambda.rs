//! The Lambda binary, run the way Lambda runs it: the real `lambda_runtime`
//! client (inside `ingress-lambda`, a child process) polls a Runtime API
//! server in this test, which feeds it API Gateway v2 fixtures from the
//! corpus rewritten into webhook posts and collects the responses.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use base64::Engine;
use common::*;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

#[derive(Clone)]
struct RuntimeApi {
    events: Arc<Mutex<VecDeque<(String, Value)>>>,
    more: Arc<Notify>,
    answers: mpsc::UnboundedSender<(String, &'static str, Value)>,
}

async fn next(State(api): State<RuntimeApi>) -> axum::response::Response {
    use axum::response::IntoResponse;
    loop {
        let popped = api.events.lock().unwrap().pop_front();
        if let Some((id, event)) = popped {
            let deadline = (chrono::Utc::now().timestamp_millis() + 60_000).to_string();
            return (
                [
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:ingress".to_owned(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c".to_owned(),
                    ),
                ],
                event.to_string(),
            )
                .into_response();
        }
        api.more.notified().await;
    }
}

async fn respond(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    let _ = api.answers.send((
        id,
        "response",
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ));
    "{}"
}

async fn error(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    let _ = api.answers.send((id, "error", Value::String(body)));
    "{}"
}

async fn init_error(State(api): State<RuntimeApi>, body: String) -> &'static str {
    let _ = api
        .answers
        .send(("init".into(), "init_error", Value::String(body)));
    "{}"
}

/// An API Gateway v2 fixture turned into a POST to `path`.
fn apigw_event(
    fixture: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> Value {
    let raw = std::fs::read(format!("{CORPUS}/lambda-events/{fixture}")).unwrap();
    let mut ev: Value = serde_json::from_slice(&raw).unwrap();
    ev["rawPath"] = json!(path);
    ev["rawQueryString"] = json!("");
    ev.as_object_mut().unwrap().remove("queryStringParameters");
    ev.as_object_mut().unwrap().remove("cookies");
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
        json!(String::from_utf8(body.to_vec()).unwrap())
    };
    ev["isBase64Encoded"] = json!(base64);
    ev
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lambda_binary_answers_api_gateway_v2_events_through_the_runtime_api() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().display().to_string();
        super::run_cases(&[
            ("SWITCHYARD_BACKEND", "embedded"),
            ("SWITCHYARD_DATA_DIR", &dir),
        ])
        .await;
    }
}

mod aws {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
    async fn the_lambda_binary_answers_api_gateway_v2_events_through_the_runtime_api() {
        let prefix = super::common::aws().await.prefix;
        super::run_cases(&[
            ("SWITCHYARD_BACKEND", "aws"),
            ("SWITCHYARD_AWS_PREFIX", prefix.as_deref().unwrap()),
        ])
        .await;
    }
}

/// Start the binary with `env`, feed it the cases, check the answers.
async fn run_cases(env: &[(&str, &str)]) {
    let (tx, mut answers) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        events: Arc::default(),
        more: Arc::new(Notify::new()),
        answers: tx,
    };
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ingress-lambda"))
        .envs(env.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ingress")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(ingress::ENV_TOKEN, TOKEN)
        // Lambda's advanced logging controls; the runtime's raw-event dump
        // (TRACE) must stay filtered out even when asked for.
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env_remove("AWS_LAMBDA_LOG_LEVEL")
        .env("RUST_LOG", "info,lambda_runtime=trace")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut stdout = child.0.stdout.take().unwrap();
    let output = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });

    let ticket = unique("T");
    let body = ticket_body(&ticket, "m1", &format!("sent through API Gateway, {PHONE}"));
    let token_headers = [
        ("content-type", "application/json"),
        ("x-switchyard-token", TOKEN),
    ];
    let eml = std::fs::read(format!("{CORPUS}/eml/postal-mime/mixed.eml")).unwrap();
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        (
            "first",
            apigw_event(
                "rust-runtime__example-apigw-v2-request-no-authorizer.json",
                "/webhooks/richpanel",
                &token_headers,
                body.as_bytes(),
                false,
            ),
            202,
            Some("accepted"),
        ),
        (
            "again",
            apigw_event(
                "powertools-py__apiGatewayProxyV2Event.json",
                "/webhooks/richpanel",
                &token_headers,
                body.as_bytes(),
                false,
            ),
            200,
            Some("duplicate"),
        ),
        (
            "no-token",
            apigw_event(
                "rust-runtime__example-apigw-v2-request-iam.json",
                "/webhooks/richpanel",
                &[("content-type", "application/json")],
                body.as_bytes(),
                false,
            ),
            401,
            None,
        ),
        (
            "email-b64",
            apigw_event(
                "rust-runtime__example-apigw-v2-request-no-authorizer.json",
                "/webhooks/email",
                &[
                    ("content-type", "message/rfc822"),
                    ("x-switchyard-token", TOKEN),
                ],
                &eml,
                true,
            ),
            202,
            Some("accepted"),
        ),
    ];
    for (id, event, _, _) in &cases {
        api.events
            .lock()
            .unwrap()
            .push_back(((*id).to_owned(), event.clone()));
    }
    api.more.notify_waiters();
    api.more.notify_one();

    let mut got = std::collections::HashMap::new();
    while got.len() < cases.len() {
        let (id, kind, value) = tokio::time::timeout(Duration::from_secs(60), answers.recv())
            .await
            .expect("the lambda binary answered in time")
            .unwrap();
        assert_eq!(kind, "response", "{id}: {value}");
        got.insert(id, value);
    }
    for (id, _, status, word) in &cases {
        let resp = &got[*id];
        assert_eq!(resp["statusCode"], json!(status), "{id}: {resp}");
        let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
        match word {
            Some(w) => assert_eq!(body["status"], *w, "{id}: {body}"),
            None => assert_eq!(body["error"], "unauthorized", "{id}: {body}"),
        }
    }
    server.abort();
    drop(child);
    check_telemetry(&output.join().unwrap());
}

/// A customer phone number in the test message (never in logs or metrics).
const PHONE: &str = "+44 20 7946 0958";

/// The child's stdout: JSON log lines (the ack line among them), EMF
/// documents of namespace `Switchyard` counting the two accepted posts
/// (one per invocation), and no customer address, phone number or text.
fn check_telemetry(out: &str) {
    let lines: Vec<Value> = ports::telemetry::read_output(
        out,
        &["jane.doe.4711@example.com", PHONE, "7946", "API Gateway"],
    )
    .unwrap_or_else(|e| panic!("{e}; the lambda's output:\n{out}"));
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == "webhook acknowledged"),
        "no JSON ack log line:\n{out}"
    );
    let accepted: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get(ingress::metrics::ACCEPTED).is_some())
        .collect();
    assert_eq!(
        accepted.len(),
        2,
        "one EMF document per accepted post:\n{out}"
    );
    for d in accepted {
        let ns = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(ns["Namespace"], "Switchyard", "{d}");
        assert_eq!(ns["Dimensions"], json!([["route"]]), "{d}");
        assert_eq!(d[ingress::metrics::ACCEPTED], 1, "{d}");
        assert!(
            d["RequestId"] == "first" || d["RequestId"] == "email-b64",
            "{d}"
        );
    }
}

/// Our child process, killed (by its handle) however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
