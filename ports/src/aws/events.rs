//! The event log on DynamoDB: one table `<prefix>-log` (key `pk` S, `sk` N)
//! holding three kinds of items:
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | event | `s#<stream>` | seq (1..) | event_id, kind, body, recorded_at |
//! | projection | `s#<stream>` | 0 | stream, version, state |
//! | event-id guard | `e#<event_id>` | 0 | in_stream, seq |
//!
//! An append is one `TransactWriteItems`: a guard per event
//! (`attribute_not_exists` → `AlreadyAppended`), the events
//! (`attribute_not_exists`), and the projection (`version = expected`, or
//! absent when expected is 0 → `SequenceConflict`, the actual version read
//! from the ALL_OLD item in the cancellation reason). All or nothing.
//!
//! Only projection items carry `stream`, so the GSI `streams` (hash key
//! `stream`, keys only) is sparse: `list_streams` scans it — one read of
//! every stream's key per call, sorted here (cost O(streams); page with a
//! large `limit` when replaying everything).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::error::{built, condition_held, from_sdk};
use super::item::{Item, get_opt_s, get_s, get_time, get_u64, item, n, now_millis, s};
use crate::{EventStore, NewEvent, PortError, Result, StoredEvent, StoredProjection};

/// Name of the sparse GSI over projection items (see module docs).
pub const STREAMS_INDEX: &str = "streams";

#[derive(Debug, Clone)]
pub(crate) struct AwsEventStore {
    ddb: Client,
    table: String,
}

fn stream_pk(stream: &str) -> AttributeValue {
    s(format!("s#{stream}"))
}

fn guard_pk(event_id: &str) -> AttributeValue {
    s(format!("e#{event_id}"))
}

impl AwsEventStore {
    pub fn new(ddb: Client, table: &str) -> Self {
        AwsEventStore {
            ddb,
            table: table.to_owned(),
        }
    }

    fn put_new(&self, what: &str, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build();
        Ok(TransactWriteItem::builder().put(built(what, put)?).build())
    }

    /// The projection item put, conditioned on the stored version.
    fn put_projection_item(
        &self,
        stream: &str,
        expected: u64,
        version: u64,
        state: String,
    ) -> Result<Put> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(projection_item(stream, version, state)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#v = :v")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(expected))
        };
        built("projection put", put.build())
    }

    /// Turn a cancelled append into the port's error. `ids[i]` is the event
    /// id whose guard is item `i`; the projection is the last item.
    fn cancelled(
        &self,
        stream: &str,
        expected: u64,
        ids: &[String],
        reasons: &[CancellationReason],
    ) -> PortError {
        let failed = |r: &CancellationReason| r.code() == Some("ConditionalCheckFailed");
        // The version check wins, as in the embedded store: an append made
        // from a stale version also collides on derived event ids
        // (`ev:<stream>:<seq>`), and reporting that as "already appended"
        // would make a caller believe its events are in the log.
        let projection = reasons.last().filter(|r| failed(r));
        // Event items (`stream#seq`) after the guards: taken seqs are a
        // version conflict too.
        let event_failed = reasons.iter().skip(ids.len()).any(failed);
        if projection.is_some() || event_failed {
            let actual = projection
                .and_then(|r| r.item())
                .and_then(|i| get_u64(i, "version").ok())
                .unwrap_or(0);
            return PortError::SequenceConflict {
                stream: stream.to_owned(),
                expected,
                actual,
            };
        }
        for (id, r) in ids.iter().zip(reasons) {
            if failed(r) {
                return PortError::AlreadyAppended {
                    event_id: id.clone(),
                };
            }
        }
        let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
        if codes.contains(&"ValidationError") {
            PortError::Invalid(format!("append rejected ({codes:?})"))
        } else {
            // TransactionConflict (a concurrent transaction on the same
            // items), throttling, capacity: retry later.
            PortError::Unavailable(format!("append cancelled ({codes:?})"))
        }
    }
}

