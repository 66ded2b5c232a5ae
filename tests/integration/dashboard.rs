//! The built-in dashboard at `/ui/`: how its files are served (types, the page's own
//! Content-Security-Policy, the redirect, caching, who may load them).

use crate::harness::*;

const TOKEN: &str = "it-token-5d41402abc4b2a76b9719d91";

/// The policy the dashboard's files carry: nothing inline, nothing from elsewhere.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[test]
fn the_dashboard_files_are_served_with_their_own_policy() {
    let redis = RedisServer::start();
    // The files are public even when the API needs a token: they hold no data.
    let server = TestServer::start(&redis, |c| c.api_token = Some(TOKEN.into()));

    let r = server.get("/ui");
    r.expect_status(308, "GET /ui");
    assert_eq!(r.header("location"), Some("/ui/"), "{r:?}");

    let mut etags = Vec::new();
    for (path, ty, needle) in [
        ("/ui/", "text/html; charset=utf-8", "<script src=\"app.js\""),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "'use strict';",
        ),
        (
            "/ui/app.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = server.get(path);
        r.expect_status(200, path);
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            Some(PAGE_POLICY),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert!(r.body.contains(needle), "{path}: {}", r.body);
        etags.push(r.header("etag").expect("an ETag").to_string());

        let head = server.request("HEAD", path, b"");
        head.expect_status(200, &format!("HEAD {path}"));
        assert!(head.body.is_empty(), "HEAD {path} has no body");
        assert_eq!(head.header("content-type"), Some(ty), "HEAD {path}");
    }
    // One build, one tag; sent back, it gets a 304 without a body.
    assert!(etags.windows(2).all(|w| w[0] == w[1]), "{etags:?}");
    let r = server.request_with("GET", "/ui/app.js", &[("If-None-Match", &etags[0])], b"");
    r.expect_status(304, "GET /ui/app.js with its ETag");
    assert!(r.body.is_empty());

    let msg = server
        .get("/ui/secrets.json")
        .expect_json_error(404, "an unknown dashboard file");
    assert!(msg.contains("/ui/"), "{msg}");
    server
        .get("/ui/app.js/x")
        .expect_json_error(404, "below a file");
    let r = server.request("POST", "/ui/", b"");
    r.expect_json_error(405, "POST /ui/");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    // The API's answers keep the API's policy, and the data still needs the token.
    let r = server.get("/stats");
    r.expect_json_error(401, "GET /stats without the token");
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
}

#[test]
fn a_worker_process_serves_no_dashboard() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.role = jobq::Role::Worker);
    let msg = server
        .get("/ui/")
        .expect_json_error(404, "GET /ui/ on ROLE=worker");
    assert!(msg.contains("ROLE=worker"), "{msg}");
}
