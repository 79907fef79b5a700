//! OpenAI-compatible chat completions, used to classify a message into one
//! of the caller's labels with a JSON-schema `response_format`.
use serde::{Deserialize, Serialize};

use super::{Call, decode, decode_error, url};
use crate::{Bucket, CallError, Clients, Downstream, Method};

/// The model's answer, checked: `intent` is one of the labels and
/// `confidence` is clamped to 0–1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// One of the caller's labels.
    pub intent: String,
    /// How sure the model is, 0–1.
    pub confidence: f64,
}

/// The OpenAI-compatible client (a view of [`Clients`]).
#[derive(Debug, Clone)]
pub struct OpenAi {
    ds: Clients,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}
#[derive(Deserialize)]
struct Choice {
    message: Message,
}
#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

impl OpenAi {
    pub(crate) fn new(ds: Clients) -> Self {
        OpenAi { ds }
    }

    /// The request body `classify` sends.
    pub fn request_body(model: &str, text: &str, labels: &[String]) -> serde_json::Value {
        serde_json::json!({
            "model": model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": format!(
                    "Classify the customer's message into exactly one intent from this list: {}. \
                     Answer with the intent and your confidence between 0 and 1.",
                    labels.join(", "))},
                {"role": "user", "content": text},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "classification",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "properties": {
                            "intent": {"type": "string", "enum": labels},
                            "confidence": {"type": "number"},
                        },
                        "required": ["intent", "confidence"],
                        "additionalProperties": false,
                    },
                },
            },
        })
    }

    /// `POST {base}/chat/completions`. Not a write: it runs in shadow mode.
    pub async fn classify(
        &self,
        text: &str,
        labels: &[String],
    ) -> Result<Classification, CallError> {
        if labels.is_empty() {
            return Err(CallError::Decode("no labels to classify into".into()));
        }
        let cfg = self.ds.config();
        let url = url(&cfg.openai.base_url, &["chat", "completions"])?;
        let body = Self::request_body(&cfg.openai_model, text, labels);
        let call = Call {
            ds: &self.ds,
            downstream: Downstream::Openai,
            bucket: Bucket::Openai,
        };
        let reply = call
            .send(Method::Post, url, Some(body), false, false, None)
            .await?;
        let completion: Completion = decode(reply)?;
        let content = completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| CallError::Decode("no choice in the completion".into()))?;
        let c: Classification =
            serde_json::from_str(&content).map_err(|e| decode_error("classification", &e))?;
        if !labels.contains(&c.intent) {
            return Err(CallError::Decode(
                "the model answered an intent outside the labels".into(),
            ));
        }
        let confidence = if c.confidence.is_finite() {
            c.confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Ok(Classification {
            intent: c.intent,
            confidence,
        })
    }
}
