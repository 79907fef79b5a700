//! What to send: a deterministic generator of webhook requests with Zipf
//! conversation popularity, a channel mix, FAQ / Tier-0 texts, duplicates
//! (also concurrent ones) and malformed requests. SES receipt notifications
//! are signed by the harness's own SNS ([`crate::sns::Signer`]).
use std::sync::Arc;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::scenario::Scenario;
use crate::sns::Signer;

/// The routes the harness sends to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    #[default]
    Richpanel,
    Email,
    Ses,
}

impl Route {
    pub fn path(self) -> &'static str {
        match self {
            Route::Richpanel => "/webhooks/richpanel",
            Route::Email => "/webhooks/email",
            Route::Ses => "/webhooks/ses",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Richpanel => "richpanel",
            Route::Email => "email",
            Route::Ses => "ses",
        }
    }
    /// The route whose conversations this one's share: an SES notification
    /// carries an email of the same simulated thread as the email route
    /// (same thread root, so the same stream in the log).
    pub fn thread(self) -> Route {
        match self {
            Route::Ses => Route::Email,
            r => r,
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
    Ses,
    BrokenJson,
    BadAuth,
    Oversized,
    WrongContentType,
    EmptyBody,
    /// A signed SES notification altered after signing (expect 401).
    SesBadSignature,
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
                | Kind::SesBadSignature
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RichpanelMinimal => "richpanel_minimal",
            Kind::RichpanelRich => "richpanel_rich",
            Kind::Email => "email",
            Kind::Ses => "ses",
            Kind::BrokenJson => "broken_json",
            Kind::BadAuth => "bad_auth",
            Kind::Oversized => "oversized",
            Kind::WrongContentType => "wrong_content_type",
            Kind::EmptyBody => "empty_body",
            Kind::SesBadSignature => "ses_bad_signature",
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
    /// Signs SES notifications; without it the `ses` share is not sent.
    signer: Option<Arc<Signer>>,
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
            signer: None,
        }
    }

    /// Send the scenario's `ses` share as notifications signed by `signer`
    /// (and some tampered ones among the malformed requests).
    pub fn with_signer(mut self, signer: Arc<Signer>) -> Generator {
        self.signer = Some(signer);
        self
    }

    /// The `ses` weight actually used: zero without a signer.
    fn ses_weight(&self) -> f64 {
        if self.signer.is_some() {
            self.scenario.mix.ses
        } else {
            0.0
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
        let ses = self.ses_weight();
        let u = self.rng.random::<f64>() * (m.richpanel_minimal + m.richpanel_rich + m.email + ses);
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
        } else if u >= m.richpanel_minimal + m.richpanel_rich + m.email
            && let Some(r) = self.ses(conv)
        {
            r
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

    /// A signed SES receipt notification (SNS action, inline base64
    /// content) carrying a fresh email of conversation `conv`. `None` (the
    /// arrival becomes a plain email) without a signer or when signing fails.
    fn ses(&mut self, conv: usize) -> Option<Request> {
        let text = self.text();
        let fixture = EMAIL_FIXTURES[self.rng.random_range(0..EMAIL_FIXTURES.len())];
        let raw = email(fixture, &self.run_id, conv, self.seq, text);
        let sns_id = uuid_like(&mut self.rng);
        let signer = self.signer.as_ref()?;
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let ses_id = format!("lt{}{:012}", self.run_id, self.seq);
        let message = ses_receipt(&raw, &ses_id, conv, &now).to_string();
        match signer.notification(
            &sns_id,
            "Amazon SES Email Receipt Notification",
            message,
            &now,
        ) {
            Ok(doc) => Some(Request {
                kind: Kind::Ses,
                route: Route::Ses,
                content_type: SNS_CONTENT_TYPE,
                body: doc.to_string().into(),
                good_token: true,
                conversation: conv,
                duplicate: false,
            }),
            Err(e) => {
                eprintln!(
                    "loadtest: SES notification not signed ({e:#}); sending an email instead"
                );
                None
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
            Kind::SesBadSignature,
        ];
        let n = if self.ses_weight() > 0.0 {
            kinds.len()
        } else {
            kinds.len() - 1
        };
        let kind = kinds[self.rng.random_range(0..n)];
        let conv = self.zipf.sample(&mut self.rng);
        if kind == Kind::SesBadSignature {
            self.seq += 1;
            if let Some(mut r) = self.ses(conv) {
                r.kind = Kind::SesBadSignature;
                r.body = tamper(&r.body);
                return r;
            }
        }
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

/// What SNS sends HTTP subscribers.
const SNS_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

/// An SNS-style message id (UUID shape) from the run's random stream.
fn uuid_like(rng: &mut StdRng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The SES receipt notification of the SNS action with `BASE64` encoding,
/// in the shape of the corpus's `aws-docs__sns-action-received-notification`:
/// `receipt`, `mail` (header list and common headers taken from `raw`) and
/// the whole email inline in `content`.
fn ses_receipt(raw: &str, ses_id: &str, conv: usize, now: &str) -> serde_json::Value {
    let head = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .map_or(raw, |(h, _)| h);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let recipient = "support@loadtest.invalid";
    let mut common = serde_json::json!({
        "returnPath": format!("customer{conv}@example.invalid"),
        "from": [get("From").unwrap_or_default()],
        "to": [get("To").unwrap_or_else(|| recipient.to_owned())],
        "messageId": get("Message-ID").unwrap_or_default(),
        "subject": get("Subject").unwrap_or_default(),
    });
    if let Some(date) = get("Date") {
        common["date"] = serde_json::Value::String(date);
    }
    let verdict = serde_json::json!({"status": "PASS"});
    serde_json::json!({
        "notificationType": "Received",
        "receipt": {
            "timestamp": now,
            "processingTimeMillis": 222,
            "recipients": [recipient],
            "spamVerdict": verdict,
            "virusVerdict": verdict,
            "spfVerdict": verdict,
            "dkimVerdict": verdict,
            "dmarcVerdict": verdict,
            "action": {
                "type": "SNS",
                "topicArn": crate::sns::TOPIC_ARN,
                "encoding": "BASE64",
            },
        },
        "mail": {
            "timestamp": now,
            "source": format!("customer{conv}@example.invalid"),
            "messageId": ses_id,
            "destination": [recipient],
            "headersTruncated": false,
            "headers": headers
                .iter()
                .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
                .collect::<Vec<_>>(),
            "commonHeaders": common,
        },
        "content": base64::engine::general_purpose::STANDARD.encode(raw),
    })
}

/// A signed SNS body with its `Message` changed after signing: the
/// signature no longer matches (the ingress answers 401).
fn tamper(body: &bytes::Bytes) -> bytes::Bytes {
    let mut doc: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(m) = doc.get("Message").and_then(|m| m.as_str()) {
        let changed = m.replacen("support@loadtest.invalid", "attacker@loadtest.invalid", 1);
        let same = changed == m;
        doc["Message"] = serde_json::Value::String(changed);
        if same {
            doc["Subject"] = serde_json::Value::String("altered".into());
        }
    }
    doc.to_string().into()
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

    #[tokio::test]
    async fn ses_notifications_verify_and_share_the_email_thread() {
        let signer = Arc::new(Signer::start("127.0.0.1:0").await.expect("signer"));
        let s = Scenario {
            mix: crate::scenario::Mix {
                richpanel_minimal: 0.0,
                richpanel_rich: 0.0,
                email: 0.0,
                ses: 1.0,
            },
            duplicate_rate: 0.0,
            malformed_rate: 0.0,
            ..Scenario::default()
        };
        let mut g = Generator::new(&s, "t", 1024).with_signer(signer);
        let Arrival::One(r) = g.next_arrival() else {
            panic!("one request expected");
        };
        assert_eq!((r.kind, r.route), (Kind::Ses, Route::Ses));
        assert_eq!(r.content_type, "text/plain; charset=UTF-8");
        let cfg = envelope::NormalizeConfig::default();
        let ses = match envelope::normalize_ses(&r.body, &cfg, chrono::Utc::now()) {
            Ok(envelope::Normalized::Envelope(env)) => env,
            other => panic!("not an envelope: {other:?}"),
        };
        // The inline content is the harness's email of the same conversation.
        let raw = email(EMAIL_FIXTURES[0], "t", r.conversation, 99, "hi");
        let direct = envelope::normalize_email_bytes(raw.as_bytes(), &cfg, chrono::Utc::now())
            .expect("email normalizes");
        assert_eq!(ses.conversation_id, direct.conversation_id);
        assert_ne!(ses.event_id, direct.event_id);
        let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        let inner: serde_json::Value =
            serde_json::from_str(doc["Message"].as_str().expect("Message")).expect("inner json");
        assert_eq!(inner["receipt"]["action"]["type"], "SNS");
        assert_eq!(inner["receipt"]["action"]["encoding"], "BASE64");
        assert_ne!(tamper(&r.body), r.body);
        // Without a signer the ses share falls back to nothing unsigned.
        let mut plain = Generator::new(&s, "t", 1024);
        let Arrival::One(p) = plain.next_arrival() else {
            panic!("one request expected");
        };
        assert_ne!(p.route, Route::Ses);
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
