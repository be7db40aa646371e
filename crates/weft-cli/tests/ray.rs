//! `--launcher ray` against a real single-node Ray head (started by
//! scripts/with-ray.sh, which exports `WEFT_TEST_RAY_ADDRESS`; the Ray tests
//! fail, never skip, without it) and the real `weft` binary: a sweep through
//! `weft serve --launcher ray` equals the same sweep in-process, so does
//! `weft multirun --launcher ray`; a Ray job stopped mid-run makes its run
//! `interrupted` and the session goes on; a session's idle expiry stops its
//! Ray job. Plus `weft multirun --launcher process` equals in-process
//! (no Ray needed).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{http, multirun_on, poll, project, serve, session, weft_command};

/// The Ray dashboard's URL, from scripts/with-ray.sh.
fn ray_address() -> String {
    match std::env::var("WEFT_TEST_RAY_ADDRESS") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "WEFT_TEST_RAY_ADDRESS is not set: run the Ray tests through scripts/with-ray.sh \
             (scripts/test.sh does), e.g. `scripts/with-ray.sh cargo nextest run -p weft-cli --test ray`"
        ),
    }
}

/// `host:port` of an `http://host:port` URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// The Ray job's status (`None`: Ray does not know it).
fn job_status(ray: &str, submission_id: &str) -> Option<String> {
    let (status, job) = http(
        &host_port(ray),
        "GET",
        &format!("/api/jobs/{submission_id}"),
        None,
    );
    (status == 200).then(|| job["status"].as_str().unwrap_or_default().to_string())
}

/// The session's Ray jobs: submission id → status.
fn session_jobs(ray: &str, session_id: &str) -> BTreeMap<String, String> {
    let (status, jobs) = http(&host_port(ray), "GET", "/api/jobs/", None);
    assert_eq!(status, 200, "{jobs}");
    jobs.as_array()
        .unwrap()
        .iter()
        .filter_map(|j| {
            let id = j["submission_id"].as_str()?;
            id.starts_with(&format!("weft-{session_id}-")).then(|| {
                (
                    id.to_string(),
                    j["status"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

/// `start` → (status, outputs, metrics) of each run of a 20-run sweep.
fn sweep(addr: &str, id: &str) -> BTreeMap<i64, (String, Value, Value)> {
    let (status, v) = http(
        addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=120"),
        Some(&json!({"spec": {"runtime_params": {"delay": 5}}, "sweep": ["start=range(0,20)"]})),
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
fn a_20_run_sweep_through_ray_equals_the_same_sweep_in_process() {
    let ray = ray_address();
    let dir = project();
    let in_process = serve(dir.path(), "inproc", &[]);
    let a = session(&in_process.addr, json!({"max_concurrency": 2}));
    let expected = sweep(&in_process.addr, &a);
    assert_eq!(expected.len(), 20);
    assert!(
        expected.values().all(|(s, _, _)| s == "succeeded"),
        "{expected:?}"
    );

    let on_ray = serve(dir.path(), "ray", &["--launcher", "ray", "--ray-address", &ray]);
    let b = session(&on_ray.addr, json!({"max_concurrency": 2}));
    assert_eq!(sweep(&on_ray.addr, &b), expected);
    // Two workers, two Ray jobs, both alive while the session is.
    let jobs = session_jobs(&ray, &b);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.values().all(|s| s == "RUNNING"), "{jobs:?}");
    let (status, _) = http(&on_ray.addr, "DELETE", &format!("/v1/sessions/{b}"), None);
    assert!(status < 300, "{status}");
    poll("the session's Ray jobs to stop", Duration::from_secs(30), || {
        let jobs = session_jobs(&ray, &b);
        jobs.values().all(|s| s == "STOPPED").then_some(())
    });
}

#[test]
fn a_ray_job_stopped_mid_run_interrupts_the_run_and_the_session_goes_on() {
    let ray = ray_address();
    let dir = project();
    let s = serve(dir.path(), "stop", &["--launcher", "ray", "--ray-address", &ray]);
    let id = session(&s.addr, json!({"max_concurrency": 1}));
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"spec": {"runtime_params": {"delay": 20000}}})),
    );
    assert!(status < 300, "{v}");
    let run_id = v["run_ids"][0].as_str().unwrap().to_string();
    poll("the run to start on Ray", Duration::from_secs(60), || {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}"), None);
        (r["status"] == "running").then_some(())
    });
    // The session's first worker is job w0, generation 0.
    let job = format!("weft-{id}-w0-g0");
    assert_eq!(job_status(&ray, &job).as_deref(), Some("RUNNING"));
    let (status, stopped) = http(
        &host_port(&ray),
        "POST",
        &format!("/api/jobs/{job}/stop"),
        Some(&json!({})),
    );
    assert_eq!(status, 200, "{stopped}");
    let run = poll("the run to end", Duration::from_secs(30), || {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}"), None);
        (!matches!(r["status"].as_str(), Some("queued" | "running"))).then_some(r)
    });
    assert_eq!(run["status"], "interrupted", "{run}");
    poll("the Ray job to be STOPPED", Duration::from_secs(15), || {
        (job_status(&ray, &job).as_deref() == Some("STOPPED")).then_some(())
    });
    // A new Ray job serves the session's next run.
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {"runtime_params": {"start": 41}}})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["runs"][0]["status"], "succeeded", "{v}");
    assert_eq!(v["runs"][0]["outputs"]["out"], 42, "{v}");
    let jobs = session_jobs(&ray, &id);
    assert_eq!(
        jobs.get(&format!("weft-{id}-w1-g0")).map(String::as_str),
        Some("RUNNING"),
        "{jobs:?}"
    );
}

