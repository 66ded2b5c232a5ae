//! The OpenAPI document against the server. The file (src/server/openapi.json) documents every
//! route of the router and nothing else (a unit test in src/server/router.rs compares it with
//! the route table); here every operation it documents is checked for sound keys and parameters. The document served at
//! `GET /openapi.json` lists exactly the registered job types; each built-in type's payload
//! schema accepts a known-good payload that the server accepts, and payloads made wrong by one
//! keyword of that schema are refused by the server too; bearer security is declared exactly
//! when API_TOKEN is set, on the routes that need it. `scripts/schemathesis` checks the rest of
//! the document against a running server.

use crate::harness::*;
use jobq::{JobContext, JobResult};
use serde_json::{json, Value};
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

/// The operations of the file, which are the router's (see the module docs).
fn routed() -> BTreeSet<(String, String)> {
    documented(&spec())
}

#[test]
fn spec_is_openapi_3_0_3_with_only_lower_case_methods() {
    let spec = spec();
    assert_eq!(
        spec["openapi"], "3.0.3",
        "{SPEC_FILE}: not an OpenAPI 3.0.3 document"
    );
    assert!(
        !documented(&spec).is_empty(),
        "{SPEC_FILE} documents no operation"
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

const TOKEN: &str = "openapi-test-token";

/// The served document, fetched with the token when there is one.
fn served(server: &TestServer, token: Option<&str>) -> Value {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    let r = server.request_with("GET", "/openapi.json", &headers, b"");
    r.expect_status(200, "GET /openapi.json");
    r.expect_json_content_type("GET /openapi.json");
    r.json()
}

/// The schema `#/components/schemas/...` that `r` ({"$ref": ...}) names.
fn resolve<'d>(doc: &'d Value, r: &Value) -> &'d Value {
    let target = r["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("not a $ref: {r}"));
    let name = target
        .strip_prefix("#/components/schemas/")
        .unwrap_or_else(|| panic!("$ref outside components.schemas: {target}"));
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "$ref {target} names no schema");
    schema
}

/// Each job type the served `NewJob` allows, with the submission schema that applies to it.
fn submission_schemas(doc: &Value) -> Vec<(String, Value)> {
    let new_job = &doc["components"]["schemas"]["NewJob"];
    let variants = new_job["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("NewJob is not a oneOf: {new_job}"));
    let mut out = Vec::new();
    for v in variants {
        let schema = resolve(doc, v);
        let kinds = schema["properties"]["type"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("a NewJob branch without a `type` enum: {schema}"));
        for k in kinds {
            let k = k.as_str().expect("type names are strings").to_string();
            let mapped = &new_job["discriminator"]["mapping"][&k];
            assert_eq!(mapped, &v["$ref"], "discriminator mapping of {k}");
            out.push((k, schema.clone()));
        }
    }
    out
}

/// Whether `v` fits `schema`, for the keywords the payload schemas use. `pattern` and `format`
/// are not checked, so no case below relies on them.
fn fits(schema: &Value, v: &Value) -> bool {
    let s = |k: &str| schema.get(k);
    if v.is_null() && s("nullable") == Some(&json!(true)) {
        return s("enum").is_none_or(|e| e.as_array().unwrap().contains(v));
    }
    if let Some(t) = s("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            other => panic!("unexpected type {other}"),
        };
        if !ok {
            return false;
        }
    }
    let num = |k: &str| s(k).and_then(Value::as_f64);
    let len = |k: &str| s(k).and_then(Value::as_u64).map(|n| n as usize);
    let all = |k: &str| s(k).and_then(Value::as_array).cloned().unwrap_or_default();
    if s("enum").is_some_and(|e| !e.as_array().unwrap().contains(v)) {
        return false;
    }
    if let Some(n) = v.as_f64() {
        if num("minimum").is_some_and(|m| n < m) || num("maximum").is_some_and(|m| n > m) {
            return false;
        }
    }
    if let Some(text) = v.as_str() {
        let chars = text.chars().count();
        if len("minLength").is_some_and(|m| chars < m)
            || len("maxLength").is_some_and(|m| chars > m)
        {
            return false;
        }
    }
    if let Some(items) = v.as_array() {
        if len("minItems").is_some_and(|m| items.len() < m)
            || len("maxItems").is_some_and(|m| items.len() > m)
            || s("items").is_some_and(|i| !items.iter().all(|x| fits(i, x)))
        {
            return false;
        }
    }
    if let Some(obj) = v.as_object() {
        if all("required")
            .iter()
            .any(|r| !obj.contains_key(r.as_str().unwrap()))
            || len("maxProperties").is_some_and(|m| obj.len() > m)
        {
            return false;
        }
        let props = s("properties").cloned().unwrap_or(json!({}));
        for (k, x) in obj {
            let ok = match (props.get(k), s("additionalProperties")) {
                (Some(p), _) => fits(p, x),
                (None, Some(Value::Bool(b))) => *b,
                (None, Some(extra)) => fits(extra, x),
                (None, None) => true,
            };
            if !ok {
                return false;
            }
        }
    }
    all("allOf").iter().all(|x| fits(x, v))
        && (s("anyOf").is_none() || all("anyOf").iter().any(|x| fits(x, v)))
        && (s("oneOf").is_none() || all("oneOf").iter().filter(|x| fits(x, v)).count() == 1)
        && s("not").is_none_or(|x| !fits(x, v))
}

