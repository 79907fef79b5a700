//! `switchyard normalize [--source richpanel|email|ses] [FILE|-]`: prints what
//! a webhook body or email becomes (envelope v1 JSON, pretty). SNS
//! confirmations and ignored notifications print a small JSON object with a
//! `kind` field instead. Invalid input: exit status 2 and one line on stderr
//! naming what is wrong (with the ingress's reason code).
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use envelope::{NormalizeConfig, Normalized, Source};

/// The exit status for input that cannot be normalized (or read).
const INVALID_INPUT: u8 = 2;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SourceArg {
    Richpanel,
    Email,
    Ses,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Self {
        match s {
            SourceArg::Richpanel => Source::Richpanel,
            SourceArg::Email => Source::Email,
            SourceArg::Ses => Source::Ses,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which normalizer to run; detected from the content when omitted.
    #[arg(long, value_enum)]
    source: Option<SourceArg>,
    /// Cut message text to this many characters (default 4000).
    #[arg(long)]
    max_text_chars: Option<usize>,
    /// The body to normalize; `-` (the default) reads stdin.
    #[arg(default_value = "-")]
    file: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    match normalize(&args) {
        Ok(json) => {
            let mut out = std::io::stdout().lock();
            // A closed stdout (e.g. `| head`) is not the input's fault.
            let _ = writeln!(out, "{json}");
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("error: {}", line.replace(['\r', '\n'], " "));
            ExitCode::from(INVALID_INPUT)
        }
    }
}

fn normalize(args: &Args) -> Result<String, String> {
    let body = read_input(&args.file)?;
    let source = match args.source {
        Some(s) => s.into(),
        None => Source::detect(&body).ok_or_else(|| {
            "cannot tell what the input is (not JSON, not an email); use --source richpanel|email|ses"
                .to_owned()
        })?,
    };
    let mut cfg = NormalizeConfig::default();
    if let Some(max) = args.max_text_chars {
        cfg.max_text_chars = max;
    }
    let out = envelope::normalize(source, &body, &cfg, chrono::Utc::now()).map_err(|e| {
        format!(
            "{e} (reason: {}, source: {})",
            e.reason_code(),
            source.name()
        )
    })?;
    let json = match &out {
        Normalized::Envelope(env) => serde_json::to_string_pretty(env),
        other => serde_json::to_string_pretty(other),
    };
    json.map_err(|e| format!("cannot print the result: {e}"))
}

fn read_input(file: &PathBuf) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
    } else {
        body = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    }
    Ok(body)
}
