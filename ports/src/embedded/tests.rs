//! Embedded-only behaviour: group commit, persistence, migrations, files.
//! The shared semantics live in `tests/conformance`.
use std::sync::Arc;
use std::time::Duration;

use super::db::Db;
use super::events::SqliteEvents;
use super::*;
use crate::{EventStore, NewEvent, OutgoingMessage, PortError};

fn settings(dir: &tempfile::TempDir) -> EmbeddedSettings {
    EmbeddedSettings::new(dir.path().join("data"))
}

fn ev(id: &str) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        kind: "K".into(),
        body: "{}".into(),
    }
}

/// A message without attributes.
fn message(
    group: impl Into<String>,
    dedup: impl Into<String>,
    body: impl Into<String>,
) -> OutgoingMessage {
    OutgoingMessage {
        group_id: group.into(),
        dedup_id: dedup.into(),
        body: body.into(),
        attributes: Default::default(),
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("bounded wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_writers_and_isolates_a_failing_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path()).expect("dir");
    let db = Db::open(&dir.path().join(DB_FILE), 256).expect("open");
    let events = Arc::new(SqliteEvents::new(db.clone()));
    let before = db.commits();
    let mut tasks = Vec::new();
    // 64 appends to distinct streams plus 16 racing for the same slot.
    for i in 0..64 {
        let e = Arc::clone(&events);
        tasks.push(tokio::spawn(async move {
            e.append(&format!("s{i}"), 0, vec![ev(&format!("e{i}"))], "{}".into())
                .await
        }));
    }
    for i in 0..16 {
        let e = Arc::clone(&events);
        tasks.push(tokio::spawn(async move {
            e.append("race", 0, vec![ev(&format!("r{i}"))], "{}".into())
                .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match bounded(t).await.expect("task") {
            Ok(1) => ok += 1,
            Err(PortError::SequenceConflict { actual: 1, .. }) => conflicts += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (ok, conflicts),
        (65, 15),
        "one racer wins, the others conflict"
    );
    let commits = db.commits() - before;
    assert!(
        commits < 80,
        "80 writes took {commits} commits: not batched"
    );
    for i in 0..64 {
        assert!(events.contains_event(&format!("e{i}")).await.expect("read"));
    }
    assert_eq!(events.read_stream("race", 0).await.expect("read").len(), 1);
}

/// A batch runs without savepoints; when a job in it fails after writing,
/// the batch is rolled back and replayed with one savepoint per job: the
/// failed job's writes are gone, every other job's are committed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_after_writing_rolls_back_only_itself() {
    use super::sql::SqlResult;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join(DB_FILE), 256).expect("open");
    db.write(|c| {
        c.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, runs INTEGER)")
            .db()
    })
    .await
    .expect("table");
    let insert = |k: String, fail: bool| {
        let mut runs = 0;
        move |c: &rusqlite::Connection| {
            runs += 1;
            c.execute(
                "INSERT INTO t (k, runs) VALUES (?1, ?2)",
                rusqlite::params![k, runs],
            )
            .db()?;
            if fail {
                return Err(PortError::Invalid(format!("{k} fails after writing")));
            }
            Ok(runs)
        }
    };
    // Healthy batches are not replayed.
    let mut oks = Vec::new();
    for i in 0..32 {
        let db = db.clone();
        let job = insert(format!("a{i}"), false);
        oks.push(tokio::spawn(async move { db.write(job).await }));
    }
    for t in oks {
        assert_eq!(bounded(t).await.expect("task").expect("write"), 1);
    }
    assert_eq!(db.replays(), 0);
    // Hold the writer so the next jobs queue up into one batch.
    let (hold, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let blocker = {
        let db = db.clone();
        let mut started = Some(started);
        tokio::spawn(async move {
            db.write(move |_| {
                if let Some(s) = started.take() {
                    let _ = s.send(());
                    let _ = held.recv_timeout(Duration::from_secs(10));
                }
                Ok(())
            })
            .await
        })
    };
    bounded(running).await.expect("the writer runs the blocker");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = db.clone();
        let job = insert(format!("b{i}"), i == 3);
        tasks.push(tokio::spawn(async move { db.write(job).await }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    hold.send(()).expect("release the writer");
    bounded(blocker).await.expect("task").expect("blocker");
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(bounded(t).await.expect("task"));
    }
    let mut answered = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match (i, outcome) {
            (3, Err(PortError::Invalid(m))) => assert!(m.contains("b3 fails")),
            (3, other) => panic!("b3: {other:?}"),
            // Jobs before b3 ran twice (optimistically, then replayed), the
            // rest once: the run that was committed is the one answered.
            (_, Ok(runs)) => answered.push((format!("b{i}"), runs)),
            (_, Err(e)) => panic!("b{i}: {e}"),
        }
    }
    assert_eq!(db.replays(), 1, "one batch replayed");
    let rows: Vec<(String, i64)> = db
        .read(|c| {
            let mut st = c
                .prepare("SELECT k, runs FROM t WHERE k LIKE 'b%' ORDER BY k")
                .db()?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })
        .await
        .expect("rows");
    let expected = answered;
    assert_eq!(rows, expected, "b3's row rolled back; each other row once");
}

#[tokio::test]
async fn batch_of_one_commits_each_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join(DB_FILE), 1).expect("open");
    let events = SqliteEvents::new(db.clone());
    let before = db.commits();
    for i in 0..5 {
        bounded(events.append("s", i, vec![ev(&format!("e{i}"))], "{}".into()))
            .await
            .expect("append");
    }
    assert_eq!(db.commits() - before, 5);
}

#[tokio::test]
async fn data_survives_reopen_and_provision_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = settings(&dir);
    let first = bounded(provision(&s)).await.expect("provision");
    assert!(
        first.iter().any(|l| l.starts_with("created database")),
        "{first:?}"
    );
    {
        let b = bounded(open(&s)).await.expect("open");
        assert!(b.description.contains("synchronous=FULL"));
        b.events
            .append("conv", 0, vec![ev("e1")], "p".into())
            .await
            .expect("append");
        b.flags
            .set("shadow", "on", "ops", "test")
            .await
            .expect("flag");
        b.queue
            .send(message("g", "d", "hello"))
            .await
            .expect("send");
    }
    let again = bounded(provision(&s)).await.expect("provision again");
    assert!(
        again.iter().all(|l| l.starts_with("found")),
        "second run changes nothing: {again:?}"
    );
    let b = bounded(open(&s)).await.expect("reopen");
    assert!(b.events.contains_event("e1").await.expect("read"));
    assert_eq!(b.flags.get_all().await.expect("flags").version, 1);
    let got = b
        .queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "hello");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = settings(&dir);
    bounded(provision(&s)).await.expect("provision");
    let conn = rusqlite::Connection::open(s.data_dir.join(DB_FILE)).expect("open");
    conn.pragma_update(None, "user_version", schema::CURRENT + 1)
        .expect("bump");
    drop(conn);
    assert!(matches!(
        bounded(open(&s)).await,
        Err(PortError::Corrupt(_))
    ));
}

