//! `weft serve --launcher process` and `weft worker` as real processes over
//! loopback: same results as in-process, the error matrix (a worker killed
//! mid-run, recycle, busy, never ready) and no orphaned worker processes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

struct Proc {
    child: Child,
    addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `weft ARGS` and reads the address from its first stdout line.
fn start(args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(args)
        .env_remove("WEFT_TOKEN")
        .env_remove("WEFT_STORE_URL")
        .env_remove("WEFT_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep draining stdout so the child never blocks on it.
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

fn serve(root: &Path, extra: &[&str]) -> Proc {
    let root = root.to_str().unwrap();
    let store = format!("{root}/.weft/test-{}.db", extra.join("").len());
    let mut args = vec![
        "serve",
        "--project",
        root,
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
    ];
    args.extend_from_slice(extra);
    start(&args)
}

/// One HTTP/1.1 request over a fresh loopback connection.
fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
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

fn ids(v: &Value) -> Vec<String> {
    v["run_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no run_ids in {v}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

fn wait_terminal(addr: &str, run_ids: &[String], within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let runs: Vec<Value> = run_ids
            .iter()
            .map(|id| http(addr, "GET", &format!("/v1/runs/{id}"), None).1)
            .collect();
        if runs
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
        {
            return runs;
        }
        assert!(Instant::now() < deadline, "runs did not finish: {runs:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn wait_state(addr: &str, id: &str, want: &[&str], within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, s) = http(addr, "GET", &format!("/v1/sessions/{id}"), None);
        if want.contains(&s["state"].as_str().unwrap_or_default()) {
            return s;
        }
        assert!(Instant::now() < deadline, "session never reached {want:?}: {s}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The live (not zombie) `weft worker` processes of a session, found in /proc.
fn worker_pids(session_id: &str) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&&b"worker"[..]) && args.contains(&session_id.as_bytes()) {
            pids.insert(pid);
        }
    }
    pids
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) && fields.first() != Some(&"Z") {
            out.push(child);
        }
    }
    out
}

fn wait_gone(session_id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !worker_pids(session_id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "worker processes left behind: {:?}",
            worker_pids(session_id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn session(addr: &str, max_concurrency: u32) -> String {
    let (status, s) = http(
        addr,
        "POST",
        "/v1/sessions",
        Some(&json!({"max_concurrency": max_concurrency})),
    );
    assert_eq!(status, 201, "{s}");
    s["id"].as_str().unwrap().to_string()
}

/// `start` → (status, outputs, metrics) of each run of a sweep.
fn sweep(addr: &str, id: &str) -> BTreeMap<i64, (String, Value, Value)> {
    let (status, v) = http(
        addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {"runtime_params": {"delay": 20}}, "sweep": ["start=range(0,6)"]})),
    );
    assert_eq!(status, 200, "{v}");
    v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["runtime_params"]["start"].as_i64().unwrap(),
                (
                    r["status"].as_str().unwrap().to_string(),
                    r["outputs"].clone(),
                    r["metrics"].clone(),
                ),
            )
        })
        .collect()
}

#[test]
fn a_sweep_through_worker_processes_equals_the_same_sweep_in_process() {
    let dir = project();
    let in_process = serve(dir.path(), &[]);
    let a = session(&in_process.addr, 2);
    let expected = sweep(&in_process.addr, &a);
    assert_eq!(expected.len(), 6);
    assert!(expected.values().all(|(s, ..)| s == "succeeded"), "{expected:?}");
    assert_eq!(expected[&3].1["out"], json!(4), "{expected:?}");

    let processes = serve(dir.path(), &["--launcher", "process"]);
    let b = session(&processes.addr, 2);
    let s = wait_state(&processes.addr, &b, &["ready"], Duration::from_secs(60));
    assert_eq!(s["termination_reason"], Value::Null);
    let pids = worker_pids(&b);
    assert_eq!(pids.len(), 2, "max_concurrency 2 means two workers: {pids:?}");
    let serve_children: BTreeSet<u32> = children_of(processes.child.id()).into_iter().collect();
    assert!(
        pids.is_subset(&serve_children),
        "{pids:?} are not children of the server"
    );
    assert_eq!(sweep(&processes.addr, &b), expected);
    // Closing the session stops its workers.
    let (status, v) = http(&processes.addr, "DELETE", &format!("/v1/sessions/{b}"), None);
    assert!(status < 300, "{v}");
    wait_gone(&b, Duration::from_secs(20));
}

