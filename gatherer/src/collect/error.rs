//! What can go wrong while collecting, and what the runner does about it.

use std::path::PathBuf;

/// A failure of one family in one cycle.
///
/// The runner logs every error and counts it in the `hostpulse_self` table; only
/// [`CollectError::Unavailable`] changes behaviour (the family is disabled).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The family's source file does not exist under the configured root: the
    /// kernel lacks the feature (no PSI, no hwmon) or the root is wrong. The
    /// runner disables the family with one info line and does not retry it.
    #[error("{} is not present", path.display())]
    Unavailable {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// The file exists but reading it failed (permissions, EIO, or a kernel
    /// feature switched off such as PSI with `psi=0`, which answers EOPNOTSUPP).
    /// Counted; retried next cycle.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but its content does not parse (truncated, garbage, a
    /// format we do not know). Counted; retried next cycle; the family's other
    /// files and the other families are still reported.
    #[error("parsing {}: {source}", path.display())]
    Parse {
        /// The file whose content was rejected.
        path: PathBuf,
        /// What was wrong with it.
        source: ParseError,
    },
}

impl CollectError {
    /// The error for an I/O failure on `path`: a missing file is
    /// [`CollectError::Unavailable`], anything else [`CollectError::Read`].
    pub fn from_io(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            CollectError::Unavailable {
                path: path.to_path_buf(),
            }
        } else {
            CollectError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Why a parser rejected a file's content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// A line, key or column the format requires is absent: a truncated file,
    /// or a kernel older than the format we read.
    #[error("missing {0}")]
    Missing(String),
    /// A column that must be a number is not one.
    #[error("{what}: {text:?} is not a number")]
    BadNumber {
        /// Which value was being read.
        what: String,
        /// The text found instead (cut to 64 bytes).
        text: String,
    },
    /// procfs's own parser rejected the file.
    #[error("{0}")]
    Procfs(String),
}

impl ParseError {
    /// A [`ParseError::Missing`] for `what`.
    pub fn missing(what: impl Into<String>) -> Self {
        ParseError::Missing(what.into())
    }

    /// A [`ParseError::BadNumber`], keeping at most 64 bytes of the bad text.
    pub fn bad_number(what: impl Into<String>, text: &str) -> Self {
        let mut end = text.len().min(64);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        ParseError::BadNumber {
            what: what.into(),
            text: text[..end].to_string(),
        }
    }
}

impl From<procfs::ProcError> for ParseError {
    fn from(e: procfs::ProcError) -> Self {
        ParseError::Procfs(e.to_string())
    }
}

/// Parses a decimal unsigned integer, naming `what` in the error.
pub fn parse_u64(what: &str, text: &str) -> Result<u64, ParseError> {
    text.parse().map_err(|_| ParseError::bad_number(what, text))
}

/// Parses a decimal signed integer, naming `what` in the error.
pub fn parse_i64(what: &str, text: &str) -> Result<i64, ParseError> {
    text.parse().map_err(|_| ParseError::bad_number(what, text))
}

/// Parses a float, naming `what` in the error.
pub fn parse_f64(what: &str, text: &str) -> Result<f64, ParseError> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ParseError::bad_number(what, text)),
    }
}
