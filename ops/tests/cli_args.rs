//! The backend flags are global: accepted before the command, between
//! command and subcommand, after the subcommand and at the end of the line,
//! for every command. Commands that finish at once are run for real (on a
//! temporary data dir, which they must use); every command, `serve`
//! included, is also parsed with the binary's own definition.
use std::path::Path;

use clap::{CommandFactory, Parser};
use ops::backend_args::BackendArgs;
use ops::cli::Cli;

/// How a case is checked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// Run the binary (it finishes at once on an empty data dir).
    Run,
    /// Parse only: it would keep running, or opens no backend.
    ParseOnly,
}

/// A command path (command, then subcommand), the arguments it needs, and
/// how it is checked.
struct Case {
    path: &'static [&'static str],
    args: &'static [&'static str],
    check: Check,
}

const fn case(path: &'static [&'static str], args: &'static [&'static str], check: Check) -> Case {
    Case { path, args, check }
}

use Check::{ParseOnly, Run};

const CASES: &[Case] = &[
    case(&["serve"], &["--listen", "127.0.0.1:0"], ParseOnly),
    case(&["init"], &[], Run),
    case(&["flags"], &[], Run),
    case(&["flags", "show"], &["--json"], Run),
    case(
        &["flags", "set"],
        &["shadow", "on", "--reason", "test"],
        Run,
    ),
    case(&["flags", "history"], &["--limit", "5"], Run),
    case(&["status"], &["--serve-url", "http://127.0.0.1:1"], Run),
    case(&["inspect"], &["c-1"], Run),
    case(&["replay"], &["--all", "--verify"], Run),
    case(&["handback"], &["c-1", "--reason", "test"], Run),
    case(&["dlq", "list"], &[], Run),
    // 3 = no such dead letter: it looked.
    case(&["dlq", "show"], &["no-such-id"], Run),
    case(&["dlq", "redrive"], &["--all", "--yes"], Run),
    case(&["normalize"], &["--source", "email", "-"], ParseOnly),
];

#[test]
fn the_cases_cover_every_command_and_subcommand() {
    let root = Cli::command();
    let mut paths = Vec::new();
    for command in root.get_subcommands() {
        // `flags` alone runs `flags show`; `dlq` alone is an error.
        if !command.is_subcommand_required_set() {
            paths.push(command.get_name().to_owned());
        }
        for sub in command.get_subcommands() {
            paths.push(format!("{} {}", command.get_name(), sub.get_name()));
        }
    }
    let covered: Vec<String> = CASES.iter().map(|c| c.path.join(" ")).collect();
    let missing: Vec<&String> = paths.iter().filter(|p| !covered.contains(p)).collect();
    assert!(missing.is_empty(), "no case for {missing:?}");
}

/// Every place a global flag can stand on `path args`: before the command,
/// after each word of the path (between command and subcommand, and before
/// the arguments), and at the end.
fn placements(case: &Case, flag: &[&str]) -> Vec<(String, Vec<String>)> {
    let line: Vec<&str> = case.path.iter().chain(case.args).copied().collect();
    let mut at: Vec<usize> = (0..=case.path.len()).collect();
    at.push(line.len());
    at.dedup();
    at.into_iter()
        .map(|i| {
            let mut words: Vec<String> = vec!["switchyard".into()];
            words.extend(line[..i].iter().map(|w| w.to_string()));
            words.extend(flag.iter().map(|w| w.to_string()));
            words.extend(line[i..].iter().map(|w| w.to_string()));
            (words[1..].join(" "), words)
        })
        .collect()
}

/// Each global flag with a value unlike its default, and the check that
/// the parsed backend flags carry that value.
type GlobalFlag = (&'static [&'static str], fn(&BackendArgs) -> bool);

const GLOBAL_FLAGS: &[GlobalFlag] = &[
    (&["--backend", "aws"], |b| b.backend == "aws"),
    (&["--data-dir", "/given/dir"], |b| {
        b.data_dir == Path::new("/given/dir")
    }),
    (&["--aws-prefix", "given-prefix"], |b| {
        b.aws_prefix == "given-prefix"
    }),
    (&["--max-receive-count", "7"], |b| b.max_receive_count == 7),
    (&["--raw-mail-buckets", "one,two"], |b| {
        b.raw_mail_buckets == ["one", "two"]
    }),
    (&["--data-dir=/given/dir"], |b| {
        b.data_dir == Path::new("/given/dir")
    }),
];

