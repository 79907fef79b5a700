//! HTTP-level behaviour of the token routes, over every available backend.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use ingress::IngressConfig;

on_both_backends!(
    auth_rejects_missing_and_wrong_tokens_and_accepts_the_previous_one,
    hmac_signed_requests_pass_and_bad_or_stale_signatures_fail,
    limits_answer_413_415_and_400_with_a_reason,
    accepted_then_duplicate_then_conflict,
    hundred_concurrent_identical_posts_enqueue_exactly_once,
    queue_outage_answers_503_then_the_retry_succeeds,
    expired_claims_are_taken_over_and_live_ones_answer_503,
    health_readiness_metrics_and_raw_email,
    no_token_refuses_to_start_and_ensure_token_generates_one_once,
);

async fn auth_rejects_missing_and_wrong_tokens_and_accepts_the_previous_one(tb: TestBackend) {
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let body = ticket_body(&unique("T"), "m1", "hello");
    let url = app.url("/webhooks/richpanel");

    let resp = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, json) = decode(resp).await;
    assert_eq!(status, 401, "{}: missing token", tb.name);
    assert_eq!(json["error"], "unauthorized");
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("X-Switchyard-Token")
    );

    let wrong = "wrong-token-with-a-distinctive-value";
    let resp = app
        .http
        .post(&url)
        .header("X-Switchyard-Token", wrong)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, json) = decode(resp).await;
    assert_eq!(status, 401, "{}: wrong token", tb.name);
    assert!(
        !json.to_string().contains(wrong),
        "the token must not be echoed"
    );
    assert!(!json.to_string().contains(TOKEN));
    assert_eq!(app.visible().await, 0, "{}: nothing stored on 401", tb.name);

    // Rotation: the previous token is still accepted.
    tb.backend
        .secrets
        .store(ingress::SECRET_TOKEN_PREVIOUS, "old-token-123")
        .await
        .unwrap();
    let resp = app
        .http
        .post(&url)
        .header("X-Switchyard-Token", "old-token-123")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(decode(resp).await.0, 202, "{}: previous token", tb.name);
    assert_eq!(app.visible().await, 1);
}

async fn hmac_signed_requests_pass_and_bad_or_stale_signatures_fail(tb: TestBackend) {
    tb.backend
        .secrets
        .store(ingress::SECRET_HMAC_KEY, "hmac-key-for-tests")
        .await
        .unwrap();
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let body = ticket_body(&unique("T"), "m1", "signed");
    let post = |ts: String, sig: String, body: String| {
        app.http
            .post(app.url("/webhooks/richpanel"))
            .header("content-type", "application/json")
            .header(ingress::HEADER_TIMESTAMP, ts)
            .header(ingress::HEADER_SIGNATURE, sig)
            .body(body)
            .send()
    };
    let now = chrono::Utc::now().timestamp().to_string();
    let good = ingress::sign(b"hmac-key-for-tests", &now, body.as_bytes());
    let (status, _) = decode(
        post(now.clone(), good.clone(), body.clone() + " ")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "{}: body changed after signing", tb.name);
    let stale = (chrono::Utc::now().timestamp() - 3600).to_string();
    let stale_sig = ingress::sign(b"hmac-key-for-tests", &stale, body.as_bytes());
    let (status, json) = decode(post(stale, stale_sig, body.clone()).await.unwrap()).await;
    assert_eq!(status, 401, "{}: stale timestamp", tb.name);
    assert!(json["reason"].as_str().unwrap().contains("replay window"));
    assert_eq!(app.visible().await, 0);
    let (status, _) = decode(post(now, good, body).await.unwrap()).await;
    assert_eq!(status, 202, "{}: good signature, no token", tb.name);
}

