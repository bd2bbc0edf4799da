//! The gatherers' configuration, owned by the reporter.
//!
//! The `[gatherers]` table of the reporter's `--config` file (its top-level
//! keys are the reporter's own flags, see `hostpulse_ops::settings`), read at
//! start and again on SIGHUP or when the file changes. Connected gatherers
//! receive every change live, on their open stream, and apply it without
//! restarting. The reporter's own keys are read at start only: a reload that
//! finds them changed says so in the log (restart to apply).
//!
//! ```toml
//! spool-dir = "/var/lib/hostpulse/spool"   # the reporter's own settings
//!
//! [gatherers]
//! # Defaults for every gatherer. Absent keys leave the gatherer's own
//! # command-line value in force.
//! interval = "10s"
//! collectors = ["all"]
//!
//! # Overrides for nodes whose id matches a glob (comma-separated globs
//! # allowed). The first matching rule wins; its absent keys fall back to the
//! # defaults above.
//! [[gatherers.nodes]]
//! match = "db-*"
//! interval = "5s"
//! collectors = ["cpu", "memory", "disk", "filesystem", "pressure"]
//! ```
//!
//! Every reload that changes the effective content increases the
//! generation, which travels with each pushed configuration. A file that does
//! not parse on reload is logged and ignored: the previous configuration
//! stays in force, so a typo never stops a fleet.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostpulse_ops::reload::{Fingerprint, Watched, Why};
use hostpulse_proto::patterns::Patterns;
use hostpulse_proto::{FAMILIES, pb};
use serde::Deserialize;
use tokio::sync::watch;

/// Shortest interval a configuration may ask for.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Why a configuration file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. At start the reporter exits; on reload it
    /// keeps the previous configuration.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys (the message names the
    /// line). Fix the file and send SIGHUP again.
    #[error("{0}")]
    Syntax(String),
    /// A value is out of range: an interval below 10ms or unparseable, an
    /// unknown collector, an empty `match`.
    #[error("{0}")]
    Invalid(String),
}

/// The table pushed to gatherers.
pub const SECTION: &str = "gatherers";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    interval: Option<String>,
    collectors: Option<Vec<String>>,
    #[serde(default)]
    nodes: Vec<RuleFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFormat {
    #[serde(rename = "match")]
    pattern: String,
    interval: Option<String>,
    collectors: Option<Vec<String>>,
}

/// What a gatherer is told to run; `None` keeps its own setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Time between collections.
    pub interval: Option<Duration>,
    /// Families to collect (`["all"]` for every family).
    pub collectors: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    pattern: Patterns,
    settings: Settings,
}

/// One loaded configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    defaults: Settings,
    rules: Vec<Rule>,
    /// Increases on every effective change; 0 means "no configuration file".
    pub generation: u64,
    /// The file it came from.
    pub path: Option<PathBuf>,
    /// When it was loaded, Unix milliseconds.
    pub loaded_ms: i64,
    /// The file's other keys (the reporter's own settings, applied at start only).
    reporter_keys: toml::Table,
}

impl Config {
    /// No file: gatherers keep their own settings.
    pub fn empty() -> Self {
        Config {
            defaults: Settings::default(),
            rules: Vec::new(),
            generation: 0,
            path: None,
            loaded_ms: now_ms(),
            reporter_keys: toml::Table::new(),
        }
    }