/// Payloads that break `schema` by one keyword each, made from the schema and a `good` payload:
/// a missing required field, an unknown field, a wrong type, a bound or an enum overstepped.
fn broken_payloads(schema: &Value, good: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if schema["type"] == "object" && schema["nullable"] != true {
        out.push(("an array instead of an object".into(), json!([])));
    }
    let with = |k: &str, v: Value| {
        let mut p = good.clone();
        p[k] = v;
        p
    };
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().unwrap();
        let mut p = good.clone();
        p.as_object_mut().unwrap().remove(r);
        out.push((format!("without {r}"), p));
    }
    if schema["additionalProperties"] == false {
        out.push((
            "an unknown field".into(),
            with("unexpected_field", json!(1)),
        ));
    }
    for (k, prop) in schema["properties"].as_object().into_iter().flatten() {
        let wrong = match prop["type"].as_str() {
            Some("string") => Some(json!(12345)),
            Some("integer" | "number") => Some(json!("12")),
            Some("object" | "array" | "boolean") => Some(json!("x")),
            _ => None,
        };
        if let Some(w) = wrong {
            out.push((format!("{k} of the wrong type"), with(k, w)));
        }
        if let Some(m) = prop["maximum"].as_i64() {
            out.push((format!("{k} above its maximum"), with(k, json!(m + 1))));
        }
        if let Some(m) = prop["minimum"].as_i64() {
            out.push((format!("{k} below its minimum"), with(k, json!(m - 1))));
        }
        if prop.get("enum").is_some() {
            out.push((
                format!("{k} not in its enum"),
                with(k, json!("no-such-value")),
            ));
        }
        if let Some(m) = prop["maxLength"].as_u64() {
            let long = "x".repeat(m as usize + 1);
            out.push((format!("{k} longer than maxLength"), with(k, json!(long))));
        }
        if prop["minLength"].as_u64() == Some(1) {
            out.push((format!("{k} empty"), with(k, json!(""))));
        }
        if prop["minItems"].as_u64() == Some(1) {
            out.push((format!("{k} with no items"), with(k, json!([]))));
        }
        if let (Some(m), Some("string")) =
            (prop["maxItems"].as_u64(), prop["items"]["type"].as_str())
        {
            let many = vec![json!("a"); m as usize + 1];
            out.push((format!("{k} with too many items"), with(k, json!(many))));
        }
    }
    out
}