#[test]
fn kill_9_of_a_worker_mid_run_interrupts_that_run_and_the_session_recovers() {
    let dir = project();
    let s = serve(dir.path(), &["--launcher", "process"]);
    let id = session(&s.addr, 1);
    wait_state(&s.addr, &id, &["ready"], Duration::from_secs(60));
    let first = worker_pids(&id);
    assert_eq!(first.len(), 1, "{first:?}");
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"spec": {"runtime_params": {"delay": 20000}}})),
    );
    assert_eq!(status, 202, "{v}");
    let slow = ids(&v);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{}", slow[0]), None);
        if r["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the run never started: {r}");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let victim = first.iter().next().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &victim])
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    let runs = wait_terminal(&s.addr, &slow, Duration::from_secs(15));
    assert_eq!(runs[0]["status"], "interrupted", "{}", runs[0]);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the dead worker was noticed late"
    );
    // Later runs of the session succeed, on a new worker.
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {}, "sweep": ["start=1,2"]})),
    );
    assert_eq!(status, 200, "{v}");
    for r in v["runs"].as_array().unwrap() {
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    let now = worker_pids(&id);
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now.is_disjoint(&first), "the killed worker was replaced");
}

#[test]
fn workers_recycle_after_max_runs_without_losing_a_run() {
    let dir = project();
    let s = serve(dir.path(), &["--launcher", "process", "--worker-max-runs", "2"]);
    let id = session(&s.addr, 1);
    wait_state(&s.addr, &id, &["ready"], Duration::from_secs(60));
    // Watch which worker processes serve the session while the runs go.
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, done, id) = (Arc::clone(&seen), Arc::clone(&done), id.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                seen.lock().unwrap().extend(worker_pids(&id));
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {"runtime_params": {"delay": 150}}, "sweep": ["start=range(0,5)"]})),
    );
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    assert_eq!(status, 200, "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    for r in runs {
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(
            r["outputs"]["out"],
            json!(r["runtime_params"]["start"].as_i64().unwrap() + 1)
        );
    }
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 2,
        "five runs with --worker-max-runs 2 used one worker: {seen:?}"
    );
}

#[test]
fn a_second_concurrent_dispatch_to_a_worker_gets_409() {
    let dir = project();
    let root = dir.path().to_str().unwrap();
    let w = start(&[
        "worker",
        "--project",
        root,
        "--session-id",
        "sess-1",
        "--listen",
        "127.0.0.1:0",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = http(&w.addr, "GET", "/healthz", None);
        if status == 200 {
            assert_eq!(v["status"], "ready");
            assert_eq!(v["pid"], json!(w.child.id()));
            break;
        }
        assert_eq!(v["status"], "starting", "{v}");
        assert!(Instant::now() < deadline, "never ready: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let spec = |start: i64, delay: i64, run_id: &str| {
        json!({"spec": {
            "session_id": "sess-1",
            "run_index": 0,
            "config": {"run_id": run_id, "runtime_params": {"start": start, "delay": delay}},
            "isolation": {"kind": "shared"},
        }})
    };
    let slow = {
        let addr = w.addr.clone();
        let body = spec(1, 1500, "run-slow");
        std::thread::spawn(move || http(&addr, "POST", "/run_spec", Some(&body)))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = http(&w.addr, "GET", "/healthz", None);
        if v["busy"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the first dispatch never started: {v}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, v) = http(&w.addr, "POST", "/run_spec", Some(&spec(2, 0, "run-second")));
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "busy");
    let (status, v) = slow.join().unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["record"]["status"], "succeeded", "{v}");
    assert_eq!(v["record"]["outputs"]["out"], json!(2), "{v}");
    assert_eq!(v["recycle"], false);
    // Free again once the first one answered.
    let (status, v) = http(&w.addr, "POST", "/run_spec", Some(&spec(2, 0, "run-third")));
    assert_eq!((status, &v["record"]["outputs"]["out"]), (200, &json!(3)), "{v}");
}

#[test]
fn a_worker_that_never_becomes_ready_fails_the_session_with_healthz_timeout() {
    let dir = project();
    let script = dir.path().join("sleepy-worker");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let s = serve(
        dir.path(),
        &[
            "--launcher",
            "process",
            "--worker-program",
            script.to_str().unwrap(),
            "--worker-ready-timeout-s",
            "1",
        ],
    );
    let (status, created) = http(&s.addr, "POST", "/v1/sessions", Some(&json!({})));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending", "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    // A run submitted before the workers are ready waits in the queue.
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"spec": {}})),
    );
    assert_eq!(status, 202, "{v}");
    let queued = ids(&v);
    let t0 = Instant::now();
    let failed = wait_state(&s.addr, &id, &["failed"], Duration::from_secs(20));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(
        failed["termination_reason"]["code"], "worker_healthz_timeout",
        "{failed}"
    );
    let runs = wait_terminal(&s.addr, &queued, Duration::from_secs(10));
    assert_eq!(runs[0]["status"], "cancelled", "{}", runs[0]);
    // The sleeping "worker" was killed, not left behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !children_of(s.child.id()).is_empty() {
        assert!(Instant::now() < deadline, "{:?}", children_of(s.child.id()));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn workers_do_not_outlive_a_killed_server() {
    let dir = project();
    let mut s = serve(dir.path(), &["--launcher", "process"]);
    let id = session(&s.addr, 2);
    wait_state(&s.addr, &id, &["ready"], Duration::from_secs(60));
    assert_eq!(worker_pids(&id).len(), 2);
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    // Their stdin closed with the server: they exit by themselves.
    wait_gone(&id, Duration::from_secs(20));
}

