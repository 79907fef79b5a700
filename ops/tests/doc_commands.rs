//! Every `switchyard …` command line the docs show parses with the
//! binary's own definition. The docs are read at test time (`README.md`
//! and `docs/*.md`): code blocks and inline code that start with
//! `switchyard `, `target/release/switchyard ` or `cargo run --release -- `.
//! A failure names the doc and line.
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use ops::cli::Cli;

/// Where in the docs a command line is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shown {
    /// In a code block: a complete command someone will paste.
    CodeBlock,
    /// Inline in prose: may name a command without all its arguments.
    Inline,
}

#[derive(Debug)]
struct DocCommand {
    line: usize,
    shown: Shown,
    /// The words after the program name.
    words: Vec<String>,
}

/// How a doc invokes the binary, most specific first.
const PROGRAMS: &[&str] = &[
    "cargo run --release -- ",
    "./target/release/switchyard ",
    "target/release/switchyard ",
    "switchyard ",
];

/// The command lines in one markdown text.
fn commands_in(markdown: &str) -> Vec<DocCommand> {
    let mut found = Vec::new();
    let mut in_block = false;
    // Prose outside code blocks, with the line each of its lines starts at:
    // inline code may wrap onto the next line of a paragraph.
    let mut prose = String::new();
    let mut prose_lines = Vec::new();
    let mut continued: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let number = i + 1;
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            prose.push('\n');
            prose_lines.push((prose.len(), number));
            continue;
        }
        if !in_block {
            prose_lines.push((prose.len(), number));
            prose.push_str(line);
            prose.push('\n');
            continue;
        }
        let (start, mut text) = continued.take().unwrap_or((number, String::new()));
        text.push_str(line);
        if let Some(head) = text.strip_suffix('\\') {
            continued = Some((start, format!("{head} ")));
            continue;
        }
        if let Some(words) = invocation(strip_env_assignments(text.trim())) {
            found.push(DocCommand {
                line: start,
                shown: Shown::CodeBlock,
                words,
            });
        }
    }
    found.extend(inline_commands(&prose, &prose_lines));
    found
}

/// Inline code spans (single backticks) in prose that are invocations.
fn inline_commands(prose: &str, lines: &[(usize, usize)]) -> Vec<DocCommand> {
    let line_at = |offset: usize| {
        lines
            .iter()
            .take_while(|(start, _)| *start <= offset)
            .last()
            .map_or(1, |(_, line)| *line)
    };
    let mut found = Vec::new();
    let mut rest = prose;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        let span = &after[..close];
        if !span.is_empty() && !span.contains("\n\n") {
            let text = span.replace('\n', " ");
            if let Some(words) = invocation(&text) {
                let offset = prose.len() - rest.len() + open;
                found.push(DocCommand {
                    line: line_at(offset),
                    shown: Shown::Inline,
                    words,
                });
            }
        }
        rest = &after[close + 1..];
    }
    found
}

/// `A=1 B=2 cmd` → `cmd`.
fn strip_env_assignments(mut line: &str) -> &str {
    loop {
        let Some((first, rest)) = line.split_once(' ') else {
            return line;
        };
        let is_assignment = first.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        if !is_assignment {
            return line;
        }
        line = rest.trim_start();
    }
}

/// The words after the program name, when `text` runs the binary.
fn invocation(text: &str) -> Option<Vec<String>> {
    let text = text
        .trim_start()
        .strip_prefix("$ ")
        .unwrap_or(text.trim_start());
    let args = PROGRAMS.iter().find_map(|p| text.strip_prefix(p))?;
    Some(shell_words(args))
}

/// Split like a shell, up to the end of the command (a comment, a pipe,
/// `&`, `;` or a redirection). `<thing>` is a placeholder, not a redirection.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut word = String::new();
        let mut quoted = false;
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            if c == '"' || c == '\'' {
                quoted = true;
                word.extend(chars.by_ref().take_while(|q| *q != c));
            } else {
                word.push(c);
            }
        }
        let placeholder = word.len() > 2 && word.starts_with('<') && word.ends_with('>');
        let ends_command = (word.is_empty() && !quoted)
            || (!quoted && !placeholder && word.starts_with(['#', '|', '&', ';', '>', '<']))
            || (!quoted && word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('>'));
        if ends_command {
            break;
        }
        words.push(word);
    }
    words
}

/// Placeholders → something the parser accepts: `$VAR`/`${VAR}` and
/// `<thing>` become a plain word; `<command>` stands for every command.
fn instances(words: &[String]) -> Vec<Vec<String>> {
    let subcommands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let plain: Vec<String> = words.iter().map(|w| substitute(w)).collect();
    match plain.iter().position(|w| w == "<command>") {
        None => vec![plain],
        Some(i) => subcommands
            .iter()
            .map(|name| {
                let mut line = plain.clone();
                line[i] = name.clone();
                line
            })
            .collect(),
    }
}

fn substitute(word: &str) -> String {
    if word == "<command>" {
        return word.to_owned();
    }
    if word.starts_with('<') && word.ends_with('>') {
        return "placeholder".to_owned();
    }
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.next_if_eq(&'{').is_some();
        while chars
            .next_if(|c| c.is_ascii_alphanumeric() || *c == '_')
            .is_some()
        {}
        if braced {
            chars.next_if_eq(&'}');
        }
        out.push_str("placeholder");
    }
    out
}

