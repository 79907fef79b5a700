//! Redaction before logging: every crate passes customer text through
//! [`redact`] and ids that may embed PII through [`hash_id`] before they
//! reach a log line.
//!
//! Masks email addresses (`[email]`), phone numbers in international
//! (`+44 20 7946 0958`) and US formats (`(555) 123-4567`, `555.123.4567`,
//! `5551234567`) as `[phone]`, and order numbers (`#1234`, `order 12345`,
//! `Order No: A-1234`) as `[order]`. It errs towards masking: a bare
//! 10-digit number is masked even when it is not a phone number.
use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

use crate::ids::sha256_hex;

struct Patterns {
    email: Regex,
    order: Regex,
    hash_number: Regex,
    intl_phone: Regex,
    us_phone: Regex,
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    Some(Patterns {
        email: Regex::new(r"[\w.!#$%&'*+/=?^`{|}~\-]+@[\w\-]+(?:\.[\w\-]+)+").ok()?,
        order: Regex::new(
            r"(?i)\b(order(?:\s*(?:number|num|no\.?|id))?\s*[:#]?\s*)[A-Z0-9][A-Z0-9\-]*\d[A-Z0-9\-]*",
        )
        .ok()?,
        hash_number: Regex::new(r"#\d{3,}").ok()?,
        intl_phone: Regex::new(r"\+\d(?:[\s.\-()]{0,2}\d){6,14}").ok()?,
        us_phone: Regex::new(r"(?:\b1[\s.\-]?)?(?:\(\d{3}\)|\b\d{3})[\s.\-]?\d{3}[\s.\-]?\d{4}\b")
            .ok()?,
    })
});

/// `text` with emails, phone numbers and order numbers masked. Borrowed when
/// nothing needed masking.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Some(p) = PATTERNS.as_ref() else {
        // The patterns are constants and compile; if they ever did not,
        // logging nothing is the safe answer.
        return Cow::Borrowed("[redacted]");
    };
    let mut out = Cow::Borrowed(text);
    replace(&mut out, &p.email, "[email]");
    replace(&mut out, &p.order, "${1}[order]");
    replace(&mut out, &p.hash_number, "#[order]");
    replace(&mut out, &p.intl_phone, "[phone]");
    replace(&mut out, &p.us_phone, "[phone]");
    out
}

fn replace(text: &mut Cow<'_, str>, re: &Regex, with: &str) {
    if let Cow::Owned(s) = re.replace_all(text, with) {
        *text = Cow::Owned(s);
    }
}

/// An id as it may appear in a log line or span: as is, unless it could
/// carry an address or phone number (an email Message-ID, a ticket id
/// that is an address), then [`hash_id`] of it — the same id always logs
/// the same way, so lines can still be joined on it.
pub fn log_id(id: &str) -> String {
    if id.contains('@') || redact(id) != id {
        hash_id(id)
    } else {
        id.to_owned()
    }
}

/// The text of `value` (an error, a reason) with PII masked by [`redact`]:
/// for every error and reason field of a log line, since an error's text
/// may quote an id, a key or a downstream's answer.
pub fn redacted(value: impl std::fmt::Display) -> String {
    let text = value.to_string();
    match redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(masked) => masked,
    }
}

/// A short stable hash (`h:` + 12 hex characters) for logging an id that
/// may embed PII (an email thread id, a customer id).
pub fn hash_id(s: &str) -> String {
    let mut h = sha256_hex(s.as_bytes());
    h.truncate(12);
    format!("h:{h}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_known_pii() {
        let cases = [
            ("mail jane.doe+vip@example.co.uk now", "jane.doe"),
            ("call +44 20 7946 0958 today", "7946"),
            ("call (555) 123-4567", "123-4567"),
            ("call 555.123.4567", "555.123"),
            ("call 1-555-123-4567", "555-123"),
            ("where is order 12345?", "12345"),
            ("Order No: A-98765 late", "98765"),
            ("re #4411 refund", "4411"),
        ];
        for (input, secret) in cases {
            let out = redact(input);
            assert!(!out.contains(secret), "{input:?} -> {out:?}");
        }
        assert_eq!(redact("hello there"), "hello there");
        assert!(matches!(redact("hello"), Cow::Borrowed(_)));
    }

    #[test]
    fn dates_survive() {
        assert_eq!(redact("on 2025-12-21 at 10:00"), "on 2025-12-21 at 10:00");
    }

    #[test]
    fn hash_id_is_short_and_stable() {
        assert_eq!(hash_id("a@b.c"), hash_id("a@b.c"));
        assert_ne!(hash_id("a@b.c"), hash_id("a@b.d"));
        assert_eq!(hash_id("x").len(), 14);
    }
}
