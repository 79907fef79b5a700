//! Shared setup: a fake server, the real embedded backend (flags, secrets)
//! in a temp dir, and `Clients` pointed at the fake.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use downstream::config::ApiKey;
use downstream::fake::{FakeConfig, FakeHandle, FakeServer};
use downstream::{CallContext, Clients, DownstreamConfig};
use ports::{Backend, BackendConfig, EmbeddedSettings};

pub struct Setup {
    pub fake: FakeHandle,
    pub ds: Clients,
    pub backend: Backend,
    pub _dir: tempfile::TempDir,
}

/// Fast settings for tests: small backoff, short flag TTL, credentials set.
pub fn test_config(base: &str) -> DownstreamConfig {
    let mut cfg = DownstreamConfig::default().pointed_at(base);
    for ds in downstream::Downstream::ALL {
        let ep = cfg.endpoint_mut(ds);
        ep.api_key = Some(ApiKey(format!("test-key-{ds}")));
        ep.timeout_ms = 2_000;
        ep.retry.base_delay_ms = 10;
        ep.retry.max_delay_ms = 100;
        ep.quota.requests = 1_000;
        ep.quota.period_ms = 1_000;
        ep.quota.burst = 100;
    }
    cfg.flag_cache_ttl_ms = 100;
    cfg
}

pub async fn setup(fake_cfg: FakeConfig, tweak: impl FnOnce(&mut DownstreamConfig)) -> Setup {
    let fake = FakeServer::start(fake_cfg)
        .await
        .expect("fake server starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Backend::open(&BackendConfig::Embedded(EmbeddedSettings::new(dir.path())))
        .await
        .expect("embedded backend opens");
    let mut cfg = test_config(&fake.base_url());
    tweak(&mut cfg);
    let ds = Clients::new(cfg, Arc::clone(&backend.flags), backend.secrets.clone());
    Setup {
        fake,
        ds,
        backend,
        _dir: dir,
    }
}

pub fn ctx(key: &str) -> CallContext {
    CallContext {
        idempotency_key: key.into(),
        channel: Some("email".into()),
        template: None,
        customer_facing: false,
        shadow: false,
    }
}

pub async fn set_flag(s: &Setup, name: &str, value: &str) {
    s.backend
        .flags
        .set(name, value, "test", "test")
        .await
        .expect("flag set");
}

/// Bound every test.
pub async fn bounded<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test took too long")
}
