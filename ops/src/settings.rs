//! Layered settings: command-line flag > `HOSTPULSE_*` variable > config file > default.
//!
//! Each binary describes its settings once, as a clap `Parser` whose every
//! flag has an environment variable. This module adds the third layer: a TOML
//! file named by `--config` whose keys are the long flag names
//! (`spool-dir = "/var/lib/hostpulse/spool"`; `spool_dir` is accepted too).
//! A repeatable flag or one taking a comma-separated list takes a TOML array;
//! a switch (`--once`) takes `true`/`false`.
//!
//! How the layers meet: the command line and the environment are parsed
//! first; every file key whose flag did *not* come from either is turned into
//! `--flag=value` arguments placed before the real ones, and everything is
//! parsed again. clap therefore validates file values exactly like flags, and
//! the precedence holds by construction.
//!
//! Invariants:
//! - A key the binary does not know is an error naming the key and the file
//!   (a typo never silently falls back to a default).
//! - Tables named in `sections` belong to the binary (the reporter's
//!   `[gatherers]`); this module skips them and reports them as known.
//! - `config` and `print-config` cannot be set from the file.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

/// The flag naming the file, and the flag printing the result.
const CONFIG: &str = "config";
const PRINT_CONFIG: &str = "print_config";

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The command line or the environment is wrong, or `--help`/`--version`
    /// was asked: call [`clap::Error::exit`], which prints and exits with
    /// clap's codes.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The file named by `--config` could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not TOML (the message names the line and column).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file has a key that is not one of the binary's settings.
    #[error("{path}: unknown key `{key}` (the keys are the long flag names of --help)")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key as written.
        key: String,
    },
    /// The key exists but its TOML type does not fit the flag (a table, an
    /// array for a single-valued flag, a string for a switch, a key that
    /// cannot be set from a file).
    #[error("{path}: key `{key}`: {expected}")]
    Type {
        /// The file.
        path: PathBuf,
        /// The key as written.
        key: String,
        /// What the key takes.
        expected: String,
    },
    /// A value from the file was refused by the flag's own validation.
    #[error("{path}: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// clap's message, naming the flag.
        message: String,
    },
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    Flag,
    /// An `HOSTPULSE_*` environment variable.
    Env,
    /// The `--config` file.
    File,
    /// The binary's default.
    Default,
    /// Not set anywhere (an optional setting).
    Unset,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
            Source::Unset => "unset",
        }
    }
}

/// One setting's effective value.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key (the long flag name).
    pub key: String,
    /// The values as text (several for list settings).
    pub values: Vec<String>,
    /// Where they came from.
    pub source: Source,
    /// The setting is a switch (rendered as a TOML boolean).
    switch: bool,
    /// The setting takes a list (rendered as a TOML array).
    list: bool,
}

/// The settings of one binary, with where each came from.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The parsed settings.
    pub args: A,
    /// The config file, when one was given: its path and whole content
    /// (including the binary's own sections).
    pub file: Option<(PathBuf, toml::Table)>,
    entries: Vec<Entry>,
}

