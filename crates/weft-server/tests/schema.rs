//! The OpenAPI document against the real responses (what Schemathesis checks
//! in CI, scripts/schemathesis.sh, kept here as fast regression tests): every
//! response of a walk through the API validates against the schema the
//! document gives for its route, method and status, and the request schemas
//! accept exactly what the handlers accept.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use weft_server::{ManualClock, Server, ServerConfig, app, openapi_document};
use weft_store::Store;

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: first
      func: add_one
      inputs: params:start
      outputs: a
slow:
  nodes:
    - name: wait
      func: sleep_ms
      inputs: [params:delay, params:start]
      outputs: waited
"#;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    router: Router,
    doc: Value,
}

async fn fixture() -> Fixture {
    fixture_with(PIPELINES, None).await
}

/// A fixture over other pipelines and, optionally, a catalog.
async fn fixture_with(pipelines: &str, catalog: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"served\"\n");
    write(&root, "pipelines.yml", pipelines);
    if let Some(c) = catalog {
        write(&root, "conf/base/catalog.yml", c);
    }
    write(
        &root,
        "conf/base/parameters.yml",
        "start: 1\ndelay: 0\nfigure: {data: [{type: bar, y: [1, 2]}], layout: {}}\n",
    );
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    let store = Store::open(root.join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let mut config = ServerConfig::new(&root);
    config.max_workers = 2;
    let server = Server::new(config, store, clock);
    server.recover().await.unwrap();
    Fixture {
        _dir: dir,
        router: app(server),
        doc: openapi_document(),
    }
}

/// The documented path template matching a concrete path.
fn template<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
    let parts: Vec<&str> = path.split('/').collect();
    doc["paths"].as_object()?.keys().map(String::as_str).find(|t| {
        let tp: Vec<&str> = t.split('/').collect();
        tp.len() == parts.len()
            && tp
                .iter()
                .zip(&parts)
                .all(|(a, b)| a == b || (a.starts_with('{') && a.ends_with('}')))
    })
}

/// Resolves a `$ref` inside the document.
fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> &'d Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => schema,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type {other} in the document"),
    }
}

/// The problems of `v` against `schema`: the subset of JSON Schema the
/// document uses (type, enum, required, properties, additionalProperties,
/// items, minItems, maxItems, oneOf, minimum, maximum, minLength, maxLength,
/// $ref).
fn problems(doc: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut out = Vec::new();
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => {
            return vec![format!("{at}: {v} is not of type {t}")];
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_matches(t.as_str().unwrap(), v)) => {
            return vec![format!("{at}: {v} is not of any type {ts:?}")];
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        out.push(format!("{at}: {v} is not one of {options:?}"));
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = options
            .iter()
            .filter(|o| problems(doc, o, v, at).is_empty())
            .count();
        if ok != 1 {
            out.push(format!("{at}: {v} matches {ok} of oneOf's schemas"));
        }
    }
    if let (Some(n), Some(min)) = (v.as_f64(), schema.get("minimum").and_then(Value::as_f64))
        && n < min
    {
        out.push(format!("{at}: {n} < minimum {min}"));
    }
    if let (Some(n), Some(max)) = (v.as_f64(), schema.get("maximum").and_then(Value::as_f64))
        && n > max
    {
        out.push(format!("{at}: {n} > maximum {max}"));
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            out.push(format!("{at}: {s:?} is shorter than minLength"));
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            out.push(format!("{at}: {s:?} is longer than maxLength"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                out.push(format!("{at}: required `{r}` is missing"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => out.extend(problems(doc, s, x, &format!("{at}.{k}"))),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{at}: `{k}` is not allowed")),
                    Some(s @ Value::Object(_)) => out.extend(problems(doc, s, x, &format!("{at}.{k}"))),
                    _ => {}
                },
            }
        }
    }
    if let Some(list) = v.as_array() {
        let n = list.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            out.push(format!("{at}: {n} items, fewer than minItems"));
        }
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            out.push(format!("{at}: {n} items, more than maxItems"));
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, x) in list.iter().enumerate() {
            out.extend(problems(doc, items, x, &format!("{at}[{i}]")));
        }
    }
    out
}

