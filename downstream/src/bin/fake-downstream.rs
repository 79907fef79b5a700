//! `fake-downstream`: the fake Richpanel / OpenAI-compatible / Shopify
//! server as a process, for `serve` demos and the load harness. Control it
//! at run time with `POST /_fake/config`, read its log with
//! `GET /_fake/requests`.
use clap::Parser;
use downstream::fake::{FakeConfig, FakeQuota, FakeServer};

#[derive(Debug, Parser)]
#[command(about = "Fake Richpanel, OpenAI-compatible and Shopify APIs on one port")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: String,
    /// Latency added to every answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share (0–1) of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Richpanel quota: requests per window.
    #[arg(long, default_value_t = 50)]
    quota_limit: u32,
    /// Richpanel quota window.
    #[arg(long, default_value_t = 30_000)]
    quota_window_ms: u64,
    /// No Richpanel quota at all.
    #[arg(long)]
    no_quota: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.error_rate),
        "--error-rate must be between 0 and 1"
    );
    let cfg = FakeConfig {
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        richpanel_quota: (!args.no_quota).then_some(FakeQuota {
            limit: args.quota_limit,
            window_ms: args.quota_window_ms,
        }),
        ..FakeConfig::default()
    };
    let handle = FakeServer::start_on(&args.listen, cfg).await?;
    println!("fake-downstream listening on {}", handle.base_url());
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
