//! `--launcher slurm` against a real one-node Slurm cluster (munged,
//! slurmctld and slurmd started by scripts/with-slurm.sh, which exports
//! `WEFT_TEST_SLURM=1` and `SLURM_CONF`; without it each test fails with
//! how to run it) and the real `weft` binary: a sweep through
//! `weft serve --launcher slurm` equals the same sweep in-process, so does
//! `weft multirun --launcher slurm`; `scancel` of the worker job mid-run
//! makes its run `interrupted` and the session goes on with a new job; a
//! job that can never start (more CPUs than the node has) or that sbatch
//! refuses (an unknown partition) fails the session with Slurm's reason
//! within the ready timeout; a failing worker job fails it with its state
//! and output; a new server of a session whose server was killed cancels
//! the job the old one left. Plus the `--slurm-*` flags are checked (no
//! Slurm needed).

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{http, multirun_on, poll, project, serve, session, weft_command};

/// Whether scripts/with-slurm.sh started a cluster for this test (it
/// fails the test when not).
fn slurm_cluster(test: &str) -> bool {
    // Like the Ray, PostgreSQL and S3 tests: fail, never skip, so a suite
    // run without the cluster cannot pass by testing nothing.
    assert!(
        std::env::var("WEFT_TEST_SLURM").as_deref() == Ok("1"),
        "{test}: WEFT_TEST_SLURM is not set, so no Slurm cluster is running; run the Slurm \
         tests through scripts/with-slurm.sh (scripts/test.sh does), e.g. \
         `scripts/with-slurm.sh cargo nextest run --workspace -E 'binary(slurm)'`"
    );
    true
}

/// A Slurm client command's stdout (it must succeed).
fn slurm(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `Key=` of one `scontrol show job -o` line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_default()
}

