//! What to send: a deterministic generator of webhook requests with Zipf
//! conversation popularity, a channel mix, FAQ / Tier-0 texts, duplicates
//! (also concurrent ones) and malformed requests.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::scenario::Scenario;

/// The routes the harness sends to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    #[default]
    Richpanel,
    Email,
}

impl Route {
    pub fn path(self) -> &'static str {
        match self {
            Route::Richpanel => "/webhooks/richpanel",
            Route::Email => "/webhooks/email",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Richpanel => "richpanel",
            Route::Email => "email",
        }
    }
}

/// The kind of one request, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    RichpanelMinimal,
    RichpanelRich,
    Email,
    BrokenJson,
    BadAuth,
    Oversized,
    WrongContentType,
    EmptyBody,
}

impl Kind {
    pub fn malformed(self) -> bool {
        matches!(
            self,
            Kind::BrokenJson
                | Kind::BadAuth
                | Kind::Oversized
                | Kind::WrongContentType
                | Kind::EmptyBody
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RichpanelMinimal => "richpanel_minimal",
            Kind::RichpanelRich => "richpanel_rich",
            Kind::Email => "email",
            Kind::BrokenJson => "broken_json",
            Kind::BadAuth => "bad_auth",
            Kind::Oversized => "oversized",
            Kind::WrongContentType => "wrong_content_type",
            Kind::EmptyBody => "empty_body",
        }
    }
}

/// One HTTP request to make. Cheap to clone (the body is shared).
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    pub route: Route,
    pub content_type: &'static str,
    pub body: bytes::Bytes,
    /// False for the bad-auth case.
    pub good_token: bool,
    /// The simulated conversation (index into the popularity table).
    pub conversation: usize,
    /// Re-send of an earlier request (same bytes).
    pub duplicate: bool,
}

/// Texts by intent class. Rules match case-insensitively.
const FAQ: &[&str] = &[
    "Hi, where is my order? I ordered last week.",
    "What is your return policy for shoes?",
    "How long does shipping take to Canada?",
    "Can you send the tracking number for order 1042 please",
    "My package hasn't arrived yet, order status?",
];
const TIER0: &[&str] = &[
    "I will file a chargeback with my bank if this is not fixed",
    "This is fraud, I didn't authorize this purchase",
    "I am talking to my lawyer about this order",
];
const NEUTRAL: &[&str] = &[
    "Thanks for the quick help yesterday!",
    "Do you have the blue one in a size 10?",
    "Please update the address on my account",
    "Hello, I have a question about my subscription",
];

const EMAIL_FIXTURES: &[&str] = &[
    include_str!("../fixtures/japanese-base64.eml"),
    include_str!("../fixtures/multipart-attachment.eml"),
    include_str!("../fixtures/rfc2046-alternative.eml"),
];

/// Zipf(s) over `n` items as a cumulative table.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        let total = acc;
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf }
    }
    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

/// Produces the request stream of one run.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    zipf: Zipf,
    scenario: Scenario,
    run_id: String,
    seq: u64,
    /// Recent valid requests, for duplicates.
    recent: Vec<Request>,
    /// Body limit of the Richpanel route (an oversized body exceeds it).
    oversize_bytes: usize,
}

/// What to send at one arrival: one request, or the same one twice at once.
#[derive(Debug, Clone)]
pub enum Arrival {
    One(Request),
    Concurrent(Request),
}

const RECENT: usize = 512;

