//! The whole stack against the fake server, with the real embedded backend
//! for flags and secrets.
mod common;

use std::time::Duration;

use common::{bounded, ctx, set_flag, setup};
use downstream::fake::{FakeConfig, FakeQuota};
use downstream::{BreakerState, CallError, Downstream, TicketReply, TicketUpdate, WriteOutcome};

fn reply_update() -> TicketUpdate {
    TicketUpdate {
        tags: Some(vec!["auto-replied".into()]),
        comment: Some(TicketReply {
            body: "Your order shipped.".into(),
            public: true,
        }),
        ..TicketUpdate::default()
    }
}

#[tokio::test]
async fn clients_speak_the_fake_shapes_and_writes_are_remembered() {
    bounded(30, async {
        let s = setup(FakeConfig::default(), |_| {}).await;
        let rp = s.ds.richpanel();
        let t = rp.get_ticket("T-1").await.expect("ticket");
        assert_eq!(t.id, "T-1");
        assert_eq!(t.comments.len(), 2);
        assert!(
            t.comments
                .iter()
                .all(|c| !c.is_operator && c.via.channel.as_deref() == Some("email"))
        );
        let out = rp
            .update_ticket("T-1", &reply_update(), &ctx("evt-1"))
            .await
            .expect("update");
        assert_eq!(out, WriteOutcome::Sent { status: 200 });
        rp.add_tags("T-1", &["vip".into()], &ctx("evt-2"))
            .await
            .expect("tags");
        let t = rp.get_ticket("T-1").await.expect("ticket again");
        assert_eq!(t.tags, vec!["auto-replied".to_string(), "vip".to_string()]);
        assert!(t.comments.last().is_some_and(|c| c.is_operator));
        let writes = s.fake.writes();
        assert_eq!(writes.len(), 2);
        assert_eq!(writes[0].idempotency_key.as_deref(), Some("evt-1"));

        let labels = vec!["order_status".to_string(), "refund".to_string()];
        let c =
            s.ds.openai()
                .classify("where is my ORDER? status please", &labels)
                .await
                .expect("classify");
        assert_eq!(c.intent, "order_status");
        assert!(c.confidence > 0.5);
        let order =
            s.ds.shopify()
                .order_by_number("#1001")
                .await
                .expect("lookup")
                .expect("found");
        assert_eq!(order.name, "#1001");
        assert_eq!(
            order.fulfillments[0].tracking_company.as_deref(),
            Some("UPS")
        );
        assert_eq!(
            s.ds.shopify().order_by_number("12").await.expect("lookup"),
            None
        );
        assert!(rp.order_lookup("T-1").await.expect("order").is_some());
        assert_eq!(
            s.fake.writes().len(),
            2,
            "classify and lookups are not writes"
        );
    })
    .await;
}

#[tokio::test]
async fn kill_switch_on_means_zero_writes_while_reads_still_work() {
    bounded(30, async {
        let s = setup(FakeConfig::default(), |_| {}).await;
        set_flag(&s, "kill-switch", "all_writes").await;
        let rp = s.ds.richpanel();
        let err = rp
            .update_ticket("T-2", &reply_update(), &ctx("e1"))
            .await
            .expect_err("suppressed");
        assert_eq!(
            err,
            CallError::KillSwitch {
                scope: "all_writes"
            }
        );
        assert_eq!(err.suppression_reason(), Some("kill_switch"));
        let err = rp
            .add_tags("T-2", &["x".into()], &ctx("e2"))
            .await
            .expect_err("suppressed");
        assert!(matches!(err, CallError::KillSwitch { .. }));
        rp.get_ticket("T-2").await.expect("reads still work");
        assert!(
            s.fake.writes().is_empty(),
            "the fake saw a write: {:?}",
            s.fake.writes()
        );

        // auto_replies: routing writes go through, customer-facing ones don't.
        set_flag(&s, "kill-switch", "auto_replies").await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let err = rp
            .update_ticket("T-2", &reply_update(), &ctx("e3"))
            .await
            .expect_err("reply suppressed");
        assert_eq!(
            err,
            CallError::KillSwitch {
                scope: "auto_replies"
            }
        );
        let tag_only = TicketUpdate {
            tags: Some(vec!["routed".into()]),
            ..TicketUpdate::default()
        };
        rp.update_ticket("T-2", &tag_only, &ctx("e4"))
            .await
            .expect("routing write allowed");
        let writes = s.fake.writes();
        assert_eq!(writes.len(), 1);
        assert!(
            writes[0]
                .body
                .as_ref()
                .is_some_and(|b| b.pointer("/ticket/comment").is_none())
        );
    })
    .await;
}

