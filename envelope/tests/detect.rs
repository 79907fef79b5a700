//! `Source::detect`: what the CLI's auto-detection picks.
use envelope::Source;

#[test]
fn detects_each_source() {
    let cases: [(&[u8], Option<Source>); 7] = [
        (br#"{"ticket_id":"T"}"#, Some(Source::Richpanel)),
        (
            b"\n  {\"ticket_id\": \"T\", \"message\": \"raw\nnewline\"}",
            Some(Source::Richpanel),
        ),
        (
            br#"{"Type":"Notification","TopicArn":"arn:t"}"#,
            Some(Source::Ses),
        ),
        (
            br#"{"Records":[{"eventSource":"aws:ses"}]}"#,
            Some(Source::Ses),
        ),
        (
            b"Return-Path: <a@example.com>\r\nSubject: x\r\n\r\nbody",
            Some(Source::Email),
        ),
        (b"plain words without a header", None),
        (b"   ", None),
    ];
    for (body, expected) in cases {
        assert_eq!(
            Source::detect(body),
            expected,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn source_names_parse_back() {
    for s in [Source::Richpanel, Source::Email, Source::Ses] {
        assert_eq!(s.name().parse::<Source>(), Ok(s));
    }
    assert!("carrier".parse::<Source>().is_err());
}