#[test]
fn every_global_flag_parses_in_every_position_of_every_command() {
    let mut failures = Vec::new();
    for case in CASES {
        for (flag, holds) in GLOBAL_FLAGS {
            for (line, words) in placements(case, flag) {
                match Cli::try_parse_from(&words) {
                    Ok(cli) if holds(&cli.backend) => {}
                    Ok(cli) => failures.push(format!("{line}: parsed as {:?}", cli.backend)),
                    Err(e) => failures.push(format!("{line}: {}", e.kind())),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "not accepted:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_command_and_its_own_arguments_parse_the_same_with_a_global_flag_anywhere() {
    for case in CASES {
        let bare: Vec<&str> = std::iter::once("switchyard")
            .chain(case.path.iter().copied())
            .chain(case.args.iter().copied())
            .collect();
        let expected = format!("{:?}", Cli::try_parse_from(&bare).expect("parses").command);
        for (line, words) in placements(case, &["--data-dir", "/given/dir"]) {
            let parsed = Cli::try_parse_from(&words).expect("parses");
            assert_eq!(format!("{:?}", parsed.command), expected, "{line}");
        }
    }
}

#[test]
fn without_flags_the_defaults_and_environment_apply() {
    let cli = Cli::try_parse_from(["switchyard", "status"]).expect("parses");
    let defaults = [
        ("SWITCHYARD_BACKEND", cli.backend.backend == "embedded"),
        (
            "SWITCHYARD_DATA_DIR",
            cli.backend.data_dir == Path::new("data"),
        ),
        (
            "SWITCHYARD_AWS_PREFIX",
            cli.backend.aws_prefix == "switchyard",
        ),
        (
            "SWITCHYARD_MAX_RECEIVE_COUNT",
            cli.backend.max_receive_count == ports::DEFAULT_MAX_RECEIVE_COUNT,
        ),
        (
            "SWITCHYARD_RAW_MAIL_BUCKETS",
            cli.backend.raw_mail_buckets.is_empty(),
        ),
    ];
    for (var, is_default) in defaults {
        // A variable set around the test run legitimately changes the value.
        if std::env::var_os(var).is_none() {
            assert!(is_default, "{var} unset, yet {:?}", cli.backend);
        }
    }
}

/// Run `words` in `dir` with `SWITCHYARD_DATA_DIR` pointing elsewhere and
/// `env` set; returns (exit code, stderr).
fn run_in(dir: &Path, words: &[String], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = assert_cmd::Command::cargo_bin("switchyard")
        .expect("binary built")
        .args(&words[1..])
        .current_dir(dir)
        .env_remove("SWITCHYARD_BACKEND")
        .env("SWITCHYARD_DATA_DIR", dir.join("from-env"))
        .envs(env.iter().copied())
        .write_stdin("")
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run every runnable case with `flags` (where `DIR` stands for a fresh
/// data dir) in every position; each run must succeed on that data dir and
/// nothing may open the one from the environment or `./data`.
fn run_everywhere(flags: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in CASES.iter().filter(|c| c.check == Run) {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (n, (line, mut words)) in placements(case, flags).into_iter().enumerate() {
            let given = tmp.path().join(format!("given-{n}"));
            for word in &mut words {
                if word == "DIR" {
                    *word = given.display().to_string();
                }
            }
            let (code, stderr) = run_in(tmp.path(), &words, env);
            // 3 = "no such conversation / dead letter / hold": it looked.
            if !matches!(code, Some(0 | 3)) {
                failures.push(format!("{line}: exit {code:?}: {stderr}"));
            } else if !given.join("switchyard.sqlite").is_file() {
                failures.push(format!("{line}: did not use the given data dir"));
            }
        }
        for unused in ["from-env", "data"] {
            if tmp.path().join(unused).exists() {
                failures.push(format!("{}: also opened ./{unused}", case.path.join(" ")));
            }
        }
    }
    failures
}

#[test]
fn every_command_uses_the_data_dir_given_anywhere_on_the_line() {
    let failures = run_everywhere(&["--data-dir", "DIR"], &[]);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_backend_given_anywhere_on_the_line_wins_over_the_environment() {
    // Were the flag ignored, the command would try AWS (here: nothing
    // listening) and fail.
    let env = [
        ("SWITCHYARD_BACKEND", "aws"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "none"),
        ("AWS_SECRET_ACCESS_KEY", "none"),
    ];
    let failures = run_everywhere(&["--backend", "embedded", "--data-dir", "DIR"], &env);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn without_the_flag_the_data_dir_comes_from_the_environment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let words: Vec<String> = ["switchyard", "flags", "history"]
        .map(String::from)
        .to_vec();
    let (code, stderr) = run_in(tmp.path(), &words, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(tmp.path().join("from-env/switchyard.sqlite").is_file());
}