/// More known-good payloads per built-in type, beyond each schema's own example.
fn more_good_payloads(kind: &str) -> Vec<Value> {
    match kind {
        "email" => vec![
            json!({
                "to": ["a@example.com", "b.c+d@mail.example.org"], "subject": "Hi", "body": "x",
                "html": "<p>x</p>", "from": "me@example.com", "reply_to": null
            }),
            // The article's load-test body: subject and body may be left out.
            json!({"to": "test@example.com"}),
        ],
        "analytics" => vec![json!({
            "event": "checkout", "timestamp": "2026-01-02T15:04:05Z", "user_id": null,
            "properties": {"total": -12.5, "plan": "pro", "coupon": null}
        })],
        "report" => vec![json!({
            "from": "2026-02-01", "to": "2026-02-01", "events": ["signup", "a.b:c-d"],
            "format": "json"
        })],
        "image_resize" => vec![json!({
            "source": "in/a.jpg", "output": "out/b", "height": 16384, "width": null,
            "fit": null, "format": "webp"
        })],
        "webhook" => vec![
            json!({
                "url": "HTTP://Hooks.Example.com:8080/in?x=1&y=%20", "method": "PUT",
                "headers": {"Authorization": "Bearer t", "X-Empty": ""}, "body": "text",
                "timeout_secs": 300, "expect": [100, 599, "2xx", "5xx"]
            }),
            json!({"url": "https://[2606:4700::1111]/", "method": "HEAD", "body": null,
                   "headers": null, "timeout_secs": 1, "expect": null}),
            json!({"url": "http://8.8.8.8", "method": "DELETE", "body": [1, {"a": null}]}),
        ],
        "sleep" => vec![json!({"ms": 0}), json!({"ms": 600_000})],
        "fail" => vec![json!({}), json!("not an object")],
        "noop" => vec![json!({}), json!([1, 2]), json!("x")],
        _ => Vec::new(),
    }
}

fn post_payload(server: &TestServer, kind: &str, payload: &Value) -> Resp {
    // A delay keeps the job from running: this is about what is accepted, not what it does.
    let job = json!({"type": kind, "payload": payload, "delay_ms": 3_600_000});
    server.post_json("/jobs", &job)
}

#[test]
fn served_document_lists_exactly_the_registered_types() {
    struct Invoice;
    impl jobq::Handler for Invoice {
        fn run(&self, _: &JobContext) -> JobResult {
            Ok(Value::Null)
        }
        fn validate(&self, p: &Value) -> Result<(), String> {
            match p["cents"].as_u64() {
                Some(n) if n >= 1 => Ok(()),
                _ => Err("\"cents\" must be a positive integer".into()),
            }
        }
        fn payload_schema(&self) -> Option<Value> {
            Some(json!({
                "type": "object",
                "required": ["cents"],
                "properties": {"cents": {"type": "integer", "minimum": 1}}
            }))
        }
    }
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("billing:invoice", Invoice);
            r.register("webhook", |_: &JobContext| -> JobResult { Ok(Value::Null) });
        },
        |_| {},
    );
    let doc = served(&server, None);
    assert_eq!(
        documented(&doc),
        routed(),
        "the served document documents other operations than src/server/openapi.json"
    );
    let schemas = submission_schemas(&doc);
    let listed: BTreeSet<&str> = schemas.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(listed.len(), schemas.len(), "a type is listed twice");
    let mut expected: BTreeSet<&str> = ["email", "analytics", "report", "noop", "sleep", "fail"]
        .into_iter()
        .chain(["billing:invoice", "webhook"])
        .collect();
    if cfg!(feature = "image") {
        expected.insert("image_resize");
    }
    assert_eq!(listed, expected, "the job types of the served document");

    let schema_of = |kind: &str| {
        let (_, s) = schemas.iter().find(|(k, _)| k == kind).unwrap();
        s.clone()
    };
    // The embedding program's schema is served as it gave it, and required: `{}` is refused.
    let invoice = schema_of("billing:invoice");
    assert_eq!(
        invoice["properties"]["payload"]["required"],
        json!(["cents"])
    );
    assert_eq!(invoice["required"], json!(["type", "payload"]));
    for (payload, status) in [(json!({"cents": 250}), 201), (json!({"cents": 0}), 400)] {
        assert_eq!(
            fits(&invoice["properties"]["payload"], &payload),
            status == 201
        );
        post_payload(&server, "billing:invoice", &payload)
            .expect_status(status, &format!("billing:invoice {payload}"));
    }
    // A type without a schema takes any payload, and may leave it out.
    let webhook = schema_of("webhook");
    assert_eq!(webhook["required"], json!(["type"]));
    assert!(webhook["properties"]["payload"].get("type").is_none());
    post_payload(&server, "webhook", &json!([1, "two"])).expect_status(201, "webhook");
    // Options keep the bounds of the base document in every branch.
    assert_eq!(webhook["properties"]["max_attempts"]["maximum"], 1000);
    assert_eq!(webhook["additionalProperties"], false);
}

