//! Repairing Richpanel bodies that were not JSON-escaped: Richpanel fills
//! template placeholders verbatim, so message text may carry raw newlines,
//! tabs or quotes inside JSON strings.

/// Escapes raw control characters inside strings and quotes that do not
/// close a string (a closing quote is followed by `,` `}` `]` `:` or the end,
/// ignoring whitespace). Valid JSON comes out unchanged.
pub(crate) fn repair(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + 16);
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !in_str {
            in_str = b == b'"';
            out.push(b);
            i += 1;
            continue;
        }
        match b {
            b'\\' => match bytes.get(i + 1) {
                Some(n) if b"\"\\/bfnrtu".contains(n) => {
                    out.extend_from_slice(&[b'\\', *n]);
                    i += 2;
                    continue;
                }
                _ => out.extend_from_slice(b"\\\\"),
            },
            b'"' => {
                let next = bytes[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
                if matches!(next, None | Some(b',' | b'}' | b']' | b':')) {
                    in_str = false;
                    out.push(b'"');
                } else {
                    out.extend_from_slice(b"\\\"");
                }
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if c < 0x20 => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
        i += 1;
    }
    // Only ASCII bytes were inserted into valid UTF-8, so this is lossless.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::repair;

    #[test]
    fn raw_newlines_and_quotes_become_valid_json() {
        let body = "{\"ticket_id\": \"T1\", \"message\": \"line one\nhe said \"hi\" ok\tbye\"}";
        let fixed = repair(body);
        let v: serde_json::Value = serde_json::from_str(&fixed).expect("repaired");
        assert_eq!(v["message"], "line one\nhe said \"hi\" ok\tbye");
    }

    #[test]
    fn valid_json_is_unchanged() {
        let body = r#"{"a": "x\"y\n", "b": [1, "c"]}"#;
        assert_eq!(repair(body), body);
    }
}