/// Why `command` does not parse, if it does not.
fn problem(command: &DocCommand) -> Option<String> {
    for words in instances(&command.words) {
        let argv = std::iter::once("switchyard".to_owned()).chain(words.iter().cloned());
        let Err(e) = Cli::try_parse_from(argv) else {
            continue;
        };
        let acceptable = match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => true,
            // Prose may name a command without its arguments.
            ErrorKind::MissingRequiredArgument
            | ErrorKind::MissingSubcommand
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => command.shown == Shown::Inline,
            _ => false,
        };
        if !acceptable {
            let first = e.render().to_string();
            let first = first.lines().next().unwrap_or_default().to_owned();
            return Some(format!("`switchyard {}`: {first}", words.join(" ")));
        }
    }
    None
}

/// Problems in one doc, each as `doc:line: …`.
fn problems_in(doc: &str, markdown: &str) -> Vec<String> {
    commands_in(markdown)
        .iter()
        .filter_map(|c| problem(c).map(|p| format!("{doc}:{}: {p}", c.line)))
        .collect()
}

fn docs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut docs = vec![root.join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in docs() {
        let markdown = std::fs::read_to_string(&path).expect("readable doc");
        let name = path
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .unwrap_or(&path);
        checked += commands_in(&markdown).len();
        problems.extend(problems_in(&name.display().to_string(), &markdown));
    }
    assert!(
        checked > 10,
        "only {checked} command lines found: is the extraction broken?"
    );
    assert!(
        problems.is_empty(),
        "docs show commands the binary does not have:\n{}",
        problems.join("\n")
    );
}

/// The examples in the binary's own help (`Example:` lines and the
/// `Examples:` lists after the options), by command.
fn help_examples() -> Vec<(String, DocCommand)> {
    let mut root = Cli::command();
    root.build();
    let mut found = Vec::new();
    let mut commands = vec![(String::from("switchyard"), root)];
    while let Some((name, mut command)) = commands.pop() {
        let help = command.render_long_help().to_string();
        for (i, line) in help.lines().enumerate() {
            let line = line.trim();
            let line = line.strip_prefix("Examples:").unwrap_or(line);
            let line = line.strip_prefix("Example:").unwrap_or(line);
            if let Some(words) = invocation(strip_env_assignments(line.trim())) {
                let shown = Shown::CodeBlock;
                found.push((
                    name.clone(),
                    DocCommand {
                        line: i + 1,
                        shown,
                        words,
                    },
                ));
            }
        }
        for sub in command.get_subcommands() {
            commands.push((format!("{name} {}", sub.get_name()), sub.clone()));
        }
    }
    found
}

#[test]
fn every_example_in_the_help_parses() {
    let examples = help_examples();
    assert!(
        examples.len() > 20,
        "only {} examples found",
        examples.len()
    );
    let problems: Vec<String> = examples
        .iter()
        .filter_map(|(command, example)| {
            problem(example).map(|p| format!("`{command} --help` line {}: {p}", example.line))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "help shows commands the binary does not have:\n{}",
        problems.join("\n")
    );
}

const SAMPLE: &str = "# Sample

Run `switchyard status --json`, or wrap `switchyard flags
--data-dir D set shadow on --reason x` over a line; `switchyard handback`
names a command. A made-up one: `switchyard ingress`.

```sh
SWITCHYARD_WEBHOOK_TOKEN=t target/release/switchyard serve --ingress-only --data-dir /tmp/x &
cargo run --release -- inspect T-1001      # the timeline
switchyard dlq show <id> | head
switchyard <command> --help
switchyard status --verbose
some/script.sh target/release/switchyard 10
switchyard replay \\
  --all --verify
```
";

#[test]
fn the_extraction_finds_code_block_and_wrapped_inline_commands() {
    let found: Vec<(usize, Vec<String>)> = commands_in(SAMPLE)
        .into_iter()
        .map(|c| (c.line, c.words))
        .collect();
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    let expected = vec![
        (8, words("serve --ingress-only --data-dir /tmp/x")),
        (9, words("inspect T-1001")),
        (10, words("dlq show <id>")),
        (11, words("<command> --help")),
        (12, words("status --verbose")),
        (14, words("replay --all --verify")),
        (3, words("status --json")),
        (3, words("flags --data-dir D set shadow on --reason x")),
        (4, words("handback")),
        (5, words("ingress")),
    ];
    assert_eq!(found, expected);
}

#[test]
fn a_command_or_flag_the_binary_lacks_fails_naming_doc_and_line() {
    let problems = problems_in("docs/sample.md", SAMPLE);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems[0].starts_with("docs/sample.md:12: `switchyard status --verbose`"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].starts_with("docs/sample.md:5: `switchyard ingress`"),
        "{}",
        problems[1]
    );
}

#[test]
fn quotes_variables_and_redirections_are_handled_like_a_shell() {
    assert_eq!(
        shell_words(r#"flags set kill-switch all_writes --reason "incident 42" > out 2>&1"#),
        [
            "flags",
            "set",
            "kill-switch",
            "all_writes",
            "--reason",
            "incident 42"
        ]
    );
    assert_eq!(
        shell_words("normalize --source email < message.eml"),
        ["normalize", "--source", "email"]
    );
    assert_eq!(
        substitute("--aws-prefix=$PREFIX"),
        "--aws-prefix=placeholder"
    );
    assert_eq!(substitute("${DIR}/data"), "placeholder/data");
    assert_eq!(
        instances(&["<command>".into(), "--help".into()]).len(),
        Cli::command().get_subcommands().count()
    );
}
