//! Structured JSON logs: `event_id` / `conversation_id` on every webhook
//! line, and no token or raw customer address anywhere (invariant 7).
//! One test in its own binary: it installs the global subscriber.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use ingress::IngressConfig;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_ids_and_without_secrets_or_addresses() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let tb = embedded().await;
    let app = serve(tb.backend.clone(), IngressConfig::default()).await;
    let customer = "jane.doe.4711@example.com";
    let body = ticket_body(
        &unique("T"),
        "m1",
        &format!("call me at +44 20 7946 0958 or {customer}"),
    );
    assert_eq!(app.richpanel(&body).await.0, 202);
    assert_eq!(app.richpanel(&body).await.0, 200);
    let wrong = "wrong-token-5d1e9c0b";
    let resp = app
        .http
        .post(app.url("/webhooks/richpanel"))
        .header("X-Switchyard-Token", wrong)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let eml = std::fs::read(format!("{CORPUS}/eml/postal-mime/calendar-event.eml")).unwrap();
    let resp = app
        .http
        .post(app.url("/webhooks/email"))
        .header("X-Switchyard-Token", TOKEN)
        .header("content-type", "message/rfc822")
        .body(eml)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let acked: Vec<_> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "webhook acknowledged")
        .collect();
    assert_eq!(acked.len(), 3, "{logs}");
    for line in &acked {
        assert!(
            line["span"]["event_id"].is_string(),
            "event_id field: {line}"
        );
        assert!(
            line["span"]["conversation_id"].is_string(),
            "conversation_id field: {line}"
        );
    }
    for needle in [TOKEN, wrong, customer, "andris@postalsys.com", "7946 0958"] {
        assert!(
            !logs.contains(needle),
            "{needle:?} leaked into the logs:\n{logs}"
        );
    }
}
