//! `--launcher kubernetes` end to end against a fake API server that
//! acts as a kubelet (`../../weft-k8s/tests/common/fake_api.rs`): each
//! created Pod's command (`weft worker ...`, with the Pod's env: its token
//! from its Secret, `$(POD_IP)` a loopback address of its own) really runs
//! as a child process, and the Pod's phase follows it. `weft multirun
//! --launcher kubernetes` equals the in-process results; through `weft
//! serve`, an evicted worker Pod is replaced by a new one and the runs go
//! on; terminating the session deletes every object; `weft k8s reconcile`
//! closes a session whose worker objects are gone and deletes orphans
//! through a real `weft serve`; `weft k8s manifests` and the `--k8s-*`
//! flags are checked. No real cluster runs here.

mod support;

#[path = "../../weft-k8s/tests/common/fake_api.rs"]
mod fake_api;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use serde_json::{Value, json};
use support::{http, multirun_on, poll, project, serve, session, weft_command};

const NS: &str = "weft-e2e";

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

/// A free TCP port on loopback (workers listen on it at their own IPs).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `--launcher kubernetes` flags for `fake`.
fn k8s_flags(fake: &FakeApi, port: &str) -> Vec<String> {
    [
        "--launcher",
        "kubernetes",
        "--k8s-api-url",
        &fake.url,
        "--k8s-namespace",
        NS,
        "--k8s-image",
        "registry.local/weft:test",
        "--k8s-cpu",
        "500m",
        "--k8s-memory",
        "512Mi",
        "--k8s-port",
        port,
        "--worker-program",
        env!("CARGO_BIN_EXE_weft"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn pod_creates(fake: &FakeApi) -> usize {
    fake.calls().iter().filter(|c| *c == "POST pods").count()
}

#[test]
fn multirun_through_kubernetes_pods_equals_in_process() {
    let fake = FakeApi::with_kubelet(Vec::new());
    let port = free_port().to_string();
    let flags = k8s_flags(&fake, &port);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    multirun_on(&flags);
    // --max-workers 2: two worker Pods, each with its Secret and Service,
    // all deleted when the session ended.
    assert_eq!(pod_creates(&fake), 2, "{:?}", fake.calls());
    let calls = fake.calls();
    for kind in ["secrets", "services", "pods"] {
        assert_eq!(
            calls.iter().filter(|c| **c == format!("POST {kind}")).count(),
            2,
            "{calls:?}"
        );
        assert_eq!(
            calls
                .iter()
                .filter(|c| c.starts_with(&format!("DELETE {kind}/")))
                .count(),
            2,
            "{calls:?}"
        );
    }
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("DELETE configmaps/weft-session-")),
        "{calls:?}"
    );
    assert_eq!(
        fake.count(),
        0,
        "{:?}",
        fake.lock().objects.keys().collect::<Vec<_>>()
    );
}

#[test]
fn an_evicted_worker_pod_is_replaced_and_termination_deletes_everything() {
    let fake = FakeApi::with_kubelet(Vec::new());
    let dir = project();
    let port = free_port().to_string();
    let flags = k8s_flags(&fake, &port);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let in_process = serve(dir.path(), "inproc", &[]);
    let a = session(&in_process.addr, json!({"max_concurrency": 1}));
    let expected = sweep(&in_process.addr, &a);
    assert!(
        expected.values().all(|(s, _, _)| s == "succeeded"),
        "{expected:?}"
    );

    let server = serve(dir.path(), "k8s", &flags);
    let b = session(&server.addr, json!({"max_concurrency": 1}));
    assert_eq!(sweep(&server.addr, &b), expected);
    assert_eq!(pod_creates(&fake), 1);
    let pods = fake.objects("pods");
    let (first, pod) = pods.iter().next().unwrap();
    assert_eq!(pod["metadata"]["annotations"]["weft.dev/session-id"], b.as_str());
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["limits"],
        json!({"cpu": "500m", "memory": "512Mi"})
    );

    // The node evicts the worker (its process is killed, the Pod Failed).
    fake.set_pod_status(
        first,
        json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
    );
    // The master reads a worker's Pod at most every 200 ms: past that it
    // sees the Pod ended, and the next run starts a new one; the runs go on.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(sweep(&server.addr, &b), expected);
    assert_eq!(pod_creates(&fake), 2, "{:?}", fake.calls());
    let calls = fake.calls();
    assert!(calls.contains(&format!("DELETE pods/{first}")), "{calls:?}");
    let pods = fake.objects("pods");
    assert_eq!(pods.len(), 1);
    assert_ne!(pods.keys().next().unwrap(), first);

    let (status, _) = http(&server.addr, "DELETE", &format!("/v1/sessions/{b}"), None);
    assert!(status < 300, "{status}");
    poll(
        "the session's objects to be deleted",
        Duration::from_secs(30),
        || (fake.count() == 0).then_some(()),
    );
}

