//! Open-loop load at a fixed rate (wrk cannot hold a rate): each request is
//! a distinct Richpanel event, scheduled every 1/rate s; latency is measured
//! from the *scheduled* time, so a stalled server cannot hide queueing
//! (no coordinated omission).
//!
//! ```text
//! cargo run --release -p ingress --example open_loop -- http://127.0.0.1:8088 <token> 5000 20
//! ```
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args
        .first()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8088".into());
    let token = args.get(1).cloned().unwrap_or_default();
    let rate: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(5000);
    let secs: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(20);
    let url = format!("{base}/webhooks/richpanel");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let start = Instant::now();
    let total = rate * secs;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        tokio::time::sleep_until(due.into()).await;
        let body = format!(
            r#"{{"ticket_id":"L{run}-{}","ticket_url":"https://app.richpanel.com/x","trigger":"bench","message_id":"m{i}","message":"open loop {i}","channel":"email"}}"#,
            i % 5000
        );
        let req = client
            .post(&url)
            .header("content-type", "application/json")
            .header("X-Switchyard-Token", &token)
            .body(body);
        let (hist, ok, bad) = (hist.clone(), ok.clone(), bad.clone());
        tasks.push(tokio::spawn(async move {
            let good = matches!(req.send().await, Ok(r) if r.status().is_success());
            let us = due.elapsed().as_micros() as u64;
            if good { &ok } else { &bad }.fetch_add(1, Ordering::Relaxed);
            let _ = hist.lock().await.record(us.max(1));
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let h = hist.lock().await;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "target {rate}/s for {secs}s: {} ok, {} failed, achieved {:.0}/s; latency p50={:.2}ms p90={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    Ok(())
}
