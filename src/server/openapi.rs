//! The document served at `GET /openapi.json`, built once at start-up: src/server/openapi.json
//! (the routes, which a test matches against `router::ROUTES`) completed with what this process accepts,
//! namely the job types of its registry with their payload schemas (for jobs and for workflow
//! nodes), the bearer security only when API_TOKEN is set, and the 403 of the state-changing
//! operations (cross-site requests; the read-only token when API_TOKEN_READONLY is set).

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::handler::Registry;

/// The part of the document written by hand: every route of `router::ROUTES` (a test checks
/// that they agree), the shared schemas, and `NewJob` and `WorkflowNode` as the bases of each
/// job type's schemas. Embedded as build.rs copies it, without its indentation.
pub const BASE: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// The served document, as JSON text.
pub fn document(config: &Config, registry: &Registry) -> String {
    let mut doc: Value = serde_json::from_str(BASE).expect("src/server/openapi.json parses");
    job_types(&mut doc, registry);
    security(&mut doc, config);
    forbidden(&mut doc, config);
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// Name of the component schema of one job type's variant of `base` (`NewJob`,
/// `WorkflowNode`). Component names may not hold `:`, which type names may; a clash after the
/// replacement gets a number.
fn component_name(base: &str, kind: &str, taken: &Map<String, Value>) -> String {
    let stem = format!("{base}.{}", kind.replace(':', "_"));
    let mut name = stem.clone();
    let mut n = 2;
    while taken.contains_key(&name) {
        name = format!("{stem}.{n}");
        n += 1;
    }
    name
}

/// The submission schemas that name a job type: a job (`NewJob`, in `POST /jobs` and
/// `/jobs/batch`), a workflow node (`WorkflowNode`, in `POST /workflows`) and a schedule's job
/// (`ScheduleJob`, in `PUT /schedules/{name}`), with what their variants are called in
/// descriptions and the rules a variant's description adds.
const SUBMISSIONS: [(&str, &str, &str); 3] = [
    ("NewJob", "A job", TIMES),
    ("WorkflowNode", "A workflow node", TIMES),
    ("ScheduleJob", "A schedule's job", ""),
];

const TIMES: &str = " Give at most one of `delay_ms` and `run_at`, and at most one of `expires_at` and `expires_in_secs`.";

/// Replaces `NewJob` and `WorkflowNode` each with a `oneOf` of one schema per job type,
/// discriminated by `type`: OpenAPI 3.0 has no `if`/`then`, and a `oneOf` whose branches differ
/// in a one-value `enum` is what both code generators (through the discriminator) and
/// Schemathesis handle.
fn job_types(doc: &mut Value, registry: &Registry) {
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the base document has components.schemas");
    for (name, what, rules) in SUBMISSIONS {
        per_type(schemas, name, what, rules, registry);
    }
    // The examples submit `email` jobs; they would be wrong where `email` is not registered.
    if !registry.contains("email") {
        for name in ["NewJobBatch", "NewWorkflow"] {
            if let Some(s) = schemas.get_mut(name).and_then(Value::as_object_mut) {
                s.remove("example");
            }
        }
    }
}

/// Replaces the schema `name` with a `oneOf` of its variants, one per job type (`what` is how
/// a variant's description names it, `rules` what it adds).
fn per_type(
    schemas: &mut Map<String, Value>,
    name: &str,
    what: &str,
    rules: &str,
    registry: &Registry,
) {
    let base = schemas
        .remove(name)
        .unwrap_or_else(|| panic!("the base document has {name}"));
    let types = registry.types();
    let mut variants = Vec::new();
    let mut mapping = Map::new();
    // Types without a schema of their own share one branch that allows any payload.
    let mut any_payload = Vec::new();
    for kind in &types {
        let handler = registry.get(kind).expect("a listed type has a handler");
        let Some(mut payload) = handler.payload_schema() else {
            any_payload.push(*kind);
            continue;
        };
        // An absent or null payload is validated as `{}`: the field is optional (and null
        // allowed) exactly when the handler takes `{}`.
        let takes_empty = handler.validate(&json!({})).is_ok();
        if takes_empty && payload.get("type").is_some() {
            payload["nullable"] = json!(true);
        }
        let component = component_name(name, kind, schemas);
        schemas.insert(
            component.clone(),
            variant(&base, (what, rules), &[kind], payload, !takes_empty),
        );
        let target = json!(format!("#/components/schemas/{component}"));
        mapping.insert(kind.to_string(), target.clone());
        variants.push(json!({ "$ref": target }));
    }
    if !any_payload.is_empty() {
        let payload = json!({
            "description": "Any JSON value, checked only by the handler (absent or null means `{}`)."
        });
        let component = component_name(name, "other", schemas);
        schemas.insert(
            component.clone(),
            variant(&base, (what, rules), &any_payload, payload, false),
        );
        let target = json!(format!("#/components/schemas/{component}"));
        for kind in &any_payload {
            mapping.insert(kind.to_string(), target.clone());
        }
        variants.push(json!({ "$ref": target }));
    }
    let description = format!(
        "{what} to create; `type` picks the schema of `payload`. Job types of this server: {}.",
        if types.is_empty() {
            "none, so every submission is refused".to_string()
        } else {
            types.join(", ")
        }
    );
    let schema = if variants.is_empty() {
        json!({ "description": description, "not": {} })
    } else {
        json!({
            "description": description,
            "oneOf": variants,
            "discriminator": { "propertyName": "type", "mapping": mapping },
        })
    };
    schemas.insert(name.into(), schema);
}

/// The submission schema for `kinds`: the base (`NewJob` or `WorkflowNode`: its options and
/// their bounds, its required fields) with `type` narrowed to those names and `payload` given
/// its schema.
fn variant(
    base: &Value,
    (what, rules): (&str, &str),
    kinds: &[&str],
    payload: Value,
    payload_required: bool,
) -> Value {
    let mut v = base.clone();
    let obj = v.as_object_mut().expect("a submission is an object schema");
    obj.remove("example");
    obj.insert(
        "description".into(),
        json!(format!(
            "{what} of type {}. Unknown fields are refused (400).{rules} A field sent as null counts as absent.",
            kinds.join(", ")
        )),
    );
    let mut required = obj
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![json!("type")]);
    if payload_required {
        required.push(json!("payload"));
    }
    obj.insert("required".into(), Value::Array(required));
    let props = obj
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("a submission has properties");
    props.insert(
        "type".into(),
        json!({ "type": "string", "enum": kinds, "description": "The job type." }),
    );
    props.insert("payload".into(), payload);
    v
}

