//! A fake Kubernetes API server for tests: axum on 127.0.0.1, objects in
//! memory, every request recorded; it answers like the API (create 201 /
//! 409, get 200 / 404, list with `labelSelector`, delete 200 / 404,
//! `Status` bodies on errors). It has no garbage collector. With a
//! kubelet, a created Pod's command really runs as a child process (its
//! env resolved: `status.podIP` to a loopback IP of its own, secrets from
//! stored Secrets, `$(VAR)` expanded in args) and its phase follows the
//! process: Running with that IP, then Succeeded or Failed when it exits.
//! (Shared by the weft-k8s and weft-cli tests.)

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Recorded {
    /// `METHOD resource[/name]` (`POST pods`, `DELETE pods/weft-s1-1`).
    pub fn short(&self) -> String {
        let segs: Vec<&str> = self.path.split('/').collect();
        let i = segs
            .iter()
            .position(|s| *s == "namespaces")
            .map(|i| i + 2)
            .unwrap_or(0);
        format!("{} {}", self.method, segs[i.min(segs.len())..].join("/"))
    }
}

#[derive(Default)]
pub struct FakeState {
    /// (namespace, resource, name) → object.
    pub objects: BTreeMap<(String, String, String), Value>,
    pub requests: Vec<Recorded>,
    uid: u64,
    /// Without a kubelet: created Pods are Running at this IP at once.
    pub running_ip: Option<String>,
    /// Creating these resources is refused with 403.
    pub forbidden: Vec<String>,
    kubelet: Option<Kubelet>,
}

struct Kubelet {
    children: HashMap<String, Child>,
    next: u32,
    /// Second and third bytes of the Pods' 127.X.Y.N addresses.
    base: (u8, u8),
    /// Extra env of every Pod process.
    env: Vec<(String, String)>,
}

pub struct FakeApi {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(s: &Mutex<FakeState>) -> MutexGuard<'_, FakeState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn status(code: u16, reason: &str, message: String) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code,
        })),
    )
        .into_response()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k.trim()].as_str() == Some(v.trim_start_matches('=').trim())
    })
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl FakeState {
    /// Updates the phase of Pods whose process ended.
    fn reap(&mut self) {
        let Some(k) = self.kubelet.as_mut() else { return };
        let mut ended = Vec::new();
        for (name, child) in k.children.iter_mut() {
            if let Ok(Some(st)) = child.try_wait() {
                ended.push((name.clone(), st.code()));
            }
        }
        for (name, code) in ended {
            k.children.remove(&name);
            for ((_, res, n), obj) in self.objects.iter_mut() {
                if res == "pods" && *n == name && obj["status"]["phase"] == "Running" {
                    let code = code.unwrap_or(137);
                    obj["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
                    obj["status"]["containerStatuses"] = json!([{
                        "name": "worker", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                        "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}
                    }]);
                }
            }
        }
    }

    fn secret_value(&self, ns: &str, name: &str, key: &str) -> Option<String> {
        let s = self
            .objects
            .get(&(ns.to_string(), "secrets".to_string(), name.to_string()))?;
        s["stringData"][key].as_str().map(String::from)
    }

    /// Starts a Pod's command as a child process; its IP.
    fn run_pod(&mut self, ns: &str, pod: &Value) -> Result<String, String> {
        let c = &pod["spec"]["containers"][0];
        let k = self.kubelet.as_mut().unwrap();
        k.next += 1;
        let ip = format!("127.{}.{}.{}", k.base.0, k.base.1, 2 + k.next);
        let mut env: Vec<(String, String)> = k.env.clone();
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap_or_default().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP" {
                ip.clone()
            } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
                let (sn, key) = (r["name"].as_str().unwrap_or(""), r["key"].as_str().unwrap_or(""));
                self.secret_value(ns, sn, key)
                    .ok_or_else(|| format!("secret {sn} has no key {key}"))?
            } else {
                return Err(format!("env {name}: unsupported source"));
            };
            env.push((name, value));
        }
        let expand = |s: &str| {
            let mut s = s.to_string();
            for (k, v) in &env {
                s = s.replace(&format!("$({k})"), v);
            }
            s
        };
        let command: Vec<String> = c["command"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| expand(v.as_str().unwrap_or("")))
            .collect();
        let args: Vec<String> = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| expand(v.as_str().unwrap_or("")))
            .collect();
        let Some(program) = command.first() else {
            return Err("no command".into());
        };
        let child = Command::new(program)
            .args(&command[1..])
            .args(&args)
            .env_remove("WEFT_SERVER")
            .env_remove("WEFT_TOKEN")
            .env_remove("WEFT_STORE_URL")
            .env_remove("RUST_LOG")
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{program}: {e}"))?;
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        self.kubelet.as_mut().unwrap().children.insert(name, child);
        Ok(ip)
    }

    fn kill_process(&mut self, name: &str) {
        if let Some(k) = self.kubelet.as_mut()
            && let Some(mut child) = k.children.remove(name)
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = lock(&state);
    s.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        body: body.clone(),
    });
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let Some(i) = segs.iter().position(|s| *s == "namespaces") else {
        return status(404, "NotFound", format!("no route {path}"));
    };
    let (Some(ns), Some(res)) = (segs.get(i + 1), segs.get(i + 2)) else {
        return status(404, "NotFound", format!("no route {path}"));
    };
    let (ns, res) = (ns.to_string(), res.to_string());
    let name = segs.get(i + 3).map(|s| s.to_string());
    s.reap();
    match (method, name) {
        (Method::POST, None) => {
            if s.forbidden.contains(&res) {
                return status(
                    403,
                    "Forbidden",
                    format!("{res} is forbidden: the fake refuses to create it"),
                );
            }
            let mut obj = body;
            let Some(name) = obj["metadata"]["name"].as_str().map(String::from) else {
                return status(422, "Invalid", "metadata.name: Required value".into());
            };
            let key = (ns.clone(), res.clone(), name.clone());
            if s.objects.contains_key(&key) {
                return status(409, "AlreadyExists", format!("{res} \"{name}\" already exists"));
            }
            s.uid += 1;
            obj["metadata"]["uid"] = json!(format!("uid-{}", s.uid));
            obj["metadata"]["resourceVersion"] = json!(s.uid.to_string());
            if obj["metadata"]["creationTimestamp"].is_null() {
                obj["metadata"]["creationTimestamp"] = json!(now());
            }
            if res == "pods" {
                obj["status"] = json!({"phase": "Pending"});
                if s.kubelet.is_some() {
                    match s.run_pod(&ns, &obj) {
                        Ok(ip) => obj["status"] = json!({"phase": "Running", "podIP": ip}),
                        Err(e) => {
                            obj["status"] = json!({"phase": "Failed", "reason": "StartError", "message": e})
                        }
                    }
                } else if let Some(ip) = s.running_ip.clone() {
                    obj["status"] = json!({"phase": "Running", "podIP": ip});
                }
            }
            s.objects.insert(key, obj.clone());
            (StatusCode::CREATED, axum::Json(obj)).into_response()
        }
        (Method::GET, None) => {
            let selector = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("labelSelector="))
                .map(percent_decode)
                .unwrap_or_default();
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((n, r, _), o)| *n == ns && *r == res && matches_selector(o, &selector))
                .map(|(_, o)| o.clone())
                .collect();
            axum::Json(json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}))
                .into_response()
        }
        (Method::GET, Some(name)) => match s.objects.get(&(ns, res.clone(), name.clone())) {
            Some(o) => axum::Json(o.clone()).into_response(),
            None => status(404, "NotFound", format!("{res} \"{name}\" not found")),
        },
        (Method::DELETE, Some(name)) => match s.objects.remove(&(ns, res.clone(), name.clone())) {
            Some(o) => {
                if res == "pods" {
                    s.kill_process(&name);
                }
                axum::Json(o).into_response()
            }
            None => status(404, "NotFound", format!("{res} \"{name}\" not found")),
        },
        (m, _) => status(405, "MethodNotAllowed", format!("{m} {path}")),
    }
}

