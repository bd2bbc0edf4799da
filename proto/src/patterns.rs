//! Comma-separated glob lists for include/exclude options (`loop*,ram*`).
//!
//! `*` matches any run of characters (including `/`), `?` one character;
//! everything else matches itself. A full regex engine would cost more to
//! build and to run than these option lists need.

/// A list of glob patterns; a name matches the list if it matches any pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns {
    globs: Vec<String>,
}

impl Patterns {
    /// Parses a comma-separated list; empty items are ignored, so `""` is the empty list.
    pub fn parse(list: &str) -> Self {
        Patterns {
            globs: list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Whether any pattern matches the whole of `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.globs
            .iter()
            .any(|g| glob(g.as_bytes(), name.as_bytes()))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }
}

/// Iterative glob match with single-star backtracking: linear in practice,
/// never exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let p = Patterns::parse("loop*, ram?,/var/lib/docker/*");
        assert!(p.matches("loop0"));
        assert!(p.matches("ram1"));
        assert!(!p.matches("ram10"));
        assert!(!p.matches("vda"));
        assert!(p.matches("/var/lib/docker/overlay2/abc/merged"));
        assert!(!p.matches("/var/lib/docker"));
        assert!(Patterns::parse("").is_empty());
        assert!(Patterns::parse("*").matches(""));
    }

    proptest::proptest! {
        #[test]
        fn star_matches_everything(s in ".*") {
            proptest::prop_assert!(Patterns::parse("*").matches(&s));
        }

        #[test]
        fn literal_matches_itself(s in "[a-z0-9/._-]{1,20}") {
            proptest::prop_assert!(Patterns::parse(&s).matches(&s));
        }
    }
}