async fn limits_answer_413_415_and_400_with_a_reason(tb: TestBackend) {
    let mut cfg = IngressConfig::default();
    cfg.limits.richpanel = 1024;
    let app = serve(tb.backend.clone(), cfg).await;
    let big = ticket_body(&unique("T"), "m1", &"x".repeat(2000));
    let (status, json) = app.richpanel(&big).await;
    assert_eq!(status, 413, "{}", tb.name);
    assert_eq!(json["error"], "payload_too_large");

    // Chunked body without Content-Length is cut while reading.
    let stream = futures::stream::iter((0..8).map(|_| {
        Ok::<_, std::io::Error>(http_body::Frame::data(bytes::Bytes::from(vec![b' '; 256])))
    }));
    let resp = app
        .http
        .post(app.url("/webhooks/richpanel"))
        .header("X-Switchyard-Token", TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(stream)))
        .send()
        .await
        .unwrap();
    // The rest of the body is drained first, so the client reads the 413.
    assert_eq!(resp.status().as_u16(), 413, "{}: chunked", tb.name);

    let resp = app
        .http
        .post(app.url("/webhooks/richpanel"))
        .header("X-Switchyard-Token", TOKEN)
        .header("content-type", "application/xml")
        .body("<a/>")
        .send()
        .await
        .unwrap();
    let (status, json) = decode(resp).await;
    assert_eq!(status, 415, "{}", tb.name);
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );

    let (status, json) = app.richpanel(r#"{"nothing": "useful"}"#).await;
    assert_eq!(status, 400, "{}", tb.name);
    assert_eq!(json["error"], "missing_ticket_id");
    assert!(json["reason"].as_str().unwrap().contains("ticket"));
    let (status, json) = app.richpanel("[1, 2]").await;
    assert_eq!(status, 400);
    assert!(json["error"].is_string() && json["reason"].is_string());

    let resp = app
        .http
        .post(app.url("/webhooks/email"))
        .header("X-Switchyard-Token", TOKEN)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        415,
        "{}: email wants message/rfc822",
        tb.name
    );
    assert_eq!(app.visible().await, 0, "{}: nothing stored", tb.name);
}

async fn accepted_then_duplicate_then_conflict(tb: TestBackend) {
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let ticket = unique("T");
    let body = ticket_body(&ticket, "m1", "where is my parcel");
    let (status, first) = app.richpanel(&body).await;
    assert_eq!(status, 202, "{}: {first}", tb.name);
    assert_eq!(first["status"], "accepted");
    let event_id = first["event_id"].as_str().unwrap().to_owned();

    let (status, dup) = app.richpanel(&body).await;
    assert_eq!(status, 200, "{}", tb.name);
    assert_eq!(dup["status"], "duplicate");
    assert_eq!(dup["event_id"], event_id.as_str());
    assert_eq!(
        app.visible().await,
        1,
        "{}: duplicate sent nothing",
        tb.name
    );

    let (status, conflict) = app
        .richpanel(&ticket_body(&ticket, "m1", "a different text"))
        .await;
    assert_eq!(status, 409, "{}", tb.name);
    assert_eq!(conflict["error"], "conflict");
    assert_eq!(conflict["event_id"], event_id.as_str());
    assert_eq!(app.visible().await, 1);

    let msgs = tb
        .backend
        .queue
        .receive(10, Duration::from_secs(30), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1);
    let tp = msgs[0]
        .attributes
        .get("traceparent")
        .expect("traceparent attribute");
    assert_eq!(tp.split('-').count(), 4, "W3C traceparent: {tp}");
    let env: serde_json::Value = serde_json::from_str(&msgs[0].body).unwrap();
    assert_eq!(env["event_id"], event_id.as_str());

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_ingress_conflict_total"),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_ingress_ack_seconds"));
}

async fn hundred_concurrent_identical_posts_enqueue_exactly_once(tb: TestBackend) {
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let body = ticket_body(&unique("T"), "m-burst", "same webhook from many rules");
    let posts = (0..100).map(|_| app.richpanel(&body));
    let answers = within(60, futures::future::join_all(posts)).await;
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
    let duplicate = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(accepted, 1, "{}: {answers:?}", tb.name);
    assert_eq!(
        duplicate, 99,
        "{}: every other answer is 200 duplicate",
        tb.name
    );
    assert_eq!(app.visible().await, 1, "{}: exactly one message", tb.name);
}

async fn queue_outage_answers_503_then_the_retry_succeeds(mut tb: TestBackend) {
    let flaky = FlakyQueue::wrap(&mut tb.backend);
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let body = ticket_body(&unique("T"), "m1", "during an outage");
    flaky.set_failing(true);
    let resp = app
        .http
        .post(app.url("/webhooks/richpanel"))
        .header("X-Switchyard-Token", TOKEN)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503, "{}", tb.name);
    assert!(
        resp.headers().contains_key("retry-after"),
        "{}: Retry-After",
        tb.name
    );
    let (_, json) = decode(resp).await;
    let event_id = json["event_id"].as_str().unwrap().to_owned();
    assert!(
        tb.backend.ledger.get(&event_id).await.unwrap().is_none(),
        "claim released"
    );

    flaky.set_failing(false);
    let (status, json) = app.richpanel(&body).await;
    assert_eq!(status, 202, "{}: retry after the outage: {json}", tb.name);
    assert_eq!(app.visible().await, 1);
}

