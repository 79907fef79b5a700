//! Durable appends on the embedded backend: group commit on vs off; then
//! the embedded queue with a backlog (sends, and receive + delete).
//!
//! `cargo bench -p ports --bench append` (release). Knobs:
//! `APPEND_TASKS` (concurrent writers, default 64), `APPEND_SECS` (seconds
//! per mode, default 5), `QUEUE_MESSAGES` (default 20000). Prints the
//! disk's raw fsync latency, then the rates. Results go in
//! docs/durability.md.
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ports::embedded::{Tuning, open_tuned};
use ports::{EmbeddedSettings, NewEvent, OutgoingMessage};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Mean time of write(4 KiB) + fdatasync on the bench's disk.
fn raw_fsync_ms(dir: &std::path::Path) -> f64 {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).expect("probe file");
    let block = [7u8; 4096];
    let rounds = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        f.write_all(&block).expect("write");
        f.sync_data().expect("fsync");
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds)
}

async fn run(max_batch: usize, tasks: u64, secs: u64) -> (u64, f64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let settings = EmbeddedSettings::new(dir.path().join("data"));
    let backend = open_tuned(&settings, Tuning { max_batch })
        .await
        .expect("open backend");
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let events = Arc::clone(&backend.events);
        let count = Arc::clone(&count);
        handles.push(tokio::spawn(async move {
            let stream = format!("conv-{t}");
            let mut version = 0u64;
            while Instant::now() < deadline {
                let event = NewEvent {
                    event_id: format!("evt-{t}-{version}"),
                    kind: "MessageReceived".into(),
                    body: r#"{"text":"hello, where is my order?"}"#.into(),
                };
                let state = format!(r#"{{"messages":{}}}"#, version + 1);
                version = events
                    .append(&stream, version, vec![event], state)
                    .await
                    .expect("append");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await.expect("writer task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    (n, n as f64 / elapsed)
}

/// Send `n` messages over 1000 groups from `tasks` senders, then drain
/// with `tasks` consumers (receive 10, delete each). Returns (sends/s,
/// deliveries/s).
async fn queue(n: u64, tasks: u64) -> (f64, f64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let settings = EmbeddedSettings::new(dir.path().join("data"));
    let backend = ports::embedded::open(&settings)
        .await
        .expect("open backend");
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let q = Arc::clone(&backend.queue);
        handles.push(tokio::spawn(async move {
            let mut i = t;
            while i < n {
                q.send(OutgoingMessage {
                    group_id: format!("conv-{}", i % 1000),
                    dedup_id: format!("evt-{i}"),
                    body: r#"{"schema_version":1,"text":"where is my order?"}"#.into(),
                    attributes: Default::default(),
                })
                .await
                .expect("send");
                i += tasks;
            }
        }));
    }
    for h in handles.drain(..) {
        h.await.expect("sender");
    }
    let sends = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    for _ in 0..tasks {
        let q = Arc::clone(&backend.queue);
        let done = Arc::clone(&done);
        handles.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < n {
                let got = q
                    .receive(10, Duration::from_secs(30), Duration::from_millis(100))
                    .await
                    .expect("receive");
                for m in got {
                    q.delete(&m.receipt).await.expect("delete");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("consumer");
    }
    (sends, n as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not run
    // benches with harness = false unless asked, so accept any arguments.
    let tasks = env_num("APPEND_TASKS", 64);
    let secs = env_num("APPEND_SECS", 5);
    let probe = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    println!(
        "raw fsync (4 KiB write + fdatasync): {:.2} ms",
        raw_fsync_ms(probe.path())
    );
    println!("{tasks} concurrent writers, {secs} s per mode, one event per append");
    for (label, max_batch) in [
        ("group commit (batch <= 256)", 256),
        ("one fsync per write (batch = 1)", 1),
    ] {
        let (n, rate) = run(max_batch, tasks, secs).await;
        println!("{label:<34} {n:>8} appends  {rate:>9.0} appends/s");
    }
    let n = env_num("QUEUE_MESSAGES", 20_000);
    let (sends, drained) = queue(n, tasks).await;
    println!("queue: {n} sends over 1000 groups      {sends:>9.0} sends/s");
    println!("queue: drain (receive 10 + delete each) {drained:>9.0} messages/s");
}
