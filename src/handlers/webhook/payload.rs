//! The `webhook` payload: `{"url", "method"?, "headers"?, "body"?, "timeout_secs"?,
//! "expect"?}` as a serde struct, checked into a [`Spec`] (the request to send), and its schema
//! for the API document. Whether the destination may be reached at all (WEBHOOK_ALLOW, private
//! addresses) is [`super::address`]'s part.

use serde::Deserialize;
use serde_json::{json, Map, Number, Value};
use std::time::Duration;

use crate::config::webhook::Host;

/// Longest `url`.
const MAX_URL_LEN: usize = 4096;
/// Most `headers`; a header name's and a header value's longest length.
const MAX_HEADERS: usize = 50;
const MAX_HEADER_NAME: usize = 256;
const MAX_HEADER_VALUE: usize = 8192;
/// Most entries of `expect`.
const MAX_EXPECT: usize = 50;
/// `timeout_secs`: its default and its bounds.
const DEFAULT_TIMEOUT_SECS: u64 = 30;
const MAX_TIMEOUT_SECS: u64 = 300;

/// The methods a webhook may use. Others (CONNECT, TRACE, OPTIONS) are for talking to the HTTP
/// machinery rather than to a receiver.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const HEAD: &str = "HEAD";

/// Header names a payload may not set, with why. Hop-by-hop headers describe the connection,
/// which is jobq's to manage; Host and Content-Length come from `url` and `body`, and a second
/// one would let a payload smuggle a request past a proxy; Expect changes how the body is sent.
const REFUSED_HEADERS: [(&str, &str); 12] = [
    ("host", "it comes from \"url\""),
    ("content-length", "it comes from \"body\""),
    (
        "transfer-encoding",
        "it is hop-by-hop; jobq frames the body itself",
    ),
    (
        "connection",
        "it is hop-by-hop; jobq manages its connections",
    ),
    (
        "keep-alive",
        "it is hop-by-hop; jobq manages its connections",
    ),
    (
        "proxy-connection",
        "it is hop-by-hop; jobq manages its connections",
    ),
    (
        "upgrade",
        "it is hop-by-hop; a webhook is one request and one answer",
    ),
    ("te", "it is hop-by-hop"),
    ("trailer", "it is hop-by-hop; jobq sends no trailers"),
    ("proxy-authorization", "webhooks go out without a proxy"),
    ("proxy-authenticate", "it is a response header"),
    (
        "expect",
        "jobq sends the body without waiting for 100 Continue",
    ),
];

/// The prefix of the headers jobq sets itself (job id, attempt, signature), which a payload
/// may not forge.
pub const JOBQ_HEADER_PREFIX: &str = "x-jobq-";

/// The request body and how it is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body (`body` absent or null).
    None,
    /// `body` as JSON text: sent as `application/json` unless `headers` gives a Content-Type.
    Json(Vec<u8>),
    /// A string `body`, sent as it is: `text/plain; charset=utf-8` unless `headers` says.
    Text(String),
}

/// Which statuses count as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect(Vec<ExpectItem>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpectItem {
    Status(u16),
    /// `"2xx"`: the hundreds digit.
    Class(u16),
}

impl Expect {
    /// Whether `status` is one of the expected answers.
    pub fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|e| match *e {
            ExpectItem::Status(s) => s == status,
            ExpectItem::Class(c) => status / 100 == c,
        })
    }
}

impl Default for Expect {
    /// Any 2xx.
    fn default() -> Self {
        Expect(vec![ExpectItem::Class(2)])
    }
}

/// A payload that passed every check: the request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The URL as given (checked: http or https, a host, no user info, no fragment).
    pub url: String,
    /// `scheme://host[:port]`, what messages and logs show: the path and query may hold a
    /// receiver's token (many webhook URLs do), and errors and logs are read more widely than
    /// payloads.
    pub origin: String,
    pub host: Host,
    pub port: u16,
    pub method: &'static str,
    /// In the order given, names as given.
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub timeout: Duration,
    pub expect: Expect,
    /// The event a subscription's delivery job carries (`event`, written by jobq only), sent
    /// as jobq's own headers.
    pub event: Option<EventMark>,
}