#[test]
fn builtin_payload_schemas_agree_with_the_server() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let doc = served(&server, None);
    let mut checked = 0;
    for (kind, submission) in submission_schemas(&doc) {
        let schema = &submission["properties"]["payload"];
        let context = |what: &str| format!("{kind}: {what}");
        // The example of the schema, then more payloads that must be good.
        let mut good = more_good_payloads(&kind);
        let example = schema.get("example").cloned();
        if let Some(e) = &example {
            good.insert(0, e.clone());
        }
        assert!(!good.is_empty(), "{kind}: no known-good payload to try");
        for p in &good {
            assert!(
                fits(schema, p),
                "{}",
                context(&format!("schema refuses {p}"))
            );
            post_payload(&server, &kind, p).expect_status(201, &context(&format!("{p}")));
        }
        // A payload may be left out exactly when the schema does not require it.
        let without = json!({"type": kind, "delay_ms": 3_600_000});
        let required = submission["required"]
            .as_array()
            .unwrap()
            .contains(&json!("payload"));
        let r = server.post_json("/jobs", &without);
        r.expect_status(if required { 400 } else { 201 }, &context("no payload"));
        if let Some(e) = example.filter(|e| e.is_object()) {
            for (what, bad) in broken_payloads(schema, &e) {
                assert!(
                    !fits(schema, &bad),
                    "{}",
                    context(&format!("{what}: the schema accepts {bad}"))
                );
                post_payload(&server, &kind, &bad)
                    .expect_json_error(400, &context(&format!("{what}: {bad}")));
                checked += 1;
            }
        }
    }
    // email, analytics, report, sleep, fail, and image_resize when built: every one has broken
    // payloads to try.
    assert!(checked >= 40, "only {checked} broken payloads were tried");
}

/// The operations (METHOD, path) of `doc` that declare no security of their own, and so take
/// the document's global one.
fn operations_needing_the_token(doc: &Value) -> BTreeSet<(String, String)> {
    let global = doc.get("security").cloned().unwrap_or(json!([]));
    documented(doc)
        .into_iter()
        .filter(|(m, p)| {
            let op = &doc["paths"][p][m.to_ascii_lowercase()];
            op.get("security").unwrap_or(&global) != &json!([])
        })
        .collect()
}

/// Every `key` anywhere in `v`.
fn count_key(v: &Value, key: &str) -> usize {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| usize::from(k == key) + count_key(x, key))
            .sum(),
        Value::Array(a) => a.iter().map(|x| count_key(x, key)).sum(),
        _ => 0,
    }
}

#[test]
fn security_is_declared_only_with_a_token() {
    let redis = RedisServer::start();
    let open = TestServer::start(&redis, |_| {});
    let doc = served(&open, None);
    assert_eq!(count_key(&doc, "security"), 0, "security without API_TOKEN");
    assert_eq!(count_key(&doc, "securitySchemes"), 0);
    assert_eq!(
        count_key(&doc, "401"),
        0,
        "a 401 documented without API_TOKEN"
    );
    drop(open);

    for metrics_public in [false, true] {
        let server = TestServer::start(&redis, |c| {
            c.api_token = Some(TOKEN.into());
            c.metrics_public = metrics_public;
        });
        let doc = served(&server, Some(TOKEN));
        assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
        let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
        assert_eq!(
            (&scheme["type"], &scheme["scheme"]),
            (&json!("http"), &json!("bearer"))
        );
        // What the document says needs the token is exactly what the server refuses without it.
        let needing = operations_needing_the_token(&doc);
        let mut public = vec!["/health", "/access"];
        if metrics_public {
            public.push("/metrics");
        }
        for (method, path) in documented(&doc) {
            let url = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
            let r = server.request(&method, &url, b"");
            let documented_401 = doc["paths"][&path][method.to_ascii_lowercase()]["responses"]
                .get("401")
                .is_some();
            let context = format!("{method} {path} (METRICS_PUBLIC={metrics_public})");
            if public.contains(&path.as_str()) {
                assert!(
                    !needing.contains(&(method.clone(), path.clone())),
                    "{context}"
                );
                assert!(!documented_401, "{context}: documents a 401");
                assert_ne!(r.status, 401, "{context}: 401 without a token");
            } else {
                assert!(
                    needing.contains(&(method.clone(), path.clone())),
                    "{context}"
                );
                assert!(documented_401, "{context}: no 401 documented");
                r.expect_json_error(401, &context);
            }
        }
    }
}
