//! Rendering: JSON by default, XML for `Format=XML`; success bodies get `RequestId`,
//! errors are `{RequestId, HostId, Code, Message, Recommend}` (all strings) with the
//! documented HTTP status (reference §1.6–1.7, §4 rows 9–18).

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
    fn format_is_case_insensitive() {
        assert_eq!(Format::parse(Some("json")), Ok(Format::Json));
        assert_eq!(Format::parse(Some("XML")), Ok(Format::Xml));
        assert_eq!(Format::parse(None), Ok(Format::Json));
        assert!(Format::parse(Some("yaml")).is_err());
    }
}
