//! `weft serve` as a process over real loopback HTTP: start-up, auth, a run
//! end to end, SIGTERM, and crash recovery after `kill -9`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn project() -> tempfile::TempDir {
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

fn serve(root: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(["serve", "--project"])
        .arg(root)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("WEFT_TOKEN")
        .env_remove("WEFT_STORE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
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

/// One HTTP/1.1 request over a fresh loopback connection.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>, token: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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

fn dechunk(mut s: &str) -> String {
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

fn wait_terminal(addr: &str, run_ids: &[String], token: Option<&str>, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let runs: Vec<Value> = run_ids
            .iter()
            .map(|id| http(addr, "GET", &format!("/v1/runs/{id}"), None, token).1)
            .collect();
        if runs
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
        {
            return runs;
        }
        assert!(Instant::now() < deadline, "runs did not finish: {runs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_runs_over_loopback_with_a_token() {
    let dir = project();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0ken\n").unwrap();
    let s = serve(dir.path(), &["--token-file", token_file.to_str().unwrap()], &[]);
    let (status, _) = http(&s.addr, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
    let (status, v) = http(&s.addr, "POST", "/v1/sessions", Some(&json!({})), None);
    assert_eq!(status, 401, "{v}");
    let (status, session) = http(
        &s.addr,
        "POST",
        "/v1/sessions",
        Some(&json!({"max_concurrency": 2})),
        Some("t0ken"),
    );
    assert_eq!(status, 201, "{session}");
    let id = session["id"].as_str().unwrap();
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=30"),
        Some(&json!({"spec": {}, "sweep": ["start=1,2,3,4"]})),
        Some("t0ken"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 4);
    assert!(
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "succeeded"),
        "{v}"
    );
    // Following a run's log while it runs: the answer ends once the run has
    // finished, with its last line.
    let (_, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"runs": [{"runtime_params": {"delay": 400}}]})),
        Some("t0ken"),
    );
    let run_id = v["run_ids"][0].as_str().unwrap();
    let (status, log) = http(
        &s.addr,
        "GET",
        &format!("/v1/runs/{run_id}/logs?follow=true"),
        None,
        Some("t0ken"),
    );
    assert_eq!(status, 200);
    assert!(log.as_str().unwrap().contains("run succeeded"), "{log}");
    let (_, run) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}"), None, Some("t0ken"));
    assert_eq!(run["status"], "succeeded");
}