#[tokio::test]
async fn one_message_per_group_per_receive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = bounded(open(&settings(&dir))).await.expect("open");
    for (g, d) in [("a", "a1"), ("a", "a2"), ("b", "b1")] {
        b.queue.send(message(g, d, d)).await.expect("send");
    }
    let got = b
        .queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .expect("receive");
    let ids: Vec<&str> = got.iter().map(|m| m.dedup_id.as_str()).collect();
    assert_eq!(ids, ["a1", "b1"]);
    let stats = b.queue.stats().await.expect("stats");
    assert_eq!((stats.in_flight, stats.visible, stats.dlq), (2, 1, 0));
}

#[tokio::test]
async fn queue_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = bounded(open(&settings(&dir))).await.expect("open");
    assert_eq!(b.queue.max_receive(), 100);
    for max in [0, b.queue.max_receive() + 1] {
        assert!(matches!(
            b.queue
                .receive(max, Duration::from_secs(1), Duration::ZERO)
                .await,
            Err(PortError::Invalid(_))
        ));
    }
    let long = "x".repeat(129);
    for (g, d) in [(long.as_str(), "d"), ("g", ""), ("g", "has space")] {
        let r = b.queue.send(message(g, d, "b")).await;
        assert!(matches!(r, Err(PortError::Invalid(_))), "{g:?}/{d:?}");
    }
    assert!(matches!(
        b.queue.delete("no-such-receipt").await,
        Err(PortError::NotFound(_))
    ));
}

#[tokio::test]
async fn secrets_file_is_private_and_names_map_to_env_vars() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = settings(&dir);
    let b = bounded(open(&s)).await.expect("open");
    let name = format!("h2-test/{}", uuid::Uuid::new_v4().simple());
    b.secrets.store(&name, "s3cret").await.expect("store");
    let files: Vec<_> = std::fs::read_dir(s.data_dir.join("secrets"))
        .expect("secrets dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one file, inside the secrets dir: {files:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0])
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(matches!(
        b.secrets.store("", "x").await,
        Err(PortError::Invalid(_))
    ));
    // The override itself is tested in a child process
    // (tests/conformance_embedded.rs): this crate cannot set variables.
    assert_eq!(
        files::FileSecrets::env_var("richpanel/api-key.v2"),
        "SWITCHYARD_SECRET_RICHPANEL_API_KEY_V2"
    );
}

#[tokio::test]
async fn blob_keys_cannot_escape_the_blob_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every bucket below is allowed, so the blob dir's own checks answer.
    let mut s = settings(&dir);
    s.raw_mail_buckets = ["raw", "", "..", "Upper", "a/b"]
        .map(str::to_owned)
        .to_vec();
    let b = bounded(open(&s)).await.expect("open");
    for key in ["../escape", "/etc/passwd", "a/../../b", "", "dir/"] {
        assert!(
            matches!(
                b.blobs.put("raw", key, vec![1]).await,
                Err(PortError::Invalid(_))
            ),
            "key {key:?} must be refused"
        );
    }
    for bucket in ["", "..", "Upper", "a/b"] {
        assert!(
            matches!(b.blobs.get(bucket, "k").await, Err(PortError::Invalid(_))),
            "bucket {bucket:?} must be refused"
        );
    }
    b.blobs
        .put("raw", "a/b/c.eml", vec![1, 2])
        .await
        .expect("put");
    assert!(dir.path().join("data/blobs/raw/a/b/c.eml").is_file());
}

