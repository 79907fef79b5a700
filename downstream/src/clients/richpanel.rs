//! Richpanel REST client (`x-richpanel-key`). Field shapes follow
//! `testdata/corpus/richpanel/FIELDS.md`: snake_case except `isOperator`.
use serde::{Deserialize, Serialize};

use super::{Call, decode, decode_error, id, url};
use crate::{Bucket, CallContext, CallError, Clients, Downstream, Method, WriteOutcome};

/// A conversation as Richpanel returns it (unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Richpanel's id of the conversation.
    #[serde(deserialize_with = "id::string")]
    pub id: String,
    /// `OPEN`, `CLOSED`...
    #[serde(default)]
    pub status: Option<String>,
    /// Subject line, if any.
    #[serde(default)]
    pub subject: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The agent it is assigned to.
    #[serde(default, deserialize_with = "id::opt_string")]
    pub assignee_id: Option<String>,
    /// When it was opened (as Richpanel writes it).
    #[serde(default)]
    pub created_at: Option<String>,
    /// When it last changed.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The channel it came in through.
    #[serde(default)]
    pub via: Via,
    /// Messages, oldest first as Richpanel lists them.
    #[serde(default, alias = "messages")]
    pub comments: Vec<Comment>,
    /// Its page in Richpanel.
    #[serde(default)]
    pub url: Option<String>,
}

/// Where a conversation or message came in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Via {
    /// The channel's name (`email`, `livechat`...).
    #[serde(default)]
    pub channel: Option<String>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Richpanel's id of the message.
    #[serde(deserialize_with = "id::string")]
    pub id: String,
    /// The message as plain text.
    #[serde(default)]
    pub plain_body: Option<String>,
    /// The message as sent (may be HTML).
    #[serde(default)]
    pub body: Option<String>,
    /// When it was written.
    #[serde(default)]
    pub created_at: Option<String>,
    /// True for messages written by an agent or a bot: never acted on.
    #[serde(default, rename = "isOperator")]
    pub is_operator: bool,
    /// Who wrote it.
    #[serde(default, deserialize_with = "id::opt_string")]
    pub author_id: Option<String>,
    /// Its type, as Richpanel names it.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The channel it came in through.
    #[serde(default)]
    pub via: Via,
}

/// A reply or internal note added with an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketReply {
    /// The text.
    pub body: String,
    /// `true` = sent to the customer (customer-facing: stopped by
    /// `kill-switch=auto_replies` and safe mode); `false` = internal note.
    pub public: bool,
}

/// Fields to change; `None` leaves a field as is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TicketUpdate {
    /// Replace the tags.
    pub tags: Option<Vec<String>>,
    /// Assign to this agent.
    pub assignee_id: Option<String>,
    /// Set the status.
    pub status: Option<String>,
    /// Add a reply or note.
    pub comment: Option<TicketReply>,
}

impl TicketUpdate {
    /// The `PUT /v1/tickets/{id}` body.
    pub fn body(&self) -> serde_json::Value {
        let mut t = serde_json::Map::new();
        if let Some(tags) = &self.tags {
            t.insert("tags".into(), tags.clone().into());
        }
        if let Some(a) = &self.assignee_id {
            t.insert("assignee_id".into(), a.clone().into());
        }
        if let Some(s) = &self.status {
            t.insert("status".into(), s.clone().into());
        }
        if let Some(c) = &self.comment {
            t.insert(
                "comment".into(),
                serde_json::json!({ "body": c.body, "sender_type": "operator", "public": c.public }),
            );
        }
        serde_json::json!({ "ticket": t })
    }
}

/// Richpanel client. Get one from [`Clients::richpanel`].
#[derive(Debug, Clone)]
pub struct Richpanel {
    ds: Clients,
}

impl Richpanel {
    pub(crate) fn new(ds: Clients) -> Self {
        Richpanel { ds }
    }

    fn call(&self, bucket: Bucket) -> Call<'_> {
        Call {
            ds: &self.ds,
            downstream: Downstream::Richpanel,
            bucket,
        }
    }

    fn base(&self) -> &str {
        &self.ds.config().richpanel.base_url
    }

    /// `GET /v1/tickets/{id}` (answer `{"ticket": {...}}` or the bare ticket).
    pub async fn get_ticket(&self, ticket_id: &str) -> Result<Ticket, CallError> {
        let url = url(self.base(), &["v1", "tickets", ticket_id])?;
        let reply = self
            .call(Bucket::RichpanelRead)
            .send(Method::Get, url, None, false, false, None)
            .await?;
        let v: serde_json::Value = decode(reply)?;
        let t = v.get("ticket").cloned().unwrap_or(v);
        serde_json::from_value(t).map_err(|e| decode_error("ticket", &e))
    }

    /// `PUT /v1/tickets/{id}`. A public comment makes the write
    /// customer-facing whatever `ctx` says.
    pub async fn update_ticket(
        &self,
        ticket_id: &str,
        update: &TicketUpdate,
        ctx: &CallContext,
    ) -> Result<WriteOutcome, CallError> {
        let url = url(self.base(), &["v1", "tickets", ticket_id])?;
        let mut ctx = ctx.clone();
        ctx.customer_facing |= update.comment.as_ref().is_some_and(|c| c.public);
        let reply = self
            .call(Bucket::RichpanelWrite)
            .send(
                Method::Put,
                url,
                Some(update.body()),
                true,
                false,
                Some(ctx),
            )
            .await?;
        Ok(reply.into())
    }

    /// `PUT /v1/tickets/{id}/add-tags` with `{"tags": [...]}`.
    pub async fn add_tags(
        &self,
        ticket_id: &str,
        tags: &[String],
        ctx: &CallContext,
    ) -> Result<WriteOutcome, CallError> {
        let url = url(self.base(), &["v1", "tickets", ticket_id, "add-tags"])?;
        let body = serde_json::json!({ "tags": tags });
        let reply = self
            .call(Bucket::RichpanelWrite)
            .send(Method::Put, url, Some(body), true, false, Some(ctx.clone()))
            .await?;
        Ok(reply.into())
    }

    /// `GET /v1/order/{conversation_id}`: the order Richpanel linked to the
    /// conversation, as returned (`None` on 404). Optional enrichment: off
    /// in safe mode.
    pub async fn order_lookup(
        &self,
        conversation_id: &str,
    ) -> Result<Option<serde_json::Value>, CallError> {
        let url = url(self.base(), &["v1", "order", conversation_id])?;
        match self
            .call(Bucket::RichpanelRead)
            .send(Method::Get, url, None, false, true, None)
            .await
        {
            Ok(reply) => {
                let v: serde_json::Value = decode(reply)?;
                Ok(Some(v.get("order").cloned().unwrap_or(v)))
            }
            Err(CallError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
