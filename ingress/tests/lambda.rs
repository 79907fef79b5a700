//! The Lambda binary, run the way Lambda runs it: the real `lambda_runtime`
//! client (inside `ingress-lambda`, a child process) polls a Runtime API
//! server in this test, which feeds it API Gateway v2 fixtures from the
//! corpus rewritten into webhook posts and collects the responses.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use loadtest::lambda_api::{AnswerKind, RuntimeApi, apigw_v2_post};
use serde_json::{Value, json};

/// An API Gateway v2 fixture from the corpus turned into a POST to `path`.
fn apigw_event(
    fixture: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> Value {
    let raw = std::fs::read(format!("{CORPUS}/lambda-events/{fixture}")).unwrap();
    let fixture: Value = serde_json::from_slice(&raw).unwrap();
    apigw_v2_post(&fixture, path, headers, body, base64)
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_lambda_binary_answers_api_gateway_v2_events_through_the_runtime_api() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().display().to_string();
        super::run_cases(
            &[
                ("SWITCHYARD_BACKEND", "embedded"),
                ("SWITCHYARD_DATA_DIR", &dir),
            ],
            &["route"],
        )
        .await;
    }
}

mod aws {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
    async fn the_lambda_binary_answers_api_gateway_v2_events_through_the_runtime_api() {
        let prefix = super::common::aws().await.prefix;
        super::run_cases(
            &[
                ("SWITCHYARD_BACKEND", "aws"),
                ("SWITCHYARD_AWS_PREFIX", prefix.as_deref().unwrap()),
            ],
            &[ports::telemetry::PREFIX_DIMENSION, "route"],
        )
        .await;
    }
}

/// Start the binary with `env`, feed it the cases, check the answers and
/// that its EMF documents have `dimensions`.
async fn run_cases(env: &[(&str, &str)], dimensions: &[&str]) {
    let mut api = RuntimeApi::start("ingress").await.unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ingress-lambda"))
        .envs(env.iter().copied())
        .envs(api.lambda_env())
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
        api.invoke(id, event.to_string());
    }
    let mut got = std::collections::HashMap::new();
    while got.len() < cases.len() {
        let answer = api
            .answer(Duration::from_secs(60))
            .await
            .expect("the lambda binary answered in time");
        assert_eq!(
            answer.kind,
            AnswerKind::Response,
            "{}: {}",
            answer.request_id,
            answer.body
        );
        got.insert(answer.request_id.clone(), answer.json());
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
    drop(api);
    drop(child);
    check_telemetry(&output.join().unwrap(), dimensions);
}

/// A customer phone number in the test message (never in logs or metrics).
const PHONE: &str = "+44 20 7946 0958";

/// The child's stdout: JSON log lines (the ack line among them), EMF
/// documents of namespace `Switchyard` counting the two accepted posts
/// (one per invocation), and no customer address, phone number or text.
fn check_telemetry(out: &str, dimensions: &[&str]) {
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
        assert_eq!(ns["Dimensions"], json!([dimensions]), "{d}");
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
