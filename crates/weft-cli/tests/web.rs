//! The web page in a real headless Chromium, driven over WebDriver's JSON
//! protocol (chromedriver from scripts/with-chromium.sh): the real `weft
//! serve` binary with a token on a fixture project; the token typed into the
//! page; a sweep dispatched from the session page's form, the page updating
//! live from the events stream; a failed run with its failing node
//! highlighted; a 1,000-node pipeline drawn; two runs compared; screenshots
//! of each page in `target/web-screenshots/`.
//!
//! Without `WEFT_TEST_WEBDRIVER` (set by scripts/with-chromium.sh) the tests
//! print why and pass without a browser.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "w3b-t0ken";

/// The chromedriver URL. Like the Ray, PostgreSQL, S3 and Slurm tests,
/// the browser tests fail (never skip) without it, so a suite run without
/// a browser cannot pass by testing nothing.
fn webdriver() -> Option<String> {
    match std::env::var("WEFT_TEST_WEBDRIVER") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ => panic!(
            "WEFT_TEST_WEBDRIVER is not set; run the browser tests through scripts/with-chromium.sh \
             (scripts/test.sh does), e.g. `scripts/with-chromium.sh cargo nextest run --workspace -E 'binary(web)'`"
        ),
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A project with a sweepable pipeline (`score = start + 1` after a
/// `delay` ms wait), one that fails at node `explode`, and `wide`: 1,000
/// nodes in 10 namespaces, each summing up to 3 earlier nodes' outputs.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"web\"\n");
    let mut yaml = String::from(
        "__default__:\n  nodes:\n    - name: wait\n      func: sleep_ms\n      inputs: [params:delay, params:start]\n      outputs: waited\n      tags: [slow]\n    - name: score\n      func: add_one\n      inputs: waited\n      outputs: score\n\
         broken:\n  nodes:\n    - name: prep\n      func: add_one\n      inputs: params:start\n      outputs: x\n    - name: explode\n      func: fail\n      inputs: x\n      outputs: y\n\
         wide:\n  nodes:\n",
    );
    let mut seed: u64 = 7;
    for i in 0..1000u64 {
        let inputs: Vec<String> = if i < 5 {
            vec!["params:start".into()]
        } else {
            let k = 1 + (seed >> 40) % 3;
            (0..k)
                .map(|j| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let back = 1 + (seed >> 33) % 30.min(i);
                    format!("d{}", i - back - j.min(i - back))
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let _ = write!(
            yaml,
            "    - name: n{i}\n      func: sum\n      inputs: [{}]\n      outputs: d{i}\n      namespace: g{}\n",
            inputs.join(", "),
            i % 10
        );
    }
    write(root, "pipelines.yml", &yaml);
    write(root, "conf/base/parameters.yml", "start: 1\ndelay: 0\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    std::fs::write(root.join("token"), format!("{TOKEN}\n")).unwrap();
    dir
}

struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(root: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--project"])
        .arg(root)
        .args(["--listen", "127.0.0.1:0", "--token-file"])
        .arg(root.join("token"))
        .env_remove("WEFT_TOKEN")
        .env_remove("WEFT_STORE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Served { child, addr }
}

/// One HTTP/1.1 request with the token over a fresh loopback connection.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (_, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, serde_json::from_str(payload).unwrap_or(json!(payload)))
}

/// A WebDriver session on chromedriver.
struct Browser {
    url: String,
    session: String,
    agent: ureq::Agent,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(webdriver: &str) -> Browser {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut chrome = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--hide-scrollbars", "--force-device-scale-factor=1"]
        });
        if let Ok(bin) = std::env::var("WEFT_TEST_CHROMIUM") {
            chrome["binary"] = json!(bin);
        }
        let mut b = Browser {
            url: webdriver.to_string(),
            session: String::new(),
            agent,
        };
        let v = b.call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": chrome}}})),
        );
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_string();
        b
    }

    /// A WebDriver command; panics with the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|(status, v)| panic!("{method} {path}: {status} {v}"))
    }

    /// A WebDriver command; a driver error comes back as its status and body.
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, (u16, Value)> {
        let url = format!("{}{path}", self.url);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"));
        if status < 300 {
            Ok(v["value"].clone())
        } else {
            Err((status, v))
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Finds `css` and applies `action` to it, finding it again when the
    /// live page re-rendered it in between ("stale element reference"):
    /// the pages redraw from the events stream while a test acts on them.
    fn on_element(&self, css: &str, action: &str, body: Option<Value>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self.element(css);
            let path = format!("/session/{}/element/{e}/{action}", self.session);
            match self.try_call("POST", &path, body.clone()) {
                Ok(_) => return,
                Err((_, v))
                    if v["value"]["error"] == "stale element reference" && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((status, v)) => panic!("{action} on {css}: {status} {v}"),
            }
        }
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Waits until `script` returns something other than null/false.
    /// Runs `script` as an async script: it calls `done(value)`.
    fn js_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": format!("const done = arguments[arguments.length - 1]; {script}"), "args": []})),
        )
    }

    /// Presses one key (a WebDriver key code such as `\u{E007}` for Enter,
    /// `\u{E004}` for Tab) on whatever has the focus.
    fn press(&self, key: &str) {
        self.cmd(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
            ]}]})),
        );
    }

    fn wait(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(script);
            if !v.is_null() && v != json!(false) {
                return v;
            }
            if Instant::now() > deadline {
                let body = self.js("return document.body.innerText.slice(0, 2000)");
                panic!("timed out waiting for {what}; page text: {body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no {css}: {v}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", Some(json!({"text": text})));
    }

    fn click(&self, css: &str) {
        self.on_element(css, "click", None);
    }

    fn window(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Saves a PNG of the viewport to `target/web-screenshots/NAME.png`.
    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(&format!("{}/session/{}", self.url, self.session))
                .call();
        }
    }
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("web-screenshots")
}

