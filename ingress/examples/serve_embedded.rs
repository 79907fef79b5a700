//! A bare ingress over the embedded backend, for load measurements:
//!
//! ```text
//! cargo run --release -p ingress --example serve_embedded -- /tmp/swy-bench 127.0.0.1:8088
//! ```
//! Prints the webhook token (generated on first start) to stdout.
#![forbid(unsafe_code)]

use ingress::{Ingress, IngressConfig};
use ports::{Backend, BackendConfig, EmbeddedSettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "switchyard-bench".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8088".to_owned());
    let cfg = BackendConfig::Embedded(EmbeddedSettings::new(&dir));
    Backend::provision(&cfg).await?;
    let backend = Backend::open(&cfg).await?;
    if let Some(token) = ingress::ensure_token(&backend).await? {
        println!("generated webhook token: {token}");
    } else if let Some(token) = backend.secrets.get(ingress::SECRET_TOKEN).await? {
        println!("webhook token: {token}");
    }
    let router = Ingress::new(backend, IngressConfig::from_env()?)
        .await?
        .router();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr}");
    axum::serve(listener, router).await?;
    Ok(())
}
