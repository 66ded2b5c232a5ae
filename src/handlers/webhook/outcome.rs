//! What a webhook's answer, or its failure to get one, means for the job: a status in `expect`
//! is the result; 5xx, 408, 429 and network errors are worth another attempt (a 429 with
//! `Retry-After` snoozes the job instead, without using one); other statuses are permanent.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::time::Duration;

use super::address::Refused;
use super::payload::Spec;
use crate::handler::JobError;

/// How much of an answer's body is kept in the result.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How much of it an error message quotes.
const QUOTE_CHARS: usize = 200;
/// The longest snooze a `Retry-After` gets; a receiver asking for more is asked again then.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Answer headers kept in the result: what a caller may act on, not the whole set (which can
/// hold cookies and is mostly noise).
pub const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "location",
    "retry-after",
    "etag",
    "x-request-id",
];

/// A receiver's answer, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// [`KEPT_HEADERS`] that were present, by lower-case name.
    pub headers: Map<String, Value>,
    /// The first [`BODY_LIMIT`] bytes of the body.
    pub body: Vec<u8>,
    /// Whether the body was longer (or ended in a read error) and was cut.
    pub truncated: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    /// The job's result: `{"status", "headers", "body", "truncated"}`, the body as JSON when it
    /// parses as JSON, else as text (null when empty).
    pub fn result(&self) -> Value {
        let mut r = Map::new();
        r.insert("status".into(), self.status.into());
        r.insert("headers".into(), Value::Object(self.headers.clone()));
        r.insert("body".into(), body_value(&self.body, self.truncated));
        r.insert("truncated".into(), self.truncated.into());
        Value::Object(r)
    }

    /// The start of the body for an error message.
    fn quote(&self) -> String {
        let text = utf8_prefix(&self.body);
        let flat: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let flat = flat.trim();
        if flat.is_empty() {
            return "(empty body)".into();
        }
        match flat.char_indices().nth(QUOTE_CHARS) {
            Some((i, _)) => format!("{:?}…", &flat[..i]),
            None => format!("{flat:?}"),
        }
    }
}

/// The body as a value: JSON if the whole of it parses, else text (lossy UTF-8, a character
/// cut at the limit dropped), null when empty.
fn body_value(body: &[u8], truncated: bool) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    if !truncated {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            return v;
        }
    }
    Value::String(utf8_prefix(body))
}

