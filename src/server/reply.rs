//! HTTP answers: one [`Reply`] type with JSON or text bodies, written to tiny_http or, for the
//! accept loop's own refusals, as raw bytes. Errors become replies in `error.rs`. Every answer
//! carries the browser security headers of [`SECURITY_HEAD`] and a Content-Security-Policy.

use serde::Serialize;
use tiny_http::{Header, Response};

/// The Content-Security-Policy of the API's JSON and text answers: nothing may load from them
/// and no page may frame them, should a browser ever render one.
pub const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The browser security headers of every answer as header lines: no framing (for browsers
/// without CSP `frame-ancestors`), no guessing a type other than the `Content-Type`, no
/// `Referer` leaking a job id to another site. Written as they are by the patched tiny_http
/// (`Response::with_static_head`), so they cost no allocation per answer. (Its own error
/// answers send the same with [`API_POLICY`]: keep `vendor/tiny_http/src/client.rs` in step.)
macro_rules! security_head {
    () => {
        "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
    };
}
const SECURITY_HEAD: &str = security_head!();
/// [`SECURITY_HEAD`] with [`API_POLICY`] (a test checks the two spell the same policy).
const API_HEAD: &str = concat!(
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n",
    security_head!()
);

/// An answer before it is written to the socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    /// The Content-Security-Policy: [`API_POLICY`] for JSON and text; the dashboard's files
    /// (`ui.rs`) set their own with [`Reply::with_policy`].
    pub policy: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// `value` as JSON, ending with a newline like any text a terminal or `curl` shows.
    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        let mut body = serde_json::to_string(value).expect("API types serialize");
        body.push('\n');
        Reply {
            status,
            body,
            content_type: "application/json",
            policy: API_POLICY,
            headers: Vec::new(),
        }
    }

    /// `{"error": "..."}` with `status`; the message says what is wrong and what to do.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &serde_json::json!({ "error": message.into() }))
    }

    pub fn text(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            body,
            content_type,
            policy: API_POLICY,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The Content-Security-Policy for an answer that is not API JSON or text (the dashboard).
    pub fn with_policy(mut self, policy: &'static str) -> Reply {
        self.policy = policy;
        self
    }

    /// The whole HTTP/1.1 response as bytes, closing the connection: for answers written by the
    /// accept loop itself (a connection over MAX_CONNECTIONS).
    pub fn into_raw_close(self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        head.push_str(&format!("Content-Security-Policy: {}\r\n", self.policy));
        head.push_str(SECURITY_HEAD);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }

    pub fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut r = Response::from_data(self.body.into_bytes()).with_status_code(self.status);
        r.add_header(header("Content-Type", self.content_type));
        if self.policy == API_POLICY {
            r = r.with_static_head(API_HEAD);
        } else {
            r.add_header(header("Content-Security-Policy", self.policy));
            r = r.with_static_head(SECURITY_HEAD);
        }
        for (name, value) in &self.headers {
            r.add_header(header(name, value));
        }
        r
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: [(&str, &str); 4] = [
        ("Content-Security-Policy", API_POLICY),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ];

    /// The bytes tiny_http writes for `reply`.
    fn written(reply: Reply) -> String {
        let mut out = Vec::new();
        let version = tiny_http::HTTPVersion(1, 1);
        reply
            .into_response()
            .raw_print(&mut out, version, &[], false, None)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        assert!(API_HEAD.contains(&format!("Content-Security-Policy: {API_POLICY}\r\n")));
        for raw in [
            written(Reply::error(404, "x")),
            String::from_utf8(Reply::error(503, "busy").into_raw_close()).unwrap(),
        ] {
            for (name, value) in EXPECTED {
                assert!(raw.contains(&format!("\r\n{name}: {value}\r\n")), "{raw}");
            }
            assert!(raw.contains("\r\n\r\n{\"error\""), "{raw}");
        }
        let page = Reply::text(200, "text/html", String::new()).with_policy("default-src 'self'");
        let raw = written(page);
        assert_eq!(raw.matches("Content-Security-Policy").count(), 1, "{raw}");
        assert!(
            raw.contains("\r\nContent-Security-Policy: default-src 'self'\r\n"),
            "{raw}"
        );
        assert!(raw.contains("\r\nX-Frame-Options: DENY\r\n"), "{raw}");
    }
}