/// What a delivery job's `event` says: the event's kind and id and the subscription, sent as
/// `X-Jobq-Event`, `X-Jobq-Event-Id` and `X-Jobq-Subscription`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMark {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub subscription: String,
}

impl Spec {
    /// Whether `headers` sets `name` (case-insensitively).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}

/// The payload as sent. Only `url` is required (checked in [`parse`], for its own message).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    timeout_secs: Option<Number>,
    #[serde(default)]
    expect: Option<Vec<Value>>,
    /// Written by jobq on the jobs that deliver a subscription's events (src/store/events.rs);
    /// refused at submission (see [`SUBMITTED_EVENT`]), so X-Jobq-* headers stay jobq's own.
    #[serde(default)]
    event: Option<EventMark>,
}

/// Why a submitted payload may not carry `event`.
pub const SUBMITTED_EVENT: &str = "\"event\" is jobq's own: it marks the webhook jobs that deliver a subscription's events (PUT /subscriptions/{name}), and cannot be submitted";

/// Checks a payload.
pub fn parse(payload: &Value) -> Result<Spec, String> {
    let p: Payload = crate::handlers::payload::decode(
        payload,
        "the payload must be an object with \"url\" (and optionally \"method\", \"headers\", \"body\", \"timeout_secs\", \"expect\")",
    )?;
    let url = p
        .url
        .ok_or("\"url\" is required: the http:// or https:// URL to call")?;
    let (origin, host, port) = check_url(&url).map_err(|e| format!("\"url\": {e}"))?;
    let method = match p.method.as_deref() {
        None => "POST",
        Some(m) => METHODS
            .into_iter()
            .chain([HEAD])
            .find(|k| *k == m)
            .ok_or_else(|| {
                format!(
                    "\"method\": {} must be \"GET\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\" or \"HEAD\"",
                    Value::String(m.into())
                )
            })?,
    };
    let headers = check_headers(p.headers.unwrap_or_default())?;
    let body = match p.body {
        None => Body::None,
        Some(_) if matches!(method, "GET" | HEAD) => {
            return Err(format!(
                "\"body\" cannot be sent with {method}; use POST, PUT, PATCH or DELETE, or leave \"body\" out"
            ))
        }
        Some(Value::String(s)) => Body::Text(s),
        Some(v) => Body::Json(serde_json::to_vec(&v).expect("a JSON value serializes")),
    };
    let timeout_secs = match p.timeout_secs {
        None => DEFAULT_TIMEOUT_SECS,
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=MAX_TIMEOUT_SECS).contains(n))
            .ok_or_else(|| {
                format!(
                    "\"timeout_secs\" must be an integer of seconds 1-{MAX_TIMEOUT_SECS}, got {n}"
                )
            })?,
    };
    let expect = match p.expect {
        None => Expect::default(),
        Some(items) => check_expect(items)?,
    };
    if let Some(e) = &p.event {
        let header_safe =
            |v: &str| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic());
        if ![&e.kind, &e.id, &e.subscription]
            .iter()
            .all(|v| header_safe(v))
        {
            return Err("\"event\": its values must be 1-200 printable ASCII characters".into());
        }
    }
    Ok(Spec {
        url,
        origin,
        host,
        port,
        method,
        headers,
        body,
        timeout: Duration::from_secs(timeout_secs),
        expect,
        event: p.event,
    })
}