/// `bytes` as text, without a last character the limit cut in two.
fn utf8_prefix(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// An answer whose status is not in `expect`, as the job's error.
pub fn failure(spec: &Spec, answer: &Answer, now: DateTime<Utc>) -> JobError {
    let status = answer.status;
    let reason = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let what = format!(
        "{} {} answered {status}{reason}: {}",
        spec.method,
        spec.origin,
        answer.quote()
    );
    match status {
        429 => match answer.header("retry-after").and_then(|v| retry_after(v, now)) {
            Some(asked) => {
                let delay = asked.clamp(Duration::from_secs(1), MAX_RETRY_AFTER);
                let capped = if asked > MAX_RETRY_AFTER { " (capped at 1 h)" } else { "" };
                JobError::snooze(
                    delay,
                    format!(
                        "{what}; it asked to wait (Retry-After: {}), so the job is snoozed for {} s{capped} without using an attempt",
                        answer.header("retry-after").unwrap_or_default(),
                        delay.as_secs()
                    ),
                )
            }
            None => JobError::transient(format!(
                "{what}; rate limited without a usable Retry-After, retried after the backoff"
            )),
        },
        408 => JobError::transient(format!(
            "{what}; the receiver timed out reading the request, retried after the backoff"
        )),
        500..=599 => JobError::transient(format!(
            "{what}; a server error, retried after the backoff (then the dead-letter queue, once attempts run out)"
        )),
        400..=499 => JobError::permanent(format!(
            "{what}; the receiver refused the request, which the same request cannot change, so it is not retried: fix the payload (url, headers, body) or the receiver, then retry the job from the dead-letter queue"
        )),
        300..=399 => JobError::permanent(format!(
            "{what}{}; redirects are not followed: point \"url\" at the final address, or list {status} in \"expect\" if this answer is the success",
            answer
                .header("location")
                .map(|l| format!(" (Location: {l})"))
                .unwrap_or_default()
        )),
        _ => JobError::permanent(format!(
            "{what}; {status} is not in \"expect\" (default: any 2xx): list it there if it means success"
        )),
    }
}

/// A request that got no answer, as the job's error. A destination refused by the address
/// guard is permanent (no connection was made, and retrying resolves to the same place);
/// everything else on the way (DNS, connect, TLS, timeout, a broken answer) is transient.
pub fn network_failure(spec: &Spec, e: ureq::Error) -> JobError {
    let to = format!("{} {}", spec.method, spec.origin);
    match e {
        ureq::Error::Other(inner) if inner.is::<Refused>() => {
            JobError::permanent(format!("{to} refused: {inner}"))
        }
        ureq::Error::Timeout(which) => JobError::transient(format!(
            "{to}: no answer within {:?} ({which}), retried after the backoff; raise \"timeout_secs\" (at most 300) if the receiver is slow",
            spec.timeout
        )),
        ureq::Error::HostNotFound => JobError::transient(format!(
            "{to}: {} was not found in DNS, retried after the backoff; check the host name",
            spec.host
        )),
        // rustls's handshake errors reach here inside an io::Error.
        ureq::Error::Io(io) if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            tls_failure(&to, spec, &io.into_inner().expect("checked above"))
        }
        e @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_)) => {
            tls_failure(&to, spec, &e)
        }
        e @ (ureq::Error::Http(_) | ureq::Error::BadUri(_)) => {
            JobError::permanent(format!("{to}: the request cannot be sent: {e}"))
        }
        // Without ureq's "io: " in front of a connection's error.
        ureq::Error::Io(io) => JobError::transient(format!(
            "{to}: {io}, retried after the backoff; check that the receiver is up and reachable from this host"
        )),
        e => JobError::transient(format!(
            "{to}: {e}, retried after the backoff; check that the receiver is up and reachable from this host"
        )),
    }
}

fn tls_failure(to: &str, spec: &Spec, e: &dyn std::fmt::Display) -> JobError {
    JobError::transient(format!(
        "{to}: TLS failed ({e}), retried after the backoff; check that the receiver's certificate is valid for {} and signed by a CA this host trusts (ca-certificates, or SSL_CERT_FILE)",
        spec.host
    ))
}