/// The session's Slurm jobs the controller knows (queued, running and
/// recently ended): job name → (job id, state, reason).
fn session_jobs(session_id: &str) -> BTreeMap<String, (String, String, String)> {
    let all = slurm("scontrol", &["show", "job", "-o"]);
    all.lines()
        .filter(|l| field(l, "JobName").starts_with(&format!("weft-{session_id}-")))
        .map(|l| {
            (
                field(l, "JobName").to_string(),
                (
                    field(l, "JobId").to_string(),
                    field(l, "JobState").to_string(),
                    field(l, "Reason").to_string(),
                ),
            )
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
fn a_20_run_sweep_through_slurm_equals_the_same_sweep_in_process() {
    if !slurm_cluster("a_20_run_sweep_through_slurm_equals_the_same_sweep_in_process") {
        return;
    }
    let dir = project();
    let in_process = serve(dir.path(), "inproc", &[]);
    let a = session(&in_process.addr, json!({"max_concurrency": 2}));
    let expected = sweep(&in_process.addr, &a);
    assert_eq!(expected.len(), 20);
    assert!(
        expected.values().all(|(s, _, _)| s == "succeeded"),
        "{expected:?}"
    );

    let on_slurm = serve(dir.path(), "slurm", &["--launcher", "slurm", "--slurm-cpus", "1"]);
    let b = session(&on_slurm.addr, json!({"max_concurrency": 2}));
    assert_eq!(sweep(&on_slurm.addr, &b), expected);
    // Two workers, two batch jobs, both running while the session lives.
    let jobs = session_jobs(&b);
    assert_eq!(
        jobs.keys().collect::<Vec<_>>(),
        [&format!("weft-{b}-w0"), &format!("weft-{b}-w1")],
        "{jobs:?}"
    );
    assert!(jobs.values().all(|(_, s, _)| s == "RUNNING"), "{jobs:?}");
    // Each job's output file holds its worker's announced address.
    let outputs: Vec<String> = std::fs::read_dir(dir.path().join(".weft/slurm"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|text| text.contains("weft worker: listening on http://127.0.0.1:"))
        .collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    // The batch script starts the worker; its token is not in it.
    let script = slurm(
        "scontrol",
        &["write", "batch_script", &jobs[&format!("weft-{b}-w0")].0, "-"],
    );
    assert!(
        script.starts_with("#!/bin/sh\nexec env -u WEFT_SERVER "),
        "{script}"
    );
    assert!(
        script.contains(&format!(
            " worker --project {} --session-id {b} --listen 127.0.0.1:0",
            dir.path().display()
        )),
        "{script}"
    );
    assert!(!script.contains("TOKEN"), "{script}");
    let (status, _) = http(&on_slurm.addr, "DELETE", &format!("/v1/sessions/{b}"), None);
    assert!(status < 300, "{status}");
    poll(
        "the session's Slurm jobs to be cancelled",
        Duration::from_secs(30),
        || {
            let jobs = session_jobs(&b);
            jobs.values().all(|(_, s, _)| s == "CANCELLED").then_some(())
        },
    );
}

#[test]
fn scancel_of_the_worker_job_mid_run_interrupts_the_run_and_the_session_recovers() {
    if !slurm_cluster("scancel_of_the_worker_job_mid_run_interrupts_the_run_and_the_session_recovers") {
        return;
    }
    let dir = project();
    let s = serve(dir.path(), "scancel", &["--launcher", "slurm"]);
    let id = session(&s.addr, json!({"max_concurrency": 1}));
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"spec": {"runtime_params": {"delay": 20000}}})),
    );
    assert!(status < 300, "{v}");
    let run_id = v["run_ids"][0].as_str().unwrap().to_string();
    poll("the run to start on Slurm", Duration::from_secs(60), || {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}"), None);
        (r["status"] == "running").then_some(())
    });
    let first = format!("weft-{id}-w0");
    let jobs = session_jobs(&id);
    let (job_id, state, _) = jobs[&first].clone();
    assert_eq!(state, "RUNNING", "{jobs:?}");
    slurm("scancel", &[&job_id]);
    let run = poll("the run to end", Duration::from_secs(30), || {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}"), None);
        (!matches!(r["status"].as_str(), Some("queued" | "running"))).then_some(r)
    });
    assert_eq!(run["status"], "interrupted", "{run}");
    poll("the job to be CANCELLED", Duration::from_secs(15), || {
        (session_jobs(&id)[&first].1 == "CANCELLED").then_some(())
    });
    // A new batch job serves the session's next runs.
    for start in [41, 9] {
        let (status, v) = http(
            &s.addr,
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
            Some(&json!({"spec": {"runtime_params": {"start": start}}})),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["runs"][0]["status"], "succeeded", "{v}");
        assert_eq!(v["runs"][0]["outputs"]["out"], start + 1, "{v}");
    }
    let jobs = session_jobs(&id);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[&format!("weft-{id}-w1")].1, "RUNNING", "{jobs:?}");
    let (_, session) = http(&s.addr, "GET", &format!("/v1/sessions/{id}"), None);
    assert!(session["closed_at"].is_null(), "{session}");
}

#[test]
fn a_new_server_of_a_session_cancels_the_job_its_crashed_server_left() {
    if !slurm_cluster("a_new_server_of_a_session_cancels_the_job_its_crashed_server_left") {
        return;
    }
    let dir = project();
    let mut first = serve(dir.path(), "adopt", &["--launcher", "slurm"]);
    let id = session(&first.addr, json!({"max_concurrency": 1}));
    let (status, v) = http(
        &first.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {}})),
    );
    assert_eq!(status, 200, "{v}");
    let jobs = session_jobs(&id);
    let (old_job, state, _) = jobs[&format!("weft-{id}-w0")].clone();
    assert_eq!(state, "RUNNING", "{jobs:?}");
    // The server dies without stopping anything: its worker job lives on.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = serve(dir.path(), "adopt", &["--launcher", "slurm"]);
    let (status, v) = http(
        &second.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {"runtime_params": {"start": 5}}})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["runs"][0]["outputs"]["out"], 6, "{v}");
    // The old job is cancelled, a new one serves the session.
    let states = poll("the old job to be cancelled", Duration::from_secs(15), || {
        let all = slurm("scontrol", &["show", "job", "-o"]);
        let states: BTreeMap<String, String> = all
            .lines()
            .filter(|l| field(l, "JobName").starts_with(&format!("weft-{id}-")))
            .map(|l| (field(l, "JobId").to_string(), field(l, "JobState").to_string()))
            .collect();
        (states.get(&old_job).map(String::as_str) == Some("CANCELLED")).then_some(states)
    });
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(
        states.values().filter(|s| *s == "RUNNING").count(),
        1,
        "{states:?}"
    );
}

