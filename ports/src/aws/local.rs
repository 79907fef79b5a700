//! The local AWS-protocol servers (moto and DynamoDB Local on loopback,
//! `scripts/local-aws/start`) that the AWS test cases of every crate run
//! against, and how a test knows they are there.
//!
//! AWS test cases are `#[ignore]`d, so a plain `cargo test` lists them as
//! ignored rather than passed; `scripts/test` starts the servers and runs
//! them with `--include-ignored`. A case that runs without the servers
//! fails through [`require_local_servers`]: it never passes silently.

/// Environment variable `scripts/local-aws/start` sets to `1` (in
/// `.local-aws/env`) once the servers answer.
pub const TESTS_ENV: &str = "SWITCHYARD_AWS_TESTS";

/// Why an AWS test case cannot run: the panic message of
/// [`require_local_servers`].
pub const SERVERS_NOT_SET: &str = "SWITCHYARD_AWS_TESTS is not set: start the local AWS servers \
     (scripts/local-aws/start; . .local-aws/env) or run scripts/test";

/// Whether the local servers are configured (`SWITCHYARD_AWS_TESTS=1`).
pub fn local_servers_configured() -> bool {
    std::env::var(TESTS_ENV).is_ok_and(|v| v == "1")
}

/// For AWS test cases: panic with [`SERVERS_NOT_SET`] unless the local
/// servers are configured.
pub fn require_local_servers() {
    assert!(local_servers_configured(), "{SERVERS_NOT_SET}");
}
