//! HTTP answers: one [`Reply`] type, JSON bodies, and the one mapping from errors to status codes.

use serde::Serialize;
use tiny_http::{Header, Response};

use crate::store::StoreError;

/// An answer before it is written to the socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
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
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
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

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Reply {
        match e {
            StoreError::Unavailable { .. } | StoreError::Rejected { .. } => Reply::error(
                503,
                format!(
                    "{e}; retry shortly (if Redis did not answer in time the request may still have taken effect: send POST /jobs with an Idempotency-Key so a retry cannot create a second job)"
                ),
            )
            .with_header("Retry-After", "1"),
            StoreError::Redis { .. } | StoreError::Corrupt { .. } => {
                log::error!("request failed: {e}");
                Reply::error(
                    500,
                    format!("{e}; this is a bug in jobq or an unsupported Redis"),
                )
            }
        }
    }
}
