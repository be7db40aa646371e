//! `api.APIDataset` against a real HTTP server on 127.0.0.1 (a small
//! `std::net` server started by each test, joined when it ends).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use weft_catalog::{BuildOptions, Catalog, CatalogConfig, CatalogError, DatasetTypeRegistry};
use weft_pipeline::{Data, DataType};

/// One request the server received.
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    /// Path and query string.
    target: String,
    headers: BTreeMap<String, String>,
    body: String,
}

type Handler = dyn Fn(&Recorded, usize) -> (u16, &'static str, String) + Send + Sync;

struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Answers each request with `handler(request, index)`: status,
    /// content type, body.
    fn start(
        handler: impl Fn(&Recorded, usize) -> (u16, &'static str, String) + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let requests = Arc::clone(&requests);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let Some(req) = read_request(&stream) else {
                        continue;
                    };
                    let index = {
                        let mut all = requests.lock().unwrap();
                        all.push(req.clone());
                        all.len() - 1
                    };
                    let (status, content_type, body) = handler(&req, index);
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            })
        };
        Server {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Recorded> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn registry() -> DatasetTypeRegistry {
    let mut r = DatasetTypeRegistry::with_builtins();
    weft_api::register(&mut r).unwrap();
    r
}

fn try_catalog(entries: Value, credentials: Value) -> Result<Catalog, CatalogError> {
    let dir = std::env::temp_dir();
    CatalogConfig::parse(&entries, &credentials, &registry())?.build(&BuildOptions {
        project_dir: dir,
        save_version: "v1".into(),
        load_versions: BTreeMap::new(),
        parameters: Value::Null,
        run_scope: None,
    })
}

fn catalog(entries: Value, credentials: Value) -> Catalog {
    try_catalog(entries, credentials).unwrap()
}

#[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
struct Weather {
    city: String,
    temp: f64,
}

#[test]
fn get_sends_params_headers_and_a_bearer_token_and_loads_json() {
    let server = Server::start(|_, _| {
        (
            200,
            "application/json",
            r#"[{"city": "Oslo", "temp": -3.5}]"#.into(),
        )
    });
    let c = catalog(
        json!({"weather": {
            "type": "api.APIDataset",
            "url": server.url("/v1/weather"),
            "credentials": "api",
            "load_args": {"params": {"q": "Oslo", "days": 2}, "headers": {"X-Client": "weft"}},
        }}),
        json!({"api": {"token": "t0ken-secret"}}),
    );
    let rows = c.load("weather", None).unwrap();
    assert_eq!(
        rows.downcast_ref::<Value>().unwrap(),
        &json!([{"city": "Oslo", "temp": -3.5}])
    );
    let typed = c.load("weather", Some(&DataType::of::<Vec<Weather>>())).unwrap();
    assert_eq!(
        typed.downcast_ref::<Vec<Weather>>().unwrap(),
        &vec![Weather {
            city: "Oslo".into(),
            temp: -3.5
        }]
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/v1/weather?q=Oslo&days=2");
    assert_eq!(seen[0].headers["x-client"], "weft");
    assert_eq!(seen[0].headers["authorization"], "Bearer t0ken-secret");
    assert!(!format!("{:?}", c.describe("weather").unwrap()).contains("t0ken"));
}

#[test]
fn basic_auth_from_kedros_credential_pair_and_text_loads() {
    let server = Server::start(|_, _| (200, "text/plain", "hello, weft".into()));
    let c = catalog(
        json!({"greeting": {
            "type": "APIDataset",
            "url": server.url("/hello"),
            "credentials": "pair",
            "load_args": {"format": "text"},
        }, "as_string": {"type": "api.APIDataset", "url": server.url("/hello")}}),
        json!({"pair": ["ada", "s3cret"]}),
    );
    let text = c.load("greeting", None).unwrap();
    assert_eq!(text.downcast_ref::<String>().unwrap(), "hello, weft");
    // A node that takes a String gets the text even with the JSON default.
    let s = c.load("as_string", Some(&DataType::of::<String>())).unwrap();
    assert_eq!(s.downcast_ref::<String>().unwrap(), "hello, weft");
    // "ada:s3cret" in base64.
    assert_eq!(
        server.requests()[0].headers["authorization"],
        "Basic YWRhOnMzY3JldA=="
    );
    assert!(!server.requests()[1].headers.contains_key("authorization"));
}

#[test]
fn a_post_load_sends_its_json_body() {
    let server = Server::start(|req, _| {
        let asked: Value = serde_json::from_str(&req.body).unwrap();
        (200, "application/json", json!({"echo": asked}).to_string())
    });
    let c = catalog(
        json!({"search": {
            "type": "api.APIDataset", "url": server.url("/search"), "method": "POST",
            "load_args": {"json": {"query": "shuttles", "limit": 3}},
        }}),
        json!({}),
    );
    let v = c.load("search", None).unwrap();
    assert_eq!(
        v.downcast_ref::<Value>().unwrap(),
        &json!({"echo": {"query": "shuttles", "limit": 3}})
    );
    let seen = server.requests();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].headers["content-type"], "application/json");
}

