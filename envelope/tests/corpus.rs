//! Every file in the vendored corpus (testdata/corpus) (`eml/**`, `ses/*`) normalizes or fails
//! with a typed error (a panic fails the test), and a representative subset
//! matches the committed golden outputs in `tests/golden/`.
//! `UPDATE_GOLDEN=1 cargo test -p envelope --test corpus` rewrites them.
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use envelope::{NormalizeConfig, Source, normalize};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/corpus");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

fn received_at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-12-21T00:00:00Z")
        .expect("fixed time")
        .with_timezone(&Utc)
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
}

/// The normalized output as the CLI would print it, or `{error, reason}`.
fn render(source: Source, body: &[u8]) -> serde_json::Value {
    match normalize(source, body, &NormalizeConfig::default(), received_at()) {
        Ok(n) => serde_json::to_value(n).expect("serializes"),
        Err(e) => serde_json::json!({ "error": e.to_string(), "reason": e.reason_code() }),
    }
}

#[test]
fn every_eml_normalizes_or_fails_typed() {
    let mut paths = Vec::new();
    files(&Path::new(CORPUS).join("eml"), "eml", &mut paths);
    assert!(paths.len() >= 100, "corpus missing? found {}", paths.len());
    let mut ok = 0;
    for path in &paths {
        let body = std::fs::read(path).expect("read");
        match normalize(
            Source::Email,
            &body,
            &NormalizeConfig::default(),
            received_at(),
        ) {
            Ok(envelope::Normalized::Envelope(env)) => {
                ok += 1;
                assert!(
                    env.event_id.as_str().starts_with("evt:email:"),
                    "{}",
                    path.display()
                );
                assert!(env.conversation_id.as_str().starts_with("email:"));
                assert!(
                    env.message.text.chars().count() <= 4000,
                    "{}",
                    path.display()
                );
                assert_eq!(
                    env.dedup_id(),
                    env.event_id.as_str(),
                    "email ids are SQS-safe as is"
                );
                let back = envelope::decode(env.to_json().as_bytes()).expect("round trip");
                assert_eq!(back, env, "{}", path.display());
            }
            Ok(other) => panic!("{}: unexpected {other:?}", path.display()),
            Err(e) => assert!(!e.reason_code().is_empty(), "{}: {e}", path.display()),
        }
    }
    // Almost every file is a real email: a normalizer that rejects them all
    // would otherwise pass.
    assert!(
        ok * 10 >= paths.len() * 9,
        "only {ok} of {} emails normalized",
        paths.len()
    );
}

#[test]
fn every_ses_document_normalizes_or_fails_typed() {
    let mut paths = Vec::new();
    files(&Path::new(CORPUS).join("ses"), "json", &mut paths);
    assert!(paths.len() >= 10);
    for path in &paths {
        let body = std::fs::read(path).expect("read");
        assert_eq!(
            Source::detect(&body),
            Some(Source::Ses),
            "{}",
            path.display()
        );
        let out = normalize(
            Source::Ses,
            &body,
            &NormalizeConfig::default(),
            received_at(),
        );
        let out = out.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            matches!(out, envelope::Normalized::Envelope(_)),
            "{}: {out:?}",
            path.display()
        );
    }
}

const GOLDEN_CASES: &[(&str, Source, &str)] = &[
    (
        "ses/aws-docs__sns-action-received-notification.json",
        Source::Ses,
        "ses_sns_action",
    ),
    (
        "ses/aws-docs__s3-action-alert-notification.json",
        Source::Ses,
        "ses_s3_action",
    ),
    (
        "ses/assembled__sns-http-envelope-with-received.json",
        Source::Ses,
        "sns_http_envelope",
    ),
    (
        "ses/assembled__lambda-sns-event-with-received.json",
        Source::Ses,
        "lambda_sns_event",
    ),
    (
        "ses/rust-runtime__example-ses-lambda-event.json",
        Source::Ses,
        "lambda_ses_event",
    ),
    (
        "ses/lambda-go__ses-s3-event.json",
        Source::Ses,
        "lambda_ses_s3_event",
    ),
    (
        "eml/mikel-mail/attachment_emails__attachment_pdf.eml",
        Source::Email,
        "email_attachment_pdf",
    ),
    (
        "eml/mikel-mail/multi_charset__japanese_iso_2022.eml",
        Source::Email,
        "email_iso_2022_jp",
    ),
    (
        "eml/mikel-mail/error_emails__bad_encoded_subject.eml",
        Source::Email,
        "email_bad_encoded_subject",
    ),
    (
        "eml/postal-mime/bounce.eml",
        Source::Email,
        "email_bounce_report",
    ),
    (
        "eml/stalwart-dovecot/malformed-001.eml",
        Source::Email,
        "email_malformed_001",
    ),
    (
        "eml/nodemailer-mailparser/large_text.eml",
        Source::Email,
        "email_large_text",
    ),
];

