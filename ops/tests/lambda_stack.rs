//! The packaged Lambda functions (`scripts/package`: the `bootstrap` zips
//! the stack deploys) on the resources of the stack itself: deploy/template
//! .yaml created on the local CloudFormation (moto), the two `bootstrap`
//! binaries unzipped and run as Lambda runs them, under a local Runtime API
//! (`loadtest::lambda_api`), with the environment the template gives them.
//!
//! One Richpanel webhook goes in through the ingress function (an API
//! Gateway HTTP API event), is read from the stack's FIFO queue, goes out
//! through the worker function (an SQS event source batch) and ends in the
//! stack's event log. On the way it checks what the stack's parameters and
//! alarms rely on: the webhook token read from a secret named by
//! `SWITCHYARD_AWS_SECRET_ID_WEBHOOK_TOKEN` (a `WebhookTokenSecretName`
//! parameter), and the worker's EMF gauge `downstream_kill_switch` with the
//! `Prefix` dimension the kill-switch alarm reads.
//!
//! Both functions export their spans to a local OTLP collector
//! (`loadtest::otlp`) and flush them before they answer: the spans are
//! there as soon as the answer is, in one trace from the ingress function's
//! server span to the worker function's processing, whose invocation span
//! links to the message's context.
//!
//! It prints each function's cold start under the local Runtime API: from
//! spawning the binary to its first poll (init) and to its first answer
//! (docs/deploy.md):
//!
//! ```text
//! scripts/test --test lambda_stack -- --nocapture
//! ```
//!
//! The parent test creates the stack and re-runs this binary on
//! `child_process_stack_round_trip` with the stack's prefix and DynamoDB
//! pointed at moto (where moto's CloudFormation created the tables); the
//! test process itself cannot change its environment.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadtest::lambda_api::{AnswerKind, RuntimeApi, apigw_v2_post, sqs_record};
use ports::{AwsSettings, Backend, BackendConfig};
use serde_json::{Value, json};

use common::{create_stack, root, unique_prefix};

const CHILD_PREFIX: &str = "SWITCHYARD_TEST_STACK_PREFIX";
const TOKEN: &str = "stack-e2e-token-0123456789abcdef";
/// A customer address in the webhook (never in logs or metrics).
const CUSTOMER: &str = "jane.doe.4711@example.com";

/// The `bootstrap` of `scripts/package`'s zip for `bin`, unzipped in `dir`.
fn unzip_bootstrap(bin: &str, dir: &Path) -> PathBuf {
    let zip = root().join("target/lambda").join(bin).join("bootstrap.zip");
    assert!(
        zip.is_file(),
        "{} is missing: run scripts/package (scripts/test does)",
        zip.display()
    );
    let out = dir.join(bin);
    let ok = Command::new("unzip")
        .args(["-q", "-o"])
        .arg(&zip)
        .arg("-d")
        .arg(&out)
        .status()
        .expect("unzip runs")
        .success();
    assert!(ok, "unzip {}", zip.display());
    out.join("bootstrap")
}

/// Where the secret the stack's `WebhookTokenSecretName` would name lives.
fn token_secret(prefix: &str) -> String {
    format!("elsewhere/{prefix}/richpanel-webhook-token")
}

/// Creates the stack, then runs the round trip in a child process whose
/// DynamoDB endpoint is moto's.
#[test]
#[ignore = "AWS protocol: needs the local servers and scripts/package; scripts/test runs both"]
fn packaged_functions_carry_a_webhook_through_the_stack() {
    ports::aws::require_local_servers();
    let prefix = unique_prefix("e2e");
    create_stack(&prefix);
    let moto = std::env::var("AWS_ENDPOINT_URL_SQS").expect("moto url in .local-aws/env");
    let child = Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "child_process_stack_round_trip",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PREFIX, &prefix)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &moto)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&child.stdout);
    print!("{stdout}");
    assert!(
        child.status.success() && stdout.contains("ROUND-TRIP-OK"),
        "round trip failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
}

