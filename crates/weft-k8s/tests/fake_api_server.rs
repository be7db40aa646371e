//! The Kubernetes launcher and reconcile against a fake API server (axum
//! on 127.0.0.1, see `common/fake_api.rs`): the exact objects created for
//! a worker, the deletes on termination, a failed or evicted Pod seen as an
//! exited worker, a refused create cleaned up, and reconcile of stale
//! sessions and orphans.

mod common;

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use serde_json::{Value, json};
use weft_k8s::{
    Cluster, ClusterAccess, K8sError, KubernetesLauncher, KubernetesOptions, PodTemplate, ReconcileOptions,
    SessionInfo, Sessions, reconcile,
};
use weft_server::{LaunchError, Launcher, SessionResources, SessionState, WorkerLimits, WorkerRequest};

const NS: &str = "weft-test";

fn request(session: &str, token: &str) -> WorkerRequest {
    WorkerRequest {
        session_id: session.into(),
        project: PathBuf::from("/srv/project"),
        env: Some("prod".into()),
        max_runs: Some(5),
        token: token.into(),
        limits: WorkerLimits::default(),
        resources: SessionResources::default(),
    }
}

fn launcher(fake: &FakeApi) -> KubernetesLauncher {
    let mut t = PodTemplate::new(NS, "registry.local/weft:1");
    t.cpu = Some("250m".into());
    t.memory = Some("256Mi".into());
    t.service_account = Some("runner".into());
    let mut o = KubernetesOptions::new(ClusterAccess::Url(fake.url.clone()), t);
    o.poll_interval = Duration::from_millis(20);
    KubernetesLauncher::new(o).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[test]
fn a_worker_is_a_secret_a_service_and_a_pod_owned_by_the_sessions_root() {
    let fake = FakeApi::start(Some("10.20.30.40"));
    let launcher = launcher(&fake);
    let mut handle = launcher.launch(&request("s1", "tok-123")).unwrap();
    assert_eq!(
        fake.calls(),
        [
            // The session's first worker here: workers left by an earlier
            // server are looked for first.
            "GET pods",
            "GET services",
            "GET secrets",
            "POST configmaps",
            "POST networkpolicies",
            "POST secrets",
            "POST services",
            "POST pods"
        ]
    );
    let roots = fake.objects("configmaps");
    let root = &roots["weft-session-s1"];
    let uid = root["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        root["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "weft", "weft.dev/session": "s1"})
    );
    assert_eq!(root["data"], json!({"session_id": "s1"}));
    assert!(root["metadata"]["ownerReferences"].is_null());
    let owner = json!([{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "weft-session-s1", "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);

    let policies = fake.objects("networkpolicies");
    let np = &policies["weft-session-s1"];
    assert_eq!(np["metadata"]["ownerReferences"], owner);
    assert_eq!(
        np["spec"],
        json!({
            "podSelector": {"matchLabels": {"weft.dev/session": "s1"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "weft-serve"}}}],
                "ports": [{"protocol": "TCP", "port": 8080}],
            }],
        })
    );

    let pods = fake.objects("pods");
    assert_eq!(pods.len(), 1);
    let (name, pod) = pods.iter().next().unwrap();
    assert!(
        name.starts_with("weft-s1-") && name.len() == "weft-s1-".len() + 8,
        "{name}"
    );
    let labels = json!({
        "app.kubernetes.io/managed-by": "weft", "app.kubernetes.io/name": "weft-worker",
        "weft.dev/session": "s1", "weft.dev/worker": name,
    });
    assert_eq!(pod["metadata"]["labels"], labels);
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({"weft.dev/session-id": "s1"})
    );
    assert_eq!(pod["metadata"]["ownerReferences"], owner);
    assert_eq!(pod["metadata"]["namespace"], NS);
    assert_eq!(
        pod["spec"],
        json!({
            "restartPolicy": "Never",
            "serviceAccountName": "runner",
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "worker",
                "image": "registry.local/weft:1",
                "command": ["weft"],
                "args": ["worker", "--project", "/srv/project", "--session-id", "s1",
                         "--listen", "$(POD_IP):8080", "--env", "prod", "--max-runs", "5"],
                "env": [
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "WEFT_TOKEN", "valueFrom": {"secretKeyRef": {"name": name, "key": "token", "optional": false}}},
                ],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "250m", "memory": "256Mi"},
                },
            }],
        })
    );
    let posted_pod = fake.lock().requests[7].body.to_string();
    assert!(
        !posted_pod.contains("tok-123"),
        "the token never travels in the Pod"
    );

    let secrets = fake.objects("secrets");
    let secret = &secrets[name];
    assert_eq!(secret["stringData"], json!({"token": "tok-123"}));
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["metadata"]["labels"], labels);
    assert_eq!(secret["metadata"]["ownerReferences"], owner);

    let services = fake.objects("services");
    let svc = &services[name];
    assert_eq!(svc["metadata"]["ownerReferences"], owner);
    assert_eq!(
        svc["spec"],
        json!({
            "selector": {"weft.dev/worker": name},
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}],
        })
    );

    let process = handle.process();
    assert_eq!(process.address(soon()).unwrap(), "http://10.20.30.40:8080");
    assert_eq!(process.exited(), None);
    assert_eq!(process.describe(), format!("Pod {name}"));

    fake.clear_requests();
    drop(handle);
    assert_eq!(
        fake.calls(),
        [
            format!("DELETE pods/{name}"),
            format!("DELETE services/{name}"),
            format!("DELETE secrets/{name}"),
            "DELETE networkpolicies/weft-session-s1".to_string(),
            "DELETE configmaps/weft-session-s1".to_string(),
        ]
    );
    assert_eq!(fake.count(), 0, "termination leaves nothing behind");
}

