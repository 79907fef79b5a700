//! `switchyard serve` and the ops commands, as an operator runs them, on
//! the embedded backend: webhooks over HTTP → ordered streams; replay
//! verify passes and catches a corrupted projection; the kill switch flipped
//! with the CLI stops writes while the worker runs; DLQ list and redrive.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use downstream::fake::{FakeConfig, FakeServer};

const TOKEN: &str = "test-token-0123456789abcdef";

/// Where a test's state lives: a data dir (embedded) or a unique AWS name
/// prefix on the local servers. Every command of the test gets the same.
#[derive(Debug, Clone)]
struct Store {
    kind: &'static str,
    data_dir: std::path::PathBuf,
    prefix: String,
}

impl Store {
    fn new(kind: &'static str, tmp: &Path) -> Store {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let store = Store {
            kind,
            data_dir: tmp.join("data"),
            prefix: format!("cli{}{nanos:x}", std::process::id()),
        };
        if kind == "aws" {
            store.cmd().arg("init").assert().success();
        }
        store
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SWITCHYARD_BACKEND", self.kind.to_string()),
            ("SWITCHYARD_DATA_DIR", self.data_dir.display().to_string()),
            ("SWITCHYARD_AWS_PREFIX", self.prefix.clone()),
        ]
    }

    fn config(&self) -> ports::BackendConfig {
        if self.kind == "aws" {
            ports::BackendConfig::Aws(ports::AwsSettings::new(self.prefix.clone()))
        } else {
            ports::BackendConfig::Embedded(ports::EmbeddedSettings::new(&self.data_dir))
        }
    }

    fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("switchyard").expect("binary built");
        c.envs(self.env())
            .env_remove("SWITCHYARD_RICHPANEL_API_KEY");
        c
    }
}

fn aws_enabled() -> bool {
    std::env::var("SWITCHYARD_AWS_TESTS").is_ok_and(|v| v == "1")
}

/// Run `$name(kind)` on the embedded backend, and on AWS: those tests are
/// ignored unless asked for (`--include-ignored`, as `scripts/test` does),
/// and fail when asked for without the local servers.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("embedded").await })*
        }
        mod aws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
            async fn $name() {
                assert!(super::aws_enabled(), "{}", ports::aws::SERVERS_NOT_SET);
                super::$name("aws").await
            })*
        }
    };
}

on_both_backends!(
    addresses_and_phones_in_ids_and_text_never_reach_the_logs_at_debug,
    webhooks_become_ordered_streams_and_replay_verifies,
    kill_switch_flipped_with_the_cli_stops_writes,
    a_pause_holds_conversations_and_resuming_drains_them_in_order,
    dead_letters_are_listed_with_reason_and_redriven_in_order,
    status_names_stuck_conversations,
    one_webhook_is_one_trace_from_the_ingress_to_the_downstream_request,
);

