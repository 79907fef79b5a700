//! Text helpers: truncation on a character boundary, whitespace
//! normalization for hashing.

/// Result of [`truncate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// The text, cut to the limit.
    pub text: String,
    /// Whether it was cut.
    pub truncated: bool,
    /// Length in characters before cutting (only when `truncated`).
    pub original_length: Option<usize>,
}

/// Keeps at most `max_chars` characters of `text` (never splitting one).
pub fn truncate(text: &str, max_chars: usize) -> Truncated {
    match text.char_indices().nth(max_chars) {
        None => Truncated {
            text: text.to_owned(),
            truncated: false,
            original_length: None,
        },
        Some((cut, _)) => Truncated {
            text: text[..cut].to_owned(),
            truncated: true,
            original_length: Some(text.chars().count()),
        },
    }
}

/// Collapses whitespace runs to one space and trims: the form hashed into
/// content-derived ids, so re-wrapped or CRLF/LF variants hash the same.
pub fn normalize_ws(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_char_boundary_and_records_length() {
        let t = truncate("héllo wörld", 4);
        assert_eq!(t.text, "héll");
        assert!(t.truncated);
        assert_eq!(t.original_length, Some(11));
        let same = truncate("short", 5);
        assert!(!same.truncated);
        assert_eq!(same.text, "short");
    }

    #[test]
    fn whitespace_variants_normalize_equal() {
        assert_eq!(normalize_ws("a\r\n  b\tc "), normalize_ws(" a b\nc"));
    }
}
