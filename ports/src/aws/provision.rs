//! `switchyard init --backend aws`: create whatever is missing, change
//! nothing that exists (except a queue's redrive policy when it no longer
//! matches the settings). `deploy/template.yaml` declares the same resources.
//!
//! | resource | definition |
//! |---|---|
//! | `<prefix>-events-dlq.fifo` | FIFO, ContentBasedDeduplication off, high throughput, retention 14 days |
//! | `<prefix>-events.fifo` | FIFO, ContentBasedDeduplication off, high throughput (dedup per group, limit per group id), visibility 180 s, retention 4 days, RedrivePolicy → DLQ after `max_receive_count` |
//! | `<prefix>-ledger` | PAY_PER_REQUEST, key `pk` (S), TTL on `ttl` |
//! | `<prefix>-log` | PAY_PER_REQUEST, key `pk` (S) + `sk` (N), GSI `streams` (`stream` S, keys only) |
//! | `<prefix>-flags` | PAY_PER_REQUEST, key `pk` (S) + `sk` (N) |
//! | `<prefix>-fleet` | PAY_PER_REQUEST, key `pk` (S), TTL on `ttl` |
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::error::{built, from_sdk};
pub use super::events::STREAMS_INDEX;
use super::{Clients, Names};
use crate::{AwsSettings, PortError, Result};

/// Main queue visibility timeout: 6 x the worker Lambda's 30 s timeout, as
/// AWS advises for an SQS event source (the long-running worker sets its
/// own visibility per receive and extends it while it works).
pub const QUEUE_VISIBILITY_SECS: u32 = 180;
/// FIFO high throughput (both queues): deduplication per message group...
pub const FIFO_DEDUPLICATION_SCOPE: &str = "messageGroup";
/// ...and the throughput limit per message group rather than per queue.
pub const FIFO_THROUGHPUT_LIMIT: &str = "perMessageGroupId";
/// Main queue retention: 4 days (the SQS default).
pub const QUEUE_RETENTION_SECS: u32 = 345_600;
/// DLQ retention: 14 days, the SQS maximum, so dead letters wait for a human.
pub const DLQ_RETENTION_SECS: u32 = 1_209_600;
/// The TTL attribute of the ledger and fleet tables (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "ttl";
/// How long to wait for a new table to become ACTIVE.
const TABLE_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Create what is missing. One line per resource: `created …`, `exists …`,
/// `updated …` or `enabled …`; a second run reports only `exists …`.
pub async fn provision(s: &AwsSettings) -> Result<Vec<String>> {
    let names = Names::new(&s.prefix)?;
    if s.max_receive_count == 0 {
        return Err(PortError::Invalid(
            "max_receive_count must be at least 1".into(),
        ));
    }
    let c = Clients::from_env().await;
    let mut report = Vec::new();
    let dlq_arn = ensure_dlq(&c, &names.dlq, &mut report).await?;
    ensure_queue(&c, &names.queue, &dlq_arn, s.max_receive_count, &mut report).await?;
    let (pk, sk) = (
        ("pk", ScalarAttributeType::S),
        ("sk", ScalarAttributeType::N),
    );
    ensure_table(
        &c,
        &names.ledger_table,
        std::slice::from_ref(&pk),
        false,
        &mut report,
    )
    .await?;
    ensure_ttl(&c, &names.ledger_table, &mut report).await?;
    ensure_table(
        &c,
        &names.log_table,
        &[pk.clone(), sk.clone()],
        true,
        &mut report,
    )
    .await?;
    ensure_table(
        &c,
        &names.flags_table,
        &[pk.clone(), sk],
        false,
        &mut report,
    )
    .await?;
    ensure_table(&c, &names.fleet_table, &[pk], false, &mut report).await?;
    ensure_ttl(&c, &names.fleet_table, &mut report).await?;
    Ok(report)
}

