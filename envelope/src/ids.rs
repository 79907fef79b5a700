//! Newtype ids and the hashing that keeps them inside SQS's and DynamoDB's
//! limits.
//!
//! SQS `MessageGroupId` / `MessageDeduplicationId`: 1..=128 characters from
//! ASCII `!`..=`~` (alphanumerics and punctuation). [`sqs_safe`] passes a
//! valid id through unchanged and maps anything else (too long, empty,
//! spaces, non-ASCII, or starting with `~`) to `~<readable prefix>~<sha256>`,
//! at most 106 characters. Passed-through ids never start with `~`, so a
//! hashed form can never collide with a raw one.
//!
//! Ids a sender chooses (a Richpanel ticket id, a message id) become parts
//! of storage keys: the ledger's partition key is the event id (DynamoDB:
//! ≤ 2048 bytes), the event log's are `s#<conversation>` and `e#<event id>`.
//! [`bounded_id`] keeps such a part as sent up to [`MAX_ID_BYTES`] and maps
//! a longer one to the same hashed form, so an event id is at most
//! `evt:rp:` + 256 + `:` + 256 bytes whatever the sender wrote, and a retry
//! still maps to the same id. Only an id that already has the hashed shape
//! is hashed below the bound (so it cannot collide with a hashed one).
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest id SQS accepts for group and deduplication ids.
pub const SQS_ID_MAX: usize = 128;
/// Longest sender-chosen id part (ticket id, message id) kept as sent, in
/// bytes; see [`bounded_id`]. Real ids are far shorter (Richpanel's are
/// UUID-sized).
pub const MAX_ID_BYTES: usize = 256;
const READABLE_PREFIX: usize = 40;
/// `~` + 64 hex digits: the tail of every hashed form.
const HASH_TAIL: usize = 65;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an already-derived id (no validation: ids are opaque).
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The event's identity: `evt:rp:<conversation>:<message id | hash>` or
    /// `evt:email:<thread hash>:<message hash>`. Two deliveries of the same
    /// webhook or email get the same id.
    EventId
);
string_id!(
    /// One conversation = one ordered stream: a Richpanel ticket id, or
    /// `email:<thread hash>` for email threads.
    ConversationId
);

/// Lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    base16ct::lower::encode_string(&Sha256::digest(data))
}

/// First 32 hex characters (128 bits) of sha256: enough to identify, short
/// enough to keep ids readable.
pub(crate) fn short_hash(data: &[u8]) -> String {
    let mut h = sha256_hex(data);
    h.truncate(32);
    h
}

/// Is `c` allowed in an SQS group/deduplication id?
pub fn is_sqs_id_char(c: char) -> bool {
    c.is_ascii_graphic()
}

/// `id` unchanged when SQS accepts it as a group/dedup id, otherwise a
/// stable hashed form (see the module doc). Never fails.
pub fn sqs_safe(id: &str) -> String {
    let valid = !id.is_empty()
        && id.len() <= SQS_ID_MAX
        && !id.starts_with('~')
        && id.chars().all(is_sqs_id_char);
    if valid {
        return id.to_owned();
    }
    hashed(id)
}

/// `id` unchanged when it is at most [`MAX_ID_BYTES`] long (and not already
/// shaped like a hashed id), otherwise `~<readable prefix>~<sha256>` (at most
/// 106 bytes). Deterministic, so a retry maps to the same id.
pub fn bounded_id(id: &str) -> String {
    if id.len() <= MAX_ID_BYTES && !looks_hashed(id) {
        return id.to_owned();
    }
    hashed(id)
}

fn hashed(id: &str) -> String {
    let prefix: String = id
        .chars()
        .filter(|c| is_sqs_id_char(*c) && *c != '~')
        .take(READABLE_PREFIX)
        .collect();
    format!("~{prefix}~{}", sha256_hex(id.as_bytes()))
}

/// Has `id` the shape [`hashed`] gives: `~<prefix>~<64 lower-case hex>`?
fn looks_hashed(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() > HASH_TAIL
        && b[0] == b'~'
        && b[b.len() - HASH_TAIL] == b'~'
        && b[b.len() - HASH_TAIL + 1..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_pass_through() {
        assert_eq!(sqs_safe("evt:rp:123_acme_9:m1"), "evt:rp:123_acme_9:m1");
    }

    #[test]
    fn odd_ids_are_hashed_and_valid() {
        for id in ["", "with space", "ünïcode", "~tilde", &"x".repeat(129)] {
            let s = sqs_safe(id);
            assert!(s.len() <= SQS_ID_MAX && s.starts_with('~'), "{s}");
            assert!(s.chars().all(is_sqs_id_char), "{s}");
        }
        assert_ne!(sqs_safe("a b"), sqs_safe("a  b"));
    }

    #[test]
    fn long_ids_are_bounded_and_short_ones_kept() {
        assert_eq!(bounded_id("T-1 ünï ~x"), "T-1 ünï ~x");
        let long = "é".repeat(MAX_ID_BYTES);
        let b = bounded_id(&long);
        assert!(b.len() <= 106 && b.starts_with('~'), "{b}");
        assert_eq!(b, bounded_id(&long), "deterministic");
        // A sender cannot forge a hashed id to alias a long one.
        assert_ne!(bounded_id(&b), b);
        assert!(looks_hashed(&b) && !looks_hashed("~short~"));
    }
}