impl FakeApi {
    /// A fake without a kubelet: Pods stay Pending, or go Running at `running_ip`.
    pub fn start(running_ip: Option<&str>) -> FakeApi {
        Self::start_with(FakeState {
            running_ip: running_ip.map(String::from),
            ..FakeState::default()
        })
    }

    /// A fake whose kubelet runs each Pod's command (with `env` added).
    pub fn with_kubelet(env: Vec<(String, String)>) -> FakeApi {
        let pid = std::process::id();
        Self::start_with(FakeState {
            kubelet: Some(Kubelet {
                children: HashMap::new(),
                next: 0,
                base: ((pid % 250) as u8 + 1, ((pid / 250) % 250) as u8),
                env,
            }),
            ..FakeState::default()
        })
    }

    fn start_with(state: FakeState) -> FakeApi {
        let state = Arc::new(Mutex::new(state));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(handle).with_state(Arc::clone(&state));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                // Not graceful: clients keep connections alive.
                tokio::select! {
                    r = axum::serve(listener, app) => r.unwrap(),
                    _ = rx => {}
                }
            });
        });
        FakeApi {
            url,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// Every request so far, as `METHOD resource[/name]`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().requests.iter().map(Recorded::short).collect()
    }

    /// The stored objects of `resource`, by name.
    pub fn objects(&self, resource: &str) -> BTreeMap<String, Value> {
        let mut s = self.lock();
        s.reap();
        s.objects
            .iter()
            .filter(|((_, r, _), _)| r == resource)
            .map(|((_, _, n), o)| (n.clone(), o.clone()))
            .collect()
    }

    /// How many objects are stored.
    pub fn count(&self) -> usize {
        self.lock().objects.len()
    }

    /// Stores `obj` directly (no request recorded).
    pub fn insert(&self, namespace: &str, resource: &str, obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        self.lock()
            .objects
            .insert((namespace.into(), resource.into(), name), obj);
    }

    /// Sets a Pod's status (killing its process, when the kubelet runs it).
    pub fn set_pod_status(&self, name: &str, status: Value) {
        let mut s = self.lock();
        s.kill_process(name);
        for ((_, r, n), o) in s.objects.iter_mut() {
            if r == "pods" && n == name {
                o["status"] = status.clone();
            }
        }
    }

    /// Removes an object directly (no request recorded).
    pub fn remove(&self, resource: &str, name: &str) {
        let mut s = self.lock();
        s.objects.retain(|(_, r, n), _| !(r == resource && n == name));
        if resource == "pods" {
            s.kill_process(name);
        }
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut s = self.lock();
        if let Some(k) = s.kubelet.as_mut() {
            for (_, mut child) in k.children.drain() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