impl Generator {
    pub fn new(scenario: &Scenario, run_id: &str, oversize_bytes: usize) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(scenario.seed),
            zipf: Zipf::new(scenario.conversations, scenario.zipf_s),
            scenario: scenario.clone(),
            run_id: run_id.to_owned(),
            seq: 0,
            recent: Vec::with_capacity(RECENT),
            oversize_bytes,
        }
    }

    pub fn next_arrival(&mut self) -> Arrival {
        let s = &self.scenario;
        let roll: f64 = self.rng.random();
        if roll < s.malformed_rate {
            return Arrival::One(self.malformed());
        }
        if roll < s.malformed_rate + s.duplicate_rate && !self.recent.is_empty() {
            let concurrent = self.rng.random::<f64>() < s.concurrent_duplicate_share;
            let i = self.rng.random_range(0..self.recent.len());
            let mut r = self.recent[i].clone();
            r.duplicate = true;
            return if concurrent {
                Arrival::Concurrent(r)
            } else {
                Arrival::One(r)
            };
        }
        let r = self.valid();
        if self.recent.len() < RECENT {
            self.recent.push(r.clone());
        } else {
            let i = self.rng.random_range(0..RECENT);
            self.recent[i] = r.clone();
        }
        Arrival::One(r)
    }

    fn text(&mut self) -> &'static str {
        let u: f64 = self.rng.random();
        let pool = if u < self.scenario.faq_share {
            FAQ
        } else if u < self.scenario.faq_share + self.scenario.tier0_share {
            TIER0
        } else {
            NEUTRAL
        };
        pool[self.rng.random_range(0..pool.len())]
    }

    fn valid(&mut self) -> Request {
        self.seq += 1;
        let conv = self.zipf.sample(&mut self.rng);
        let m = self.scenario.mix.clone();
        let u = self.rng.random::<f64>() * (m.richpanel_minimal + m.richpanel_rich + m.email);
        let ticket = format!("lt-{}-{conv}", self.run_id);
        if u < m.richpanel_minimal {
            let body = serde_json::json!({
                "ticket_id": ticket,
                "ticket_url": format!("https://app.richpanel.com/tickets/{ticket}"),
                "trigger": "customer_message",
            });
            self.json(Kind::RichpanelMinimal, conv, body)
        } else if u < m.richpanel_minimal + m.richpanel_rich {
            let text = self.text();
            let body = serde_json::json!({
                "ticket_id": ticket,
                "message_id": format!("lt-{}-m{}", self.run_id, self.seq),
                "message": text,
                "channel": "email",
                "customer_email": format!("customer{conv}@example.invalid"),
                "created_at": chrono::Utc::now().to_rfc3339(),
                "ticket": { "tags": ["loadtest"] },
            });
            self.json(Kind::RichpanelRich, conv, body)
        } else {
            let text = self.text();
            let fixture = EMAIL_FIXTURES[self.rng.random_range(0..EMAIL_FIXTURES.len())];
            let raw = email(fixture, &self.run_id, conv, self.seq, text);
            Request {
                kind: Kind::Email,
                route: Route::Email,
                content_type: "message/rfc822",
                body: raw.into(),
                good_token: true,
                conversation: conv,
                duplicate: false,
            }
        }
    }

    fn json(&self, kind: Kind, conv: usize, body: serde_json::Value) -> Request {
        Request {
            kind,
            route: Route::Richpanel,
            content_type: "application/json",
            body: body.to_string().into(),
            good_token: true,
            conversation: conv,
            duplicate: false,
        }
    }

    fn malformed(&mut self) -> Request {
        let kinds = [
            Kind::BrokenJson,
            Kind::BadAuth,
            Kind::Oversized,
            Kind::WrongContentType,
            Kind::EmptyBody,
        ];
        let kind = kinds[self.rng.random_range(0..kinds.len())];
        let conv = self.zipf.sample(&mut self.rng);
        let ok_body = || {
            bytes::Bytes::from(
                serde_json::json!({"ticket_id": format!("lt-bad-{conv}"), "trigger": "x"})
                    .to_string(),
            )
        };
        let (body, content_type, good_token) = match kind {
            // No ticket id anywhere: nothing to recover.
            Kind::BrokenJson => (
                bytes::Bytes::from_static(b"{\"msg\": [1, 2, \"unterminated"),
                "application/json",
                true,
            ),
            Kind::BadAuth => (ok_body(), "application/json", false),
            Kind::Oversized => {
                let pad = "x".repeat(self.oversize_bytes + 1024);
                let b = serde_json::json!({"ticket_id": "lt-big", "message": pad}).to_string();
                (bytes::Bytes::from(b), "application/json", true)
            }
            Kind::WrongContentType => (ok_body(), "image/png", true),
            _ => (bytes::Bytes::new(), "application/json", true),
        };
        Request {
            kind,
            route: Route::Richpanel,
            content_type,
            body,
            good_token,
            conversation: conv,
            duplicate: false,
        }
    }
}

/// A fixture with its identity headers replaced: a unique Message-ID, the
/// conversation's thread root in References, and `text` as the subject.
fn email(fixture: &str, run: &str, conv: usize, seq: u64, text: &str) -> String {
    let (head, body) = fixture
        .split_once("\r\n\r\n")
        .or_else(|| fixture.split_once("\n\n"))
        .unwrap_or((fixture, ""));
    let mut kept = String::new();
    let mut skipping = false;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                kept.push_str(line);
                kept.push_str("\r\n");
            }
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        skipping = matches!(
            name.as_str(),
            "message-id" | "references" | "in-reply-to" | "subject" | "from"
        );
        if !skipping {
            kept.push_str(line);
            kept.push_str("\r\n");
        }
    }
    format!(
        "Message-ID: <lt-{run}-{seq}@loadtest.invalid>\r\nReferences: <lt-{run}-c{conv}@loadtest.invalid>\r\nFrom: Customer {conv} <customer{conv}@example.invalid>\r\nSubject: {text}\r\n{kept}\r\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_the_head() {
        let z = Zipf::new(1000, 1.1);
        let mut rng = StdRng::seed_from_u64(7);
        let head = (0..10_000).filter(|_| z.sample(&mut rng) < 10).count();
        assert!(
            head > 4000,
            "top 1% of conversations got only {head} of 10000"
        );
    }

    #[test]
    fn emails_get_unique_ids_and_the_thread_root() {
        let e = email(EMAIL_FIXTURES[1], "r1", 3, 9, "where is my order");
        assert!(e.starts_with("Message-ID: <lt-r1-9@loadtest.invalid>\r\n"));
        assert!(e.contains("References: <lt-r1-c3@loadtest.invalid>"));
        assert_eq!(
            e.matches("Message-Id").count() + e.matches("Subject: testing").count(),
            0
        );
        let parsed =
            envelope::normalize_email_bytes(e.as_bytes(), &Default::default(), chrono::Utc::now());
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn mix_honours_malformed_and_duplicate_rates() {
        let s = Scenario {
            duplicate_rate: 0.2,
            malformed_rate: 0.1,
            ..Scenario::default()
        };
        let mut g = Generator::new(&s, "t", 1024);
        let (mut bad, mut dup) = (0, 0);
        for _ in 0..5000 {
            match g.next_arrival() {
                Arrival::One(r) | Arrival::Concurrent(r) => {
                    bad += usize::from(r.kind.malformed());
                    dup += usize::from(r.duplicate);
                }
            }
        }
        assert!((400..600).contains(&bad), "malformed {bad}");
        assert!((850..1150).contains(&dup), "duplicates {dup}");
    }
}
