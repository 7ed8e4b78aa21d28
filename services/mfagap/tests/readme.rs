//! The README's configuration reference is the commands' `--help`, so it cannot drift.
//!
//! README.md holds one table per command between `<!-- flags:COMMAND -->` and
//! `<!-- /flags:COMMAND -->`: a row per long flag with its environment variable and default.
//! These tests run the built `mfagap COMMAND --help` and check that every long flag of the help
//! has a row, that every row names a flag the help has, and that the environment variable and
//! the default of each row are the help's.
//!
//! The tables are generated from the help: `MFAGAP_README_BLESS=1 cargo test -p mfagap --test
//! readme` rewrites them (flags, variables, defaults and the help's first sentence as the
//! meaning) and the test then passes; review the diff of README.md before committing it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The commands whose flags the README documents.
const COMMANDS: [&str; 5] = ["ingest", "archive", "run", "report", "check"];

/// One long flag as `--help` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Flag {
    /// `--name`.
    long: String,
    /// `-X`, when there is one.
    short: Option<String>,
    /// `<VALUE>` without the brackets; none for a switch.
    value: Option<String>,
    /// The environment variable, without `=value`.
    env: Option<String>,
    default: Option<String>,
    /// The first sentence of the help text, and the possible values.
    meaning: String,
}

fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md")
}