#[tokio::test]
async fn shadow_mode_returns_the_full_request_and_writes_nothing() {
    bounded(30, async {
        let s = setup(FakeConfig::default(), |_| {}).await;
        set_flag(&s, "shadow", "on").await;
        let out =
            s.ds.richpanel()
                .update_ticket("T-3", &reply_update(), &ctx("e1"))
                .await
                .expect("shadowed");
        let WriteOutcome::Shadowed { request } = out else {
            panic!("expected shadow, got {out:?}")
        };
        assert_eq!(request.method, "PUT");
        assert_eq!(request.url, format!("{}/v1/tickets/T-3", s.fake.base_url()));
        assert_eq!(request.body, Some(reply_update().body()));
        assert!(s.fake.writes().is_empty());
        assert!(
            !s.ds.shadowed(Downstream::Richpanel),
            "credentials are configured"
        );
        assert!(s.ds.flags().await.shadow);
    })
    .await;
}

#[tokio::test]
async fn a_downstream_without_credentials_is_shadowed() {
    bounded(30, async {
        let s = setup(FakeConfig::default(), |cfg| cfg.richpanel.api_key = None).await;
        let out =
            s.ds.richpanel()
                .add_tags("T-4", &["x".into()], &ctx("e1"))
                .await
                .expect("ok");
        assert!(matches!(out, WriteOutcome::Shadowed { .. }));
        assert!(s.ds.shadowed(Downstream::Richpanel));
        assert!(s.fake.writes().is_empty());
        // A key put in the secrets port later is picked up.
        s.backend
            .secrets
            .store("richpanel_api_key", "from-secrets")
            .await
            .expect("store");
        let out =
            s.ds.richpanel()
                .add_tags("T-4", &["x".into()], &ctx("e2"))
                .await
                .expect("ok");
        assert_eq!(out, WriteOutcome::Sent { status: 200 });
        assert!(!s.ds.shadowed(Downstream::Richpanel));
    })
    .await;
}

