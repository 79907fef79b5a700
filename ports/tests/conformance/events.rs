//! Event log cases: optimistic concurrency, event-id uniqueness, atomic
//! projection, paging.
use ports::{NewEvent, PortError};

use super::Harness;

fn ev(id: &str) -> NewEvent {
    NewEvent {
        event_id: id.to_owned(),
        kind: "MessageReceived".to_owned(),
        body: format!(r#"{{"id":"{id}"}}"#),
    }
}

/// An append at a stale expected version is a typed conflict naming the
/// actual version; appends at the right version go on.
pub async fn events_append_conflict_on_stale_version(h: &Harness) {
    let e = &h.b.events;
    assert_eq!(
        e.append("conv-1", 0, vec![ev("e1")], "p1".into())
            .await
            .expect("append"),
        1
    );
    match e
        .append("conv-1", 0, vec![ev("e2")], "p-stale".into())
        .await
    {
        Err(PortError::SequenceConflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (0, 1)),
        other => panic!("expected a sequence conflict, got {other:?}"),
    }
    // Stale AND colliding on an id already in the stream (as a derived
    // `ev:<stream>:<seq>` id does when the writer's version is stale): still
    // a version conflict, never "already appended" — a caller must not take
    // it as proof its events are recorded.
    match e
        .append(
            "conv-1",
            0,
            vec![ev("e1"), ev("e2-stale")],
            "p-stale".into(),
        )
        .await
    {
        Err(PortError::SequenceConflict { expected: 0, .. }) => {}
        other => panic!("expected a sequence conflict, got {other:?}"),
    }
    assert_eq!(
        e.append("conv-1", 1, vec![ev("e2"), ev("e3")], "p3".into())
            .await
            .expect("append two"),
        3
    );
    let all = e.read_stream("conv-1", 0).await.expect("read");
    let ids: Vec<(u64, &str)> = all.iter().map(|x| (x.seq, x.event_id.as_str())).collect();
    assert_eq!(ids, [(1, "e1"), (2, "e2"), (3, "e3")]);
    assert_eq!(all[1].kind, "MessageReceived");
    assert_eq!(all[1].body, r#"{"id":"e2"}"#);
    let tail = e.read_stream("conv-1", 2).await.expect("read tail");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].event_id, "e3");
    assert!(e.read_stream("nobody", 0).await.expect("read").is_empty());
}

/// An event id already appended (to any stream) is rejected as
/// AlreadyAppended and nothing of that append is written.
pub async fn events_duplicate_event_id_rejected(h: &Harness) {
    let e = &h.b.events;
    e.append("conv-a", 0, vec![ev("dup")], "pa".into())
        .await
        .expect("append");
    match e
        .append("conv-b", 0, vec![ev("fresh"), ev("dup")], "pb".into())
        .await
    {
        Err(PortError::AlreadyAppended { event_id }) => assert_eq!(event_id, "dup"),
        other => panic!("expected AlreadyAppended, got {other:?}"),
    }
    assert!(e.read_stream("conv-b", 0).await.expect("read").is_empty());
    assert!(e.projection("conv-b").await.expect("projection").is_none());
    assert!(
        !e.contains_event("fresh").await.expect("contains"),
        "all or nothing"
    );
    assert!(e.contains_event("dup").await.expect("contains"));
    // Same stream, right version: still a duplicate.
    assert!(matches!(
        e.append("conv-a", 1, vec![ev("dup")], "pa2".into()).await,
        Err(PortError::AlreadyAppended { .. })
    ));
    assert_eq!(e.read_stream("conv-a", 0).await.expect("read").len(), 1);
}

/// The projection moves with the append: a failed append changes neither
/// stream nor projection; put_projection is conditional on the version.
pub async fn events_projection_atomic_with_append(h: &Harness) {
    let e = &h.b.events;
    assert!(e.projection("conv").await.expect("projection").is_none());
    e.append("conv", 0, vec![ev("e1")], r#"{"n":1}"#.into())
        .await
        .expect("append");
    let p = e
        .projection("conv")
        .await
        .expect("projection")
        .expect("exists");
    assert_eq!(
        (p.stream.as_str(), p.version, p.state.as_str()),
        ("conv", 1, r#"{"n":1}"#)
    );

    // Stale version: nothing changes.
    assert!(
        e.append("conv", 0, vec![ev("e2")], "bad".into())
            .await
            .is_err()
    );
    // Duplicate id: nothing changes.
    assert!(
        e.append("conv", 1, vec![ev("e1")], "bad".into())
            .await
            .is_err()
    );
    let p = e
        .projection("conv")
        .await
        .expect("projection")
        .expect("exists");
    assert_eq!((p.version, p.state.as_str()), (1, r#"{"n":1}"#));
    assert_eq!(e.read_stream("conv", 0).await.expect("read").len(), 1);
    assert!(!e.contains_event("e2").await.expect("contains"));

    e.put_projection("conv", 1, r#"{"n":1,"fixed":true}"#.into())
        .await
        .expect("put at current version");
    assert!(matches!(
        e.put_projection("conv", 7, "wrong".into()).await,
        Err(PortError::ConditionFailed(_))
    ));
    let p = e
        .projection("conv")
        .await
        .expect("projection")
        .expect("exists");
    assert_eq!(
        (p.version, p.state.as_str()),
        (1, r#"{"n":1,"fixed":true}"#)
    );

    e.append("conv", 1, vec![ev("e2")], r#"{"n":2}"#.into())
        .await
        .expect("append");
    let p = e
        .projection("conv")
        .await
        .expect("projection")
        .expect("exists");
    assert_eq!((p.version, p.state.as_str()), (2, r#"{"n":2}"#));
}

/// Streams list in ascending order, page by page.
pub async fn events_list_streams_paging(h: &Harness) {
    let e = &h.b.events;
    for (i, s) in ["conv-c", "conv-a", "conv-e", "conv-b", "conv-d"]
        .iter()
        .enumerate()
    {
        e.append(s, 0, vec![ev(&format!("e{i}"))], "{}".into())
            .await
            .expect("append");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = e.list_streams(after.as_deref(), 2).await.expect("list");
        assert!(page.len() <= 2, "limit honoured: {page:?}");
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        seen.extend(page);
    }
    assert_eq!(seen, ["conv-a", "conv-b", "conv-c", "conv-d", "conv-e"]);
    assert_eq!(
        e.list_streams(Some("conv-b"), 10).await.expect("list"),
        ["conv-c", "conv-d", "conv-e"]
    );
}
