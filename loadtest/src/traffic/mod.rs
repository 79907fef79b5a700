//! What to send: a deterministic generator of webhook requests with Zipf
//! conversation popularity, a channel mix, FAQ / Tier-0 texts, duplicates
//! (also concurrent ones) and malformed requests. SES receipt notifications
//! are signed by the harness's own SNS ([`crate::sns::Signer`]).
//!
//! # Layout
//! - `mod.rs` — the request types and the [`Generator`]'s arrivals
//!   (valid, duplicate or malformed).
//! - `zipf.rs` — conversation popularity.
//! - `texts.rs` — message texts and email fixtures.
//! - `webhooks.rs` — valid Richpanel and email webhooks.
//! - `email.rs` — a fixture turned into one simulated message.
//! - `ses.rs` — signed (and tampered) SES notifications.
//! - `malformed.rs` — requests the ingress must refuse.
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::scenario::Scenario;
use crate::sns::Signer;

mod email;
mod malformed;
mod ses;
mod texts;
mod webhooks;
mod zipf;

use zipf::Zipf;

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
            other => other,
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
        let scenario = &self.scenario;
        let roll: f64 = self.rng.random();
        if roll < scenario.malformed_rate {
            return Arrival::One(self.malformed());
        }
        if roll < scenario.malformed_rate + scenario.duplicate_rate && !self.recent.is_empty() {
            let concurrent = self.rng.random::<f64>() < scenario.concurrent_duplicate_share;
            let index = self.rng.random_range(0..self.recent.len());
            let mut request = self.recent[index].clone();
            request.duplicate = true;
            return if concurrent {
                Arrival::Concurrent(request)
            } else {
                Arrival::One(request)
            };
        }
        let request = self.valid();
        if self.recent.len() < RECENT {
            self.recent.push(request.clone());
        } else {
            let index = self.rng.random_range(0..RECENT);
            self.recent[index] = request.clone();
        }
        Arrival::One(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_honours_malformed_and_duplicate_rates() {
        let scenario = Scenario {
            duplicate_rate: 0.2,
            malformed_rate: 0.1,
            ..Scenario::default()
        };
        let mut generator = Generator::new(&scenario, "t", 1024);
        let (mut bad, mut dup) = (0, 0);
        for _ in 0..5000 {
            match generator.next_arrival() {
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
