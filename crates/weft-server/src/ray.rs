//! Workers as Ray jobs: [`RayLauncher`] submits each `weft worker` as one
//! job through Ray's Jobs REST API (the dashboard's `/api/jobs/`), and the
//! master talks to the worker over HTTP as it does to a local child
//! ([`crate::ProcessWorker`] keeps the session's workers and does the
//! error matrix; this module only starts, watches and stops them).
//!
//! - Submission: `POST {address}/api/jobs/` with the entrypoint `exec env -u
//!   WEFT_SERVER PROGRAM worker --project P --session-id ID --listen HOST:0
//!   [--env E] [--max-runs N]`, `submission_id` `weft-<session>-w<k>-g<n>`
//!   (`k`: this launcher's launch number, `n`: the generation, bumped past
//!   ids left by an earlier master), `entrypoint_num_cpus` /
//!   `entrypoint_memory` when set (the session's `resources.cpus` /
//!   `memory` first; `resources.gpus` as `entrypoint_num_gpus`), and `runtime_env` with the worker's
//!   bearer token in `env_vars.WEFT_TOKEN` (never on the command line) and
//!   `working_dir` when the project travels as a Ray working directory
//!   (then the worker is started with `--project .`). A resubmit of the same
//!   id is idempotent: Ray's 400 "already exists" for a job carrying this
//!   launch's nonce (`metadata.weft_launch`) means the job is ours, and it
//!   is attached to.
//! - Address: the worker's line `weft worker: listening on http://ADDR`,
//!   read from `GET /api/jobs/{id}/logs`. The worker listens on `HOST:0`
//!   (default `127.0.0.1`: a head on this machine); with `0.0.0.0` (a
//!   cluster of several machines) the announced host is replaced by the IP
//!   of the node that runs the job (the host of its
//!   `driver_agent_http_address`), which the master must be able to reach.
//! - Watch: a thread per job polls `GET /api/jobs/{id}`; `STOPPED`,
//!   `FAILED` and `SUCCEEDED` mean the worker exited
//!   ([`WorkerProcess::exited`]), so a job stopped from outside is seen as a
//!   dead worker: its run becomes `interrupted` and a new job is submitted.
//! - Stop: `POST /api/jobs/{id}/stop` (idempotent); Ray sends the worker
//!   SIGTERM, on which `weft worker` exits, and records the job `STOPPED`.
//!
//! The `weft` binary (`program`) and the project must exist at the same
//! paths on every Ray node (one machine, or a shared file system), unless
//! the project is given as a `working_dir` URI Ray can fetch.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::process::{
    LaunchError, Launcher, WorkerHandle, WorkerProcess, WorkerRequest, announced_address, reachable,
    shell_quote,
};

/// Why talking to the Ray Jobs API failed (the HTTP call itself).
#[derive(Debug, thiserror::Error)]
pub enum RayError {
    /// The request did not get an answer.
    #[error("Ray Jobs API {url}: {source}")]
    Transport {
        /// The URL called.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: Box<ureq::Error>,
    },
}

/// How a [`RayLauncher`] submits workers.
#[derive(Clone, Debug, PartialEq)]
pub struct RayOptions {
    /// The Ray dashboard's base URL (`http://127.0.0.1:8265`).
    pub address: String,
    /// The program started as `PROGRAM worker ...` on the Ray node (a path
    /// valid there).
    pub program: PathBuf,
    /// The host the worker listens on (default `127.0.0.1`); `0.0.0.0`
    /// listens on every interface of the node and announces the node's IP.
    pub listen_host: IpAddr,
    /// CPUs reserved for each worker job (`entrypoint_num_cpus`).
    pub num_cpus: Option<f64>,
    /// Memory reserved for each worker job, in bytes (`entrypoint_memory`).
    pub memory: Option<u64>,
    /// A `runtime_env.working_dir` URI Ray fetches the project from; the
    /// worker then runs with `--project .` in it.
    pub working_dir: Option<String>,
}

impl RayOptions {
    /// Workers of `program` on the Ray cluster at `address`, listening on
    /// 127.0.0.1, no resource reservation, the project at its own path.
    pub fn new(address: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        RayOptions {
            address: address.into(),
            program: program.into(),
            listen_host: IpAddr::from([127, 0, 0, 1]),
            num_cpus: None,
            memory: None,
            working_dir: None,
        }
    }
}

