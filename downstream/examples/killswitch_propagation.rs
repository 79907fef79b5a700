//! Kill-switch propagation under load: concurrent writers hammer the fake
//! Richpanel through the full safety stack; the kill switch is flipped to
//! `all_writes` in the real embedded flag store; we measure the time from
//! the flip to the last write the fake received. Several rounds.
//!
//! ```text
//! cargo run -p downstream --example killswitch_propagation -- [writers] [rounds]
//! ```
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use downstream::config::ApiKey;
use downstream::fake::{FakeConfig, FakeServer};
use downstream::{CallContext, CallError, Clients, DownstreamConfig, TicketUpdate};
use ports::{Backend, BackendConfig, EmbeddedSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let writers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(32);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);

    // Some latency so writes are in flight at the moment of the flip; no quota
    // (this measures the kill switch, not the bucket).
    let fake = FakeServer::start(FakeConfig {
        latency_ms: 20,
        richpanel_quota: None,
        ..FakeConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let backend =
        Backend::open(&BackendConfig::Embedded(EmbeddedSettings::new(dir.path()))).await?;
    let mut cfg = DownstreamConfig::default().pointed_at(&fake.base_url());
    cfg.richpanel.api_key = Some(ApiKey("demo".into()));
    cfg.richpanel.quota.requests = 100_000;
    cfg.richpanel.quota.period_ms = 1_000;
    cfg.richpanel.quota.burst = 1_000;
    println!(
        "writers={writers} rounds={rounds} flag_cache_ttl_ms={} fake latency=20ms",
        cfg.flag_cache_ttl_ms
    );
    let ds = Clients::new(cfg, backend.flags.clone(), backend.secrets.clone());

    let mut results = Vec::new();
    for round in 1..=rounds {
        backend
            .flags
            .set("kill-switch", "off", "bench", "reset")
            .await?;
        tokio::time::sleep(Duration::from_millis(400)).await; // let every cache see "off"
        fake.reset();
        let stop = Arc::new(AtomicBool::new(false));
        let suppressed = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (rp, stop, suppressed) = (ds.richpanel(), stop.clone(), suppressed.clone());
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let ctx = CallContext {
                            idempotency_key: format!("w{w}-{i}"),
                            ..CallContext::default()
                        };
                        let update = TicketUpdate {
                            tags: Some(vec![format!("t{i}")]),
                            ..TicketUpdate::default()
                        };
                        match rp.update_ticket(&format!("T-{w}"), &update, &ctx).await {
                            Ok(_) => {}
                            Err(CallError::KillSwitch { .. }) => {
                                suppressed.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err(e) => eprintln!("writer {w}: {e}"),
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1_000)).await; // steady load
        let flip_at = fake.elapsed_ms();
        backend
            .flags
            .set("kill-switch", "all_writes", "bench", "propagation test")
            .await?;
        let set_done = fake.elapsed_ms();
        tokio::time::sleep(Duration::from_millis(2_000)).await; // keep pushing after the flip
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await?;
        }
        let writes = fake.writes();
        let before = writes.iter().filter(|r| r.at_ms < flip_at).count();
        let after = writes.iter().filter(|r| r.at_ms >= flip_at).count();
        let last = writes.iter().map(|r| r.at_ms).fold(f64::MIN, f64::max);
        let propagation = (last - flip_at).max(0.0);
        println!(
            "round {round}: {before} writes before the flip ({:.0}/s), {after} after it; flag write took {:.1} ms; \
             last write {propagation:.1} ms after the flip; {} calls suppressed",
            before as f64 / 1.0,
            set_done - flip_at,
            suppressed.load(Ordering::Relaxed)
        );
        results.push(propagation);
    }
    results.sort_by(f64::total_cmp);
    println!(
        "propagation over {rounds} rounds: min {:.1} ms, median {:.1} ms, max {:.1} ms (target ≤ 500 ms)",
        results[0],
        results[results.len() / 2],
        results[results.len() - 1]
    );
    backend
        .flags
        .set("kill-switch", "off", "bench", "done")
        .await?;
    Ok(())
}