/// `url` → its origin (for messages), host and port.
fn check_url(url: &str) -> Result<(String, Host, u16), String> {
    let quoted = Value::String(url.into());
    if url.len() > MAX_URL_LEN {
        return Err(format!("longer than {MAX_URL_LEN} characters"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{quoted} is not an http:// or https:// URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(format!(
                "{quoted}: only http:// and https:// URLs can be called, not {scheme}://"
            ))
        }
    };
    if url.contains('#') {
        return Err(format!(
            "{quoted} has a fragment (#…), which is never sent; remove it"
        ));
    }
    // The request line is built from what the HTTP library parses, so it must parse there.
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{quoted} is not a valid URL: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{quoted} has no host"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority.as_str().contains('@') || rest[..end].contains('@') {
        return Err(
            "user info (user:password@) is not allowed in the URL; send credentials in \"headers\" (Authorization)"
                .into(),
        );
    }
    let host = Host::parse(authority.host()).map_err(|e| format!("the host {e}"))?;
    let port = match authority.port() {
        None if authority.as_str().ends_with(':') => {
            return Err(format!("{quoted} has an empty port"))
        }
        None => default_port,
        Some(p) => match p.as_u16() {
            0 => return Err(format!("{quoted}: port 0 cannot be called")),
            p => p,
        },
    };
    let origin = if port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    };
    Ok((origin, host, port))
}

fn check_headers(headers: Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!(
            "\"headers\" may hold at most {MAX_HEADERS} headers"
        ));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let quoted = Value::String(name.clone());
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.bytes().all(token) {
            return Err(format!(
                "\"headers\": {quoted} is not a header name (1-{MAX_HEADER_NAME} letters, digits and !#$%&'*+-.^_`|~)"
            ));
        }
        let lower = name.to_ascii_lowercase();
        if let Some((_, why)) = REFUSED_HEADERS.iter().find(|(n, _)| *n == lower) {
            return Err(format!("\"headers\": {quoted} cannot be set: {why}"));
        }
        if lower.starts_with(JOBQ_HEADER_PREFIX) {
            return Err(format!(
                "\"headers\": {quoted} cannot be set: X-Jobq-* headers are jobq's own (job id, attempt, signature)"
            ));
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            return Err(format!(
                "\"headers\": {quoted} is given twice (header names are case-insensitive)"
            ));
        }
        let Value::String(value) = value else {
            return Err(format!(
                "\"headers\": the value of {quoted} must be a string, got {value}"
            ));
        };
        let visible = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b);
        if value.len() > MAX_HEADER_VALUE || !value.bytes().all(visible) {
            return Err(format!(
                "\"headers\": the value of {quoted} must be up to {MAX_HEADER_VALUE} printable ASCII characters (no line breaks)"
            ));
        }
        out.push((name, value.trim().to_string()));
    }
    Ok(out)
}

fn check_expect(items: Vec<Value>) -> Result<Expect, String> {
    if items.is_empty() || items.len() > MAX_EXPECT {
        return Err(format!(
            "\"expect\" must list 1-{MAX_EXPECT} statuses, e.g. [200, 202] or [\"2xx\"]"
        ));
    }
    items
        .into_iter()
        .map(|v| {
            let item = match &v {
                Value::Number(n) => n
                    .as_u64()
                    .filter(|s| (100..=599).contains(s))
                    .map(|s| ExpectItem::Status(s as u16)),
                Value::String(s) => match s.as_bytes() {
                    [d @ b'1'..=b'5', b'x', b'x'] => Some(ExpectItem::Class(u16::from(d - b'0'))),
                    _ => None,
                },
                _ => None,
            };
            item.ok_or_else(|| {
                format!("\"expect\": {v} is neither a status 100-599 nor a class \"1xx\"-\"5xx\"")
            })
        })
        .collect::<Result<_, _>>()
        .map(Expect)
}

