//! AWS Lambda entry point (API Gateway HTTP API v2 / function URL events):
//! the same router as `switchyard serve`. All wiring is in `ingress::lambda`.
#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    ingress::lambda::run().await
}
