//! The system under test: serve (spawned or given), the fake downstreams,
//! the backend serve uses, and the HTTP clients that reach them.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ports::{AwsSettings, Backend, BackendConfig, EmbeddedSettings};
use tokio::time::Instant;

use super::Plan;
use crate::RunArgs;
use crate::scenario::Scenario;
use crate::target::{self, Fake, Spawned};

/// serve (spawned or given), the fake downstreams, and how the harness
/// reaches them.
pub(super) struct SystemUnderTest {
    pub(super) fake: Arc<Fake>,
    pub(super) fake_url: String,
    pub(super) token: String,
    pub(super) signer: Option<Arc<crate::sns::Signer>>,
    /// Environment of a spawned serve (signer, scenario, `--serve-env`).
    pub(super) serve_env: Vec<(String, String)>,
    pub(super) serve_bin: PathBuf,
    pub(super) spawned: Option<Spawned>,
    /// The webhook base URL traffic is sent to.
    pub(super) base: String,
    /// The store serve uses, for the checker and queue sampling.
    pub(super) backend: Option<Backend>,
    pub(super) client: reqwest::Client,
    /// For requests that must not reuse a connection.
    pub(super) unpooled: reqwest::Client,
    /// serve's process, for CPU and memory.
    pub(super) pid: Option<u32>,
    /// Requests a remote fake logged before this run (not ours).
    pub(super) fake_requests_before: usize,
}

impl SystemUnderTest {
    pub(super) async fn start(args: &RunArgs, plan: &Plan) -> anyhow::Result<SystemUnderTest> {
        let fake = Arc::new(fake_downstreams(args).await?);
        let token = webhook_token(args, &plan.run_id)?;
        let signer = sns_signer(args, &plan.scenario).await?;
        let serve_env = serve_env(args, &plan.scenario, signer.as_deref())?;
        let serve_bin = target::serve_bin(args.serve_bin.as_deref());
        let fake_url = fake.base_url().unwrap_or_default();
        let spawned = if args.spawn_serve {
            let mut serve_args = args.serve_args.clone();
            if args.backlog {
                serve_args.push("--ingress-only".to_owned());
            }
            let data_dir = args.data_dir.clone();
            let serve = target::spawn_serve(
                &serve_bin,
                data_dir,
                &token,
                &fake_url,
                &serve_env,
                &serve_args,
            );
            Some(serve.await?)
        } else {
            None
        };
        let base = match (&spawned, &args.target) {
            (Some(serve), _) => serve.base.clone(),
            (None, Some(url)) => url.trim_end_matches('/').to_owned(),
            (None, None) => bail!("give --target URL or --spawn-serve"),
        };
        let backend = open_backend(args, spawned.as_ref()).await?;
        let (client, unpooled) = http_clients(args.max_in_flight)?;
        wait_ready(&client, &base).await?;
        let pid = spawned.as_ref().map(|s| s.pid).or(args.serve_pid);
        // A remote fake may have served earlier runs: count only this run's
        // requests (its log is append-only until reset).
        let fake_requests_before = match &*fake {
            Fake::Remote { .. } => fake
                .requests()
                .await
                .context("reading the fake downstreams' request log")?
                .len(),
            _ => 0,
        };
        Ok(SystemUnderTest {
            fake,
            fake_url,
            token,
            signer,
            serve_env,
            serve_bin,
            spawned,
            base,
            backend,
            client,
            unpooled,
            pid,
            fake_requests_before,
        })
    }

    /// Backlog mode: the worker starts only now, on everything acked.
    /// Returns whether serve was restarted (it is, when spawned).
    pub(super) async fn start_backlog_worker(&mut self, args: &RunArgs) -> anyhow::Result<bool> {
        let Some(held) = self.spawned.take() else {
            return Ok(false);
        };
        let worker = held
            .restart(
                &self.serve_bin,
                &self.token,
                &self.fake_url,
                &self.serve_env,
                &args.serve_args,
            )
            .await?;
        self.pid = Some(worker.pid);
        self.spawned = Some(worker);
        Ok(true)
    }

