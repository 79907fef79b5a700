//! What the harness's integration tests share.
use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/switchyard`. `cargo test --workspace --all-targets`
/// (what CI runs) compiles every target, this one included, before any test
/// runs. `cargo test -p loadtest` alone does not: then it is built here, in
/// a separate target dir so this never waits on the lock of the running
/// `cargo test`.
pub fn switchyard() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let dir = loadtest.parent().expect("binary dir");
    let bin = dir.join("switchyard");
    if bin.is_file() {
        return bin;
    }
    let own = dir.join("loadtest-serve-build");
    let release = dir.file_name().is_some_and(|n| n == "release");
    let built = own
        .join(if release { "release" } else { "debug" })
        .join("switchyard");
    if !built.is_file() {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "ops", "--bin", "switchyard", "--target-dir"])
            .arg(&own);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build -p ops");
        assert!(status.success(), "cargo build -p ops failed");
    }
    assert!(
        built.is_file(),
        "no switchyard binary at {}",
        built.display()
    );
    built
}
