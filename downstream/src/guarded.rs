//! [`Clients`]: the handle the worker holds — a client of every
//! downstream, each behind its safety stack: one composed stack per
//! downstream, the shared flag cache, breakers and quotas, and credentials.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ports::{FlagStore, Flags, KillSwitch, Secrets};
use tower::ServiceExt;
use tracing::Instrument;

use crate::clients::{OpenAi, Richpanel, Shopify};
use crate::config::DownstreamConfig;
use crate::flags::FlagCache;
use crate::http::HttpClient;
use crate::layers::breaker::{Breaker, BreakerState, TokioClock};
use crate::layers::bucket::Limiter;
use crate::stack::{self, Stack, StackParts};
use crate::{Auth, CallError, Downstream, Reply, StackRequest};

/// Clients of every downstream behind their safety layers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: DownstreamConfig,
    flags: Arc<FlagCache>,
    secrets: Secrets,
    per: Vec<PerDownstream>,
}

#[derive(Debug)]
struct PerDownstream {
    downstream: Downstream,
    stack: Stack,
    breaker: Arc<Breaker>,
    /// Last known: a credential was found (config or secrets port).
    has_credential: AtomicBool,
}

impl Clients {
    /// Build every stack, each quota this process's alone. Call
    /// [`DownstreamConfig::validate`] first (`from_env` does): zero quota
    /// fields are read as 1.
    pub fn new(cfg: DownstreamConfig, flags: Arc<dyn FlagStore>, secrets: Secrets) -> Clients {
        Clients::with_fleet(cfg, flags, secrets, None)
    }