#[test]
fn workers_of_a_session_share_its_root_and_the_last_one_removes_it() {
    let fake = FakeApi::start(Some("10.0.0.9"));
    let launcher = launcher(&fake);
    let a = launcher.launch(&request("s2", "a")).unwrap();
    let b = launcher.launch(&request("s2", "b")).unwrap();
    assert_eq!(fake.objects("configmaps").len(), 1);
    assert_eq!(fake.objects("networkpolicies").len(), 1);
    assert_eq!(fake.objects("pods").len(), 2);
    let uid = fake.objects("configmaps")["weft-session-s2"]["metadata"]["uid"].clone();
    for pod in fake.objects("pods").values() {
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], uid);
    }
    // The second launch found the root there (409) and read it.
    let calls = fake.calls();
    assert_eq!(
        calls[8..10],
        ["POST configmaps", "GET configmaps/weft-session-s2"]
    );
    let tokens: Vec<Value> = fake
        .objects("secrets")
        .values()
        .map(|s| s["stringData"]["token"].clone())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.contains(&json!("a")) && tokens.contains(&json!("b")));
    drop(a);
    assert_eq!(fake.objects("pods").len(), 1);
    assert_eq!(
        fake.objects("configmaps").len(),
        1,
        "one worker left: the root stays"
    );
    drop(b);
    assert_eq!(fake.count(), 0);
}

#[test]
fn workers_left_by_an_earlier_server_are_deleted_at_the_sessions_first_launch() {
    let fake = FakeApi::start(Some("10.0.0.3"));
    let labels = json!({"app.kubernetes.io/managed-by": "weft", "weft.dev/session": "s6"});
    for (resource, kind) in [("pods", "Pod"), ("services", "Service"), ("secrets", "Secret")] {
        for (name, session) in [("weft-s6-old", "s6"), ("weft-s6-other", "S6")] {
            fake.insert(
                NS,
                resource,
                json!({"apiVersion": "v1", "kind": kind, "metadata": {
                    "name": name, "namespace": NS, "uid": format!("u-{name}"), "labels": labels,
                    "annotations": {"weft.dev/session-id": session},
                }}),
            );
        }
    }
    let launcher = launcher(&fake);
    let handle = launcher.launch(&request("s6", "t")).unwrap();
    let pods = fake.objects("pods");
    assert!(!pods.contains_key("weft-s6-old"), "{:?}", pods.keys());
    // Another session's (same label, other id) is not touched.
    assert!(pods.contains_key("weft-s6-other"));
    assert_eq!(pods.len(), 2);
    assert!(!fake.objects("services").contains_key("weft-s6-old"));
    assert!(!fake.objects("secrets").contains_key("weft-s6-old"));
    assert_eq!(
        fake.calls()[..6],
        [
            "GET pods",
            "DELETE pods/weft-s6-old",
            "GET services",
            "DELETE services/weft-s6-old",
            "GET secrets",
            "DELETE secrets/weft-s6-old"
        ]
    );
    let lists: Vec<String> = fake
        .lock()
        .requests
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(lists.len(), 3);
    for q in lists {
        assert!(
            q.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dweft%2Cweft.dev%2Fsession%3Ds6"),
            "{q}"
        );
    }
    drop(handle);
}

