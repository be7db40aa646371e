//! The router in-process (`oneshot`): sessions, runs, sweeps, validation,
//! auth, idempotency, cancel, expiry with a manual clock, events.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use weft_server::{ManualClock, Server, ServerConfig, app};
use weft_store::Store;

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: first
      func: add_one
      inputs: params:start
      outputs: a
    - name: second
      func: add_one
      inputs: a
      outputs: b
served:
  nodes:
    - name: answer
      func: add_one
      inputs: request
      outputs: response
slow:
  nodes:
    - name: wait
      func: sleep_ms
      inputs: [params:delay, params:start]
      outputs: waited
asks:
  nodes:
    - name: prepare
      func: add_one
      inputs: params:start
      outputs: prepared
    - name: approve
      await_input:
        prompt: How much to add?
        schema: {type: object, properties: {amount: {type: integer, minimum: 0}}, required: [amount]}
      inputs: prepared
      outputs: approval
    - name: finish
      func: identity
      inputs: [prepared, approval]
      outputs: [total, answer]
two_slow:
  nodes:
    - name: w1
      func: sleep_ms
      inputs: [params:delay, params:start]
      outputs: w1
    - name: w2
      func: sleep_ms
      inputs: [params:delay, w1]
      outputs: w2
"#;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    server: Arc<Server>,
    clock: Arc<ManualClock>,
    router: Router,
}