/// Create an S3 bucket if missing (raw mail is normally written by the SES
/// receipt rule into a bucket the deployment owns; tests and local setups
/// use this). Returns the report line.
pub async fn ensure_bucket(bucket: &str) -> Result<String> {
    let c = Clients::from_env().await;
    if c.s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(format!("exists s3 bucket {bucket}"));
    }
    let mut req = c.s3.create_bucket().bucket(bucket);
    if let Some(region) = c.s3.config().region().map(|r| r.as_ref().to_owned())
        && region != "us-east-1"
    {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    match req.send().await {
        Ok(_) => Ok(format!("created s3 bucket {bucket}")),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            Ok(format!("exists s3 bucket {bucket}"))
        }
        Err(e) => Err(from_sdk(&format!("create bucket {bucket}"), e)),
    }
}

/// `NotFound` (telling the operator to run init) unless `table` exists.
pub(crate) async fn require_table(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    match ddb.describe_table().table_name(table).send().await {
        Ok(_) => Ok(()),
        Err(e) => match from_sdk(&format!("describe table {table}"), e) {
            PortError::NotFound(_) => Err(PortError::NotFound(format!(
                "dynamodb table {table} does not exist: run `switchyard init --backend aws`"
            ))),
            other => Err(other),
        },
    }
}

/// The URL of queue `name`, or None when it does not exist.
async fn find_queue(c: &Clients, name: &str) -> Result<Option<String>> {
    match c.sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url().map(str::to_owned)),
        Err(e) => match from_sdk(&format!("get url of queue {name}"), e) {
            PortError::NotFound(_) => Ok(None),
            other => Err(other),
        },
    }
}

async fn queue_attribute(
    c: &Clients,
    url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>> {
    let out = c
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(|e| from_sdk("get queue attributes", e))?;
    Ok(out.attributes().and_then(|a| a.get(&name)).cloned())
}

/// A CreateQueue of a FIFO queue as both queues are: explicit deduplication
/// ids, high throughput (deduplication and throughput limit per group).
fn create_fifo_queue(
    c: &Clients,
    name: &str,
) -> aws_sdk_sqs::operation::create_queue::builders::CreateQueueFluentBuilder {
    c.sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(
            QueueAttributeName::DeduplicationScope,
            FIFO_DEDUPLICATION_SCOPE,
        )
        .attributes(
            QueueAttributeName::FifoThroughputLimit,
            FIFO_THROUGHPUT_LIMIT,
        )
}

/// Ensure the DLQ exists; returns its ARN.
async fn ensure_dlq(c: &Clients, name: &str, report: &mut Vec<String>) -> Result<String> {
    let url = match find_queue(c, name).await? {
        Some(url) => {
            report.push(format!("exists sqs queue {name}"));
            url
        }
        None => {
            let out = create_fifo_queue(c, name)
                .attributes(
                    QueueAttributeName::MessageRetentionPeriod,
                    DLQ_RETENTION_SECS.to_string(),
                )
                .send()
                .await
                .map_err(|e| from_sdk(&format!("create queue {name}"), e))?;
            report.push(format!("created sqs queue {name}"));
            out.queue_url().map(str::to_owned).ok_or_else(|| {
                PortError::Corrupt(format!("sqs returned no url for new queue {name}"))
            })?
        }
    };
    queue_attribute(c, &url, QueueAttributeName::QueueArn)
        .await?
        .ok_or_else(|| PortError::Corrupt(format!("queue {name} has no arn")))
}

fn redrive_policy(dlq_arn: &str, max_receive_count: u32) -> String {
    serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count })
        .to_string()
}

/// Whether a stored RedrivePolicy says the same as ours (SQS may format
/// numbers as strings).
fn same_policy(stored: &str, dlq_arn: &str, max_receive_count: u32) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(stored) else {
        return false;
    };
    let count = match &v["maxReceiveCount"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    };
    v["deadLetterTargetArn"].as_str() == Some(dlq_arn)
        && count == Some(u64::from(max_receive_count))
}