#[test]
fn runs_submitted_before_the_workers_are_ready_wait_and_run_in_order() {
    let dir = project();
    let s = serve(dir.path(), &["--launcher", "process"]);
    let (status, created) = http(
        &s.addr,
        "POST",
        "/v1/sessions",
        Some(&json!({"max_concurrency": 1})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["state"], "pending",
        "the workers start after the answer: {created}"
    );
    let id = created["id"].as_str().unwrap();
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {}, "sweep": ["start=range(0,4)"]})),
    );
    assert_eq!(status, 200, "{v}");
    let mut runs: Vec<&Value> = v["runs"].as_array().unwrap().iter().collect();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{v}");
    runs.sort_by_key(|r| r["start_time"].as_str().unwrap().to_string());
    let order: Vec<i64> = runs
        .iter()
        .map(|r| r["runtime_params"]["start"].as_i64().unwrap())
        .collect();
    assert_eq!(order, vec![0, 1, 2, 3], "the pre-ready queue drains in order");
}

/// A project whose one node spins `params:spin` ms of CPU and fills
/// `params:fill` MiB of memory.
fn hungry_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"hungry\"\n");
    write(
        root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - name: spin\n      func: spin_ms\n      inputs: [params:spin, params:start]\n      outputs: spun\n    - name: fill\n      func: fill_mb\n      inputs: [params:fill, spun]\n      outputs: out\n",
    );
    write(root, "conf/base/parameters.yml", "start: 1\nspin: 0\nfill: 1\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    dir
}

fn run_once(addr: &str, id: &str, params: Value) -> Value {
    let (status, v) = http(
        addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"runs": [{"runtime_params": params}]})),
    );
    assert_eq!(status, 200, "{v}");
    v["runs"][0].clone()
}

