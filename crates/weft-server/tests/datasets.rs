//! `GET /v1/runs/{id}/datasets` and `GET /v1/runs/{id}/datasets/{name}`
//! in-process (`oneshot`): a pipeline saving a versioned PNG chart, a Plotly
//! figure, a CSV table and a memory output; each run's own versions
//! served, non-versioned files marked as not pinned, run-scoped files
//! pinned, 404s that say what is missing, path-like names refused, the
//! size limit, the token, and a closed session's runs still served.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use weft_server::{ManualClock, Server, ServerConfig, app};
use weft_store::Store;

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: draw
      func: identity
      inputs: [params:chart, params:figure, params:rows, params:start]
      outputs: [chart, figure, table, scratch]
"#;

const CATALOG: &str = r#"
chart:
  type: matplotlib.MatplotlibDataset
  filepath: data/08_reporting/chart.png
  versioned: true
figure:
  type: plotly.JSONDataset
  filepath: data/08_reporting/figure.json
table:
  type: pandas.CSVDataset
  filepath: data/table.csv
"#;

const PARAMETERS: &str = r#"
start: 1
chart:
  kind: bar
  title: Capacity
  width: 320
  height: 200
  series:
    - {x: [a, b, c], y: [1.0, 3.0, 2.0]}
figure:
  data:
    - {type: bar, x: [a, b, c], y: [1, 3, 2]}
  layout: {title: {text: Capacity}}
rows:
  - {kind: a, n: 1}
  - {kind: b, n: 3}
"#;

const TOKEN: &str = "d4ta";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

struct Fixture {
    dir: tempfile::TempDir,
    router: Router,
}

