//! Lambda entry point for the SQS event source: builds the worker from the
//! environment and hands each invocation to
//! `worker::lambda::handle_invocation`. Logs and EMF metrics per
//! `ports::telemetry`.
#![forbid(unsafe_code)]

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _traces = ports::telemetry::init_lambda_logs("switchyard-worker");
    let backend = ports::BackendConfig::from_env()?;
    ports::telemetry::init_lambda_metrics(&backend);
    ports::telemetry::flush_metrics_on_sigterm();
    let worker = worker::from_env(&backend).await?;
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(worker::lambda::handle_invocation(worker, event).await)
    }))
    .await
}