fn k8s_object(kind: &str, api: &str, name: &str, session: &str) -> Value {
    json!({
        "apiVersion": api, "kind": kind,
        "metadata": {
            "name": name, "namespace": NS, "uid": format!("u-{name}"),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "weft", "weft.dev/session": session},
            "annotations": {"weft.dev/session-id": session},
        },
    })
}

#[test]
fn reconcile_closes_a_session_without_workers_and_deletes_orphans() {
    let fake = FakeApi::start(None);
    let dir = project();
    let server = serve(dir.path(), "reconcile", &[]);
    let live = session(&server.addr, json!({}));
    let gone = session(&server.addr, json!({}));
    // `live` has a worker Pod; `gone` only its root (its Pod vanished);
    // `ghost` is no session of this server.
    for (s, pod) in [(&live, true), (&gone, false), (&"ghost".to_string(), true)] {
        let root = format!("weft-session-{s}");
        fake.insert(NS, "configmaps", k8s_object("ConfigMap", "v1", &root, s));
        if pod {
            fake.insert(NS, "pods", k8s_object("Pod", "v1", &format!("weft-{s}-1"), s));
        }
    }
    let url = format!("http://{}", server.addr);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "k8s",
            "reconcile",
            "--server",
            &url,
            "--k8s-api-url",
            &fake.url,
            "--k8s-namespace",
            NS,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = weft_command(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let planned = run(&["--dry-run"]);
    assert_eq!(fake.count(), 5, "a dry run deletes nothing");
    let report = run(&[]);
    assert_eq!(report["closed"], planned["closed"]);
    assert_eq!(report["deleted"], planned["deleted"]);
    assert_eq!(
        report["closed"],
        json!([{"session_id": gone, "reason": "worker objects missing: its root ConfigMap has no worker Pod"}])
    );
    let mut deleted: Vec<String> = report["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            format!("ConfigMap/weft-session-{gone}"),
            "ConfigMap/weft-session-ghost".to_string(),
            "Pod/weft-ghost-1".to_string(),
        ]
    );
    let (_, s) = http(&server.addr, "GET", &format!("/v1/sessions/{gone}"), None);
    assert!(s["state"] == "closed" || s["state"] == "draining", "{s}");
    let (_, s) = http(&server.addr, "GET", &format!("/v1/sessions/{live}"), None);
    assert_eq!(s["state"], "ready", "{s}");
    assert_eq!(fake.count(), 2);
    // Stale past --stale-after: closed too.
    std::thread::sleep(Duration::from_millis(1100));
    let report = run(&["--stale-after", "1s"]);
    assert_eq!(report["closed"][0]["session_id"], live.as_str(), "{report}");
    assert!(
        report["closed"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("stale"),
        "{report}"
    );
    assert_eq!(fake.count(), 0);
}

#[test]
fn manifests_print_the_static_objects() {
    let out = weft_command(&[
        "k8s",
        "manifests",
        "--namespace",
        "data",
        "--image",
        "acme/weft:2",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    let kinds: Vec<&str> = yaml.lines().filter_map(|l| l.strip_prefix("kind: ")).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "CronJob"
        ]
    );
    assert_eq!(yaml.matches("namespace: data").count(), 7, "{yaml}");
    assert!(yaml.contains("acme/weft:2"));
    let out = weft_command(&["k8s", "manifests", "--namespace", "Bad_NS"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--namespace"));
}

#[test]
fn k8s_flags_are_checked() {
    let dir = project();
    let root = dir.path().to_str().unwrap();
    for (args, want) in [
        (vec!["--k8s-image", "x"], "need --launcher kubernetes"),
        (vec!["--launcher", "kubernetes"], "--k8s-image"),
        (
            vec![
                "--launcher",
                "kubernetes",
                "--k8s-image",
                "x",
                "--k8s-cpu",
                "fast",
            ],
            "--k8s-cpu",
        ),
        (
            vec![
                "--launcher",
                "kubernetes",
                "--k8s-image",
                "x",
                "--k8s-namespace",
                "NS!",
            ],
            "--k8s-namespace",
        ),
        (
            vec![
                "--launcher",
                "kubernetes",
                "--k8s-image",
                "x",
                "--k8s-api-url",
                "localhost:1",
            ],
            "--k8s-api-url",
        ),
    ] {
        let mut all = vec!["multirun", "--project", root, "--params", "start=1,2"];
        all.extend_from_slice(&args);
        let out = weft_command(&all).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A session on `weft serve --launcher kubernetes` over `fake` that must
/// fail: its termination reason (code, message).
fn failed_session(fake: &FakeApi, name: &str, timeout_s: &str) -> (String, String) {
    let dir = project();
    let port = free_port().to_string();
    let mut flags = k8s_flags(fake, &port);
    flags.extend(["--worker-ready-timeout-s".to_string(), timeout_s.to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = serve(dir.path(), name, &flags);
    let id = session(&s.addr, json!({"max_concurrency": 1}));
    let failed = poll("the session to fail", Duration::from_secs(30), || {
        let (_, v) = http(&s.addr, "GET", &format!("/v1/sessions/{id}"), None);
        (v["state"] == "failed").then_some(v)
    });
    let reason = &failed["termination_reason"];
    (
        reason["code"].as_str().unwrap_or_default().to_string(),
        reason["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_pod_that_stays_pending_fails_the_session_within_the_ready_timeout() {
    // No kubelet and no IP: the Pod stays Pending (unschedulable).
    let fake = FakeApi::start(None);
    let started = Instant::now();
    let (code, message) = failed_session(&fake, "pending", "1");
    assert_eq!(code, "worker_healthz_timeout", "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(message.contains("Pod weft-"), "{message}");
    poll(
        "the Pending Pod's objects to be deleted",
        Duration::from_secs(10),
        || (fake.count() == 0).then_some(()),
    );
}

#[test]
fn a_create_the_api_refuses_fails_the_session_with_the_apis_message() {
    let fake = FakeApi::with_kubelet(Vec::new());
    fake.lock().forbidden.push("pods".into());
    let (code, message) = failed_session(&fake, "refused", "10");
    assert_eq!(code, "worker_launch_failed", "{message}");
    assert!(message.contains("create Pod `weft-"), "{message}");
    assert!(message.contains("forbidden"), "{message}");
    assert_eq!(fake.count(), 0, "{:?}", fake.calls());
}

#[test]
fn serve_can_run_the_reconcile_pass_itself() {
    let fake = FakeApi::with_kubelet(Vec::new());
    let dir = project();
    fake.insert(
        NS,
        "configmaps",
        k8s_object("ConfigMap", "v1", "weft-session-ghost", "ghost"),
    );
    fake.insert(NS, "pods", k8s_object("Pod", "v1", "weft-ghost-1", "ghost"));
    let port = free_port().to_string();
    let mut flags = k8s_flags(&fake, &port);
    flags.extend(["--k8s-reconcile-every-s".to_string(), "1".to_string()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = serve(dir.path(), "timer", &flags);
    let id = session(&server.addr, json!({"max_concurrency": 1}));
    poll("the orphans to be deleted", Duration::from_secs(15), || {
        let left = fake.objects("pods");
        (!left.contains_key("weft-ghost-1") && !fake.objects("configmaps").contains_key("weft-session-ghost"))
            .then_some(())
    });
    // The live session's worker is left alone, and still serves runs.
    let (status, v) = http(
        &server.addr,
        "POST",
        &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
        Some(&json!({"spec": {}})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(fake.objects("pods").len(), 1);
    let roots = fake.objects("configmaps");
    assert_eq!(roots.len(), 1, "{:?}", roots.keys());
    assert!(
        roots
            .values()
            .all(|r| r["metadata"]["annotations"]["weft.dev/session-id"] == id.as_str()),
        "{roots:?}"
    );
    let out = weft_command(&[
        "serve",
        "--project",
        dir.path().to_str().unwrap(),
        "--k8s-reconcile-every-s",
        "1",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --launcher kubernetes"));
}

#[test]
fn a_sessions_resources_replace_the_servers_in_its_worker_pods() {
    let fake = FakeApi::with_kubelet(Vec::new());
    let dir = project();
    let port = free_port().to_string();
    let flags = k8s_flags(&fake, &port);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = serve(dir.path(), "k8s-resources", &flags);
    let sized = session(
        &server.addr,
        json!({"max_concurrency": 1, "resources": {"cpus": 2, "memory": "1GiB", "time_limit": "1:00:00", "gpus": 1}}),
    );
    let plain = session(&server.addr, json!({"max_concurrency": 1}));
    for (id, start) in [(&sized, 4), (&plain, 8)] {
        let (status, v) = http(
            &server.addr,
            "POST",
            &format!("/v1/sessions/{id}/runs?wait=true&timeout_s=60"),
            Some(&json!({"spec": {"runtime_params": {"start": start}}})),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["runs"][0]["outputs"]["out"], start + 1, "{v}");
    }
    let pods = fake.objects("pods");
    let pod_of = |id: &str| {
        pods.values()
            .find(|p| p["metadata"]["annotations"]["weft.dev/session-id"] == id)
            .unwrap_or_else(|| panic!("no Pod for session {id}: {pods:?}"))
    };
    let sized_pod = pod_of(&sized);
    let want = json!({"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"});
    assert_eq!(sized_pod["spec"]["containers"][0]["resources"]["requests"], want);
    assert_eq!(sized_pod["spec"]["containers"][0]["resources"]["limits"], want);
    assert_eq!(sized_pod["spec"]["activeDeadlineSeconds"], 3600);
    let plain_pod = pod_of(&plain);
    assert_eq!(
        plain_pod["spec"]["containers"][0]["resources"]["limits"],
        json!({"cpu": "500m", "memory": "512Mi"}),
        "the server's flags"
    );
    assert!(
        plain_pod["spec"].get("activeDeadlineSeconds").is_none(),
        "{plain_pod}"
    );
}
