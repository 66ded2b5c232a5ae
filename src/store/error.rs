//! [`StoreError`]: what can go wrong talking to Redis, sorted by what the caller should do about
//! it (wait, fix the configuration, or report a bug), with the underlying error kept as the
//! [`source`](std::error::Error::source).
//!
//! Which Redis error lands in which variant is decided in `conn.rs` (one command) and
//! `decode.rs` (one reply of a pipeline); the tests here pin that classification.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A cause that is not a Redis error (a certificate file that cannot be read). Shared, so a
/// [`StoreError`] stays `Clone`: a gathered create hands one failed round trip to every job.
pub type Cause = Arc<dyn Error + Send + Sync + 'static>;

/// What can go wrong talking to Redis. `message` is the operator-facing text (shown after the
/// variant's prefix by `Display`); `source` is the error it came from, when there was one.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// Redis cannot be reached, did not answer in time, or is in a passing state (loading,
    /// busy, a read-only replica, out of memory): retry later (HTTP 503).
    Unavailable {
        /// What happened and what to do, for the operator.
        message: String,
        /// The Redis error behind it, if any.
        source: Option<redis::RedisError>,
    },
    /// Redis answered with an error: a bug or a Redis that is not what jobq expects.
    Redis {
        /// What Redis answered.
        message: String,
        /// The Redis error behind it, if any.
        source: Option<redis::RedisError>,
    },
    /// A record that does not parse.
    Corrupt {
        /// Which record, and what is wrong with it.
        message: String,
    },
    /// A create was stored on the master, but `WAIT` did not see it reach REDIS_WAIT_REPLICAS
    /// replicas within REDIS_WAIT_TIMEOUT_MS, so a failover now could lose it. The client may
    /// retry with the same idempotency key, which cannot create a second job (HTTP 503).
    Unconfirmed {
        /// Which jobs, and what `WAIT` answered.
        message: String,
    },
    /// Redis refused us: a wrong password, a failed TLS handshake or certificate check, or
    /// settings that cannot work. Waiting will not help; the configuration must change.
    Rejected {
        /// What was refused and which setting to check.
        message: String,
        /// The error behind it (Redis's, or reading a certificate file).
        source: Option<Cause>,
    },
}

impl StoreError {
    /// An outage or passing state with no Redis error behind it.
    pub fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// An unexpected answer with no Redis error behind it (a reply of the wrong shape).
    pub fn redis(message: impl Into<String>) -> StoreError {
        StoreError::Redis {
            message: message.into(),
            source: None,
        }
    }