#[test]
fn a_failed_evicted_or_deleted_pod_is_an_exited_worker() {
    let fake = FakeApi::start(Some("10.0.0.1"));
    let launcher = launcher(&fake);
    let mut handle = launcher.launch(&request("s3", "t")).unwrap();
    let name = fake.objects("pods").keys().next().unwrap().clone();
    assert_eq!(handle.process().exited(), None);
    fake.set_pod_status(
        &name,
        json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
    );
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        handle.process().exited(),
        Some(format!(
            "Pod {name} failed: Evicted; The node was low on resource: memory."
        ))
    );
    drop(handle);

    let mut handle = launcher.launch(&request("s3", "t")).unwrap();
    let name = fake.objects("pods").keys().next().unwrap().clone();
    fake.set_pod_status(
        &name,
        json!({"phase": "Failed", "containerStatuses": [{"name": "worker", "ready": false, "restartCount": 0,
            "image": "", "imageID": "", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
    );
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        handle.process().exited(),
        Some(format!(
            "Pod {name} failed: container worker exited with code 137 (OOMKilled)"
        ))
    );
    drop(handle);

    let mut handle = launcher.launch(&request("s3", "t")).unwrap();
    let name = fake.objects("pods").keys().next().unwrap().clone();
    fake.remove("pods", &name);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        handle.process().exited(),
        Some(format!("Pod {name} no longer exists"))
    );
    // A worker that ended before it ever ran says so from address().
    let err = handle.process().address(soon()).unwrap_err();
    assert!(matches!(err, LaunchError::Exited { .. }), "{err}");
    drop(handle);
    assert_eq!(fake.count(), 0);
}

#[test]
fn a_pod_that_never_runs_announces_no_address_in_time() {
    let fake = FakeApi::start(None);
    let launcher = launcher(&fake);
    let mut handle = launcher.launch(&request("s4", "t")).unwrap();
    let started = Instant::now();
    let err = handle
        .process()
        .address(Instant::now() + Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, LaunchError::Silent { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_refused_create_fails_the_launch_and_removes_what_was_made() {
    let fake = FakeApi::start(Some("10.0.0.1"));
    fake.lock().forbidden.push("pods".into());
    let launcher = launcher(&fake);
    let err = launcher.launch(&request("s5", "t")).err().unwrap();
    let LaunchError::Refused(message) = &err else {
        panic!("{err}")
    };
    assert!(message.contains("create Pod `weft-s5-"), "{message}");
    assert!(message.contains(NS) && message.contains("forbidden"), "{message}");
    assert_eq!(fake.count(), 0, "{:?}", fake.calls());
}

#[test]
fn bad_options_are_refused_before_any_call() {
    let fake = FakeApi::start(None);
    let mut t = PodTemplate::new(NS, "img");
    t.cpu = Some("lots".into());
    let err =
        KubernetesLauncher::new(KubernetesOptions::new(ClusterAccess::Url(fake.url.clone()), t)).unwrap_err();
    assert!(
        matches!(
            err,
            K8sError::Invalid {
                field: "--k8s-cpu",
                ..
            }
        ),
        "{err}"
    );
    assert!(fake.calls().is_empty());
}

/// Sessions as a test lists them; records what reconcile closes.
struct Listed {
    sessions: Vec<SessionInfo>,
    closed: RefCell<Vec<String>>,
}

impl Sessions for Listed {
    fn list(&self) -> Result<Vec<SessionInfo>, K8sError> {
        Ok(self.sessions.clone())
    }
    fn close(&self, id: &str) -> Result<(), K8sError> {
        self.closed.borrow_mut().push(id.to_string());
        Ok(())
    }
}

fn object(kind: &str, api: &str, name: &str, session: &str, created: &str) -> Value {
    json!({
        "apiVersion": api, "kind": kind,
        "metadata": {
            "name": name, "namespace": NS, "uid": format!("u-{name}"), "creationTimestamp": created,
            "labels": {"app.kubernetes.io/managed-by": "weft", "weft.dev/session": session},
            "annotations": {"weft.dev/session-id": session},
        },
    })
}

fn seed(fake: &FakeApi, session: &str, with_pod: bool, created: &str) {
    let root = format!("weft-session-{session}");
    fake.insert(
        NS,
        "configmaps",
        object("ConfigMap", "v1", &root, session, created),
    );
    fake.insert(
        NS,
        "networkpolicies",
        object("NetworkPolicy", "networking.k8s.io/v1", &root, session, created),
    );
    if with_pod {
        let w = format!("weft-{session}-00000001");
        fake.insert(NS, "pods", object("Pod", "v1", &w, session, created));
        fake.insert(NS, "services", object("Service", "v1", &w, session, created));
        fake.insert(NS, "secrets", object("Secret", "v1", &w, session, created));
    }
}

#[test]
fn reconcile_closes_stale_and_workerless_sessions_and_deletes_orphans() {
    let fake = FakeApi::start(None);
    let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
    let ten_min_ago = "2026-12-02T11:50:00Z";
    let just_now = "2026-12-02T11:59:50Z";
    seed(&fake, "live", true, ten_min_ago);
    seed(&fake, "stale", true, ten_min_ago);
    seed(&fake, "workerless", false, ten_min_ago);
    seed(&fake, "starting", false, just_now);
    seed(&fake, "closed", true, ten_min_ago);
    seed(&fake, "unknown", true, ten_min_ago);
    // Not weft's: never touched.
    fake.insert(
        NS,
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": NS, "uid": "x"}}),
    );
    let info = |id: &str, state: SessionState, beat: &str| SessionInfo {
        id: id.into(),
        state,
        last_heartbeat_at: beat.parse().unwrap(),
    };
    let sessions = Listed {
        sessions: vec![
            info("live", SessionState::Ready, "2026-12-02T11:00:00Z"),
            info("stale", SessionState::Idle, "2026-11-30T11:00:00Z"),
            info("workerless", SessionState::Ready, "2026-12-02T11:55:00Z"),
            info("starting", SessionState::Pending, "2026-12-02T11:59:50Z"),
            info("closed", SessionState::Closed, "2026-12-02T11:00:00Z"),
        ],
        closed: RefCell::new(Vec::new()),
    };
    let cluster = Cluster::connect(&ClusterAccess::Url(fake.url.clone()), NS).unwrap();

    let dry = ReconcileOptions {
        dry_run: true,
        ..ReconcileOptions::default()
    };
    let planned = reconcile(&cluster, &sessions, &dry, now).unwrap();
    assert!(sessions.closed.borrow().is_empty());
    assert!(
        fake.calls().iter().all(|c| c.starts_with("GET ")),
        "{:?}",
        fake.calls()
    );

    let report = reconcile(&cluster, &sessions, &ReconcileOptions::default(), now).unwrap();
    assert_eq!(report, planned);
    assert_eq!(*sessions.closed.borrow(), ["stale", "workerless"]);
    assert_eq!(report.closed[0].0, "stale");
    assert!(
        report.closed[0].1.starts_with("stale: no heartbeat for 176400s"),
        "{:?}",
        report.closed
    );
    assert_eq!(report.closed[1].0, "workerless");
    assert!(report.closed[1].1.contains("worker objects missing"));
    let mut deleted = report.deleted.clone();
    deleted.sort();
    let mut want = Vec::new();
    for s in ["closed", "stale", "unknown"] {
        for kind in ["ConfigMap", "NetworkPolicy"] {
            want.push(format!("{kind}/weft-session-{s}"));
        }
        for kind in ["Pod", "Service", "Secret"] {
            want.push(format!("{kind}/weft-{s}-00000001"));
        }
    }
    want.push("ConfigMap/weft-session-workerless".into());
    want.push("NetworkPolicy/weft-session-workerless".into());
    want.sort();
    assert_eq!(deleted, want);
    // The lists selected weft's objects by label.
    let s = fake.lock();
    let lists: Vec<&str> = s
        .requests
        .iter()
        .filter(|r| r.method == "GET" && !r.query.is_empty())
        .map(|r| r.query.as_str())
        .collect();
    assert!(
        lists
            .iter()
            .all(|q| q.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dweft")),
        "{lists:?}"
    );
    drop(s);
    let left: Vec<String> = fake
        .lock()
        .objects
        .keys()
        .map(|(_, r, n)| format!("{r}/{n}"))
        .collect();
    assert_eq!(
        left,
        [
            "configmaps/other",
            "configmaps/weft-session-live",
            "configmaps/weft-session-starting",
            "networkpolicies/weft-session-live",
            "networkpolicies/weft-session-starting",
            "pods/weft-live-00000001",
            "secrets/weft-live-00000001",
            "services/weft-live-00000001",
        ]
    );
}
