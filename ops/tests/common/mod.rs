//! What the stack tests share: the workspace root and a stack created on
//! the local CloudFormation (`scripts/local-aws/create-stack`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A program of the venv `scripts/local-aws/start` installs.
pub fn venv_bin(name: &str) -> PathBuf {
    root().join(".local-aws/venv/bin").join(name)
}

/// A stack name and prefix no other run uses: `tag`, this process, the clock.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{tag}{}{nanos:x}", std::process::id())
}

/// Create deploy/template.yaml as stack `prefix` with `Prefix=prefix`;
/// `create-stack`'s JSON report (status, outputs, skipped resources).
pub fn create_stack(prefix: &str) -> serde_json::Value {
    let out = Command::new(venv_bin("python"))
        .arg("scripts/local-aws/create-stack")
        .args([prefix, prefix])
        .current_dir(root())
        .output()
        .expect("create-stack runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stack not created:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["status"], "CREATE_COMPLETE", "{stdout}");
    report
}