    /// The base URL of the serve running now (`--backlog` restarted it).
    pub(super) fn current_base(&self) -> &str {
        self.spawned
            .as_ref()
            .map_or(self.base.as_str(), |s| s.base.as_str())
    }
}

/// The fake downstreams: remote (`--fake`), in process (`--spawn-serve`),
/// or none.
async fn fake_downstreams(args: &RunArgs) -> anyhow::Result<Fake> {
    Ok(match (&args.fake, args.spawn_serve) {
        (Some(url), _) => Fake::Remote {
            base: url.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
        },
        (None, true) => Fake::start_in_process().await?,
        (None, false) => Fake::Absent,
    })
}

fn webhook_token(args: &RunArgs, run_id: &str) -> anyhow::Result<String> {
    Ok(match (&args.token, args.spawn_serve) {
        (Some(token), _) => token.clone(),
        (None, true) => format!("lt-{run_id}-{:016x}", rand::random::<u64>()),
        (None, false) => bail!("--token (or SWITCHYARD_WEBHOOK_TOKEN) is required with --target"),
    })
}

/// SES traffic: the harness is its own SNS; serve must trust its host.
async fn sns_signer(
    args: &RunArgs,
    scenario: &Scenario,
) -> anyhow::Result<Option<Arc<crate::sns::Signer>>> {
    if scenario.mix.ses <= 0.0 {
        return Ok(None);
    }
    let signer = crate::sns::Signer::start(&args.sns_cert_listen).await?;
    if !args.spawn_serve {
        let vars: Vec<String> = signer
            .serve_env()
            .iter()
            .map(|(k, v)| format!("{k}='{v}'"))
            .collect();
        eprintln!(
            "loadtest: mix.ses > 0: SES notifications are signed with the harness's certificate at {}; run serve with {} or they are refused (401)",
            signer.cert_url(),
            vars.join(" ")
        );
    }
    Ok(Some(Arc::new(signer)))
}

/// A spawned serve's environment: the signer's, the scenario's, then
/// `--serve-env KEY=VALUE`.
fn serve_env(
    args: &RunArgs,
    scenario: &Scenario,
    signer: Option<&crate::sns::Signer>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = signer.map(|s| s.serve_env()).unwrap_or_default();
    env.extend(
        scenario
            .serve_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for pair in &args.serve_env {
        env.push(target::serve_env_pair(pair)?);
    }
    Ok(env)
}

/// The store serve uses: `--aws-prefix`, else the (spawned serve's or
/// given) data dir; none turns the checker off.
async fn open_backend(
    args: &RunArgs,
    spawned: Option<&Spawned>,
) -> anyhow::Result<Option<Backend>> {
    let data_dir = spawned
        .map(|s| s.data_dir.clone())
        .or(args.data_dir.clone());
    let config = match (&args.aws_prefix, data_dir) {
        (Some(prefix), _) => BackendConfig::Aws(AwsSettings::new(prefix.clone())),
        (None, Some(dir)) => BackendConfig::Embedded(EmbeddedSettings::new(dir)),
        (None, None) => {
            eprintln!(
                "loadtest: no --data-dir / --aws-prefix: the invariant checker and queue sampling are off"
            );
            return Ok(None);
        }
    };
    let backend = Backend::open(&config)
        .await
        .context("opening the backend serve uses")?;
    Ok(Some(backend))
}

/// A pooled client for the traffic and an unpooled one.
fn http_clients(max_in_flight: usize) -> anyhow::Result<(reqwest::Client, reqwest::Client)> {
    let pooled = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_in_flight)
        .timeout(Duration::from_secs(30))
        .build()?;
    let unpooled = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok((pooled, unpooled))
}

/// `/readyz` answers 200 within 30 s.
async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Ok(r) => bail!("{base}/readyz answered {}", r.status()),
            Err(e) => bail!("{base} unreachable: {e}"),
        }
    }
}