/// A session on `weft serve --launcher slurm EXTRA...` that must fail:
/// (its termination reason's message, how long it took, the session id).
fn failed_session(name: &str, extra: &[&str]) -> (String, Duration, String) {
    let dir = project();
    let mut args = vec!["--launcher", "slurm", "--worker-ready-timeout-s", "60"];
    args.extend_from_slice(extra);
    let s = serve(dir.path(), name, &args);
    let started = Instant::now();
    let id = session(&s.addr, json!({"max_concurrency": 1}));
    let failed = poll("the session to fail", Duration::from_secs(90), || {
        let (_, v) = http(&s.addr, "GET", &format!("/v1/sessions/{id}"), None);
        (v["state"] == "failed").then_some(v)
    });
    let elapsed = started.elapsed();
    let reason = &failed["termination_reason"];
    assert_eq!(reason["code"], "worker_launch_failed", "{failed}");
    (
        reason["message"].as_str().unwrap_or_default().to_string(),
        elapsed,
        id,
    )
}

#[test]
fn a_job_that_can_never_start_fails_the_session_with_slurms_reason() {
    if !slurm_cluster("a_job_that_can_never_start_fails_the_session_with_slurms_reason") {
        return;
    }
    // More CPUs than the node has: Slurm takes the job and keeps it PENDING
    // (Reason=PartitionConfig, as EnforcePartLimits is off).
    let (message, elapsed, id) = failed_session("never", &["--slurm-cpus", "512"]);
    assert!(message.contains(&format!("weft-{id}-w0")), "{message}");
    assert!(
        message.contains("PENDING with reason PartitionConfig"),
        "{message}"
    );
    // Well within the 60 s ready timeout.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}: {message}");
    // The pending job does not stay behind.
    poll("the pending job to be cancelled", Duration::from_secs(15), || {
        let jobs = session_jobs(&id);
        (jobs.len() == 1 && jobs.values().all(|(_, s, _)| s == "CANCELLED")).then_some(())
    });
}

#[test]
fn a_job_sbatch_refuses_fails_the_session_with_sbatchs_error() {
    if !slurm_cluster("a_job_sbatch_refuses_fails_the_session_with_sbatchs_error") {
        return;
    }
    let (message, elapsed, id) = failed_session("refused", &["--slurm-partition", "no-such-partition"]);
    assert!(message.contains(&format!("weft-{id}-w0")), "{message}");
    assert!(message.contains("Invalid partition name specified"), "{message}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}: {message}");
    assert!(session_jobs(&id).is_empty());
}

#[test]
fn a_worker_job_that_fails_fails_the_session_with_its_state_and_output() {
    if !slurm_cluster("a_worker_job_that_fails_fails_the_session_with_its_state_and_output") {
        return;
    }
    let missing = std::env::temp_dir().join("weft-slurm-test-no-such-weft");
    let (message, _, id) = failed_session("failing", &["--worker-program", missing.to_str().unwrap()]);
    // Slurm's verdict and the job's own output (the shell's complaint).
    assert!(message.contains(&format!("weft-{id}-w0")), "{message}");
    assert!(message.contains("FAILED (exit code 127:0"), "{message}");
    assert!(message.contains("no-such-weft"), "{message}");
}