async fn server_over(root: &Path, tune: impl FnOnce(&mut ServerConfig)) -> Arc<Server> {
    let store = Store::open(root.join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let mut config = ServerConfig::new(root);
    config.max_workers = 2;
    config.token = Some(TOKEN.into());
    tune(&mut config);
    let server = Server::new(config, store, Arc::new(ManualClock::new(jiff::Timestamp::now())));
    server.recover().await.unwrap();
    server
}

async fn fixture_with(tune: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"charts\"\n");
    write(root, "pipelines.yml", PIPELINES);
    write(root, "conf/base/catalog.yml", CATALOG);
    write(root, "conf/base/parameters.yml", PARAMETERS);
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    let router = app(server_over(root, tune).await);
    Fixture { dir, router }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

impl Fixture {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `GET /v1/runs/{run}/datasets/{name}` with the token.
    async fn dataset(&self, run: &str, name: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.raw(
            "GET",
            &format!("/v1/runs/{run}/datasets/{name}"),
            None,
            Some(TOKEN),
        )
        .await
    }

    async fn raw(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, bytes)
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, bytes) = self.raw(method, uri, body, Some(TOKEN)).await;
        let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        (status, v)
    }

    async fn session(&self, body: Value) -> String {
        let (status, v) = self.call("POST", "/v1/sessions", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Submits one run and waits for it to succeed.
    async fn run(&self, session: &str, params: Value) -> String {
        let (status, v) = self
            .call(
                "POST",
                &format!("/v1/sessions/{session}/runs?wait=true&timeout_s=60"),
                Some(json!({"runs": [{"runtime_params": params}]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let run = &v["runs"][0];
        assert_eq!(run["status"], "succeeded", "{v}");
        run["id"].as_str().unwrap().to_string()
    }

    async fn datasets(&self, run: &str) -> Vec<Value> {
        let (status, v) = self.call("GET", &format!("/v1/runs/{run}/datasets"), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["run_id"], run);
        v["datasets"].as_array().unwrap().clone()
    }
}

fn by_name<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_lists_its_files_and_serves_each_one_as_it_saved_it() {
    let f = fixture().await;
    let s = f.session(json!({})).await;
    let run = f.run(&s, json!({})).await;

    let list = f.datasets(&run).await;
    let names: Vec<&str> = list.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["chart", "figure", "table"],
        "files only (scratch is memory): {list:?}"
    );
    let chart = by_name(&list, "chart");
    assert_eq!(chart["type"], "matplotlib.MatplotlibDataset");
    assert_eq!(chart["chart"], "image");
    assert_eq!(chart["content_type"], "image/png");
    assert_eq!(chart["version"], run.as_str(), "the version is the run id");
    assert_eq!(chart["pinned"], true);
    assert_eq!(chart["available"], true);
    let file = f
        .root()
        .join("data/08_reporting/chart.png")
        .join(&run)
        .join("chart.png");
    let on_disk = std::fs::read(&file).unwrap();
    assert_eq!(chart["size"], on_disk.len() as u64);
    assert_eq!(chart["url"], format!("/v1/runs/{run}/datasets/chart"));
    let figure = by_name(&list, "figure");
    assert_eq!(figure["chart"], "plotly");
    assert_eq!(figure["content_type"], "application/json");
    assert_eq!(figure["version"], Value::Null);
    assert_eq!(figure["pinned"], false, "a non-versioned file is the current one");
    let table = by_name(&list, "table");
    assert_eq!(table["chart"], Value::Null);
    assert_eq!(table["content_type"], "text/csv; charset=utf-8");

    // The PNG's bytes are the file's.
    let (status, headers, bytes) = f.dataset(&run, "chart").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(bytes, on_disk);
    assert!(bytes.starts_with(b"\x89PNG"));
    assert_eq!(headers["x-weft-pinned"], "true");
    assert_eq!(headers["x-weft-version"], run.as_str());
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );

    // The Plotly figure is JSON, marked as the current file.
    let (status, headers, bytes) = f.dataset(&run, "figure").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-weft-pinned"], "false");
    assert!(headers.get("x-weft-version").is_none());
    let fig: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(fig["data"][0]["type"], "bar", "{fig}");
    assert_eq!(fig["data"][0]["y"], json!([1, 3, 2]), "{fig}");

    let (status, headers, bytes) = f.dataset(&run, "table").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(bytes, std::fs::read(f.root().join("data/table.csv")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_gets_its_own_version_back() {
    let f = fixture().await;
    let s = f.session(json!({})).await;
    let small =
        json!({"chart": {"kind": "bar", "width": 200, "height": 120, "series": [{"x": ["a"], "y": [1.0]}]}});
    let big = json!({"chart": {"kind": "line", "width": 500, "height": 300, "series": [{"x": [1.0, 2.0, 3.0], "y": [1.0, 4.0, 9.0]}]}});
    let a = f.run(&s, small).await;
    let b = f.run(&s, big).await;
    let png_size = |bytes: &[u8]| {
        (
            u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
            u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
        )
    };
    for (run, size) in [(&a, (200, 120)), (&b, (500, 300))] {
        let list = f.datasets(run).await;
        assert_eq!(by_name(&list, "chart")["version"], run.as_str());
        let (status, headers, bytes) = f.dataset(run, "chart").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-weft-version"], run.as_str());
        assert_eq!(png_size(&bytes), size, "run {run} gets its own chart");
        let file = f
            .root()
            .join("data/08_reporting/chart.png")
            .join(run)
            .join("chart.png");
        assert_eq!(bytes, std::fs::read(file).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_datasets_and_memory_datasets_are_404s_that_say_why() {
    let f = fixture().await;
    let s = f.session(json!({})).await;
    let run = f.run(&s, json!({})).await;

    let (status, v) = f.call("GET", "/v1/runs/no-such-run/datasets", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("no-such-run"),
        "{v}"
    );
    let (status, v) = f.call("GET", "/v1/runs/no-such-run/datasets/chart", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");

    let (status, v) = f
        .call("GET", &format!("/v1/runs/{run}/datasets/nothing"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("saved no dataset `nothing`") && m.contains(&run),
        "{m}"
    );

    let (status, v) = f
        .call("GET", &format!("/v1/runs/{run}/datasets/scratch"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("`scratch`") && m.contains("MemoryDataset") && m.contains("no file"),
        "{m}"
    );

    // A version deleted since: listed as gone, and a 404 naming the file.
    std::fs::remove_dir_all(f.root().join("data/08_reporting/chart.png").join(&run)).unwrap();
    let list = f.datasets(&run).await;
    assert_eq!(by_name(&list, "chart")["available"], false);
    let (status, v) = f
        .call("GET", &format!("/v1/runs/{run}/datasets/chart"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("gone"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_like_names_never_reach_a_file() {
    let f = fixture().await;
    let s = f.session(json!({})).await;
    let run = f.run(&s, json!({})).await;
    write(f.root(), "secret.txt", "not a dataset");
    for name in [
        "..%2F..%2Fsecret.txt",
        "a%5Cb",
        "chart%00",
        "data%2Ftable.csv",
        "%C2%9A",
    ] {
        let (status, v) = f
            .call("GET", &format!("/v1/runs/{run}/datasets/{name}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not a dataset name"),
            "{v}"
        );
    }
    // `.` and `..` are no dataset of the run.
    for name in ["%2E", "%2E%2E"] {
        let (status, v) = f
            .call("GET", &format!("/v1/runs/{run}/datasets/{name}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("saved no dataset"),
            "{v}"
        );
    }
    // Names the router normalises or splits are not dataset routes at all.
    for uri in [
        format!("/v1/runs/{run}/datasets/../../secret.txt"),
        format!("/v1/runs/{run}/datasets/chart/../../secret.txt"),
    ] {
        let (status, _, bytes) = f.raw("GET", &uri, None, Some(TOKEN)).await;
        assert_ne!(status, StatusCode::OK, "{uri}");
        assert_ne!(bytes, b"not a dataset", "{uri} served the file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_the_dataset_routes() {
    let f = fixture().await;
    let s = f.session(json!({})).await;
    let run = f.run(&s, json!({})).await;
    for uri in [
        format!("/v1/runs/{run}/datasets"),
        format!("/v1/runs/{run}/datasets/chart"),
    ] {
        let (status, headers, _) = f.raw("GET", &uri, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        let (status, _, _) = f.raw("GET", &uri, None, Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_over_the_limit_are_refused_with_their_size() {
    let f = fixture_with(|c| c.dataset_limit = 100).await;
    let s = f.session(json!({})).await;
    let run = f.run(&s, json!({})).await;
    let (status, v) = f
        .call("GET", &format!("/v1/runs/{run}/datasets/chart"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "dataset_too_large");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("`chart`") && m.contains("up to 100 bytes"), "{m}");
    // A small file is still served.
    let (status, _, _) = f.dataset(&run, "table").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scoped_files_are_the_runs_own_and_an_svg_is_sandboxed() {
    let f = fixture().await;
    // An SVG chart this time, in a session whose runs may overlap (its
    // non-versioned outputs are written under .weft/runs/<run_id>).
    write(
        f.root(),
        "conf/local/catalog.yml",
        "chart:\n  type: matplotlib.MatplotlibDataset\n  filepath: data/chart.svg\n",
    );
    let s = f.session(json!({"max_concurrency": 2})).await;
    let a = f.run(&s, json!({"rows": [{"kind": "a", "n": 1}]})).await;
    let b = f
        .run(
            &s,
            json!({"rows": [{"kind": "b", "n": 2}, {"kind": "c", "n": 3}]}),
        )
        .await;
    for (run, rows) in [(&a, 1), (&b, 2)] {
        let list = f.datasets(run).await;
        let table = by_name(&list, "table");
        assert_eq!(table["pinned"], true, "{table}");
        let (status, headers, bytes) = f.dataset(run, "table").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-weft-pinned"], "true");
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 1 + rows, "run {run}'s own table: {text}");
        let chart = by_name(&list, "chart");
        assert_eq!(chart["content_type"], "image/svg+xml");
        let (status, headers, bytes) = f.dataset(run, "chart").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "image/svg+xml");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("sandbox")
        );
        assert!(String::from_utf8_lossy(&bytes).contains("<svg"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_sessions_runs_still_serve_their_files() {
    let f = fixture().await;
    let s = f.session(json!({})).await;
    let run = f.run(&s, json!({})).await;
    let (status, v) = f.call("DELETE", &format!("/v1/sessions/{s}"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let mut state = Value::Null;
    for _ in 0..500 {
        let (_, v) = f.call("GET", &format!("/v1/sessions/{s}"), None).await;
        state = v["state"].clone();
        if state == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "closed");
    // A new server over the same store and project: the session is not live.
    let again = app(server_over(f.root(), |_| {}).await);
    let g = Fixture {
        dir: tempfile::tempdir().unwrap(),
        router: again,
    };
    let list = g.datasets(&run).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let (status, _, bytes) = g
        .raw(
            "GET",
            &format!("/v1/runs/{run}/datasets/chart"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let file = f
        .root()
        .join("data/08_reporting/chart.png")
        .join(&run)
        .join("chart.png");
    assert_eq!(bytes, std::fs::read(file).unwrap());
}