impl Fixture {
    /// Calls the router and checks the response against the document:
    /// the status is documented for the operation, the content type is the
    /// documented one and a JSON body validates against its schema.
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        let path = uri.split('?').next().unwrap();
        let t = template(&self.doc, path).unwrap_or_else(|| panic!("{path} is not documented"));
        let op = &self.doc["paths"][t][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {t} is not documented");
        let documented = &op["responses"][status.as_str()];
        assert!(
            documented.is_object(),
            "{method} {uri}: status {status} is not documented (body {value})"
        );
        let media = documented["content"]
            .as_object()
            .and_then(|c| c.iter().next())
            .map(|(k, v)| (k.clone(), v.clone()));
        if let Some((media_type, content)) = media {
            assert!(
                content_type.starts_with(&media_type),
                "{method} {uri} {status}: content type {content_type:?}, documented {media_type}"
            );
            if media_type == "application/json" {
                let p = problems(&self.doc, &content["schema"], &value, "$");
                assert!(p.is_empty(), "{method} {uri} {status}: {p:?}\nbody: {value}");
            }
        }
        (status, value)
    }

    async fn session(&self, body: Value) -> String {
        let (status, v) = self.call("POST", "/v1/sessions", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn run_to_end(&self, run_id: &str) -> Value {
        for _ in 0..500 {
            let (_, v) = self.call("GET", &format!("/v1/runs/{run_id}"), None).await;
            if !matches!(v["status"].as_str(), Some("queued" | "running")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("run {run_id} did not finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_of_a_walk_through_the_api_matches_the_document() {
    let f = fixture().await;
    for p in ["/healthz", "/readyz", "/v1/openapi.json"] {
        assert_eq!(f.call("GET", p, None).await.0, StatusCode::OK, "{p}");
    }
    let id = f
        .session(json!({"key": "walk", "max_concurrency": 2, "idle_ttl_s": 60}))
        .await;
    let (status, _) = f.call("POST", "/v1/sessions", Some(json!({"key": "walk"}))).await;
    assert_eq!(status, StatusCode::OK);
    f.call("GET", "/v1/sessions", None).await;
    f.call("GET", "/v1/sessions?all=true", None).await;
    f.call("GET", &format!("/v1/sessions/{id}"), None).await;
    f.call("POST", &format!("/v1/sessions/{id}/heartbeat"), None)
        .await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
            Some(json!({"runs": [{"runtime_params": {"start": 41}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let run_id = v["run_ids"][0].as_str().unwrap().to_string();
    let run = f.run_to_end(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"spec": {"pipeline_names": ["slow"]}, "sweep": ["delay=0,1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    for r in v["run_ids"].as_array().unwrap() {
        f.run_to_end(r.as_str().unwrap()).await;
    }
    f.call("GET", &format!("/v1/sessions/{id}/runs?limit=1"), None)
        .await;
    f.call("GET", &format!("/v1/sessions/{id}/runs?status=succeeded"), None)
        .await;
    f.call("POST", &format!("/v1/runs/{run_id}/cancel"), None).await;
    // Errors, each with its documented status and the Error schema.
    f.call("GET", "/v1/sessions/nope", None).await;
    f.call("GET", "/v1/runs/nope", None).await;
    f.call("GET", "/v1/sessions?state=bogus", None).await;
    f.call("POST", "/v1/sessions", Some(json!({"max_concurrency": "x"})))
        .await;
    f.call(
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(json!({"runs": [{"pipeline_names": ["missing"]}]})),
    )
    .await;
    f.call("DELETE", &format!("/v1/sessions/{id}?mode=drain"), None)
        .await;
    f.call("DELETE", &format!("/v1/sessions/{id}"), None).await;
    f.call("GET", &format!("/v1/sessions/{id}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_datasets_responses_match_the_document() {
    let f = fixture_with(
        "__default__:\n  nodes:\n    - {name: keep, func: identity, inputs: [params:figure, params:start], outputs: [figure, scratch]}\n",
        Some("figure:\n  type: plotly.JSONDataset\n  filepath: data/figure.json\n  versioned: true\n"),
    )
    .await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
            Some(json!({"runs": [{}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let run = v["run_ids"][0].as_str().unwrap().to_string();
    let (status, list) = f.call("GET", &format!("/v1/runs/{run}/datasets"), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["datasets"][0]["chart"], "plotly", "{list}");
    assert_eq!(list["datasets"].as_array().unwrap().len(), 1, "{list}");
    for (uri, want) in [
        (format!("/v1/runs/{run}/datasets/scratch"), StatusCode::NOT_FOUND),
        (format!("/v1/runs/{run}/datasets/nope"), StatusCode::NOT_FOUND),
        (format!("/v1/runs/{run}/datasets/a%2Fb"), StatusCode::BAD_REQUEST),
        ("/v1/runs/nope/datasets".to_string(), StatusCode::NOT_FOUND),
        ("/v1/runs/nope/datasets/figure".to_string(), StatusCode::NOT_FOUND),
    ] {
        assert_eq!(f.call("GET", &uri, None).await.0, want, "{uri}");
    }
}

/// The documented schema of a query parameter of an operation.
fn query_schema<'d>(doc: &'d Value, path: &str, method: &str, name: &str) -> &'d Value {
    let op = &doc["paths"][path][method];
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} documents no parameter {name}"))
}

/// Schemathesis: `limit=1001` is clamped (200), so the document must not
/// say `maximum: 1000`; what the server rejects stays outside the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_page_size_is_documented_as_the_server_reads_it() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let schema = query_schema(&f.doc, "/v1/sessions/{id}/runs", "get", "limit");
    for (limit, ok) in [
        ("0", true),
        ("1001", true),
        ("4294967295", true),
        ("-1", false),
        ("4294967296", false),
    ] {
        let (status, v) = f
            .call("GET", &format!("/v1/sessions/{id}/runs?limit={limit}"), None)
            .await;
        let n: Value = serde_json::from_str(limit).unwrap();
        let documented = problems(&f.doc, schema, &n, "limit").is_empty();
        assert_eq!(status == StatusCode::OK, ok, "limit={limit}: {status} {v}");
        assert_eq!(
            documented, ok,
            "limit={limit}: the document disagrees with the server"
        );
    }
}

/// Schemathesis: `{"runs": [], "sweep": [""]}` was valid for the document
/// but a 400 for the server. Bodies the server rejects as malformed are
/// outside the schema, bodies it queues are inside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_bodies_valid_for_the_document_are_the_ones_the_server_takes() {
    let f = fixture().await;
    let id = f.session(json!({"max_concurrency": 4})).await;
    let schema = json!({"$ref": "#/components/schemas/SubmitRuns"});
    let cases = [
        (
            json!({"runs": [], "spec": null, "sweep": [""]}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"runs": []}), StatusCode::BAD_REQUEST),
        (
            json!({"runs": [{}], "sweep": ["start=1,2"]}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"runs": [{}], "spec": {}}), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"runs": [{}], "sweep": []}), StatusCode::ACCEPTED),
        (
            json!({"runs": [{"runtime_params": {"start": 3}}], "spec": null}),
            StatusCode::ACCEPTED,
        ),
        (
            json!({"spec": {}, "sweep": ["start=1,2"], "runs": null}),
            StatusCode::ACCEPTED,
        ),
        (json!({"spec": {}}), StatusCode::ACCEPTED),
    ];
    for (body, expected) in cases {
        let (status, v) = f
            .call("POST", &format!("/v1/sessions/{id}/runs"), Some(body.clone()))
            .await;
        assert_eq!(status, expected, "{body}: {v}");
        let p = problems(&f.doc, &schema, &body, "$");
        assert_eq!(p.is_empty(), expected == StatusCode::ACCEPTED, "{body}: {p:?}");
    }
}

/// A sweep whose overrides do not parse is well-formed JSON the document
/// cannot rule out: 422 with the problem, not 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_that_does_not_parse_is_422() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    for sweep in [json!([""]), json!(["a=1,,2"]), json!(["=1"])] {
        let (status, v) = f
            .call(
                "POST",
                &format!("/v1/sessions/{id}/runs"),
                Some(json!({"spec": {}, "sweep": sweep})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{sweep}: {v}");
        let problem = v["error"]["problems"][0].as_str().unwrap_or("");
        assert!(problem.starts_with("sweep: "), "{v}");
    }
}

/// Schemathesis: JSON Schema's `integer` includes `1393669.0`, which serde
/// refused (400). Integral floats are integers now, except inside the
/// caller's own `runtime_params` and `inputs`, which are kept as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integral_floats_are_integers_but_params_are_kept_as_sent() {
    let f = fixture().await;
    let (status, v) = f
        .call(
            "POST",
            "/v1/sessions",
            Some(json!({"idle_ttl_s": 1393669.0, "max_concurrency": 2.0})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["idle_ttl_s"], json!(1393669));
    assert_eq!(v["max_concurrency"], json!(2));
    let id = v["id"].as_str().unwrap();
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true"),
            Some(json!({"runs": [{"max_workers": 1.0, "runtime_params": {"start": 2.0}}], "retries": 0.0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let run = &v["runs"][0];
    assert_eq!(run["runtime_params"]["start"], json!(2.0), "{run}");
    assert!(run["runtime_params"]["start"].is_f64(), "{run}");
    // A fractional value is still a type error with its path.
    let (status, v) = f
        .call("POST", "/v1/sessions", Some(json!({"idle_ttl_s": 1.5})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["path"], "idle_ttl_s", "{v}");
}

/// `?wait=true&timeout_s=NaN` panicked in `Duration::from_secs_f64`; a
/// negative timeout was silently 0. Both are 400 naming the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_timeout_that_is_not_a_finite_number_of_seconds_is_400() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    for t in ["NaN", "inf", "-1", "-0.5"] {
        let (status, v) = f
            .call(
                "POST",
                &format!("/v1/sessions/{id}/runs?wait=true&timeout_s={t}"),
                Some(json!({"runs": [{}]})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "timeout_s={t}: {v}");
        assert_eq!(v["error"]["path"], "timeout_s", "{v}");
    }
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=1e300"),
            Some(json!({"runs": [{}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// The document's `maxLength: 200` counts characters; the server counted
/// bytes, so 200 non-ASCII characters were a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_key_is_limited_in_characters_as_documented() {
    let f = fixture().await;
    let key: String = "é".repeat(200);
    let (status, v) = f.call("POST", "/v1/sessions", Some(json!({"key": key}))).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = f
        .call("POST", "/v1/sessions", Some(json!({"key": "é".repeat(201)})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

/// Schemathesis: each server-sent event is checked against the schema of
/// `text/event-stream` (OpenAPI 3.1 reads it as one event), which said
/// `string`. The greeting and the run events match the `Event` schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_match_the_documented_event_schema() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true"),
            Some(json!({"runs": [{}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let req = Request::builder()
        .uri(format!("/v1/sessions/{id}/events"))
        .body(Body::empty())
        .unwrap();
    let resp = f.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut text = String::new();
    // The greeting and the finished run's events are in the ring already.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("event: run_finished") {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("the events did not arrive")
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let schema = &f.doc["paths"]["/v1/sessions/{id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"];
    let mut kinds = Vec::new();
    for block in text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty() && !b.starts_with(':'))
    {
        let mut event = serde_json::Map::new();
        for line in block.lines() {
            if let Some((k, v)) = line.split_once(':') {
                event.insert(k.to_string(), json!(v.trim_start()));
            }
        }
        let event = Value::Object(event);
        let p = problems(&f.doc, schema, &event, "event");
        assert!(p.is_empty(), "{p:?}: {event}");
        let data: Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
        assert!(data.is_object(), "{event}");
        kinds.push(event["event"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.first().map(String::as_str), Some("hello"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "run_queued"), "{kinds:?}");
}

/// Links (what Schemathesis's stateful phase follows from a created session
/// to its runs) name operations that exist, and operation ids are unique.
#[test]
fn links_name_documented_operations() {
    let doc = openapi_document();
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            ids.push(id.to_string());
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    let mut links = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for response in op["responses"].as_object().into_iter().flat_map(|r| r.values()) {
                for link in response["links"].as_object().into_iter().flat_map(|l| l.values()) {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(ids.iter().any(|i| i == target), "a link names {target}");
                    links += 1;
                }
            }
        }
    }
    assert!(links >= 7, "{links} links");
}