    /// Parses the text of a whole configuration file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string()))?;
        let file: FileFormat = match table.remove(SECTION) {
            None => FileFormat::default(),
            Some(section) => section
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Syntax(format!("[{SECTION}]: {e}")))?,
        };
        let defaults = settings(file.interval.as_deref(), file.collectors, "[gatherers]")?;
        let mut rules = Vec::new();
        for (i, r) in file.nodes.into_iter().enumerate() {
            let pattern = Patterns::parse(&r.pattern);
            if pattern.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "[[gatherers.nodes]] #{}: `match` is empty",
                    i + 1
                )));
            }
            let where_ = format!("[[gatherers.nodes]] #{} ({})", i + 1, r.pattern);
            rules.push(Rule {
                pattern,
                settings: settings(r.interval.as_deref(), r.collectors, &where_)?,
            });
        }
        Ok(Config {
            defaults,
            rules,
            generation: 1,
            path: None,
            loaded_ms: now_ms(),
            reporter_keys: table,
        })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|e| match e {
            ConfigError::Syntax(m) => ConfigError::Syntax(format!("{}: {m}", path.display())),
            ConfigError::Invalid(m) => ConfigError::Invalid(format!("{}: {m}", path.display())),
            other => other,
        })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The effective settings for `node_id`: the first matching rule over the defaults.
    pub fn settings_for(&self, node_id: &str) -> Settings {
        let mut s = self.defaults.clone();
        if let Some(rule) = self.rules.iter().find(|r| r.pattern.matches(node_id)) {
            if rule.settings.interval.is_some() {
                s.interval = rule.settings.interval;
            }
            if rule.settings.collectors.is_some() {
                s.collectors.clone_from(&rule.settings.collectors);
            }
        }
        s
    }

    /// The message pushed to `node_id`.
    pub fn for_node(&self, node_id: &str) -> pb::GathererConfig {
        let s = self.settings_for(node_id);
        pb::GathererConfig {
            generation: self.generation,
            collectors: s.collectors.unwrap_or_default(),
            interval_ms: s
                .interval
                .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX)),
        }
    }

    fn same_content(&self, other: &Config) -> bool {
        self.defaults == other.defaults && self.rules == other.rules
    }
}

fn settings(
    interval: Option<&str>,
    collectors: Option<Vec<String>>,
    at: &str,
) -> Result<Settings, ConfigError> {
    let interval = match interval {
        None => None,
        Some(text) => {
            let d = humantime::parse_duration(text)
                .map_err(|e| ConfigError::Invalid(format!("{at}: interval {text:?}: {e}")))?;
            if d < MIN_INTERVAL {
                return Err(ConfigError::Invalid(format!(
                    "{at}: interval {text:?} is below 10ms"
                )));
            }
            Some(d)
        }
    };
    if let Some(list) = &collectors {
        if list.is_empty() {
            return Err(ConfigError::Invalid(format!("{at}: collectors is empty")));
        }
        for name in list {
            if name != "all" && !FAMILIES.contains(&name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "{at}: unknown collector {name:?}; known: all, {}",
                    FAMILIES.join(", ")
                )));
            }
        }
    }
    Ok(Settings {
        interval,
        collectors,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(i64::MAX))
}

/// The current configuration, shared with every stream, and its reloading.
pub struct ConfigStore {
    path: Option<PathBuf>,
    tx: watch::Sender<Arc<Config>>,
}

impl ConfigStore {
    /// Loads `path` (or starts empty without one). A bad file at start is an error.
    pub fn open(path: Option<&Path>) -> Result<Self, ConfigError> {
        let config = match path {
            Some(p) => Config::load(p)?,
            None => Config::empty(),
        };
        let (tx, _) = watch::channel(Arc::new(config));
        Ok(ConfigStore {
            path: path.map(Path::to_path_buf),
            tx,
        })
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.tx.subscribe()
    }

    /// The configuration now.
    pub fn current(&self) -> Arc<Config> {
        self.tx.borrow().clone()
    }

    /// A fingerprint of the file as it is now (size, modification time,
    /// inode), following symlinks: a ConfigMap update swaps the link target.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        hostpulse_ops::reload::fingerprint(self.path.as_ref()?)
    }

    /// Re-reads the file. Returns the new generation when the content
    /// changed, `Ok(None)` when it did not; on error the old configuration stays.
    pub fn reload(&self) -> Result<Option<u64>, ConfigError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let mut fresh = Config::load(path)?;
        let current = self.current();
        if fresh.reporter_keys != current.reporter_keys {
            tracing::warn!(
                path = %path.display(),
                "the reporter's own settings changed in the file: they take effect at the next restart ([gatherers] is applied now)"
            );
            // Warn once per change, not at every later reload.
            let mut seen = (*current).clone();
            seen.reporter_keys = fresh.reporter_keys.clone();
            self.tx.send_replace(Arc::new(seen));
        }
        let current = self.current();
        if fresh.same_content(&current) {
            return Ok(None);
        }
        fresh.generation = current.generation + 1;
        let generation = fresh.generation;
        self.tx.send_replace(Arc::new(fresh));
        Ok(Some(generation))
    }
}

