//! The commands of README.md and docs/*.md, run, so the docs cannot drift from the code: every `make TARGET`
//! they name exists (in the Makefile, in `make help`, and `make -n` takes it with the variables shown); every
//! command of the project's binaries they name parses (its subcommands exist, its `--flags` are in their help, and a
//! command written out in full runs past its argument parsing); and the README's curl example, run as written
//! against the whole local stack, gets the answers the README shows.
//!
//! Code in the docs is read as a reader sees it: the lines of fenced blocks (comments read as prose, `\` continuations
//! joined) and inline code spans (a paragraph at a time, so a span may break across lines). Synopses (`[…]`,
//! `(a | b)`, `…`, `<…>`, `UPPERCASE` placeholders) are checked for their subcommands and flags only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tubes_tests::{as_from_a_shell, repo_root, LocalStack};

/// The project's command-line tools.
const BINARIES: &[&str] = &[
    "tubes-dlq",
    "tubes-dev",
    "tubes-replay",
    "tubes-keys",
    "tubes-local",
];

/// How long a documented command may run against no stack before it is stopped: argument parsing takes
/// milliseconds, so one still running has parsed.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// How long the local stack may take to show the README's effects.
const DEADLINE: Duration = Duration::from_secs(240);

/// README.md and docs/*.md: `(path from the repository root, text)`.
fn documents() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(repo_root().join(&n)).expect("a document");
            (n, text)
        })
        .collect()
}

/// A piece of code in a document.
#[derive(Debug, Clone)]
struct Snippet {
    /// `README.md:123`.
    place: String,
    text: String,
    /// In a fenced block (a command to run), not an inline span (which may only name one).
    fenced: bool,
}

/// The code of a document: each command line of its fenced blocks (comment lines and trailing comments dropped,
/// continuations joined) and each inline code span.
fn snippets(doc: &str, text: &str) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending: Option<(usize, String)> = None;
    let mut paragraph: Option<(usize, String)> = None;
    let flush_paragraph = |paragraph: &mut Option<(usize, String)>, out: &mut Vec<Snippet>| {
        if let Some((line, p)) = paragraph.take() {
            for span in p.split('`').skip(1).step_by(2) {
                out.push(Snippet {
                    place: format!("{doc}:{line}"),
                    text: span.trim().to_owned(),
                    fenced: false,
                });
            }
        }
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim_start().starts_with("```") {
            flush_paragraph(&mut paragraph, &mut out);
            fenced = !fenced;
            continue;
        }
        if fenced {
            let (code, comment) = split_comment(line);
            // A comment is prose: its code spans name commands too.
            for span in comment.split('`').skip(1).step_by(2) {
                out.push(Snippet {
                    place: format!("{doc}:{n}"),
                    text: span.trim().to_owned(),
                    fenced: false,
                });
            }
            // Flags a comment gives a project binary's command (`tubes-dlq list   # … (--all: …)`) are its: checked
            // against that command's help, as a synopsis (`[--all]`), not run.
            let flags: Vec<String> = comment
                .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | ':'))
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| format!("[{w}]"))
                .collect();
            let first = code.split_whitespace().next().unwrap_or_default();
            if !flags.is_empty() && pending.is_none() && binary_of(first).is_some() {
                out.push(Snippet {
                    place: format!("{doc}:{n}"),
                    text: format!("{} {}", code.trim(), flags.join(" ")),
                    fenced: true,
                });
            }
            let (start, mut joined) = pending.take().unwrap_or((n, String::new()));
            if let Some(head) = code.trim_end().strip_suffix('\\') {
                joined.push_str(head);
                joined.push(' ');
                pending = Some((start, joined));
                continue;
            }
            joined.push_str(&code);
            if !joined.trim().is_empty() {
                out.push(Snippet {
                    place: format!("{doc}:{start}"),
                    text: joined.trim().to_owned(),
                    fenced: true,
                });
            }
        } else if line.trim().is_empty() {
            flush_paragraph(&mut paragraph, &mut out);
        } else {
            let (_, p) = paragraph.get_or_insert((n, String::new()));
            p.push_str(line);
            p.push(' ');
        }
    }
    flush_paragraph(&mut paragraph, &mut out);
    out
}

/// `line` split at its shell comment (a `#` at the start or after a blank, outside quotes): the code, the comment.
fn split_comment(line: &str) -> (String, &str) {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => {
                return (line[..i].to_owned(), &line[i..]);
            }
            _ => {}
        }
        prev = c;
    }
    (line.to_owned(), "")
}

