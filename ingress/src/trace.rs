//! W3C trace context: continue the caller's trace, or start one.
use http::HeaderMap;

/// A `traceparent` for the queue message: the caller's trace id with a new
/// span id (this ingress hop), or a fresh trace when the request had none or
/// an invalid one. Sampled flag is kept from the caller, else set.
pub fn traceparent(headers: &HeaderMap) -> String {
    let span: [u8; 8] = rand::random();
    let span = base16ct::lower::encode_string(&span);
    if let Some((trace, flags)) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
    {
        return format!("00-{trace}-{span}-{flags}");
    }
    let trace: [u8; 16] = rand::random();
    format!("00-{}-{span}-01", base16ct::lower::encode_string(&trace))
}

/// (trace id, flags) of a valid version-00 traceparent.
fn parse(v: &str) -> Option<(&str, &str)> {
    let mut parts = v.trim().split('-');
    let (ver, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    (ver == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && nonzero(trace)
        && hex(parent, 16)
        && nonzero(parent)
        && hex(flags, 2))
    .then_some((trace, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_valid_trace_and_replaces_garbage() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("hv"),
        );
        let tp = traceparent(&h);
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!tp.contains("00f067aa0ba902b7"));
        assert!(parse(&tp).is_some());
        h.insert(
            "traceparent",
            "00-zz-00f067aa0ba902b7-01".parse().expect("hv"),
        );
        let fresh = traceparent(&h);
        assert!(parse(&fresh).is_some());
        assert!(!fresh.contains("zz"));
        assert!(parse(&traceparent(&HeaderMap::new())).is_some());
    }
}
