//! The traffic: one sequential sender per concurrent conversation, as
//! Richpanel's HTTP target behaves. Message i+1 leaves only after message
//! i was acknowledged (2xx); a connection error, timeout or 5xx re-sends
//! the *same* body (a redelivery) until it is; now and then an already
//! acknowledged body is sent again (a duplicate: 200, nothing changes).
//! A sender works through tickets of `messages` messages each and stops
//! after the ticket it is on once told to.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// What every message of a ticket asks, in turn: the order status twice
/// (the second must not get the order-status template again), the return
/// policy, shipping times (a third template: the 3-per-24 h limit is
/// reached), then the order status once more.
const ASKS: &[&str] = &[
    "Hi, where is my order #{order}?",
    "Hello again, where is my order #{order}? It has not arrived.",
    "What is your return policy? I may want to send it back.",
    "How long does shipping take to Canada?",
    "Still waiting: where is my order #{order}?",
];

/// Shared between the senders and the killer.
#[derive(Debug, Default)]
pub struct Progress {
    /// Webhook requests sent and not yet answered.
    pub in_flight: AtomicUsize,
    /// Set when the kills are over: finish the current ticket, then stop.
    pub stop: AtomicBool,
}

/// Settings of the traffic.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub base: String,
    pub token: String,
    pub run_id: String,
    pub senders: usize,
    pub messages: usize,
    pub duplicate_rate: f64,
    /// Longest time one message may take to be acknowledged.
    pub ack_deadline: Duration,
    pub seed: u64,
}

/// One message as the sender saw it acknowledged.
#[derive(Debug, Clone)]
pub struct Acked {
    pub event_id: String,
    /// Requests it took (1 = acknowledged at once).
    pub attempts: u32,
}

/// What happened to one ticket's messages.
#[derive(Debug, Clone, Default)]
pub struct TicketLog {
    pub ticket: String,
    /// In acceptance order.
    pub acked: Vec<Acked>,
    /// Duplicates of acknowledged bodies, with the status that acked them.
    pub duplicates: Vec<(String, u16)>,
    /// Messages refused for good (4xx), with the answer.
    pub rejected: Vec<String>,
    /// Messages not acknowledged within the deadline.
    pub unacked: Vec<String>,
}

/// Run every sender; returns each ticket's log when all have stopped.
pub async fn run(traffic: Traffic, progress: Arc<Progress>) -> anyhow::Result<Vec<TicketLog>> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .timeout(Duration::from_secs(10))
        .build()?;
    let traffic = Arc::new(traffic);
    let tasks: Vec<_> = (0..traffic.senders)
        .map(|sender_index| {
            let (traffic, client, progress) = (traffic.clone(), client.clone(), progress.clone());
            tokio::spawn(async move { sender(sender_index, &traffic, &client, &progress).await })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    Ok(all)
}

async fn sender(
    sender_index: usize,
    traffic: &Traffic,
    client: &reqwest::Client,
    progress: &Progress,
) -> Vec<TicketLog> {
    let mut rng = StdRng::seed_from_u64(
        traffic.seed ^ (sender_index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let mut logs = Vec::new();
    for ticket_number in 0.. {
        if ticket_number > 0 && progress.stop.load(Ordering::Relaxed) {
            break;
        }
        let ticket = format!("cx-{}-{sender_index}-{ticket_number}", traffic.run_id);
        let order = 1000 + rng.random_range(0..9000);
        let mut log = TicketLog {
            ticket: ticket.clone(),
            ..TicketLog::default()
        };
        let mut sent: Vec<bytes::Bytes> = Vec::new();
        for message in 0..traffic.messages {
            let text = ASKS[message % ASKS.len()].replace("{order}", &order.to_string());
            let body = webhook(
                &ticket,
                &format!("{ticket}-m{message}"),
                &text,
                sender_index,
            );
            match until_acked(traffic, client, progress, &body).await {
                Answer::Acked {
                    event_id, attempts, ..
                } => {
                    log.acked.push(Acked { event_id, attempts });
                    sent.push(body);
                }
                Answer::Rejected(why) => log.rejected.push(format!("m{message}: {why}")),
                Answer::GaveUp(why) => {
                    // Later messages would only queue behind it: stop here.
                    log.unacked.push(format!("m{message}: {why}"));
                    break;
                }
            }
            if !sent.is_empty() && rng.random::<f64>() < traffic.duplicate_rate {
                let earlier = rng.random_range(0..sent.len());
                let copy = sent[earlier].clone();
                if let Answer::Acked {
                    status, event_id, ..
                } = until_acked(traffic, client, progress, &copy).await
                {
                    log.duplicates.push((event_id, status));
                }
            }
            // A customer types for a moment between messages.
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        }
        logs.push(log);
    }
    logs
}

/// A Richpanel HTTP-target body carrying one customer message.
fn webhook(ticket: &str, message_id: &str, text: &str, customer: usize) -> bytes::Bytes {
    serde_json::json!({
        "ticket_id": ticket,
        "message_id": message_id,
        "message": text,
        "channel": "email",
        "customer_email": format!("customer{customer}@example.invalid"),
        "created_at": chrono::Utc::now().to_rfc3339(),
        "ticket": { "tags": ["chaos"] },
    })
    .to_string()
    .into()
}

enum Answer {
    Acked {
        status: u16,
        event_id: String,
        attempts: u32,
    },
    Rejected(String),
    GaveUp(String),
}

/// Counts a request as in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Send `body` until a 2xx (or a 4xx, which no retry can change).
async fn until_acked(
    traffic: &Traffic,
    client: &reqwest::Client,
    progress: &Progress,
    body: &bytes::Bytes,
) -> Answer {
    let started = Instant::now();
    let url = format!("{}/webhooks/richpanel", traffic.base);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let last = {
            let _counted = InFlight::new(&progress.in_flight);
            let resp = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Switchyard-Token", &traffic.token)
                .body(body.clone())
                .send()
                .await;
            match resp {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let json: serde_json::Value = r.json().await.unwrap_or_default();
                    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                    if (200..300).contains(&status) {
                        return Answer::Acked {
                            status,
                            event_id: field("event_id").unwrap_or_default(),
                            attempts,
                        };
                    }
                    let why = format!("{status} {}", field("error").unwrap_or_default());
                    if (400..500).contains(&status) && status != 408 && status != 429 {
                        return Answer::Rejected(why);
                    }
                    why
                }
                Err(e) if e.is_timeout() => "timeout".to_owned(),
                Err(e) if e.is_connect() => "connection refused".to_owned(),
                Err(_) => "connection dropped".to_owned(),
            }
        };
        if started.elapsed() > traffic.ack_deadline {
            return Answer::GaveUp(format!("{attempts} attempts, last: {last}"));
        }
        let backoff = 50u64 << attempts.min(5);
        tokio::time::sleep(Duration::from_millis(backoff.min(1_000))).await;
    }
}
