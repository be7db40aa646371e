//! Helpers shared by the launcher test binaries (`ray`, `slurm`, `k8s`):
//! a scaffolded project, `weft serve` as a child process, plain HTTP/1.1
//! over loopback, and polling. Each binary uses some of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"served\"\n");
    write(
        root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - name: wait\n      func: sleep_ms\n      inputs: [params:delay, params:start]\n      outputs: waited\n    - name: next\n      func: add_one\n      inputs: waited\n      outputs: out\n",
    );
    write(root, "conf/base/parameters.yml", "start: 1\ndelay: 0\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    dir
}

/// A `weft serve` child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first: the server ends its sessions' workers (child
        // processes, Ray jobs, Slurm jobs, Pods) on the way out.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn weft_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(args)
        .env_remove("WEFT_TOKEN")
        .env_remove("WEFT_STORE_URL")
        .env_remove("WEFT_SERVER")
        .env_remove("WEFT_ENV")
        .env_remove("RUST_LOG");
    cmd
}

/// `weft serve` on a free loopback port with its own SQLite store.
pub fn serve(root: &Path, name: &str, extra: &[&str]) -> Proc {
    let root = root.to_str().unwrap();
    let store = format!("{root}/.weft/{name}.db");
    let mut args = vec![
        "serve",
        "--project",
        root,
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
        "--grace-s",
        "5",
    ];
    args.extend_from_slice(extra);
    let mut child = weft_command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut out, &mut std::io::sink());
    });
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Proc { child, addr }
}

/// One HTTP/1.1 request over a fresh connection.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let payload = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(payload)
    } else {
        payload.to_string()
    };
    (status, serde_json::from_str(&payload).unwrap_or(json!(payload)))
}

pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub fn session(addr: &str, body: Value) -> String {
    let (status, s) = http(addr, "POST", "/v1/sessions", Some(&body));
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().unwrap().to_string()
}

pub fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `weft multirun ... --json` → its runs as (params, status, outputs,
/// metrics, attempts, error), sorted; and the session id.
pub fn multirun(root: &Path, store: &str, extra: &[&str]) -> (Vec<Value>, String) {
    let root = root.to_str().unwrap();
    let mut args = vec![
        "multirun",
        "--project",
        root,
        "--store",
        store,
        "--params",
        "start=range(0,8),delay=5",
        "--policy",
        "continue",
        "--max-workers",
        "2",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = weft_command(&args).stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "weft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let runs = runs.as_array().unwrap();
    let session_id = runs[0]["session_id"].as_str().unwrap().to_string();
    assert!(runs.iter().all(|r| r["session_id"] == session_id.as_str()));
    let mut rows: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "params": r["params"], "status": r["status"], "outputs": r["outputs"],
                "metrics": r["metrics"], "attempts": r["attempts"], "error": r["error"],
            })
        })
        .collect();
    rows.sort_by_key(|r| r["params"]["start"].as_i64());
    (rows, session_id)
}

/// The session's runs as the run store has them (`weft runs list`), sorted.
pub fn stored_runs(root: &Path, store: &str, session_id: &str) -> Vec<Value> {
    let out = weft_command(&[
        "runs",
        "list",
        "--project",
        root.to_str().unwrap(),
        "--store",
        store,
        "--session",
        session_id,
        "--json",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut rows: Vec<Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!({
                "params": r["runtime_params"], "status": r["status"], "outputs": r["outputs"],
                "metrics": r["metrics"], "pipelines": r["pipeline_names"], "env": r["env"],
            })
        })
        .collect();
    rows.sort_by_key(|r| r["params"]["start"].as_i64());
    rows
}

/// `weft multirun` of an 8-point sweep with `launcher`'s flags equals the
/// same sweep in-process, results and records.
pub fn multirun_on(launcher: &[&str]) {
    let dir = project();
    let store = format!("{}/.weft/multirun.db", dir.path().display());
    let (expected, a) = multirun(dir.path(), &store, &[]);
    assert_eq!(expected.len(), 8);
    assert!(
        expected.iter().all(|r| r["status"] == "succeeded"),
        "{expected:?}"
    );
    let (got, b) = multirun(dir.path(), &store, launcher);
    assert_eq!(got, expected);
    // The records too: same runs, params, statuses, outputs, metrics.
    let recorded = stored_runs(dir.path(), &store, &a);
    assert_eq!(recorded.len(), 8);
    assert_eq!(stored_runs(dir.path(), &store, &b), recorded);
}
