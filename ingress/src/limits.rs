//! Request limits: content type (415) and body size (413), checked before
//! anything is parsed.
//!
//! A 413 must reach a sender that is still sending: hyper closes a
//! connection whose request body was not read to the end, the sender's next
//! write is refused (`Broken pipe` / connection reset), and a sender that
//! sees a reset retries where one that reads 413 gives up. So the rest of an
//! oversized body is read and discarded first, up to [`DRAIN_MAX_BYTES`] and
//! [`DRAIN_MAX_TIME`]; past either bound the connection is closed anyway.
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;

use crate::error::Reject;

/// Most bytes of an oversized body read and discarded before the 413.
const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Longest time spent discarding an oversized body before the 413.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

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
/// `Content-Length` first, then while reading), after draining the rest.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
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
        drain(headers, body, declared).await;
        return Err(too_large());
    }
    let mut parts: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| Reject::bad_request("body_read", "the request body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            drain(headers, body, None).await;
            return Err(too_large());
        }
        parts.push(data);
    }
    // Most bodies arrive in one frame: no copy then.
    if parts.len() <= 1 {
        return Ok(parts.pop().unwrap_or_default());
    }
    let mut whole = BytesMut::with_capacity(len);
    for part in parts {
        whole.extend_from_slice(&part);
    }
    Ok(whole.freeze())
}

/// Read and discard the rest of `body`, within [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_MAX_TIME`] (see the module doc).
async fn drain(headers: &HeaderMap, mut body: Body, declared: Option<u64>) {
    // A sender waiting for `100 Continue` has sent no body and reads the
    // answer at once (hyper sends the 100 only when the body is read).
    let waits_for_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if waits_for_continue || declared.is_some_and(|n| n > DRAIN_MAX_BYTES) {
        return;
    }
    let discard = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > DRAIN_MAX_BYTES {
                    return;
                }
            }
        }
    };
    // Past the time bound the connection is closed, as without draining.
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, discard).await;
}
