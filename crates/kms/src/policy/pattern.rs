//! `*`/`?` glob patterns (reference alibaba-ram-sts.md §4.2): `*` is any sequence of
//! characters (including none, and spanning `:` and `/`), `?` exactly one character; the
//! whole string must match. Written by hand (a dozen lines, no crate matches these exact
//! rules without pulling in path semantics).

/// A compiled pattern. Actions are compiled case-folded ([`Pattern::folded`]), resources and
/// `StringLike` values as written ([`Pattern::exact`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*` alone: matches every string.
    Any,
    /// No wildcard: matches only itself.
    Literal(String),
    /// At least one `*` or `?`.
    Glob(Vec<char>),
}

impl Pattern {
    /// A case-sensitive pattern (resources, `StringLike`).
    pub fn exact(text: &str) -> Pattern {
        if text == "*" {
            Pattern::Any
        } else if text.contains(['*', '?']) {
            Pattern::Glob(text.chars().collect())
        } else {
            Pattern::Literal(text.to_string())
        }
    }

    /// A case-insensitive pattern (actions: "generally not case-sensitive", §4.2): folded to
    /// lower case here; match it against a lower-cased string.
    pub fn folded(text: &str) -> Pattern {
        Pattern::exact(&text.to_lowercase())
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Literal(l) => l == text,
            Pattern::Glob(p) => glob(p, &text.chars().collect::<Vec<_>>()),
        }
    }
}

/// Iterative glob match with single backtrack point (linear in practice, O(n·m) worst case).
fn glob(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}
