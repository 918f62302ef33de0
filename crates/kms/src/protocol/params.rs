//! Request parameters: the query string and a form-encoded body, merged (query first).
//! Both are form-decoded (`+` is a space), names included. A name given more than once
//! (in either or across both) is refused: the signature covers every copy, but which one
//! an action reads would be a guess, so an ambiguous request is not served.

use base64::Engine;

use crate::error::KmsError;

/// Most parameters one request may carry.
pub const MAX_PARAMS: usize = 256;
/// Longest single parameter value we accept (Encrypt's 6 KiB plaintext is ~8 KiB in base64).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Query parameters, in order received.
    pub query: Vec<(String, String)>,
    /// Form body parameters, in order received.
    pub body: Vec<(String, String)>,
}

/// One form-encoded name or value, decoded exactly as `form_urlencoded::parse` does (`+` is
/// a space, then `%XX` with two hex digits is that byte and any other `%` stays, then
/// invalid UTF-8 becomes U+FFFD), into one string. Written by hand because the crate builds
/// up to three buffers per component and always goes through the slow lossy UTF-8 path;
/// the tests check it against the crate. The runs between `+` and `%` are copied whole, and
/// a component with neither is one copy.
fn decode_component(raw: &[u8]) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    // The separators and escapes are found by `memchr` (SIMD, many bytes a step) rather than
    // byte by byte: the query of a signed request is several hundred bytes.
    let special = |s: &[u8]| memchr::memchr2(b'+', b'%', s);
    let Some(first) = special(raw) else {
        // `from_utf8` checks ASCII a word at a time; the lossy path only for invalid UTF-8.
        return match std::str::from_utf8(raw) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        };
    };
    let mut out = Vec::with_capacity(raw.len());
    let (run, mut rest) = raw.split_at(first);
    out.extend_from_slice(run);
    loop {
        rest = match rest {
            [b'+', tail @ ..] => {
                out.push(b' ');
                tail
            }
            [b'%', h, l, tail @ ..] if hex(*h).is_some() && hex(*l).is_some() => {
                out.push(hex(*h).unwrap_or(0) << 4 | hex(*l).unwrap_or(0));
                tail
            }
            [b'%', tail @ ..] => {
                out.push(b'%');
                tail
            }
            _ => break,
        };
        let next = special(rest).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(next);
        out.extend_from_slice(run);
        rest = tail;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn decode(raw: &[u8], into: &mut Vec<(String, String)>) -> Result<(), KmsError> {
    into.reserve((memchr::memchr_iter(b'&', raw).count() + 1).min(MAX_PARAMS));
    let sequences = {
        let mut rest = Some(raw);
        std::iter::from_fn(move || {
            let r = rest?;
            Some(match memchr::memchr(b'&', r) {
                Some(at) => {
                    rest = r.get(at + 1..);
                    &r[..at]
                }
                None => {
                    rest = None;
                    r
                }
            })
        })
    };
    for sequence in sequences.filter(|s| !s.is_empty()) {
        if into.len() >= MAX_PARAMS {
            return Err(KmsError::invalid_because(
                "Parameters",
                "Too many parameters.",
            ));
        }
        let (k, v) = match memchr::memchr(b'=', sequence) {
            Some(at) => (&sequence[..at], &sequence[at + 1..]),
            None => (sequence, &[][..]),
        };
        let (k, v) = (decode_component(k), decode_component(v));
        if v.len() > MAX_VALUE_LEN || k.len() > 256 {
            return Err(KmsError::invalid_because(&k, "The value is too long."));
        }
        into.push((k, v));
    }
    Ok(())
}

impl Params {
    /// Builds the parameters of a request. The body is read as a form when its content type
    /// is `application/x-www-form-urlencoded`, or when there is none and it is not empty.
    pub fn from_request(
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, KmsError> {
        let mut p = Params::default();
        decode(query.as_bytes(), &mut p.query)?;
        let is_form = match content_type {
            Some(ct) => ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            }),
            None => true,
        };
        if is_form && !body.is_empty() {
            decode(body, &mut p.body)?;
            if p.query.len() + p.body.len() > MAX_PARAMS {
                return Err(KmsError::invalid_because(
                    "Parameters",
                    "Too many parameters.",
                ));
            }
        }
        // Whether a name repeats: sorted names side by side (no hashing on the way of every
        // request); which one is reported is the first repeat in request order.
        let mut names: Vec<&str> = p.all().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            let mut seen = std::collections::HashSet::with_capacity(names.len());
            if let Some((k, _)) = p.all().find(|(k, _)| !seen.insert(k.as_str())) {
                return Err(KmsError::invalid_because(
                    k,
                    "The parameter is given more than once.",
                ));
            }
        }
        Ok(p)
    }

    /// All parameters, query first.
    pub fn all(&self) -> impl Iterator<Item = &(String, String)> {
        self.query.iter().chain(self.body.iter())
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A present, non-empty value (empty counts as absent, like the real service).
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, KmsError> {
        self.opt(name).ok_or_else(|| KmsError::missing(name))
    }

    /// A boolean, case-insensitive (`True`/`true`/`FALSE`…).
    pub fn bool_opt(&self, name: &str) -> Result<Option<bool>, KmsError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(KmsError::invalid_because(name, "Expected true or false.")),
        }
    }

    pub fn bool_required(&self, name: &str) -> Result<bool, KmsError> {
        self.bool_opt(name)?.ok_or_else(|| KmsError::missing(name))
    }

    /// An integer within `min..=max`.
    pub fn int_opt(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, KmsError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| KmsError::invalid_because(name, "Expected an integer."))?;
                if n < min || n > max {
                    return Err(KmsError::invalid_because(
                        name,
                        format!("Expected {min} to {max}."),
                    ));
                }
                Ok(Some(n))
            }
        }
    }

    /// A repeated parameter `Name.1`, `Name.2`, … (in index order, stopping at a gap).
    pub fn list(&self, name: &str) -> Vec<String> {
        (1..=MAX_PARAMS)
            .map_while(|i| self.opt(&format!("{name}.{i}")).map(str::to_string))
            .collect()
    }

    /// Repeated `Tag.N.Key` / `Tag.N.Value` pairs (a missing value is empty).
    pub fn tag_list(&self, name: &str) -> Vec<(String, String)> {
        (1..=MAX_PARAMS)
            .map_while(|i| {
                self.opt(&format!("{name}.{i}.Key")).map(|k| {
                    let v = self.get(&format!("{name}.{i}.Value")).unwrap_or("");
                    (k.to_string(), v.to_string())
                })
            })
            .collect()
    }

    /// Standard base64 (with padding), decoded. Bad base64 is `InvalidParameter`.
    pub fn base64_required(&self, name: &str) -> Result<Vec<u8>, KmsError> {
        let v = self.required(name)?;
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| KmsError::invalid_because(name, "The value is not valid base64."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_query_and_form_body() {
        let p = Params::from_request(
            "Action=Encrypt&KeyId=alias%2Ftest+key&Empty=",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"Plaintext=aGVsbG8%3D",
        )
        .unwrap();
        assert_eq!(p.get("KeyId"), Some("alias/test key"));
        assert_eq!(p.get("Plaintext"), Some("aGVsbG8="));
        assert_eq!(p.get("Empty"), Some(""));
        assert_eq!(p.opt("Empty"), None);
        assert_eq!(p.required("Empty"), Err(KmsError::missing("Empty")));
        assert_eq!(p.all().count(), 4);
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        let twice = |query: &str, body: &[u8]| {
            Params::from_request(query, Some("application/x-www-form-urlencoded"), body)
        };
        let dup = |name: &str| {
            Err(KmsError::invalid_because(
                name,
                "The parameter is given more than once.",
            ))
        };
        assert_eq!(twice("KeyId=a&KeyId=b", b""), dup("KeyId"));
        assert_eq!(twice("KeyId=a", b"KeyId=a"), dup("KeyId"));
        assert_eq!(twice("", b"A=1&B=2&A="), dup("A"));
        // `+` and `%20` decode to the same name.
        assert_eq!(twice("a+b=1&a%20b=2", b""), dup("a b"));
        assert!(twice("KeyId.1=a&KeyId.2=b", b"").is_ok());
    }

    #[test]
    fn body_with_other_content_type_is_not_params() {
        let p = Params::from_request("", Some("application/json"), b"a=b").unwrap();
        assert_eq!(p.get("a"), None);
        let p = Params::from_request("", None, b"a=b").unwrap();
        assert_eq!(p.get("a"), Some("b"));
    }

    #[test]
    fn typed_values() {
        let p = Params::from_request(
            "A=True&B=false&C=TRUE&D=yes&N=7&M=x&Z=aGk%3D&Y=%25%25",
            None,
            b"",
        )
        .unwrap();
        assert_eq!(p.bool_opt("A"), Ok(Some(true)));
        assert_eq!(p.bool_opt("B"), Ok(Some(false)));
        assert_eq!(p.bool_opt("C"), Ok(Some(true)));
        assert!(p.bool_opt("D").is_err());
        assert_eq!(p.bool_opt("Q"), Ok(None));
        assert_eq!(p.int_opt("N", 1, 10), Ok(Some(7)));
        assert!(p.int_opt("N", 8, 10).is_err());
        assert!(p.int_opt("M", 0, 10).is_err());
        assert_eq!(p.base64_required("Z").unwrap(), b"hi");
        assert!(matches!(
            p.base64_required("Y"),
            Err(KmsError::InvalidParameter(..))
        ));
    }

    #[test]
    fn repeated() {
        let p = Params::from_request(
            "ResourceId.2=b&ResourceId.1=a&ResourceId.4=d&Tag.1.Key=k&Tag.1.Value=v&Tag.2.Key=x",
            None,
            b"",
        )
        .unwrap();
        assert_eq!(p.list("ResourceId"), vec!["a", "b"]);
        assert_eq!(
            p.tag_list("Tag"),
            vec![
                ("k".to_string(), "v".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert!(p.list("Nope").is_empty());
    }

    /// The hand-written decoder gives what `form_urlencoded::parse` gives, byte for byte.
    fn assert_decodes_like_the_crate(raw: &[u8]) {
        let mut ours = Vec::new();
        decode(raw, &mut ours).unwrap();
        let theirs: Vec<(String, String)> = form_urlencoded::parse(raw)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(raw));
    }

    #[test]
    fn decodes_exactly_like_form_urlencoded() {
        for raw in [
            &b""[..],
            b"&&&",
            b"a",
            b"a=",
            b"=b",
            b"a=b=c",
            b"a+b=c+d&%2B=%2b",
            b"%=%%&%4=%4g&%g4=%ZZ&x=%41%42%c3%a9%C3%A9",
            b"bad=%ff%fe&lone=%c3&ok=\xc3\xa9&raw=\xff",
            b"Action=Encrypt&KeyId=alias%2Ftest+key&Empty=&&Plaintext=aGVsbG8%3D",
            b"trailing=%",
            b"trailing=%4",
        ] {
            assert_decodes_like_the_crate(raw);
        }
    }

    proptest::proptest! {
        #[test]
        fn decodes_any_bytes_like_form_urlencoded(raw in proptest::collection::vec(
            proptest::sample::select(b"ab=&+%4fgF\xc3\xa9\xff ".to_vec()), 0..40)
        ) {
            assert_decodes_like_the_crate(&raw);
        }
    }

    #[test]
    fn limits() {
        let many: Vec<String> = (0..300).map(|i| format!("p{i}=1")).collect();
        assert!(Params::from_request(&many.join("&"), None, b"").is_err());
        let long = format!("a={}", "x".repeat(MAX_VALUE_LEN + 1));
        assert!(Params::from_request(&long, None, b"").is_err());
    }
}
