//! Bearer-token authentication: with API_TOKEN set, every route needs the token except those
//! the route table marks public; API_TOKEN_READONLY, when set too, is a second token that may
//! call the GET routes only.

use tiny_http::Request;

use super::ApiError;
use crate::config::Config;

/// Who may call an endpoint when API_TOKEN is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only with the token.
    Token,
    /// Anyone (`/health`: load balancers and `jobq health` carry no token).
    Public,
    /// Anyone when METRICS_PUBLIC is set (Prometheus without credentials), else the token.
    Metrics,
}

/// Checks the bearer token (in constant time) when API_TOKEN is set. `changes_state` is true
/// for every route but the GET ones: those the read-only token may not call (403, not 401: the
/// token is right, the action is not allowed with it).
pub fn authorize(
    req: &Request,
    config: &Config,
    access: Access,
    changes_state: bool,
) -> Result<(), ApiError> {
    let Some(token) = config.api_token.as_deref() else {
        return Ok(());
    };
    if access == Access::Public || (access == Access::Metrics && config.metrics_public) {
        return Ok(());
    }
    match given_token(req, token, config) {
        Given::Full => Ok(()),
        Given::ReadOnly if !changes_state => Ok(()),
        Given::ReadOnly => Err(ApiError::Forbidden(format!(
            "this token is read-only: {} {} changes state and needs API_TOKEN; the read-only token may call GET routes only",
            req.method().as_str().to_ascii_uppercase(),
            req.url().split('?').next().unwrap_or_default()
        ))),
        Given::Missing => Err(ApiError::Unauthorized(
            "this server requires a token: send Authorization: Bearer <API_TOKEN>",
        )),
        Given::Wrong => Err(ApiError::Unauthorized("the bearer token is wrong")),
    }
}

/// What the caller may do: `full` (the full token, or no API_TOKEN at all), `read_only` (the
/// API_TOKEN_READONLY token) or `none` (no token, or a wrong one). `GET /access` answers it to
/// anyone, so the dashboard learns whether to ask for a token without a refused request.
pub fn access_level(req: &Request, config: &Config) -> &'static str {
    let Some(token) = config.api_token.as_deref() else {
        return "full";
    };
    match given_token(req, token, config) {
        Given::Full => "full",
        Given::ReadOnly => "read_only",
        Given::Missing | Given::Wrong => "none",
    }
}

/// The token a request carries.
enum Given {
    Missing,
    Full,
    ReadOnly,
    Wrong,
}

/// Compares the request's bearer token with API_TOKEN (`full`) and API_TOKEN_READONLY. Both
/// comparisons are always made, in constant time, so timing does not tell which token was near.
fn given_token(req: &Request, full: &str, config: &Config) -> Given {
    let Some(given) = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| bearer_token(h.value.as_str()))
    else {
        return Given::Missing;
    };
    let is_full = constant_time_eq(given.as_bytes(), full.as_bytes());
    let is_ro = config
        .api_token_readonly
        .as_deref()
        .is_some_and(|ro| constant_time_eq(given.as_bytes(), ro.as_bytes()));
    match (is_full, is_ro) {
        (true, _) => Given::Full,
        (false, true) => Given::ReadOnly,
        (false, false) => Given::Wrong,
    }
}

/// The credentials of an `Authorization: Bearer <token>` value. The scheme is matched without
/// regard to case (RFC 7235 section 2.1), so `bearer` and `BEARER` work too.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for value in ["Bearer tok", "bearer tok", "BEARER  tok ", " Bearer tok"] {
            assert_eq!(bearer_token(value), Some("tok"), "{value:?}");
        }
        for value in ["Basic tok", "Bearertok", "Bearer", "tok"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
