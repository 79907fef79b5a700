//! Raw email: threading, text choice, attachments, headers.
use chrono::Utc;
use envelope::{AttachmentKind, Channel, Envelope, NormalizeConfig, normalize_email_bytes};

fn email(raw: &str) -> Envelope {
    normalize_email_bytes(raw.as_bytes(), &NormalizeConfig::default(), Utc::now())
        .expect("normalizes")
}

const ROOT: &str = "From: Jane <jane@example.com>\r\nTo: support@shop.test\r\nSubject: =?utf-8?q?Caf=C3=A9_order?=\r\nMessage-ID: <root@example.com>\r\nDate: Sun, 21 Dec 2025 10:00:00 +0100\r\n\r\nWhere is it?\r\n";

#[test]
fn replies_join_the_thread_of_their_root() {
    let root = email(ROOT);
    let reply = email(
        "From: support@shop.test\r\nTo: jane@example.com\r\nSubject: Re: Cafe order\r\nMessage-ID: <r1@shop.test>\r\nIn-Reply-To: <root@example.com>\r\n\r\nOn its way.\r\n",
    );
    let second = email(
        "From: jane@example.com\r\nSubject: Re: Re\r\nMessage-ID: <r2@example.com>\r\nIn-Reply-To: <r1@shop.test>\r\nReferences: <root@example.com> <r1@shop.test>\r\n\r\nThanks\r\n",
    );
    assert_eq!(root.conversation_id, reply.conversation_id);
    assert_eq!(root.conversation_id, second.conversation_id);
    assert_ne!(root.event_id, reply.event_id);
    assert!(root.conversation_id.as_str().starts_with("email:"));
    assert_eq!(
        second.email.references,
        ["root@example.com", "r1@shop.test"]
    );
    assert_eq!(second.email.in_reply_to.as_deref(), Some("r1@shop.test"));
}

#[test]
fn headers_are_decoded() {
    let env = email(ROOT);
    assert_eq!(env.email.subject.as_deref(), Some("Café order"));
    assert_eq!(env.email.from.as_deref(), Some("jane@example.com"));
    assert_eq!(env.customer.email.as_deref(), Some("jane@example.com"));
    assert_eq!(env.email.to, ["support@shop.test"]);
    assert_eq!(env.email.message_id.as_deref(), Some("root@example.com"));
    assert_eq!(
        env.message.created_at.map(|d| d.to_rfc3339()),
        Some("2025-12-21T09:00:00+00:00".into())
    );
    assert_eq!(env.channel, Channel::Email);
    assert_eq!(env.message.text, "Where is it?");
}

#[test]
fn redelivery_and_line_endings_keep_the_id() {
    let lf = ROOT.replace("\r\n", "\n");
    assert_eq!(email(ROOT).event_id, email(&lf).event_id);
    let no_id = "From: a@example.com\r\nSubject: hi\r\n\r\nbody text\r\n";
    assert_eq!(
        email(no_id).event_id,
        email(&no_id.replace("\r\n", "\n")).event_id
    );
    assert_ne!(
        email(no_id).event_id,
        email(&no_id.replace("body", "other")).event_id
    );
}

#[test]
fn plain_text_is_preferred_and_html_is_reduced() {
    let alt = "From: a@example.com\r\nMessage-ID: <alt@x>\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain version\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html <b>version</b></p>\r\n--b--\r\n";
    assert_eq!(email(alt).message.text, "plain version");
    let html = "From: a@example.com\r\nMessage-ID: <h@x>\r\nContent-Type: text/html\r\n\r\n<html><body><p>Hello <b>there</b></p><script>x()</script></body></html>\r\n";
    let text = email(html).message.text;
    assert!(
        text.contains("Hello") && text.contains("there") && !text.contains('<'),
        "{text:?}"
    );
}

#[test]
fn attachments_are_metadata_only() {
    let raw = "From: a@example.com\r\nMessage-ID: <att@x>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOf\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"photo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n";
    let env = email(raw);
    let kinds: Vec<_> = env.message.attachments.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AttachmentKind::Pdf, AttachmentKind::Image]);
    assert_eq!(
        env.message.attachments[0].name.as_deref(),
        Some("invoice.pdf")
    );
    assert_eq!(env.message.attachments[0].size_bytes, Some(18));
    assert!(
        !env.to_json().contains("JVBERi0"),
        "no attachment bytes in the envelope"
    );
}

#[test]
fn text_without_headers_is_not_an_email() {
    let err = normalize_email_bytes(b"just some words", &NormalizeConfig::default(), Utc::now())
        .expect_err("not an email");
    assert_eq!(err.reason_code(), "invalid_email");
    let err =
        normalize_email_bytes(b"", &NormalizeConfig::default(), Utc::now()).expect_err("empty");
    assert_eq!(err.reason_code(), "invalid_email");
}