/// Parses `argv` (with the program name first) and the environment, then the
/// file named by `--config`, skipping the tables named in `sections`.
pub fn load<A>(
    argv: impl IntoIterator<Item = OsString>,
    sections: &[&str],
) -> Result<Loaded<A>, SettingsError>
where
    A: CommandFactory + FromArgMatches,
{
    let argv: Vec<OsString> = argv.into_iter().collect();
    let first = A::command().try_get_matches_from(&argv)?;
    let Some(path) = first.get_raw(CONFIG).and_then(|mut v| v.next()) else {
        let args = A::from_arg_matches(&first)?;
        return Ok(Loaded {
            args,
            file: None,
            entries: entries::<A>(&first, &[]),
        });
    };
    let path = PathBuf::from(path);
    let text = std::fs::read_to_string(&path).map_err(|source| SettingsError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SettingsError::Syntax {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let (extra, from_file) = file_arguments::<A>(&path, &table, &first, sections)?;
    let mut merged = Vec::with_capacity(argv.len() + extra.len());
    merged.extend(argv.first().cloned());
    merged.extend(extra);
    merged.extend(argv.into_iter().skip(1));
    let matches = A::command()
        .try_get_matches_from(&merged)
        .map_err(|e| SettingsError::Value {
            path: path.clone(),
            message: first_line(&e.to_string()),
        })?;
    let args = A::from_arg_matches(&matches)?;
    Ok(Loaded {
        args,
        entries: entries::<A>(&matches, &from_file),
        file: Some((path, table)),
    })
}

/// The arguments the file contributes, and the ids of the settings it set.
fn file_arguments<A: CommandFactory>(
    path: &Path,
    table: &toml::Table,
    first: &ArgMatches,
    sections: &[&str],
) -> Result<(Vec<OsString>, Vec<String>), SettingsError> {
    let command = A::command();
    let mut out = Vec::new();
    let mut set = Vec::new();
    for (key, value) in table {
        if sections.contains(&key.as_str()) {
            continue;
        }
        let long = key.replace('_', "-");
        let Some(arg) = command.get_arguments().find(|a| {
            // A renamed flag's old name (`visible_alias`) stays a valid key.
            a.get_long() == Some(long.as_str())
                || a.get_all_aliases()
                    .is_some_and(|names| names.contains(&long.as_str()))
        }) else {
            return Err(SettingsError::UnknownKey {
                path: path.to_path_buf(),
                key: key.clone(),
            });
        };
        let id = arg.get_id().as_str();
        let type_error = |expected: &str| SettingsError::Type {
            path: path.to_path_buf(),
            key: key.clone(),
            expected: expected.to_string(),
        };
        if id == CONFIG || id == PRINT_CONFIG {
            return Err(type_error("can only be given on the command line"));
        }
        // The command line and the environment win over the file.
        if matches!(
            first.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let flag = format!("--{long}");
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => match value {
                toml::Value::Boolean(true) => out.push(OsString::from(&flag)),
                toml::Value::Boolean(false) => {}
                _ => return Err(type_error("takes true or false")),
            },
            action => {
                let list =
                    matches!(action, ArgAction::Append) || arg.get_value_delimiter().is_some();
                let items: Vec<String> = match value {
                    toml::Value::Array(items) if list => items
                        .iter()
                        .map(|v| {
                            scalar(v)
                                .ok_or_else(|| type_error("takes an array of strings or numbers"))
                        })
                        .collect::<Result<_, _>>()?,
                    toml::Value::Array(_) => {
                        return Err(type_error("takes one value, not an array"));
                    }
                    other => vec![
                        scalar(other).ok_or_else(|| type_error("takes a string or a number"))?,
                    ],
                };
                for item in items {
                    out.push(OsString::from(format!("{flag}={item}")));
                }
            }
        }
        set.push(id.to_string());
    }
    Ok((out, set))
}

/// A TOML scalar as the text a flag would take.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

fn entries<A: CommandFactory>(matches: &ArgMatches, from_file: &[String]) -> Vec<Entry> {
    let command = A::command();
    let mut out = Vec::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if matches!(id, CONFIG | PRINT_CONFIG | "help" | "version") {
            continue;
        }
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = match matches.value_source(id) {
            // The file's values arrive as arguments: tell them apart.
            Some(ValueSource::CommandLine) if from_file.iter().any(|f| f == id) => Source::File,
            Some(ValueSource::CommandLine) => Source::Flag,
            Some(ValueSource::EnvVariable) => Source::Env,
            Some(ValueSource::DefaultValue) => Source::Default,
            _ => Source::Unset,
        };
        let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let list =
            matches!(arg.get_action(), ArgAction::Append) || arg.get_value_delimiter().is_some();
        out.push(Entry {
            key: long.to_string(),
            values,
            source,
            switch,
            list,
        });
    }
    out
}

impl<A> Loaded<A> {
    /// Every setting with its effective value and source, in --help order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The effective settings as a TOML file that `--config` accepts, each
    /// line commented with its source. `redact(key, value)` may hide secrets
    /// (return the text to show instead).
    pub fn render(&self, program: &str, redact: &dyn Fn(&str, &str) -> String) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# effective configuration of {program} (flag > HOSTPULSE_* variable > {} > default)",
            self.file.as_ref().map_or_else(
                || "config file".to_string(),
                |(p, _)| p.display().to_string()
            )
        );
        for e in &self.entries {
            if e.source == Source::Unset {
                let _ = writeln!(out, "# {} =  # unset", e.key);
                continue;
            }
            let value = if e.switch {
                (e.values.first().map(String::as_str) == Some("true")).to_string()
            } else if e.list {
                let items: Vec<String> =
                    e.values.iter().map(|v| quote(&redact(&e.key, v))).collect();
                format!("[{}]", items.join(", "))
            } else {
                quote(&redact(&e.key, e.values.first().map_or("", String::as_str)))
            };
            let _ = writeln!(out, "{} = {value}  # {}", e.key, e.source.label());
        }
        out
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, env = "OPS_TEST_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        print_config: bool,
        #[arg(long, env = "OPS_TEST_LISTEN", default_value = "0.0.0.0:1")]
        listen: String,
        #[arg(long, env = "OPS_TEST_LEVEL", default_value = "info")]
        log_level: String,
        #[arg(long, default_value_t = 4)]
        max_streams: u32,
        #[arg(long)]
        once: bool,
        #[arg(long = "label", value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(long)]
        node_id: Option<String>,
        #[arg(long, visible_alias = "old-name", default_value = "x")]
        new_name: String,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn load_with(text: &str, extra: &[&str]) -> Result<Loaded<Demo>, SettingsError> {
        let f = file(text);
        let mut argv: Vec<OsString> = vec!["demo".into(), "--config".into(), f.path().into()];
        argv.extend(extra.iter().map(OsString::from));
        load::<Demo>(argv, &["gatherers"])
    }

    #[test]
    fn a_renamed_flag_keeps_its_old_name_as_a_file_key() {
        let l = load_with("old_name = \"kept\"\n", &[]).unwrap();
        assert_eq!(l.args.new_name, "kept");
    }

    #[test]
    fn file_values_fill_what_flags_leave() {
        let l = load_with(
            "listen = \"127.0.0.1:9\"\nmax_streams = 7\nonce = true\nlabel = [\"a=1\", \"b=2\"]\n[gatherers]\ninterval = \"5s\"\n",
            &["--max-streams", "8"],
        )
        .unwrap();
        assert_eq!(l.args.listen, "127.0.0.1:9");
        assert_eq!(l.args.max_streams, 8, "the flag wins over the file");
        assert!(l.args.once);
        assert_eq!(l.args.labels, ["a=1", "b=2"]);
        let source = |k: &str| l.entries().iter().find(|e| e.key == k).unwrap().source;
        assert_eq!(source("listen"), Source::File);
        assert_eq!(source("max-streams"), Source::Flag);
        assert_eq!(source("log-level"), Source::Default);
        assert_eq!(source("node-id"), Source::Unset);
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let err = load_with("listne = \"x\"\n", &[]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, SettingsError::UnknownKey { .. }), "{text}");
        assert!(text.contains("`listne`") && text.contains(".tmp"), "{text}");
    }

    #[test]
    fn wrong_types_and_bad_values_are_refused() {
        assert!(matches!(
            load_with("once = \"yes\"\n", &[]),
            Err(SettingsError::Type { .. })
        ));
        assert!(matches!(
            load_with("listen = [\"a\", \"b\"]\n", &[]),
            Err(SettingsError::Type { .. })
        ));
        assert!(matches!(
            load_with("config = \"other.toml\"\n", &[]),
            Err(SettingsError::Type { .. })
        ));
        let err = load_with("max-streams = \"many\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("--max-streams"), "{err}");
        assert!(matches!(
            load_with("listen = \n", &[]),
            Err(SettingsError::Syntax { .. })
        ));
    }

    #[test]
    fn rendered_configuration_loads_back_to_the_same_settings() {
        let l = load_with("listen = \"127.0.0.1:9\"\nlabel = [\"a=1\"]\n", &["--once"]).unwrap();
        let text = l.render("demo", &|_, v| v.to_string());
        assert!(text.contains("listen = \"127.0.0.1:9\"  # file"), "{text}");
        assert!(text.contains("once = true  # flag"), "{text}");
        assert!(text.contains("# node-id =  # unset"), "{text}");
        let again = load_with(&text, &[]).unwrap();
        assert_eq!(again.args.listen, "127.0.0.1:9");
        assert!(again.args.once);
        assert_eq!(again.args.labels, ["a=1"]);
        assert_eq!(again.args.max_streams, 4);
    }

    #[test]
    fn secrets_can_be_hidden_when_printing() {
        let l = load_with("node-id = \"secret\"\n", &[]).unwrap();
        let text = l.render("demo", &|k, v| {
            if k == "node-id" {
                "<redacted>".into()
            } else {
                v.into()
            }
        });
        assert!(
            !text.contains("secret") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
