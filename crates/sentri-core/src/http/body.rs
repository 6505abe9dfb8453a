//! Request bodies: size limit, content type, and JSON objects read field
//! by field so every problem is a `VALIDATION_ERROR` naming the field.

use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorCode, Result};

/// `PAYLOAD_TOO_LARGE` when the `Content-Length` header announces more than
/// `limit` bytes. Adapters call this before reading a body; the body read
/// must still stop at `limit`.
///
/// # Errors
/// `PAYLOAD_TOO_LARGE`; `VALIDATION_ERROR` for a malformed header.
pub fn check_content_length(headers: &HeaderMap, limit: usize) -> Result<()> {
    let Some(value) = headers.get(CONTENT_LENGTH) else {
        return Ok(());
    };
    let length: u64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::validation("Content-Length", "must be a number"))?;
    if length > limit as u64 {
        return Err(too_large(limit));
    }
    Ok(())
}

/// `PAYLOAD_TOO_LARGE` for a body over `limit` bytes; adapters use it so
/// the message is the same everywhere.
pub fn too_large(limit: usize) -> Error {
    Error::with_message(
        ErrorCode::PayloadTooLarge,
        format!("request body larger than {limit} bytes"),
    )
}

/// Whether the `Content-Type` is JSON: `application/json` or
/// `application/*+json`, parameters allowed.
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = mime.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
}

/// Turn a serde_json error into a safe, clear `VALIDATION_ERROR`: never
/// echoes string values (they may be passwords).
pub fn json_error(err: &serde_json::Error) -> Error {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", err.line(), err.column());
    match err.classify() {
        Category::Syntax | Category::Io => {
            Error::validation("body", &format!("malformed JSON ({at})"))
        }
        Category::Eof => Error::validation("body", "malformed JSON (unexpected end of input)"),
        Category::Data => {
            let text = err.to_string();
            let text = text.split(" at line ").next().unwrap_or("invalid value");
            Error::validation("body", &redact_strings(text))
        }
    }
}

/// Replace the contents of `"…"` quoted strings with `"…"`.
fn redact_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_quotes = false;
    for c in text.chars() {
        if c == '"' {
            if in_quotes {
                out.push('…');
            }
            in_quotes = !in_quotes;
            out.push(c);
        } else if !in_quotes {
            out.push(c);
        }
    }
    out
}

/// A JSON object body, read field by field.
pub(crate) struct JsonBody {
    map: Map<String, Value>,
}

impl JsonBody {
    /// A required JSON object body.
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Self> {
        if body.len() > limit {
            return Err(too_large(limit));
        }
        if !is_json_content_type(headers) {
            return Err(Error::validation(
                "Content-Type",
                "must be application/json",
            ));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::validation("body", "must be a JSON object"));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self { map }),
            Ok(_) => Err(Error::validation("body", "must be a JSON object")),
            Err(err) => Err(json_error(&err)),
        }
    }

    /// An optional JSON object body: an empty body is an empty object (and
    /// needs no content type).
    pub(crate) fn parse_optional(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Self> {
        if body.len() > limit {
            return Err(too_large(limit));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self { map: Map::new() });
        }
        Self::parse(headers, body, limit)
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub(crate) fn required_str(&mut self, name: &str) -> Result<String> {
        self.optional_str(name)?
            .ok_or_else(|| Error::validation(name, "is required"))
    }

    pub(crate) fn optional_str(&mut self, name: &str) -> Result<Option<String>> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::validation(name, "must be a string")),
        }
    }

    pub(crate) fn optional_str_list(&mut self, name: &str) -> Result<Option<Vec<String>>> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(Error::validation(name, "must be an array of strings")),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(Error::validation(name, "must be an array of strings")),
        }
    }

    pub(crate) fn required_str_list(&mut self, name: &str) -> Result<Vec<String>> {
        self.optional_str_list(name)?
            .ok_or_else(|| Error::validation(name, "is required"))
    }

    /// `VALIDATION_ERROR` for any field not read.
    pub(crate) fn finish(self) -> Result<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(name) => {
                let shown: String = name.chars().take(64).collect();
                Err(Error::validation(&shown, "unknown field"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h
    }

    fn msg(r: Result<JsonBody>) -> String {
        let err = r.err().unwrap();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        err.message().to_owned()
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json_content_type(&h));
        for (v, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("json", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(is_json_content_type(&h), ok, "{v}");
        }
    }

    #[test]
    fn every_input_problem_is_a_validation_error() {
        let h = json_headers();
        assert_eq!(
            msg(JsonBody::parse(&HeaderMap::new(), b"{}", 100)),
            "Content-Type: must be application/json"
        );
        assert_eq!(
            msg(JsonBody::parse(&h, b"", 100)),
            "body: must be a JSON object"
        );
        assert_eq!(
            msg(JsonBody::parse(&h, b"[1]", 100)),
            "body: must be a JSON object"
        );
        assert!(msg(JsonBody::parse(&h, b"{\"a\":", 100)).starts_with("body: malformed JSON"));
        assert!(msg(JsonBody::parse(&h, b"{nope}", 100)).starts_with("body: malformed JSON"));
        let err = JsonBody::parse(&h, &[b' '; 101], 100).err().unwrap();
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);

        let mut b = JsonBody::parse(&h, br#"{"a":1,"b":null,"c":["x",2],"d":"s"}"#, 100).unwrap();
        assert_eq!(
            b.required_str("a").unwrap_err().message(),
            "a: must be a string"
        );
        assert_eq!(b.required_str("b").unwrap_err().message(), "b: is required");
        assert_eq!(
            b.optional_str_list("c").unwrap_err().message(),
            "c: must be an array of strings"
        );
        let mut b = JsonBody::parse(&h, br#"{"d":"s","extra":true}"#, 100).unwrap();
        assert_eq!(b.required_str("d").unwrap(), "s");
        assert_eq!(b.finish().unwrap_err().message(), "extra: unknown field");
    }

    #[test]
    fn optional_bodies_may_be_empty_without_content_type() {
        let mut b = JsonBody::parse_optional(&HeaderMap::new(), b"", 100).unwrap();
        assert_eq!(b.optional_str("refreshToken").unwrap(), None);
        b.finish().unwrap();
    }

    #[test]
    fn json_errors_never_echo_strings() {
        let err = serde_json::from_str::<Vec<u8>>(r#""hunter2""#).unwrap_err();
        let e = json_error(&err);
        assert!(!e.message().contains("hunter2"), "{}", e.message());
        assert!(e.message().starts_with("body: invalid type"));
    }

    #[test]
    fn content_length_is_checked_before_reading() {
        let mut h = HeaderMap::new();
        check_content_length(&h, 10).unwrap();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(
            check_content_length(&h, 10).unwrap_err().code(),
            ErrorCode::PayloadTooLarge
        );
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("ten"));
        assert_eq!(
            check_content_length(&h, 10).unwrap_err().code(),
            ErrorCode::ValidationError
        );
    }
}