/// The payload's schema for the API document. It cannot say which hosts WEBHOOK_ALLOW and the
/// private-address rule let through; those are refused with a 400 naming the host.
pub fn payload_schema() -> Value {
    let methods: Vec<&str> = METHODS.into_iter().chain([HEAD]).collect();
    json!({
        "type": "object",
        "description": "An HTTP request to `url`. Succeeds when the answer's status is in `expect` (any 2xx by default); 5xx, 408, 429 and network errors are retried, other answers go to the dead-letter queue. See README, \"Webhook jobs\".",
        "additionalProperties": false,
        "required": ["url"],
        "properties": {
            "url": {
                "type": "string",
                "maxLength": MAX_URL_LEN,
                "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.\\[\\]:-]+(:[0-9]{1,5})?([/?][^\\s#]*)?$",
                "description": "http:// or https://, without user info or fragment. Private, loopback and link-local addresses only when WEBHOOK_ALLOW lists the host."
            },
            "method": {
                "type": "string",
                "nullable": true,
                "enum": methods.iter().map(|m| json!(m)).chain([Value::Null]).collect::<Vec<_>>(),
                "description": "Default POST."
            },
            "headers": {
                "type": "object",
                "nullable": true,
                "maxProperties": MAX_HEADERS,
                "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE, "pattern": "^[\\t\\x20-\\x7e]*$"},
                "description": "Extra request headers. Not Host, Content-Length, Expect, hop-by-hop headers (Connection, Transfer-Encoding, …) or X-Jobq-*."
            },
            "body": {
                "nullable": true,
                "description": "A string is sent as it is (text/plain; charset=utf-8), anything else as JSON (application/json), unless `headers` gives a Content-Type. Not with GET or HEAD."
            },
            "timeout_secs": {
                "type": "integer",
                "nullable": true,
                "minimum": 1,
                "maximum": MAX_TIMEOUT_SECS,
                "description": format!("The whole request's limit (connect, send, answer); default {DEFAULT_TIMEOUT_SECS}.")
            },
            "expect": {
                "type": "array",
                "nullable": true,
                "minItems": 1,
                "maxItems": MAX_EXPECT,
                "items": {
                    "oneOf": [
                        {"type": "integer", "minimum": 100, "maximum": 599},
                        {"type": "string", "pattern": "^[1-5]xx$"}
                    ]
                },
                "description": "The statuses that count as success: numbers, or classes such as \"2xx\". Default [\"2xx\"]."
            }
        },
        "example": {"url": "https://hooks.example.com/orders", "body": {"order": 42, "state": "shipped"}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: Value) -> Spec {
        parse(&p).unwrap_or_else(|e| panic!("{p} was refused: {e}"))
    }

    fn err(p: Value) -> String {
        match parse(&p) {
            Ok(s) => panic!("{p} was accepted: {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_and_a_full_payload() {
        let s = ok(json!({"url": "https://Hooks.Example.com/in?token=abc"}));
        assert_eq!(s.method, "POST");
        assert_eq!(s.origin, "https://hooks.example.com");
        assert_eq!(
            (s.host.to_string(), s.port),
            ("hooks.example.com".into(), 443)
        );
        assert_eq!((s.body, s.timeout), (Body::None, Duration::from_secs(30)));
        assert!(s.expect.accepts(200) && s.expect.accepts(299) && !s.expect.accepts(300));

        let s = ok(json!({
            "url": "http://[2001:db8::1]:8080/x", "method": "PUT",
            "headers": {"Authorization": "Bearer t", "content-type": "application/vnd.x+json"},
            "body": {"a": [1, 2]}, "timeout_secs": 300, "expect": [200, "3xx", 410]
        }));
        assert_eq!(s.origin, "http://[2001:db8::1]:8080");
        assert_eq!(s.port, 8080);
        assert!(s.has_header("Content-Type"));
        assert_eq!(s.body, Body::Json(br#"{"a":[1,2]}"#.to_vec()));
        assert!(s.expect.accepts(410) && s.expect.accepts(302) && !s.expect.accepts(201));
        assert_eq!(
            ok(json!({"url": "http://h.example", "body": "hi"})).body,
            Body::Text("hi".into())
        );
        assert_eq!(
            ok(json!({"url": "http://h.example", "body": null})).body,
            Body::None
        );
        assert_eq!(
            ok(json!({"url": "http://h.example:80/"})).origin,
            "http://h.example"
        );
    }

    #[test]
    fn bad_payloads_are_refused_naming_the_field() {
        let cases = [
            (json!({}), "\"url\" is required"),
            (json!([1]), "must be an object"),
            (json!({"url": "ftp://h.example/"}), "\"url\""),
            (json!({"url": "h.example/x"}), "\"url\""),
            (json!({"url": "http://u:p@h.example/"}), "user info"),
            (json!({"url": "http://h.example/#frag"}), "fragment"),
            (json!({"url": "http://h.example:0/"}), "port 0"),
            (json!({"url": "http://h.example:/"}), "empty port"),
            (json!({"url": "http://h_x.example/"}), "\"url\": the host"),
            (json!({"url": "http://127.1/"}), "\"url\": the host"),
            (json!({"url": "http://h.example/a b"}), "\"url\""),
            (
                json!({"url": format!("http://h.example/{}", "a".repeat(4096))}),
                "longer",
            ),
            (
                json!({"url": "http://h.example", "method": "post"}),
                "\"method\"",
            ),
            (
                json!({"url": "http://h.example", "method": "CONNECT"}),
                "\"method\"",
            ),
            (
                json!({"url": "http://h.example", "method": "GET", "body": {}}),
                "\"body\" cannot be sent with GET",
            ),
            (
                json!({"url": "http://h.example", "headers": {"Host": "x"}}),
                "\"Host\" cannot be set",
            ),
            (
                json!({"url": "http://h.example", "headers": {"transfer-encoding": "chunked"}}),
                "hop-by-hop",
            ),
            (
                json!({"url": "http://h.example", "headers": {"Content-Length": "1"}}),
                "cannot be set",
            ),
            (
                json!({"url": "http://h.example", "headers": {"X-Jobq-Signature": "x"}}),
                "jobq's own",
            ),
            (
                json!({"url": "http://h.example", "headers": {"Bad Name": "x"}}),
                "not a header name",
            ),
            (
                json!({"url": "http://h.example", "headers": {"X-A": "a\r\nX-B: b"}}),
                "printable",
            ),
            (
                json!({"url": "http://h.example", "headers": {"X-A": 1}}),
                "must be a string",
            ),
            (
                json!({"url": "http://h.example", "headers": {"X-A": "1", "x-a": "2"}}),
                "twice",
            ),
            (
                json!({"url": "http://h.example", "headers": ["X-A"]}),
                "\"headers\"",
            ),
            (
                json!({"url": "http://h.example", "timeout_secs": 0}),
                "\"timeout_secs\"",
            ),
            (
                json!({"url": "http://h.example", "timeout_secs": 301}),
                "\"timeout_secs\"",
            ),
            (
                json!({"url": "http://h.example", "timeout_secs": 1.5}),
                "\"timeout_secs\"",
            ),
            (
                json!({"url": "http://h.example", "expect": []}),
                "\"expect\"",
            ),
            (
                json!({"url": "http://h.example", "expect": [600]}),
                "\"expect\": 600",
            ),
            (
                json!({"url": "http://h.example", "expect": ["2XX"]}),
                "\"expect\"",
            ),
            (
                json!({"url": "http://h.example", "expect": "2xx"}),
                "\"expect\"",
            ),
            (
                json!({"url": "http://h.example", "retries": 3}),
                "unknown field \"retries\"",
            ),
        ];
        for (payload, want) in cases {
            let e = err(payload.clone());
            assert!(e.contains(want), "{payload}: {e:?} does not say {want:?}");
        }
        let many: Map<String, Value> = (0..51).map(|i| (format!("X-{i}"), json!("v"))).collect();
        assert!(err(json!({"url": "http://h.example", "headers": many})).contains("at most 50"));
    }

    #[test]
    fn a_delivery_job_carries_its_event_which_becomes_headers_not_payload_headers() {
        let s = ok(json!({"url": "http://h.example", "body": {"id": "e1"},
            "event": {"type": "job.dead", "id": "e1", "subscription": "ops"}}));
        let e = s.event.expect("the mark");
        assert_eq!(
            (e.kind.as_str(), e.id.as_str(), e.subscription.as_str()),
            ("job.dead", "e1", "ops")
        );
        assert!(s.headers.is_empty());
        let e = err(
            json!({"url": "http://h.example", "event": {"type": "job.dead", "id": "a b", "subscription": "ops"}}),
        );
        assert!(e.contains("\"event\""), "{e}");
        let e = err(json!({"url": "http://h.example", "event": {"type": "job.dead", "id": "e1"}}));
        assert!(e.contains("subscription"), "{e}");
    }
}
