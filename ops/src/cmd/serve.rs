//! `switchyard serve`: ingress + worker in one process. With no
//! configuration: embedded backend in ./data, shadow mode (no downstream
//! credentials), a generated webhook token printed once.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use downstream::{Downstream, DownstreamConfig, Downstreams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use worker::rules::Rules;

use crate::backend_args::BackendArgs;

/// Print to stdout, ignoring a closed pipe: a detached `serve` must not
/// die because nobody reads its banner.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  switchyard serve
  switchyard serve --listen 0.0.0.0:8080 --data-dir /var/lib/switchyard
  SWITCHYARD_RICHPANEL_API_KEY=... switchyard serve --rules rules.toml")]
pub struct Args {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Address the webhook endpoint listens on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Decision rules (TOML); default: the built-in rules/default.toml.
    #[arg(long, env = "SWITCHYARD_RULES")]
    pub rules: Option<PathBuf>,
    /// Conversations processed at once.
    #[arg(long, env = "SWITCHYARD_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,
    /// Log format: json (default) or text.
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
    /// Run only the ingress (no worker), e.g. when workers run elsewhere.
    #[arg(long)]
    pub ingress_only: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = crate::telemetry::init(&args.log_format);
    let rules = match &args.rules {
        Some(path) => Rules::load(path)?,
        None => Rules::default_rules()?,
    };
    let backend = args.backend.open().await?;
    let downstream_cfg = DownstreamConfig::from_env().context("downstream configuration")?;
    let downstreams = Downstreams::new(
        downstream_cfg,
        backend.flags.clone(),
        backend.secrets.clone(),
    );
    let ingress_cfg = ingress::IngressConfig::from_env().context("ingress configuration")?;

    let new_token = ingress::ensure_token(&backend)
        .await
        .context("webhook token")?;
    let ingress = ingress::Ingress::new(backend.clone(), ingress_cfg.clone())
        .await
        .context("starting the ingress")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;

    say!(
        "switchyard {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    say!("  backend: {}", backend.description);
    say!(
        "  webhooks: POST /webhooks/richpanel | /webhooks/email | /webhooks/ses   (header {})",
        ingress_cfg.token_header
    );
    match &new_token {
        Some(token) => say!(
            "  webhook token (generated now, shown once, stored in the secrets store): {token}"
        ),
        None => say!("  webhook token: configured (secrets store or SWITCHYARD_WEBHOOK_TOKEN)"),
    }
    let shadowed: Vec<&str> = Downstream::ALL
        .iter()
        .filter(|d| downstreams.shadowed(**d))
        .map(|d| d.as_str())
        .collect();
    if !shadowed.is_empty() {
        say!(
            "  SHADOW MODE for {}: no credentials configured — decisions are recorded, nothing is sent",
            shadowed.join(", ")
        );
    }
    info!(%addr, backend = %backend.description, shadowed = ?shadowed, "serving");

    let shutdown = CancellationToken::new();
    let worker_task = if args.ingress_only {
        None
    } else {
        let mut config = worker::WorkerConfig::default();
        config.concurrency = args.concurrency;
        let w = worker::Worker::new(backend.clone(), downstreams, rules, config);
        // Test-only fault (the load harness's self-check): acknowledge every
        // Nth message without processing it. Never set in production.
        if let Some(n) = std::env::var("SWITCHYARD_FAULT_DROP_EVERY")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            warn!(
                every = n,
                "FAULT INJECTION: dropping every Nth message (SWITCHYARD_FAULT_DROP_EVERY)"
            );
            w.faults
                .drop_every
                .store(n, std::sync::atomic::Ordering::Relaxed);
        }
        Some(tokio::spawn(worker::run(w, shutdown.clone())))
    };

    let http_shutdown = shutdown.clone();
    let server = axum::serve(listener, ingress.router())
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await });
    let signal_shutdown = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: draining");
        signal_shutdown.cancel();
    });
    server.await.context("HTTP server")?;
    shutdown.cancel();
    if let Some(task) = worker_task {
        match tokio::time::timeout(Duration::from_secs(60), task).await {
            Ok(_) => {}
            Err(_) => {
                warn!("worker did not finish within 60 s; unfinished messages will be redelivered")
            }
        }
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