async fn fixture_with(tune: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"served\"\n");
    write(&root, "pipelines.yml", PIPELINES);
    write(&root, "conf/base/parameters.yml", "start: 1\ndelay: 0\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    let store = Store::open(root.join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let mut config = ServerConfig::new(&root);
    config.max_workers = 2;
    tune(&mut config);
    let server = Server::new(config, store, clock.clone());
    server.recover().await.unwrap();
    let router = app(Arc::clone(&server));
    Fixture {
        _dir: dir,
        server,
        clock,
        router,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

impl Fixture {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, uri, body.map(|b| b.to_string()), &[])
            .await
    }

    async fn call_with(
        &self,
        method: &str,
        uri: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .header("content-type", "application/json")
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    async fn session(&self, body: Value) -> String {
        let (status, v) = self.call("POST", "/v1/sessions", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn run_to_end(&self, run_id: &str) -> Value {
        for _ in 0..500 {
            let (status, v) = self.call("GET", &format!("/v1/runs/{run_id}"), None).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            let s = v["status"].as_str().unwrap();
            if !matches!(s, "queued" | "running") {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("run {run_id} did not finish");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_goes_from_queued_to_succeeded_with_its_params() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{"runtime_params": {"start": 41}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let run_id = v["run_ids"][0].as_str().unwrap().to_string();
    let run = f.run_to_end(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["runtime_params"]["start"], 41);
    assert_eq!(run["session_id"], id.as_str());
    assert_eq!(run["node_timings"].as_array().unwrap().len(), 2);
    // The free output comes back with the run: request/response serving.
    assert_eq!(run["outputs"]["b"], 43, "{run}");
    // The session counts it and went busy → idle.
    let (_, s) = f.call("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(s["runs"]["succeeded"], 1, "{s}");
    for _ in 0..100 {
        let (_, s) = f.call("GET", &format!("/v1/sessions/{id}"), None).await;
        if s["state"] == "idle" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session did not go idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_true_answers_with_finished_results() {
    let f = fixture().await;
    let id = f.session(json!({"max_concurrency": 2})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
            Some(json!({"spec": {}, "sweep": ["start=1,2,3"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["timed_out"], false);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let mut starts: Vec<i64> = runs
        .iter()
        .map(|r| r["runtime_params"]["start"].as_i64().unwrap())
        .collect();
    starts.sort();
    assert_eq!(starts, vec![1, 2, 3]);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_4xx_with_what_is_wrong() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let uri = format!("/v1/sessions/{id}/runs");
    // Malformed JSON: 400 naming the field.
    let (status, v) = f.call("POST", &uri, Some(json!({"runs": [{"tags": 5}]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["path"], "runs[0].tags", "{v}");
    let (status, v) = f.call_with("POST", &uri, Some("{not json".into()), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = f
        .call("POST", &uri, Some(json!({"runs": [{"colour": "red"}]})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"), "{v}");
    // Unknown pipeline and node: 422 with every problem.
    let (status, v) = f
        .call(
            "POST",
            &uri,
            Some(json!({"runs": [{"pipeline_names": ["nope"]}, {"node_names": ["ghost"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let problems = v["error"]["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p.as_str().unwrap().contains("nope")),
        "{v}"
    );
    assert!(
        problems.iter().any(|p| p.as_str().unwrap().contains("ghost")),
        "{v}"
    );
    // Nothing was queued.
    let (_, runs) = f.call("GET", &uri, None).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0, "{runs}");
    // A sweep that does not parse: 422 (well-formed JSON); past the limit: 429.
    let (status, v) = f
        .call("POST", &uri, Some(json!({"spec": {}, "sweep": ["a=1,,2"]})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (status, v) = f
        .call(
            "POST",
            &uri,
            Some(json!({"spec": {}, "sweep": ["a=range(0,100000)", "b=range(0,100000)"]})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // Unknown session, unknown run, unknown route: 404 JSON.
    let (status, v) = f.call("GET", "/v1/sessions/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, _) = f.call("GET", "/v1/runs/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = f.call("GET", "/v2/whatever", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    // A project that does not open: 422, no session.
    let (status, v) = f
        .call("POST", "/v1/sessions", Some(json!({"project": "/nonexistent/x"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_every_route_but_healthz() {
    let f = fixture_with(|c| c.token = Some("s3cret".into())).await;
    for uri in [
        "/v1/sessions",
        "/v1/openapi.json",
        "/metrics",
        "/readyz",
        "/v1/runs/x",
    ] {
        let (status, v) = f.call("GET", uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {v}");
        let (status, _) = f
            .call_with("GET", uri, None, &[("authorization", "Bearer wrong")])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (status, _) = f.call("GET", "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = f
        .call_with("GET", "/v1/sessions", None, &[("authorization", "Bearer s3cret")])
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_one_session_even_when_created_concurrently() {
    let f = Arc::new(fixture().await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            f.call("POST", "/v1/sessions", Some(json!({"key": "nightly"})))
                .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{v}");
        created += usize::from(status == StatusCode::CREATED);
        ids.insert(v["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_same_runs() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let uri = format!("/v1/sessions/{id}/runs");
    let body = Some(json!({"runs": [{}, {}]}).to_string());
    let (s1, a) = f
        .call_with("POST", &uri, body.clone(), &[("idempotency-key", "k1")])
        .await;
    let (s2, b) = f
        .call_with("POST", &uri, body, &[("idempotency-key", "k1")])
        .await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(a["run_ids"], b["run_ids"]);
    for r in a["run_ids"].as_array().unwrap() {
        f.run_to_end(r.as_str().unwrap()).await;
    }
    let (_, runs) = f.call("GET", &uri, None).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_run_is_cancelled_without_running() {
    let f = fixture().await;
    let id = f.session(json!({"max_concurrency": 1})).await;
    let uri = format!("/v1/sessions/{id}/runs");
    let (_, v) = f
        .call(
            "POST",
            &uri,
            Some(json!({"runs": [
                {"pipeline_names": ["slow"], "runtime_params": {"delay": 400}},
                {"pipeline_names": ["slow"], "runtime_params": {"delay": 0}}
            ]})),
        )
        .await;
    let ids: Vec<String> = v["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().into())
        .collect();
    let (status, c) = f.call("POST", &format!("/v1/runs/{}/cancel", ids[1]), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{c}");
    assert_eq!(c["status"], "cancelled", "{c}");
    let first = f.run_to_end(&ids[0]).await;
    assert_eq!(first["status"], "succeeded");
    let second = f.run_to_end(&ids[1]).await;
    assert_eq!(second["status"], "cancelled");
    assert!(
        second["node_timings"].as_array().unwrap().is_empty(),
        "it never ran: {second}"
    );
    // Cancelling a finished run is a conflict.
    let (status, _) = f.call("POST", &format!("/v1/runs/{}/cancel", ids[0]), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_run_is_cancelled_between_nodes() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (_, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{"pipeline_names": ["slow"], "runtime_params": {"delay": 2000}}]})),
        )
        .await;
    let run_id = v["run_ids"][0].as_str().unwrap().to_string();
    let mut answered = None;
    for _ in 0..200 {
        let (status, c) = f.call("POST", &format!("/v1/runs/{run_id}/cancel"), None).await;
        if status == StatusCode::ACCEPTED {
            answered = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(answered.is_some(), "the cancel was never accepted");
    let run = f.run_to_end(&run_id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire_and_keep_their_reason() {
    let f = fixture().await;
    let id = f.session(json!({"idle_ttl_s": 60})).await;
    f.clock.advance(Duration::from_secs(30));
    f.server.reconcile_once().await.unwrap();
    let (_, s) = f.call("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(s["state"], "ready", "{s}");
    // A heartbeat restarts the idle timer.
    let (status, _) = f
        .call("POST", &format!("/v1/sessions/{id}/heartbeat"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    f.clock.advance(Duration::from_secs(45));
    f.server.reconcile_once().await.unwrap();
    let (_, s) = f.call("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(s["state"], "ready", "heartbeat 45 s ago: {s}");
    f.clock.advance(Duration::from_secs(20));
    f.server.reconcile_once().await.unwrap();
    let (_, s) = f.call("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(s["state"], "expired", "{s}");
    assert_eq!(s["termination_reason"]["code"], "idle_timeout");
    // A later explicit delete keeps the first reason; runs are refused.
    let (status, s) = f
        .call("DELETE", &format!("/v1/sessions/{id}?mode=cancel"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s["termination_reason"]["code"], "idle_timeout", "{s}");
    let (status, _) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{}]})),
        )
        .await;
    assert!(
        status == StatusCode::CONFLICT || status == StatusCode::NOT_FOUND,
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_queued_runs_then_closes() {
    let f = fixture().await;
    let id = f.session(json!({"max_concurrency": 1})).await;
    let (_, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"spec": {"pipeline_names": ["slow"]}, "sweep": ["delay=50,50,50"]})),
        )
        .await;
    let (status, s) = f.call("DELETE", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s["termination_reason"]["mode"], "drain", "{s}");
    for r in v["run_ids"].as_array().unwrap() {
        assert_eq!(f.run_to_end(r.as_str().unwrap()).await["status"], "succeeded");
    }
    for _ in 0..200 {
        let (_, s) = f.call("GET", &format!("/v1/sessions/{id}"), None).await;
        if s["state"] == "closed" {
            // Idempotent: a second delete changes nothing.
            let (status, again) = f
                .call("DELETE", &format!("/v1/sessions/{id}?mode=cancel"), None)
                .await;
            assert_eq!(status, StatusCode::ACCEPTED);
            assert_eq!(again["termination_reason"]["mode"], "drain");
            assert_eq!(again["state"], "closed");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session did not close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limit_is_429_with_retry_after() {
    let f = fixture_with(|c| c.max_queued_per_session = 3).await;
    let id = f.session(json!({})).await;
    let uri = format!("/v1/sessions/{id}/runs");
    let (status, v) = f
        .call("POST", &uri, Some(json!({"runs": [{}, {}, {}, {}]})))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_reports_progress_and_resumes() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let s = f.server.live(&id).unwrap();
    let (_, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true"),
            Some(json!({"runs": [{}]})),
        )
        .await;
    let run_id = v["run_ids"][0].as_str().unwrap();
    // Everything published so far, read from the start.
    let weft_server::events::Next::Events(events) = s.events().poll(1).unwrap() else {
        panic!("expected events");
    };
    let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
    for k in ["run_queued", "run_started", "node_finished", "run_finished"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let nodes: Vec<&Value> = events
        .iter()
        .filter(|e| e.kind == "node_finished")
        .map(|e| &e.data)
        .collect();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        (nodes[1]["done"].as_u64(), nodes[1]["total"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(
        events
            .iter()
            .all(|e| e.data.to_string().contains(run_id) || e.kind == "session")
    );
    // Over HTTP with Last-Event-ID: resumes after the given event.
    let last = events[1].seq;
    let req = Request::builder()
        .uri(format!("/v1/sessions/{id}/events"))
        .header("last-event-id", format!("{}-{last}", f.server.boot()))
        .body(Body::empty())
        .unwrap();
    let resp = f.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut text = String::new();
    while !text.contains("event: run_finished") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.starts_with("event: hello"), "{text}");
    assert!(
        !text.contains(&format!("id: {}-{last}\n", f.server.boot())),
        "resumed after {last}: {text}"
    );
    assert!(
        text.contains(&format!("id: {}-{}\n", f.server.boot(), last + 1)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route() {
    let f = fixture().await;
    let (status, doc) = f.call("GET", "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/heartbeat",
        "/v1/sessions/{id}/runs",
        "/v1/sessions/{id}/events",
        "/v1/runs/{id}",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/logs",
    ] {
        assert!(paths.iter().any(|x| *x == p), "{p} not documented");
    }
    // And every documented path is routed (no 404 for its GET/POST with a made-up id).
    for p in paths {
        let uri = p.replace("{id}", "zz").replace("{name}", "zz");
        let (status, v) = f.call("GET", &uri, None).await;
        assert!(
            !(status == StatusCode::NOT_FOUND
                && v["error"]["message"].as_str().unwrap_or("").contains("route")),
            "{p} is documented but not routed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_runs() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    f.call(
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true"),
        Some(json!({"runs": [{}, {}]})),
    )
    .await;
    let (status, text) = f.call("GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("weft_runs_total{status=\"succeeded\"} 2"), "{text}");
    assert!(text.contains("weft_runs_accepted_total 2"), "{text}");
    assert!(text.contains("weft_node_duration_seconds_count 4"), "{text}");
    // The series `weft run --metrics-file` writes: per node, validation.
    for line in [
        "weft_node_runs_total{node=\"first\",status=\"succeeded\"} 2",
        "weft_node_runs_total{node=\"second\",status=\"failed\"} 0",
        "weft_run_retries_total 0",
        "weft_validations_total 2",
        "weft_validation_connections_total 4",
        "weft_validation_problems_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
    /// Random bodies and queries at every route never give a server error.
    #[test]
    fn random_input_never_gives_a_server_error(
        route in 0usize..9,
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        json_body in proptest::prelude::any::<bool>(),
        query in "[a-z_=&0-9]{0,20}",
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture().await;
            let id = f.session(json!({})).await;
            // The answer route gets a real paused run, so random answers reach the schema check.
            let paused = if route == 8 { f.paused_run(&id).await } else { "x".to_string() };
            let routes = [
                ("POST", "/v1/sessions".to_string()),
                ("POST", format!("/v1/sessions/{id}/runs")),
                ("GET", format!("/v1/sessions/{id}/runs")),
                ("DELETE", format!("/v1/sessions/{id}")),
                ("POST", format!("/v1/sessions/{id}/heartbeat")),
                ("GET", "/v1/sessions".to_string()),
                ("POST", "/v1/runs/x/cancel".to_string()),
                ("GET", "/v1/runs/x".to_string()),
                ("POST", format!("/v1/runs/{paused}/input")),
            ];
            let (method, uri) = &routes[route];
            let body = if json_body {
                // Random JSON-ish structure built from the bytes.
                let fields = ["runs", "spec", "sweep", "retries", "key", "max_concurrency", "idle_ttl_s", "project", "input", "node"];
                let mut m = serde_json::Map::new();
                for chunk in body.chunks(3) {
                    let k = fields[chunk[0] as usize % fields.len()];
                    let v = match chunk.get(1).copied().unwrap_or(0) % 6 {
                        0 => json!(chunk.get(2).copied().unwrap_or(0)),
                        1 => json!("x"),
                        2 => json!([{}]),
                        3 => json!(null),
                        4 => json!([chunk.get(2).copied().unwrap_or(0).to_string()]),
                        _ => json!({"runtime_params": {"start": chunk.get(2).copied().unwrap_or(0)}}),
                    };
                    m.insert(k.into(), v);
                }
                Value::Object(m).to_string()
            } else {
                String::from_utf8_lossy(&body).into_owned()
            };
            let uri = if query.is_empty() { uri.clone() } else { format!("{uri}?{query}") };
            let (status, v) = f.call_with(method, &uri, Some(body), &[]).await;
            assert!(!status.is_server_error(), "{method} {uri}: {status} {v}");
        });
    }
}

/// Runtime data injection: a spec's `inputs` replace a free input for that
/// run only, and the free outputs come back in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_inputs_are_served_request_response() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true"),
            Some(json!({"runs": [{"pipeline_names": ["served"], "inputs": {"request": 10}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["runs"][0]["outputs"]["response"], 11, "{v}");
    // A name that is not a free input is refused.
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{"pipeline_names": ["served"], "inputs": {"nope": 1}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["problems"].to_string().contains("not a free input"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_are_refused_with_close_matches() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"spec": {}, "sweep": ["strat=1,2"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let text = v["error"]["problems"].to_string();
    assert!(
        text.contains("`strat` is not a parameter") && text.contains("`start`"),
        "{v}"
    );
}

/// One server worker, two sessions with queued runs: the sessions take
/// turns (a fair semaphore), neither waits for the other's whole queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_take_turns_for_server_workers() {
    let f = fixture_with(|c| c.max_workers = 1).await;
    let a = f.session(json!({})).await;
    let b = f.session(json!({})).await;
    let body = json!({"spec": {"pipeline_names": ["slow"]}, "sweep": ["delay=30,30,30,30"]});
    let (_, ra) = f
        .call("POST", &format!("/v1/sessions/{a}/runs"), Some(body.clone()))
        .await;
    let (_, rb) = f
        .call("POST", &format!("/v1/sessions/{b}/runs"), Some(body))
        .await;
    let mut runs = Vec::new();
    for r in ra["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rb["run_ids"].as_array().unwrap())
    {
        let run = f.run_to_end(r.as_str().unwrap()).await;
        runs.push((
            run["start_time"].as_str().unwrap().to_string(),
            run["session_id"].as_str().unwrap().to_string(),
        ));
    }
    runs.sort();
    let order: Vec<bool> = runs.iter().map(|(_, s)| *s == a).collect();
    // After the first run, no session runs three in a row while the other waits.
    let longest = order.chunk_by(|x, y| x == y).map(|c| c.len()).max().unwrap();
    assert!(longest <= 2, "sessions did not take turns: {order:?}");
}

/// Dispatch latency runs from enqueue to start: a run queued behind a
/// 200 ms run waits at least that long (regression: it was measured from
/// the claim, so it read about zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_latency_counts_the_time_spent_queued() {
    let f = fixture().await;
    let id = f.session(json!({"max_concurrency": 1})).await;
    f.call(
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true"),
        Some(json!({"spec": {"pipeline_names": ["slow"]}, "sweep": ["delay=200,0"]})),
    )
    .await;
    let (_, text) = f.call("GET", "/metrics", None).await;
    let text = text.as_str().unwrap().to_string();
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("weft_dispatch_latency_seconds_sum "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(sum >= 0.2, "the second run waited 200 ms in the queue: {text}");
}

impl Fixture {
    /// Submits one run of the `asks` pipeline and returns its id once it
    /// waits for input.
    async fn paused_run(&self, session: &str) -> String {
        let (status, v) = self
            .call(
                "POST",
                &format!("/v1/sessions/{session}/runs"),
                Some(json!({"runs": [{"pipeline_names": ["asks"]}]})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        let run_id = v["run_ids"][0].as_str().unwrap().to_string();
        let run = self.run_to_end(&run_id).await;
        assert_eq!(run["status"], "input_required", "{run}");
        run_id
    }

    async fn session_state(&self, id: &str, want: &str) -> Value {
        for _ in 0..300 {
            let (_, s) = self.call("GET", &format!("/v1/sessions/{id}"), None).await;
            if s["state"] == want {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, s) = self.call("GET", &format!("/v1/sessions/{id}"), None).await;
        panic!("session {id} never became {want}: {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_input_and_resumes_with_a_valid_answer() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let run_id = f.paused_run(&id).await;
    let (_, run) = f.call("GET", &format!("/v1/runs/{run_id}"), None).await;
    assert_eq!(run["pending_input"]["node"], "approve", "{run}");
    assert_eq!(run["pending_input"]["prompt"], "How much to add?");
    assert!(run["error"].is_null(), "a paused run has not failed: {run}");

    let s = f.session_state(&id, "input_required").await;
    assert_eq!(s["phase"], "awaiting_input", "{s}");
    assert_eq!(s["next_action"], "awaiting_input", "{s}");
    assert_eq!(s["pending_input"]["run_id"], run_id.as_str(), "{s}");
    assert_eq!(s["pending_input"]["schema"]["required"], json!(["amount"]));
    assert_eq!(s["runs"]["input_required"], 1, "{s}");

    let input = format!("/v1/runs/{run_id}/input");
    // An answer that breaks the schema: 422 with the failing path.
    let (status, v) = f
        .call("POST", &input, Some(json!({"input": {"amount": -1}})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_input", "{v}");
    assert_eq!(v["error"]["node"], "approve");
    assert_eq!(v["error"]["errors"][0]["path"], "/amount", "{v}");
    // The wrong node, and a body without `input`.
    let (status, v) = f
        .call(
            "POST",
            &input,
            Some(json!({"input": {"amount": 1}, "node": "prepare"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waits for input at node `approve`"),
        "{v}"
    );
    let (status, v) = f.call("POST", &input, Some(json!({"amount": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    // Still waiting after the refusals.
    let (_, run) = f.call("GET", &format!("/v1/runs/{run_id}"), None).await;
    assert_eq!(run["status"], "input_required", "{run}");

    let (status, v) = f
        .call("POST", &input, Some(json!({"input": {"amount": 4}})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let run = f.run_to_end(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["outputs"]["answer"], json!({"amount": 4}), "{run}");
    assert_eq!(run["outputs"]["total"], 2, "{run}");
    assert!(run["pending_input"].is_null(), "{run}");
    let s = f.session_state(&id, "idle").await;
    assert!(s["pending_input"].is_null(), "{s}");
    assert!(s["next_action"].is_null(), "{s}");
    // Answering twice is a conflict.
    let (status, v) = f
        .call("POST", &input, Some(json!({"input": {"amount": 4}})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, _) = f
        .call("POST", "/v1/runs/nope/input", Some(json!({"input": 1})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_true_answers_once_the_run_waits_for_input() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
            Some(json!({"runs": [{"pipeline_names": ["asks"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["timed_out"], false, "{v}");
    assert_eq!(v["runs"][0]["status"], "input_required", "{v}");
    assert_eq!(v["runs"][0]["pending_input"]["node"], "approve", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_in_the_spec_skip_the_question() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
            Some(json!({"runs": [{"pipeline_names": ["asks"], "answers": {"approve": {"amount": 0}}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["runs"][0]["status"], "succeeded", "{v}");
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{"pipeline_names": ["asks"], "answers": {"approve": {"amount": "x"}}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["problems"][0].as_str().unwrap().contains("at /amount"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_waiting_for_input_is_not_idle_expired_but_abandoned_without_heartbeats() {
    let f = fixture_with(|c| c.abandon_after = Duration::from_secs(600)).await;
    let id = f.session(json!({"idle_ttl_s": 5})).await;
    let run_id = f.paused_run(&id).await;
    f.session_state(&id, "input_required").await;
    // Far past the idle TTL: a session waiting for a person does not expire.
    f.clock.advance(Duration::from_secs(300));
    f.server.reconcile_once().await.unwrap();
    let s = f.session_state(&id, "input_required").await;
    assert!(s["termination_reason"].is_null(), "{s}");
    // A heartbeat keeps it; silence past the abandon window aborts it.
    f.call("POST", &format!("/v1/sessions/{id}/heartbeat"), None)
        .await;
    f.clock.advance(Duration::from_secs(500));
    f.server.reconcile_once().await.unwrap();
    f.session_state(&id, "input_required").await;
    f.clock.advance(Duration::from_secs(101));
    f.server.reconcile_once().await.unwrap();
    let s = f.session_state(&id, "aborted").await;
    assert_eq!(s["termination_reason"]["code"], "session_abandoned", "{s}");
    let (_, run) = f.call("GET", &format!("/v1/runs/{run_id}"), None).await;
    assert_eq!(run["status"], "cancelled", "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_run_can_be_cancelled_and_the_session_goes_on() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let run_id = f.paused_run(&id).await;
    f.session_state(&id, "input_required").await;
    let (status, v) = f.call("POST", &format!("/v1/runs/{run_id}/cancel"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "cancelled", "{v}");
    let s = f.session_state(&id, "idle").await;
    assert!(s["pending_input"].is_null(), "{s}");
    assert_eq!(s["runs"]["cancelled"], 1, "{s}");
    assert_eq!(s["runs"]["input_required"], 0, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_run_survives_a_server_restart() {
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let run_id = f.paused_run(&id).await;
    f.session_state(&id, "input_required").await;
    f.server.shutdown().await;
    let root = f._dir.path().to_path_buf();
    let store = Store::open(root.join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let mut config = ServerConfig::new(&root);
    config.max_workers = 2;
    let server = Server::new(config, store, Arc::new(ManualClock::new(jiff::Timestamp::now())));
    server.recover().await.unwrap();
    let again = Fixture {
        _dir: tempfile::tempdir().unwrap(),
        server: Arc::clone(&server),
        clock: Arc::new(ManualClock::new(jiff::Timestamp::now())),
        router: app(server),
    };
    let s = again.session_state(&id, "input_required").await;
    assert_eq!(s["pending_input"]["run_id"], run_id.as_str(), "{s}");
    let (status, v) = again
        .call(
            "POST",
            &format!("/v1/runs/{run_id}/input"),
            Some(json!({"input": {"amount": 9}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let run = again.run_to_end(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["outputs"]["answer"], json!({"amount": 9}), "{run}");
    drop(f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_true_answers_with_the_records_the_store_keeps() {
    let f = fixture().await;
    let id = f.session(json!({"max_concurrency": 4})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
            Some(json!({"spec": {}, "sweep": ["start=1,2,3,4,5,6"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6, "{v}");
    for run in runs {
        let run_id = run["id"].as_str().unwrap();
        let (status, stored) = f.call("GET", &format!("/v1/runs/{run_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{stored}");
        // The answer is the record the store holds (its time stamps aside:
        // the store stamps `updated_at` again when it commits).
        for key in [
            "id",
            "status",
            "runtime_params",
            "outputs",
            "node_timings",
            "attempts",
            "owner",
            "start_time",
            "end_time",
        ] {
            assert_eq!(run[key], stored[key], "{key}: {run} vs {stored}");
        }
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["node_timings"].as_array().unwrap().len(), 2, "{run}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_records_its_progress_while_it_runs() {
    // Progress is written at most every 100 ms per run: a run whose first
    // node takes longer still has that node's timing in the store before
    // it ends (what a crash would keep).
    let f = fixture().await;
    let id = f.session(json!({})).await;
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{"pipeline_names": ["two_slow"], "runtime_params": {"delay": 700}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let run_id = v["run_ids"][0].as_str().unwrap().to_string();
    let mut seen_mid_run = false;
    for _ in 0..1000 {
        let (_, run) = f.call("GET", &format!("/v1/runs/{run_id}"), None).await;
        if run["status"] == "running" && run["node_timings"].as_array().is_some_and(|t| t.len() == 1) {
            assert_eq!(run["node_timings"][0]["node"], "w1", "{run}");
            seen_mid_run = true;
            break;
        }
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        seen_mid_run,
        "the first node's timing was not in the store while the run ran"
    );
    let run = f.run_to_end(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["node_timings"].as_array().unwrap().len(), 2, "{run}");
}

/// A session's launcher resources: checked at creation (the bad field's
/// path in the error), shown by the session, stored with it and read back
/// by a new server on the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_resources_round_trip_are_checked_and_survive_a_restart() {
    let f = fixture().await;
    let resources = json!({
        "partition": "debug", "account": "team-a", "time_limit": "5",
        "cpus": 1, "memory": "100MiB", "gpus": 2,
    });
    let (status, v) = f
        .call("POST", "/v1/sessions", Some(json!({"resources": resources})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let shown = json!({
        "partition": "debug", "account": "team-a", "time_limit": "5",
        "cpus": 1, "memory": 104_857_600u64, "gpus": 2,
    });
    assert_eq!(v["resources"], shown, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (status, v) = f.call("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["resources"], shown, "{v}");
    // Memory in bytes; a session without resources shows every field null.
    let (status, v) = f
        .call(
            "POST",
            "/v1/sessions",
            Some(json!({"resources": {"memory": 4096}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["resources"]["memory"], 4096, "{v}");
    assert_eq!(v["resources"]["cpus"], Value::Null, "{v}");
    let (_, v) = f.call("POST", "/v1/sessions", Some(json!({}))).await;
    assert_eq!(
        v["resources"],
        json!({"partition": null, "account": null, "time_limit": null, "cpus": null, "memory": null, "gpus": null}),
        "{v}"
    );

    // Bad resources: 400 (wrong shape) or 422 (well-formed but unusable),
    // naming the field's path; no session is created.
    let (_, before) = f.call("GET", "/v1/sessions", None).await;
    let before = before["sessions"].as_array().unwrap().len();
    for (body, want, path) in [
        // Regression (Schemathesis NetzhW): an array of the fields in order
        // was taken as the object.
        (json!([null, null]), StatusCode::BAD_REQUEST, "resources"),
        (json!({"cpu": 1}), StatusCode::BAD_REQUEST, "resources.cpu"),
        (json!({"cpus": "many"}), StatusCode::BAD_REQUEST, "resources.cpus"),
        (
            json!({"memory": [1]}),
            StatusCode::BAD_REQUEST,
            "resources.memory",
        ),
        (
            json!({"cpus": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources.cpus",
        ),
        (
            json!({"memory": "lots"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources.memory",
        ),
        (
            json!({"memory": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources.memory",
        ),
        (
            json!({"time_limit": "soon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources.time_limit",
        ),
        (
            json!({"partition": "a b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources.partition",
        ),
        (
            json!({"account": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources.account",
        ),
        (
            json!({"gpus": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources.gpus",
        ),
    ] {
        let (status, v) = f
            .call("POST", "/v1/sessions", Some(json!({"resources": body.clone()})))
            .await;
        assert_eq!(status, want, "{body}: {v}");
        assert_eq!(v["error"]["path"], path, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(path), "{body}: {message}");
    }
    let (_, after) = f.call("GET", "/v1/sessions", None).await;
    assert_eq!(after["sessions"].as_array().unwrap().len(), before);

    // A new server on the same store shows (and launches with) the same resources.
    f.server.shutdown().await;
    let root = f._dir.path().to_path_buf();
    let store = Store::open(root.join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let server = Server::new(
        ServerConfig::new(&root),
        store,
        Arc::new(ManualClock::new(jiff::Timestamp::now())),
    );
    server.recover().await.unwrap();
    let router = app(Arc::clone(&server));
    let again = Fixture {
        _dir: tempfile::tempdir().unwrap(),
        server,
        clock: Arc::new(ManualClock::new(jiff::Timestamp::now())),
        router,
    };
    let (status, v) = again.call("GET", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["resources"], shown, "{v}");
    assert!(again.server.live(&id).is_some(), "the session was adopted");
    drop(f);
}

/// Regression: serde's derived structs take an array of their fields in
/// order, so `"spec": [null]` or `"runs": [[null]]` were run specs.
#[tokio::test]
async fn run_specs_must_be_objects() {
    let f = fixture().await;
    let (status, v) = f.call("POST", "/v1/sessions", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    for (body, path) in [
        (json!({"spec": [null]}), "spec"),
        (json!({"runs": [[null]]}), "runs[0]"),
    ] {
        let (status, v) = f
            .call("POST", &format!("/v1/sessions/{id}/runs"), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["path"], path, "{body}: {v}");
    }
    let (status, v) = f
        .call(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{}]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "an object still is a spec: {v}");
}