/// The Jobs API of one Ray cluster.
#[derive(Clone)]
struct Client {
    base: String,
    agent: ureq::Agent,
}

/// An answer of the Jobs API: status and body.
struct Reply {
    status: u16,
    body: String,
}

impl Client {
    fn new(address: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Client {
            base: address.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn read(
        url: String,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, RayError> {
        let transport = |source| RayError::Transport {
            url: url.clone(),
            source: Box::new(source),
        };
        let mut response = response.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(transport)?;
        Ok(Reply { status, body })
    }

    fn get(&self, path: &str) -> Result<Reply, RayError> {
        let url = format!("{}{path}", self.base);
        let response = self.agent.get(&url).call();
        Self::read(url, response)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Reply, RayError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes());
        Self::read(url, response)
    }

    /// The job's details (`None`: Ray does not know it).
    fn job(&self, id: &str) -> Result<Option<Value>, RayError> {
        let reply = self.get(&format!("/api/jobs/{id}"))?;
        Ok(match reply.status {
            200 => serde_json::from_str(&reply.body).ok(),
            _ => None,
        })
    }

    fn logs(&self, id: &str) -> Result<String, RayError> {
        let reply = self.get(&format!("/api/jobs/{id}/logs"))?;
        let v: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        Ok(v["logs"].as_str().unwrap_or_default().to_string())
    }

    fn stop(&self, id: &str) -> Result<(), RayError> {
        self.post(&format!("/api/jobs/{id}/stop"), &json!({})).map(|_| ())
    }
}

/// Ray's terminal job states: the entrypoint (the worker) is gone.
fn is_terminal(status: &str) -> bool {
    matches!(status, "STOPPED" | "FAILED" | "SUCCEEDED")
}

/// Starts each worker as a Ray job (see the module docs).
pub struct RayLauncher {
    options: RayOptions,
    client: Client,
    launches: AtomicU64,
}

impl std::fmt::Debug for RayLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RayLauncher")
            .field("options", &self.options)
            .finish()
    }
}

/// Most generations tried for one worker before giving up.
const MAX_GENERATIONS: u32 = 16;

impl RayLauncher {
    /// A launcher submitting to the cluster `options.address`.
    pub fn new(options: RayOptions) -> Self {
        RayLauncher {
            client: Client::new(&options.address),
            options,
            launches: AtomicU64::new(0),
        }
    }

    /// The shell command Ray runs for `request` (no secret in it).
    pub fn entrypoint(&self, request: &WorkerRequest) -> String {
        let project = if self.options.working_dir.is_some() {
            ".".to_string()
        } else {
            request.project.display().to_string()
        };
        let listen = match self.options.listen_host {
            IpAddr::V4(ip) => format!("{ip}:0"),
            IpAddr::V6(ip) => format!("[{ip}]:0"),
        };
        let mut words = vec![
            "exec".to_string(),
            "env".into(),
            "-u".into(),
            "WEFT_SERVER".into(),
            shell_quote(&self.options.program.display().to_string()),
            "worker".into(),
            "--project".into(),
            shell_quote(&project),
            "--session-id".into(),
            shell_quote(&request.session_id),
            "--listen".into(),
            shell_quote(&listen),
        ];
        if let Some(env) = &request.env {
            words.extend(["--env".into(), shell_quote(env)]);
        }
        if let Some(n) = request.max_runs {
            words.extend(["--max-runs".into(), n.to_string()]);
        }
        words.extend(request.limits.worker_args());
        words.join(" ")
    }

    fn submission(&self, request: &WorkerRequest, id: &str, nonce: &str) -> Value {
        let mut runtime_env = json!({"env_vars": {"WEFT_TOKEN": request.token}});
        if let Some(dir) = &self.options.working_dir {
            runtime_env["working_dir"] = json!(dir);
        }
        let mut body = json!({
            "entrypoint": self.entrypoint(request),
            "submission_id": id,
            "runtime_env": runtime_env,
            "metadata": {"weft_session": request.session_id, "weft_launch": nonce},
        });
        // The session's resources override the launcher's defaults.
        let resources = &request.resources;
        if let Some(cpus) = resources.cpus.map(f64::from).or(self.options.num_cpus) {
            body["entrypoint_num_cpus"] = json!(cpus);
        }
        if let Some(memory) = resources.memory.or(self.options.memory) {
            body["entrypoint_memory"] = json!(memory);
        }
        if let Some(gpus) = resources.gpus {
            body["entrypoint_num_gpus"] = json!(gpus);
        }
        body
    }