#[test]
fn a_sessions_idle_expiry_stops_its_ray_job() {
    let ray = ray_address();
    let dir = project();
    let s = serve(dir.path(), "idle", &["--launcher", "ray", "--ray-address", &ray]);
    let id = session(&s.addr, json!({"max_concurrency": 1, "idle_ttl_s": 2}));
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {}})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["runs"][0]["status"], "succeeded", "{v}");
    let job = format!("weft-{id}-w0-g0");
    assert_eq!(job_status(&ray, &job).as_deref(), Some("RUNNING"));
    let session = poll("the session to expire", Duration::from_secs(30), || {
        let (_, s) = http(&s.addr, "GET", &format!("/v1/sessions/{id}"), None);
        (s["termination_reason"]["code"] == "idle_timeout" && !s["closed_at"].is_null()).then_some(s)
    });
    assert_eq!(session["state"], "expired", "{session}");
    poll("the Ray job to be STOPPED", Duration::from_secs(15), || {
        (job_status(&ray, &job).as_deref() == Some("STOPPED")).then_some(())
    });
}

#[test]
fn a_worker_job_that_fails_on_ray_fails_the_session_with_its_reason() {
    let ray = ray_address();
    let dir = project();
    let missing = dir.path().join("no-such-weft");
    let s = serve(
        dir.path(),
        "failing",
        &[
            "--launcher",
            "ray",
            "--ray-address",
            &ray,
            "--worker-program",
            missing.to_str().unwrap(),
        ],
    );
    let id = session(&s.addr, json!({"max_concurrency": 1}));
    let failed = poll("the session to fail", Duration::from_secs(60), || {
        let (_, v) = http(&s.addr, "GET", &format!("/v1/sessions/{id}"), None);
        (v["state"] == "failed").then_some(v)
    });
    let reason = &failed["termination_reason"];
    assert_eq!(reason["code"], "worker_launch_failed", "{failed}");
    let message = reason["message"].as_str().unwrap_or_default();
    // Ray's verdict and the job's own last log lines (the shell's complaint).
    assert!(message.contains(&format!("weft-{id}-w0-g0")), "{message}");
    assert!(message.contains("Ray job FAILED"), "{message}");
    assert!(message.contains("no-such-weft"), "{message}");
}

#[test]
fn multirun_on_ray_equals_in_process() {
    let ray = ray_address();
    multirun_on(&["--launcher", "ray", "--ray-address", &ray]);
}

#[test]
fn multirun_on_processes_equals_in_process() {
    multirun_on(&["--launcher", "process"]);
}

#[test]
fn multirun_on_workers_stops_on_sigint_and_records_every_run() {
    let dir = project();
    let root = dir.path().to_str().unwrap();
    let store = format!("{root}/.weft/interrupt.db");
    let mut child = weft_command(&[
        "multirun",
        "--project",
        root,
        "--store",
        &store,
        "--params",
        "start=range(0,4),delay=1500",
        "--policy",
        "continue",
        "--max-workers",
        "2",
        "--launcher",
        "process",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The first status line: runs 0 and 1 ended, runs 2 and 3 are next.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("[1/4]") && !line.starts_with("[2/4]") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no status line");
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted:"), "{rest}");
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    // The table is printed, its first row the sweep's first run.
    let first_run = out
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .unwrap_or_else(|| panic!("no table: {out}"));
    // Every run is recorded with an end: some succeeded, the rest cancelled.
    let list = weft_command(&["runs", "list", "--project", root, "--store", &store, "--json"])
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&list.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().any(|r| r["run_id"] == first_run), "{runs:?}");
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"succeeded"), "{statuses:?}");
    assert!(statuses.contains(&"cancelled"), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(*s, "succeeded" | "cancelled")),
        "{statuses:?}"
    );
}

#[test]
fn multirun_whose_workers_cannot_start_ends_with_the_reason() {
    // This waited forever: the failed session's runs stayed queued.
    let dir = project();
    let root = dir.path().to_str().unwrap();
    let missing = dir.path().join("no-such-weft");
    let started = Instant::now();
    let out = weft_command(&[
        "multirun",
        "--project",
        root,
        "--params",
        "start=range(0,3)",
        "--max-workers",
        "1",
        "--launcher",
        "process",
        "--worker-program",
        missing.to_str().unwrap(),
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the sweep's session failed: cannot start worker program"),
        "{err}"
    );
    assert!(err.contains("3 runs: 0 succeeded, 3 not"), "{err}");
}

#[test]
fn launcher_flags_are_checked() {
    let dir = project();
    let root = dir.path().to_str().unwrap();
    for (args, want) in [
        (vec!["--launcher", "ray"], "--ray-address"),
        (vec!["--ray-address", "http://127.0.0.1:1"], "need --launcher ray"),
        (
            vec!["--launcher", "ray", "--ray-address", "127.0.0.1:8265"],
            "http://",
        ),
        (vec!["--worker-max-runs", "2"], "--launcher process or ray"),
    ] {
        let mut all = vec!["multirun", "--project", root, "--params", "start=1,2"];
        all.extend_from_slice(&args);
        let out = weft_command(&all).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