async fn ensure_queue(
    c: &Clients,
    name: &str,
    dlq_arn: &str,
    max_receive_count: u32,
    report: &mut Vec<String>,
) -> Result<()> {
    let policy = redrive_policy(dlq_arn, max_receive_count);
    let Some(url) = find_queue(c, name).await? else {
        create_fifo_queue(c, name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                QUEUE_VISIBILITY_SECS.to_string(),
            )
            .attributes(
                QueueAttributeName::MessageRetentionPeriod,
                QUEUE_RETENTION_SECS.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, policy)
            .send()
            .await
            .map_err(|e| from_sdk(&format!("create queue {name}"), e))?;
        report.push(format!(
            "created sqs queue {name} (dlq after {max_receive_count} receives)"
        ));
        return Ok(());
    };
    let stored = queue_attribute(c, &url, QueueAttributeName::RedrivePolicy).await?;
    if stored.is_some_and(|p| same_policy(&p, dlq_arn, max_receive_count)) {
        report.push(format!("exists sqs queue {name}"));
        return Ok(());
    }
    c.sqs
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, policy)
        .send()
        .await
        .map_err(|e| from_sdk(&format!("set redrive policy of {name}"), e))?;
    report.push(format!(
        "updated sqs queue {name}: dlq after {max_receive_count} receives"
    ));
    Ok(())
}

fn key_schema(keys: &[(&str, ScalarAttributeType)]) -> Result<Vec<KeySchemaElement>> {
    keys.iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let kind = if i == 0 {
                KeyType::Hash
            } else {
                KeyType::Range
            };
            built(
                "key schema",
                KeySchemaElement::builder()
                    .attribute_name(*name)
                    .key_type(kind)
                    .build(),
            )
        })
        .collect()
}

async fn ensure_table(
    c: &Clients,
    table: &str,
    keys: &[(&str, ScalarAttributeType)],
    streams_index: bool,
    report: &mut Vec<String>,
) -> Result<()> {
    match require_table(&c.ddb, table).await {
        Ok(()) => {
            report.push(format!("exists dynamodb table {table}"));
            return Ok(());
        }
        Err(PortError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let mut defs = keys.to_vec();
    if streams_index {
        defs.push(("stream", ScalarAttributeType::S));
    }
    let mut req = c
        .ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(keys)?));
    for (name, kind) in defs {
        req = req.attribute_definitions(built(
            "attribute definition",
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build(),
        )?);
    }
    if streams_index {
        req = req.global_secondary_indexes(built(
            "streams index",
            GlobalSecondaryIndex::builder()
                .index_name(STREAMS_INDEX)
                .set_key_schema(Some(key_schema(&[("stream", ScalarAttributeType::S)])?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build(),
        )?);
    }
    match req.send().await {
        Ok(_) => {}
        // Created by a concurrent init: fine, wait for it like our own.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(from_sdk(&format!("create table {table}"), e)),
    }
    wait_active(c, table).await?;
    report.push(format!("created dynamodb table {table}"));
    Ok(())
}

/// Wait (bounded) until the table and its indexes are ACTIVE.
async fn wait_active(c: &Clients, table: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        let out = c
            .ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| from_sdk(&format!("describe table {table}"), e))?;
        let desc = out.table();
        let table_ready = desc.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
        let indexes_ready = desc
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
        if table_ready && indexes_ready {
            return Ok(());
        }
        if start.elapsed() > TABLE_READY_TIMEOUT {
            return Err(PortError::Unavailable(format!(
                "table {table} not ACTIVE after {TABLE_READY_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn ensure_ttl(c: &Clients, table: &str, report: &mut Vec<String>) -> Result<()> {
    let out = c
        .ddb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| from_sdk(&format!("describe ttl of {table}"), e))?;
    let desc = out.time_to_live_description();
    let on = matches!(
        desc.and_then(|d| d.time_to_live_status()),
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) && desc.and_then(|d| d.attribute_name()) == Some(TTL_ATTRIBUTE);
    if on {
        report.push(format!("exists ttl {table}.{TTL_ATTRIBUTE}"));
        return Ok(());
    }
    c.ddb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(built(
            "ttl specification",
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build(),
        )?)
        .send()
        .await
        .map_err(|e| from_sdk(&format!("enable ttl on {table}"), e))?;
    report.push(format!("enabled ttl {table}.{TTL_ATTRIBUTE}"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_policy_comparison_accepts_sqs_formats() {
        let arn = "arn:aws:sqs:us-east-1:1:x-events-dlq.fifo";
        assert!(same_policy(&redrive_policy(arn, 5), arn, 5));
        let stringly = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"5"}}"#);
        assert!(same_policy(&stringly, arn, 5));
        assert!(!same_policy(&redrive_policy(arn, 5), arn, 3));
        assert!(!same_policy("not json", arn, 5));
    }
}