    /// [`Self::new`], with every quota shared through `fleet` when there is
    /// one (the backend's [`ports::Backend::fleet`]).
    pub fn with_fleet(
        cfg: DownstreamConfig,
        flags: Arc<dyn FlagStore>,
        secrets: Secrets,
        fleet: Option<Arc<dyn ports::Fleet>>,
    ) -> Clients {
        let kill_floor = cfg
            .kill_switch_floor
            .as_deref()
            .and_then(KillSwitch::parse)
            .unwrap_or_default();
        let flags = Arc::new(FlagCache::new(
            flags,
            Duration::from_millis(cfg.flag_cache_ttl_ms),
            kill_floor,
            cfg.shadow_floor,
        ));
        let max_wait = Duration::from_millis(cfg.max_wait_ms);
        let client = HttpClient::new();
        let per = Downstream::ALL
            .into_iter()
            .map(|ds| {
                let ep = cfg.endpoint(ds);
                let limiter = Arc::new(match &fleet {
                    Some(fleet) => Limiter::shared(
                        ds.as_str(),
                        &ep.quota,
                        max_wait,
                        fleet.clone(),
                        cfg.fleet_size,
                    ),
                    None => Limiter::new(ds.as_str(), &ep.quota, max_wait),
                });
                let breaker = Arc::new(Breaker::new(ds, ep.breaker.clone(), Arc::new(TokioClock)));
                let parts = StackParts {
                    flags: flags.clone(),
                    breaker: breaker.clone(),
                    limiter,
                    max_wait,
                };
                PerDownstream {
                    downstream: ds,
                    stack: stack::build(ep, parts, client.clone()),
                    breaker,
                    has_credential: AtomicBool::new(ep.api_key.is_some()),
                }
            })
            .collect();
        let ds = Clients {
            inner: Arc::new(Inner {
                cfg,
                flags,
                secrets,
                per,
            }),
        };
        // Credentials held only in the secrets port are looked up in the
        // background, so `shadowed()` is accurate before the first call.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let bg = ds.clone();
            rt.spawn(async move { bg.refresh_credentials().await });
        }
        ds
    }

    /// Look every credential up again (config, then secrets port), e.g.
    /// after a rotation; updates [`Self::shadowed`].
    pub async fn refresh_credentials(&self) {
        for ds in Downstream::ALL {
            self.auth(ds).await;
        }
    }

    /// The Richpanel client.
    pub fn richpanel(&self) -> Richpanel {
        Richpanel::new(self.clone())
    }
    /// The OpenAI-compatible client.
    pub fn openai(&self) -> OpenAi {
        OpenAi::new(self.clone())
    }
    /// The Shopify client.
    pub fn shopify(&self) -> Shopify {
        Shopify::new(self.clone())
    }

    /// The configuration the clients were built with.
    pub fn config(&self) -> &DownstreamConfig {
        &self.inner.cfg
    }

    /// True when `ds` has no credential (neither in the config nor in the
    /// secrets port, as last looked up): its writes are always shadowed.
    /// The `shadow` flag is separate: read it with [`Self::flags`].
    pub fn shadowed(&self, ds: Downstream) -> bool {
        !self.per(ds).has_credential.load(Ordering::Relaxed)
    }

    /// The flags as last read (floors applied), without a store read. Before
    /// the first read this is fail-closed (`kill-switch=all_writes`); use
    /// [`Self::flags`] for a value no older than the cache TTL.
    pub fn flags_now(&self) -> Flags {
        self.inner.flags.last_known()
    }

    /// Flags no older than the cache TTL (one store read when stale).
    pub async fn flags(&self) -> Flags {
        self.inner.flags.get().await
    }

    /// Every breaker's state, for `status`.
    pub fn breaker_states(&self) -> Vec<(Downstream, BreakerState)> {
        self.inner
            .per
            .iter()
            .map(|p| (p.downstream, p.breaker.state()))
            .collect()
    }

    /// Send `req` through `ds`'s safety stack, in a span that carries the
    /// layers' verdict (`switchyard.verdict`: `sent`, `shadowed`,
    /// `suppressed` or `failed`, with `switchyard.reason`), the token
    /// bucket's wait and the retries; the HTTP request is its child.
    pub(crate) async fn call(&self, req: StackRequest) -> Result<Reply, CallError> {
        let span = tracing::info_span!(
            "downstream",
            otel.name = req.downstream.span_name(),
            downstream = req.downstream.as_str(),
            switchyard.write = req.write,
            switchyard.verdict = tracing::field::Empty,
            switchyard.reason = tracing::field::Empty,
            switchyard.bucket_wait_ms = tracing::field::Empty,
            switchyard.retries = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let stack = self.per(req.downstream).stack.clone();
        let result = stack.oneshot(req).instrument(span.clone()).await;
        let (verdict, reason) = match &result {
            Ok(Reply::Sent(_)) => ("sent", None),
            Ok(Reply::Shadowed(_)) => ("shadowed", None),
            Err(e) => match e.suppression_reason() {
                Some(r) => ("suppressed", Some(r)),
                None => ("failed", Some(e.failure_kind())),
            },
        };
        span.record("switchyard.verdict", verdict);
        if let Some(r) = reason {
            span.record("switchyard.reason", r);
        }
        if verdict == "failed" {
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    /// The credential header for `ds`: config first, then the secrets port
    /// (`richpanel_api_key`, `openai_api_key`, `shopify_access_token`).
    pub(crate) async fn auth(&self, ds: Downstream) -> Option<Auth> {
        let (header, secret_name, bearer) = match ds {
            Downstream::Richpanel => ("x-richpanel-key", "richpanel_api_key", false),
            Downstream::Openai => ("authorization", "openai_api_key", true),
            Downstream::Shopify => ("x-shopify-access-token", "shopify_access_token", false),
        };
        let key = match self.inner.cfg.endpoint(ds).api_key.clone() {
            Some(k) => Some(k.0),
            None => match self.inner.secrets.get(secret_name).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(downstream = %ds, error = %e, "secret unreadable; writes are shadowed");
                    None
                }
            },
        }
        .filter(|k| !k.is_empty());
        self.per(ds)
            .has_credential
            .store(key.is_some(), Ordering::Relaxed);
        key.map(|k| Auth {
            header,
            value: if bearer { format!("Bearer {k}") } else { k },
        })
    }

    fn per(&self, ds: Downstream) -> &PerDownstream {
        // `per` holds every downstream, in `Downstream::ALL` order.
        let i = Downstream::ALL.iter().position(|d| *d == ds).unwrap_or(0);
        &self.inner.per[i]
    }
}