/// `mfagap COMMAND --help`, with no `MFAGAP_…` variable set (clap would show its value).
fn help(command: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mfagap"));
    cmd.args([command, "--help"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MFAGAP_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("run mfagap");
    assert!(out.status.success(), "mfagap {command} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

/// The text inside `[name: …]` in `text`.
fn bracket(text: &str, name: &str) -> Option<String> {
    let open = format!("[{name}: ");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(']').expect("closing bracket");
    Some(text[start..end].to_owned())
}

/// Every long flag of a `--help` output, but `--help`.
fn parse_help(text: &str) -> Vec<Flag> {
    // Split the Options section, and the sections of flag groups after it, into one block of
    // lines per flag.
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_options = false;
    for line in text.lines() {
        if line == "Options:" {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        // The flags of a group come under their own heading ("Event Hubs source:").
        if indent == 0 && trimmed.ends_with(':') {
            if let Some((_, body)) = blocks.last_mut() {
                body.push(String::new());
            }
            continue;
        }
        let is_flag = indent <= 6
            && (trimmed.starts_with("--")
                || (trimmed.starts_with('-') && trimmed.get(2..4) == Some(", ")));
        if is_flag {
            blocks.push((trimmed.to_owned(), Vec::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            body.push(trimmed.to_owned());
        }
    }

    let mut flags = Vec::new();
    for (head, body) in blocks {
        // `-X, --kafka-property <KEY=VALUE>  text…` (the text follows on one line in short help).
        let (names, rest) = match head.find(" <") {
            Some(i) => {
                let close = head[i..].find('>').map(|j| i + j).expect("closing >");
                (
                    head[..close + 1].to_owned(),
                    head[close + 1..].trim().to_owned(),
                )
            }
            None => match head.find("  ") {
                Some(i) => (head[..i].to_owned(), head[i..].trim().to_owned()),
                None => (head.clone(), String::new()),
            },
        };
        let mut short = None;
        let mut long = String::new();
        let mut value = None;
        for part in names.split([',', ' ']).filter(|p| !p.is_empty()) {
            if let Some(v) = part.strip_prefix('<') {
                value = Some(v.trim_end_matches('>').to_owned());
            } else if part.starts_with("--") {
                long = part.to_owned();
            } else if part.starts_with('-') {
                short = Some(part.to_owned());
            }
        }
        if long == "--help" {
            continue;
        }

        // The description: up to the first blank line; then the possible values, env, default.
        let mut lines = vec![rest];
        lines.extend(body);
        let mut sentence = String::new();
        let mut values: Vec<String> = Vec::new();
        let mut in_values = false;
        let mut first_paragraph_done = false;
        let mut all = String::new();
        for line in &lines {
            all.push(' ');
            all.push_str(line);
            if line.starts_with("Possible values:") {
                in_values = true;
                first_paragraph_done = true;
                continue;
            }
            if in_values {
                if let Some(item) = line.strip_prefix("- ") {
                    let name = item.split(':').next().unwrap_or(item).trim();
                    values.push(format!("`{name}`"));
                    continue;
                }
                if line.is_empty() || line.starts_with('[') {
                    in_values = false;
                }
                continue;
            }
            if line.is_empty() || line.starts_with('[') {
                if !sentence.is_empty() {
                    first_paragraph_done = true;
                }
                continue;
            }
            if !first_paragraph_done {
                if !sentence.is_empty() {
                    sentence.push(' ');
                }
                sentence.push_str(line);
            }
        }
        let env = bracket(&all, "env");
        let default = bracket(&all, "default");
        let possible = bracket(&all, "possible values");
        // Short help puts the brackets on the description's line.
        let sentence = ["[env: ", "[default: ", "[possible values: "]
            .iter()
            .filter_map(|b| sentence.find(b))
            .min()
            .map_or(sentence.clone(), |i| sentence[..i].trim().to_owned());
        if let Some(p) = possible {
            values.extend(p.split(", ").map(|v| format!("`{v}`")));
        }
        let mut meaning = sentence;
        if !values.is_empty() {
            meaning = format!("{} ({})", meaning.trim_end_matches('.'), values.join(", "));
        }
        flags.push(Flag {
            long,
            short,
            value,
            env: env.map(|e| e.split('=').next().unwrap_or_default().to_owned()),
            default,
            meaning,
        });
    }
    flags
}

fn code(s: &str) -> String {
    format!("`{}`", s.replace('|', "\\|"))
}

/// The table of a command's flags, as the README holds it.
fn table(flags: &[Flag]) -> String {
    let mut out = String::from("| Flag | Environment variable | Default | Meaning |\n");
    out.push_str("| --- | --- | --- | --- |\n");
    for f in flags {
        let mut name = match &f.short {
            Some(s) => format!("{s}, {}", f.long),
            None => f.long.clone(),
        };
        if let Some(v) = &f.value {
            name = format!("{name} {v}");
        }
        let env = f.env.as_deref().map_or("—".to_owned(), code);
        let default = f.default.as_deref().map_or("—".to_owned(), code);
        out.push_str(&format!(
            "| {} | {env} | {default} | {} |\n",
            code(&name),
            f.meaning.replace('|', "\\|")
        ));
    }
    out
}

fn markers(command: &str) -> (String, String) {
    (
        format!("<!-- flags:{command} -->\n"),
        format!("<!-- /flags:{command} -->"),
    )
}

/// The README's table of a command: the text between its markers.
fn section<'a>(readme: &'a str, command: &str) -> &'a str {
    let (open, close) = markers(command);
    let start = readme
        .find(&open)
        .unwrap_or_else(|| panic!("README.md has no {}", open.trim()))
        + open.len();
    let end = start
        + readme[start..]
            .find(&close)
            .unwrap_or_else(|| panic!("README.md has no {close}"));
    &readme[start..end]
}

/// A README cell without its code quotes and escapes; `—` is none.
fn cell_value(cell: &str) -> Option<String> {
    let c = cell.trim();
    if c == "—" || c.is_empty() {
        return None;
    }
    Some(c.trim_matches('`').replace("\\|", "|"))
}

/// Long flag → (environment variable, default) of each row of a README table.
fn rows(section: &str) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')).skip(2) {
        // Split on the pipes that are not escaped.
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut prev = ' ';
        for ch in line.chars() {
            if ch == '|' && prev != '\\' {
                cells.push(std::mem::take(&mut cell));
            } else {
                cell.push(ch);
            }
            prev = ch;
        }
        let cells: Vec<&str> = cells.iter().skip(1).map(String::as_str).collect();
        assert!(cells.len() >= 3, "not a row of the flag table: {line}");
        let long = cells[0]
            .split(['`', ',', ' '])
            .find(|w| w.starts_with("--"))
            .unwrap_or_else(|| panic!("no --flag in the first cell: {line}"))
            .to_owned();
        let previous = out.insert(long.clone(), (cell_value(cells[1]), cell_value(cells[2])));
        assert!(previous.is_none(), "{long} has two rows");
    }
    out
}

/// What is wrong with the README's table of `command`, one line per problem.
fn problems(readme: &str, command: &str, flags: &[Flag]) -> Vec<String> {
    let documented = rows(section(readme, command));
    let mut problems = Vec::new();
    for f in flags {
        match documented.get(&f.long) {
            None => problems.push(format!(
                "mfagap {command}: {} is in --help but not in the README's table",
                f.long
            )),
            Some((env, default)) => {
                if env != &f.env {
                    problems.push(format!(
                        "mfagap {command} {}: the README says variable {env:?}, --help says {:?}",
                        f.long, f.env
                    ));
                }
                if default != &f.default {
                    problems.push(format!(
                        "mfagap {command} {}: the README says default {default:?}, --help says {:?}",
                        f.long, f.default
                    ));
                }
            }
        }
    }
    for long in documented.keys() {
        if !flags.iter().any(|f| &f.long == long) {
            problems.push(format!(
                "mfagap {command}: the README's table has {long}, which --help does not know"
            ));
        }
    }
    problems
}

/// Rewrites the tables from the help (`MFAGAP_README_BLESS=1`).
fn bless(readme: &str) -> String {
    let mut text = readme.to_owned();
    for command in COMMANDS {
        let flags = parse_help(&help(command));
        let old = section(&text, command).to_owned();
        let (open, _) = markers(command);
        let at = text.find(&open).unwrap() + open.len();
        text.replace_range(at..at + old.len(), &table(&flags));
    }
    text
}

#[test]
fn the_readme_documents_every_flag_of_every_command_and_no_other() {
    let path = readme_path();
    let mut readme = std::fs::read_to_string(&path).expect("read README.md");
    if std::env::var_os("MFAGAP_README_BLESS").is_some() {
        readme = bless(&readme);
        std::fs::write(&path, &readme).expect("write README.md");
    }
    let mut all = Vec::new();
    for command in COMMANDS {
        let flags = parse_help(&help(command));
        // Every command has at least three flags (`check` has three); fewer means the
        // parser lost some.
        assert!(
            flags.len() >= 3,
            "mfagap {command} --help parsed into only {flags:?}"
        );
        all.extend(problems(&readme, command, &flags));
    }
    assert!(
        all.is_empty(),
        "README.md's configuration reference differs from --help \
         (MFAGAP_README_BLESS=1 cargo test -p mfagap --test readme regenerates it):\n  {}",
        all.join("\n  ")
    );
}

#[test]
fn the_help_parser_reads_both_layouts_clap_prints() {
    let long = "Options:
      --source <SOURCE>
          Where message bodies come from

          Possible values:
          - eventhubs: Event Hubs over AMQP
          - kafka:     any Kafka topic
          
          [env: MFAGAP_SOURCE=]
          [default: kafka]

  -X, --kafka-property <KEY=VALUE>
          librdkafka property (repeatable). More text
          here.
          
          [env: MFAGAP_KAFKA_PROPERTIES]

      --by-user
          One row per user

  -h, --help
          Print help
";
    let flags = parse_help(long);
    assert_eq!(flags.len(), 3, "{flags:?}");
    assert_eq!(flags[0].long, "--source");
    assert_eq!(flags[0].env.as_deref(), Some("MFAGAP_SOURCE"));
    assert_eq!(flags[0].default.as_deref(), Some("kafka"));
    assert_eq!(
        flags[0].meaning,
        "Where message bodies come from (`eventhubs`, `kafka`)"
    );
    assert_eq!(flags[1].short.as_deref(), Some("-X"));
    assert_eq!(flags[1].value.as_deref(), Some("KEY=VALUE"));
    assert_eq!(flags[1].env.as_deref(), Some("MFAGAP_KAFKA_PROPERTIES"));
    assert_eq!(flags[1].default, None);
    assert_eq!(flags[2].long, "--by-user");
    assert_eq!(flags[2].value, None);

    let short = "Options:
      --data <PATH|URL>
          Root of the dataset [env: MFAGAP_DATA=] [default: ./mfagap-data]
      --log-format <LOG_FORMAT>
          Log format [env: MFAGAP_LOG_FORMAT=] [default: human] [possible values: human, json]
  -h, --help
          Print help
";
    let flags = parse_help(short);
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert_eq!(flags[0].value.as_deref(), Some("PATH|URL"));
    assert_eq!(flags[0].meaning, "Root of the dataset");
    assert_eq!(flags[0].default.as_deref(), Some("./mfagap-data"));
    assert_eq!(flags[1].meaning, "Log format (`human`, `json`)");

    // A table made of them reads back to the same flags.
    let readme = format!("<!-- flags:x -->\n{}<!-- /flags:x -->\n", table(&flags));
    assert!(problems(&readme, "x", &flags).is_empty());
    let without = readme.replace(
        "| `--log-format LOG_FORMAT` |",
        "| `--log-fmt LOG_FORMAT` |",
    );
    assert_eq!(problems(&without, "x", &flags).len(), 2, "{without}");
}
