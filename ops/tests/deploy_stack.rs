//! deploy/template.yaml as a stack: cfn-lint finds nothing in it, and the
//! SAM template, translated offline to plain CloudFormation
//! (`scripts/sam-translate`), creates on the local CloudFormation server
//! (moto) a stack whose queues and tables `switchyard status` then reads.
//!
//! moto 5.2.5's CloudFormation has no implementation of three resource types
//! of the translated template: `AWS::ApiGatewayV2::Api`,
//! `AWS::ApiGatewayV2::Stage` (the HTTP API) and `AWS::CloudWatch::Alarm`.
//! It creates nothing for them and completes the stack anyway;
//! `scripts/local-aws/create-stack` reports them and this test pins that
//! list, so a moto that creates them (or a template that adds another type
//! moto lacks) is noticed. The webhook URL outputs, which name the HTTP API,
//! are therefore not checked here. The functions are created with a dummy
//! zip uploaded to moto's S3 and never invoked.
//!
//! Needs the venv of `scripts/local-aws/start` (cfn-lint, aws-sam-translator,
//! moto) and its servers, so it is an AWS-protocol test: `scripts/test` runs it.
mod common;

use std::process::Command;

use common::{create_stack, root, unique_prefix, venv_bin};

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// cfn-lint: no error, no warning, no informational finding.
#[test]
#[ignore = "AWS protocol: needs the local servers' venv; scripts/test starts them"]
fn cfn_lint_finds_nothing() {
    ports::aws::require_local_servers();
    let (ok, stdout, stderr) = run(Command::new(venv_bin("cfn-lint"))
        .arg("deploy/template.yaml")
        .current_dir(root()));
    assert!(ok, "cfn-lint failed:\n{stdout}{stderr}");
    assert_eq!(stdout.trim(), "", "cfn-lint findings:\n{stdout}{stderr}");
}

/// The translated stack creates on moto, and `switchyard status` reads it.
#[test]
#[ignore = "AWS protocol: needs the local servers; scripts/test starts them"]
fn stack_creates_on_local_cloudformation_and_status_reads_it() {
    ports::aws::require_local_servers();
    let prefix = unique_prefix("stack");
    let report = create_stack(&prefix);
    let mut skipped: Vec<String> = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|r| r["type"].as_str().expect("type").to_owned())
        .collect();
    skipped.sort();
    skipped.dedup();
    assert_eq!(
        skipped,
        [
            "AWS::ApiGatewayV2::Api",
            "AWS::ApiGatewayV2::Stage",
            "AWS::CloudWatch::Alarm"
        ],
        "the resource types moto did not create changed:\n{report}"
    );
    let outputs = &report["outputs"];
    assert_eq!(outputs["EventsQueueName"], format!("{prefix}-events.fifo"));
    assert_eq!(
        outputs["EventsDlqName"],
        format!("{prefix}-events-dlq.fifo")
    );
    assert_eq!(outputs["LedgerTable"], format!("{prefix}-ledger"));
    assert_eq!(outputs["LogTable"], format!("{prefix}-log"));
    assert_eq!(outputs["FlagsTable"], format!("{prefix}-flags"));

    // The stack's tables are on moto (its CloudFormation creates them
    // there), not on DynamoDB Local: point DynamoDB at moto for `status`.
    let moto = std::env::var("AWS_ENDPOINT_URL_SQS").expect("moto url in .local-aws/env");
    let out = assert_cmd::Command::cargo_bin("switchyard")
        .expect("binary built")
        .args(["status", "--backend", "aws", "--aws-prefix", &prefix])
        .env("AWS_ENDPOINT_URL_DYNAMODB", &moto)
        .env_remove("SWITCHYARD_BACKEND")
        .env_remove("SWITCHYARD_AWS_PREFIX")
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success();
    let status = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        status.contains(&format!("sqs {prefix}-events.fifo")),
        "status names the stack's queue:\n{status}"
    );
    assert!(status.contains("dlq          0"), "{status}");
}