    /// Submits `body` under `id`: `Ok(true)` when the job is ours (new, or
    /// already submitted by this launch), `Ok(false)` when the id is taken
    /// by another job.
    fn submit(&self, id: &str, nonce: &str, body: &Value) -> Result<bool, LaunchError> {
        let mut attempt = 0;
        let reply = loop {
            attempt += 1;
            match self.client.post("/api/jobs/", body) {
                Ok(reply) => break reply,
                // The submission may have landed: the retry finds it by its nonce.
                Err(e) if attempt < 3 => {
                    tracing::warn!(submission_id = id, "submitting a Ray job failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(LaunchError::Ray(e)),
            }
        };
        match reply.status {
            200 => Ok(true),
            400 | 409 if reply.body.contains("already exists") => {
                let job = self.client.job(id).map_err(LaunchError::Ray)?;
                let ours = job
                    .as_ref()
                    .is_some_and(|j| j["metadata"]["weft_launch"].as_str() == Some(nonce));
                if ours {
                    return Ok(true);
                }
                let live = job
                    .as_ref()
                    .and_then(|j| j["status"].as_str())
                    .is_some_and(|s| !is_terminal(s));
                if live {
                    // A worker left by an earlier master of this session: nobody
                    // holds its token any more.
                    tracing::info!(submission_id = id, "stopping a Ray job left by an earlier master");
                    let _ = self.client.stop(id);
                }
                Ok(false)
            }
            status => Err(LaunchError::Refused(format!(
                "Ray refused the worker job {id} (HTTP {status}): {}",
                ray_message(&reply.body)
            ))),
        }
    }
}

/// The useful part of a Ray error body (its text is a Python traceback:
/// the last non-empty line says why).
fn ray_message(body: &str) -> String {
    let last = body.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    last.trim().chars().take(1000).collect()
}

impl Launcher for RayLauncher {
    fn launch(&self, request: &WorkerRequest) -> Result<WorkerHandle, LaunchError> {
        let k = self.launches.fetch_add(1, Ordering::SeqCst);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        for generation in 0..MAX_GENERATIONS {
            let id = format!("weft-{}-w{k}-g{generation}", request.session_id);
            let body = self.submission(request, &id, &nonce);
            if self.submit(&id, &nonce, &body)? {
                tracing::debug!(submission_id = %id, "worker submitted to Ray");
                return Ok(WorkerHandle::new(RayJob::watch(self.client.clone(), id)));
            }
        }
        Err(LaunchError::Refused(format!(
            "Ray already holds jobs weft-{}-w{k}-g0 to g{}: no free submission id",
            request.session_id,
            MAX_GENERATIONS - 1
        )))
    }
}

/// What the watcher last saw of a job.
#[derive(Default)]
struct Seen {
    /// `STATUS: message` once the job is in a terminal state.
    exit: Option<String>,
    /// The host of the node running it (from `driver_agent_http_address`).
    node_host: Option<String>,
}

struct Shared {
    client: Client,
    id: String,
    seen: Mutex<Seen>,
    /// The handle is gone or the job ended: the watcher stops.
    done: AtomicBool,
}

/// One worker submitted as a Ray job.
struct RayJob {
    shared: Arc<Shared>,
    address: Option<String>,
    stop_sent: bool,
}

/// How often a job's status is polled.
const WATCH_EVERY: Duration = Duration::from_millis(100);

impl RayJob {
    fn watch(client: Client, id: String) -> Self {
        let shared = Arc::new(Shared {
            client,
            id,
            seen: Mutex::new(Seen::default()),
            done: AtomicBool::new(false),
        });
        let watcher = Arc::clone(&shared);
        std::thread::spawn(move || {
            while !watcher.done.load(Ordering::SeqCst) {
                watcher.poll();
                if lock(&watcher.seen).exit.is_some() {
                    break;
                }
                std::thread::sleep(WATCH_EVERY);
            }
        });
        RayJob {
            shared,
            address: None,
            stop_sent: false,
        }
    }

    fn exited_error(&self, exit: String) -> LaunchError {
        let logs = self.shared.client.logs(&self.shared.id).unwrap_or_default();
        let tail: Vec<&str> = logs.lines().rev().take(20).collect();
        LaunchError::Exited {
            worker: self.describe(),
            status: exit,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }
}

impl Shared {
    fn poll(&self) {
        let job = match self.client.job(&self.id) {
            Ok(job) => job,
            // Ray unreachable for a moment: the next poll tries again; a dead
            // worker is also seen by the master's own calls failing.
            Err(_) => return,
        };
        let mut seen = lock(&self.seen);
        match job {
            None => {
                seen.exit = Some(format!("Ray job {} no longer exists", self.id));
            }
            Some(job) => {
                if seen.node_host.is_none() {
                    seen.node_host = job["driver_agent_http_address"]
                        .as_str()
                        .and_then(|a| a.split("://").nth(1))
                        .and_then(|hp| hp.rsplit_once(':').map(|(h, _)| h.to_string()));
                }
                let status = job["status"].as_str().unwrap_or("");
                if is_terminal(status) {
                    let message = job["message"].as_str().unwrap_or("").trim();
                    seen.exit = Some(if message.is_empty() {
                        format!("Ray job {status}")
                    } else {
                        format!("Ray job {status}: {message}")
                    });
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WorkerProcess for RayJob {
    fn describe(&self) -> String {
        format!("Ray job {}", self.shared.id)
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn address(&mut self, deadline: Instant) -> Result<String, LaunchError> {
        if let Some(a) = &self.address {
            return Ok(a.clone());
        }
        let started = Instant::now();
        loop {
            // Read the status first: logs read after it cannot miss a line
            // written before the job ended.
            let exit = lock(&self.shared.seen).exit.clone();
            if let Ok(logs) = self.shared.client.logs(&self.shared.id)
                && let Some(url) = announced_address(&logs)
            {
                if url.contains("://0.0.0.0:") || url.contains("://[::]:") {
                    self.shared.poll();
                }
                let url = reachable(&url, lock(&self.shared.seen).node_host.as_deref());
                self.address = Some(url.clone());
                return Ok(url);
            }
            if let Some(exit) = exit {
                return Err(self.exited_error(exit));
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Silent {
                    worker: self.describe(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
    }

    fn exited(&mut self) -> Option<String> {
        lock(&self.shared.seen).exit.clone()
    }

    fn stderr_tail(&self) -> String {
        let logs = self.shared.client.logs(&self.shared.id).unwrap_or_default();
        let tail: Vec<&str> = logs.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn kill(&mut self) {
        if !self.stop_sent && lock(&self.shared.seen).exit.is_none() {
            self.stop_sent = true;
            if let Err(e) = self.shared.client.stop(&self.shared.id) {
                tracing::warn!(submission_id = %self.shared.id, "stopping the Ray job failed: {e}");
            }
            // Ray signals the worker, which exits at once when idle; wait a
            // little for the job to be recorded ended.
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                self.shared.poll();
                if lock(&self.shared.seen).exit.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.shared.done.store(true, Ordering::SeqCst);
    }

    fn stop_idle_by_kill(&self) -> bool {
        true
    }
}

impl Drop for RayJob {
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> WorkerRequest {
        WorkerRequest {
            session_id: "s1".into(),
            project: PathBuf::from("/srv/my project"),
            env: Some("prod".into()),
            max_runs: Some(3),
            token: "secret-token".into(),
            limits: crate::WorkerLimits::default(),
            resources: crate::SessionResources::default(),
        }
    }

    #[test]
    fn entrypoint_quotes_paths_and_keeps_the_token_off_the_command_line() {
        let launcher = RayLauncher::new(RayOptions::new("http://127.0.0.1:1", "/opt/weft/bin/weft"));
        let e = launcher.entrypoint(&request());
        assert_eq!(
            e,
            "exec env -u WEFT_SERVER /opt/weft/bin/weft worker --project '/srv/my project' \
             --session-id s1 --listen 127.0.0.1:0 --env prod --max-runs 3"
        );
        let body = launcher.submission(&request(), "weft-s1-w0-g0", "n");
        assert!(!body["entrypoint"].as_str().unwrap().contains("secret-token"));
        assert_eq!(body["runtime_env"]["env_vars"]["WEFT_TOKEN"], "secret-token");
        assert!(body.get("entrypoint_num_cpus").is_none());
    }

    #[test]
    fn working_dir_and_resources_go_in_the_submission() {
        let mut options = RayOptions::new("http://127.0.0.1:1", "weft");
        options.working_dir = Some("gs://bucket/project.zip".into());
        options.num_cpus = Some(0.5);
        options.memory = Some(1 << 30);
        options.listen_host = "0.0.0.0".parse().unwrap();
        let launcher = RayLauncher::new(options);
        let body = launcher.submission(&request(), "id", "n");
        assert_eq!(body["runtime_env"]["working_dir"], "gs://bucket/project.zip");
        assert_eq!(body["entrypoint_num_cpus"], 0.5);
        assert_eq!(body["entrypoint_memory"], 1u64 << 30);
        assert!(body.get("entrypoint_num_gpus").is_none());
        // A session's resources override the launcher's.
        let mut session = request();
        session.resources.cpus = Some(2);
        session.resources.memory = Some(1 << 20);
        session.resources.gpus = Some(1);
        let with = launcher.submission(&session, "id", "n");
        assert_eq!(with["entrypoint_num_cpus"], 2.0);
        assert_eq!(with["entrypoint_memory"], 1u64 << 20);
        assert_eq!(with["entrypoint_num_gpus"], 1);
        let e = body["entrypoint"].as_str().unwrap();
        assert!(
            e.contains("--project . ") && e.contains("--listen 0.0.0.0:0"),
            "{e}"
        );
    }

    /// A stand-in for Ray's Jobs API on its own thread: `jobs` maps
    /// submission ids to job details; `refuse` makes every submission a 400.
    struct FakeRay {
        url: String,
        jobs: Arc<Mutex<std::collections::BTreeMap<String, Value>>>,
        stops: Arc<Mutex<Vec<String>>>,
    }

    fn fake_ray(refuse: Option<&'static str>) -> FakeRay {
        use axum::extract::{Path, State};
        use axum::routing::{get, post};
        type Jobs = Arc<Mutex<std::collections::BTreeMap<String, Value>>>;
        let jobs: Jobs = Arc::default();
        let stops: Arc<Mutex<Vec<String>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = (Arc::clone(&jobs), Arc::clone(&stops));
        let app = axum::Router::new()
            .route(
                "/api/jobs/",
                post(move |State((jobs, _)): State<(Jobs, Arc<Mutex<Vec<String>>>)>, body: String| async move {
                    if let Some(why) = refuse {
                        return (axum::http::StatusCode::BAD_REQUEST, format!("Traceback...\n{why}\n"));
                    }
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let id = v["submission_id"].as_str().unwrap().to_string();
                    let mut jobs = lock(&jobs);
                    if jobs.contains_key(&id) {
                        return (
                            axum::http::StatusCode::BAD_REQUEST,
                            format!("ValueError: Job with submission_id {id} already exists."),
                        );
                    }
                    let mut job = v.clone();
                    job["status"] = json!("RUNNING");
                    jobs.insert(id.clone(), job);
                    (axum::http::StatusCode::OK, json!({"job_id": id, "submission_id": id}).to_string())
                }),
            )
            .route(
                "/api/jobs/{id}",
                get(|State((jobs, _)): State<(Jobs, Arc<Mutex<Vec<String>>>)>, Path(id): Path<String>| async move {
                    match lock(&jobs).get(&id) {
                        Some(j) => (axum::http::StatusCode::OK, j.to_string()),
                        None => (axum::http::StatusCode::NOT_FOUND, format!("Job {id} does not exist")),
                    }
                }),
            )
            .route(
                "/api/jobs/{id}/logs",
                get(|| async { json!({"logs": "weft worker: listening on http://0.0.0.0:4242\n"}).to_string() }),
            )
            .route(
                "/api/jobs/{id}/stop",
                post(|State((jobs, stops)): State<(Jobs, Arc<Mutex<Vec<String>>>)>, Path(id): Path<String>| async move {
                    lock(&stops).push(id.clone());
                    if let Some(j) = lock(&jobs).get_mut(&id) {
                        j["status"] = json!("STOPPED");
                        j["message"] = json!("Job was intentionally stopped.");
                    }
                    json!({"stopped": true}).to_string()
                }),
            )
            .with_state(state);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app).await;
            });
        });
        FakeRay { url, jobs, stops }
    }

    #[test]
    fn a_job_left_by_an_earlier_master_is_stopped_and_the_next_generation_used() {
        let ray = fake_ray(None);
        // An earlier master of session s1 left w0-g0 running (another launch's nonce).
        lock(&ray.jobs).insert(
            "weft-s1-w0-g0".into(),
            json!({"status": "RUNNING", "metadata": {"weft_launch": "someone else"}}),
        );
        let mut options = RayOptions::new(ray.url.clone(), "weft");
        options.listen_host = "0.0.0.0".parse().unwrap();
        let launcher = RayLauncher::new(options);
        let mut handle = launcher.launch(&request()).unwrap();
        assert_eq!(handle.process().describe(), "Ray job weft-s1-w0-g1");
        assert_eq!(lock(&ray.stops).as_slice(), ["weft-s1-w0-g0"]);
        // The job has no driver address here: the unspecified host stays.
        let url = handle
            .process()
            .address(Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(url, "http://0.0.0.0:4242");
        assert_eq!(handle.process().exited(), None);
        handle.process().kill();
        assert_eq!(
            handle.process().exited().as_deref(),
            Some("Ray job STOPPED: Job was intentionally stopped.")
        );
        // kill is idempotent: no second stop request.
        handle.process().kill();
        assert_eq!(lock(&ray.stops).len(), 2);
        // The next worker of the session gets the next number.
        let handle = launcher.launch(&request()).unwrap();
        drop(handle);
        assert!(lock(&ray.jobs).contains_key("weft-s1-w1-g0"));
    }

    #[test]
    fn a_resubmitted_job_with_this_launchs_nonce_is_attached_to() {
        let ray = fake_ray(None);
        let launcher = RayLauncher::new(RayOptions::new(ray.url.clone(), "weft"));
        let body = launcher.submission(&request(), "weft-s1-w0-g0", "nonce-1");
        assert!(launcher.submit("weft-s1-w0-g0", "nonce-1", &body).unwrap());
        // Resubmitting the same launch (a lost answer) is idempotent ...
        assert!(launcher.submit("weft-s1-w0-g0", "nonce-1", &body).unwrap());
        // ... another launch's job under that id is not ours.
        assert!(!launcher.submit("weft-s1-w0-g0", "nonce-2", &body).unwrap());
        assert_eq!(lock(&ray.jobs).len(), 1);
    }

    #[test]
    fn a_refused_submission_is_refused_with_rays_message() {
        let ray = fake_ray(Some("ValueError: entrypoint_num_cpus must be non-negative"));
        let launcher = RayLauncher::new(RayOptions::new(ray.url.clone(), "weft"));
        let Err(err) = launcher.launch(&request()) else {
            panic!("the launch was not refused")
        };
        let LaunchError::Refused(message) = &err else {
            panic!("not refused: {err:?}")
        };
        assert!(
            message.contains("weft-s1-w0-g0") && message.contains("entrypoint_num_cpus must be non-negative"),
            "{message}"
        );
    }

    #[test]
    fn an_unreachable_ray_is_a_transport_error_with_its_source() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let launcher = RayLauncher::new(RayOptions::new(format!("http://127.0.0.1:{port}"), "weft"));
        let Err(err) = launcher.launch(&request()) else {
            panic!("a launch without Ray succeeded")
        };
        assert!(
            matches!(err, LaunchError::Ray(RayError::Transport { .. })),
            "{err:?}"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the HTTP error is kept: {err:?}"
        );
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a;b"), "'a;b'");
    }

    #[test]
    fn the_address_is_found_among_other_log_lines() {
        let logs = "Runtime env is setting up.\nRunning entrypoint for job x: exec ...\n\
                    2026-01-01 INFO loading\nweft worker: listening on http://127.0.0.1:4567\n";
        assert_eq!(announced_address(logs).as_deref(), Some("http://127.0.0.1:4567"));
        assert_eq!(announced_address("weft worker: listening on ftp://x\n"), None);
        assert_eq!(
            reachable("http://0.0.0.0:4567", Some("10.0.0.7")),
            "http://10.0.0.7:4567"
        );
        assert_eq!(
            reachable("http://127.0.0.1:4567", Some("10.0.0.7")),
            "http://127.0.0.1:4567"
        );
        assert_eq!(reachable("http://0.0.0.0:4567", None), "http://0.0.0.0:4567");
    }

    #[test]
    fn ray_errors_keep_their_last_line() {
        let body = "Traceback (most recent call last):\n  File \"x\"\nValueError: entrypoint_memory must be a non-negative integer\n\n";
        assert_eq!(
            ray_message(body),
            "ValueError: entrypoint_memory must be a non-negative integer"
        );
    }
}
