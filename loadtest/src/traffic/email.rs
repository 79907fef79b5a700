//! Email traffic: a fixture given the identity of one simulated message.

/// A fixture with its identity headers replaced: a unique Message-ID, the
/// conversation's thread root in References, and `text` as the subject.
pub(super) fn email(fixture: &str, run: &str, conversation: usize, seq: u64, text: &str) -> String {
    let (head, body) = fixture
        .split_once("\r\n\r\n")
        .or_else(|| fixture.split_once("\n\n"))
        .unwrap_or((fixture, ""));
    // The fixture's other headers, folded lines included.
    let mut other_headers = String::new();
    let mut skipping = false;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                other_headers.push_str(line);
                other_headers.push_str("\r\n");
            }
            continue;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        skipping = matches!(
            name.as_str(),
            "message-id" | "references" | "in-reply-to" | "subject" | "from"
        );
        if !skipping {
            other_headers.push_str(line);
            other_headers.push_str("\r\n");
        }
    }
    format!(
        "Message-ID: <lt-{run}-{seq}@loadtest.invalid>\r\nReferences: <lt-{run}-c{conversation}@loadtest.invalid>\r\nFrom: Customer {conversation} <customer{conversation}@example.invalid>\r\nSubject: {text}\r\n{other_headers}\r\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::texts::EMAIL_FIXTURES;

    #[test]
    fn emails_get_unique_ids_and_the_thread_root() {
        let raw = email(EMAIL_FIXTURES[1], "r1", 3, 9, "where is my order");
        assert!(raw.starts_with("Message-ID: <lt-r1-9@loadtest.invalid>\r\n"));
        assert!(raw.contains("References: <lt-r1-c3@loadtest.invalid>"));
        assert_eq!(
            raw.matches("Message-Id").count() + raw.matches("Subject: testing").count(),
            0
        );
        let parsed = envelope::normalize_email_bytes(
            raw.as_bytes(),
            &Default::default(),
            chrono::Utc::now(),
        );
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