struct Serve {
    child: Child,
    url: String,
    stderr: std::path::PathBuf,
    /// Everything serve printed to stdout.
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Serve {
    fn start(store: &Store, extra_env: &[(&str, String)]) -> Serve {
        let stderr = store.data_dir.with_extension("stderr.log");
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("switchyard"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .envs(store.env())
            .env("SWITCHYARD_WEBHOOK_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .env_remove("SWITCHYARD_RICHPANEL_API_KEY")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader
            .read_line(&mut first)
            .expect("serve prints its address");
        // Keep draining stdout: a closed pipe would fail serve's later prints.
        let printed = std::sync::Arc::new(std::sync::Mutex::new(first.clone()));
        let sink = printed.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Ok(mut out) = sink.lock() {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        });
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        Serve {
            child,
            url,
            stderr,
            stdout: printed,
        }
    }

    /// What serve printed to stdout so far.
    fn printed(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "serve exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "serve did not stop within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn post(client: &reqwest::Client, url: &str, body: serde_json::Value) -> u16 {
    client
        .post(format!("{url}/webhooks/richpanel"))
        .header("X-Switchyard-Token", TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

fn status_json(store: &Store) -> serde_json::Value {
    let out = store
        .cmd()
        .args(["status", "--json"])
        .output()
        .expect("status runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

fn inspect_json(store: &Store, conversation: &str) -> serde_json::Value {
    let out = store
        .cmd()
        .args(["inspect", conversation, "--json"])
        .output()
        .expect("inspect runs");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn message_ids(inspect: &serde_json::Value) -> Vec<String> {
    inspect["events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .filter(|e| e["type"] == "MessageReceived")
                .filter_map(|e| e["message_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn webhooks_become_ordered_streams_and_replay_verifies(kind: &'static str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new(kind, tmp.path());
    let serve = Serve::start(&data, &[]);
    let client = reqwest::Client::new();
    let (conversations, per) = (10, 20);
    let posts = (0..conversations).map(|c| {
        let (client, url) = (client.clone(), serve.url.clone());
        async move {
            let mut statuses = Vec::new();
            for m in 0..per {
                let body = serde_json::json!({
                    "ticket_id": format!("T-{c}"), "message_id": format!("m-{m:02}"),
                    "message": format!("question {m}: where is my order #10{c}?"),
                    "customer_email": "ana.customer@example.com", "channel": "email"
                });
                statuses.push(post(&client, &url, body).await);
            }
            statuses
        }
    });
    let statuses: Vec<u16> = futures::future::join_all(posts)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    // A duplicate is answered 200 and changes nothing.
    let dup = serde_json::json!({"ticket_id": "T-0", "message_id": "m-00",
        "message": "question 0: where is my order #100?", "customer_email": "ana.customer@example.com", "channel": "email"});
    assert_eq!(post(&client, &serve.url, dup).await, 200);

    wait_until(
        Duration::from_secs(120),
        "all 200 messages in the log",
        || {
            (0..conversations)
                .all(|c| message_ids(&inspect_json(&data, &format!("T-{c}"))).len() == per)
        },
    );
    let logs = serve.stop();
    for c in 0..conversations {
        let ids = message_ids(&inspect_json(&data, &format!("T-{c}")));
        let expected: Vec<String> = (0..per).map(|m| format!("m-{m:02}")).collect();
        assert_eq!(ids, expected, "T-{c} out of order or duplicated");
    }
    // Shadow mode (no credentials): decisions recorded, nothing sent.
    let timeline = data
        .cmd()
        .args(["inspect", "T-3"])
        .output()
        .expect("inspect");
    let timeline = String::from_utf8_lossy(&timeline.stdout).to_string();
    assert!(timeline.contains("SUPPRESSED by shadow"), "{timeline}");
    assert!(
        !timeline.contains("ana.customer@example.com"),
        "inspect printed a raw address"
    );
    // Invariant 7: no raw customer address and no token in any log line.
    assert!(!logs.is_empty());
    assert!(
        !logs.contains("ana.customer@example.com"),
        "a log line carries a raw address"
    );
    assert!(
        !logs.contains(TOKEN),
        "a log line carries the webhook token"
    );
    // JSON lines, each acknowledgement with its webhook span's ids, all
    // written out by the time serve exited (the log writer's queue drained).
    let acked: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "webhook acknowledged")
        .collect();
    assert_eq!(
        acked.len(),
        conversations * per + 1,
        "one line per acknowledged webhook (and the duplicate)"
    );
    assert!(
        acked
            .iter()
            .all(|l| l["span"]["event_id"].is_string() && l["span"]["conversation_id"].is_string()),
        "an acknowledgement line without its ids"
    );

    data.cmd()
        .args(["replay", "--all", "--verify"])
        .assert()
        .success();
    // Corrupt one projection on purpose: verify must fail, replay repairs.
    {
        let backend = ports::Backend::open(&data.config()).await.expect("open");
        let p = backend
            .events
            .projection("T-5")
            .await
            .expect("read")
            .expect("exists");
        let mut state: serde_json::Value = serde_json::from_str(&p.state).expect("json");
        state["messages"] = serde_json::json!(999);
        backend
            .events
            .put_projection("T-5", p.version, state.to_string())
            .await
            .expect("corrupt");
    }
    let out = data
        .cmd()
        .args(["replay", "--all", "--verify"])
        .output()
        .expect("replay");
    assert!(
        !out.status.success(),
        "verify passed on a corrupted projection"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("T-5"));
    data.cmd().args(["replay", "--all"]).assert().success();
    data.cmd()
        .args(["replay", "--all", "--verify"])
        .assert()
        .success();
}

/// A fake Richpanel without a quota, and the variables that make serve
/// write to it live.
async fn live_richpanel() -> (downstream::fake::FakeHandle, [(&'static str, String); 2]) {
    let fake = FakeServer::start(FakeConfig {
        richpanel_quota: None,
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    let env = [
        ("SWITCHYARD_RICHPANEL_BASE_URL", fake.base_url()),
        ("SWITCHYARD_RICHPANEL_API_KEY", "rp-secret-key".to_string()),
    ];
    (fake, env)
}

async fn kill_switch_flipped_with_the_cli_stops_writes(kind: &'static str) {
    let (fake, env) = live_richpanel().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new(kind, tmp.path());
    let serve = Serve::start(&data, &env);
    let client = reqwest::Client::new();
    let body = |t: &str| serde_json::json!({"ticket_id": t, "message_id": "m-1", "message": "where is my order #1001?"});
    assert_eq!(post(&client, &serve.url, body("K-1")).await, 202);
    wait_until(
        Duration::from_secs(30),
        "live writes before the flip",
        || fake.writes().len() >= 2,
    );

    data.cmd()
        .args([
            "flags",
            "set",
            "kill-switch",
            "all_writes",
            "--reason",
            "replies look wrong",
            "--actor",
            "oncall",
        ])
        .assert()
        .success();
    let history = data
        .cmd()
        .args(["flags", "history"])
        .output()
        .expect("history");
    let history = String::from_utf8_lossy(&history.stdout).to_string();
    assert!(
        history.contains("kill-switch")
            && history.contains("all_writes")
            && history.contains("oncall")
            && history.contains("replies look wrong"),
        "{history}"
    );
    // The flag cache is short (≤ 250 ms); give it a generous second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes_at_flip = fake.writes().len();
    for t in ["K-2", "K-3", "K-4"] {
        assert_eq!(post(&client, &serve.url, body(t)).await, 202);
    }
    wait_until(Duration::from_secs(30), "suppressions recorded", || {
        let out = data
            .cmd()
            .args(["inspect", "K-4"])
            .output()
            .expect("inspect");
        String::from_utf8_lossy(&out.stdout).contains("SUPPRESSED by kill_switch")
    });
    assert_eq!(
        fake.writes().len(),
        writes_at_flip,
        "a downstream write happened after the kill switch"
    );
    serve.stop();
}

/// `pause richpanel` defers instead of suppressing: conversations that
/// need Richpanel wait (nothing written, nothing suppressed, the ingress
/// still acknowledges, `status` names what is held) and, on resume, go on
/// in their own order. `pause worker` stops the worker receiving at all.
async fn a_pause_holds_conversations_and_resuming_drains_them_in_order(kind: &'static str) {
    let (fake, env) = live_richpanel().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new(kind, tmp.path());
    let serve = Serve::start(&data, &env);
    let client = reqwest::Client::new();
    let body = |t: &str, m: &str| serde_json::json!({"ticket_id": t, "message_id": m, "message": "where is my order #1001?"});
    let flag = |args: &[&str]| {
        data.cmd()
            .args(["flags", "set"])
            .args(args)
            .args(["--reason", "richpanel maintenance", "--actor", "oncall"])
            .assert()
            .success();
    };
    let inspect = |conversation: &str| {
        let out = data
            .cmd()
            .args(["inspect", conversation])
            .output()
            .expect("inspect");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    flag(&["pause", "richpanel", "on"]);
    // The flag cache is short (≤ 250 ms); give it a generous second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for m in ["m-1", "m-2", "m-3"] {
        assert_eq!(post(&client, &serve.url, body("P-1", m)).await, 202);
    }
    assert_eq!(post(&client, &serve.url, body("P-2", "m-1")).await, 202);
    wait_until(Duration::from_secs(30), "both conversations held", || {
        let held = &status_json(&data)["held"]["conversations"];
        let names: Vec<&str> = held
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["conversation"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        names.iter().any(|n| n.contains("P-1")) && names.iter().any(|n| n.contains("P-2"))
    });
    // Held for a while: still nothing written, nothing suppressed, and the
    // conversation's later messages wait behind its first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        fake.writes().is_empty(),
        "written while paused: {:?}",
        fake.writes()
    );
    let p1 = inspect("P-1");
    assert!(!p1.contains("SUPPRESSED"), "{p1}");
    assert!(
        p1.contains("(msg m-1)") && !p1.contains("(msg m-2)"),
        "{p1}"
    );
    let text = data.cmd().args(["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("paused       richpanel")
            && text.contains("by oncall")
            && text.contains("held "),
        "{text}"
    );

    flag(&["pause", "richpanel", "off"]);
    wait_until(Duration::from_secs(60), "the held work drained", || {
        let p1 = inspect("P-1");
        p1.contains("(msg m-3)")
            && fake.writes().iter().any(|w| w.path.contains("P-1"))
            && fake.writes().iter().any(|w| w.path.contains("P-2"))
    });
    let p1 = inspect("P-1");
    let at = |m: &str| p1.find(&format!("(msg {m})")).expect("message recorded");
    assert!(at("m-1") < at("m-2") && at("m-2") < at("m-3"), "{p1}");
    assert!(!p1.contains("SUPPRESSED"), "{p1}");
    assert!(
        status_json(&data)["held"]["conversations"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "still held after the resume"
    );

    // `pause worker`: acknowledged, not processed, until resumed.
    flag(&["pause", "worker", "on"]);
    // A long poll begun before the worker saw the flag may still take one.
    tokio::time::sleep(worker::WorkerConfig::default().receive_wait + Duration::from_secs(1)).await;
    assert_eq!(post(&client, &serve.url, body("P-3", "m-1")).await, 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !inspect("P-3").contains("(msg m-1)"),
        "processed while the worker was paused"
    );
    assert_eq!(status_json(&data)["queue"]["visible"], 1);
    flag(&["pause", "worker", "off"]);
    wait_until(Duration::from_secs(30), "the worker resumed", || {
        inspect("P-3").contains("(msg m-1)")
    });
    serve.stop();
}

async fn dead_letters_are_listed_with_reason_and_redriven_in_order(kind: &'static str) {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new(kind, tmp.path());
    data.cmd().args(["init"]).assert().success();
    let config = data.config();
    {
        let backend = ports::Backend::open(&config).await.expect("open");
        // Three poison messages of one conversation from the Richpanel
        // route, one of another from the SES route.
        let poison = [("G-poison", "richpanel"); 3]
            .into_iter()
            .chain([("G-other", "ses")]);
        for (i, (group, source)) in poison.enumerate() {
            backend
                .queue
                .send(ports::OutgoingMessage {
                    group_id: group.into(),
                    dedup_id: format!("p-{i}"),
                    body: format!("{{\"schema_version\": 2, \"n\": {i}}}"),
                    attributes: [(ports::ATTR_SOURCE.to_owned(), source.to_owned())].into(),
                })
                .await
                .expect("send");
        }
    }
    let serve = Serve::start(&data, &[]);
    wait_until(Duration::from_secs(30), "four dead letters", || {
        status_json(&data)["queue"]["dlq"] == 4
    });
    serve.stop();
    // On SQS a receive outlives the process that made it: serve's last long
    // poll still waits on the server and would take a redriven message for
    // nobody. Let it end first.
    let backend = ports::Backend::open(&config).await.expect("open");
    if backend.queue.receives_outlive_their_caller() {
        tokio::time::sleep(worker::WorkerConfig::default().receive_wait + Duration::from_secs(1))
            .await;
    }
    let list = data.cmd().args(["dlq", "list"]).output().expect("dlq list");
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        list.contains("schema") && list.contains("G-poison") && list.contains("G-other"),
        "{list}"
    );
    let listed = |args: &[&str]| -> Vec<String> {
        let out = data
            .cmd()
            .args(["dlq", "--json"])
            .args(args)
            .output()
            .expect("dlq");
        assert!(out.status.success(), "{args:?}: {out:?}");
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let mut groups: Vec<String> = rows
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["group"].as_str().unwrap_or("?"),
                    r["dedup_id"].as_str().unwrap_or("?")
                )
            })
            .collect();
        groups.sort();
        groups
    };
    assert_eq!(listed(&["list", "--source", "ses"]), ["G-other/p-3"]);
    assert_eq!(
        listed(&["list", "--reason", "^undecodable envelope", "--since", "1h"]).len(),
        4,
        "every one is undecodable, sent within the hour"
    );
    assert!(
        listed(&["list", "--until", "1h"]).is_empty(),
        "none sent before an hour ago"
    );
    assert!(listed(&["list", "--reason", "rate limited"]).is_empty());
    // A bad filter is named.
    let bad = data
        .cmd()
        .args(["dlq", "list", "--reason", "(unclosed"])
        .output()
        .expect("dlq");
    assert!(
        !bad.status.success()
            && String::from_utf8_lossy(&bad.stderr).contains("regular expression"),
        "{bad:?}"
    );
    // The dry run prints exactly what would move and moves nothing.
    let from_richpanel = ["G-poison/p-0", "G-poison/p-1", "G-poison/p-2"];
    assert_eq!(
        listed(&["redrive", "--source", "richpanel", "--dry-run"]),
        from_richpanel
    );
    assert_eq!(
        status_json(&data)["queue"]["dlq"],
        4,
        "the dry run moved something"
    );
    // A bulk redrive needs an explicit --yes.
    data.cmd()
        .args(["dlq", "redrive", "--source", "richpanel"])
        .assert()
        .code(2);
    data.cmd()
        .args(["dlq", "redrive", "--all"])
        .assert()
        .code(2);
    data.cmd()
        .args(["dlq", "redrive", "--source", "richpanel", "--yes"])
        .assert()
        .success();
    let s = status_json(&data);
    assert_eq!(
        (s["queue"]["dlq"].as_u64(), s["queue"]["visible"].as_u64()),
        (Some(1), Some(3)),
        "{s}"
    );
    assert_eq!(
        listed(&["list"]),
        ["G-other/p-3"],
        "the filter left the rest"
    );
    let mut order = Vec::new();
    for _ in 0..3 {
        let got = backend
            .queue
            .receive(10, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .expect("receive");
        for m in got {
            order.push(m.dedup_id.clone());
            backend.queue.delete(&m.receipt).await.expect("delete");
        }
    }
    assert_eq!(
        order,
        vec!["p-0", "p-1", "p-2"],
        "redrive lost the group order or the dedup ids"
    );
    data.cmd()
        .args(["dlq", "redrive", "--all", "--yes"])
        .assert()
        .success();
    assert_eq!(status_json(&data)["queue"]["dlq"], 0);
}

/// A conversation whose action keeps failing (pending, last event long ago)
/// is listed as stuck by `status`; a finished one is not.
async fn status_names_stuck_conversations(kind: &'static str) {
    use conversation::{Action, Event, EventBody};
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new(kind, tmp.path());
    data.cmd().args(["init"]).assert().success();
    let backend = ports::Backend::open(&data.config()).await.expect("open");
    let long_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    let event = |seq: u64, body: EventBody| Event {
        schema_version: 1,
        seq,
        event_id: format!("ev:{kind}:{seq}:{}", data.prefix),
        causation_id: "evt:rp:S-1:m1".into(),
        at: long_ago,
        trace_id: None,
        body,
    };
    let events = vec![
        event(
            1,
            EventBody::ActionRequested {
                key: "act:rp_tag:S-1:x".into(),
                action: Action::AddTags {
                    ticket_id: "S-1".into(),
                    tags: vec!["t".into()],
                },
            },
        ),
        event(
            2,
            EventBody::ActionFailed {
                key: "act:rp_tag:S-1:x".into(),
                error: "HTTP 503".into(),
                retryable: true,
            },
        ),
    ];
    let state = conversation::replay(&events);
    let new = events
        .iter()
        .map(|e| ports::NewEvent {
            event_id: e.event_id.clone(),
            kind: e.kind().into(),
            body: e.to_json(),
        })
        .collect();
    backend
        .events
        .append("S-1", 0, new, serde_json::to_string(&state).expect("json"))
        .await
        .expect("append");
    let s = status_json(&data);
    let stuck = s["stuck"]["conversations"].as_array().expect("stuck list");
    assert_eq!(stuck.len(), 1, "{s}");
    assert_eq!(stuck[0]["conversation"], "S-1");
    assert_eq!(stuck[0]["last_error"], "HTTP 503");
    let table = data.cmd().arg("status").output().expect("status");
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("stuck        1 conversation") && table.contains("S-1"),
        "{table}"
    );
    // With a longer threshold it is not stuck (yet).
    let out = data
        .cmd()
        .args(["status", "--json", "--stuck-after", "3600"])
        .output()
        .expect("status");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        s["stuck"]["conversations"].as_array().map(Vec::len),
        Some(0),
        "{s}"
    );
}

/// Invariant 7 at the most verbose level: ticket ids, message ids and texts
/// that carry addresses and phone numbers, through every route and a live
/// downstream, appear in no line serve writes to stdout or stderr.
async fn addresses_and_phones_in_ids_and_text_never_reach_the_logs_at_debug(kind: &'static str) {
    let (fake, live) = live_richpanel().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new(kind, tmp.path());
    let mut env = live.to_vec();
    env.push(("RUST_LOG", "debug".to_string()));
    let serve = Serve::start(&data, &env);
    let client = reqwest::Client::new();
    let secrets = [
        "jane.roe@example.net",
        "CAF1x2y3zz@mail.gmail.com",
        "555-0199",
        "5550199",
        "pat.smith@example.org",
        "thread-77@customer.example.org",
        "+44 20 7946 0958",
    ];
    // A ticket whose id is an address, a message id that is a Message-ID.
    let rp = serde_json::json!({
        "ticket_id": "jane.roe@example.net",
        "message_id": "<CAF1x2y3zz@mail.gmail.com>",
        "message": "where is my order #1001? call +1 (415) 555-0199 or jane.roe@example.net",
        "customer_email": "jane.roe@example.net",
        "customer_phone": "+44 20 7946 0958",
        "channel": "email",
    });
    assert_eq!(post(&client, &serve.url, rp.clone()).await, 202);
    assert_eq!(post(&client, &serve.url, rp).await, 200);
    let eml = "From: Pat Smith <pat.smith@example.org>\r\nTo: help@shop.example\r\n\
        Subject: order 555-0199\r\nMessage-ID: <thread-77@customer.example.org>\r\n\r\n\
        Where is my parcel? Call me at 415 555 0199.\r\n";
    let status = client
        .post(format!("{}/webhooks/email", serve.url))
        .header("X-Switchyard-Token", TOKEN)
        .header("content-type", "message/rfc822")
        .body(eml)
        .send()
        .await
        .expect("post email")
        .status();
    assert_eq!(status.as_u16(), 202);
    wait_until(Duration::from_secs(60), "both messages processed", || {
        let rp = inspect_json(&data, "jane.roe@example.net");
        rp["events"].as_array().is_some_and(|e| e.len() >= 4)
            && status_json(&data)["queue"]["visible"] == 0
            && status_json(&data)["queue"]["in_flight"] == 0
    });
    assert!(!fake.writes().is_empty(), "the live downstream was called");
    let printed = serve.printed();
    let logs = serve.stop();
    assert!(logs.lines().count() > 10, "debug logging is on: {logs}");
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "{kind}: {secret:?} in serve's log:\n{}",
            logs.lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(!printed.contains(secret), "{kind}: {secret:?} on stdout");
    }
    assert!(!logs.contains(TOKEN) && !printed.contains(TOKEN));
}

/// The message-dropping fault of the load harness's self-test is refused
/// on a data dir that is not marked as a test target (and on AWS).
#[test]
fn the_drop_fault_is_refused_outside_a_marked_test_target() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new("embedded", tmp.path());
    let out = data
        .cmd()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SWITCHYARD_WEBHOOK_TOKEN", TOKEN)
        .env("SWITCHYARD_FAULT_DROP_EVERY", "2")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("serve runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve started with the drop fault");
    assert!(
        stderr.contains("SWITCHYARD_FAULT_DROP_EVERY") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        !data.data_dir.join("switchyard.sqlite").exists(),
        "a refused start opened the store"
    );
    // Marked as a test target, it starts (and says so loudly).
    std::fs::create_dir_all(&data.data_dir).expect("data dir");
    std::fs::write(data.data_dir.join(ports::TEST_TARGET_MARKER), "test").expect("marker");
    let serve = Serve::start(&data, &[("SWITCHYARD_FAULT_DROP_EVERY", "2".to_string())]);
    let logs = serve.stop();
    assert!(logs.contains("FAULT INJECTION"), "{logs}");
}

/// The generated token is written to a 0600 file, never printed; the admin
/// routes can live on a listener of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_never_printed_and_metrics_move_to_the_admin_listener() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new("embedded", tmp.path());
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("switchyard"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .envs(data.env())
    .env_remove("SWITCHYARD_WEBHOOK_TOKEN")
    .env("RUST_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("serve starts");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    while !banner.contains("SES route") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read") > 0, "{banner}");
        banner.push_str(&line);
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    let url_after = |marker: &str| {
        banner
            .lines()
            .find(|l| l.contains(marker))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
            .unwrap_or_else(|| panic!("no {marker} address in {banner}"))
            .to_owned()
    };
    let (webhooks, admin) = (url_after("listening on"), url_after("admin"));
    assert_ne!(webhooks, admin);
    let token_file = data.data_dir.join("secrets").join("webhook-token");
    let token = std::fs::read_to_string(&token_file).expect("token file");
    assert!(token.len() >= 32);
    assert!(!banner.contains(&token), "the token was printed: {banner}");
    assert!(
        banner.contains(&token_file.display().to_string()),
        "{banner}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    }
    assert!(banner.contains("SES route: disabled"), "{banner}");
    let client = reqwest::Client::new();
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.expect("get").status().as_u16() }
    };
    assert_eq!(get(format!("{admin}/metrics")).await, 200);
    assert_eq!(get(format!("{admin}/readyz")).await, 200);
    assert_eq!(get(format!("{webhooks}/metrics")).await, 404);
    assert_eq!(get(format!("{webhooks}/readyz")).await, 404);
    assert_eq!(get(format!("{webhooks}/healthz")).await, 200);
    let _ = child.kill();
    let _ = child.wait();
}

/// `switchyard handback` lifts the hold a Tier-0 message put on a
/// conversation (and says so when there is none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handback_lifts_a_human_hold() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new("embedded", tmp.path());
    let serve = Serve::start(&data, &[]);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"ticket_id": "H-1", "message_id": "m-1",
        "message": "I will file a chargeback with my bank"});
    assert_eq!(post(&client, &serve.url, body).await, 202);
    wait_until(Duration::from_secs(30), "the hold recorded", || {
        inspect_json(&data, "H-1")["projection"]["human_hold"].is_object()
    });
    serve.stop();
    let out = data
        .cmd()
        .args([
            "handback",
            "H-1",
            "--reason",
            "chargeback withdrawn",
            "--by",
            "ana",
        ])
        .output()
        .expect("handback runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("handed back"));
    let state = inspect_json(&data, "H-1");
    assert!(state["projection"]["human_hold"].is_null(), "{state}");
    assert!(
        state["events"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["type"] == "HandedBack" && e["by"] == "ana")),
        "{state}"
    );
    let again = data
        .cmd()
        .args(["handback", "H-1", "--reason", "again"])
        .output()
        .expect("handback runs");
    assert_eq!(again.status.code(), Some(3), "nothing to hand back");
}

/// The spans of trace `trace` the collector has, once `ready` holds for
/// them (or after 30 s, when the caller's asserts say what is missing).
async fn trace_spans(
    collector: &loadtest::otlp::Collector,
    trace: &str,
    ready: impl Fn(&[loadtest::otlp::ExportedSpan]) -> bool,
) -> Vec<loadtest::otlp::ExportedSpan> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans: Vec<_> = collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect();
        if ready(&spans) || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One webhook sent with a W3C `traceparent` through `serve` with an OTLP
/// collector: one trace from the ingress's server span (a child of the
/// sender's span) through the send to the queue, the worker's processing
/// (across the queue, via the message's attribute), the downstream call
/// and its HTTP request, whose `traceparent` the fake Richpanel received.
/// No customer address in any span. With the kill switch on, the next
/// webhook's call span says `suppressed` / `kill_switch`. The sampler is
/// `parentbased_always_off`: a webhook whose sender did not sample its
/// trace is processed and sent on like the others, and not one span of
/// its trace is exported, by the ingress or the worker.
async fn one_webhook_is_one_trace_from_the_ingress_to_the_downstream_request(kind: &'static str) {
    let collector = loadtest::otlp::Collector::start().await.expect("collector");
    let (fake, live) = live_richpanel().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new(kind, tmp.path());
    let mut env = live.to_vec();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()));
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()));
    env.push(("OTEL_TRACES_SAMPLER", "parentbased_always_off".to_owned()));
    let serve = Serve::start(&data, &env);
    let client = reqwest::Client::new();
    let send_flagged = |ticket: &'static str, trace: String, flags: &'static str| {
        let client = client.clone();
        let url = format!("{}/webhooks/richpanel", serve.url);
        async move {
            client
                .post(url)
                .header("X-Switchyard-Token", TOKEN)
                .header(
                    "traceparent",
                    format!("00-{trace}-00f067aa0ba902b7-{flags}"),
                )
                .json(&serde_json::json!({
                    "ticket_id": ticket,
                    "message_id": "m-1",
                    "message": "where is my order #1001? write to jane.doe.4711@example.com",
                    "customer_email": "jane.doe.4711@example.com",
                }))
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    let send = |ticket: &'static str, trace: String| send_flagged(ticket, trace, "01");
    let dropped_trace = base16ct::lower::encode_string(&rand::random::<[u8; 16]>());
    assert_eq!(send_flagged("TR-0", dropped_trace.clone(), "00").await, 202);
    let trace = base16ct::lower::encode_string(&rand::random::<[u8; 16]>());
    assert_eq!(send("TR-1", trace.clone()).await, 202);
    let by_name = |spans: &[loadtest::otlp::ExportedSpan], name: &str| {
        spans.iter().find(|s| s.name == name).cloned()
    };
    let spans = trace_spans(&collector, &trace, |spans| {
        ["POST /webhooks/richpanel", "events send", "events process"]
            .iter()
            .all(|n| spans.iter().any(|s| s.name == *n))
            && spans
                .iter()
                .any(|s| s.kind == "client" && s.attr("http.response.status_code").is_some())
    })
    .await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let server = by_name(&spans, "POST /webhooks/richpanel")
        .unwrap_or_else(|| panic!("no ingress span in {names:?}"));
    assert_eq!(server.kind, "server");
    assert_eq!(
        server.parent_span_id, "00f067aa0ba902b7",
        "the sender's span is the parent"
    );
    assert_eq!(server.attr("http.response.status_code"), Some("202"));
    let sent = by_name(&spans, "events send").unwrap_or_else(|| panic!("no send in {names:?}"));
    assert_eq!(
        (sent.kind.as_str(), sent.parent_span_id.as_str()),
        ("producer", server.span_id.as_str())
    );
    let process =
        by_name(&spans, "events process").unwrap_or_else(|| panic!("no process in {names:?}"));
    assert_eq!(process.kind, "consumer");
    assert_eq!(
        process.parent_span_id, sent.span_id,
        "the worker continues the message's trace"
    );
    let expected_system = if kind == "aws" {
        "aws_sqs"
    } else {
        "switchyard_sqlite"
    };
    assert_eq!(process.attr("messaging.system"), Some(expected_system));
    let call = spans
        .iter()
        .find(|s| s.name == "richpanel call" && s.attr("switchyard.verdict") == Some("sent"))
        .unwrap_or_else(|| panic!("no sent richpanel call in {spans:#?}"));
    let http = spans
        .iter()
        .find(|s| s.kind == "client" && s.parent_span_id == call.span_id)
        .unwrap_or_else(|| panic!("no HTTP span under the call in {spans:#?}"));
    assert_eq!(http.attr("server.address"), Some("127.0.0.1"));
    let received: Vec<String> = fake
        .requests()
        .into_iter()
        .filter_map(|r| r.traceparent)
        .collect();
    assert!(
        received.contains(&format!("00-{trace}-{}-01", http.span_id)),
        "the fake received the HTTP span's context: {received:?}, span {}",
        http.span_id
    );
    for s in &spans {
        for (k, v) in &s.attributes {
            assert!(
                !v.contains("jane.doe") && !v.contains("example.com"),
                "customer data in span {} attribute {k}: {v}",
                s.name
            );
        }
    }
    // The unsampled webhook went all the way to Richpanel, carrying no
    // sampled context, and its trace was exported nowhere.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dropped_write = loop {
        let found = fake
            .requests()
            .into_iter()
            .find(|r| r.path.contains("/TR-0"));
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "TR-0 never reached Richpanel");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        dropped_write
            .traceparent
            .as_deref()
            .is_none_or(|tp| !tp.ends_with("-01")),
        "an unsampled trace went out as sampled: {:?}",
        dropped_write.traceparent
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let leaked: Vec<String> = collector
        .spans()
        .into_iter()
        .filter(|s| s.trace_id != trace)
        .map(|s| format!("{} ({})", s.name, s.trace_id))
        .collect();
    assert!(
        leaked.is_empty(),
        "spans outside the sampled trace: {leaked:?}"
    );

    data.cmd()
        .args([
            "flags",
            "set",
            "kill-switch",
            "all_writes",
            "--reason",
            "trace test",
        ])
        .assert()
        .success();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let suppressed_trace = base16ct::lower::encode_string(&rand::random::<[u8; 16]>());
    assert_eq!(send("TR-2", suppressed_trace.clone()).await, 202);
    let is_suppressed = |s: &loadtest::otlp::ExportedSpan| {
        s.name == "richpanel call"
            && s.attr("switchyard.verdict") == Some("suppressed")
            && s.attr("switchyard.reason") == Some("kill_switch")
    };
    let spans = trace_spans(&collector, &suppressed_trace, |spans| {
        spans.iter().any(is_suppressed)
    })
    .await;
    assert!(
        spans.iter().any(is_suppressed),
        "no suppressed call span in {spans:#?}"
    );
    assert_eq!(collector.requests().1, 0, "every export decoded");
    serve.stop();
}

/// Ingress processes scale on their own: three `serve --ingress-only`
/// processes on one AWS prefix, 100 concurrent posts of one webhook spread
/// over them (each sender retrying a 503), and the shared ledger makes it
/// one message — one 202, every other answer a 200 duplicate, one message
/// on the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
async fn three_ingress_processes_take_one_webhook_once() {
    assert!(aws_enabled(), "{}", ports::aws::SERVERS_NOT_SET);
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new("aws", tmp.path());
    let serves: Vec<Serve> = (0..3)
        .map(|_| Serve::start(&data, &[("SWITCHYARD_INGRESS_ONLY", "true".to_owned())]))
        .collect();
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "ticket_id": "FLEET-1",
        "message_id": "m-1",
        "message": "where is my order?",
    });
    // Each sender retries a 503 (another process is mid-way through the
    // same webhook and did not finish within the ingress's wait), as
    // Richpanel retries a failed delivery.
    let posts = (0..100).map(|i| {
        let (client, url, body) = (client.clone(), serves[i % 3].url.clone(), body.clone());
        async move {
            for _ in 0..50 {
                let status = post(&client, &url, body.clone()).await;
                if status != 503 {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            503
        }
    });
    let mut statuses = futures::future::join_all(posts).await;
    statuses.sort_unstable();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let duplicates = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!((accepted, duplicates), (1, 99), "{statuses:?}");
    let s = status_json(&data);
    assert_eq!(
        (
            s["queue"]["visible"].as_u64(),
            s["queue"]["in_flight"].as_u64()
        ),
        (Some(1), Some(0)),
        "{s}"
    );
    for serve in serves {
        serve.stop();
    }
}

/// With the collector down — it accepts connections and never answers, so
/// every export waits out its timeout — the ingress acknowledges as fast as
/// ever (no ack waits on the exporter: the slowest of 200 stays under half
/// the 3 s export timeout, whatever else loads the host), every
/// acknowledged webhook is processed,
/// and the spans that could not be exported are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_collector_down_acks_keep_their_latency_and_nothing_is_lost() {
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", blackhole.local_addr().expect("addr"));
    let tmp = tempfile::tempdir().expect("tmp");
    let data = Store::new("embedded", tmp.path());
    let serve = Serve::start(
        &data,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
        ],
    );
    let client = reqwest::Client::new();
    let mut latencies = Vec::new();
    for chunk in 0..10 {
        let posts = (0..20).map(|i| {
            let client = client.clone();
            let url = serve.url.clone();
            async move {
                let body = serde_json::json!({
                    "ticket_id": format!("CD-{chunk}-{i}"),
                    "message_id": "m-1",
                    "message": "hello",
                });
                let started = Instant::now();
                let status = post(&client, &url, body).await;
                (status, started.elapsed())
            }
        });
        for (status, took) in futures::future::join_all(posts).await {
            assert_eq!(status, 202);
            latencies.push(took);
        }
    }
    latencies.sort();
    let slowest = latencies[latencies.len() - 1];
    // An ack that waited on an export would take the 3 s export timeout;
    // the bound leaves room for a host loaded by other tests.
    assert!(
        slowest < Duration::from_millis(1500),
        "an ack waited on the exporter: slowest {slowest:?}, median {:?}",
        latencies[latencies.len() / 2]
    );
    wait_until(Duration::from_secs(60), "every webhook processed", || {
        let st = status_json(&data);
        st["queue"]["visible"] == 0 && st["queue"]["in_flight"] == 0
    });
    for ticket in ["CD-0-0", "CD-9-19"] {
        assert_eq!(
            message_ids(&inspect_json(&data, ticket)),
            ["m-1"],
            "{ticket}"
        );
    }
    let dropped = || async {
        let text = client
            .get(format!("{}/metrics", serve.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find(|l| l.starts_with(ports::otel::SPANS_DROPPED))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while dropped().await == 0.0 {
        assert!(Instant::now() < deadline, "no dropped spans counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(blackhole);
    serve.stop();
}