    /// A record that does not parse.
    pub fn corrupt(message: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            message: message.into(),
        }
    }

    /// A refusal caused by `source` (a URL that does not parse, a file that cannot be read).
    pub fn rejected(
        message: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Rejected {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// Whether waiting can help: Redis is down, slow or in a passing state.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// Whether Redis refused us for good: only a configuration change helps.
    pub fn is_rejected(&self) -> bool {
        matches!(self, StoreError::Rejected { .. })
    }

    /// Whether the failure may go away without a fix to jobq or to the data: an outage or
    /// passing state, or credentials an operator may correct. A caller retries these (the HTTP
    /// API answers 503, a worker keeps its outcome and tries again); the rest are faults.
    pub fn can_heal(&self) -> bool {
        self.is_unavailable()
            || self.is_rejected()
            || matches!(self, StoreError::Unconfirmed { .. })
    }

    /// The text after the variant's prefix.
    pub fn message(&self) -> &str {
        match self {
            StoreError::Unavailable { message, .. }
            | StoreError::Redis { message, .. }
            | StoreError::Corrupt { message }
            | StoreError::Unconfirmed { message }
            | StoreError::Rejected { message, .. } => message,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.message();
        match self {
            StoreError::Unavailable { .. } => write!(f, "Redis is unavailable: {m}"),
            StoreError::Redis { .. } => write!(f, "Redis refused a command: {m}"),
            StoreError::Corrupt { .. } => write!(f, "corrupt job record: {m}"),
            StoreError::Rejected { .. } => write!(f, "Redis refused the connection: {m}"),
            StoreError::Unconfirmed { .. } => write!(f, "not confirmed on Redis replicas: {m}"),
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StoreError::Unavailable { source, .. } | StoreError::Redis { source, .. } => {
                source.as_ref().map(|e| e as _)
            }
            StoreError::Rejected { source, .. } => source.as_deref().map(|e| e as _),
            StoreError::Corrupt { .. } | StoreError::Unconfirmed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conn::{classify, transient_state};
    use crate::store::decode::pipeline_error;

    /// A Redis error reply as it comes off the wire: `-CODE text`.
    fn reply(code: &str, text: &str) -> redis::ServerError {
        match redis::parse_redis_value(format!("-{code} {text}\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(e)) => e,
            other => panic!("not an error reply: {other:?}"),
        }
    }

    fn server_error(code: &str, text: &str) -> redis::RedisError {
        redis::RedisError::from(reply(code, text))
    }

    #[test]
    fn display_keeps_the_old_texts() {
        assert_eq!(
            StoreError::unavailable("x").to_string(),
            "Redis is unavailable: x"
        );
        assert_eq!(
            StoreError::redis("x").to_string(),
            "Redis refused a command: x"
        );
        assert_eq!(
            StoreError::corrupt("x").to_string(),
            "corrupt job record: x"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = StoreError::rejected("x", io);
        assert_eq!(e.to_string(), "Redis refused the connection: x");
        assert_eq!(e.source().unwrap().to_string(), "gone");
        assert!(e.is_rejected() && !e.is_unavailable());
    }

    #[test]
    fn passing_states_are_unavailable_and_keep_their_cause() {
        for code in [
            "BUSY",
            "LOADING",
            "TRYAGAIN",
            "MASTERDOWN",
            "READONLY",
            "CLUSTERDOWN",
            "NOSCRIPT",
        ] {
            assert!(transient_state(code).is_some(), "{code}");
            let e = classify(server_error(code, "wait"));
            assert!(e.is_unavailable(), "{code}: {e:?}");
            assert!(e.to_string().contains("retry shortly"), "{code}: {e}");
            let cause = e.source().expect("the Redis error is kept");
            let cause = cause.downcast_ref::<redis::RedisError>().unwrap();
            assert_eq!(cause.code(), Some(code));
            // The same code as one reply of a pipeline.
            let piped = pipeline_error(&reply(code, "wait"));
            assert!(piped.is_unavailable(), "{code}: {piped:?}");
        }
    }

    #[test]
    fn out_of_memory_is_unavailable_with_advice() {
        let e = classify(server_error("OOM", "command not allowed"));
        assert!(e.is_unavailable(), "{e:?}");
        assert!(e.to_string().contains("maxmemory"), "{e}");
        assert!(e.source().is_some());
        // The same in a gathered create's pipeline.
        let piped = pipeline_error(&reply("OOM", "command not allowed"));
        assert!(piped.is_unavailable(), "{piped:?}");
        assert!(piped.to_string().contains("maxmemory"), "{piped}");
    }

    #[test]
    fn refusals_are_rejected() {
        for code in ["NOAUTH", "WRONGPASS", "NOPERM"] {
            let e = classify(server_error(code, "no"));
            assert!(e.is_rejected(), "{code}: {e:?}");
            assert!(e.source().is_some(), "{code}");
        }
    }

    #[test]
    fn other_server_errors_are_bugs() {
        for code in ["ERR", "WRONGTYPE", "EXECABORT"] {
            let e = classify(server_error(code, "Operation against a key"));
            assert!(matches!(e, StoreError::Redis { .. }), "{code}: {e:?}");
            assert!(e.source().is_some(), "{code}");
            assert!(transient_state(code).is_none());
        }
        let piped = pipeline_error(&reply("WRONGTYPE", "bad"));
        assert!(matches!(piped, StoreError::Redis { .. }), "{piped:?}");
    }

    #[test]
    fn transport_failures_are_unavailable() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = classify(redis::RedisError::from(refused));
        assert!(e.is_unavailable(), "{e:?}");
        assert!(e.to_string().contains("is redis-server running?"), "{e}");
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let e = classify(redis::RedisError::from(timeout));
        assert!(e.is_unavailable(), "{e:?}");
        assert!(e.to_string().contains("no answer within 1500 ms"), "{e}");
    }
}
