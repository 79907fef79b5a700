//! Malformed requests: broken JSON, a bad token, an oversized or empty
//! body, a wrong content type, a tampered SES notification.
use rand::Rng;

use super::ses::tamper;
use super::{Generator, Kind, Request, Route};

impl Generator {
    /// A request the ingress must refuse with a 4xx and a reason.
    pub(super) fn malformed(&mut self) -> Request {
        let kinds = [
            Kind::BrokenJson,
            Kind::BadAuth,
            Kind::Oversized,
            Kind::WrongContentType,
            Kind::EmptyBody,
            Kind::SesBadSignature,
        ];
        // The tampered SES notification only when SES traffic is signed.
        let eligible = if self.ses_weight() > 0.0 {
            kinds.len()
        } else {
            kinds.len() - 1
        };
        let kind = kinds[self.rng.random_range(0..eligible)];
        let conversation = self.zipf.sample(&mut self.rng);
        if kind == Kind::SesBadSignature {
            self.seq += 1;
            if let Some(mut request) = self.ses(conversation) {
                request.kind = Kind::SesBadSignature;
                request.body = tamper(&request.body);
                return request;
            }
        }
        let ok_body = || {
            bytes::Bytes::from(
                serde_json::json!({"ticket_id": format!("lt-bad-{conversation}"), "trigger": "x"})
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
                let body = serde_json::json!({"ticket_id": "lt-big", "message": pad}).to_string();
                (bytes::Bytes::from(body), "application/json", true)
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
            conversation,
            duplicate: false,
        }
    }
}