/// The writer checkpoints after answering a batch, once ~1,000 WAL pages
/// piled up: under sustained writes the WAL keeps restarting from the top
/// instead of growing with everything ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_is_checkpointed_and_restarts_under_sustained_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    let db = Db::open(&path, 256).expect("open");
    // ~4,000 rows of 4 KiB: at least 4,000 pages through the WAL (16 MiB).
    let value = "x".repeat(4096);
    for round in 0..50 {
        let mut tasks = Vec::new();
        for i in 0..80 {
            let (db, value) = (db.clone(), value.clone());
            tasks.push(tokio::spawn(async move {
                db.write(move |conn| {
                    conn.execute(
                        "INSERT INTO flags (name, value) VALUES (?1, ?2)",
                        rusqlite::params![format!("f-{round}-{i}"), value],
                    )
                    .map_err(super::sql::sql_err)?;
                    Ok(())
                })
                .await
            }));
        }
        for t in tasks {
            bounded(t).await.expect("join").expect("write");
        }
    }
    let wal = std::fs::metadata(dir.path().join(format!("{DB_FILE}-wal")))
        .expect("wal file")
        .len();
    assert!(
        wal < 10 * 1024 * 1024,
        "WAL is {wal} bytes after 16 MiB written: it is not being checkpointed"
    );
}

/// One embedded receive hands out up to `max_receive()` (100) messages: the
/// worker's single receive loop is not held to SQS's 10 per round trip.
#[tokio::test]
async fn embedded_receive_hands_out_more_than_ten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = bounded(open(&settings(&dir))).await.expect("open");
    for i in 0..40 {
        b.queue
            .send(message(format!("g{i}"), format!("d{i}"), "b"))
            .await
            .expect("send");
    }
    let got = b
        .queue
        .receive(40, Duration::from_secs(30), Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(got.len(), 40);
}

#[tokio::test]
async fn expired_ledger_records_are_swept_as_fast_as_records_are_created() {
    use crate::Ledger;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join(DB_FILE), 256).expect("open");
    let ledger = ledger::SqliteLedger::new(db.clone());
    let count = || async {
        db.read(|c| {
            use super::sql::SqlResult;
            c.query_row("SELECT COUNT(*) FROM ledger", [], |r| r.get::<_, i64>(0))
                .db()
        })
        .await
        .expect("count")
    };
    // A thousand records whose keep window ended an hour ago.
    db.write(|c| {
        use super::sql::SqlResult;
        c.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
             INSERT INTO ledger
                 (key, state, payload_hash, owner, created_at, in_progress_until, expires_at)
             SELECT 'old-' || i, 'enqueued', 'h', 'o', 0, 0,
                    CAST(unixepoch('subsec') * 1000 AS INTEGER) - 3600000 FROM n",
        )
        .db()
    })
    .await
    .expect("old records");
    assert_eq!(count().await, 1000);
    // Every create may sweep sixteen: 128 new ones clear the thousand old.
    let keep = Duration::from_secs(600);
    for i in 0..128 {
        let key = format!("new-{i}");
        ledger
            .try_create(&key, "h", "o", keep, keep)
            .await
            .expect("create");
    }
    assert_eq!(count().await, 128, "only the live records are left");
    // An expired key counts as absent: creating it again starts afresh.
    let again = ledger
        .try_create("old-1", "h2", "o2", keep, keep)
        .await
        .expect("create");
    assert!(matches!(again, crate::CreateOutcome::Created(r) if r.payload_hash == "h2"));
}

/// Re-binding a statement's parameters does not make SQLite prepare it
/// again (it would for `LIMIT ?` without the planner stability guarantee:
/// every receive and ledger sweep).
#[tokio::test]
async fn cached_statements_are_not_re_prepared_when_rebound() {
    use super::sql::SqlResult;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join(DB_FILE), 256).expect("open");
    let reprepared = db
        .write(|c| {
            let sql = "SELECT key FROM ledger WHERE expires_at <= ?1 LIMIT ?2";
            for limit in [1, 16, 1024, 16] {
                let mut st = c.prepare_cached(sql).db()?;
                st.query_map(rusqlite::params![limit * 1000, limit], |r| {
                    r.get::<_, String>(0)
                })
                .db()?
                .for_each(drop);
            }
            let st = c.prepare_cached(sql).db()?;
            Ok(st.get_status(rusqlite::StatementStatus::RePrepare))
        })
        .await
        .expect("query");
    assert_eq!(reprepared, 0);
}