/// A `Retry-After` value as a delay from `now`: delay-seconds, or an HTTP-date (IMF-fixdate,
/// `Wed, 21 Oct 2015 07:28:00 GMT`); a date in the past is no delay. None for anything else
/// (the obsolete RFC 850 and asctime date forms included), which leaves the backoff to decide.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a long time".
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::ErrorKind;
    use serde_json::json;

    fn spec() -> Spec {
        super::super::payload::parse(&json!({"url": "https://hooks.example.com/secret-path?t=1"}))
            .unwrap()
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        Answer {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let n = now();
        assert_eq!(retry_after("120", n), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", n), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", n),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:30:30 GMT", n),
            Some(Duration::from_secs(150))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", n),
            Some(Duration::ZERO)
        );
        for bad in ["", "-5", "1.5", "soon", "Wednesday, 21-Oct-15 07:28:00 GMT"] {
            assert_eq!(retry_after(bad, n), None, "{bad:?}");
        }
    }

    #[test]
    fn statuses_decide_the_kind_of_failure() {
        let s = spec();
        let kind = |status, headers: &[(&str, &str)]| {
            failure(&s, &answer(status, headers, "x"), now()).kind
        };
        assert_eq!(kind(500, &[]), ErrorKind::Transient);
        assert_eq!(kind(503, &[("retry-after", "5")]), ErrorKind::Transient);
        assert_eq!(kind(408, &[]), ErrorKind::Transient);
        assert_eq!(kind(429, &[]), ErrorKind::Transient);
        assert_eq!(kind(429, &[("retry-after", "soon")]), ErrorKind::Transient);
        assert_eq!(
            kind(429, &[("retry-after", "7")]),
            ErrorKind::Snooze(Duration::from_secs(7))
        );
        assert_eq!(
            kind(429, &[("retry-after", "0")]),
            ErrorKind::Snooze(Duration::from_secs(1))
        );
        assert_eq!(
            kind(429, &[("retry-after", "86400")]),
            ErrorKind::Snooze(MAX_RETRY_AFTER)
        );
        assert_eq!(
            kind(429, &[("retry-after", "Wed, 21 Oct 2015 07:29:00 GMT")]),
            ErrorKind::Snooze(Duration::from_secs(60))
        );
        for permanent in [400, 401, 404, 410, 422, 301, 304, 101, 204] {
            assert_eq!(kind(permanent, &[]), ErrorKind::Permanent, "{permanent}");
        }
    }

    #[test]
    fn messages_say_what_happened_and_keep_the_path_out() {
        let s = spec();
        let e = failure(
            &s,
            &answer(404, &[], "{\"error\": \"no such hook\"}\n"),
            now(),
        );
        assert!(
            e.message.starts_with(
                "POST https://hooks.example.com answered 404 Not Found: \"{\\\"error\\\": \\\"no such hook\\\"}\""
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains("dead-letter queue"), "{}", e.message);
        assert!(!e.message.contains("secret-path"), "{}", e.message);
        let e = failure(
            &s,
            &answer(302, &[("location", "https://x.example/")], ""),
            now(),
        );
        assert!(
            e.message
                .contains("302 Found: (empty body) (Location: https://x.example/)")
                && e.message.contains("redirects are not followed"),
            "{}",
            e.message
        );
        let long = "é".repeat(500);
        let e = failure(&s, &answer(500, &[], &long), now());
        assert!(
            e.message.contains(&format!("\"{}\"…;", &"é".repeat(200))),
            "{}",
            e.message
        );
        let e = failure(&s, &answer(429, &[("retry-after", "30")], ""), now());
        assert!(e.message.contains("snoozed for 30 s"), "{}", e.message);
        let e = network_failure(&s, ureq::Error::Other(Box::new(Refused("nope".into()))));
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ErrorKind::Permanent,
                "POST https://hooks.example.com refused: nope"
            )
        );
        let bad_cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, bad_cert);
        let e = network_failure(&s, ureq::Error::Io(io));
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(
            e.message.starts_with("POST https://hooks.example.com: TLS failed (invalid peer certificate: UnknownIssuer)")
                && e.message.contains("SSL_CERT_FILE"),
            "{}",
            e.message
        );
        let e = network_failure(&s, ureq::Error::HostNotFound);
        assert_eq!(e.kind, ErrorKind::Transient);
        let e = network_failure(
            &s,
            ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        );
        assert_eq!(e.kind, ErrorKind::Transient);
    }

    #[test]
    fn results_carry_the_body_as_json_or_text() {
        let a = answer(
            200,
            &[("content-type", "application/json")],
            "{\"ok\":true}",
        );
        assert_eq!(
            a.result(),
            json!({"status": 200, "headers": {"content-type": "application/json"}, "body": {"ok": true}, "truncated": false})
        );
        assert_eq!(
            answer(201, &[], "accepted").result()["body"],
            json!("accepted")
        );
        assert_eq!(answer(204, &[], "").result()["body"], Value::Null);
        // A cut body is text, even if its start looks like JSON, without a half character.
        let mut cut = answer(200, &[], "");
        cut.body = "[\"é".as_bytes()[..3].to_vec();
        cut.truncated = true;
        assert_eq!(cut.result()["body"], json!("[\""));
        assert_eq!(cut.result()["truncated"], json!(true));
    }
}