#[test]
fn save_posts_the_data_whole_or_in_chunks_and_put_when_asked() {
    let server = Server::start(|_, _| (201, "application/json", "{}".into()));
    let c = catalog(
        json!({
            "whole": {"type": "api.APIDataset", "url": server.url("/ingest"), "save_args": {"headers": {"X-Batch": "1"}}},
            "chunked": {"type": "api.APIDataset", "url": server.url("/ingest"), "save_args": {"chunk_size": 2}},
            "put": {"type": "api.APIDataset", "url": server.url("/doc/1"), "save_args": {"method": "PUT", "params": {"v": 2}}},
        }),
        json!({}),
    );
    let rows = json!([{"id": 1}, {"id": 2}, {"id": 3}]);
    c.save("whole", Data::new(rows.clone())).unwrap();
    c.save("chunked", Data::new(rows)).unwrap();
    c.save("put", Data::new(json!({"title": "x"}))).unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].headers["x-batch"].as_str()),
        ("POST", "1")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&seen[0].body).unwrap(),
        json!([{"id": 1}, {"id": 2}, {"id": 3}])
    );
    assert_eq!(
        serde_json::from_str::<Value>(&seen[1].body).unwrap(),
        json!([{"id": 1}, {"id": 2}])
    );
    assert_eq!(
        serde_json::from_str::<Value>(&seen[2].body).unwrap(),
        json!([{"id": 3}])
    );
    assert_eq!(
        (seen[3].method.as_str(), seen[3].target.as_str()),
        ("PUT", "/doc/1?v=2")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&seen[3].body).unwrap(),
        json!({"title": "x"})
    );
}

