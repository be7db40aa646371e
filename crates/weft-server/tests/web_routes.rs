//! The web page's routes in-process (`oneshot`): HTML shells and assets with
//! their caching headers, no token needed for them while the API keeps
//! asking for it, and the pipeline read endpoints (JSON and SVG).

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
      tags: [prep]
    - name: second
      func: add_one
      inputs: a
      outputs: b
    - name: third
      func: sum
      inputs: [a, b]
      outputs: c
      namespace: stats
      tags: [model]
broken:
  nodes:
    - name: prep
      func: add_one
      inputs: params:start
      outputs: x
    - name: explode
      func: fail
      inputs: x
      outputs: y
"#;

const TOKEN: &str = "s3cret";

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    router: Router,
}

async fn fixture() -> Fixture {
    fixture_with(PIPELINES).await
}

async fn fixture_with(pipelines: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"web\"\n");
    write(&root, "pipelines.yml", pipelines);
    write(&root, "conf/base/parameters.yml", "start: 1\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    Fixture {
        router: app(server_over(&root).await),
        _dir: dir,
    }
}

/// A server over the project and store in `root` (a second one sees what
/// the first stored).
async fn server_over(root: &Path) -> Arc<Server> {
    let store = Store::open(root.join("store.db").to_str().unwrap())
        .await
        .unwrap();
    let mut config = ServerConfig::new(root);
    config.max_workers = 2;
    config.token = Some(TOKEN.into());
    let server = Server::new(config, store, Arc::new(ManualClock::new(jiff::Timestamp::now())));
    server.recover().await.unwrap();
    server
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

impl Fixture {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .header("content-type", "application/json")
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn authed(&self, method: &str, uri: &str, body: Option<Value>) -> Answer {
        self.call(method, uri, body, &[("authorization", "Bearer s3cret")])
            .await
    }

    async fn session(&self) -> String {
        let a = self.authed("POST", "/v1/sessions", Some(json!({}))).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        a.json()["id"].as_str().unwrap().to_string()
    }

    async fn run_to_end(&self, run_id: &str) -> Value {
        for _ in 0..500 {
            let v = self
                .authed("GET", &format!("/v1/runs/{run_id}"), None)
                .await
                .json();
            if !matches!(v["status"].as_str(), Some("queued" | "running")) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("run {run_id} did not finish");
    }
}

/// `href="…"` / `src="…"` values of a page.
fn links(html: &str, attr: &str) -> Vec<String> {
    html.split(&format!("{attr}=\""))
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_served_without_a_token_with_no_cache_and_an_etag() {
    let f = fixture().await;
    for uri in [
        "/",
        "/ui/sessions/abc",
        "/ui/runs/r1",
        "/ui/compare?runs=a,b",
        "/ui/sessions/abc/pipelines/__default__",
    ] {
        let a = f.call("GET", uri, None, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.text);
        assert!(a.header("content-type").starts_with("text/html"), "{uri}");
        assert_eq!(a.header("cache-control"), "no-cache", "{uri}");
        assert!(a.text.contains("<main id=\"app\""), "{uri}");
        assert!(
            a.header("content-security-policy").contains("script-src 'self'"),
            "{uri}"
        );
        let etag = a.header("etag").to_string();
        let again = f.call("GET", uri, None, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(again.text.is_empty());
    }
    // The ids in the URL reach the page escaped.
    let a = f.call("GET", "/ui/runs/%22%3E%3Cb%3E", None, &[]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text.contains("data-run=\"&quot;&gt;&lt;b&gt;\""), "{}", a.text);
    // The API behind the pages still wants the token.
    let a = f.call("GET", "/v1/sessions", None, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_have_hashed_names_and_are_immutable() {
    let f = fixture().await;
    let page = f.call("GET", "/", None, &[]).await.text;
    let assets: Vec<String> = links(&page, "href")
        .into_iter()
        .chain(links(&page, "src"))
        .filter(|l| l.starts_with("/ui/assets/"))
        .collect();
    assert_eq!(assets.len(), 2, "a stylesheet and a script: {assets:?}");
    for asset in &assets {
        let a = f.call("GET", asset, None, &[]).await;
        assert_eq!(a.status, StatusCode::OK, "{asset}");
        assert_eq!(a.header("cache-control"), "public, max-age=31536000, immutable");
        let kind = a.header("content-type");
        if asset.ends_with(".js") {
            assert!(kind.starts_with("text/javascript"), "{kind}");
            assert!(
                a.text.contains("sessionStorage"),
                "the script keeps the token in sessionStorage"
            );
        } else {
            assert!(kind.starts_with("text/css"), "{kind}");
        }
        let etag = a.header("etag").to_string();
        let again = f.call("GET", asset, None, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    // An old (or made-up) hash is not served as if current.
    let a = f.call("GET", "/ui/assets/app.000000000000.js", None, &[]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.header("cache-control"), "no-cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_listed_with_nodes_layers_tags_and_namespaces() {
    let f = fixture().await;
    let id = f.session().await;
    let a = f
        .call("GET", &format!("/v1/sessions/{id}/pipelines"), None, &[])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let list = f
        .authed("GET", &format!("/v1/sessions/{id}/pipelines"), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let list = list.json();
    let names: Vec<&str> = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"__default__") && names.contains(&"broken"),
        "{names:?}"
    );
    let p = f
        .authed("GET", &format!("/v1/sessions/{id}/pipelines/__default__"), None)
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    let p = p.json();
    let nodes = p["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{p}");
    assert_eq!(p["layers"], 3);
    let by_short = |s: &str| nodes.iter().find(|n| n["short_name"] == s).unwrap().clone();
    assert_eq!(by_short("first")["layer"], 0);
    assert_eq!(by_short("second")["layer"], 1);
    let third = by_short("third");
    assert_eq!(third["layer"], 2);
    assert_eq!(third["namespace"], "stats");
    assert_eq!(third["func"], "sum");
    assert_eq!(p["namespaces"], json!(["stats"]));
    assert_eq!(p["tags"], json!(["model", "prep"]));
    assert_eq!(p["inputs"], json!(["params:start"]));
    // Every edge goes from an earlier layer to a later one.
    for e in p["edges"].as_array().unwrap() {
        let (a, b) = (e[0].as_u64().unwrap() as usize, e[1].as_u64().unwrap() as usize);
        assert!(nodes[a]["layer"].as_u64() < nodes[b]["layer"].as_u64(), "{e}");
    }
    assert_eq!(p["edges"].as_array().unwrap().len(), 3);
    // Unknown pipeline, unknown session: 404 naming it.
    let a = f
        .authed("GET", &format!("/v1/sessions/{id}/pipelines/nope"), None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.json()["error"]["message"].as_str().unwrap().contains("nope"));
    let a = f.authed("GET", "/v1/sessions/zz/pipelines", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // A session closed by an earlier server has no pipelines loaded: 409.
    let a = f
        .authed("DELETE", &format!("/v1/sessions/{id}?mode=cancel"), None)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    for _ in 0..500 {
        let s = f.authed("GET", &format!("/v1/sessions/{id}"), None).await.json();
        if s["state"] == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let later = Fixture {
        router: app(server_over(f._dir.path()).await),
        _dir: tempfile::tempdir().unwrap(),
    };
    let a = later
        .authed("GET", &format!("/v1/sessions/{id}/pipelines/__default__"), None)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not loaded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_svg_shows_a_failed_run_and_collapses_namespaces() {
    let f = fixture().await;
    let id = f.session().await;
    let a = f
        .authed(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{"pipeline_names": ["broken"]}]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let run_id = a.json()["run_ids"][0].as_str().unwrap().to_string();
    let run = f.run_to_end(&run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    let svg = f
        .authed(
            "GET",
            &format!("/v1/sessions/{id}/pipelines/broken/svg?run={run_id}"),
            None,
        )
        .await;
    assert_eq!(svg.status, StatusCode::OK, "{}", svg.text);
    assert_eq!(svg.header("content-type"), "image/svg+xml");
    assert_eq!(svg.header("x-weft-nodes"), "2");
    assert!(svg.text.starts_with("<svg"), "{}", svg.text);
    assert!(
        svg.text
            .contains(r#"<g class="node state-failed" data-node="explode""#),
        "{}",
        svg.text
    );
    assert!(
        svg.text
            .contains(r#"<g class="node state-succeeded" data-node="prep""#),
        "{}",
        svg.text
    );
    assert_eq!(svg.text.matches("class=\"edge\"").count(), 1);

    // Collapsed: the namespaced node becomes one namespace box.
    let url = format!("/v1/sessions/{id}/pipelines/__default__/svg");
    let open = f.authed("GET", &url, None).await;
    assert_eq!(open.header("x-weft-boxes"), "3");
    let folded = f.authed("GET", &format!("{url}?collapse=stats"), None).await;
    assert_eq!(folded.status, StatusCode::OK);
    assert_eq!(folded.header("x-weft-nodes"), "3");
    assert_eq!(folded.header("x-weft-boxes"), "3");
    assert!(
        folded.text.contains(r#"data-namespace="stats""#),
        "{}",
        folded.text
    );
    // Tags filter the nodes drawn.
    let tagged = f.authed("GET", &format!("{url}?tags=prep"), None).await;
    assert_eq!(tagged.header("x-weft-nodes"), "1");
    // A run's filters applied: the nodes it left out are `excluded`.
    let a = f
        .authed(
            "POST",
            &format!("/v1/sessions/{id}/runs"),
            Some(json!({"runs": [{"node_names": ["first"]}]})),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let only_first = a.json()["run_ids"][0].as_str().unwrap().to_string();
    assert_eq!(f.run_to_end(&only_first).await["status"], "succeeded");
    let svg = f.authed("GET", &format!("{url}?run={only_first}"), None).await;
    assert!(
        svg.text
            .contains(r#"<g class="node state-succeeded" data-node="first""#),
        "{}",
        svg.text
    );
    assert!(
        svg.text
            .contains(r#"<g class="node state-excluded" data-node="second""#),
        "{}",
        svg.text
    );
    // Bad queries and unknown runs are 4xx, not 500.
    let a = f.authed("GET", &format!("{url}?zoom=2"), None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = f.authed("GET", &format!("{url}?run=nope"), None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_node_pipeline_is_drawn_with_every_edge_going_down() {
    // Node i sums the outputs of nodes i-1 and i-7 (when they exist).
    let mut yaml = String::from("__default__:\n  nodes:\n");
    for i in 0..1000 {
        let inputs = match i {
            0 => "params:start".to_string(),
            1..7 => format!("d{}", i - 1),
            _ => format!("[d{}, d{}]", i - 1, i - 7),
        };
        yaml.push_str(&format!(
            "    - name: n{i}\n      func: sum\n      inputs: {inputs}\n      outputs: d{i}\n      namespace: g{}\n",
            i / 100
        ));
    }
    let f = fixture_with(&yaml).await;
    let id = f.session().await;
    let url = format!("/v1/sessions/{id}/pipelines/__default__/svg");
    let start = std::time::Instant::now();
    let svg = f.authed("GET", &url, None).await;
    let took = start.elapsed();
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.header("x-weft-nodes"), "1000");
    assert_eq!(svg.text.matches(" data-node=\"").count(), 1000);
    println!(
        "1,000-node pipeline: SVG of {} KiB drawn and answered in {took:?} (expected well under 1 s)",
        svg.text.len() / 1024
    );
    // Every edge's end is below its start (the boxes' translate y).
    let mut y = std::collections::HashMap::new();
    for part in svg.text.split(" data-node=\"").skip(1) {
        let name = part.split('"').next().unwrap();
        let ty: f64 = part
            .split("translate(")
            .nth(1)
            .unwrap()
            .split([',', ')'])
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        y.insert(name.to_string(), ty);
    }
    let p = f
        .authed("GET", &format!("/v1/sessions/{id}/pipelines/__default__"), None)
        .await
        .json();
    let nodes = p["nodes"].as_array().unwrap();
    for e in p["edges"].as_array().unwrap() {
        let (a, b) = (
            &nodes[e[0].as_u64().unwrap() as usize],
            &nodes[e[1].as_u64().unwrap() as usize],
        );
        assert!(
            y[a["name"].as_str().unwrap()] < y[b["name"].as_str().unwrap()],
            "edge {a} -> {b} does not go down"
        );
    }
    assert_eq!(p["edges"].as_array().unwrap().len(), 6 + 2 * 993);
    // Ten namespaces collapsed: ten boxes.
    let all: Vec<String> = (0..10).map(|g| format!("g{g}")).collect();
    let folded = f
        .authed("GET", &format!("{url}?collapse={}", all.join(",")), None)
        .await;
    assert_eq!(folded.header("x-weft-boxes"), "10");
}
