//! `switchyard normalize`: what an operator sees for good and bad input.
use std::io::Write;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/corpus");

fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let out = cargo_bin_cmd!("switchyard")
        .arg("normalize")
        .args(args)
        .write_stdin(stdin.to_vec())
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn richpanel_body_from_stdin_is_auto_detected() {
    let (code, stdout, stderr) = run(
        &[],
        br#"{"ticket_id":"T-1","message_id":"m-9","message":"hi","channel":"email"}"#,
    );
    assert_eq!(code, 0, "{stderr}");
    let env: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(env["schema_version"], 1);
    assert_eq!(env["event_id"], "evt:rp:T-1:m-9");
    assert_eq!(env["meta"]["source"], "richpanel_http_target");
}

#[test]
fn email_file_with_explicit_source() {
    let path = format!("{CORPUS}/eml/mikel-mail/attachment_emails__attachment_pdf.eml");
    let (code, stdout, stderr) = run(&["--source", "email", &path], b"");
    assert_eq!(code, 0, "{stderr}");
    let env: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(env["channel"], "email");
    assert!(
        env["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt:email:"))
    );
    assert_eq!(env["message"]["attachments"][0]["type"], "pdf");
}

#[test]
fn ses_file_is_auto_detected_and_confirmation_is_described() {
    let path = format!("{CORPUS}/ses/assembled__sns-http-envelope-with-received.json");
    let (code, stdout, _) = run(&[&path], b"");
    assert_eq!(code, 0);
    let env: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(env["meta"]["source"], "ses_sns");

    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(br#"{"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"arn:t","Token":"tok","SubscribeURL":"https://sns/confirm","Message":"","Timestamp":"T"}"#)
        .expect("write");
    let (code, stdout, _) = run(&[file.path().to_str().expect("utf-8 path")], b"");
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["kind"], "sns_subscription_confirmation");
    assert_eq!(v["subscribe_url"], "https://sns/confirm");
}

#[test]
fn invalid_input_exits_2_with_one_line_naming_the_problem() {
    let cases: [(&[&str], &[u8], &str); 4] = [
        (
            &[],
            br#"{"ticket_url":"https://x","trigger":"t"}"#,
            "no ticket id found",
        ),
        (&["--source", "ses"], b"{\"hello\":1}", "unrecognized"),
        (
            &[],
            b"just words, no headers",
            "cannot tell what the input is",
        ),
        (
            &["/nonexistent/switchyard-test-input.json"],
            b"",
            "cannot read /nonexistent",
        ),
    ];
    for (args, stdin, needle) in cases {
        let (code, stdout, stderr) = run(args, stdin);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
}

/// Output into a pipe whose reader has gone (`switchyard … | head`) ends
/// the command quietly, never with a panic.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_string_lossy().into_owned();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["status", "--data-dir", &data])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Close the read end before the command writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
