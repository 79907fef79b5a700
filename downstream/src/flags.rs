//! [`FlagCache`]: the flag store read through a short cache, with the
//! environment hard floors applied on top. Every safety layer reads flags
//! here, so a flip reaches all of them within one TTL plus one store read.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ports::{FlagStore, Flags, KillSwitch};
use tokio::time::Instant;

/// How long one flag-store read may take before the cached value is used.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How long last known flags may stand in for an unreadable store. Past
/// this, writes fail closed: an operator's kill switch that cannot reach
/// this process must not leave it writing indefinitely.
const MAX_STALE: Duration = Duration::from_secs(5);

/// Cached, floored flags. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FlagCache {
    store: Arc<dyn FlagStore>,
    ttl: Duration,
    kill_floor: KillSwitch,
    shadow_floor: bool,
    last: Mutex<Option<(Instant, Flags)>>,
    /// Single flight: one store read at a time refreshes for everyone.
    refreshing: tokio::sync::Mutex<()>,
}

impl FlagCache {
    /// A cache of `store`, each read reused for `ttl`. The flags are never
    /// less strict than the environment's floors `kill_floor` and
    /// `shadow_floor`, whatever the store says.
    pub fn new(
        store: Arc<dyn FlagStore>,
        ttl: Duration,
        kill_floor: KillSwitch,
        shadow_floor: bool,
    ) -> Self {
        FlagCache {
            store,
            ttl,
            kill_floor,
            shadow_floor,
            last: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Flags no older than the TTL (one store read when stale). If the store
    /// cannot be read, the last known flags are used for up to `MAX_STALE`;
    /// before the first read or past that, writes fail closed
    /// (`kill-switch=all_writes`).
    pub async fn get(&self) -> Flags {
        if let Some(f) = self.fresh() {
            return f;
        }
        let _guard = self.refreshing.lock().await;
        if let Some(f) = self.fresh() {
            return f;
        }
        let flags = self.read().await;
        crate::metrics::kill_switch(flags.kill_switch);
        flags
    }

    /// One store read, cached; the fallback when it fails.
    async fn read(&self) -> Flags {
        let read = tokio::time::timeout(READ_TIMEOUT, self.store.get_all()).await;
        let flags = match read {
            Ok(Ok(set)) => Flags::from_set(&set),
            Ok(Err(e)) => return self.fallback(&e.to_string()),
            Err(_) => return self.fallback("flag store read timed out"),
        };
        *self.lock() = Some((Instant::now(), flags.clone()));
        self.floored(flags)
    }

    /// The last flags read, floored, without touching the store (may be
    /// older than the TTL; fail-closed before the first read).
    pub fn last_known(&self) -> Flags {
        match self.lock().as_ref() {
            Some((_, f)) => self.floored(f.clone()),
            None => self.fail_closed(),
        }
    }

    fn fresh(&self) -> Option<Flags> {
        let last = self.lock();
        let (at, f) = last.as_ref()?;
        (at.elapsed() < self.ttl).then(|| self.floored(f.clone()))
    }

    fn fallback(&self, why: &str) -> Flags {
        crate::metrics::flag_read_failure();
        let stale = self
            .lock()
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > MAX_STALE);
        if stale {
            tracing::error!(error = %why, "flag store unreadable for too long; failing closed (all writes stopped)");
            return self.fail_closed();
        }
        tracing::warn!(error = %why, "flag store unreadable; using last known flags");
        self.last_known()
    }

    fn fail_closed(&self) -> Flags {
        let mut f = Flags::default();
        f.kill_switch = KillSwitch::AllWrites;
        self.floored(f)
    }

    fn floored(&self, mut f: Flags) -> Flags {
        f.kill_switch = f.kill_switch.max(self.kill_floor);
        f.shadow |= self.shadow_floor;
        f
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Flags)>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
pub(crate) mod test_store {
    //! An in-memory [`FlagStore`] for layer tests.
    use super::*;
    use async_trait::async_trait;
    use ports::{AuditEntry, FlagSet, PortError};

    #[derive(Debug, Default)]
    pub struct MemFlags {
        pub set: Mutex<FlagSet>,
        pub reads: std::sync::atomic::AtomicUsize,
        pub broken: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl FlagStore for MemFlags {
        async fn get_all(&self) -> ports::Result<FlagSet> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(PortError::Unavailable("down".into()));
            }
            Ok(self.set.lock().expect("lock").clone())
        }
        async fn set(&self, name: &str, value: &str, _: &str, _: &str) -> ports::Result<FlagSet> {
            let mut s = self.set.lock().expect("lock");
            s.version += 1;
            s.values.insert(name.into(), value.into());
            Ok(s.clone())
        }
        async fn history(&self, _: usize) -> ports::Result<Vec<AuditEntry>> {
            Ok(vec![])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_store::MemFlags;
    use super::*;
    use std::sync::atomic::Ordering;

    #[tokio::test(start_paused = true)]
    async fn caches_for_ttl_then_rereads_and_applies_floors() {
        let store = Arc::new(MemFlags::default());
        let cache = FlagCache::new(
            store.clone(),
            Duration::from_millis(200),
            KillSwitch::AutoReplies,
            false,
        );
        assert_eq!(
            cache.get().await.kill_switch,
            KillSwitch::AutoReplies,
            "env floor"
        );
        store
            .set("kill-switch", "all_writes", "t", "t")
            .await
            .expect("set");
        assert_eq!(
            cache.get().await.kill_switch,
            KillSwitch::AutoReplies,
            "cached"
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(201)).await;
        assert_eq!(cache.get().await.kill_switch, KillSwitch::AllWrites);
        store
            .set("kill-switch", "off", "t", "t")
            .await
            .expect("set");
        tokio::time::sleep(Duration::from_millis(201)).await;
        assert_eq!(
            cache.get().await.kill_switch,
            KillSwitch::AutoReplies,
            "floor holds"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unreadable_store_fails_closed_then_keeps_last_known() {
        let store = Arc::new(MemFlags::default());
        store.broken.store(true, Ordering::SeqCst);
        let cache = FlagCache::new(
            store.clone(),
            Duration::from_millis(100),
            KillSwitch::Off,
            false,
        );
        assert_eq!(cache.get().await.kill_switch, KillSwitch::AllWrites);
        store.broken.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(101)).await;
        assert_eq!(cache.get().await.kill_switch, KillSwitch::Off);
        store.broken.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(101)).await;
        assert_eq!(cache.get().await.kill_switch, KillSwitch::Off, "last known");
        // Unreadable for longer than MAX_STALE: fail closed.
        tokio::time::sleep(MAX_STALE).await;
        assert_eq!(
            cache.get().await.kill_switch,
            KillSwitch::AllWrites,
            "stale too long"
        );
        // Readable again: back to the stored flags.
        store.broken.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(101)).await;
        assert_eq!(cache.get().await.kill_switch, KillSwitch::Off);
    }
}