/// The reload loop ([`hostpulse_ops::reload`]) re-reads the file on SIGHUP
/// and when it changes; a vanished file (a ConfigMap being swapped) is not a
/// change.
impl Watched for ConfigStore {
    fn fingerprints(&self) -> Vec<Option<Fingerprint>> {
        vec![self.fingerprint()]
    }

    fn reload(&self, why: Why) {
        if why == Why::Changed {
            if self.fingerprint().is_none() {
                return;
            }
            tracing::info!("configuration file changed");
        }
        match ConfigStore::reload(self) {
            Ok(Some(generation)) => {
                tracing::info!(generation, "configuration reloaded; pushing to gatherers")
            }
            Ok(None) => tracing::info!("configuration reloaded; nothing changed"),
            Err(e) => tracing::error!(
                error = %e,
                "configuration NOT reloaded; the previous one stays in force"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_override_defaults_field_by_field() {
        let c = Config::parse(
            r#"
            spool-dir = "/elsewhere"
            [gatherers]
            interval = "10s"
            collectors = ["all"]
            [[gatherers.nodes]]
            match = "db-*,cache-?"
            interval = "5s"
            [[gatherers.nodes]]
            match = "db-7"
            collectors = ["cpu"]
            "#,
        )
        .unwrap();
        assert_eq!(c.for_node("web-1").interval_ms, 10_000);
        let db = c.for_node("db-7");
        assert_eq!(
            (db.interval_ms, db.collectors),
            (5_000, vec!["all".to_string()]),
            "first match wins"
        );
        assert_eq!(c.for_node("cache-1").interval_ms, 5_000);
        assert_eq!(Config::empty().for_node("x"), pb::GathererConfig::default());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, reason) in [
            ("[gatherers]\ninterval = \"soon\"", "interval \"soon\""),
            ("[gatherers]\ninterval = \"1ms\"", "below 10ms"),
            (
                "[gatherers]\ncollectors = [\"gpu\"]",
                "unknown collector \"gpu\"",
            ),
            ("[gatherers]\ncollectors = []", "collectors is empty"),
            (
                "[gatherers]\nintervall = \"1s\"",
                "unknown field `intervall`",
            ),
            ("[[gatherers.nodes]]\nmatch = \"\"", "`match` is empty"),
            ("gatherers = 3", "[gatherers]"),
            ("[gatherers]\ninterval = ", "TOML"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(
                err.contains(reason) || (reason == "TOML" && !err.is_empty()),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn reload_bumps_the_generation_only_on_change_and_survives_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatherers.toml");
        std::fs::write(&path, "[gatherers]\ninterval = \"10s\"\n").unwrap();
        let store = ConfigStore::open(Some(&path)).unwrap();
        let mut rx = store.subscribe();
        assert_eq!(store.current().generation, 1);
        assert_eq!(store.reload().unwrap(), None, "same content");
        std::fs::write(&path, "# a comment\n[gatherers]\ninterval = \"10s\"\n").unwrap();
        assert_eq!(store.reload().unwrap(), None, "comments are not a change");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:1\"\n[gatherers]\ninterval = \"10s\"\n",
        )
        .unwrap();
        assert_eq!(
            store.reload().unwrap(),
            None,
            "the reporter's own keys are not pushed"
        );
        std::fs::write(&path, "[gatherers]\ninterval = \"2s\"\n").unwrap();
        assert_eq!(store.reload().unwrap(), Some(2));
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().for_node("n").interval_ms, 2_000);
        std::fs::write(&path, "[gatherers]\ninterval = \n").unwrap();
        assert!(store.reload().is_err());
        assert_eq!(store.current().generation, 2, "the old configuration stays");
    }
}
