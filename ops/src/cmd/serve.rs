//! `switchyard serve`: ingress + worker in one process. With no
//! configuration: embedded backend in ./data, shadow mode (no downstream
//! credentials), a generated webhook token printed once.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use conversation::Rules;
use downstream::{Downstream, DownstreamConfig, Downstreams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

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
  switchyard serve --listen 0.0.0.0:8080 --admin-listen 127.0.0.1:9090 --data-dir /var/lib/switchyard
  SWITCHYARD_RICHPANEL_API_KEY=... switchyard serve --rules rules.toml")]
pub struct Args {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Address the webhook endpoint listens on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the operator's listener: `/metrics`, `/readyz`, `/healthz`.
    /// Default: the webhook listener itself when that is a loopback address,
    /// else 127.0.0.1:8081 — a public webhook listener never serves them
    /// unless this names it.
    #[arg(long, env = "SWITCHYARD_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
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
        .context("webhook token")?
        .is_some();
    let ingress = ingress::Ingress::new(backend.clone(), ingress_cfg.clone())
        .await
        .context("starting the ingress")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let admin = match admin_address(args.listen, args.admin_listen) {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the admin listener {a}"))?;
            Some(l)
        }
        None => None,
    };
    let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;

    // Signals are handled from before the banner: whoever reads it may stop
    // serve at once.
    let shutdown = CancellationToken::new();
    let signal_shutdown = shutdown.clone();
    let signals = Signals::register()?;
    tokio::spawn(async move {
        signals.wait().await;
        info!("shutdown requested: draining");
        signal_shutdown.cancel();
    });
    say!(
        "switchyard {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    say!("  backend: {}", backend.description);
    say!(
        "  admin (/metrics, /readyz): http://{}",
        admin_addr.unwrap_or(addr)
    );
    say!(
        "  webhooks: POST /webhooks/richpanel | /webhooks/email | /webhooks/ses   (header {})",
        ingress_cfg.token_header
    );
    // The token itself is never printed: stdout is often captured as logs.
    let token_at = backend.secrets.location(ingress::SECRET_TOKEN);
    if new_token {
        say!("  webhook token: generated now, stored in {token_at}");
    } else {
        say!("  webhook token: configured (SWITCHYARD_WEBHOOK_TOKEN or {token_at})");
    }
    say!("  SES route: {}", ses_route(&ingress_cfg.sns));
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

    let worker_task = if args.ingress_only {
        None
    } else {
        let config = worker::WorkerConfig {
            concurrency: args.concurrency,
            ..worker::WorkerConfig::default()
        };
        let w = worker::Worker::new(backend.clone(), downstreams, rules, config);
        if let Some(n) = drop_fault(&args.backend)? {
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
    let (router, admin_task) = match admin {
        Some(l) => {
            let admin_shutdown = shutdown.clone();
            let server = axum::serve(l, ingress.admin_router())
                .with_graceful_shutdown(async move { admin_shutdown.cancelled().await });
            (
                ingress.webhook_router(),
                Some(tokio::spawn(server.into_future())),
            )
        }
        None => (ingress.router(), None),
    };
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await });
    server.await.context("HTTP server")?;
    shutdown.cancel();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
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

/// Where `/metrics` and `/readyz` listen: `None` = on the webhook
/// listener (only when that is loopback and no admin address is given).
fn admin_address(listen: SocketAddr, admin: Option<SocketAddr>) -> Option<SocketAddr> {
    match admin {
        Some(a) if a == listen && a.port() != 0 => None,
        Some(a) => Some(a),
        None if listen.ip().is_loopback() => None,
        None => Some(SocketAddr::from(([127, 0, 0, 1], 8081))),
    }
}

/// The SES route's state, for the banner.
fn ses_route(sns: &ingress::SnsConfig) -> String {
    match &sns.topic_arns {
        None => "disabled (no SNS topic allowlist: set SWITCHYARD_SNS_TOPIC_ARNS)".to_owned(),
        Some(_) if sns.any_topic() => {
            "WARNING: accepts ANY SNS topic (SWITCHYARD_SNS_TOPIC_ARNS=*)".to_owned()
        }
        Some(topics) => format!("topics {}", topics.join(", ")),
    }
}

/// `SWITCHYARD_FAULT_DROP_EVERY=N` makes the worker acknowledge every Nth
/// message unprocessed: the load harness's proof that its checker catches
/// loss. It is refused unless the embedded data dir carries the test-target
/// marker the harness writes into its own temporary data dirs, so a
/// production deployment cannot be switched into losing messages.
fn drop_fault(backend: &BackendArgs) -> anyhow::Result<Option<u64>> {
    let Ok(v) = std::env::var("SWITCHYARD_FAULT_DROP_EVERY") else {
        return Ok(None);
    };
    let n: u64 = v
        .trim()
        .parse()
        .with_context(|| format!("SWITCHYARD_FAULT_DROP_EVERY={v:?} is not a number"))?;
    let marker = backend.data_dir.join(worker::TEST_TARGET_MARKER);
    if backend.backend != "embedded" || !marker.is_file() {
        anyhow::bail!(
            "SWITCHYARD_FAULT_DROP_EVERY is fault injection (it drops acknowledged messages): \
             refused unless the embedded data dir is marked as a test target ({})",
            marker.display()
        );
    }
    Ok((n > 0).then_some(n))
}

/// SIGINT and SIGTERM, registered when made (so a signal that arrives
/// before anyone waits is not lost).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