/// Bearer security exactly as `authorize` (auth.rs) enforces it: with API_TOKEN, on every
/// operation but the public ones of the route table (`/health`, `/access`; `/metrics` with
/// METRICS_PUBLIC); without it, nowhere, and no operation answers 401.
fn security(doc: &mut Value, config: &Config) {
    let open_metrics = config.metrics_public;
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    if config.api_token.is_some() {
        root.insert("security".into(), json!([{ "bearerAuth": [] }]));
        root["components"]["securitySchemes"] = json!({
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "The API_TOKEN value."
            }
        });
    } else {
        root.remove("security");
        if let Some(c) = root.get_mut("components").and_then(Value::as_object_mut) {
            c.remove("securitySchemes");
            if let Some(r) = c.get_mut("responses").and_then(Value::as_object_mut) {
                r.remove("Unauthorized");
            }
        }
    }
    let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let public = super::router::ROUTES
            .iter()
            .any(|e| e.path == path && e.access == super::auth::Access::Public)
            || (path == "/metrics" && open_metrics);
        for op in item.values_mut().filter_map(Value::as_object_mut) {
            let no_auth = config.api_token.is_none() || public;
            if no_auth {
                if let Some(r) = op.get_mut("responses").and_then(Value::as_object_mut) {
                    r.remove("401");
                }
            }
            if config.api_token.is_none() {
                op.remove("security");
            } else if public {
                op.insert("security".into(), json!([]));
            }
        }
    }
}

