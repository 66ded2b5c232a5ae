//! The built-in web dashboard: its files (`ui/index.html`, the JavaScript modules `app.js`,
//! `lib.js` and `pages.js`, `app.css`, `favicon.svg`), compiled into the binary, served under
//! `/ui/` with a strict Content-Security-Policy of their own. They are not API operations (not
//! in `ROUTES` nor in `openapi.json`) and hold no data: anyone may load them, and every call the
//! page makes goes through the API with the token. Served, like the API, only by a process whose
//! ROLE serves the API.

use tiny_http::Request;

use super::{ApiError, Reply};

/// The policy of the dashboard's files: scripts, styles and data from this origin only, no
/// inline script or style attribute, nothing framing it, no form posting anywhere.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        body: include_str!("ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/app.js"),
    },
    Asset {
        name: "lib.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/lib.js"),
    },
    Asset {
        name: "pages.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/pages.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("ui/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("ui/favicon.svg"),
    },
];

/// FNV-1a of the files and this crate's version, computed when compiling: the ETag of every
/// file (a new build with changed files is a new tag).
const VERSION_HASH: u64 = {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut a = 0;
    while a < ASSETS.len() {
        let bytes = ASSETS[a].body.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            h ^= bytes[i] as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        a += 1;
    }
    h
};

/// Whether `path` is the dashboard's (`/ui` or below): those are answered by [`answer`].
pub fn owns(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The answer to `method` (`HEAD` already made `GET`) on a dashboard `path`. `serves_api` is
/// whether this process's ROLE serves the API; `not_served` the 404 it gives when it does not.
pub fn answer(
    req: &Request,
    method: &str,
    path: &str,
    serves_api: bool,
    not_served: impl FnOnce() -> ApiError,
) -> Reply {
    if method != "GET" {
        return ApiError::MethodNotAllowed {
            message: format!(
                "{method} is not allowed on {path}; the dashboard's files are read with GET"
            ),
            allow: "GET, HEAD".into(),
        }
        .into_reply();
    }
    if !serves_api {
        return not_served().into_reply();
    }
    let Some(name) = path.strip_prefix("/ui/") else {
        // `/ui` itself: relative links in the page need the slash.
        return Reply::text(308, "text/plain; charset=utf-8", "/ui/\n".into())
            .with_header("Location", "/ui/");
    };
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::NotFound(format!(
            "no dashboard file {path}; the dashboard is at /ui/"
        ))
        .into_reply();
    };
    let etag = format!("\"{VERSION_HASH:016x}\"");
    let fresh = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("If-None-Match"))
        .is_some_and(|h| h.value.as_str().split(',').any(|t| t.trim() == etag));
    let (status, body) = if fresh {
        (304, String::new())
    } else {
        (200, asset.body.to_string())
    };
    Reply::text(status, asset.content_type, body)
        .with_policy(PAGE_POLICY)
        .with_header("Cache-Control", "no-cache")
        .with_header("ETag", etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_inline() {
        let html = ASSETS[0].body;
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains(" style="), "inline style attribute");
        assert!(!html.contains("<style"), "inline style element");
        assert!(
            html.contains("<script type=\"module\" src=\"app.js\">"),
            "{html}"
        );
        for js in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for banned in [
                "eval(",
                "new Function",
                "innerHTML",
                "console.",
                "localStorage",
            ] {
                assert!(!js.body.contains(banned), "{} uses {banned}", js.name);
            }
        }
    }

    #[test]
    fn only_dashboard_paths_are_owned() {
        assert!(owns("/ui") && owns("/ui/") && owns("/ui/app.js"));
        assert!(!owns("/uix") && !owns("/jobs") && !owns("/"));
    }
}