#[test]
fn refuses_a_public_address_without_a_token() {
    let dir = project();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--project"])
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .env_remove("WEFT_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// Accept 200 runs, `kill -9` the server while they execute, restart it:
/// every accepted run reaches exactly one final status, none is lost, none
/// ran twice (each finished run has one attempt).
#[test]
fn kill_9_loses_no_accepted_run() {
    let dir = project();
    let store = dir.path().join("crash.db");
    let store_arg = store.to_str().unwrap();
    let mut s = serve(dir.path(), &["--store", store_arg, "--lease-s", "1"], &[]);
    let (_, session) = http(
        &s.addr,
        "POST",
        "/v1/sessions",
        Some(&json!({"max_concurrency": 2})),
        None,
    );
    let id = session["id"].as_str().unwrap().to_string();
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"spec": {"runtime_params": {"delay": 10}}, "sweep": ["start=range(0,200)"]})),
        None,
    );
    assert_eq!(status, 202, "{v}");
    let run_ids: Vec<String> = v["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().into())
        .collect();
    assert_eq!(run_ids.len(), 200);
    // Let some runs finish and some run, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = http(&s.addr, "GET", &format!("/v1/sessions/{id}"), None, None);
        if s["runs"]["succeeded"].as_u64().unwrap_or(0) >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let s = serve(dir.path(), &["--store", store_arg], &[]);
    let runs = wait_terminal(&s.addr, &run_ids, None, Duration::from_secs(20));
    assert_eq!(runs.len(), 200);
    let mut by_status = std::collections::BTreeMap::new();
    for r in &runs {
        *by_status
            .entry(r["status"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
        if r["status"] == "succeeded" {
            assert_eq!(r["attempts"], 1, "ran more than once: {r}");
        }
    }
    eprintln!("after kill -9 and restart: {by_status:?}");
    let succeeded = by_status.get("succeeded").copied().unwrap_or(0);
    let interrupted = by_status.get("interrupted").copied().unwrap_or(0);
    assert_eq!(succeeded + interrupted, 200, "{by_status:?}");
    assert!(
        succeeded >= 190,
        "queued runs resume after the restart: {by_status:?}"
    );
}

/// SIGTERM: new work gets 503, running runs finish, queued runs stay queued
/// and run after the next start.
#[test]
fn sigterm_finishes_running_runs_and_keeps_the_queue() {
    let dir = project();
    let store = dir.path().join("term.db");
    let store_arg = store.to_str().unwrap();
    let mut s = serve(dir.path(), &["--store", store_arg, "--grace-s", "20"], &[]);
    let (_, session) = http(
        &s.addr,
        "POST",
        "/v1/sessions",
        Some(&json!({"max_concurrency": 1})),
        None,
    );
    let id = session["id"].as_str().unwrap().to_string();
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"spec": {"runtime_params": {"delay": 300}}, "sweep": ["start=range(0,5)"]})),
        None,
    );
    assert_eq!(status, 202, "{v}");
    let run_ids: Vec<String> = v["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().into())
        .collect();
    // Wait until the first run is executing, then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{}", run_ids[0]), None, None);
        if r["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "first run never started: {r}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = s.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // While it drains, new work is refused with 503.
    std::thread::sleep(Duration::from_millis(50));
    let (status, v) = http(&s.addr, "POST", "/v1/sessions", Some(&json!({})), None);
    assert_eq!(status, 503, "{v}");
    let exit = s.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // Restart: the first run finished before the exit, the others were left
    // queued and run now; nothing was interrupted.
    let s = serve(dir.path(), &["--store", store_arg], &[]);
    let runs = wait_terminal(&s.addr, &run_ids, None, Duration::from_secs(60));
    for r in &runs {
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
    }
}

fn weft(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(args).env_remove("WEFT_SERVER").env_remove("WEFT_TOKEN");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `weft run`, `multirun`, `runs` and `sessions` with `--server`: submit,
/// follow the events stream, print results.
#[test]
fn the_cli_acts_on_a_server() {
    let dir = project();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "abc").unwrap();
    let s = serve(dir.path(), &["--token-file", token_file.to_str().unwrap()], &[]);
    let url = format!("http://{}", s.addr);
    let token = token_file.to_str().unwrap();
    let out = weft(
        &[
            "run",
            "--server",
            &url,
            "--token-file",
            token,
            "--params",
            "start=5",
            "--json",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["runtime_params"]["start"], 5);
    // Without the token: a clear error, exit 1.
    let out = weft(&["run", "--server", &url], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // WEFT_SERVER and WEFT_TOKEN work as the flags do; live progress on stderr.
    let env = [("WEFT_SERVER", url.as_str()), ("WEFT_TOKEN", "abc")];
    let out = weft(
        &["multirun", "--params", "start=1,2,3", "--max-workers", "2"],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run 3/3"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains("succeeded")).count(),
        3,
        "{text}"
    );
    // A sweep file goes through the server too (expanded by the client).
    let sweep = dir.path().join("sweep.yml");
    std::fs::write(&sweep, "start: [7, 8]\n").unwrap();
    let out = weft(
        &["multirun", "--sweep-file", sweep.to_str().unwrap(), "--json"],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let swept: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut starts: Vec<i64> = swept
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runtime_params"]["start"].as_i64().unwrap())
        .collect();
    starts.sort_unstable();
    assert_eq!(starts, [7, 8], "{swept}");
    // Where a server's runs execute is the server's choice.
    let out = weft(
        &["multirun", "--params", "start=1,2", "--launcher", "process"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--launcher does not apply with --server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One run's log, through the server (the server's log layer wrote it).
    let run_id = run["run_id"].as_str().unwrap();
    let out = weft(
        &["runs", "logs", run_id, "--server", &url, "--token-file", token],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("run succeeded"), "{log}");
    let (status, followed) = http(
        &s.addr,
        "GET",
        &format!("/v1/runs/{run_id}/logs?follow=true"),
        None,
        Some("abc"),
    );
    assert_eq!(status, 200);
    assert!(followed.as_str().unwrap().contains("run succeeded"), "{followed}");
    let out = weft(&["sessions", "list", "--json"], &env);
    let sessions: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(sessions.as_array().unwrap().len() >= 2, "{sessions}");
    // An invalid run is refused with the server's problems, exit 1.
    let out = weft(&["run", "--pipelines", "nope"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    // Cancel needs a server.
    let out = weft(
        &["runs", "cancel", "x", "--project", dir.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
}