#[tokio::test]
async fn breaker_opens_on_500s_stops_calls_and_a_probe_closes_it() {
    bounded(30, async {
        let fake = FakeConfig {
            force_status: Some(500),
            ..FakeConfig::default()
        };
        let s = setup(fake, |cfg| {
            cfg.richpanel.retry.max_retries = 0;
            cfg.richpanel.breaker.min_requests = 5;
            cfg.richpanel.breaker.error_rate = 0.5;
            cfg.richpanel.breaker.open_ms = 500;
        })
        .await;
        let rp = s.ds.richpanel();
        let mut errors = Vec::new();
        for i in 0..12 {
            errors.push(rp.get_ticket(&format!("T-{i}")).await.expect_err("down"));
        }
        assert!(errors[..5].iter().all(|e| matches!(
            e,
            CallError::Http {
                status: 500,
                retryable: true
            }
        )));
        assert!(errors[5..].iter().all(|e| *e
            == CallError::CircuitOpen {
                downstream: Downstream::Richpanel
            }));
        assert_eq!(errors[5].suppression_reason(), Some("breaker_open"));
        assert_eq!(
            s.fake.requests().len(),
            5,
            "calls stopped reaching the fake"
        );
        assert!(
            s.ds.breaker_states()
                .contains(&(Downstream::Richpanel, BreakerState::Open))
        );
        assert!(
            s.ds.breaker_states()
                .contains(&(Downstream::Openai, BreakerState::Closed))
        );

        // Recovery: the next call after open_ms is a probe; success closes it.
        s.fake.set_config(FakeConfig::default());
        tokio::time::sleep(Duration::from_millis(550)).await;
        rp.get_ticket("T-probe").await.expect("probe succeeds");
        assert!(
            s.ds.breaker_states()
                .contains(&(Downstream::Richpanel, BreakerState::Closed))
        );
        rp.get_ticket("T-after").await.expect("closed again");
        assert_eq!(s.fake.requests().len(), 7);
    })
    .await;
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_and_nothing_is_sent_before_retry_after() {
    bounded(60, async {
        // The fake allows 3 per 2 s; the client's own bucket allows 10/s, so
        // it runs into 429s and must obey Retry-After.
        let fake = FakeConfig {
            richpanel_quota: Some(FakeQuota {
                limit: 3,
                window_ms: 2_000,
            }),
            ..FakeConfig::default()
        };
        let s = setup(fake, |cfg| {
            cfg.richpanel.quota.requests = 10;
            cfg.richpanel.quota.burst = 1;
            cfg.richpanel.retry.max_retries = 5;
            cfg.max_wait_ms = 5_000;
        })
        .await;
        let calls = (0..8).map(|i| {
            let rp = s.ds.richpanel();
            tokio::spawn(async move { rp.get_ticket(&format!("T-{i}")).await })
        });
        for c in futures::future::join_all(calls).await {
            c.expect("join").expect("every call eventually succeeds");
        }
        let log = s.fake.requests();
        let limited: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
        assert!(!limited.is_empty(), "the scenario produced 429s");
        assert!(limited.len() <= 3, "no 429 storm: {} 429s", limited.len());
        for r429 in &limited {
            let ra_ms = r429.retry_after_secs.expect("429 carries Retry-After") as f64 * 1000.0;
            // Requests already in flight when the 429 was sent may land just after it.
            let early: Vec<_> = log
                .iter()
                .filter(|r| r.at_ms > r429.at_ms + 20.0 && r.at_ms < r429.at_ms + ra_ms)
                .collect();
            assert!(
                early.is_empty(),
                "sent before Retry-After: 429 at {} ms, then {:?}",
                r429.at_ms,
                early
            );
        }
        assert_eq!(log.iter().filter(|r| r.status == 200).count(), 8);
    })
    .await;
}

#[tokio::test]
async fn a_flip_stops_a_write_already_waiting_for_a_token() {
    bounded(30, async {
        let s = setup(FakeConfig::default(), |cfg| {
            cfg.richpanel.quota.requests = 1;
            cfg.richpanel.quota.period_ms = 1_500;
            cfg.richpanel.quota.burst = 1;
            cfg.max_wait_ms = 5_000;
        })
        .await;
        let rp = s.ds.richpanel();
        let tags = ["x".to_string()];
        rp.add_tags("T-5", &tags, &ctx("e1"))
            .await
            .expect("first write uses the only token");
        let waiting = {
            let rp = rp.clone();
            tokio::spawn(async move { rp.add_tags("T-5", &["y".to_string()], &ctx("e2")).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await; // it is now waiting in the bucket
        set_flag(&s, "kill-switch", "all_writes").await;
        let err = waiting
            .await
            .expect("join")
            .expect_err("stopped at the inner gate");
        assert_eq!(
            err,
            CallError::KillSwitch {
                scope: "all_writes"
            }
        );
        assert_eq!(s.fake.writes().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_fake_is_controllable_over_http() {
    bounded(30, async {
        let s = setup(FakeConfig::default(), |cfg| {
            cfg.richpanel.retry.max_retries = 0
        })
        .await;
        let http = reqwest::Client::new();
        let base = s.fake.base_url();
        let cfg = serde_json::json!({"force_status": 503});
        let r = http
            .post(format!("{base}/_fake/config"))
            .json(&cfg)
            .send()
            .await
            .expect("config");
        assert!(r.status().is_success());
        let err =
            s.ds.richpanel()
                .get_ticket("T-6")
                .await
                .expect_err("forced 503");
        assert_eq!(
            err,
            CallError::Http {
                status: 503,
                retryable: true
            }
        );
        let log: Vec<downstream::fake::LoggedRequest> = http
            .get(format!("{base}/_fake/requests"))
            .send()
            .await
            .expect("log")
            .json()
            .await
            .expect("json");
        assert_eq!(log.len(), 1);
        assert_eq!(
            (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
            ("GET", "/v1/tickets/T-6", 503)
        );
        http.post(format!("{base}/_fake/reset"))
            .send()
            .await
            .expect("reset");
        assert!(s.fake.requests().is_empty());
        // Outage windows are relative to start/reset.
        let cfg = serde_json::json!({"outages": [{"from_ms": 0, "to_ms": 60000}]});
        http.post(format!("{base}/_fake/config"))
            .json(&cfg)
            .send()
            .await
            .expect("config");
        let err =
            s.ds.shopify()
                .order_by_number("1001")
                .await
                .expect_err("outage");
        assert_eq!(
            err,
            CallError::Http {
                status: 503,
                retryable: true
            }
        );
    })
    .await;
}
