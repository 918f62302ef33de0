//! Rendering: JSON by default, XML for `Format=XML`; success bodies get `RequestId`,
//! errors are `{RequestId, HostId, Code, Message, Recommend}` (all strings) with the
//! documented HTTP status (reference §1.6–1.7, §4 rows 9–18).

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::KmsError;

pub const JSON: &str = "application/json;charset=utf-8";
pub const XML: &str = "text/xml;charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `Format` is compared case-insensitively; absent means JSON.
    pub fn parse(v: Option<&str>) -> Result<Self, KmsError> {
        match v {
            None => Ok(Format::Json),
            Some(f) if f.eq_ignore_ascii_case("json") => Ok(Format::Json),
            Some(f) if f.eq_ignore_ascii_case("xml") => Ok(Format::Xml),
            Some(_) => Err(KmsError::InvalidFormat),
        }
    }
}

pub struct Rendered {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The body of `value`: JSON written straight into a buffer sized for a typical answer, or
/// XML under `<{root}{suffix}>` (the root's name is only built for XML).
fn render(format: Format, root: (&str, &str), status: u16, value: &Value) -> Rendered {
    match format {
        Format::Json => {
            let mut body = Vec::with_capacity(512);
            if serde_json::to_writer(&mut body, value).is_err() {
                body = b"{}".to_vec();
            }
            Rendered {
                status,
                content_type: JSON,
                body,
            }
        }
        Format::Xml => {
            let root = format!("{}{}", root.0, root.1);
            let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            match quick_xml::se::to_string_with_root(&root, value) {
                Ok(x) => body.push_str(&x),
                Err(_) => body.push_str(&format!("<{root}/>")),
            }
            Rendered {
                status,
                content_type: XML,
                body: body.into_bytes(),
            }
        }
    }
}

/// What an action answers: a generic `Value` (rendered through serde), or a typed body that
/// writes itself straight into the output bytes ([`Typed`]; the hot actions), byte for byte
/// what the generic path renders for the same data.
pub enum Reply {
    Value(Value),
    Typed(Box<dyn Typed>),
}

impl Reply {
    /// The body as a generic `Value` (the web console's JSON, and the generic path).
    pub fn into_value(self) -> Result<Value, KmsError> {
        match self {
            Reply::Value(v) => Ok(v),
            Reply::Typed(t) => t.to_value(),
        }
    }

    /// The `KeyId` and `KeyVersionId` the body names, for the audit line: `KeyId`, else
    /// `KeyMetadata.KeyId`, else `KeyVersion.KeyId`; `KeyVersionId`, else
    /// `KeyVersion.KeyVersionId`.
    pub fn key_ids(&self) -> (Option<String>, Option<String>) {
        match self {
            Reply::Typed(t) => {
                let (k, v) = t.key_ids();
                (k.map(str::to_string), v.map(str::to_string))
            }
            Reply::Value(body) => {
                let str_at = |v: &Value, path: &[&str]| {
                    path.iter()
                        .try_fold(v, |v, p| v.get(*p))
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                };
                let key_id = str_at(body, &["KeyId"])
                    .or_else(|| str_at(body, &["KeyMetadata", "KeyId"]))
                    .or_else(|| str_at(body, &["KeyVersion", "KeyId"]));
                let version = str_at(body, &["KeyVersionId"])
                    .or_else(|| str_at(body, &["KeyVersion", "KeyVersionId"]));
                (key_id, version)
            }
        }
    }
}

impl From<Value> for Reply {
    fn from(v: Value) -> Self {
        Reply::Value(v)
    }
}

/// A response body that writes its fields itself, in order, through [`Fields`] (one
/// description for both formats). Only string fields, objects and lists: what
/// the hot actions answer.
pub trait Typed: Send + Sync {
    /// Writes the fields (without `RequestId`, which the renderer appends).
    fn write(&self, out: &mut dyn Fields);
    /// The same body as the generic `Value` (what [`Reply::into_value`] answers).
    fn to_value(&self) -> Result<Value, KmsError>;
    /// `KeyId` and `KeyVersionId` at the top level, if the body has them (the audit line).
    fn key_ids(&self) -> (Option<&str>, Option<&str>) {
        (None, None)
    }
}

/// The fields of a [`Typed`] body, written as the generic renderer writes a `Value` with
/// the same members in the same order.
pub trait Fields {
    /// `name: "value"`.
    fn string(&mut self, name: &str, value: &str);
    /// `name: "<bytes in standard base64>"` (what [`Fields::string`] writes for the
    /// encoded text).
    fn base64(&mut self, name: &str, bytes: &[u8]) {
        let text = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes));
        self.string(name, &text);
    }
    /// Opens the object `name`; its fields follow, then [`Fields::close`].
    fn open(&mut self, name: &str);
    /// Closes the object `name`.
    fn close(&mut self, name: &str);
    /// `name: ["item", ...]` (in XML: one `<name>` element per item).
    fn strings(&mut self, name: &str, items: &[String]);
    /// Opens the list of objects `name`: each item is [`Fields::open_item`], its fields,
    /// [`Fields::close_item`]; then [`Fields::end_list`].
    fn begin_list(&mut self, name: &str);
    fn open_item(&mut self, name: &str);
    fn close_item(&mut self, name: &str);
    fn end_list(&mut self, name: &str);
}

