//! `switchyard`: the operator's one binary. Thin: the command line is
//! `ops::cli`, every command lives in `ops::cmd::<name>` and calls into the
//! library crates.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ops::cli::Cli::parse().run()
}