/// Shell words: blanks separate, quotes group (and go), a backslash escapes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut word, mut started) = (String::new(), false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                started = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                started = true;
                word.extend(chars.next());
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// Whether a command is a synopsis rather than one to run as written.
fn is_synopsis(words: &[String]) -> bool {
    words.iter().any(|w| {
        w.contains(['[', ']', '(', ')', '|', '…', '<', '>'])
            || (w.len() > 1
                && w.starts_with(|c: char| c.is_ascii_uppercase())
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
    })
}

/// One `make TARGET VAR=value…` in the docs.
#[derive(Debug, Clone)]
struct MakeCall {
    place: String,
    target: String,
    vars: Vec<String>,
    synopsis: bool,
}

/// Every `make TARGET` of the docs' code, with the variables written after it.
fn make_calls() -> Vec<MakeCall> {
    let mut out = Vec::new();
    for (doc, text) in documents() {
        for s in snippets(&doc, &text) {
            let w = words(&s.text);
            for (i, _) in w.iter().enumerate().filter(|(_, w)| *w == "make") {
                let Some(target) = w.get(i + 1) else { continue };
                if target.starts_with('-') || target.contains('=') {
                    continue;
                }
                let vars: Vec<String> = w[i + 2..]
                    .iter()
                    .take_while(|v| {
                        v.split_once('=').is_some_and(|(k, _)| {
                            !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                        })
                    })
                    .cloned()
                    .collect();
                out.push(MakeCall {
                    place: s.place.clone(),
                    target: target.clone(),
                    // `make replay` in a sentence names the target; in a block, or with variables, it is a command.
                    synopsis: is_synopsis(&vars) || (vars.is_empty() && !s.fenced),
                    vars,
                });
            }
        }
    }
    out
}

/// The output of a command that must run; panics with its output otherwise.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn make_help() -> String {
    let out = output(Command::new("make").arg("help").current_dir(repo_root()));
    assert!(out.status.success(), "make help: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The targets the Makefile defines (`name:` at the start of a line, not a variable assignment).
fn makefile_targets() -> BTreeSet<String> {
    std::fs::read_to_string(repo_root().join("Makefile"))
        .expect("Makefile")
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, rest)| {
            !name.is_empty()
                && !rest.starts_with('=')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// `make -n TARGET VARS…` in the repository: the commands it would run, nothing run.
fn make_dry_run(call: &MakeCall) -> Output {
    output(
        Command::new("make")
            .arg("-n")
            .arg(&call.target)
            .args(&call.vars)
            .current_dir(repo_root()),
    )
}

#[test]
fn every_make_target_the_docs_name_exists_and_is_listed_by_make_help() {
    let calls = make_calls();
    let found: BTreeSet<&str> = calls.iter().map(|c| c.target.as_str()).collect();
    assert!(
        found.contains("dev") && found.contains("test"),
        "the docs' make commands were not found (found: {found:?})"
    );
    let defined = makefile_targets();
    let help = make_help();
    let mut problems = Vec::new();
    for call in &calls {
        let t = &call.target;
        if !defined.contains(t) {
            problems.push(format!(
                "{}: make {t}: no such target in the Makefile",
                call.place
            ));
            continue;
        }
        if !help
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("make {t} ")))
        {
            problems.push(format!("{}: make {t}: not listed by make help", call.place));
        }
        let out = make_dry_run(call);
        if !out.status.success() {
            problems.push(format!(
                "{}: make -n {t} {}: {}",
                call.place,
                call.vars.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "documented make targets that do not work:\n{}\n(targets found in the docs: {found:?})",
        problems.join("\n")
    );
}

#[test]
fn make_help_lists_every_target_with_a_description() {
    let help = make_help();
    let missing: Vec<String> = std::fs::read_to_string(repo_root().join("Makefile"))
        .expect("Makefile")
        .lines()
        .filter(|l| !l.starts_with(['\t', '#', ' ']) && l.contains("## "))
        .filter_map(|l| l.split_once(':').map(|(t, _)| t.to_owned()))
        .filter(|t| !help.contains(&format!("make {t} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "targets with a `## ` description that make help does not list: {missing:?}\n{help}"
    );
}

#[test]
fn every_tubes_variable_of_the_local_stack_doc_is_read_by_the_code() {
    let doc = std::fs::read_to_string(repo_root().join("docs/local-stack.md")).expect("doc");
    let named: BTreeSet<String> = doc
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("TUBES_") && w.len() > "TUBES_".len())
        .map(str::to_owned)
        .collect();
    assert!(named.contains("TUBES_STATE_DIR"), "{named:?}");
    let mut code = String::new();
    for dir in ["scripts", "local/src", "ops/src", "functions", "shared"] {
        read_tree(&repo_root().join(dir), &mut code);
    }
    let unread: Vec<&String> = named
        .iter()
        .filter(|v| {
            !code.match_indices(v.as_str()).any(|(i, _)| {
                !code[i + v.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .collect();
    assert!(
        unread.is_empty(),
        "variables docs/local-stack.md names that no script or crate reads: {unread:?} (named: {named:?})"
    );
}

/// Appends every source file (`.sh`, `.py`, `.rs`) under `dir` to `into`.
fn read_tree(dir: &Path, into: &mut String) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_tree(&path, into);
        } else if path
            .extension()
            .is_some_and(|e| e == "sh" || e == "py" || e == "rs")
        {
            into.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
}

/// The workspace's debug binaries, built once (as `make dev` and the Makefile's commands build them).
fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .to_path_buf();
        let out = output(
            as_from_a_shell(&mut Command::new("cargo"))
                .args(["build", "-q", "--workspace", "--bins"])
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(repo_root()),
        );
        assert!(
            out.status.success(),
            "cargo build --workspace --bins: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("debug")
    })
}

/// One command of a project binary, as the docs write it.
#[derive(Debug, Clone)]
struct ToolCall {
    place: String,
    binary: String,
    args: Vec<String>,
    synopsis: bool,
}

/// The binary `word` runs, if one of [`BINARIES`] (`tubes-dlq`, `target/debug/tubes-dlq`).
fn binary_of(word: &str) -> Option<&'static str> {
    BINARIES
        .iter()
        .copied()
        .find(|b| word == *b || word.ends_with(&format!("/{b}")))
}

/// The commands of the project's binaries in `w`: each binary word where a command starts (first, or after `&&`,
/// `;`, `||`, or `|` when `pipes` end commands), with the words after it up to the command's end.
fn tool_calls_in(place: &str, w: &[String], pipes: bool, synopsis: bool) -> Vec<ToolCall> {
    let ends = |s: &str| matches!(s, "&&" | "||" | ";") || (pipes && s == "|");
    let mut out = Vec::new();
    for (i, word) in w.iter().enumerate() {
        let Some(binary) = binary_of(word) else {
            continue;
        };
        let prev = if i == 0 {
            None
        } else {
            Some(w[i - 1].as_str())
        };
        let mut rest = &w[i + 1..];
        match prev {
            None => {}
            // `cargo run … --bin X -- ARGS` runs it; `cargo build … --bin X` only builds it.
            Some("--bin") => match rest.first().map(String::as_str) {
                Some("--") => rest = &rest[1..],
                None => {}
                Some(_) => continue,
            },
            Some(p) if ends(p) => {}
            Some(_) => continue,
        }
        let args: Vec<String> = rest.iter().take_while(|a| !ends(a)).cloned().collect();
        out.push(ToolCall {
            place: place.to_owned(),
            binary: binary.to_owned(),
            // A bare name (`tubes-dlq`) names the tool; its help is checked, nothing is run.
            synopsis: synopsis || args.is_empty() || is_synopsis(&args),
            args,
        });
    }
    out
}

/// Every command of the project's binaries the docs name: written out, in the README's `tubes-dev` bullets
/// (`send TYPE …` under "Commands for the local stack"), and behind the documented make targets (`make -n`).
fn tool_calls() -> Vec<ToolCall> {
    let mut out = Vec::new();
    for (doc, text) in documents() {
        for s in snippets(&doc, &text) {
            out.extend(tool_calls_in(&s.place, &words(&s.text), false, false));
        }
    }
    let (_, readme) = documents().into_iter().next().expect("README.md");
    let section = section(&readme, "## Commands for the local stack");
    let bullets: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("- **`"))
        .filter_map(|l| l.split_once("`**").map(|(code, _)| code))
        .collect();
    assert!(
        bullets.len() >= 5,
        "the README's tubes-dev commands (bullets `- **\\`send …\\`**` under \"Commands for the local stack\") \
         were not found: {bullets:?}"
    );
    for code in bullets {
        let mut w = vec!["tubes-dev".to_owned()];
        w.extend(words(code));
        out.extend(tool_calls_in(
            "README.md (Commands for the local stack)",
            &w,
            false,
            false,
        ));
    }
    for call in make_calls() {
        let dry = make_dry_run(&call);
        let place = format!(
            "{} (make {} {})",
            call.place,
            call.target,
            call.vars.join(" ")
        );
        for line in String::from_utf8_lossy(&dry.stdout).lines() {
            out.extend(tool_calls_in(&place, &words(line), true, call.synopsis));
        }
    }
    out
}

/// The text of `doc` from the heading line `heading` to the next heading of the same level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?}"))
        + 1;
    let level = heading.split(' ').next().unwrap_or("##");
    let body = &doc[start + heading.len()..];
    let end = body
        .find(&format!("\n{level} "))
        .map_or(doc.len(), |e| start + heading.len() + e);
    &doc[start..end]
}

/// A command's help: its text and its subcommands.
struct Help {
    text: String,
    commands: Vec<String>,
}

/// `binary path… --help`; `Err` with the output when it fails.
fn help(binary: &str, path: &[String]) -> Result<Help, String> {
    let exe = binaries().join(binary);
    let out = output(Command::new(&exe).args(path).arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "`{binary} {} --help` exited {}: {}{}",
            path.join(" "),
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let commands = text
        .split_once("\nCommands:\n")
        .map(|(_, list)| {
            list.lines()
                .take_while(|l| !l.trim().is_empty())
                .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|c| *c != "help")
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Help { text, commands })
}

/// Whether `help` names the flag `--name` (as a whole word: `--to` is not `--to-function`).
fn names_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        !help[i + flag.len()..]
            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// Checks one documented command's subcommands and flags against the help; the problems found.
fn check_help(call: &ToolCall) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = format!("{}: `{} {}`", call.place, call.binary, call.args.join(" "));
    // The subcommand path: a word at depth 0 that names a subcommand of where we are descends; a `|` at depth 0
    // starts an alternative at the parent of the last subcommand (`look ledger A | profile U`).
    let mut path: Vec<String> = Vec::new();
    let mut node = match help(&call.binary, &path) {
        Ok(h) => h,
        Err(e) => return vec![format!("{shown}: {e}")],
    };
    let mut positional_seen = false;
    let mut depth = 0i32;
    for word in &call.args {
        let bare = word.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')'));
        if word == "|" && depth == 0 && !path.is_empty() {
            path.pop();
            node = match help(&call.binary, &path) {
                Ok(h) => h,
                Err(e) => return vec![format!("{shown}: {e}")],
            };
            positional_seen = false;
            continue;
        }
        let top = depth == 0 && !word.starts_with(['[', '(']);
        depth += word.matches(['[', '(']).count() as i32 - word.matches([']', ')']).count() as i32;
        if let Some(flag) = bare.strip_prefix("--").filter(|f| !f.is_empty()) {
            let flag = format!("--{}", flag.split('=').next().unwrap_or(flag));
            if flag != "--help" && !names_flag(&node.text, &flag) {
                problems.push(format!(
                    "{shown}: `{flag}` is not in `{} {} --help`",
                    call.binary,
                    path.join(" ")
                ));
            }
        } else if top && !positional_seen && !bare.starts_with('-') && !bare.is_empty() {
            if node.commands.iter().any(|c| c == bare) {
                path.push(bare.to_owned());
                node = match help(&call.binary, &path) {
                    Ok(h) => h,
                    Err(e) => return vec![format!("{shown}: {e}")],
                };
            } else {
                if !node.commands.is_empty() && !is_synopsis(std::slice::from_ref(word)) {
                    problems.push(format!(
                        "{shown}: `{bare}` is not a subcommand of `{} {}` ({:?})",
                        call.binary,
                        path.join(" "),
                        node.commands
                    ));
                }
                positional_seen = true;
            }
        }
    }
    problems
}

/// Runs a documented command as written with nothing to reach (every endpoint a closed loopback port, an empty
/// state directory, a scratch working directory): it must get past its argument parsing (exit code other than 2,
/// usage). With `--help` appended it must print help (exit 0).
fn check_run(call: &ToolCall, scratch: &Path) -> Vec<String> {
    let shown = format!("{}: `{} {}`", call.place, call.binary, call.args.join(" "));
    let exe = binaries().join(&call.binary);
    let mut problems = Vec::new();
    let out = output(Command::new(&exe).args(&call.args).arg("--help"));
    if !out.status.success() {
        problems.push(format!(
            "{shown} --help: exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dir = scratch.join(uuid::Uuid::now_v7().to_string());
    std::fs::create_dir_all(dir.join("state")).expect("scratch dir");
    let nowhere = "http://127.0.0.1:1";
    let mut cmd = Command::new(&exe);
    cmd.args(&call.args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("TUBES_STATE_DIR", dir.join("state"))
        .env("TUBES_HTTP_PORT", "1")
        .env("TUBES_MOTO_PORT", "1")
        .env("TUBES_KINESIS_PORT", "1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("ARCHIVE_BUCKET", "tubes-archivebucket")
        .env("READ_MODELS_TABLE", "tubes-ReadModelsTable")
        .env("AWS_ENDPOINT_URL", nowhere);
    for service in [
        "SQS",
        "KINESIS",
        "LAMBDA",
        "S3",
        "DYNAMODB",
        "SECRETS_MANAGER",
    ] {
        cmd.env(format!("AWS_ENDPOINT_URL_{service}"), nowhere);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match status {
        // Exit 2 is also a refusal that is no usage error (`tubes-dlq purge` without a terminal to confirm on).
        Some(s)
            if s.code() == Some(2)
                && (stderr.contains("error:") || stderr.to_lowercase().contains("usage")) =>
        {
            problems.push(format!("{shown}: a usage error: {}", stderr.trim()));
        }
        _ => {}
    }
    problems
}

#[test]
fn every_command_the_docs_name_parses_and_its_flags_are_in_its_help() {
    let calls = tool_calls();
    let named: BTreeSet<&str> = calls.iter().map(|c| c.binary.as_str()).collect();
    assert!(
        ["tubes-dlq", "tubes-dev", "tubes-replay", "tubes-keys"]
            .iter()
            .all(|b| named.contains(b)),
        "the docs' commands were not found (binaries found: {named:?})"
    );
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs_commands");
    let mut problems = Vec::new();
    let mut ran = 0;
    for call in &calls {
        problems.extend(check_help(call));
        if !call.synopsis {
            problems.extend(check_run(call, &scratch));
            ran += 1;
        }
    }
    let listed: Vec<String> = calls
        .iter()
        .map(|c| {
            let kind = if c.synopsis { "synopsis" } else { "ran" };
            format!("  {} [{kind}] {} {}", c.place, c.binary, c.args.join(" "))
        })
        .collect();
    assert!(
        problems.is_empty(),
        "documented commands that do not parse:\n{}\n\ncommands found:\n{}",
        problems.join("\n"),
        listed.join("\n")
    );
    assert!(
        ran >= 10,
        "too few commands run as written ({ran}):\n{}",
        listed.join("\n")
    );
}

/// Members of the README's sample answers that say where on the stream an event went: examples, which depend on the
/// stream's shards (4 locally, on-demand deployed), not on the API.
const STREAM_PLACES: &[&str] = &["shard_id", "sequence_number"];

/// The `"key":value` pairs (scalar values, none elided with `…`, no [`STREAM_PLACES`]) written in `text`, a README
/// comment.
fn shown_pairs(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("\":") {
        let Some(open) = text[..i].rfind('"') else {
            continue;
        };
        let key = &text[open + 1..i];
        if key.is_empty()
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || STREAM_PLACES.contains(&key)
        {
            continue;
        }
        let rest = &text[i + 2..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        if let Some(Ok(v)) = values.next() {
            let elided = v.as_str().is_some_and(|s| s.contains('…'));
            if !elided && !v.is_object() && !v.is_array() {
                out.push((key.to_owned(), v));
            }
        }
    }
    out
}

/// Whether `value` has, somewhere, a member `key` equal to `wanted`.
fn has_pair(value: &Value, key: &str, wanted: &Value) -> bool {
    match value {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| (k == key && v == wanted) || has_pair(v, key, wanted)),
        Value::Array(a) => a.iter().any(|v| has_pair(v, key, wanted)),
        _ => false,
    }
}

/// The JSON values in `text` that start with `prefix`.
fn json_values(text: &str, prefix: &str) -> Vec<Value> {
    text.match_indices(prefix)
        .filter_map(|(i, _)| {
            serde_json::Deserializer::from_str(&text[i..])
                .into_iter::<Value>()
                .next()
                .and_then(Result::ok)
        })
        .collect()
}

/// `bash -euo pipefail -c script` in the repository: its standard output; panics if it fails.
fn bash(script: &str) -> String {
    let out = output(
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(repo_root()),
    );
    assert!(
        out.status.success(),
        "the README's commands failed ({}):\n{script}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status codes of the HTTP answers `curl -i` printed.
fn statuses(out: &str) -> Vec<u16> {
    out.match_indices("HTTP/1.1 ")
        .filter_map(|(i, m)| out[i + m.len()..].get(..3)?.parse().ok())
        .collect()
}

/// The status code the README's comment shows (`# HTTP/1.1 200 OK`), if any.
fn shown_status(comments: &str) -> Option<u16> {
    statuses(comments).first().copied()
}

#[test]
fn the_readmes_curl_example_runs_as_written_on_the_local_stack() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let section = section(&readme, "## Running locally");
    let blocks: Vec<&str> = section
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.split_once('\n').map_or("", |(_, body)| body))
        .filter(|b| b.contains("curl"))
        .collect();
    assert_eq!(
        blocks.len(),
        3,
        "the README's curl blocks of \"Running locally\" (post, account, event status): {blocks:#?}"
    );
    let (post, account, status) = (blocks[0], blocks[1], blocks[2]);
    let comments = |b: &str| -> String {
        b.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start().trim_start_matches('#')))
            .collect()
    };
    for b in &blocks {
        assert!(b.contains("127.0.0.1:9000"), "{b}");
    }

    // Given the whole local stack of template.yaml, on its own ports and state directory.
    let stack = LocalStack::start("template.yaml", Path::new(env!("CARGO_TARGET_TMPDIR")));
    let port = stack.http.rsplit(':').next().expect("a port").to_owned();
    let rewrite = |b: &str| {
        b.replace("127.0.0.1:9000", &format!("127.0.0.1:{port}"))
            .replace(".local/dev/", &format!("{}/", stack.state.display()))
    };
    let source_line = post
        .lines()
        .find(|l| l.starts_with(". .local/dev/demo.env"))
        .unwrap_or_else(|| panic!("the README sources .local/dev/demo.env first:\n{post}"));

    // When the README's POSTs run as written.
    let out = bash(&rewrite(post));
    let posts = post.matches("curl ").count();
    assert_eq!(
        statuses(&out),
        vec![202; posts],
        "each of the README's {posts} POSTs answers 202:\n{out}"
    );
    let accepted: Vec<Value> = json_values(&out, "{\"accepted\"")
        .into_iter()
        .flat_map(|b| b["accepted"].as_array().cloned().unwrap_or_default())
        .collect();
    let payment = accepted
        .iter()
        .find(|a| a["type"] == "payment.received")
        .unwrap_or_else(|| panic!("ingest accepted the payment:\n{out}"));
    let payment_id = payment["id"].as_str().expect("an event id").to_owned();
    for (key, value) in shown_pairs(&comments(post)) {
        assert!(
            has_pair(&Value::Array(accepted.clone()), &key, &value),
            "the README shows \"{key}\":{value} in the answer; ingest answered:\n{out}"
        );
    }

    // Then the account read model answers as the README's comment shows (once the consumers have done their work).
    let account_script = format!("{}\n{}", rewrite(source_line), rewrite(account));
    let want_status = shown_status(&comments(account)).expect("the README shows the status");
    let want = shown_pairs(&comments(account));
    assert!(want.len() >= 4, "the README's account comment: {want:?}");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = bash(&account_script);
        let body = out.find("\r\n\r\n").map_or("", |i| &out[i + 4..]);
        let doc: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
        let pay_1 = doc["payments"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["payment_id"] == "pay_1"));
        if statuses(&out).first() == Some(&want_status)
            && doc["status"] == "open"
            && pay_1.is_some_and(|p| p["status"] == "failed")
            && want.iter().all(|(k, v)| has_pair(&doc, k, v))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GET /accounts/acc_42 never answered as the README shows ({want_status}, {want:?}); last:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // And the payment's status, looked up with the id ingest answered, says payments handled it.
    assert!(
        status.contains("/0193…"),
        "the README's status lookup elides the id as 0193…:\n{status}"
    );
    let status_script = format!(
        "{}\n{}",
        rewrite(source_line),
        rewrite(status).replace("/0193…", &format!("/{payment_id}"))
    );
    let want = shown_pairs(&comments(status));
    assert!(want.len() >= 4, "the README's status comment: {want:?}");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = bash(&status_script);
        let doc: Value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
        let payments = doc["consumers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["consumer"] == "payments"));
        if doc["id"] == payment_id.as_str()
            && payments.is_some_and(|p| p["status"] == "handled")
            && want.iter().all(|(k, v)| has_pair(&doc, k, v))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GET /events/%2Fshop%2Fcheckout/{payment_id} never answered as the README shows ({want:?}); last:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