#[test]
fn multirun_on_slurm_equals_in_process() {
    if !slurm_cluster("multirun_on_slurm_equals_in_process") {
        return;
    }
    multirun_on(&["--launcher", "slurm"]);
}

#[test]
fn slurm_flags_are_checked() {
    let dir = project();
    let root = dir.path().to_str().unwrap();
    for (args, want) in [
        (vec!["--slurm-cpus", "2"], "need --launcher slurm"),
        (
            vec!["--launcher", "ray", "--slurm-partition", "p"],
            "need --launcher slurm",
        ),
        (vec!["--launcher", "slurm", "--slurm-cpus", "0"], "--slurm-cpus"),
        (
            vec!["--launcher", "slurm", "--slurm-time", "1 day"],
            "--slurm-time",
        ),
        (
            vec!["--launcher", "slurm", "--slurm-memory", "lots"],
            "--slurm-memory",
        ),
        (
            vec!["--launcher", "slurm", "--slurm-rest-url", "ftp://h:1"],
            "expected http://HOST:PORT",
        ),
        (
            vec!["--launcher", "slurm", "--slurm-rest-user", "me"],
            "--slurm-rest-url",
        ),
        (
            vec![
                "--launcher",
                "slurm",
                "--slurm-rest-url",
                "http://127.0.0.1:1",
                "--slurm-rest-user",
                "me",
                "--slurm-sbatch-arg=--qos=high",
            ],
            "--slurm-sbatch-arg cannot be used with --slurm-rest-url",
        ),
        (
            vec![
                "--launcher",
                "slurm",
                "--slurm-rest-url",
                "http://127.0.0.1:1",
                "--slurm-rest-user",
                "me",
                "--slurm-rest-token-file",
                "/nonexistent/token",
            ],
            "--slurm-rest-token-file /nonexistent/token",
        ),
    ] {
        let mut all = vec!["multirun", "--project", root, "--params", "start=1,2"];
        all.extend_from_slice(&args);
        let out = weft_command(&all).env_remove("SLURM_JWT").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `scontrol show job -o ID`'s one line.
fn job_line(job_id: &str) -> String {
    slurm("scontrol", &["show", "job", "-o", job_id])
        .trim()
        .to_string()
}

#[test]
fn a_sessions_resources_shape_its_jobs_and_impossible_ones_fail_only_that_session() {
    if !slurm_cluster("a_sessions_resources_shape_its_jobs_and_impossible_ones_fail_only_that_session") {
        return;
    }
    let dir = project();
    // The server's defaults: 2 CPUs per job, no memory or time limit.
    let s = serve(
        dir.path(),
        "resources",
        &[
            "--launcher",
            "slurm",
            "--slurm-cpus",
            "2",
            "--worker-ready-timeout-s",
            "60",
        ],
    );
    let started = Instant::now();
    let sized = session(
        &s.addr,
        json!({"max_concurrency": 1, "resources": {"cpus": 1, "memory": "100MiB", "time_limit": "5"}}),
    );
    let too_big = session(&s.addr, json!({"max_concurrency": 1, "resources": {"cpus": 64}}));
    let plain = session(&s.addr, json!({"max_concurrency": 1}));

    // The session asking for more CPUs than the node has fails with
    // Slurm's reason, well within the ready timeout...
    let failed = poll("the 64-CPU session to fail", Duration::from_secs(60), || {
        let (_, v) = http(&s.addr, "GET", &format!("/v1/sessions/{too_big}"), None);
        (v["state"] == "failed").then_some(v)
    });
    assert!(started.elapsed() < Duration::from_secs(30), "{failed}");
    let reason = &failed["termination_reason"];
    assert_eq!(reason["code"], "worker_launch_failed", "{failed}");
    let message = reason["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("weft-{too_big}-w0")), "{message}");
    assert!(
        message.contains("PENDING with reason PartitionConfig"),
        "{message}"
    );
    assert_eq!(failed["resources"]["cpus"], 64, "{failed}");

    // ... while the other two serve runs, each on a job of its own shape.
    for (id, start) in [(&sized, 3), (&plain, 7)] {
        let (status, v) = http(
            &s.addr,
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
            Some(&json!({"spec": {"runtime_params": {"start": start}}})),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["runs"][0]["status"], "succeeded", "{v}");
        assert_eq!(v["runs"][0]["outputs"]["out"], start + 1, "{v}");
    }
    let job = |id: &str| {
        let jobs = session_jobs(id);
        let (job_id, state, _) = jobs[&format!("weft-{id}-w0")].clone();
        assert_eq!(state, "RUNNING", "{jobs:?}");
        job_line(&job_id)
    };
    let line = job(&sized);
    assert_eq!(field(&line, "NumCPUs"), "1", "{line}");
    assert_eq!(field(&line, "CPUs/Task"), "1", "{line}");
    assert_eq!(field(&line, "MinMemoryNode"), "100M", "{line}");
    assert_eq!(field(&line, "TimeLimit"), "00:05:00", "{line}");
    let line = job(&plain);
    assert_eq!(field(&line, "CPUs/Task"), "2", "the server's default: {line}");
    assert_eq!(field(&line, "TimeLimit"), "UNLIMITED", "{line}");
    let (_, v) = http(&s.addr, "GET", &format!("/v1/sessions/{sized}"), None);
    assert_eq!(
        v["resources"],
        json!({"partition": null, "account": null, "time_limit": "5", "cpus": 1, "memory": 104_857_600u64, "gpus": null}),
        "{v}"
    );
    // The pending 64-CPU job does not stay behind.
    poll("the pending job to be cancelled", Duration::from_secs(15), || {
        let jobs = session_jobs(&too_big);
        (jobs.len() == 1 && jobs.values().all(|(_, s, _)| s == "CANCELLED")).then_some(())
    });
}

/// slurmrestd as scripts/with-slurm.sh started it: (URL, user, token file).
fn slurmrestd(test: &str) -> (String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{test}: {name} is not set, so no slurmrestd is running; run the Slurm tests \
                 through scripts/with-slurm.sh (scripts/test.sh does)"
            )
        })
    };
    (
        var("WEFT_SLURM_REST_URL"),
        var("WEFT_SLURM_REST_USER"),
        var("WEFT_SLURM_REST_TOKEN_FILE"),
    )
}