async fn expired_claims_are_taken_over_and_live_ones_answer_503(tb: TestBackend) {
    let cfg = IngressConfig {
        in_flight_wait_ms: 3000,
        ..IngressConfig::default()
    };
    let app = serve(tb.backend.clone(), cfg).await;
    let body = ticket_body(&unique("T"), "m1", "first attempt died");
    // Learn the event id and hash: accept once on a scratch backend.
    let scratch = embedded().await;
    let scratch_app = serve(scratch.backend.clone(), IngressConfig::default()).await;
    let (_, json) = scratch_app.richpanel(&body).await;
    let event_id = json["event_id"].as_str().unwrap().to_owned();
    let hash = scratch
        .backend
        .ledger
        .get(&event_id)
        .await
        .unwrap()
        .unwrap()
        .payload_hash;

    // A claim that expires in 300 ms (a crashed first attempt) is taken over.
    let ledger = &tb.backend.ledger;
    ledger
        .try_create(
            &event_id,
            &hash,
            "crashed-owner",
            Duration::from_millis(300),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let (status, json) = app.richpanel(&body).await;
    assert_eq!(status, 202, "{}: expired claim taken over: {json}", tb.name);
    assert_eq!(app.visible().await, 1);

    // A claim that outlives the wait → 503, never a 2xx.
    let body2 = ticket_body(&unique("T"), "m1", "someone else is slow");
    let (_, json) = scratch_app.richpanel(&body2).await;
    let id2 = json["event_id"].as_str().unwrap().to_owned();
    let hash2 = scratch
        .backend
        .ledger
        .get(&id2)
        .await
        .unwrap()
        .unwrap()
        .payload_hash;
    ledger
        .try_create(
            &id2,
            &hash2,
            "slow-owner",
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let (status, _) = app.richpanel(&body2).await;
    assert_eq!(status, 503, "{}", tb.name);
    assert_eq!(app.visible().await, 1);
}

async fn health_readiness_metrics_and_raw_email(tb: TestBackend) {
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    for path in ["/healthz", "/readyz"] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}: {path}", tb.name);
    }
    let eml = std::fs::read(format!("{CORPUS}/eml/postal-mime/simple.eml"))
        .or_else(|_| std::fs::read(first_eml()))
        .unwrap();
    let send = || {
        app.http
            .post(app.url("/webhooks/email"))
            .header("X-Switchyard-Token", TOKEN)
            .header("content-type", "message/rfc822")
            .body(eml.clone())
            .send()
    };
    let (status, json) = decode(send().await.unwrap()).await;
    assert_eq!(status, 202, "{}: {json}", tb.name);
    let (status, _) = decode(send().await.unwrap()).await;
    assert_eq!(status, 200, "{}: same email again is a duplicate", tb.name);
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.contains("switchyard_ingress_accepted_total"), "{text}");
    if tb.name == "embedded" {
        // What each durable write costs, for operators and the docs'
        // frames-per-message numbers: counted by the writer thread.
        for name in [
            "switchyard_sqlite_commits_total",
            "switchyard_sqlite_write_jobs_total",
            "switchyard_sqlite_wal_frames_total",
        ] {
            let value: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} missing: {text}"));
            assert!(value >= 1.0, "{name} = {value}");
        }
    }
}

fn first_eml() -> String {
    let dir = format!("{CORPUS}/eml/postal-mime");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.ends_with(".eml"))
        .collect();
    names.sort();
    names.remove(0)
}

async fn no_token_refuses_to_start_and_ensure_token_generates_one_once(tb: TestBackend) {
    if std::env::var_os(ingress::ENV_TOKEN).is_some() {
        eprintln!("skipped: {} is set in this environment", ingress::ENV_TOKEN);
        return;
    }
    let err = ingress::Ingress::with_env_token(tb.backend.clone(), IngressConfig::default(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ingress::IngressError::NoToken),
        "{}: {err}",
        tb.name
    );
    let token = ingress::ensure_token(&tb.backend)
        .await
        .unwrap()
        .expect("generated");
    assert!(token.len() >= 40, "{}", tb.name);
    assert_eq!(
        ingress::ensure_token(&tb.backend).await.unwrap(),
        None,
        "{}: only once",
        tb.name
    );
    let stored = tb
        .backend
        .secrets
        .refresh(ingress::SECRET_TOKEN)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(token.as_str()));
    assert!(
        ingress::Ingress::with_env_token(tb.backend.clone(), IngressConfig::default(), None)
            .await
            .is_ok()
    );
}
