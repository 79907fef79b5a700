//! Valid webhooks: Richpanel (minimal or rich) and raw email; SES in
//! `ses.rs`.
use rand::Rng;

use super::email::email;
use super::texts::{EMAIL_FIXTURES, FAQ, NEUTRAL, TIER0};
use super::{Generator, Kind, Request, Route};

impl Generator {
    /// A customer's message: FAQ, Tier-0 or neutral, by the scenario's shares.
    pub(super) fn text(&mut self) -> &'static str {
        let roll: f64 = self.rng.random();
        let pool = if roll < self.scenario.faq_share {
            FAQ
        } else if roll < self.scenario.faq_share + self.scenario.tier0_share {
            TIER0
        } else {
            NEUTRAL
        };
        pool[self.rng.random_range(0..pool.len())]
    }

    /// A valid webhook of the scenario's mix: Richpanel (minimal or rich),
    /// email, or a signed SES notification.
    pub(super) fn valid(&mut self) -> Request {
        self.seq += 1;
        let conversation = self.zipf.sample(&mut self.rng);
        let mix = self.scenario.mix.clone();
        let ses = self.ses_weight();
        let roll = self.rng.random::<f64>()
            * (mix.richpanel_minimal + mix.richpanel_rich + mix.email + ses);
        let ticket = format!("lt-{}-{conversation}", self.run_id);
        if roll < mix.richpanel_minimal {
            let body = serde_json::json!({
                "ticket_id": ticket,
                "ticket_url": format!("https://app.richpanel.com/tickets/{ticket}"),
                "trigger": "customer_message",
            });
            self.json(Kind::RichpanelMinimal, conversation, body)
        } else if roll < mix.richpanel_minimal + mix.richpanel_rich {
            let text = self.text();
            let body = serde_json::json!({
                "ticket_id": ticket,
                "message_id": format!("lt-{}-m{}", self.run_id, self.seq),
                "message": text,
                "channel": "email",
                "customer_email": format!("customer{conversation}@example.invalid"),
                "created_at": chrono::Utc::now().to_rfc3339(),
                "ticket": { "tags": ["loadtest"] },
            });
            self.json(Kind::RichpanelRich, conversation, body)
        } else if roll >= mix.richpanel_minimal + mix.richpanel_rich + mix.email
            && let Some(request) = self.ses(conversation)
        {
            request
        } else {
            let text = self.text();
            let fixture = EMAIL_FIXTURES[self.rng.random_range(0..EMAIL_FIXTURES.len())];
            let raw = email(fixture, &self.run_id, conversation, self.seq, text);
            Request {
                kind: Kind::Email,
                route: Route::Email,
                content_type: "message/rfc822",
                body: raw.into(),
                good_token: true,
                conversation,
                duplicate: false,
            }
        }
    }

    /// A Richpanel webhook with this JSON body.
    pub(super) fn json(&self, kind: Kind, conversation: usize, body: serde_json::Value) -> Request {
        Request {
            kind,
            route: Route::Richpanel,
            content_type: "application/json",
            body: body.to_string().into(),
            good_token: true,
            conversation,
            duplicate: false,
        }
    }
}
