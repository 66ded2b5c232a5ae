//! What can go wrong answering a request, and the one mapping from those errors to HTTP status
//! codes, headers and `{"error": "..."}` bodies. Route code returns an [`ApiError`]; only this
//! file decides what the client sees for it.

use std::fmt;

use super::Reply;
use crate::store::StoreError;

/// Why a request is not answered with success. Each message says what is wrong and what to do.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed or names something invalid: 400.
    BadRequest(String),
    /// API_TOKEN is set and the bearer token is missing or wrong: 401 with a challenge.
    Unauthorized(&'static str),
    /// The caller is known but may not do this: the read-only token on a route that changes
    /// state, or a state-changing request sent by a browser from another site: 403.
    Forbidden(String),
    /// No such resource, route, or not on this process: 404.
    NotFound(String),
    /// The request clashes with the state of a job: 409, naming the job (`job_id`) when there
    /// is one.
    Conflict {
        message: String,
        job_id: Option<String>,
    },
    /// The path exists for other methods: 405 with `Allow`.
    MethodNotAllowed { message: String, allow: String },
    /// A body larger than MAX_BODY_BYTES: 413.
    TooLarge(String),
    /// No room now (the queue is full, too many connections): 503 with `Retry-After`.
    Busy(String),
    /// Redis failed: 503 when waiting may help, 500 when it will not.
    Store(StoreError),
    /// A bug in jobq (a panic in a route, an impossible answer from Redis): 500.
    Internal(String),
}

impl ApiError {
    /// The HTTP status for this error: the one place that decides it.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict { .. } => 409,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::TooLarge(_) => 413,
            ApiError::Busy(_) => 503,
            ApiError::Store(e) if e.can_heal() => 503,
            ApiError::Store(_) | ApiError::Internal(_) => 500,
        }
    }

    /// The answer to send. Errors that are jobq's fault (500) are logged here too.
    pub fn into_reply(self) -> Reply {
        let status = self.status();
        match self {
            ApiError::Unauthorized(m) => Reply::error(status, m)
                .with_header("WWW-Authenticate", "Bearer realm=\"jobq\""),
            ApiError::MethodNotAllowed { message, allow } => {
                Reply::error(status, message).with_header("Allow", allow)
            }
            ApiError::Busy(m) => Reply::error(status, m).with_header("Retry-After", "1"),
            ApiError::Conflict { message, job_id } => Reply::json(
                status,
                &match job_id {
                    Some(id) => serde_json::json!({"error": message, "job_id": id}),
                    None => serde_json::json!({ "error": message }),
                },
            ),
            // The job exists: the generic advice below ("may still have taken effect") would
            // understate it.
            ApiError::Store(e @ StoreError::Unconfirmed { .. }) => {
                Reply::error(status, e.to_string()).with_header("Retry-After", "1")
            }
            ApiError::Store(e) if status == 503 => Reply::error(
                status,
                format!(
                    "{e}; retry shortly (if Redis did not answer in time the request may still have taken effect: send POST /jobs with an Idempotency-Key so a retry cannot create a second job)"
                ),
            )
            .with_header("Retry-After", "1"),
            ApiError::Store(e) => {
                log::error!("request failed: {e}");
                Reply::error(
                    status,
                    format!("{e}; this is a bug in jobq or an unsupported Redis"),
                )
            }
            ApiError::Internal(m) => {
                log::error!("request failed: {m}");
                Reply::error(status, m)
            }
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::TooLarge(m) => Reply::error(status, m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::Store(e)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Store(e) => write!(f, "{e}"),
            ApiError::Unauthorized(m) => f.write_str(m),
            ApiError::MethodNotAllowed { message, .. } | ApiError::Conflict { message, .. } => {
                f.write_str(message)
            }
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::TooLarge(m)
            | ApiError::Busy(m)
            | ApiError::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::Store(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_status_per_kind_of_error() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400, None),
            (ApiError::Unauthorized("x"), 401, Some("WWW-Authenticate")),
            (ApiError::Forbidden("x".into()), 403, None),
            (ApiError::NotFound("x".into()), 404, None),
            (
                ApiError::MethodNotAllowed {
                    message: "x".into(),
                    allow: "GET".into(),
                },
                405,
                Some("Allow"),
            ),
            (ApiError::TooLarge("x".into()), 413, None),
            (ApiError::Busy("x".into()), 503, Some("Retry-After")),
            (
                ApiError::Store(StoreError::unavailable("down")),
                503,
                Some("Retry-After"),
            ),
            (
                ApiError::Store(StoreError::Unconfirmed {
                    message: "job x was stored".into(),
                }),
                503,
                Some("Retry-After"),
            ),
            (ApiError::Store(StoreError::corrupt("bad")), 500, None),
            (ApiError::Internal("bug".into()), 500, None),
        ];
        for (err, status, header) in cases {
            let reply = err.into_reply();
            assert_eq!(reply.status, status);
            assert!(reply.body.starts_with("{\"error\":"), "{}", reply.body);
            if let Some(h) = header {
                assert!(
                    reply.headers.iter().any(|(n, _)| *n == h),
                    "{h} on {status}"
                );
            }
        }
    }
}
