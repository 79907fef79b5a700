//! The `switchyard` operator CLI as a library: the command-line definition
//! ([`cli::Cli`]) and one module per command. The binary (`src/main.rs`)
//! only parses and dispatches; tests parse with the same definition.
#![forbid(unsafe_code)]

/// `println!` for command output that may go into a pipe: when the reader
/// has gone (`switchyard inspect X | head`), stop quietly instead of
/// panicking on the broken pipe.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

pub mod backend_args;
pub mod cli;
pub mod cmd;
mod telemetry;
