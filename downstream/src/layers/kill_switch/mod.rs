//! Kill switch (and the other operator stops): pause, safe mode, channel
//! and template enablement. Reads flags through the shared [`FlagCache`] and
//! fails fast with [`Suppressed`] — nothing is sent, nothing waits.
//!
//! | flag | stops |
//! |---|---|
//! | `kill-switch=all_writes` | every write (route-only is stopped too) |
//! | `kill-switch=auto_replies` | customer-facing writes |
//! | `pause.<downstream>` | every call to that downstream, reads included |
//! | `safe-mode=on` | customer-facing writes and optional enrichment |
//! | `channel.<c>=off` / `template.<t>=off` | writes in that channel / with that template |
use std::sync::Arc;

use ports::{Flags, KillSwitch as Scope};
use tower::Service;

use super::{Around, AroundLayer, call_inner};
use crate::flags::FlagCache;
use crate::{CallError, Downstream, Reply, StackRequest};

/// Why the kill-switch layer refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Suppressed {
    #[error("kill switch {0}")]
    /// The kill switch, with its scope.
    KillSwitch(&'static str),
    #[error("{0} paused")]
    /// `pause.<downstream>` is on.
    Paused(Downstream),
    #[error("safe mode")]
    /// Safe mode: route only.
    SafeMode,
    #[error("channel {0} disabled")]
    /// `channel.<name>` is off.
    ChannelDisabled(String),
    #[error("template {0} disabled")]
    /// `template.<id>` is off.
    TemplateDisabled(String),
}

impl From<Suppressed> for CallError {
    fn from(s: Suppressed) -> Self {
        match s {
            Suppressed::KillSwitch(scope) => CallError::KillSwitch { scope },
            Suppressed::Paused(downstream) => CallError::Paused { downstream },
            Suppressed::SafeMode => CallError::SafeMode,
            Suppressed::ChannelDisabled(channel) => CallError::ChannelDisabled { channel },
            Suppressed::TemplateDisabled(template) => CallError::TemplateDisabled { template },
        }
    }
}

/// The decision, separate from I/O so it can be tested exhaustively.
pub fn check(flags: &Flags, req: &StackRequest) -> Result<(), Suppressed> {
    let facing = req.customer_facing();
    if req.write && flags.kill_switch == Scope::AllWrites {
        return Err(Suppressed::KillSwitch(Scope::AllWrites.as_str()));
    }
    if req.write && facing && flags.kill_switch >= Scope::AutoReplies {
        return Err(Suppressed::KillSwitch(Scope::AutoReplies.as_str()));
    }
    if flags.paused(req.downstream.as_str()) {
        return Err(Suppressed::Paused(req.downstream));
    }
    if flags.safe_mode && ((req.write && facing) || req.optional) {
        return Err(Suppressed::SafeMode);
    }
    if req.write
        && let Some(ctx) = &req.ctx
    {
        if let Some(c) = ctx.channel.as_deref().filter(|c| !flags.channel_enabled(c)) {
            return Err(Suppressed::ChannelDisabled(c.to_owned()));
        }
        if let Some(t) = ctx
            .template
            .as_deref()
            .filter(|t| !flags.template_enabled(t))
        {
            return Err(Suppressed::TemplateDisabled(t.to_owned()));
        }
    }
    Ok(())
}

/// Stops what the flags forbid before anything else happens.
#[derive(Debug, Clone)]
pub struct KillSwitchGate {
    flags: Arc<FlagCache>,
}

/// The kill switch, pause, safe mode and channel/template checks as a
/// tower layer.
pub type KillSwitchLayer = AroundLayer<KillSwitchGate>;

impl KillSwitchLayer {
    /// The layer reading `flags`.
    pub fn new(flags: Arc<FlagCache>) -> Self {
        AroundLayer(KillSwitchGate { flags })
    }
}

impl Around for KillSwitchGate {
    fn around<S>(
        self,
        inner: S,
        req: StackRequest,
    ) -> impl std::future::Future<Output = Result<Reply, CallError>> + Send + 'static
    where
        S: Service<StackRequest, Response = Reply, Error = CallError> + Send + 'static,
        S::Future: Send,
    {
        async move {
            if let Err(s) = check(&self.flags.get().await, &req) {
                let e = CallError::from(s);
                let reason = e.suppression_reason().unwrap_or("other");
                crate::metrics::suppressed(req.downstream.as_str(), reason);
                tracing::info!(downstream = %req.downstream, reason, "downstream call suppressed");
                return Err(e);
            }
            call_inner(inner, req).await
        }
    }
}

#[cfg(test)]
mod tests;
