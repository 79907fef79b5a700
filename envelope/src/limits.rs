//! Size limits that keep every envelope storable on both backends: the
//! AWS one holds an envelope in one SQS message (256 KiB including its
//! attributes), the embedded one enforces the same limits so that a body
//! gets the same answer on either.
//!
//! - Id parts a sender chooses are bounded by hashing
//!   ([`crate::bounded_id`]).
//! - Lists are capped at [`MAX_LIST_ITEMS`] entries (`richpanel.tags`,
//!   `email.to`, `email.cc`, `email.references`, `message.attachments`):
//!   the first ones are kept (for references the first, the thread root,
//!   and the latest).
//! - The encoded envelope is at most [`MAX_ENCODED_BYTES`]; larger ones are
//!   refused ([`crate::NormalizeError::EnvelopeTooLarge`], a 413).

/// Most entries kept in each list field of an envelope.
pub const MAX_LIST_ITEMS: usize = 100;

/// Largest envelope JSON, in bytes: SQS's 262,144 bytes per message (body
/// plus attribute names, types and values) minus 8 KiB for the attributes:
/// `event_id` (≤ 520 bytes), `traceparent`, `source`, and what the DLQ adds
/// when the message is dead-lettered (`dlq_reason` up to 4 KiB, `dlq_meta`)
/// or redriven (`dedup_id`).
pub const MAX_ENCODED_BYTES: usize = 248 * 1024;

/// Keeps the first [`MAX_LIST_ITEMS`] entries.
pub(crate) fn cap<T>(mut items: Vec<T>) -> Vec<T> {
    items.truncate(MAX_LIST_ITEMS);
    items
}

/// Keeps the first entry and the latest `MAX_LIST_ITEMS - 1` (RFC 5322
/// §3.6.4: the thread root and the most recent parents).
pub(crate) fn cap_keeping_first_and_last<T>(mut items: Vec<T>) -> Vec<T> {
    if items.len() > MAX_LIST_ITEMS {
        items.drain(1..items.len() - (MAX_LIST_ITEMS - 1));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_keep_the_documented_entries() {
        let items: Vec<usize> = (0..250).collect();
        assert_eq!(cap(items.clone()), (0..100).collect::<Vec<_>>());
        let refs = cap_keeping_first_and_last(items);
        assert_eq!(refs.len(), MAX_LIST_ITEMS);
        assert_eq!((refs[0], refs[1], refs[99]), (0, 151, 249));
        assert_eq!(cap_keeping_first_and_last(vec![1, 2]), [1, 2]);
    }
}