/// `--launcher slurm` through slurmrestd, with the Slurm commands out of
/// reach (`--slurm-bin-dir` names no folder): every call goes through REST.
fn rest_flags(test: &str) -> Vec<String> {
    let (url, user, token_file) = slurmrestd(test);
    [
        "--launcher",
        "slurm",
        "--slurm-rest-url",
        &url,
        "--slurm-rest-user",
        &user,
        "--slurm-rest-token-file",
        &token_file,
        "--slurm-bin-dir",
        "/nonexistent/weft-test/no-slurm-commands",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `DELETE /slurm/v0.0.38/job/{id}` on slurmrestd, as a user would cancel a job.
fn rest_cancel(test: &str, job_id: &str) {
    let (url, user, token_file) = slurmrestd(test);
    let token = std::fs::read_to_string(token_file).unwrap();
    let response = ureq::delete(&format!("{url}/slurm/v0.0.38/job/{job_id}"))
        .header("X-SLURM-USER-NAME", &user)
        .header("X-SLURM-USER-TOKEN", token.trim())
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[test]
fn a_20_run_sweep_through_slurmrestd_equals_the_same_sweep_in_process() {
    let test = "a_20_run_sweep_through_slurmrestd_equals_the_same_sweep_in_process";
    if !slurm_cluster(test) {
        return;
    }
    let dir = project();
    let in_process = serve(dir.path(), "inproc", &[]);
    let a = session(&in_process.addr, json!({"max_concurrency": 2}));
    let expected = sweep(&in_process.addr, &a);
    assert!(
        expected.values().all(|(s, _, _)| s == "succeeded"),
        "{expected:?}"
    );
    let flags = rest_flags(test);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let on_rest = serve(dir.path(), "rest", &flags);
    let b = session(
        &on_rest.addr,
        json!({"max_concurrency": 2, "resources": {"cpus": 1, "memory": "100MiB", "time_limit": "5"}}),
    );
    assert_eq!(sweep(&on_rest.addr, &b), expected);
    let jobs = session_jobs(&b);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(jobs.values().all(|(_, s, _)| s == "RUNNING"), "{jobs:?}");
    // The session's resources reached the jobs through REST too.
    let line = job_line(&jobs[&format!("weft-{b}-w0")].0);
    assert_eq!(field(&line, "CPUs/Task"), "1", "{line}");
    assert_eq!(field(&line, "MinMemoryNode"), "100M", "{line}");
    assert_eq!(field(&line, "TimeLimit"), "00:05:00", "{line}");
    let script = slurm(
        "scontrol",
        &["write", "batch_script", &jobs[&format!("weft-{b}-w0")].0, "-"],
    );
    assert!(!script.contains("TOKEN"), "{script}");
    let (status, _) = http(&on_rest.addr, "DELETE", &format!("/v1/sessions/{b}"), None);
    assert!(status < 300, "{status}");
    poll(
        "the session's Slurm jobs to be cancelled through REST",
        Duration::from_secs(30),
        || {
            let jobs = session_jobs(&b);
            jobs.values().all(|(_, s, _)| s == "CANCELLED").then_some(())
        },
    );
}

#[test]
fn a_worker_job_cancelled_through_slurmrestd_interrupts_its_run_and_the_session_recovers() {
    let test = "a_worker_job_cancelled_through_slurmrestd_interrupts_its_run_and_the_session_recovers";
    if !slurm_cluster(test) {
        return;
    }
    let dir = project();
    let flags = rest_flags(test);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = serve(dir.path(), "rest-cancel", &flags);
    let id = session(&s.addr, json!({"max_concurrency": 1}));
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs"),
        Some(&json!({"spec": {"runtime_params": {"delay": 20000}}})),
    );
    assert!(status < 300, "{v}");
    let run_id = v["run_ids"][0].as_str().unwrap().to_string();
    poll("the run to start on Slurm", Duration::from_secs(60), || {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}"), None);
        (r["status"] == "running").then_some(())
    });
    let first = format!("weft-{id}-w0");
    let (job_id, state, _) = session_jobs(&id)[&first].clone();
    assert_eq!(state, "RUNNING");
    rest_cancel(test, &job_id);
    let run = poll("the run to end", Duration::from_secs(30), || {
        let (_, r) = http(&s.addr, "GET", &format!("/v1/runs/{run_id}"), None);
        (!matches!(r["status"].as_str(), Some("queued" | "running"))).then_some(r)
    });
    assert_eq!(run["status"], "interrupted", "{run}");
    let (status, v) = http(
        &s.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {"runtime_params": {"start": 41}}})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["runs"][0]["outputs"]["out"], 42, "{v}");
    let jobs = session_jobs(&id);
    assert_eq!(jobs[&first].1, "CANCELLED", "{jobs:?}");
    assert_eq!(jobs[&format!("weft-{id}-w1")].1, "RUNNING", "{jobs:?}");
}

#[test]
fn a_job_slurmrestd_refuses_fails_the_session_with_slurms_error() {
    let test = "a_job_slurmrestd_refuses_fails_the_session_with_slurms_error";
    if !slurm_cluster(test) {
        return;
    }
    let flags = rest_flags(test);
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.extend(["--slurm-partition", "no-such-partition"]);
    let (message, elapsed, id) = failed_session("rest-refused", &flags[2..]);
    assert!(message.contains(&format!("weft-{id}-w0")), "{message}");
    assert!(message.contains("slurmrestd"), "{message}");
    assert!(message.contains("Invalid partition name specified"), "{message}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}: {message}");
}
