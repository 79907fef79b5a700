//! Helpers shared by the Richpanel normalizer's test files.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use envelope::{Envelope, NormalizeConfig, NormalizeError, normalize_richpanel};

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

pub fn rp(body: &str, received: DateTime<Utc>) -> Result<Envelope, NormalizeError> {
    normalize_richpanel(body.as_bytes(), &NormalizeConfig::default(), received)
}

pub const T0: &str = "2025-12-21T10:00:05Z";
