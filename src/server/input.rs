//! Reading what a request carries: its headers, its body (bounded), JSON objects (bounded in
//! depth, with errors that say what to send), query parameters and job ids in the path.

use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use tiny_http::Request;

use super::ApiError;
use crate::job::JobId;

/// Most nested arrays and objects a request body may have; deeper input is refused before
/// parsing so no request can exhaust the stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// The value of header `name` (any case), without surrounding whitespace.
pub fn header<'r>(req: &'r Request, name: &'static str) -> Option<&'r str> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().trim())
}

/// Reads the body, refusing more than `max` bytes without reading them all.
pub fn read_body(req: &mut Request, max: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::TooLarge(format!(
            "request body is larger than {max} bytes (MAX_BODY_BYTES); send a smaller payload"
        ))
    };
    if req.body_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(req.body_length().unwrap_or(256).min(max));
    req.as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
    if body.len() > max {
        return Err(too_large());
    }
    Ok(body)
}

/// Parses a JSON object body into `T`, with errors that say whether the JSON or its shape is
/// wrong; `shape` shows what to send.
pub fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    if json_depth(body) > MAX_JSON_DEPTH {
        return Err(ApiError::BadRequest(format!(
            "JSON nested deeper than {MAX_JSON_DEPTH} levels; flatten the payload"
        )));
    }
    let malformed = |e| ApiError::BadRequest(format!("malformed JSON: {e}; send {shape}"));
    let invalid = |e| ApiError::BadRequest(format!("invalid request: {e}; send {shape}"));
    // The common case, an object, is parsed once, straight into `T`; anything else goes
    // through `from_object` for the error that names what was sent.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                invalid(e.to_string())
            } else {
                malformed(e.to_string())
            }
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    from_object(value).map_err(invalid)
}

/// Deserializes a JSON object into `T`. serde's derived structs would also take an array of
/// the fields in order, which is not the API.
pub fn from_object<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, String> {
    if !value.is_object() {
        return Err(format!("expected a JSON object, got {}", kind_of(&value)));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The deepest nesting of `[` and `{` outside strings.
fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A job id from the path, or the 400 that says what one looks like.
pub fn job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{raw:?} is not a job id; job ids are UUIDs as returned by POST /jobs"
        ))
    })
}

/// The decoded parameters of a query string, checked against the names an endpoint takes.
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `query`, refusing a parameter not in `known`.
    pub fn parse(query: &str, known: &[&str]) -> Result<Query, ApiError> {
        let pairs = query_pairs(query);
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter {k:?}; this endpoint takes {}",
                known.join(", ")
            )));
        }
        Ok(Query(pairs))
    }

    /// The value of parameter `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter from 0 to `max`, `default` when absent.
    pub fn number(&self, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be an integer from 0 to {max}, got {v:?}"
                ))
            }),
        }
    }
}

/// Decoded `name=value` pairs of a query string.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// A dry run's `as_of` (RFC 3339) as µs since the epoch: the moment a bulk action's selection
/// is taken at.
pub fn as_of(raw: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "as_of must be an RFC 3339 time such as a dry run's as_of, got {raw:?}"
            ))
        })
}

/// A `{name}` segment of the path, percent-decoded: clients that encode path segments send
/// `mail%3Aeu` for the queue `mail:eu` (and `%2E` for `.`). `+` stays `+`, as in any path.
pub fn path_segment(raw: &str) -> String {
    percent_decode(raw, false)
}

/// Decodes `%XX` escapes (an invalid one is kept as is); `+` is a space when `plus_is_space`
/// (query strings), itself otherwise (paths).
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') if plus_is_space => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a": [1, {"b": "[[[["}]}"#), 3);
        assert_eq!(json_depth(br#""\"[""#), 0);
        assert_eq!(json_depth(&[b'['; 100]), 100);
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_pairs("type=image%5Fresize&limit=5&x"),
            vec![
                ("type".to_string(), "image_resize".to_string()),
                ("limit".to_string(), "5".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(percent_decode("a%2", true), "a%2");
        assert_eq!(percent_decode("%e2%82%ac%zz", true), "€%zz");
        assert_eq!(percent_decode("%é", true), "%é");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(path_segment("mail%3Aeu"), "mail:eu");
        assert_eq!(path_segment("%2E%2e"), "..");
        assert_eq!(path_segment("a+b"), "a+b");
    }

    #[test]
    fn unknown_and_bad_parameters_are_refused() {
        let q = Query::parse("limit=5", &["offset", "limit"]).unwrap();
        assert_eq!(q.number("limit", 50, 1000).unwrap(), 5);
        assert_eq!(q.number("offset", 0, 10).unwrap(), 0);
        assert!(Query::parse("x=1", &["limit"]).is_err());
        assert!(Query::parse("limit=-1", &["limit"])
            .unwrap()
            .number("limit", 0, 10)
            .is_err());
    }
}
