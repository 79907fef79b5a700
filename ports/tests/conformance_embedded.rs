//! The conformance suite against the embedded (SQLite) backend.
#[macro_use]
mod conformance;

use ports::{Backend, EmbeddedSettings};

async fn make(scope: conformance::Scope) -> Backend {
    let mut s = EmbeddedSettings::new(scope.dir.path().join("data"));
    s.max_receive_count = conformance::MAX_RECEIVE_COUNT;
    s.secrets_ttl = conformance::SECRETS_TTL;
    s.raw_mail_buckets = vec![scope.bucket.clone()];
    ports::embedded::open(&s)
        .await
        .expect("open embedded backend")
}

conformance_suite!(make);

// ---- embedded-only: tests that need a child process ----
//
// The child is this same test binary, re-run on one `#[ignore]`d test with
// an environment variable naming its job; run alone, those tests do nothing
// useful, which is why they are ignored. Their names start with
// `child_process_`, so a run with `--include-ignored` can skip them
// (`scripts/test` passes `--skip child_process_`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR: &str = "SWITCHYARD_TEST_CHILD_DIR";

fn child(test: &str, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    cmd
}

fn child_settings() -> Option<EmbeddedSettings> {
    std::env::var_os(CHILD_DIR).map(EmbeddedSettings::new)
}

/// Child: append forever from 16 tasks, printing `ACK <event id>` after
/// each append returned. Killed by the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of kill9_loses_no_acknowledged_append"]
async fn child_process_kill9_writer() {
    let Some(s) = child_settings() else { return };
    let b = ports::embedded::open(&s).await.expect("open");
    let mut tasks = Vec::new();
    for t in 0..16 {
        let events = b.events.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("conv-{t}");
            let mut version = 0;
            loop {
                let id = format!("evt-{t}-{version}");
                let e = ports::NewEvent {
                    event_id: id.clone(),
                    kind: "K".into(),
                    body: "{}".into(),
                };
                version = events
                    .append(
                        &stream,
                        version,
                        vec![e],
                        format!("{{\"v\":{}}}", version + 1),
                    )
                    .await
                    .expect("append");
                println!("ACK {id}");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Every append the writer acknowledged before `kill -9` is in the log
/// after reopening. (This covers a process crash; power loss additionally
/// relies on the disk honouring fsync — see docs/durability.md.)
#[test]
fn kill9_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut proc = child("child_process_kill9_writer", &data)
        .spawn()
        .expect("spawn child");
    let stdout = proc.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix("ACK ")
                && tx.send(id.to_owned()).is_err()
            {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 2000 && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(id) => acked.push(id),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    // SIGKILL while it is still writing.
    proc.kill().expect("kill -9");
    let status = proc.wait().expect("wait");
    assert!(!status.success(), "the child was killed, not finished");
    acked.extend(rx.try_iter());
    assert!(
        acked.len() >= 100,
        "child acknowledged only {} appends",
        acked.len()
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let b = ports::embedded::open(&EmbeddedSettings::new(&data))
            .await
            .expect("reopen");
        for id in &acked {
            assert!(
                b.events.contains_event(id).await.expect("read"),
                "acknowledged append {id} lost after kill -9"
            );
        }
    });
}

/// Child: the environment variable wins over the secret file.
#[tokio::test]
#[ignore = "child process of secret_env_var_overrides_file"]
async fn child_process_secret_env() {
    let Some(s) = child_settings() else { return };
    let b = ports::embedded::open(&s).await.expect("open");
    b.secrets
        .store("richpanel/api-key", "from-file")
        .await
        .expect("store");
    let got = b.secrets.refresh("richpanel/api-key").await.expect("fetch");
    assert_eq!(got.as_deref(), Some("from-env"));
    println!("CHILD-OK");
}

#[test]
fn secret_env_var_overrides_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = child("child_process_secret_env", &dir.path().join("data"))
        .env("SWITCHYARD_SECRET_RICHPANEL_API_KEY", "from-env")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child failed: {stdout}"
    );
}
