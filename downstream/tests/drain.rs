//! Backlog drain under Richpanel's quota, scaled down (50 per 5 s): N queued
//! writes drain at ≥ 95% of the theoretical rate with no 429 storm.
mod common;

use std::time::Duration;

use common::{bounded, ctx, setup};
use downstream::fake::{FakeConfig, FakeQuota};
use downstream::{CallError, TicketUpdate};

const LIMIT: u32 = 50;
const WINDOW_MS: u64 = 5_000;
const N: usize = 60;

#[tokio::test]
async fn backlog_drains_at_the_quota_rate_without_429s() {
    bounded(60, async {
        let fake = FakeConfig { richpanel_quota: Some(FakeQuota { limit: LIMIT, window_ms: WINDOW_MS }), ..FakeConfig::default() };
        let s = setup(fake, |cfg| {
            // Production shape (config default), scaled: 48 per window, burst 2.
            let default = downstream::DownstreamConfig::default().richpanel.quota;
            cfg.richpanel.quota.requests = default.requests;
            cfg.richpanel.quota.burst = default.burst;
            cfg.richpanel.quota.period_ms = WINDOW_MS;
            cfg.max_wait_ms = 60_000;
        })
        .await;
        let rp = s.ds.richpanel();
        // 8 workers pull from one queue of N messages.
        let queue = std::sync::Arc::new(std::sync::Mutex::new((0..N).collect::<Vec<_>>()));
        let workers = (0..8).map(|_| {
            let (rp, queue) = (rp.clone(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let Some(i) = queue.lock().expect("lock").pop() else { return Ok::<_, CallError>(()) };
                    let update = TicketUpdate { tags: Some(vec![format!("drained-{i}")]), ..TicketUpdate::default() };
                    rp.update_ticket(&format!("T-{i}"), &update, &ctx(&format!("e{i}"))).await?;
                }
            })
        });
        for w in futures::future::join_all(workers).await {
            w.expect("join").expect("every write succeeds");
        }
        let log = s.fake.requests();
        let ok: Vec<_> = log.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), N);
        let too_many = log.iter().filter(|r| r.status == 429).count();
        assert_eq!(too_many, 0, "no 429s");
        let span_s = (ok[N - 1].at_ms - ok[0].at_ms) / 1000.0;
        let rate = (N - 1) as f64 / span_s;
        let theoretical = LIMIT as f64 / (WINDOW_MS as f64 / 1000.0);
        let share = rate / theoretical;
        println!("drain: {N} writes in {span_s:.2} s = {rate:.2}/s, {:.1}% of the quota's {theoretical:.1}/s", share * 100.0);
        assert!(share >= 0.95, "drained at {:.1}% of the quota rate", share * 100.0);
        tokio::time::sleep(Duration::from_millis(1)).await;
    })
    .await;
}