/// Standard base64 (WebDriver's screenshots).
fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}

#[test]
fn the_pages_follow_a_sweep_show_a_failed_node_and_draw_a_big_pipeline() {
    let Some(driver) = webdriver() else { return };
    let dir = project();
    let s = serve(dir.path());
    let base = format!("http://{}", s.addr);
    let (status, session) = http(
        &s.addr,
        "POST",
        "/v1/sessions",
        Some(&json!({"max_concurrency": 2})),
    );
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_string();

    let b = Browser::start(&driver);
    // Sessions: the token typed once, then the list loads with it.
    b.goto(&format!("{base}/"));
    b.wait("the page script", "return document.getElementById('token-input')");
    b.wait(
        "the page to ask for a token",
        "return /needs its API token/.test(document.getElementById('token-state').textContent)",
    );
    b.type_into("#token-input", TOKEN);
    b.click("#token-form button");
    b.wait(
        "the session in the list",
        &format!(
            "return [...document.querySelectorAll('table a')].some(a => a.textContent.startsWith('{id}'))"
        ),
    );
    let stored = b.js("return sessionStorage.getItem('weft.token')");
    assert_eq!(stored, json!(TOKEN), "the token is kept for the tab");
    b.screenshot("sessions");

    // Session: dispatch a sweep from the form; the table fills in live.
    b.goto(&format!("{base}/ui/sessions/{id}"));
    b.wait(
        "the events stream",
        "return /live: live/.test(document.getElementById('live-state').textContent)",
    );
    b.js("window.__same_page = true; return null");
    b.type_into("#dispatch-params", r#"{"start": 0}"#);
    b.type_into("#dispatch-sweep", "start=1,2,3\ndelay=600,800");
    b.click("#dispatch-form button[type=submit]");
    let finished_then = b.wait(
        "6 runs in the table",
        "const c = document.getElementById('run-count'); return c.textContent === '6' && c.dataset.finished",
    );
    let finished_then: u32 = finished_then.as_str().unwrap().parse().unwrap();
    assert!(
        finished_then < 6,
        "the batch was still running when its runs appeared"
    );
    let progress = b.js("return document.getElementById('progress-text').textContent");
    eprintln!("progress while running: {progress}");
    b.wait(
        "every run finished, without a reload",
        "return document.getElementById('run-count').dataset.finished === '6'",
    );
    assert_eq!(
        b.js("return +document.getElementById('progress').value"),
        json!(6)
    );
    assert_eq!(
        b.js("return window.__same_page === true"),
        json!(true),
        "no reload"
    );
    // The sweep's parameter is a column and the metric is plotted against it.
    let headers =
        b.js("return [...document.querySelectorAll('[data-table=runs] th')].map(t => t.textContent)");
    let headers: Vec<&str> = headers
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(headers.iter().any(|h| h.starts_with("start")), "{headers:?}");
    assert!(headers.iter().any(|h| h.starts_with("score")), "{headers:?}");
    b.js("const x = document.getElementById('plot-x'); x.value = 'start'; x.dispatchEvent(new Event('change')); \
          const y = document.getElementById('plot-y'); y.value = 'score'; y.dispatchEvent(new Event('change')); return null");
    let points = b.js("return document.querySelectorAll('#plot svg circle').length");
    assert_eq!(points, json!(6));
    // Two parameters vary: a parallel-coordinates line per run too.
    let lines = b.js("return document.querySelectorAll('#parallel svg polyline.line').length");
    assert_eq!(lines, json!(6));
    b.screenshot("session");
    // The runs table as CSV: what the CSV button hands to the browser.
    let csv = b.js_async(
        "const make = URL.createObjectURL; URL.createObjectURL = (blob) => { blob.text().then(done); return make(blob); }; \
         [...document.querySelectorAll('[data-table=runs] button')].find(x => x.textContent === 'CSV').click();",
    );
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "a header and 6 runs: {csv}");
    assert!(lines[0].contains("status") && lines[0].contains("score"), "{csv}");
    assert!(lines[1..].iter().all(|l| l.contains("succeeded")), "{csv}");

    // A run submitted elsewhere shows up without a reload (events stream).
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"runs": [{"pipeline_names": ["broken"]}]})),
    );
    assert_eq!(status, 202, "{v}");
    let failed_id = v["run_ids"][0].as_str().unwrap().to_string();
    b.wait(
        "the 7th run, live",
        "return document.getElementById('run-count').textContent === '7' && document.getElementById('run-count').dataset.finished === '7'",
    );
    assert_eq!(
        b.js("return window.__same_page === true"),
        json!(true),
        "no reload"
    );

    // Run: the failing node is highlighted.
    b.goto(&format!("{base}/ui/runs/{failed_id}"));
    let node = b.wait(
        "the error box",
        "const e = document.getElementById('error-node'); return e && e.textContent",
    );
    assert_eq!(node, json!("explode"));
    let highlighted = b.js(
        "return [...document.querySelectorAll('tr.node-row.failed td:first-child')].map(td => td.textContent)",
    );
    assert_eq!(highlighted, json!(["explode"]));
    let bar = b.js("return document.querySelectorAll('svg.gantt rect.bar.failed[data-node=explode]').length");
    assert_eq!(bar, json!(1), "the failed node is red in the timeline");
    b.wait(
        "the log",
        "return document.getElementById('log').textContent.length > 0",
    );
    b.screenshot("run");

    // The pipeline from the run: node states coloured.
    b.click("#pipeline-link");
    b.wait(
        "the drawing with the run's states",
        "return document.querySelector('#dag .node.state-failed[data-node=explode]') && document.querySelector('#dag .node.state-succeeded[data-node=prep]')",
    );

    // Pipeline: 1,000 nodes drawn; a namespace collapses into one box.
    b.goto(&format!("{base}/ui/sessions/{id}/pipelines/wide"));
    let count = b.wait(
        "the 1,000-node drawing",
        "const s = document.querySelector('#dag svg'); return s && document.getElementById('node-count').textContent",
    );
    assert_eq!(count, json!("1000"));
    assert_eq!(
        b.js("return document.querySelectorAll('#dag svg .node').length"),
        json!(1000)
    );
    b.js("const el = document.querySelector('#dag .node'); el.dispatchEvent(new MouseEvent('click', {bubbles: true})); return null");
    b.wait(
        "node details",
        "return document.querySelector('#node-details dl') && document.querySelector('#node-details h2').textContent",
    );
    b.screenshot("pipeline");
    // Keyboard: Enter on a focused node shows it, Tab moves to the next.
    b.js("document.querySelectorAll('#dag .node[data-node]')[5].focus(); return null");
    let before = b.js("return document.querySelector('#node-details h2').textContent");
    b.press("\u{E007}");
    let first = b.wait(
        "details of the focused node",
        "const h = document.querySelector('#node-details h2'); return h && h.textContent === document.activeElement.dataset.node && h.textContent",
    );
    assert_ne!(
        first, before,
        "Enter showed the focused node, not the one clicked before"
    );
    b.press("\u{E004}");
    let next = b.js("return document.activeElement.dataset.node || null");
    assert!(
        next.is_string() && next != first,
        "Tab moves from {first} to another node, not {next}"
    );
    b.js("const c = [...document.querySelectorAll('.chips label')].find(l => l.textContent.trim() === 'g0').querySelector('input'); c.click(); return null");
    let boxes = b.wait(
        "the collapsed drawing",
        "const s = document.querySelector('#dag svg'); return s && s.dataset.boxes === '901' && s.dataset.boxes",
    );
    assert_eq!(boxes, json!("901"), "g0's 100 nodes became one box");

    // Compare: two runs of the sweep side by side, differences highlighted.
    let (_, runs) = http(&s.addr, "GET", &format!("/v1/sessions/{id}/runs"), None);
    let ids: Vec<String> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["runtime_params"]["delay"] == 800 && r["runtime_params"]["start"] != 2)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{runs}");
    // Selected on the session page, then "Compare selected".
    b.goto(&format!("{base}/ui/sessions/{id}"));
    b.wait(
        "the runs",
        "return document.getElementById('run-count').textContent === '7'",
    );
    for run in &ids {
        b.click(&format!("input[aria-label='select run {run}']"));
    }
    b.click("#compare");
    b.wait(
        "the compare page",
        "return document.getElementById('app').dataset.page === 'compare'",
    );
    let shown = b.js("return new URLSearchParams(location.search).get('runs')");
    assert_eq!(shown, json!(ids.join(",")));
    let diffs = b.wait(
        "the comparison",
        "const rows = [...document.querySelectorAll('[data-table=compare] tr.diff td:first-child')].map(t => t.textContent); return rows.length ? rows : null",
    );
    let diffs: Vec<&str> = diffs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(diffs.contains(&"param start"), "{diffs:?}");
    assert!(diffs.contains(&"metric score"), "{diffs:?}");
    b.screenshot("compare");

    // A phone-width session page: no sideways scrolling of the page itself.
    b.window(390, 844);
    b.goto(&format!("{base}/ui/sessions/{id}"));
    b.wait(
        "the runs at phone width",
        "return document.getElementById('run-count').textContent === '7'",
    );
    let overflow = b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth");
    assert!(
        overflow.as_i64().unwrap() <= 1,
        "the page scrolls sideways by {overflow} px"
    );
    b.screenshot("session-phone");
    b.window(1280, 900);

    // Run page, live: the status and the log's tail update while it runs;
    // a second run is cancelled from its page.
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"runs": [{"runtime_params": {"delay": 3000}}, {"runtime_params": {"delay": 30000}}]})),
    );
    assert_eq!(status, 202, "{v}");
    let (slow, stuck) = (
        v["run_ids"][0].as_str().unwrap().to_string(),
        v["run_ids"][1].as_str().unwrap().to_string(),
    );
    b.goto(&format!("{base}/ui/runs/{slow}"));
    b.wait(
        "the run running",
        "const s = document.querySelector('.panel .status'); return s && s.textContent === 'running'",
    );
    b.js("window.__same_page = true; return null");
    b.wait(
        "the run succeeded, live",
        "const s = document.querySelector('.panel .status'); return s && s.textContent === 'succeeded'",
    );
    b.wait(
        "the log's last line, tailed",
        "return /run succeeded/.test(document.getElementById('log').textContent)",
    );
    assert_eq!(
        b.js("return window.__same_page === true"),
        json!(true),
        "no reload"
    );
    b.goto(&format!("{base}/ui/runs/{stuck}"));
    b.wait(
        "the cancel button",
        "return document.getElementById('cancel-run')",
    );
    b.click("#cancel-run");
    b.wait(
        "the run cancelled",
        "const s = document.querySelector('.panel .status'); return s && s.textContent === 'cancelled'",
    );
    let (_, run) = http(&s.addr, "GET", &format!("/v1/runs/{stuck}"), None);
    assert_eq!(run["status"], "cancelled", "{run}");

    // Sessions page, live: a run finishing elsewhere changes the counts.
    b.goto(&format!("{base}/"));
    b.wait(
        "the counts",
        &format!("return [...document.querySelectorAll('tr')].some(r => r.textContent.includes('{id}') && r.textContent.includes('7 succeeded'))"),
    );
    b.js("window.__same_page = true; return null");
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
        Some(&json!({"runs": [{}]})),
    );
    assert_eq!(status, 200, "{v}");
    b.wait(
        "8 succeeded, live",
        &format!("return [...document.querySelectorAll('tr')].some(r => r.textContent.includes('{id}') && r.textContent.includes('8 succeeded'))"),
    );
    assert_eq!(
        b.js("return window.__same_page === true"),
        json!(true),
        "no reload"
    );

    // Terminate the session from its page (confirming the dialog).
    b.goto(&format!("{base}/ui/sessions/{id}"));
    b.wait(
        "the terminate button",
        "return document.getElementById('terminate')",
    );
    b.click("#terminate");
    b.cmd("POST", "/alert/accept", None);
    b.wait(
        "the session closed",
        "const s = document.querySelector('#session-info .status'); return s && ['closed', 'draining'].includes(s.textContent)",
    );
    let (_, session) = http(&s.addr, "GET", &format!("/v1/sessions/{id}"), None);
    assert!(
        matches!(session["state"].as_str(), Some("closed" | "draining")),
        "{session}"
    );
}