/// Whether `bytes` hold anything serde_json escapes in a string: a control character
/// (below 0x20), `"` or `\\`. Every byte is tested without an early exit, so that the
/// compiler runs the test on whole vector registers (16 or 32 bytes a step; the values are
/// mostly ids and base64 of a few hundred bytes, and rarely need escaping).
fn needs_json_escape(bytes: &[u8]) -> bool {
    !bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
}

/// JSON as `serde_json::to_writer` writes an object (preserve_order): compact, strings
/// escaped by serde_json itself.
struct JsonFields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl JsonFields<'_> {
    fn escaped(&mut self, s: &str) {
        // serde_json escapes `"`, `\\` and the control characters below 0x20, nothing else:
        // a string without them is written as it is (most are: ids, base64, names).
        if !needs_json_escape(s.as_bytes()) {
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            self.out.push(b'"');
            return;
        }
        // Writing into a Vec does not fail; serde_json's own escaping, byte for byte.
        let _ = serde_json::to_writer(&mut *self.out, s);
    }
    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.escaped(name);
        self.out.push(b':');
    }
}

impl Fields for JsonFields<'_> {
    fn string(&mut self, name: &str, value: &str) {
        self.name(name);
        self.escaped(value);
    }
    /// Encoded straight into the output: base64's alphabet needs no JSON escaping.
    fn base64(&mut self, name: &str, bytes: &[u8]) {
        self.name(name);
        self.out.push(b'"');
        let at = self.out.len();
        let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
        self.out.resize(at + len, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(bytes, &mut self.out[at..])
            .unwrap_or(0);
        self.out.truncate(at + written);
        self.out.push(b'"');
    }
    fn open(&mut self, name: &str) {
        self.name(name);
        self.out.push(b'{');
        self.first = true;
    }
    fn close(&mut self, _name: &str) {
        self.out.push(b'}');
        self.first = false;
    }
    fn strings(&mut self, name: &str, items: &[String]) {
        self.name(name);
        self.out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.escaped(item);
        }
        self.out.push(b']');
    }
    fn begin_list(&mut self, name: &str) {
        self.name(name);
        self.out.push(b'[');
        self.first = true;
    }
    fn open_item(&mut self, _name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.out.push(b'{');
        self.first = true;
    }
    fn close_item(&mut self, _name: &str) {
        self.out.push(b'}');
        self.first = false;
    }
    fn end_list(&mut self, _name: &str) {
        self.out.push(b']');
        self.first = false;
    }
}

/// XML as quick-xml's serializer writes a map: one element per field, text escaped as it
/// escapes element text (`&`, `<`, `>` and `\r`), an empty string or object as a
/// self-closed element, a list as its items' elements (no element of its own).
struct XmlFields<'a> {
    out: &'a mut Vec<u8>,
    /// An element was opened (`<name`) and nothing written in it yet.
    pending: bool,
}

impl XmlFields<'_> {
    fn settle(&mut self) {
        if self.pending {
            self.out.push(b'>');
            self.pending = false;
        }
    }
    fn text(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut from = 0;
        for (i, b) in bytes.iter().enumerate() {
            let esc: &[u8] = match b {
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                b'\r' => b"&#13;",
                _ => continue,
            };
            self.out.extend_from_slice(&bytes[from..i]);
            self.out.extend_from_slice(esc);
            from = i + 1;
        }
        self.out.extend_from_slice(&bytes[from..]);
    }
    fn element(&mut self, name: &str, value: &str) {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        if value.is_empty() {
            self.out.extend_from_slice(b"/>");
            return;
        }
        self.out.push(b'>');
        self.text(value);
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }
}

impl Fields for XmlFields<'_> {
    fn string(&mut self, name: &str, value: &str) {
        self.settle();
        self.element(name, value);
    }
    fn open(&mut self, name: &str) {
        self.settle();
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self.pending = true;
    }
    fn close(&mut self, name: &str) {
        if self.pending {
            self.pending = false;
            self.out.extend_from_slice(b"/>");
            return;
        }
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
    }
    fn strings(&mut self, name: &str, items: &[String]) {
        for item in items {
            self.settle();
            self.element(name, item);
        }
    }
    fn begin_list(&mut self, _name: &str) {}
    fn open_item(&mut self, name: &str) {
        self.open(name);
    }
    fn close_item(&mut self, name: &str) {
        self.close(name);
    }
    fn end_list(&mut self, _name: &str) {}
}

