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
            Pattern::Glob(p) => glob_str(p, text),
        }
    }

    /// [`Pattern::matches`] of a folded (action) pattern against `text` as given, folded
    /// here: `self.matches(&text.to_lowercase())` without allocating for ASCII text (every
    /// RAM action name is ASCII, where `to_lowercase` is `to_ascii_lowercase`).
    pub fn matches_folding(&self, text: &str) -> bool {
        if !text.is_ascii() {
            return self.matches(&text.to_lowercase());
        }
        let t = text.as_bytes();
        match self {
            Pattern::Any => true,
            Pattern::Literal(l) => {
                l.len() == t.len() && l.bytes().zip(t).all(|(a, b)| a == b.to_ascii_lowercase())
            }
            Pattern::Glob(p) => glob(p, t.len(), |i| char::from(t[i].to_ascii_lowercase())),
        }
    }

    /// [`Pattern::matches`] against the ARN `arn` made of pieces: a literal is compared
    /// piecewise; a glob meets the whole ARN, concatenated at most once per check into
    /// `joined` (shared by the patterns asked about the same ARN).
    pub fn matches_arn(&self, arn: &super::kms::Arn<'_>, joined: &mut Option<String>) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Literal(l) => arn.eq_str(l),
            Pattern::Glob(p) => glob_str(p, joined.get_or_insert_with(|| arn.concat())),
        }
    }
}

/// A glob against a string: by bytes for ASCII text (a byte is a character), else by chars.
fn glob_str(p: &[char], text: &str) -> bool {
    if text.is_ascii() {
        let t = text.as_bytes();
        glob(p, t.len(), |i| char::from(t[i]))
    } else {
        let t: Vec<char> = text.chars().collect();
        glob(p, t.len(), |i| t[i])
    }
}

/// Iterative glob match with single backtrack point (linear in practice, O(n·m) worst case),
/// against the `len` characters `at(0..len)`.
fn glob(p: &[char], len: usize, at: impl Fn(usize) -> char) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < len {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == at(ti) => {
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
