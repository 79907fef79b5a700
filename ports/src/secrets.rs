//! Secrets: a source port (Secrets Manager, or env/file when embedded) and
//! one TTL cache in front of it for every backend, with forced refresh for
//! rotation (call [`Secrets::refresh`] after an auth failure).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::Result;

/// Where secrets are kept (files, Secrets Manager), uncached.
#[async_trait]
pub trait SecretSource: Send + Sync + std::fmt::Debug {
    /// `Ok(None)` when no secret has that name.
    async fn fetch(&self, name: &str) -> Result<Option<String>>;
    /// Create or replace a secret.
    async fn store(&self, name: &str, value: &str) -> Result<()>;
    /// Where secret `name` is kept, for an operator to read it (a file
    /// path, a Secrets Manager id). Never the value.
    fn location(&self, name: &str) -> String;
}

/// The environment variable `<prefix><NAME>` that configures secret
/// `name`: the name uppercased, every character outside `A-Z0-9` as `_`
/// (`richpanel_api_key` → `<prefix>RICHPANEL_API_KEY`).
pub fn env_name(prefix: &str, name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{tail}")
}

/// TTL-cached secrets. Cheap to clone.
#[derive(Clone)]
pub struct Secrets {
    source: Arc<dyn SecretSource>,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

/// When a secret was fetched, and its value then (`None`: not set).
type Cached = (Instant, Option<String>);

impl std::fmt::Debug for Secrets {
    // Never print cached values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("source", &self.source)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// `source` behind a cache that keeps each value for `ttl`.
    pub fn new(source: Arc<dyn SecretSource>, ttl: Duration) -> Self {
        Secrets {
            source,
            ttl,
            cache: Arc::default(),
        }
    }

    /// The secret, from cache while younger than the TTL.
    pub async fn get(&self, name: &str) -> Result<Option<String>> {
        if let Some((at, value)) = self.lock().get(name).cloned()
            && at.elapsed() < self.ttl
        {
            return Ok(value);
        }
        self.refresh(name).await
    }

    /// Bypass the cache and re-read the source.
    pub async fn refresh(&self, name: &str) -> Result<Option<String>> {
        let value = self.source.fetch(name).await?;
        self.lock()
            .insert(name.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }

    /// Where secret `name` is kept (never its value).
    pub fn location(&self, name: &str) -> String {
        self.source.location(name)
    }

    /// Store a secret and update the cache.
    pub async fn store(&self, name: &str, value: &str) -> Result<()> {
        self.source.store(name, value).await?;
        self.lock()
            .insert(name.to_owned(), (Instant::now(), Some(value.to_owned())));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<String>)>> {
        // A poisoned cache only means a panic elsewhere mid-insert; the map
        // itself is still valid.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