#[test]
fn http_errors_name_dataset_url_status_and_body_and_retries_recover() {
    let server = Server::start(|req, i| {
        if req.target.starts_with("/flaky") && i >= 3 {
            (200, "application/json", "[1]".into())
        } else {
            (500, "text/plain", "database is down".into())
        }
    });
    let c = catalog(
        json!({
            "broken": {"type": "api.APIDataset", "url": server.url("/broken"), "credentials": "pw"},
            "flaky": {"type": "api.APIDataset", "url": server.url("/flaky"), "load_args": {"retries": 2}},
        }),
        json!({"pw": {"username": "ada", "password": "s3cret"}}),
    );
    let msg = c.load("broken", None).unwrap_err().to_string();
    assert!(
        msg.contains("`broken`")
            && msg.contains("GET http://")
            && msg.contains("/broken")
            && msg.contains("500")
            && msg.contains("database is down"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret") && !msg.contains("YWRh"), "{msg}");
    let v = c.load("flaky", None).unwrap();
    assert_eq!(v.downcast_ref::<Value>().unwrap(), &json!([1]));
    // One failed GET of /broken, then /flaky: two 500s and the success.
    assert_eq!(server.requests().len(), 4);
    let msg = c.save("broken", Data::new(json!([1]))).unwrap_err().to_string();
    assert!(
        msg.contains("could not save `broken`") && msg.contains("POST") && msg.contains("500"),
        "{msg}"
    );
}

#[test]
fn an_unreachable_host_and_a_timeout_are_clear_errors() {
    // A port nothing listens on (bound, then closed).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = catalog(
        json!({"gone": {"type": "api.APIDataset", "url": format!("http://127.0.0.1:{port}/x"), "load_args": {"retries": 1}}}),
        json!({}),
    );
    let msg = c.load("gone", None).unwrap_err().to_string();
    assert!(
        msg.contains("`gone`") && msg.contains("after 2 attempts"),
        "{msg}"
    );
    let slow = Server::start(|_, _| {
        std::thread::sleep(Duration::from_millis(1200));
        (200, "application/json", "[]".into())
    });
    let c = catalog(
        json!({"slow": {"type": "api.APIDataset", "url": slow.url("/slow"), "load_args": {"timeout": 0.3}}}),
        json!({}),
    );
    let started = std::time::Instant::now();
    let msg = c.load("slow", None).unwrap_err().to_string();
    assert!(msg.contains("`slow`") && msg.contains("timed out"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_millis(1100),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_answer_that_is_not_json_says_so() {
    let server = Server::start(|_, _| (200, "text/html", "<html>hi</html>".into()));
    let c = catalog(
        json!({"page": {"type": "api.APIDataset", "url": server.url("/")}}),
        json!({}),
    );
    let msg = c.load("page", None).unwrap_err().to_string();
    assert!(
        msg.contains("`page`") && msg.contains("not JSON") && msg.contains("format: text"),
        "{msg}"
    );
}

#[test]
fn configuration_errors_name_the_dataset_and_field() {
    let err = |entry: Value, creds: Value| {
        try_catalog(json!({"a": entry}), creds)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = err(json!({"type": "api.APIDataset"}), json!({}));
    assert!(e.contains("`a`") && e.contains("`url` is required"), "{e}");
    let e = err(
        json!({"type": "api.APIDataset", "url": "https://example.com"}),
        json!({}),
    );
    assert!(e.contains("https is not supported"), "{e}");
    let e = err(
        json!({"type": "api.APIDataset", "url": "http://h/", "method": "FETCH"}),
        json!({}),
    );
    assert!(e.contains("`method`") && e.contains("FETCH"), "{e}");
    let e = err(
        json!({"type": "api.APIDataset", "url": "http://h/", "save_args": {"method": "GET"}}),
        json!({}),
    );
    assert!(e.contains("save_args.method"), "{e}");
    let e = err(
        json!({"type": "api.APIDataset", "url": "http://h/", "load_args": {"verify": false}}),
        json!({}),
    );
    assert!(e.contains("load_args") && e.contains("`verify`"), "{e}");
    let e = err(
        json!({"type": "api.APIDataset", "url": "http://h/", "credentials": {"username": "u", "token": "t"}}),
        json!({}),
    );
    assert!(e.contains("credentials") && !e.contains("\"t\""), "{e}");
    let e = err(
        json!({"type": "api.APIDataset", "url": "http://u:p@h/"}),
        json!({}),
    );
    assert!(e.contains("credentials"), "{e}");
}

#[test]
fn a_session_runs_a_pipeline_that_loads_from_and_posts_to_an_api() {
    let server = Server::start(|req, _| match req.method.as_str() {
        "GET" => (
            200,
            "application/json",
            r#"[{"city": "Oslo", "temp": -3.5}, {"city": "Rome", "temp": 14.0}]"#.into(),
        ),
        _ => (204, "application/json", String::new()),
    });
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("weft.toml", "[project]\nname = \"api\"\n");
    write(
        "pipelines.yml",
        "__default__:\n  nodes:\n    - name: warm\n      func: warm_cities\n      inputs: weather\n      outputs: warm\n",
    );
    write(
        "conf/base/catalog.yml",
        &format!(
            "weather:\n  type: api.APIDataset\n  url: {}\n  credentials: weather_api\n  load_args:\n    params: {{units: metric}}\nwarm:\n  type: api.APIDataset\n  url: {}\n",
            server.url("/forecast"),
            server.url("/warm")
        ),
    );
    write("conf/local/credentials.yml", "weather_api:\n  token: t0k\n");
    write("conf/base/parameters.yml", "{}\n");
    let mut functions = weft_pipeline::FunctionRegistry::with_builtins();
    functions
        .register("warm_cities", |rows: &Vec<Weather>| -> Vec<String> {
            rows.iter()
                .filter(|w| w.temp > 0.0)
                .map(|w| w.city.clone())
                .collect()
        })
        .unwrap();
    let mut s = weft_session::Session::create(
        root,
        weft_session::SessionOptions {
            code: weft_session::ProjectCode {
                functions: Arc::new(functions),
                ..Default::default()
            },
            store: weft_session::StoreChoice::Disabled,
            ..Default::default()
        },
    )
    .unwrap();
    let result = s.run(weft_session::RunConfig::default()).unwrap();
    assert_eq!(
        result.status,
        weft_core::RunStatus::Succeeded,
        "{:?}",
        result.error
    );
    let seen = server.requests();
    assert_eq!(seen[0].target, "/forecast?units=metric");
    assert_eq!(seen[0].headers["authorization"], "Bearer t0k");
    let posted = seen.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(posted.target, "/warm");
    assert_eq!(
        serde_json::from_str::<Value>(&posted.body).unwrap(),
        json!(["Rome"])
    );
}
