//! One module per subcommand. Each `run` returns `anyhow::Result<ExitCode>`
//! (or `ExitCode`), and [`block_on`] turns errors into one line on stderr
//! and exit status 1.
use std::future::Future;
use std::process::ExitCode;

pub mod dlq;
pub mod flags;
pub mod handback;
pub mod init;
pub mod inspect;
pub mod normalize;
pub mod replay;
pub mod serve;
pub mod status;

/// Run a command on a multi-threaded runtime; print errors as one line.
pub fn block_on(fut: impl Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Print a value as pretty JSON.
pub fn print_json(v: &serde_json::Value) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A boolean flag as the operator sets it.
pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
