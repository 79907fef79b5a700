//! Request limits: content type (415) and body size (413), checked before
//! anything is parsed.
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use crate::error::Reject;

/// 415 unless the media type (parameters ignored) is one of `allowed`.
pub(crate) fn content_type(headers: &HeaderMap, allowed: &[&str]) -> Result<(), Reject> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match media {
        Some(m) if allowed.contains(&m.as_str()) => Ok(()),
        _ => Err(Reject::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be one of: {}", allowed.join(", ")),
        )),
    }
}

/// The whole body, or 413 once it passes `limit` bytes (checked against
/// `Content-Length` first, then while reading).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Reject> {
    let too_large = || {
        Reject::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds the {limit}-byte limit of this route"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let is_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if is_limit {
                Err(too_large())
            } else {
                Err(Reject::bad_request(
                    "body_read",
                    "the request body could not be read",
                ))
            }
        }
    }
}
