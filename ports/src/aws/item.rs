//! DynamoDB attribute helpers shared by the table adapters.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::{PortError, Result};

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Build an item or key from (name, value) pairs.
pub(crate) fn item<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

pub(crate) fn get_s(item: &Item, key: &str) -> Result<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(missing(key)),
    }
}

pub(crate) fn get_opt_s(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(crate) fn get_u64(item: &Item, key: &str) -> Result<u64> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| PortError::Corrupt(format!("attribute {key}: {v:?} is not a count"))),
        _ => Err(missing(key)),
    }
}

/// A timestamp stored as milliseconds since the epoch.
pub(crate) fn get_time(item: &Item, key: &str) -> Result<DateTime<Utc>> {
    let ms = match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map_err(|_| PortError::Corrupt(format!("attribute {key}: {v:?} is not a time")))?,
        _ => return Err(missing(key)),
    };
    from_millis(ms)
}

pub(crate) fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| PortError::Corrupt(format!("time {ms} ms is out of range")))
}

/// Now, truncated to the millisecond precision the tables store, so that a
/// record returned from a write equals the same record read back.
pub(crate) fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

fn missing(key: &str) -> PortError {
    PortError::Corrupt(format!("item lacks attribute {key} of the expected type"))
}