/// Child of `packaged_functions_carry_a_webhook_through_the_stack`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of packaged_functions_carry_a_webhook_through_the_stack"]
async fn child_process_stack_round_trip() {
    let Ok(prefix) = std::env::var(CHILD_PREFIX) else {
        return;
    };
    let collector = loadtest::otlp::Collector::start().await.unwrap();
    let bins = tempfile::tempdir().unwrap();
    let ingress_bin = unzip_bootstrap("ingress-lambda", bins.path());
    let worker_bin = unzip_bootstrap("worker-lambda", bins.path());

    let mut settings = AwsSettings::new(prefix.clone());
    settings
        .secret_ids
        .insert("WEBHOOK_TOKEN".to_owned(), token_secret(&prefix));
    let backend = Backend::open(&BackendConfig::Aws(settings))
        .await
        .expect("the stack's queues and tables");
    backend
        .secrets
        .store("webhook-token", TOKEN)
        .await
        .expect("store the token");
    backend
        .flags
        .set("kill-switch", "all_writes", "lambda_stack test", "e2e")
        .await
        .expect("engage the kill switch");

    // In through the ingress function.
    let ticket = format!("T-{}", unique_prefix("t"));
    let body = json!({
        "ticket_id": ticket,
        "trigger": "customer_message",
        "message_id": "m1",
        "message": "Where is my order #1001?",
        "channel": "email",
        "customer_email": CUSTOMER,
    })
    .to_string();
    let fixture: Value = serde_json::from_str(include_str!(
        "../../testdata/corpus/lambda-events/rust-runtime__example-apigw-v2-request-no-authorizer.json"
    ))
    .unwrap();
    let event = apigw_v2_post(
        &fixture,
        "/webhooks/richpanel",
        &[
            ("content-type", "application/json"),
            ("x-switchyard-token", TOKEN),
        ],
        body.as_bytes(),
        false,
    );
    let (answer, out, cold) = run_once(
        &ingress_bin,
        &prefix,
        &collector,
        "ingress",
        "apigw-1",
        event.to_string(),
    )
    .await;
    let response = answer.json();
    assert_eq!(response["statusCode"], 202, "{response}\n{out}");
    println!("cold start ingress-lambda: {cold}");

    // The stack's queue holds it.
    let received = backend
        .queue
        .receive(10, Duration::from_secs(60), Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(received.len(), 1, "one message on the stack's queue");
    assert!(received[0].group_id.contains(&ticket), "{:?}", received[0]);

    // Out through the worker function.
    let fifo: Value = serde_json::from_str(include_str!(
        "../../testdata/corpus/lambda-events/powertools-py__snsSqsFifoEvent.json"
    ))
    .unwrap();
    let batch = json!({ "Records": [sqs_record(&fifo["Records"][0], &received[0])] });
    let (answer, out, cold) = run_once(
        &worker_bin,
        &prefix,
        &collector,
        "worker",
        "sqs-1",
        batch.to_string(),
    )
    .await;
    assert_eq!(
        answer.json()["batchItemFailures"],
        json!([]),
        "{}\n{out}",
        answer.body
    );
    println!("cold start worker-lambda: {cold}");
    check_kill_switch_gauge(&out, &prefix);
    check_one_trace(&collector.spans(), &received[0]);

    // In the stack's event log, and off its queue.
    let streams = backend.events.list_streams(None, 10).await.expect("list");
    let stream = streams
        .iter()
        .find(|s| s.contains(&ticket))
        .unwrap_or_else(|| panic!("no stream for {ticket} in {streams:?}"));
    let kinds: Vec<String> = backend
        .events
        .read_stream(stream, 0)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in ["MessageReceived", "DecisionMade"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let stats = backend.queue.stats().await.expect("stats");
    assert_eq!(
        (stats.visible, stats.in_flight),
        (0, 0),
        "the worker deleted what it processed"
    );
    println!("ROUND-TRIP-OK");
}

/// Init (spawn → first poll) and first answer (spawn → answer).
struct ColdStart {
    init: Duration,
    first_answer: Duration,
}

impl std::fmt::Display for ColdStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "init {} ms, first response {} ms",
            self.init.as_millis(),
            self.first_answer.as_millis()
        )
    }
}