#[test]
fn golden_outputs_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (input, source, name) in GOLDEN_CASES {
        let body =
            std::fs::read(Path::new(CORPUS).join(input)).unwrap_or_else(|e| panic!("{input}: {e}"));
        let actual = render(*source, &body);
        let golden = Path::new(GOLDEN).join(format!("{name}.json"));
        let pretty = serde_json::to_string_pretty(&actual).expect("json") + "\n";
        if update {
            std::fs::write(&golden, pretty).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
        // Compared as JSON values: key order and formatting do not matter.
        let expected: serde_json::Value = serde_json::from_str(&expected).expect("golden is JSON");
        if expected != actual {
            mismatches.push(format!("{name}: differs from {}", golden.display()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{mismatches:#?}\nrerun with UPDATE_GOLDEN=1 after checking the diff"
    );
}

/// Richpanel bodies for the pinned hashes: every optional field, escapes,
/// non-ASCII text, a repaired body and an id-only recovery.
const RICHPANEL_HASH_CASES: &[&str] = &[
    r#"{"ticket_id":"123_acme_9","ticket_url":"https://app.richpanel.com/123_acme_9","trigger":"new_message"}"#,
    r#"{"ticket_id": 42, "ticket_url": "https://app.richpanel.com/42", "trigger": "t", "message_id": "c-1", "message": "Where is my parcel?", "channel": "Instagram", "customer_email": "jane@example.com", "customer_phone": "+1 555 123 4567", "customer_id": "cus_9", "created_at": "2025-12-21T09:59:00.123Z", "tags": ["vip", "shipping"], "assignee_id": "u-7"}"#,
    r#"{"ticket_id":"T-7","message_id":"m\"1","message":"Größe 😀 \"quoted\" \\ back\tslash\u0001 <b>x</b>","channel":"email","tags":[]}"#,
    "{\"ticket_id\":\"T-8\",\"message_id\":\"m-2\",\"message\":\"line one\nline \"two\"\"}",
    "{\"ticket_id\":\"T-9\",\"message\":\"broken {",
];

/// The payload hash decides 200 duplicate vs 409 conflict for a
/// redelivery, including one that straddles an upgrade: every corpus
/// input's hash is pinned in `golden/payload_hashes.tsv`, so a change to
/// how the hash is computed cannot change its value unnoticed.
#[test]
fn payload_hashes_are_pinned() {
    let mut inputs: Vec<(String, Source, Vec<u8>)> = Vec::new();
    for (dir, ext, source) in [("eml", "eml", Source::Email), ("ses", "json", Source::Ses)] {
        let mut paths = Vec::new();
        files(&Path::new(CORPUS).join(dir), ext, &mut paths);
        for path in paths {
            let name = path
                .strip_prefix(CORPUS)
                .expect("under corpus")
                .display()
                .to_string();
            inputs.push((name, source, std::fs::read(&path).expect("read")));
        }
    }
    for (i, body) in RICHPANEL_HASH_CASES.iter().enumerate() {
        inputs.push((
            format!("richpanel#{i}"),
            Source::Richpanel,
            body.as_bytes().to_vec(),
        ));
    }
    let mut actual = String::new();
    let mut legacy = String::new();
    for (name, source, body) in &inputs {
        if let Ok(envelope::Normalized::Envelope(env)) =
            normalize(*source, body, &NormalizeConfig::default(), received_at())
        {
            let hash = env.payload_hash();
            let before = env.legacy_payload_hash().unwrap_or_else(|| hash.clone());
            actual.push_str(&format!("{name}\t{hash}\n"));
            legacy.push_str(&format!("{name}\t{before}\n"));
        }
    }
    let golden = Path::new(GOLDEN).join("payload_hashes.tsv");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).expect("write golden");
        return;
    }
    compare_pins(&golden, &actual);
    // The hashes records written before tags and assignee left the hash
    // carry: the ingress still matches them (`legacy_payload_hash`). Never
    // regenerated.
    compare_pins(
        &Path::new(GOLDEN).join("payload_hashes_with_labels.tsv"),
        &legacy,
    );
}

fn compare_pins(golden: &Path, actual: &str) {
    let expected = std::fs::read_to_string(golden)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", golden.display()));
    assert!(expected.lines().count() >= 100, "too few pinned hashes");
    for (want, got) in expected.lines().zip(actual.lines()) {
        assert_eq!(got, want, "payload hash changed ({})", golden.display());
    }
    assert_eq!(expected.lines().count(), actual.lines().count());
}
