//! The shared bearer token (`--token-file`), for clusters without mutual TLS.
//!
//! The file holds one token per line; every non-empty line (surrounding
//! whitespace ignored) is accepted. Rotation is therefore: add the new token
//! as a second line, roll the gatherers to it, remove the old line. The file
//! is re-read on SIGHUP and when it changes; a file that cannot be read or
//! holds no token keeps the previous tokens in force.
//!
//! A presented token is compared with every accepted one in constant time
//! (no early exit on the first differing byte, nor on the first match), so
//! the time taken tells nothing about how close a guess is. Tokens are never
//! logged.

use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

use crate::security::{Load, Reloadable};

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read; fix the path or its mode.
    #[error("cannot read --token-file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file holds no non-empty line.
    #[error("--token-file {0} holds no token (one token per line)")]
    Empty(PathBuf),
    /// A line holds a character that cannot travel in an HTTP header (a
    /// control character, non-ASCII text); the line number is 1-based.
    #[error("--token-file {path}: line {line} is not a valid token (printable ASCII only)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which line.
        line: usize,
    },
}

/// The accepted tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens(Vec<Vec<u8>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} accepted)", self.0.len())
    }
}

impl Tokens {
    /// Every non-empty line of `text`, trimmed. `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() {
                continue;
            }
            if !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                return Err(TokenError::Invalid {
                    path: path.to_path_buf(),
                    line: i + 1,
                });
            }
            tokens.push(token.as_bytes().to_vec());
        }
        if tokens.is_empty() {
            return Err(TokenError::Empty(path.to_path_buf()));
        }
        Ok(Tokens(tokens))
    }

    /// Reads and parses the file.
    pub fn load(path: &Path) -> Result<Tokens, TokenError> {
        let text = std::fs::read(path).map_err(|source| TokenError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Tokens::parse(&String::from_utf8_lossy(&text), path)
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a loaded file.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens, in constant time for a
    /// given number and lengths of tokens.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for token in &self.0 {
            // ct_eq on slices of different lengths is false (the lengths
            // are not secret enough to hide: a token's length is public).
            found |= token.as_slice().ct_eq(presented);
        }
        found.into()
    }
}

/// The tokens in force, replaced as a whole on a successful reload.
pub type TokenState = Reloadable<Tokens>;

impl Load for Tokens {
    type Source = PathBuf;
    type Error = TokenError;

    fn load(path: &PathBuf) -> Result<Tokens, TokenError> {
        Tokens::load(path)
    }
}

/// The token of an `authorization: Bearer <token>` header value.
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Tokens, TokenError> {
        Tokens::parse(text, Path::new("tokens"))
    }

    #[test]
    fn every_non_empty_line_is_a_token() {
        let t = parse("old-token\n\n  new-token  \r\n\t\n").unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.accepts(b"old-token"));
        assert!(t.accepts(b"new-token"));
        assert!(!t.accepts(b"new-token "));
        assert!(!t.accepts(b"new-toke"));
        assert!(!t.accepts(b""));
        assert!(!t.accepts(b"old-tokenx"));
    }

    #[test]
    fn files_without_a_usable_token_are_refused() {
        assert!(matches!(parse(""), Err(TokenError::Empty(_))));
        assert!(matches!(parse(" \n\n"), Err(TokenError::Empty(_))));
        let err = parse("good\nbad\u{7}token\n").unwrap_err();
        assert!(matches!(err, TokenError::Invalid { line: 2, .. }), "{err}");
        assert!(parse("caf\u{e9}").is_err());
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let t = parse("s3cret").unwrap();
        assert_eq!(format!("{t:?}"), "Tokens(1 accepted)");
    }

    #[test]
    fn bearer_headers_parse() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }

    #[test]
    fn reload_keeps_the_old_tokens_when_the_file_goes_bad() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "one\n").unwrap();
        let state = TokenState::open(path.clone()).unwrap();
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_eq!(state.reload().unwrap().len(), 2);
        std::fs::write(&path, "\n").unwrap();
        assert!(state.reload().is_err());
        assert!(state.current().accepts(b"two"));
        std::fs::remove_file(&path).unwrap();
        assert!(state.reload().is_err());
        assert!(state.current().accepts(b"one"));
    }
}