/// A typed success: as [`success`] renders the same body as a `Value`, written directly.
pub fn success_typed(format: Format, action: &str, body: &dyn Typed, request_id: &str) -> Rendered {
    let mut out = Vec::with_capacity(512);
    match format {
        Format::Json => {
            out.push(b'{');
            let mut f = JsonFields {
                out: &mut out,
                first: true,
            };
            body.write(&mut f);
            f.string("RequestId", request_id);
            out.push(b'}');
            Rendered {
                status: 200,
                content_type: JSON,
                body: out,
            }
        }
        Format::Xml => {
            out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><");
            out.extend_from_slice(action.as_bytes());
            out.extend_from_slice(b"Response");
            let mut f = XmlFields {
                out: &mut out,
                pending: true,
            };
            body.write(&mut f);
            f.string("RequestId", request_id);
            out.extend_from_slice(b"</");
            out.extend_from_slice(action.as_bytes());
            out.extend_from_slice(b"Response>");
            Rendered {
                status: 200,
                content_type: XML,
                body: out,
            }
        }
    }
}

/// A success of either kind of [`Reply`].
pub fn success_reply(format: Format, action: &str, body: Reply, request_id: &str) -> Rendered {
    match body {
        Reply::Value(v) => success(format, action, v, request_id),
        Reply::Typed(t) => success_typed(format, action, t.as_ref(), request_id),
    }
}

/// A success: the action's body plus `RequestId`, as `<{Action}Response>` in XML.
pub fn success(format: Format, action: &str, body: Value, request_id: &str) -> Rendered {
    let mut obj = match body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    obj.insert("RequestId".into(), Value::String(request_id.to_string()));
    render(format, (action, "Response"), 200, &Value::Object(obj))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody<'a> {
    request_id: &'a str,
    host_id: &'a str,
    code: &'a str,
    message: String,
    recommend: &'a str,
}

/// An error, as `<Error>` in XML.
pub fn error(format: Format, err: &KmsError, request_id: &str, host_id: &str) -> Rendered {
    let body = ErrorBody {
        request_id,
        host_id,
        code: err.code(),
        message: err.message(),
        recommend: "",
    };
    let value = serde_json::to_value(&body).unwrap_or(Value::Null);
    render(format, ("Error", ""), err.status(), &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_success_and_error() {
        let r = success(Format::Json, "Encrypt", json!({"KeyId":"k"}), "R1");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json;charset=utf-8");
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"KeyId":"k","RequestId":"R1"}"#
        );
        let e = error(
            Format::Json,
            &KmsError::KeyNotFound,
            "R2",
            "kms.cn-hangzhou.aliyuncs.com",
        );
        assert_eq!(e.status, 404);
        let v: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["Code"], "Forbidden.KeyNotFound");
        assert_eq!(v["RequestId"], "R2");
        assert_eq!(v["HostId"], "kms.cn-hangzhou.aliyuncs.com");
        assert_eq!(v["Recommend"], "");
        assert!(v["Message"].is_string());
    }

    #[test]
    fn xml_lists_are_wrapped() {
        let r = success(
            Format::Xml,
            "ListKeys",
            json!({"Keys":{"Key":[{"KeyId":"a"},{"KeyId":"b"}]},"TotalCount":2}),
            "R",
        );
        assert_eq!(r.content_type, XML);
        let s = String::from_utf8(r.body).unwrap();
        assert!(s.contains("<ListKeysResponse><Keys><Key><KeyId>a</KeyId></Key><Key><KeyId>b</KeyId></Key></Keys><TotalCount>2</TotalCount><RequestId>R</RequestId></ListKeysResponse>"), "{s}");
        let e = error(Format::Xml, &KmsError::KeyNotFound, "R", "h");
        assert!(String::from_utf8(e.body)
            .unwrap()
            .contains("<Error><RequestId>R</RequestId>"));
    }

    #[test]
    fn needs_json_escape_is_exact() {
        let plain = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
        // Every byte value at every position of strings of 1 to 17 bytes, the rest plain.
        for len in 1..=17 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    assert_eq!(needs_json_escape(&bytes), !plain(b), "{len} {at} {b}");
                }
            }
        }
        // Bytes that carry or borrow across lanes next to each other.
        for pair in [
            [0x00, 0xff],
            [0xff, 0x00],
            [0x1f, 0x20],
            [0x20, 0x1f],
            [0x80, 0x21],
        ] {
            let mut bytes = vec![b'x'; 16];
            bytes[6..8].copy_from_slice(&pair);
            assert_eq!(
                needs_json_escape(&bytes),
                pair.iter().any(|&b| !plain(b)),
                "{pair:?}"
            );
        }
        assert!(!needs_json_escape(b""));
        assert!(!needs_json_escape("é中🎉 ~\u{7f}".as_bytes()));
    }

    #[test]
    fn format_is_case_insensitive() {
        assert_eq!(Format::parse(Some("json")), Ok(Format::Json));
        assert_eq!(Format::parse(Some("XML")), Ok(Format::Xml));
        assert_eq!(Format::parse(None), Ok(Format::Json));
        assert!(Format::parse(Some("yaml")).is_err());
    }
}
