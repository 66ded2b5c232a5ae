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
    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        Reply {
            status,
            body: serde_json::to_string(value).expect("API types serialize"),
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

    pub fn into_response(self) -> Response<std::io::Cursor<Vec<u8>>> {
        let mut r = Response::from_data(self.body.into_bytes()).with_status_code(self.status);
        r.add_header(header("Content-Type", self.content_type));
        for (name, value) in &self.headers {
            r.add_header(header(name, value));
        }
        r
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values are ASCII")
}

impl From<StoreError> for Reply {
    fn from(e: StoreError) -> Reply {
        match e {
            StoreError::Unavailable(_) => Reply::error(
                503,
                format!("{e}; the request was not processed, retry shortly"),
            )
            .with_header("Retry-After", "1"),
            StoreError::Redis(_) | StoreError::Corrupt(_) => {
                log::error!("request failed: {e}");
                Reply::error(
                    500,
                    format!("{e}; this is a bug in jobq or an unsupported Redis"),
                )
            }
        }
    }
}
