//! The bearer tokens (`--token-file`), for clusters without mutual TLS.
//!
//! # File format
//!
//! ```text
//! # hostpulse tokens, one per line          <- comment: never a token
//! s3cret-for-any-node                        <- allows any node id
//! s3cret-for-web node=web-*                  <- only node ids matching web-*
//! s3cret-for-db node=db-1,db-2               <- a comma-separated list
//! ```
//!
//! - Blank lines and lines whose first non-blank character is `#` are
//!   ignored: they never authenticate.
//! - Otherwise the line, trimmed, is a token, unless its last
//!   blank-separated word starts with `node=`: then the words before it are
//!   the token and the list after `node=` bounds the node ids a stream with
//!   that token may claim in its Hello ([`crate::identity`]: `*` matches
//!   within one DNS label, case ignored). Plain token lines, as before, allow
//!   any node id (unless `--node-binding require`).
//! - Printable ASCII only (the token travels in an HTTP header).
//!
//! Rotation is therefore: add the new token as a second line, roll the
//! gatherers to it, remove the old line. The file is re-read on SIGHUP and
//! when it changes; a file that cannot be read or holds no token keeps the
//! previous tokens in force.
//!
//! A presented token is compared with every accepted one in constant time
//! (no early exit on the first differing byte, nor on the first match), so
//! the time taken tells nothing about how close a guess is. Tokens are never
//! logged.

use std::path::{Path, PathBuf};

use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::identity::NodePatterns;
use hostpulse_ops::reload::{Load, Reloadable};

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
    /// The file holds no token line (only blank lines and comments).
    #[error(
        "--token-file {0} holds no token (one token per line; blank lines and # comments are ignored)"
    )]
    Empty(PathBuf),
    /// A line ends with `node=` and no pattern, or `node=PATTERNS` alone.
    #[error("--token-file {path}: line {line} is not `TOKEN` or `TOKEN node=PATTERN[,PATTERN...]`")]
    Binding {
        /// The file.
        path: PathBuf,
        /// Which line (1-based).
        line: usize,
    },
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

/// One accepted token and the node ids it may claim.
#[derive(Clone, PartialEq, Eq)]
struct Token {
    secret: Vec<u8>,
    /// `None`: any node id.
    nodes: Option<NodePatterns>,
}

/// The accepted tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens(Vec<Token>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} accepted)", self.0.len())
    }
}

impl Tokens {
    /// The token lines of `text` (see the module doc). `path` only names
    /// the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Tokens, TokenError> {
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !line
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
            {
                return Err(TokenError::Invalid {
                    path: path.to_path_buf(),
                    line: i + 1,
                });
            }
            let binding_error = || TokenError::Binding {
                path: path.to_path_buf(),
                line: i + 1,
            };
            let token = match line.rsplit_once([' ', '\t']) {
                Some((secret, last)) if last.starts_with("node=") => {
                    let nodes =
                        NodePatterns::parse(&last["node=".len()..]).ok_or_else(binding_error)?;
                    Token {
                        secret: secret.trim_end().as_bytes().to_vec(),
                        nodes: Some(nodes),
                    }
                }
                _ if line.starts_with("node=") => return Err(binding_error()),
                _ => Token {
                    secret: line.as_bytes().to_vec(),
                    nodes: None,
                },
            };
            tokens.push(token);
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
        self.find(presented).is_some()
    }

    /// The node patterns of the token `presented`: `None` if it is not a
    /// token, `Some(None)` for a token that allows any node id. Every token
    /// is compared, in constant time.
    pub fn find(&self, presented: &[u8]) -> Option<Option<&NodePatterns>> {
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, token) in self.0.iter().enumerate() {
            // ct_eq on slices of different lengths is false (the lengths
            // are not secret enough to hide: a token's length is public).
            let equal = token.secret.as_slice().ct_eq(presented);
            index = u64::conditional_select(&index, &(i as u64), equal);
            found |= equal;
        }
        bool::from(found).then(|| self.0[index as usize].nodes.as_ref())
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
    fn comments_and_blank_lines_never_authenticate() {
        let t = parse("# hostpulse tokens, one per line\n\n  #indented\ngood\n").unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.accepts(b"good"));
        for comment in ["# hostpulse tokens, one per line", "#indented", "#", ""] {
            assert!(!t.accepts(comment.as_bytes()), "{comment:?}");
        }
        // A file of comments only holds no token.
        assert!(matches!(
            parse("# one\n   # two\n\n"),
            Err(TokenError::Empty(_))
        ));
    }

    #[test]
    fn token_lines_may_bind_node_patterns() {
        let t = parse("any-node\nweb-token node=web-*\ndb token\tnode=db-1,db-2\n").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.find(b"any-node"), Some(None));
        let web = t.find(b"web-token").unwrap().unwrap();
        assert!(web.matches("web-3") && !web.matches("db-1"));
        assert_eq!(
            t.find(b"db token").unwrap().unwrap().to_string(),
            "db-1,db-2"
        );
        assert_eq!(t.find(b"web-token node=web-*"), None);
        assert_eq!(t.find(b"nope"), None);
        // Tokens with spaces, as before, when the last word is not node=.
        assert!(
            parse("a token with spaces\n")
                .unwrap()
                .accepts(b"a token with spaces")
        );
        for bad in ["tok node=", "tok node=,", "node=web-*"] {
            let err = parse(bad).unwrap_err();
            assert!(
                matches!(err, TokenError::Binding { line: 1, .. }),
                "{bad}: {err}"
            );
        }
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
