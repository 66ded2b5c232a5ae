//! The OpenAPI document (src/server/openapi.json) against the router: every (method, path) in
//! `ROUTES` is an operation of the spec and every operation of the spec is a route, and
//! `GET /openapi.json` serves the file as it is. The spec's schemas are checked against a running
//! server by `scripts/schemathesis`.

use crate::harness::*;
use jobq::server::routes::ROUTES;
use serde_json::Value;
use std::collections::BTreeSet;

const SPEC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/server/openapi.json");

/// The operation keys of an OpenAPI 3.0 path item.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The other keys a path item may have.
const PATH_ITEM_FIELDS: [&str; 4] = ["summary", "description", "servers", "parameters"];

fn spec_text() -> String {
    std::fs::read_to_string(SPEC_FILE).unwrap_or_else(|e| panic!("cannot read {SPEC_FILE}: {e}"))
}

fn spec() -> Value {
    serde_json::from_str(&spec_text())
        .unwrap_or_else(|e| panic!("{SPEC_FILE} is not valid JSON: {e}"))
}

/// (METHOD, path) of every operation under `paths`.
fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let paths = spec["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("{SPEC_FILE}: `paths` is not an object"));
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("{SPEC_FILE}: paths[{path:?}] is not an object"));
        for key in item.keys() {
            if METHODS.contains(&key.as_str()) {
                ops.insert((key.to_ascii_uppercase(), path.clone()));
            } else {
                // A misspelt or upper-case method would otherwise be silently ignored.
                assert!(
                    PATH_ITEM_FIELDS.contains(&key.as_str()),
                    "{SPEC_FILE}: paths[{path:?}] has {key:?}, which is neither a lower-case \
                     HTTP method nor a path item field"
                );
            }
        }
    }
    ops
}

fn routed() -> BTreeSet<(String, String)> {
    let set: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        set.len(),
        ROUTES.len(),
        "ROUTES lists a (method, path) twice"
    );
    set
}

#[test]
fn spec_documents_exactly_the_routes() {
    let spec = spec();
    assert_eq!(
        spec["openapi"], "3.0.3",
        "{SPEC_FILE}: not an OpenAPI 3.0.3 document"
    );
    let (documented, routed) = (documented(&spec), routed());
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "src/server/openapi.json and ROUTES (src/server/routes.rs) differ.\n\
         Routes the spec lacks: {undocumented:?}\n\
         Operations in the spec that are no route: {unrouted:?}"
    );
}

#[test]
fn every_id_route_documents_its_id_parameter() {
    let spec = spec();
    for (method, path) in routed() {
        let op = &spec["paths"][&path][method.to_ascii_lowercase()];
        let has_id = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "id" && p["in"] == "path" && p["required"] == true);
        assert_eq!(
            has_id,
            path.contains("{id}"),
            "{method} {path}: a required path parameter `id` must be documented exactly when \
             the path has {{id}}"
        );
    }
}

#[test]
fn served_document_is_the_file() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let r = server.get("/openapi.json");
    r.expect_status(200, "GET /openapi.json");
    r.expect_json_content_type("GET /openapi.json");
    let file = spec_text();
    assert!(
        r.body == file,
        "GET /openapi.json served {} bytes that differ from the {} bytes of {SPEC_FILE}; \
         rebuild so include_str! picks up the file",
        r.body.len(),
        file.len()
    );
}