#[test]
fn a_run_past_the_workers_cpu_time_limit_fails_naming_it_and_the_next_run_succeeds() {
    let dir = hungry_project();
    let s = serve(
        dir.path(),
        &["--launcher", "process", "--worker-cpu-limit-s", "1"],
    );
    let id = session(&s.addr, 1);
    wait_state(&s.addr, &id, &["ready"], Duration::from_secs(60));
    let first = worker_pids(&id);
    // Two runs of 600 ms each stay under the per-run limit (it is re-armed
    // before every run, not counted over the worker's life).
    for _ in 0..2 {
        let r = run_once(&s.addr, &id, json!({"spin": 600}));
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    let r = run_once(&s.addr, &id, json!({"spin": 5000}));
    assert_eq!(r["status"], "failed", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("1 s CPU-time limit"), "{r}");
    assert_eq!(r["error"]["kind"], "limit_exceeded", "{r}");
    let ok = run_once(&s.addr, &id, json!({"spin": 0}));
    assert_eq!(ok["status"], "succeeded", "{ok}");
    let now = worker_pids(&id);
    assert!(now.is_disjoint(&first), "the worker the limit ended was replaced");
}

#[test]
fn a_run_past_the_workers_memory_limit_fails_naming_it_and_the_next_run_succeeds() {
    let dir = hungry_project();
    let s = serve(
        dir.path(),
        &["--launcher", "process", "--worker-memory-limit", "256MiB"],
    );
    let id = session(&s.addr, 1);
    wait_state(&s.addr, &id, &["ready"], Duration::from_secs(60));
    let fits = run_once(&s.addr, &id, json!({"fill": 32}));
    assert_eq!(fits["status"], "succeeded", "{fits}");
    let r = run_once(&s.addr, &id, json!({"fill": 1024}));
    assert_eq!(r["status"], "failed", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("256 MiB memory limit"), "{r}");
    let ok = run_once(&s.addr, &id, json!({"fill": 32}));
    assert_eq!(ok["status"], "succeeded", "{ok}");
}

#[test]
fn bad_limit_flags_are_usage_errors() {
    let dir = hungry_project();
    for (args, wanted) in [
        (vec!["--worker-memory-limit", "12 parsecs"], "unknown unit"),
        (vec!["--worker-cpu-limit-s", "0"], "--worker-cpu-limit-s"),
        (
            vec!["--worker-memory-limit", "1G"],
            "need --launcher process or ray",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "serve",
                "--project",
                dir.path().to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(&args)
            .env_remove("WEFT_TOKEN")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
    }
}

/// The session's events stream (replayed from its start) up to and with
/// the first `run_finished` event of `run_id`.
fn events_until_finished(addr: &str, session_id: &str, run_id: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "GET /v1/sessions/{session_id}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the events stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if seen
            .split("\n\n")
            .any(|e| e.contains("event: run_finished") && e.contains(run_id))
        {
            return seen;
        }
    }
    panic!("no run_finished for {run_id} in {seen}");
}

#[test]
fn runs_in_worker_processes_stream_node_progress_to_the_events_stream() {
    let dir = project();
    let s = serve(dir.path(), &["--launcher", "process"]);
    let id = session(&s.addr, 1);
    wait_state(&s.addr, &id, &["ready"], Duration::from_secs(60));
    let run = run_once(&s.addr, &id, json!({"delay": 30, "start": 5}));
    assert_eq!(run["status"], "succeeded", "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    let events = events_until_finished(&s.addr, &id, run_id);
    let nodes: Vec<Value> = events
        .split("\n\n")
        .filter(|e| e.contains("event: node_finished"))
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|d| d["run_id"] == run_id)
        .collect();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["wait", "next"], "{events}");
    assert_eq!(nodes[0]["done"], 1, "{nodes:?}");
    assert_eq!(nodes[1]["done"], 2, "{nodes:?}");
    assert_eq!(nodes[1]["total"], 2, "{nodes:?}");
    assert!(nodes[0]["duration_ms"].as_f64().unwrap() >= 25.0, "{nodes:?}");
}

#[test]
fn the_logs_of_runs_on_two_workers_of_one_session_are_each_runs_own() {
    let dir = project();
    let s = serve(dir.path(), &["--launcher", "process"]);
    let id = session(&s.addr, 2);
    wait_state(&s.addr, &id, &["ready"], Duration::from_secs(60));
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {"runtime_params": {"delay": 10}}, "sweep": ["start=range(0,8)"]})),
    );
    assert_eq!(status, 200, "{v}");
    for run in v["runs"].as_array().unwrap() {
        assert_eq!(run["status"], "succeeded", "{run}");
        let run_id = run["run_id"].as_str().unwrap();
        let (status, log) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}/logs"), None);
        assert_eq!(status, 200, "{log}");
        let text = log
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| log.to_string());
        assert!(text.contains("run started"), "{run_id}: {text}");
        let other = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["run_id"].as_str())
            .filter(|r| *r != run_id)
            .any(|r| text.contains(r));
        assert!(!other, "{run_id}'s log holds another run's id: {text}");
    }
}
