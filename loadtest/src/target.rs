//! The system under test: a `switchyard serve` we spawn (temp data dir,
//! in-process fake downstreams) or one already running; and the fake
//! downstreams, in process or remote over their control API.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use downstream::fake::{FakeConfig, FakeHandle, FakeServer, LoggedRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A spawned `switchyard serve`.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub base: String,
    pub data_dir: PathBuf,
    /// Keeps a temporary data dir alive for the run.
    _temp: Option<tempfile::TempDir>,
}

/// Find the `switchyard` binary: `--serve-bin`, else next to this
/// executable (same target dir), else on `PATH`.
pub fn serve_bin(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("switchyard");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("switchyard")
}

/// `--serve-env KEY=VALUE` → (KEY, VALUE).
pub fn serve_env_pair(pair: &str) -> anyhow::Result<(String, String)> {
    let (key, value) = pair
        .split_once('=')
        .with_context(|| format!("--serve-env {pair:?}: expected KEY=VALUE"))?;
    Ok((key.to_owned(), value.to_owned()))
}

/// Start `serve` on a free port with the fake at `fake_url` as every
/// downstream. `env` is applied last (scenario `serve_env`, faults).
pub async fn spawn_serve(
    bin: &Path,
    data_dir: Option<PathBuf>,
    token: &str,
    fake_url: &str,
    env: &[(String, String)],
    extra_args: &[String],
) -> anyhow::Result<Spawned> {
    let (data_dir, temp) = match data_dir {
        Some(dir) => (dir, None),
        None => {
            let temp = marked_temp_dir()?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(extra_args)
        .env("SWITCHYARD_WEBHOOK_TOKEN", token)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    point_downstreams_at_the_fake(&mut cmd, fake_url);
    cmd.env("SWITCHYARD_FLAG_CACHE_TTL_MS", "100");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "starting {} serve (build it: cargo build -p ops)",
            bin.display()
        )
    })?;
    let pid = child.id().context("serve exited at once")?;
    let base = listening_address(&mut child).await?;
    Ok(Spawned {
        child,
        pid,
        base,
        data_dir,
        _temp: temp,
    })
}

/// A temporary data dir marked as the harness's own: the only kind where
/// serve accepts the message-dropping fault of the checker's self-test.
fn marked_temp_dir() -> anyhow::Result<tempfile::TempDir> {
    let temp = tempfile::Builder::new()
        .prefix("loadtest-")
        .tempdir()
        .context("temp data dir")?;
    std::fs::write(temp.path().join(ports::TEST_TARGET_MARKER), b"loadtest\n")
        .context("marking the temp data dir as a test target")?;
    Ok(temp)
}

/// Every downstream's base URL at the fake, with a key and a quota the
/// harness does not hit.
fn point_downstreams_at_the_fake(cmd: &mut Command, fake_url: &str) {
    for downstream in ["RICHPANEL", "OPENAI", "SHOPIFY"] {
        // The OpenAI base is the API root `/chat/completions` is appended
        // to (`https://api.openai.com/v1`); the fake serves it under /v1.
        let base = if downstream == "OPENAI" {
            format!("{fake_url}/v1")
        } else {
            fake_url.to_owned()
        };
        let var = |name: &str| format!("SWITCHYARD_{downstream}_{name}");
        cmd.env(var("BASE_URL"), base)
            .env(var("API_KEY"), "loadtest-key")
            // The harness measures switchyard, not a 50/30 s quota; a
            // scenario that wants the real quota sets it in serve_env.
            .env(var("QUOTA_REQUESTS"), "1000000")
            .env(var("QUOTA_PERIOD_MS"), "1000")
            .env(var("QUOTA_BURST"), "1000000");
    }
}

/// The URL serve's banner says it listens on (within 30 s); then keeps
/// draining its stdout so serve never blocks on a full pipe.
async fn listening_address(child: &mut Child) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("serve stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some((_, url)) = line.split_once("listening on ") {
                return Ok::<_, std::io::Error>(Some(url.trim().to_owned()));
            }
        }
        Ok(None)
    })
    .await
    .context("serve did not print its address within 30 s")??;
    let Some(base) = base else {
        let status = child.wait().await?;
        bail!("serve exited ({status}) before listening");
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(base)
}

impl Spawned {
    /// Stop this serve (gracefully) and start another on the same data dir
    /// with `extra_args`; a temporary data dir lives on in the new one.
    pub async fn restart(
        mut self,
        bin: &Path,
        token: &str,
        fake_url: &str,
        env: &[(String, String)],
        extra_args: &[String],
    ) -> anyhow::Result<Spawned> {
        let temp = self._temp.take();
        let data_dir = self.data_dir.clone();
        self.stop(Duration::from_secs(30)).await;
        let mut next = spawn_serve(bin, Some(data_dir), token, fake_url, env, extra_args).await?;
        next._temp = temp;
        Ok(next)
    }

    /// SIGTERM (graceful drain), then kill after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The fake downstreams under the harness's control.
#[derive(Debug)]
pub enum Fake {
    InProcess(FakeHandle),
    Remote {
        base: String,
        client: reqwest::Client,
    },
    Absent,
}

/// The harness's default fake: no latency, no errors, no quota.
pub fn quiet() -> FakeConfig {
    FakeConfig {
        richpanel_quota: None,
        ..FakeConfig::default()
    }
}

impl Fake {
    pub async fn start_in_process() -> anyhow::Result<Fake> {
        Ok(Fake::InProcess(
            FakeServer::start(quiet())
                .await
                .context("starting the fake downstreams")?,
        ))
    }

    pub fn base_url(&self) -> Option<String> {
        match self {
            Fake::InProcess(h) => Some(h.base_url()),
            Fake::Remote { base, .. } => Some(base.clone()),
            Fake::Absent => None,
        }
    }

    pub async fn set(&self, cfg: FakeConfig) -> anyhow::Result<()> {
        match self {
            Fake::InProcess(h) => h.set_config(cfg),
            Fake::Remote { base, client } => {
                client
                    .post(format!("{base}/_fake/config"))
                    .json(&cfg)
                    .send()
                    .await?
                    .error_for_status()?;
            }
            Fake::Absent => {
                bail!("a fault needs the fake downstreams (--fake URL or --spawn-serve)")
            }
        }
        Ok(())
    }

    /// The fake's clock now (the time base of `at_ms`). Remote: a marker
    /// request is sent and read back from the log.
    pub async fn now_ms(&self) -> anyhow::Result<f64> {
        match self {
            Fake::InProcess(h) => Ok(h.elapsed_ms()),
            Fake::Remote { base, client } => {
                let marker = format!("loadtest_marker={}", rand::random::<u64>());
                client
                    .get(format!("{base}/admin/api/loadtest/orders.json?{marker}"))
                    .send()
                    .await?;
                let log = self.requests().await?;
                log.iter()
                    .rev()
                    .find(|r| r.path.contains(&marker))
                    .map(|r| r.at_ms)
                    .context("marker request not in the fake's log")
            }
            Fake::Absent => bail!("no fake downstreams"),
        }
    }

    pub async fn requests(&self) -> anyhow::Result<Vec<LoggedRequest>> {
        match self {
            Fake::InProcess(h) => Ok(h.requests()),
            Fake::Remote { base, client } => Ok(client
                .get(format!("{base}/_fake/requests"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?),
            Fake::Absent => Ok(Vec::new()),
        }
    }
}
