//! Canonical JSON (object keys sorted, no whitespace) for hashing, so a hash
//! never depends on serde_json's map ordering features. Written straight
//! into the hasher: no intermediate string and no `serde_json::Value` tree
//! (building and dropping that tree was most of the hash's cost).
//!
//! The caller lists each object's members in sorted key order; scalars are
//! written by serde_json, exactly as it writes them inside a `Value`. Debug
//! builds check the order; `tests/golden/payload_hashes.tsv` pins the bytes.
use std::io::{self, Write};

use serde::Serialize;

/// `io::Write` into a SHA-256 (sha2 is built without its `std` feature).
#[derive(Default)]
pub(crate) struct Hashing(pub sha2::Sha256);

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One JSON object being written; members must come in sorted key order.
pub(crate) struct Object<'w, W: Write> {
    out: &'w mut W,
    last: Option<&'static str>,
}

impl<'w, W: Write> Object<'w, W> {
    pub(crate) fn open(out: &'w mut W) -> io::Result<Self> {
        out.write_all(b"{")?;
        Ok(Object { out, last: None })
    }

    /// Writes `"key":` (keys are plain identifiers: nothing to escape).
    fn key(&mut self, key: &'static str) -> io::Result<&mut W> {
        debug_assert!(
            self.last.is_none_or(|last| last < key),
            "canonical JSON keys out of order: {:?} then {key:?}",
            self.last
        );
        if self.last.is_some() {
            self.out.write_all(b",")?;
        }
        self.last = Some(key);
        self.out.write_all(b"\"")?;
        self.out.write_all(key.as_bytes())?;
        self.out.write_all(b"\":")?;
        Ok(&mut *self.out)
    }

    /// A member whose value is a scalar, an option of one or a list of them.
    pub(crate) fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> io::Result<()> {
        let out = self.key(key)?;
        serde_json::to_writer(out, value).map_err(io::Error::from)
    }

    /// A member serde leaves out when `None` (`skip_serializing_if =
    /// "Option::is_none"`): written only when present.
    pub(crate) fn present<T: Serialize>(
        &mut self,
        key: &'static str,
        value: &Option<T>,
    ) -> io::Result<()> {
        match value {
            Some(v) => self.field(key, v),
            None => Ok(()),
        }
    }

    /// A member whose value `write` writes (a nested object or list).
    pub(crate) fn with(
        &mut self,
        key: &'static str,
        write: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        let out = self.key(key)?;
        write(out)
    }

    pub(crate) fn close(self) -> io::Result<()> {
        self.out.write_all(b"}")
    }
}

/// A JSON list whose items `write` writes.
pub(crate) fn list<W: Write, T>(
    out: &mut W,
    items: &[T],
    mut write: impl FnMut(&mut W, &T) -> io::Result<()>,
) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write(out, item)?;
    }
    out.write_all(b"]")
}

/// The `Value`-based canonical form the hash was first defined by: the
/// reference the direct writer is tested against.
#[cfg(test)]
pub(crate) fn write_value<W: Write>(value: &serde_json::Value, out: &mut W) -> io::Result<()> {
    use serde_json::Value;
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
                    write_value(v, out)?;
                }
            }
            out.write_all(b"}")
        }
        Value::Array(items) => list(out, items, |out, v| write_value(v, out)),
        scalar => Ok(serde_json::to_writer(&mut *out, scalar)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_sorts_keys_and_drops_whitespace() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b": [1, {"z": null, "a": "x\"y"}], "a": 2.5}"#)
                .expect("json");
        let mut out = Vec::new();
        write_value(&v, &mut out).expect("writes");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"a":2.5,"b":[1,{"a":"x\"y","z":null}]}"#
        );
    }

    #[test]
    fn object_writes_members_in_the_given_order() {
        let mut out = Vec::new();
        let mut o = Object::open(&mut out).expect("writes");
        o.field("a", &Some("x\"y")).expect("writes");
        o.with("b", |w| list(w, &[1, 2], |w, n| o_num(w, *n)))
            .expect("writes");
        o.field("c", &None::<u8>).expect("writes");
        o.close().expect("writes");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            r#"{"a":"x\"y","b":[1,2],"c":null}"#
        );
    }

    fn o_num(w: &mut Vec<u8>, n: u8) -> io::Result<()> {
        serde_json::to_writer(w, &n).map_err(io::Error::from)
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of order")]
    fn unsorted_keys_are_caught_in_debug_builds() {
        let mut out = Vec::new();
        let mut o = Object::open(&mut out).expect("writes");
        o.field("b", &1).expect("writes");
        o.field("a", &2).expect("writes");
    }
}
