//! The harness's parts other crates' tests use: [`lambda_api`], a local
//! AWS Lambda Runtime API for running the Lambda binaries as Lambda does,
//! and [`otlp`], a local OpenTelemetry trace receiver.
//! The `loadtest` binary itself is `main.rs`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod lambda_api;
pub mod otlp;