/// Run `bootstrap` as function `name` of the stack `prefix` for one
/// invocation; its answer, its stdout, and its cold start.
async fn run_once(
    bootstrap: &Path,
    prefix: &str,
    collector: &loadtest::otlp::Collector,
    name: &str,
    request_id: &str,
    event: String,
) -> (loadtest::lambda_api::Answer, String, ColdStart) {
    let mut api = RuntimeApi::start(&format!("{prefix}-{name}"))
        .await
        .unwrap();
    api.invoke(request_id, event);
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(bootstrap)
        .envs(api.lambda_env())
        // What the template's Globals give both functions.
        .env("SWITCHYARD_BACKEND", "aws")
        .env("SWITCHYARD_AWS_PREFIX", prefix)
        .env("SWITCHYARD_MAX_RECEIVE_COUNT", "20")
        .env("SWITCHYARD_RAW_MAIL_BUCKETS", format!("{prefix}-raw-mail"))
        .env("SWITCHYARD_SNS_TOPIC_ARNS", "")
        .env(
            "SWITCHYARD_AWS_SECRET_ID_WEBHOOK_TOKEN",
            token_secret(prefix),
        )
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env_remove("AWS_LAMBDA_LOG_LEVEL")
        .env_remove("RUST_LOG")
        .env_remove(ingress::ENV_TOKEN)
        .env_remove("SWITCHYARD_RICHPANEL_API_KEY")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bootstrap starts");
    let mut stdout = child.stdout.take().unwrap();
    let output = tokio::spawn(async move {
        let mut out = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out).await;
        out
    });
    let answer = api.answer(Duration::from_secs(60)).await;
    let cold = ColdStart {
        init: api
            .first_poll()
            .map(|t| t - spawned)
            .unwrap_or(Duration::ZERO),
        first_answer: answer
            .as_ref()
            .map(|a| a.at - spawned)
            .unwrap_or(Duration::ZERO),
    };
    let _ = child.kill().await;
    let out = output.await.unwrap();
    let answer = answer.unwrap_or_else(|| panic!("{name}: no answer within 60 s:\n{out}"));
    assert_eq!(
        answer.kind,
        AnswerKind::Response,
        "{name}: {}\n{out}",
        answer.body
    );
    if let Err(e) = ports::telemetry::read_output(&out, &[CUSTOMER, "my order"]) {
        panic!("{name}: {e}:\n{out}");
    }
    (answer, out, cold)
}

/// The worker's EMF: `downstream_kill_switch` = 2 (`all_writes`) under the
/// dimension set `[Prefix]`, `Prefix` = the stack's prefix — the metric
/// the stack's kill-switch alarm reads.
fn check_kill_switch_gauge(out: &str, prefix: &str) {
    let docs = ports::telemetry::read_output(out, &[]).unwrap();
    let gauge = docs
        .iter()
        .find(|d| d.get(downstream::metrics::KILL_SWITCH).is_some())
        .unwrap_or_else(|| panic!("no EMF document with the kill-switch gauge:\n{out}"));
    let ns = &gauge["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(ns["Namespace"], "Switchyard", "{gauge}");
    assert_eq!(
        ns["Dimensions"],
        json!([[ports::telemetry::PREFIX_DIMENSION]]),
        "{gauge}"
    );
    assert_eq!(gauge[ports::telemetry::PREFIX_DIMENSION], prefix, "{gauge}");
    assert_eq!(gauge[downstream::metrics::KILL_SWITCH], 2.0, "{gauge}");
}

/// The spans both functions flushed before answering: the ingress
/// function's server span and its send, and under the send the worker
/// function's processing of the message — one trace — with the worker's
/// invocation span linked to the message's context.
fn check_one_trace(spans: &[loadtest::otlp::ExportedSpan], msg: &ports::ReceivedMessage) {
    let find = |service: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.name == name)
            .unwrap_or_else(|| panic!("no {name} span of {service} in {spans:#?}"))
    };
    let server = find("switchyard-ingress", "POST /webhooks/richpanel");
    let sent = find("switchyard-ingress", "events send");
    let process = find("switchyard-worker", "events process");
    let batch = find("switchyard-worker", "events process batch");
    assert_eq!(sent.parent_span_id, server.span_id);
    assert_eq!(
        (process.trace_id.as_str(), process.parent_span_id.as_str()),
        (sent.trace_id.as_str(), sent.span_id.as_str()),
        "the worker's processing continues the ingress's trace"
    );
    assert_eq!(process.attr("messaging.system"), Some("aws_sqs"));
    assert!(
        batch
            .links
            .contains(&(sent.trace_id.clone(), sent.span_id.clone())),
        "the invocation links to the message: {:?}",
        batch.links
    );
    let tp = msg
        .attributes
        .get("traceparent")
        .expect("traceparent attribute");
    assert!(tp.contains(&sent.span_id), "{tp}");
}
