//! Property tests: id stability, truncation, SQS-valid ids, redaction, and
//! no panic on arbitrary input.
use chrono::{DateTime, Utc};
use envelope::{
    NormalizeConfig, Normalized, Source, normalize, normalize_richpanel, redact, sqs_safe, text,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-12-21T10:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn sqs_valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic())
}

/// Serializes `fields` as a JSON object in the given key order with the given
/// whitespace between tokens.
fn render(fields: &[(String, Value)], order: &[usize], ws: &[String]) -> String {
    let mut ws = ws.iter().cycle();
    let mut next = || ws.next().cloned().unwrap_or_default();
    let mut out = format!("{}{{", next());
    for (n, &i) in order.iter().enumerate() {
        if n > 0 {
            out.push_str(&format!("{},{}", next(), next()));
        }
        let (k, v) = &fields[i];
        out.push_str(&format!("{}{}{}:{}{}", next(), json!(k), next(), next(), v));
    }
    out.push_str(&format!("{}}}{}", next(), next()));
    out
}

prop_compose! {
    fn richpanel_fields()(
        ticket in "[A-Za-z0-9_]{1,20}",
        message_id in proptest::option::of("[a-z0-9-]{1,12}"),
        text in proptest::option::of("[ -~]{1,60}"),
        tags in proptest::collection::vec("[a-z]{1,8}", 0..4),
        trigger in "[a-z_]{1,10}",
    ) -> Vec<(String, Value)> {
        let mut f = vec![
            ("ticket_id".to_owned(), json!(ticket)),
            ("trigger".to_owned(), json!(trigger)),
            ("tags".to_owned(), json!(tags)),
            ("created_at".to_owned(), json!("2025-12-21T09:59:00Z")),
        ];
        if let Some(m) = message_id { f.push(("message_id".into(), json!(m))); }
        if let Some(t) = text { f.push(("message".into(), json!(t))); }
        f
    }
}

proptest! {
    #[test]
    fn ids_are_stable_under_key_order_and_whitespace(
        fields in richpanel_fields(),
        seed in any::<u64>(),
        ws in proptest::collection::vec("[ \t\r\n]{0,3}", 1..8),
    ) {
        let cfg = NormalizeConfig::default();
        let canonical: Vec<usize> = (0..fields.len()).collect();
        let mut shuffled = canonical.clone();
        // Deterministic permutation from the seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let a = normalize_richpanel(render(&fields, &canonical, &[String::new()]).as_bytes(), &cfg, now());
        let b = normalize_richpanel(render(&fields, &shuffled, &ws).as_bytes(), &cfg, now());
        let (a, b) = (a.expect("canonical"), b.expect("reordered"));
        prop_assert_eq!(&a.event_id, &b.event_id);
        prop_assert_eq!(a.payload_hash(), b.payload_hash());
        prop_assert_eq!(a.meta.recovery, None);
    }

    #[test]
    fn truncation_never_splits_a_char(s in "\\PC{0,80}", max in 0usize..90) {
        let t = text::truncate(&s, max);
        let len = s.chars().count();
        prop_assert!(s.starts_with(&t.text));
        prop_assert_eq!(t.text.chars().count(), len.min(max));
        prop_assert_eq!(t.truncated, len > max);
        prop_assert_eq!(t.original_length, (len > max).then_some(len));
    }

    #[test]
    fn group_and_dedup_ids_are_always_sqs_valid(ticket in "\\PC{1,300}", mid in "\\PC{0,200}") {
        let body = json!({ "ticket_id": ticket, "message_id": mid }).to_string();
        if let Ok(env) = normalize_richpanel(body.as_bytes(), &NormalizeConfig::default(), now()) {
            prop_assert!(sqs_valid(&env.group_id()), "{}", env.group_id());
            prop_assert!(sqs_valid(&env.dedup_id()), "{}", env.dedup_id());
        }
        prop_assert!(sqs_valid(&sqs_safe(&ticket)));
    }

    #[test]
    fn distinct_ids_stay_distinct(a in "\\PC{0,200}", b in "\\PC{0,200}") {
        prop_assume!(a != b);
        prop_assert_ne!(sqs_safe(&a), sqs_safe(&b));
    }

    #[test]
    fn known_addresses_never_survive_redaction(
        local in "[a-z0-9][a-z0-9._+-]{0,15}",
        domain in "[a-z0-9][a-z0-9-]{0,10}\\.[a-z]{2,6}",
        before in "[ -~]{0,20}",
        after in "[ -~]{0,20}",
        phone in "\\+[1-9][0-9]{1,2} [0-9]{3} [0-9]{3} [0-9]{4}",
    ) {
        let addr = format!("{local}@{domain}");
        let text = format!("{before} {addr} {after} call {phone}");
        let out = redact::redact(&text);
        prop_assert!(!out.contains(&addr), "{}", out);
        prop_assert!(!out.contains(&phone), "{}", out);
    }

    #[test]
    fn no_normalizer_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let cfg = NormalizeConfig::default();
        for source in [Source::Richpanel, Source::Email, Source::Ses] {
            if let Ok(Normalized::Envelope(env)) = normalize(source, &body, &cfg, now()) {
                prop_assert!(sqs_valid(&env.group_id()) && sqs_valid(&env.dedup_id()));
            }
        }
        let _ = Source::detect(&body);
    }
}
