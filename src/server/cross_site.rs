//! Refusing state changes that a browser sends on behalf of another site (cross-site request
//! forgery): a form post or a no-CORS `fetch` from a page elsewhere reaches jobq with the
//! browser's network position (loopback, a private network), and without API_TOKEN nothing
//! else would stop it. Browsers say where a request comes from, and page script cannot forge
//! it: `Sec-Fetch-Site` (every current browser) and `Origin` (on every cross-origin POST, PUT
//! and DELETE). Clients that are not browsers (curl, SDKs, `jobq` itself) send neither and are
//! not affected, so `curl -d` keeps working whatever its Content-Type.

use tiny_http::Request;

use super::input::header;
use super::ApiError;

/// Refuses a request that a browser marks as coming from another site. Only routes that change
/// state call this: a cross-site GET can send a request but not read its answer (jobq sends no
/// CORS headers), and GETs change nothing.
pub fn refuse_cross_site(req: &Request) -> Result<(), ApiError> {
    let header = |name: &'static str| header(req, name);
    let refused = match (header("Sec-Fetch-Site"), header("Origin")) {
        // The browser's own verdict, which holds behind a proxy that rewrites Host too.
        // `same-site` is a sibling subdomain: another origin, so refused as well.
        (Some(site), _) => (!matches!(site.to_ascii_lowercase().as_str(), "same-origin" | "none"))
            .then(|| format!("Sec-Fetch-Site: {site}")),
        (None, Some(origin)) => {
            (!same_origin(origin, header("Host"))).then(|| format!("Origin: {origin}"))
        }
        (None, None) => None,
    };
    match refused {
        None => Ok(()),
        Some(why) => Err(ApiError::Forbidden(format!(
            "cross-site request refused ({why}): {} {} changes state, which jobq accepts only from its own origin or from clients that are not browsers",
            req.method().as_str().to_ascii_uppercase(),
            req.url().split('?').next().unwrap_or_default()
        ))),
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to. Only the
/// authority is compared: behind a TLS proxy the browser's scheme is https while jobq serves
/// plain HTTP. `null` (a sandboxed frame, a redirect) is never the same origin.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_on_the_authority_only() {
        assert!(same_origin("http://127.0.0.1:8081", Some("127.0.0.1:8081")));
        assert!(same_origin("https://JOBQ.example", Some("jobq.example")));
        assert!(!same_origin("https://evil.example", Some("jobq.example")));
        assert!(!same_origin(
            "http://127.0.0.1:9999",
            Some("127.0.0.1:8081")
        ));
        assert!(!same_origin("null", Some("127.0.0.1:8081")));
        assert!(!same_origin("http://127.0.0.1:8081", None));
        assert!(!same_origin(
            "http://127.0.0.1:8081/",
            Some("127.0.0.1:8081")
        ));
    }
}