fn projection_item(stream: &str, version: u64, state: String) -> Item {
    item([
        ("pk", stream_pk(stream)),
        ("sk", n(0)),
        ("stream", s(stream)),
        ("version", n(version)),
        ("state", s(state)),
    ])
}

#[async_trait]
impl EventStore for AwsEventStore {
    async fn append(
        &self,
        stream: &str,
        expected_version: u64,
        events: Vec<NewEvent>,
        projection: String,
    ) -> Result<u64> {
        crate::events::check_append(stream, &events)?;
        let recorded_at = now_millis().timestamp_millis();
        let new_version = expected_version + events.len() as u64;
        let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
        let mut items = Vec::with_capacity(events.len() * 2 + 1);
        for (i, e) in events.iter().enumerate() {
            let seq = expected_version + 1 + i as u64;
            items.push(self.put_new(
                "guard put",
                item([
                    ("pk", guard_pk(&e.event_id)),
                    ("sk", n(0)),
                    // Not `stream`: that name would put guards in the GSI.
                    ("in_stream", s(stream)),
                    ("seq", n(seq)),
                ]),
            )?);
        }
        for (i, e) in events.into_iter().enumerate() {
            let seq = expected_version + 1 + i as u64;
            items.push(self.put_new(
                "event put",
                item([
                    ("pk", stream_pk(stream)),
                    ("sk", n(seq)),
                    ("event_id", s(e.event_id)),
                    ("kind", s(e.kind)),
                    ("body", s(e.body)),
                    ("recorded_at", n(recorded_at)),
                ]),
            )?);
        }
        items.push(
            TransactWriteItem::builder()
                .put(self.put_projection_item(stream, expected_version, new_version, projection)?)
                .build(),
        );
        match self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(new_version),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Err(self.cancelled(stream, expected_version, &ids, c.cancellation_reasons()))
                }
                _ => Err(from_sdk("append", e)),
            },
        }
    }

    async fn read_stream(&self, stream: &str, after: u64) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":pk", stream_pk(stream))
                .expression_attribute_values(":after", n(after))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("read_stream", e))?;
            for i in page.items() {
                out.push(StoredEvent {
                    stream: stream.to_owned(),
                    seq: get_u64(i, "sk")?,
                    event_id: get_s(i, "event_id")?,
                    kind: get_s(i, "kind")?,
                    body: get_s(i, "body")?,
                    recorded_at: get_time(i, "recorded_at")?,
                });
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn projection(&self, stream: &str) -> Result<Option<StoredProjection>> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", stream_pk(stream)), ("sk", n(0))])))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("projection get", e))?;
        out.item()
            .map(|i| {
                Ok(StoredProjection {
                    stream: stream.to_owned(),
                    version: get_u64(i, "version")?,
                    state: get_s(i, "state")?,
                })
            })
            .transpose()
    }

    async fn put_projection(&self, stream: &str, version: u64, state: String) -> Result<()> {
        let res = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(projection_item(stream, version, state)))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(version))
            .send()
            .await;
        if condition_held("put_projection", res)? {
            Ok(())
        } else {
            Err(PortError::ConditionFailed(format!(
                "projection is not at version {version}"
            )))
        }
    }

    async fn list_streams(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .ddb
                .scan()
                .table_name(&self.table)
                .index_name(STREAMS_INDEX)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("list_streams", e))?;
            names.extend(
                page.items()
                    .iter()
                    .filter_map(|i| get_opt_s(i, "stream"))
                    .filter(|name| after.is_none_or(|a| name.as_str() > a)),
            );
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        names.sort_unstable();
        names.dedup();
        names.truncate(limit);
        Ok(names)
    }

    async fn contains_event(&self, event_id: &str) -> Result<bool> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item([("pk", guard_pk(event_id)), ("sk", n(0))])))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("contains_event", e))?;
        Ok(out.item().is_some())
    }
}
