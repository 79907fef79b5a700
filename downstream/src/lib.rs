//! Downstream clients (Richpanel, OpenAI-compatible, Shopify) behind the
//! safety layers, and a fake downstream server for tests, demos and load.
//!
//! The worker holds one [`Clients`] and calls `richpanel()`, `openai()`
//! and `shopify()`; every call passes through the stack composed in
//! [`stack`]: kill switch → shadow → retry → breaker → token bucket →
//! (kill switch + shadow gate) → timeout → HTTP. Refusals and failures are a
//! [`CallError`] whose docs say how the worker handles each.
//!
//! # Layout
//! - `config.rs` — [`DownstreamConfig`]: defaults → file → env.
//! - `request.rs` — [`StackRequest`], [`Reply`], [`WriteOutcome`], [`CallContext`].
//! - `error.rs` — [`CallError`].
//! - `flags.rs` — [`flags::FlagCache`]: flag store behind a short cache + env floors.
//! - `layers/` — one folder per layer, each with its named error and tests.
//! - `stack.rs` — the one place the layers are composed, and why in that order.
//! - `http.rs` — the innermost `reqwest` service.
//! - `metrics.rs` — the crate's metric names and their recording helpers.
//! - `clients/` — typed Richpanel, OpenAI-compatible and Shopify clients.
//! - `guarded.rs` — [`Clients`], the handle the worker holds.
//! - `fake/` — [`fake::FakeServer`], the fake downstreams (also `fake-downstream` binary).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clients;
pub mod config;
mod error;
pub mod fake;
pub mod flags;
mod guarded;
pub mod http;
pub mod layers;
pub mod metrics;
mod request;
pub mod stack;

pub use clients::{
    Classification, Comment, OpenAi, Order, Richpanel, Shopify, Ticket, TicketReply, TicketUpdate,
};
pub use config::{ApiKey, ConfigError, DownstreamConfig};
pub use error::CallError;
pub use guarded::Clients;
pub use layers::breaker::BreakerState;
pub use request::{
    Auth, Bucket, CallContext, Downstream, HttpReply, Method, RecordedRequest, Reply, StackRequest,
    WriteOutcome,
};
