//! Fuzz the richpanel normalizer: any input must give an envelope (with SQS-valid
//! ids) or a typed error, never a panic. Run: `cargo +nightly fuzz run richpanel`.
#![no_main]

use envelope::{NormalizeConfig, Normalized, Source, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let received_at = chrono::DateTime::from_timestamp(1_766_275_200, 0).unwrap_or_default();
    if let Ok(Normalized::Envelope(env)) = normalize(
        Source::Richpanel,
        data,
        &NormalizeConfig::default(),
        received_at,
    ) {
        for id in [env.group_id(), env.dedup_id()] {
            assert!(
                id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic()),
                "{id}"
            );
        }
        // What was written must read back.
        assert!(envelope::decode(env.to_json().as_bytes()).is_ok());
    }
});
