//! Canonical JSON (object keys sorted, no whitespace) for hashing, so a hash
//! never depends on serde_json's map ordering features. Written straight
//! into the hasher: no intermediate string.
use std::io::Write;

use serde_json::Value;

/// `io::Write` into a SHA-256 (sha2 is built without its `std` feature).
#[derive(Default)]
pub(crate) struct Hashing(pub sha2::Sha256);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn write<W: Write>(value: &Value, out: &mut W) -> std::io::Result<()> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.write_all(b"{")?;
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, k)?;
                out.write_all(b":")?;
                if let Some(v) = map.get(k) {
                    write(v, out)?;
                }
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write(v, out)?;
            }
            out.write_all(b"]")
        }
        scalar => Ok(serde_json::to_writer(&mut *out, scalar)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{"b": [1, {"z": null, "a": "x\"y"}], "a": 2.5}"#).unwrap();
        let mut out = Vec::new();
        write(&v, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":2.5,"b":[1,{"a":"x\"y","z":null}]}"#
        );
    }
}