/// The 403 of every operation but the GET ones, as the router answers it: a state change that a
/// browser sent from another site (`cross_site.rs`), whatever the configuration, and one sent
/// with API_TOKEN_READONLY (`auth.rs`) when that token is set.
fn forbidden(doc: &mut Value, config: &Config) {
    let mut description = "A browser sent this state change from another site (`Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` that is not this server's); clients that are not browsers send neither header.".to_string();
    if config.api_token_readonly.is_some() {
        description.push_str(
            " Or the bearer token is API_TOKEN_READONLY, which may call the GET routes only.",
        );
    }
    doc["components"]["responses"]["Forbidden"] = json!({
        "description": description,
        "content": {
            "application/json": { "schema": { "$ref": "#/components/schemas/Error" } }
        }
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, op) in item.iter_mut() {
            if method == "get" || method == "parameters" {
                continue;
            }
            if let Some(r) = op.get_mut("responses").and_then(Value::as_object_mut) {
                r.insert(
                    "403".into(),
                    json!({ "$ref": "#/components/responses/Forbidden" }),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(token: Option<&str>) -> Config {
        Config {
            api_token: token.map(str::to_string),
            ..Config::default()
        }
    }

    #[test]
    fn state_changes_may_answer_403_and_reads_not() {
        let read_only = Config {
            api_token_readonly: Some("readonly-0123456789abcdef".into()),
            ..config(Some("full-0123456789abcdef"))
        };
        for (cfg, says_read_only) in [(config(None), false), (read_only, true)] {
            let doc: Value = serde_json::from_str(&document(&cfg, &Registry::new())).unwrap();
            let paths = &doc["paths"];
            for (method, path) in [
                ("post", "/jobs"),
                ("delete", "/dlq"),
                ("put", "/schedules/{name}"),
                ("post", "/queues/{name}/pause"),
            ] {
                assert!(
                    paths[path][method]["responses"].get("403").is_some(),
                    "{method} {path}"
                );
            }
            assert!(paths["/stats"]["get"]["responses"].get("403").is_none());
            let text = doc["components"]["responses"]["Forbidden"]["description"]
                .as_str()
                .unwrap();
            assert_eq!(
                text.contains("API_TOKEN_READONLY"),
                says_read_only,
                "{text}"
            );
        }
    }

    #[test]
    fn no_types_refuses_every_submission() {
        let doc: Value = serde_json::from_str(&document(&config(None), &Registry::new())).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["NewJob"]["not"], json!({}));
        assert_eq!(schemas["WorkflowNode"]["not"], json!({}));
        assert!(schemas["NewJobBatch"].get("example").is_none());
        assert!(schemas["NewWorkflow"].get("example").is_none());
    }

    #[test]
    fn colons_in_type_names_make_valid_component_names() {
        struct Typed;
        impl crate::handler::Handler for Typed {
            fn run(&self, _: &crate::handler::JobContext) -> crate::handler::JobResult {
                Ok(Value::Null)
            }
            fn payload_schema(&self) -> Option<Value> {
                Some(json!({"type": "object"}))
            }
        }
        let mut r = Registry::new();
        r.register("a:b", Typed).register("a_b", Typed);
        let doc: Value = serde_json::from_str(&document(&config(None), &r)).unwrap();
        let mapping = &doc["components"]["schemas"]["NewJob"]["discriminator"]["mapping"];
        assert_eq!(mapping["a:b"], "#/components/schemas/NewJob.a_b");
        assert_eq!(mapping["a_b"], "#/components/schemas/NewJob.a_b.2");
        let nodes = &doc["components"]["schemas"]["WorkflowNode"]["discriminator"]["mapping"];
        assert_eq!(nodes["a:b"], "#/components/schemas/WorkflowNode.a_b");
    }

    #[test]
    fn workflow_nodes_keep_their_ref_required() {
        struct Typed;
        impl crate::handler::Handler for Typed {
            fn run(&self, _: &crate::handler::JobContext) -> crate::handler::JobResult {
                Ok(Value::Null)
            }
            fn payload_schema(&self) -> Option<Value> {
                Some(json!({"type": "object", "required": ["x"]}))
            }
            fn validate(&self, payload: &Value) -> Result<(), String> {
                payload.get("x").map(|_| ()).ok_or_else(|| "no x".into())
            }
        }
        let mut r = Registry::new();
        r.register("t", Typed);
        let doc: Value = serde_json::from_str(&document(&config(None), &r)).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["WorkflowNode.t"]["required"],
            json!(["ref", "type", "payload"])
        );
        assert_eq!(schemas["NewJob.t"]["required"], json!(["type", "payload"]));
        assert!(schemas["WorkflowNode.t"]["properties"]
            .get("idempotency_key")
            .is_none());
    }
}
