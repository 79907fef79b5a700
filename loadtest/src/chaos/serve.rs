//! The `switchyard serve` under test: one process at a time on one port,
//! its state (a data dir, or an AWS name prefix) kept across SIGKILLs.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use ports::{AwsSettings, BackendConfig, EmbeddedSettings};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Where serve keeps its state.
#[derive(Debug, Clone)]
pub enum Store {
    Embedded(PathBuf),
    Aws(String),
}

impl Store {
    pub fn name(&self) -> &'static str {
        match self {
            Store::Embedded(_) => "embedded",
            Store::Aws(_) => "aws",
        }
    }

    /// The same backend serve uses, for the harness's own reads.
    pub fn backend_config(&self) -> BackendConfig {
        match self {
            Store::Embedded(dir) => BackendConfig::Embedded(EmbeddedSettings::new(dir.clone())),
            Store::Aws(prefix) => BackendConfig::Aws(AwsSettings::new(prefix.clone())),
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Store::Embedded(dir) => vec![
                "--backend".into(),
                "embedded".into(),
                "--data-dir".into(),
                dir.display().to_string(),
            ],
            Store::Aws(prefix) => vec![
                "--backend".into(),
                "aws".into(),
                "--aws-prefix".into(),
                prefix.clone(),
            ],
        }
    }
}

/// How to start serve: the same every time, so a restart resumes the
/// killed one's work.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub bin: PathBuf,
    pub store: Store,
    /// Applied over the inherited environment.
    pub env: Vec<(String, String)>,
    /// Each incarnation's stderr goes to `serve-<n>.log` here.
    pub logs: PathBuf,
}

/// A running serve.
#[derive(Debug)]
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub port: u16,
}

/// Variables that would change what serve decides (the model classifier)
/// or sends: the harness sets its own.
const CLEARED: &[&str] = &[
    "SWITCHYARD_OPENAI_API_KEY",
    "SWITCHYARD_SHOPIFY_API_KEY",
    "SWITCHYARD_SHADOW",
    "SWITCHYARD_KILL_SWITCH",
    "SWITCHYARD_BACKEND",
    "SWITCHYARD_DATA_DIR",
    "SWITCHYARD_AWS_PREFIX",
    "SWITCHYARD_LISTEN",
];

impl ServeSpec {
    /// `switchyard init` for the AWS backend (the embedded one provisions
    /// itself when serve opens it).
    pub async fn init(&self) -> anyhow::Result<()> {
        if let Store::Embedded(_) = self.store {
            return Ok(());
        }
        let out = Command::new(&self.bin)
            .arg("init")
            .args(self.store.args())
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {} init", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "switchyard init failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Start incarnation `n` on `port` (0: any free port) and wait until
    /// it answers `/readyz`. A port the killed process held may take a
    /// moment to be free again: binding is retried.
    pub async fn start(&self, port: u16, n: u32) -> anyhow::Result<Serve> {
        let mut tries = 0;
        loop {
            match self.start_once(port, n).await {
                Ok(s) => return Ok(s),
                Err(_) if port != 0 && tries < 9 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(&self, port: u16, n: u32) -> anyhow::Result<Serve> {
        let log_path = self.logs.join(format!("serve-{n}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .args(self.store.args())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        for k in CLEARED {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "starting {} serve (build it: cargo build -p ops)",
                self.bin.display()
            )
        })?;
        let stdout = child.stdout.take().context("serve stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some((_, url)) = line.split_once("listening on ") {
                    return Ok::<_, std::io::Error>(Some(url.trim().to_owned()));
                }
            }
            Ok(None)
        })
        .await;
        let base = match found {
            Ok(Ok(Some(base))) => base,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait().await?;
                bail!(
                    "serve #{n} exited ({status}) before listening; see {}",
                    log_path.display()
                );
            }
            Err(_) => {
                let _ = child.kill().await;
                bail!(
                    "serve #{n} did not listen within 60 s; see {}",
                    log_path.display()
                );
            }
        };
        // Keep draining stdout so serve never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .with_context(|| format!("no port in {base:?}"))?;
        wait_ready(&base).await?;
        Ok(Serve { child, base, port })
    }
}

impl Serve {
    /// SIGKILL, and reap the process.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM (graceful drain), then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
        }
    }
}

/// `/readyz` answers 200 within 60 s.
async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(r) => bail!("{base}/readyz answered {}", r.status()),
            Err(e) => bail!("{base} unreachable: {e}"),
        }
    }
}

/// The logs directory's serve logs, for a failure message.
pub fn logs_hint(dir: &Path) -> String {
    format!("serve logs: {}/serve-*.log", dir.display())
}
