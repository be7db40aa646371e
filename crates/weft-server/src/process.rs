//! Workers in other processes: [`ProcessWorker`] keeps a session's
//! `max_concurrency` `weft worker` processes (each single-flight), started
//! through a [`Launcher`] ([`LocalProcessLauncher`]: child processes of
//! this one; [`crate::RayLauncher`]: Ray jobs; [`crate::SlurmLauncher`]:
//! Slurm batch jobs), and talks to them over HTTP
//! ([`crate::worker_app`]).
//!
//! Error matrix of a dispatch:
//! - the worker is dead or unreachable mid-run: [`WorkerError::Unavailable`]
//!   (the server records the run `interrupted`); the worker is killed and a
//!   replacement started at once, before the next dispatch needs it; so is
//!   a worker stopped from outside (SIGTERM, a stopped Ray job, a cancelled
//!   Slurm job) that answers
//!   with a run it cancelled on its way out, when nobody here cancelled it;
//! - 409 `busy`: retried later (with backoff), on any free worker;
//! - 5xx: retried once, then the run fails ([`WorkerError::Refused`]);
//! - any other 4xx: the run fails with the worker's error ([`WorkerError::Refused`]).
//!
//! Recycle: a worker started with `max_runs` says `recycle` on its last
//! answer and exits; the replacement starts right then. Children are killed
//! on [`Worker::stop`] and when the [`ProcessWorker`] is dropped; a child
//! started by [`LocalProcessLauncher`] also exits when this process dies
//! (its stdin closes).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use weft_pipeline::CancelToken;
use weft_session::{CloseMode, RunSpec};
use weft_store::RunRecord;

use crate::limits::WorkerLimits;
use crate::resources::SessionResources;
use crate::worker::{BoxFuture, Health, RunProgress, Worker, WorkerError};

/// Where a server's session workers run.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LauncherConfig {
    /// `weft worker`s started by a launcher built outside this crate (the
    /// Kubernetes one in `weft-k8s`), one per unit of the session's
    /// `max_concurrency` ([`ProcessWorker`] over it).
    External(ExternalLauncher),
    /// On the session's own threads in the server process ([`crate::InProcessWorker`]).
    #[default]
    InProcess,
    /// `weft worker` child processes, one per unit of the session's
    /// `max_concurrency` ([`ProcessWorker`] over [`LocalProcessLauncher`]).
    Process {
        /// The program started with `worker ...` arguments (the `weft`
        /// binary, or a project's own binary built on `weft_cli::main_with`).
        program: PathBuf,
        /// Each worker exits after this many answered runs and is replaced.
        max_runs: Option<u32>,
        /// How long a worker may take from start to a ready `/healthz`;
        /// past it the session fails with `worker_healthz_timeout`.
        ready_timeout: Duration,
        /// Memory and CPU-time limits every worker applies to itself.
        limits: WorkerLimits,
    },
    /// `weft worker`s submitted as Ray jobs, one per unit of the session's
    /// `max_concurrency` ([`ProcessWorker`] over [`crate::RayLauncher`]).
    Ray {
        /// The Ray dashboard's base URL (`http://127.0.0.1:8265`).
        address: String,
        /// The program started as `PROGRAM worker ...` on the Ray node.
        program: PathBuf,
        /// Each worker exits after this many answered runs and is replaced.
        max_runs: Option<u32>,
        /// Submission to ready `/healthz`, per worker (Ray's own scheduling
        /// included); past it the session fails with `worker_healthz_timeout`.
        ready_timeout: Duration,
        /// CPUs reserved for each worker job (`entrypoint_num_cpus`).
        num_cpus: Option<f64>,
        /// Memory reserved for each worker job, in bytes (`entrypoint_memory`).
        memory: Option<u64>,
        /// The host workers listen on (`None`: 127.0.0.1; `0.0.0.0`: every
        /// interface of the node, announced as the node's IP).
        listen_host: Option<std::net::IpAddr>,
        /// A `runtime_env.working_dir` URI the project travels as.
        working_dir: Option<String>,
        /// Memory and CPU-time limits every worker applies to itself.
        limits: WorkerLimits,
    },
    /// `weft worker`s submitted as Slurm batch jobs, one per unit of the
    /// session's `max_concurrency` ([`ProcessWorker`] over
    /// [`crate::SlurmLauncher`]).
    Slurm {
        /// The program, the Slurm commands, partition, account, time
        /// limit, CPUs, memory and extra sbatch options of each job.
        options: crate::slurm::SlurmOptions,
        /// Each worker exits after this many answered runs and is replaced.
        max_runs: Option<u32>,
        /// Submission to ready `/healthz`, per worker (time in Slurm's
        /// queue included); past it the session fails with
        /// `worker_healthz_timeout`. A job Slurm can never start fails it
        /// sooner, with Slurm's reason.
        ready_timeout: Duration,
        /// Memory and CPU-time limits every worker applies to itself.
        limits: WorkerLimits,
    },
}

/// A launcher built outside this crate, with the options every
/// [`ProcessWorker`] takes.
#[derive(Clone)]
pub struct ExternalLauncher {
    /// The launcher (shared by every session of the server).
    pub launcher: Arc<dyn Launcher>,
    /// Its name in messages and logs (`kubernetes`).
    pub name: &'static str,
    /// Each worker exits after this many answered runs and is replaced.
    pub max_runs: Option<u32>,
    /// Launch to ready `/healthz`, per worker; past it the session fails
    /// with `worker_healthz_timeout`.
    pub ready_timeout: Duration,
    /// Memory and CPU-time limits every worker applies to itself.
    pub limits: WorkerLimits,
}

impl std::fmt::Debug for ExternalLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalLauncher")
            .field("name", &self.name)
            .field("max_runs", &self.max_runs)
            .field("ready_timeout", &self.ready_timeout)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Two external launchers are equal when they are the same launcher with
/// the same options.
impl PartialEq for ExternalLauncher {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.launcher), Arc::as_ptr(&other.launcher))
            && self.name == other.name
            && self.max_runs == other.max_runs
            && self.ready_timeout == other.ready_timeout
            && self.limits == other.limits
    }
}

impl LauncherConfig {
    /// Child processes of `program` with no recycle and a 60 s ready timeout.
    pub fn process(program: impl Into<PathBuf>) -> Self {
        LauncherConfig::Process {
            program: program.into(),
            max_runs: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            limits: WorkerLimits::default(),
        }
    }
}

/// The default time a worker gets to become ready.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a launcher starts: one worker process for one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRequest {
    /// The session the worker serves (its `--session-id`).
    pub session_id: String,
    /// The project folder.
    pub project: PathBuf,
    /// The configuration environment, when the session names one.
    pub env: Option<String>,
    /// Dispatches after which the worker recycles.
    pub max_runs: Option<u32>,
    /// The bearer token the worker must require (fresh per worker).
    pub token: String,
    /// Limits the worker applies to itself (`--memory-limit`, `--cpu-limit-s`).
    pub limits: WorkerLimits,
    /// The session's launcher resources; each set field overrides the
    /// launcher's own default (see [`crate::resources`]).
    pub resources: SessionResources,
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program could not be started.
    #[error("cannot start worker program `{program}`: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The worker exited before it was ready.
    #[error("worker {worker} exited before it was ready ({status}){}", tail(.stderr))]
    Exited {
        /// Which worker (`pid 1234`).
        worker: String,
        /// How it exited.
        status: String,
        /// The last lines it wrote on stderr.
        stderr: String,
    },
    /// The worker's first line on stdout was not `weft worker: listening on URL`.
    #[error("worker {worker} did not announce its address; its first line was {line:?}")]
    NoAddress {
        /// Which worker.
        worker: String,
        /// What it printed.
        line: String,
    },
    /// The worker did not announce its address in time.
    #[error("worker {worker} announced no address within {waited_ms} ms")]
    Silent {
        /// Which worker.
        worker: String,
        /// How long it was given, in milliseconds.
        waited_ms: u64,
    },
    /// The launcher refuses to start a worker (a launcher-specific reason).
    #[error("{0}")]
    Refused(String),
    /// The Ray Jobs API could not be reached.
    #[error(transparent)]
    Ray(#[from] crate::ray::RayError),
}

fn tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.trim())
    }
}

/// A started worker process, seen from its master.
pub trait WorkerProcess: Send {
    /// A short name for messages (`pid 1234`).
    fn describe(&self) -> String;
    /// Its process id, when it is a local process.
    fn pid(&self) -> Option<u32>;
    /// Waits (until `deadline`) for the worker's base URL (`http://ADDR`).
    fn address(&mut self, deadline: Instant) -> Result<String, LaunchError>;
    /// `Some(how it exited)` once the process ended.
    fn exited(&mut self) -> Option<String>;
    /// The last lines it wrote on stderr (for error messages).
    fn stderr_tail(&self) -> String {
        String::new()
    }
    /// Kills it (if still running) and reaps it.
    fn kill(&mut self);
    /// Like [`exited`](Self::exited), but a process whose connection just
    /// dropped gets a moment to finish dying and flush its stderr, so its
    /// exit status and last words can be read.
    fn exited_settled(&mut self) -> Option<String> {
        let until = Instant::now() + Duration::from_millis(500);
        loop {
            if let Some(status) = self.exited() {
                // The stderr reader may still hold the last lines.
                std::thread::sleep(Duration::from_millis(20));
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    /// Whether an idle worker is ended through [`WorkerProcess::kill`]
    /// rather than asked over its `/stop` route: a Ray job stopped through
    /// Ray is recorded `STOPPED`, one whose worker exits by itself
    /// `SUCCEEDED`.
    fn stop_idle_by_kill(&self) -> bool {
        false
    }
}

/// One started worker.
pub struct WorkerHandle {
    process: Box<dyn WorkerProcess>,
}

impl WorkerHandle {
    /// A handle over a started process.
    pub fn new(process: impl WorkerProcess + 'static) -> Self {
        WorkerHandle {
            process: Box::new(process),
        }
    }

    /// The process behind the handle.
    pub fn process(&mut self) -> &mut dyn WorkerProcess {
        self.process.as_mut()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.process.kill();
    }
}

/// Starts worker processes for sessions.
pub trait Launcher: Send + Sync {
    /// Starts one worker for `request` and returns without waiting for it
    /// to be ready (the master polls its address and `/healthz`).
    fn launch(&self, request: &WorkerRequest) -> Result<WorkerHandle, LaunchError>;
}

/// Starts `PROGRAM worker --project P --session-id ID [--env E] --listen
/// 127.0.0.1:0 [--max-runs N] --stop-on-stdin-eof` as a child process; the
/// token goes in its `WEFT_TOKEN`, its stderr is forwarded to this
/// process's stderr.
#[derive(Clone, Debug)]
pub struct LocalProcessLauncher {
    program: PathBuf,
}

impl LocalProcessLauncher {
    /// A launcher of `program`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        LocalProcessLauncher {
            program: program.into(),
        }
    }
}

impl Launcher for LocalProcessLauncher {
    fn launch(&self, request: &WorkerRequest) -> Result<WorkerHandle, LaunchError> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("worker").arg("--project").arg(&request.project).args([
            "--session-id",
            &request.session_id,
            "--listen",
            "127.0.0.1:0",
        ]);
        if let Some(env) = &request.env {
            cmd.args(["--env", env]);
        }
        if let Some(n) = request.max_runs {
            cmd.args(["--max-runs", &n.to_string()]);
        }
        cmd.args(request.limits.worker_args());
        cmd.arg("--stop-on-stdin-eof")
            .env("WEFT_TOKEN", &request.token)
            // The worker serves locally: it must not act on a server.
            .env_remove("WEFT_SERVER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        let pid = child.id();
        let (line_tx, line_rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            // The first line is the address; the rest is drained so the
            // child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = line_tx.send(line);
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
        }
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            std::thread::spawn(move || forward_stderr(stderr, &tail));
        }
        let stdin = child.stdin.take();
        Ok(WorkerHandle::new(LocalProcess {
            child,
            pid,
            stdin,
            line: line_rx,
            address: None,
            exit: None,
            stderr_tail,
        }))
    }
}

const STDERR_TAIL_LINES: usize = 20;

/// A line of a Rust backtrace (`stack backtrace:`, `  12: frame`, `at file:line`).
fn is_backtrace_line(line: &str) -> bool {
    let t = line.trim_start();
    if t == "stack backtrace:" || t.starts_with("note: Some details are omitted") || t.starts_with("at ") {
        return true;
    }
    match t.split_once(": ") {
        Some((n, _)) => !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && line.starts_with(' '),
        None => false,
    }
}

fn forward_stderr(stderr: impl Read, tail: &Mutex<VecDeque<String>>) {
    let reader = BufReader::new(stderr);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(std::io::stderr(), "{line}");
        if is_backtrace_line(&line) {
            // Forwarded, but kept out of the tail: a backtrace's frames
            // would push out the message that says why the worker died.
            continue;
        }
        let mut tail = lock(tail);
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// A `weft worker` child of this process.
struct LocalProcess {
    child: Child,
    pid: u32,
    /// Held open for the child's life: when it closes (this process dies,
    /// or the handle is dropped) the worker exits.
    stdin: Option<ChildStdin>,
    line: mpsc::Receiver<String>,
    address: Option<String>,
    exit: Option<String>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl WorkerProcess for LocalProcess {
    fn describe(&self) -> String {
        format!("pid {}", self.pid)
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn address(&mut self, deadline: Instant) -> Result<String, LaunchError> {
        if let Some(a) = &self.address {
            return Ok(a.clone());
        }
        let started = Instant::now();
        loop {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            match self.line.recv_timeout(wait) {
                Ok(line) => {
                    let address = line
                        .trim()
                        .strip_prefix("weft worker: listening on ")
                        .filter(|url| url.starts_with("http://"))
                        .map(str::to_string);
                    return match address {
                        Some(url) => {
                            self.address = Some(url.clone());
                            Ok(url)
                        }
                        None if line.is_empty() => Err(self.exited_error()),
                        None => Err(LaunchError::NoAddress {
                            worker: self.describe(),
                            line: line.trim_end().to_string(),
                        }),
                    };
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(self.exited_error()),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.exited().is_some() {
                        return Err(self.exited_error());
                    }
                    if Instant::now() >= deadline {
                        return Err(LaunchError::Silent {
                            worker: self.describe(),
                            waited_ms: started.elapsed().as_millis() as u64,
                        });
                    }
                }
            }
        }
    }

    fn exited(&mut self) -> Option<String> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status.to_string());
        }
        self.exit.clone()
    }

    fn stderr_tail(&self) -> String {
        lock(&self.stderr_tail)
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn kill(&mut self) {
        self.stdin.take();
        if self.exit.is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status.to_string());
            }
        }
    }
}

impl LocalProcess {
    fn exited_error(&mut self) -> LaunchError {
        let status = self.exited_settled();
        LaunchError::Exited {
            worker: self.describe(),
            status: status.unwrap_or_else(|| "closed its stdout".into()),
            stderr: self.stderr_tail(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One ready worker of a [`ProcessWorker`].
struct Member {
    url: String,
    token: String,
    name: String,
    handle: Mutex<WorkerHandle>,
}

impl Member {
    fn alive(&self) -> bool {
        lock(&self.handle).process().exited().is_none()
    }

    fn kill(&self) {
        lock(&self.handle).process().kill();
    }
}

#[derive(Default)]
struct Pool {
    /// Every started worker (idle or running a spec).
    members: Vec<Arc<Member>>,
    /// Those free for a dispatch, oldest first.
    idle: VecDeque<Arc<Member>>,
    /// Workers being started.
    starting: usize,
    stopped: bool,
}

impl Pool {
    fn remove(&mut self, m: &Arc<Member>) -> bool {
        let before = self.members.len();
        self.members.retain(|x| !Arc::ptr_eq(x, m));
        self.idle.retain(|x| !Arc::ptr_eq(x, m));
        before != self.members.len()
    }
}

/// Settings of a [`ProcessWorker`].
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    /// Workers kept (the session's `max_concurrency`).
    pub slots: usize,
    /// Start to ready `/healthz`, per worker.
    pub ready_timeout: Duration,
    /// Dispatches after which each worker recycles.
    pub max_runs: Option<u32>,
    /// How long a dispatch keeps retrying workers that answer 409 `busy`.
    pub busy_patience: Duration,
    /// Limits every worker applies to itself; a worker that one of them
    /// ends fails its run with the limit's name ([`WorkerError::LimitExceeded`]).
    pub limits: WorkerLimits,
    /// The session's launcher resources, passed to the launcher with
    /// every worker it starts.
    pub resources: SessionResources,
}

impl ProcessOptions {
    /// `slots` workers, 60 s ready timeout, no recycle, 60 s busy patience.
    pub fn new(slots: usize) -> Self {
        ProcessOptions {
            slots: slots.max(1),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            max_runs: None,
            busy_patience: Duration::from_secs(60),
            limits: WorkerLimits::default(),
            resources: SessionResources::default(),
        }
    }
}

struct Inner {
    launcher: Arc<dyn Launcher>,
    session_id: String,
    project: PathBuf,
    env: Option<String>,
    options: ProcessOptions,
    agent: ureq::Agent,
    pool: Mutex<Pool>,
    available: Notify,
    stopped: AtomicBool,
    progress: Option<Arc<dyn RunProgress>>,
}

/// Hands one progress line of a streamed answer to `progress`.
fn progress_line(progress: &dyn RunProgress, run_id: &str, event: &str, line: &Value) {
    match event {
        "pipeline_started" => {
            if let Some(total) = line.get("total").and_then(Value::as_u64) {
                progress.pipeline_started(run_id, total as usize);
            }
        }
        "node_finished" => {
            let node = line.get("node").and_then(Value::as_str);
            let start = line
                .get("start")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            let ms = line.get("duration_ms").and_then(Value::as_f64);
            if let (Some(node), Some(start), Some(ms)) = (node, start, ms)
                && ms.is_finite()
                && ms >= 0.0
            {
                progress.node_finished(run_id, node, start, Duration::from_secs_f64(ms / 1e3));
            }
        }
        // node_started and events of later workers: nothing to record.
        _ => {}
    }
}

/// A session's workers as `weft worker` processes started by a [`Launcher`].
pub struct ProcessWorker {
    inner: Arc<Inner>,
}

/// What a worker answered to one `/run_spec`.
enum Answer {
    Done { record: Box<RunRecord>, recycle: bool },
    Busy,
    Status { status: u16, message: String },
    Gone(String),
}

#[derive(Deserialize)]
struct Done {
    record: RunRecord,
    #[serde(default)]
    recycle: bool,
}

fn error_message(status: u16, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let mut message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}: {}", body.chars().take(500).collect::<String>()));
    if let Some(problems) = v["error"]["problems"].as_array() {
        let problems: Vec<&str> = problems.iter().filter_map(Value::as_str).collect();
        if !problems.is_empty() && !problems.iter().all(|p| message.contains(p)) {
            message.push_str(&format!(" ({})", problems.join("; ")));
        }
    }
    message
}

impl ProcessWorker {
    /// The workers of session `session_id` (project `project`, environment
    /// `env`), started through `launcher`.
    pub fn new(
        launcher: Arc<dyn Launcher>,
        session_id: impl Into<String>,
        project: impl Into<PathBuf>,
        env: Option<String>,
        options: ProcessOptions,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(2)))
            .build()
            .into();
        ProcessWorker {
            inner: Arc::new(Inner {
                launcher,
                session_id: session_id.into(),
                project: project.into(),
                env,
                options,
                agent,
                progress: None,
                pool: Mutex::new(Pool::default()),
                available: Notify::new(),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// Reports the progress of runs (pipeline started, node finished) that
    /// the workers stream back to `progress`, as in-process runs report it
    /// through hooks. Call before the first dispatch.
    pub fn with_progress(mut self, progress: Arc<dyn RunProgress>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.progress = Some(progress);
        }
        self
    }

    /// The process ids of the workers alive now (local launchers only).
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.inner.pool)
            .members
            .iter()
            .filter_map(|m| lock(&m.handle).process().pid())
            .collect()
    }
}

impl Inner {
    /// Starts one worker and waits until its `/healthz` says ready.
    async fn boot(self: &Arc<Self>) -> Result<Arc<Member>, WorkerError> {
        let inner = Arc::clone(self);
        let booted = tokio::task::spawn_blocking(move || inner.boot_blocking()).await;
        booted.unwrap_or_else(|join| {
            Err(WorkerError::Unavailable(format!(
                "starting a worker panicked: {join}"
            )))
        })
    }

    fn boot_blocking(&self) -> Result<Arc<Member>, WorkerError> {
        let started = Instant::now();
        let deadline = started + self.options.ready_timeout;
        let request = WorkerRequest {
            session_id: self.session_id.clone(),
            project: self.project.clone(),
            env: self.env.clone(),
            max_runs: self.options.max_runs,
            token: uuid::Uuid::new_v4().simple().to_string(),
            limits: self.options.limits,
            resources: self.options.resources.clone(),
        };
        let mut handle = self.launcher.launch(&request)?;
        let name = handle.process().describe();
        let not_ready = |name: &str| WorkerError::NotReady {
            worker: name.to_string(),
            waited_ms: started.elapsed().as_millis() as u64,
        };
        let url = match handle.process().address(deadline) {
            Ok(url) => url,
            Err(LaunchError::Silent { .. }) => return Err(not_ready(&name)),
            Err(e) => return Err(e.into()),
        };
        loop {
            if let Some(status) = handle.process().exited() {
                return Err(LaunchError::Exited {
                    worker: name,
                    status,
                    stderr: handle.process().stderr_tail(),
                }
                .into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(not_ready(&name));
            }
            let ready = self
                .agent
                .get(&format!("{url}/healthz"))
                .config()
                .timeout_global(Some(left.min(Duration::from_secs(1))))
                .build()
                .call()
                .ok()
                .filter(|r| r.status().as_u16() == 200);
            if ready.is_some() {
                tracing::debug!(session = %self.session_id, worker = %name, %url, "worker ready");
                return Ok(Arc::new(Member {
                    url,
                    token: request.token,
                    name,
                    handle: Mutex::new(handle),
                }));
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }

    /// Adds a booted worker to the pool (or kills it when stopped meanwhile).
    fn admit(&self, m: Arc<Member>, idle: bool) -> bool {
        let mut pool = lock(&self.pool);
        if pool.stopped {
            drop(pool);
            m.kill();
            return false;
        }
        pool.members.push(Arc::clone(&m));
        if idle {
            pool.idle.push_back(m);
        }
        drop(pool);
        self.available.notify_waiters();
        true
    }

    /// A free worker, starting one when below the slot count.
    async fn acquire(self: &Arc<Self>) -> Result<Arc<Member>, WorkerError> {
        loop {
            let notified = self.available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let boot = {
                let mut pool = lock(&self.pool);
                if pool.stopped {
                    return Err(WorkerError::Unavailable(
                        "the session's workers are stopped".into(),
                    ));
                }
                let mut dead = Vec::new();
                let mut found = None;
                while let Some(m) = pool.idle.pop_front() {
                    if m.alive() {
                        found = Some(m);
                        break;
                    }
                    dead.push(m);
                }
                for m in &dead {
                    pool.remove(m);
                }
                if let Some(m) = found {
                    return Ok(m);
                }
                let boot = pool.members.len() + pool.starting < self.options.slots;
                if boot {
                    pool.starting += 1;
                }
                boot
            };
            if boot {
                let booted = self.boot().await;
                lock(&self.pool).starting -= 1;
                return match booted {
                    Ok(m) if self.admit(Arc::clone(&m), false) => Ok(m),
                    Ok(_) => Err(WorkerError::Unavailable(
                        "the session's workers are stopped".into(),
                    )),
                    Err(e) => {
                        self.available.notify_waiters();
                        Err(e)
                    }
                };
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Puts a worker back after a dispatch.
    fn release(&self, m: Arc<Member>) {
        let mut pool = lock(&self.pool);
        if pool.members.iter().any(|x| Arc::ptr_eq(x, &m)) && !pool.stopped {
            pool.idle.push_back(m);
            drop(pool);
            self.available.notify_waiters();
        }
    }

    /// Takes a worker out of the pool (it recycles, or it died) and starts
    /// its replacement now, so no later dispatch waits for a cold start.
    fn retire(self: &Arc<Self>, m: Arc<Member>, graceful: bool) {
        let replace = {
            let mut pool = lock(&self.pool);
            pool.remove(&m);
            let replace = !pool.stopped && pool.members.len() + pool.starting < self.options.slots;
            if replace {
                pool.starting += 1;
            }
            replace
        };
        tokio::task::spawn_blocking(move || {
            if graceful {
                // It exits by itself once its last answer is sent.
                let until = Instant::now() + Duration::from_secs(5);
                while m.alive() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            m.kill();
        });
        if replace {
            let inner = Arc::clone(self);
            tokio::spawn(async move {
                let booted = inner.boot().await;
                lock(&inner.pool).starting -= 1;
                match booted {
                    Ok(m) => {
                        inner.admit(m, true);
                    }
                    Err(e) => {
                        // The next dispatch starts one itself and reports why it cannot.
                        tracing::warn!(session = %inner.session_id, "could not start a replacement worker: {e}");
                        inner.available.notify_waiters();
                    }
                }
            });
        }
    }

    fn post(
        &self,
        m: &Member,
        path: &str,
        body: &[u8],
        timeout: Option<Duration>,
    ) -> Result<(u16, String), String> {
        let response = self
            .agent
            .post(&format!("{}{path}", m.url))
            .header("Authorization", &format!("Bearer {}", m.token))
            .header("Content-Type", "application/json")
            .config()
            .timeout_global(timeout)
            .build()
            .send(body);
        match response {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r
                    .body_mut()
                    .with_config()
                    .limit(crate::worker_app::WORKER_BODY_LIMIT as u64)
                    .read_to_string();
                match text {
                    Ok(text) => Ok((status, text)),
                    Err(e) => Err(format!("reading the answer of worker {}: {e}", m.name)),
                }
            }
            Err(e) => Err(format!("worker {} at {}: {e}", m.name, m.url)),
        }
    }

    /// Posts one spec asking for a streamed answer: progress lines go to
    /// the session's [`RunProgress`] as they arrive, and the last line is
    /// the answer, returned as (status, body) like [`Inner::post`]'s.
    fn post_run_spec(&self, m: &Member, body: &[u8], run_id: &str) -> Result<(u16, String), String> {
        let response = self
            .agent
            .post(&format!("{}/run_spec", m.url))
            .header("Authorization", &format!("Bearer {}", m.token))
            .header("Content-Type", "application/json")
            .header("Accept", crate::worker_app::NDJSON)
            .send(body);
        let mut r = match response {
            Ok(r) => r,
            Err(e) => return Err(format!("worker {} at {}: {e}", m.name, m.url)),
        };
        let status = r.status().as_u16();
        let limit = crate::worker_app::WORKER_BODY_LIMIT as u64;
        if status != 200 || r.body().mime_type() != Some(crate::worker_app::NDJSON) {
            return match r.body_mut().with_config().limit(limit).read_to_string() {
                Ok(text) => Ok((status, text)),
                Err(e) => Err(format!("reading the answer of worker {}: {e}", m.name)),
            };
        }
        let reader = BufReader::new(r.into_body().into_with_config().limit(limit).reader());
        for line in reader.lines() {
            let line = line.map_err(|e| format!("reading the answer of worker {}: {e}", m.name))?;
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                return Ok((502, json!({"error": {"code": "bad_gateway", "message": format!("worker {} sent an unreadable line: {line:.200}", m.name)}}).to_string()));
            };
            match value.get("event").and_then(Value::as_str) {
                Some(event) => {
                    if let Some(progress) = &self.progress {
                        progress_line(progress.as_ref(), run_id, event, &value);
                    }
                }
                None => {
                    return Ok(match value.get("error") {
                        Some(e) => (
                            e.get("status").and_then(Value::as_u64).unwrap_or(500) as u16,
                            json!({"error": e}).to_string(),
                        ),
                        None => (200, line),
                    });
                }
            }
        }
        Err(format!("worker {} ended its answer without a result", m.name))
    }

    /// Sends one spec and waits for the answer, forwarding `cancel`.
    async fn send(
        self: &Arc<Self>,
        m: &Arc<Member>,
        body: &Arc<Vec<u8>>,
        run_id: &str,
        cancel: &CancelToken,
    ) -> Answer {
        let call = {
            let inner = Arc::clone(self);
            let m = Arc::clone(m);
            let body = Arc::clone(body);
            let run_id = run_id.to_string();
            tokio::task::spawn_blocking(move || inner.post_run_spec(&m, &body, &run_id))
        };
        tokio::pin!(call);
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        let mut cancel_sent: Option<Instant> = None;
        let answer = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tick.tick() => {
                    // Resent while the answer is pending: a cancel that
                    // arrives before the worker registered the run is not lost.
                    if cancel.is_cancelled() && cancel_sent.is_none_or(|t| t.elapsed() > Duration::from_millis(250)) {
                        cancel_sent = Some(Instant::now());
                        let inner = Arc::clone(self);
                        let m = Arc::clone(m);
                        let body = json!({"run_id": run_id}).to_string();
                        tokio::task::spawn_blocking(move || {
                            let _ = inner.post(&m, "/cancel", body.as_bytes(), Some(Duration::from_secs(2)));
                        });
                    }
                }
            }
        };
        match answer {
            Err(join) => Answer::Gone(format!("the dispatch thread died: {join}")),
            Ok(Err(transport)) => Answer::Gone(transport),
            Ok(Ok((200, text))) => match serde_json::from_str::<Done>(&text) {
                Ok(done) => Answer::Done {
                    record: Box::new(done.record),
                    recycle: done.recycle,
                },
                Err(e) => Answer::Status {
                    status: 502,
                    message: format!("worker {} answered an unreadable record: {e}", m.name),
                },
            },
            Ok(Ok((409, _))) => Answer::Busy,
            Ok(Ok((status, text))) => Answer::Status {
                status,
                message: error_message(status, &text),
            },
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        spec: RunSpec,
        cancel: CancelToken,
    ) -> Result<RunRecord, WorkerError> {
        let run_id = spec.run_id().to_string();
        let body = serde_json::to_vec(&json!({"spec": spec}))
            .map_err(|e| WorkerError::Unavailable(format!("the spec does not encode: {e}")))?;
        let body = Arc::new(body);
        let mut server_errors = 0;
        let mut busy_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(20);
        loop {
            let m = self.acquire().await?;
            match self.send(&m, &body, &run_id, &cancel).await {
                Answer::Done { record, .. }
                    if record.status == weft_store::RunStatus::Cancelled
                        && !cancel.is_cancelled()
                        && !self.stopped.load(Ordering::SeqCst) =>
                {
                    // Nobody here cancelled it: the worker was stopped from
                    // outside (SIGTERM, a stopped Ray job) and cancelled its
                    // run on the way out. The run did not complete: it is
                    // interrupted, and the worker replaced.
                    let why = format!(
                        "worker {} was stopped mid-run (it cancelled run {run_id} on its way out)",
                        m.name
                    );
                    self.retire(m, true);
                    return Err(WorkerError::Unavailable(why));
                }
                Answer::Done { record, recycle } => {
                    if recycle {
                        self.retire(m, true);
                    } else {
                        self.release(m);
                    }
                    return Ok(*record);
                }
                Answer::Busy => {
                    self.release(m);
                    let since = *busy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.options.busy_patience || cancel.is_cancelled() {
                        return Err(WorkerError::Busy);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Answer::Status { status, message } if status >= 500 => {
                    self.release(m);
                    server_errors += 1;
                    if server_errors >= 2 {
                        return Err(WorkerError::Refused { status, message });
                    }
                    tracing::warn!(%run_id, status, "worker failed the dispatch; retrying once: {message}");
                }
                Answer::Status { status, message } => {
                    self.release(m);
                    return Err(WorkerError::Refused { status, message });
                }
                Answer::Gone(why) => {
                    let ended = {
                        let m = Arc::clone(&m);
                        tokio::task::spawn_blocking(move || {
                            let mut handle = lock(&m.handle);
                            let process = handle.process();
                            process
                                .exited_settled()
                                .map(|status| (status, process.stderr_tail()))
                        })
                        .await
                        .ok()
                        .flatten()
                    };
                    let name = m.name.clone();
                    self.retire(m, false);
                    if let Some((status, stderr)) = ended {
                        if let Some(limit) = self.options.limits.explain_exit(&status, &stderr) {
                            return Err(WorkerError::LimitExceeded(limit));
                        }
                        return Err(WorkerError::Unavailable(format!(
                            "worker {name} died mid-run ({status})"
                        )));
                    }
                    return Err(WorkerError::Unavailable(why));
                }
            }
        }
    }

    async fn start(self: &Arc<Self>) -> Result<(), WorkerError> {
        let n = {
            let mut pool = lock(&self.pool);
            let n = self
                .options
                .slots
                .saturating_sub(pool.members.len() + pool.starting);
            pool.starting += n;
            n
        };
        let mut boots = tokio::task::JoinSet::new();
        for _ in 0..n {
            let inner = Arc::clone(self);
            boots.spawn(async move { inner.boot().await });
        }
        let mut first_error = None;
        let mut booted = Vec::new();
        while let Some(r) = boots.join_next().await {
            lock(&self.pool).starting -= 1;
            match r {
                Ok(Ok(m)) => booted.push(m),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(join) => {
                    first_error.get_or_insert(WorkerError::Unavailable(format!(
                        "starting a worker panicked: {join}"
                    )));
                }
            }
        }
        if let Some(e) = first_error {
            for m in booted {
                m.kill();
            }
            self.available.notify_waiters();
            return Err(e);
        }
        for m in booted {
            self.admit(m, true);
        }
        Ok(())
    }

    async fn stop(self: &Arc<Self>, mode: CloseMode) {
        self.stopped.store(true, Ordering::SeqCst);
        let (members, idle) = {
            let mut pool = lock(&self.pool);
            pool.stopped = true;
            let idle = std::mem::take(&mut pool.idle);
            (std::mem::take(&mut pool.members), idle)
        };
        self.available.notify_waiters();
        let body = json!({"mode": if mode == CloseMode::Cancel { "cancel" } else { "wait" }}).to_string();
        let mut stops = tokio::task::JoinSet::new();
        for m in members {
            let inner = Arc::clone(self);
            let body = body.clone();
            let idle = idle.iter().any(|x| Arc::ptr_eq(x, &m));
            stops.spawn_blocking(move || {
                if idle && lock(&m.handle).process().stop_idle_by_kill() {
                    m.kill();
                    return;
                }
                let _ = inner.post(&m, "/stop", body.as_bytes(), Some(Duration::from_secs(2)));
                let until = Instant::now() + Duration::from_secs(5);
                while m.alive() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                m.kill();
            });
        }
        while stops.join_next().await.is_some() {}
    }

    fn kill_all(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let members = {
            let mut pool = lock(&self.pool);
            pool.stopped = true;
            pool.idle.clear();
            std::mem::take(&mut pool.members)
        };
        for m in members {
            m.kill();
        }
    }
}

impl Worker for ProcessWorker {
    fn start(&self) -> BoxFuture<'_, Result<(), WorkerError>> {
        Box::pin(self.inner.start())
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let pool = lock(&self.inner.pool);
            if pool.stopped {
                Health::Down
            } else if pool.members.iter().any(|m| m.alive()) {
                Health::Ready
            } else if pool.starting > 0 {
                Health::Starting
            } else {
                Health::Down
            }
        })
    }

    fn dispatch(&self, spec: RunSpec, cancel: CancelToken) -> BoxFuture<'_, Result<RunRecord, WorkerError>> {
        Box::pin(self.inner.dispatch(spec, cancel))
    }

    fn stop(&self, mode: CloseMode) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.stop(mode))
    }
}

impl Drop for ProcessWorker {
    fn drop(&mut self) {
        self.inner.kill_all();
    }
}

/// The worker of a server session: in-process threads on `service`, or
/// `weft worker` processes (one per unit of the session's
/// `max_concurrency`) for session `record` in environment `env`.
pub(crate) fn session_worker(
    launcher: &LauncherConfig,
    service: &Arc<weft_session::ServiceSession>,
    record: &weft_store::ServerSessionRecord,
    env: Option<String>,
    progress: Arc<dyn RunProgress>,
) -> Arc<dyn Worker> {
    let resources = SessionResources::from_extra(&record.extra);
    match launcher {
        LauncherConfig::InProcess => Arc::new(crate::worker::InProcessWorker::new(Arc::clone(service))),
        LauncherConfig::Process {
            program,
            max_runs,
            ready_timeout,
            limits,
        } => {
            let mut options = ProcessOptions::new(record.max_concurrency.max(1) as usize);
            options.max_runs = *max_runs;
            options.ready_timeout = *ready_timeout;
            options.limits = *limits;
            // A local child has no scheduler: the session's memory becomes
            // the limit the worker applies to itself; the other resources
            // mean nothing here.
            if let Some(bytes) = resources.memory {
                options.limits.memory_bytes = Some(bytes);
            }
            options.resources = resources.clone();
            Arc::new(
                ProcessWorker::new(
                    Arc::new(LocalProcessLauncher::new(program)),
                    record.session_id.clone(),
                    PathBuf::from(&record.project_path),
                    env,
                    options,
                )
                .with_progress(progress),
            )
        }
        LauncherConfig::Ray {
            address,
            program,
            max_runs,
            ready_timeout,
            num_cpus,
            memory,
            listen_host,
            working_dir,
            limits,
        } => {
            let mut ray = crate::ray::RayOptions::new(address.clone(), program.clone());
            ray.num_cpus = *num_cpus;
            ray.memory = *memory;
            if let Some(host) = listen_host {
                ray.listen_host = *host;
            }
            ray.working_dir = working_dir.clone();
            let mut options = ProcessOptions::new(record.max_concurrency.max(1) as usize);
            options.max_runs = *max_runs;
            options.ready_timeout = *ready_timeout;
            options.limits = *limits;
            options.resources = resources.clone();
            Arc::new(
                ProcessWorker::new(
                    Arc::new(crate::ray::RayLauncher::new(ray)),
                    record.session_id.clone(),
                    PathBuf::from(&record.project_path),
                    env,
                    options,
                )
                .with_progress(progress),
            )
        }
        LauncherConfig::External(external) => {
            let mut options = ProcessOptions::new(record.max_concurrency.max(1) as usize);
            options.max_runs = external.max_runs;
            options.ready_timeout = external.ready_timeout;
            options.limits = external.limits;
            options.resources = resources.clone();
            Arc::new(
                ProcessWorker::new(
                    Arc::clone(&external.launcher),
                    record.session_id.clone(),
                    PathBuf::from(&record.project_path),
                    env,
                    options,
                )
                .with_progress(progress),
            )
        }
        LauncherConfig::Slurm {
            options: slurm,
            max_runs,
            ready_timeout,
            limits,
        } => {
            let mut options = ProcessOptions::new(record.max_concurrency.max(1) as usize);
            options.max_runs = *max_runs;
            options.ready_timeout = *ready_timeout;
            options.limits = *limits;
            options.resources = resources.clone();
            Arc::new(
                ProcessWorker::new(
                    Arc::new(crate::slurm::SlurmLauncher::new(slurm.clone())),
                    record.session_id.clone(),
                    PathBuf::from(&record.project_path),
                    env,
                    options,
                )
                .with_progress(progress),
            )
        }
    }
}

// Shared by the launchers whose workers start from a shell command and
// announce their address on their output (Ray, Slurm).

/// `s` as one word for `sh`.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,[]".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The URL in a worker's `weft worker: listening on http://ADDR` line.
pub(crate) fn announced_address(logs: &str) -> Option<String> {
    logs.lines().find_map(|line| {
        line.trim()
            .strip_prefix("weft worker: listening on ")
            .filter(|url| url.starts_with("http://"))
            .map(str::to_string)
    })
}

/// `url` with an unspecified host (`0.0.0.0`, `[::]`) replaced by `host`.
pub(crate) fn reachable(url: &str, host: Option<&str>) -> String {
    let Some(rest) = url.strip_prefix("http://") else {
        return url.to_string();
    };
    let Some((h, port)) = rest.rsplit_once(':') else {
        return url.to_string();
    };
    match (h, host) {
        ("0.0.0.0" | "[::]", Some(node)) => format!("http://{node}:{port}"),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    use axum::Router;
    use axum::routing::{get, post};

    type Serve = Box<dyn FnOnce(tokio::net::TcpListener) -> BoxFuture<'static, ()> + Send>;

    /// A "process" that is an HTTP server on its own runtime and thread:
    /// killing it drops every connection at once, as a dead process would.
    struct FakeProcess {
        url: String,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
        exited: Arc<AtomicBool>,
    }

    impl FakeProcess {
        fn spawn(serve: Serve) -> Self {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let exited = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&exited);
            let thread = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        _ = serve(listener) => {}
                        _ = rx => {}
                    }
                });
                rt.shutdown_background();
                flag.store(true, Ordering::SeqCst);
            });
            FakeProcess {
                url,
                stop: Some(tx),
                thread: Some(thread),
                exited,
            }
        }
    }

    impl WorkerProcess for FakeProcess {
        fn describe(&self) -> String {
            format!("fake {}", self.url)
        }
        fn pid(&self) -> Option<u32> {
            None
        }
        fn address(&mut self, _deadline: Instant) -> Result<String, LaunchError> {
            Ok(self.url.clone())
        }
        fn exited(&mut self) -> Option<String> {
            self.exited.load(Ordering::SeqCst).then(|| "exited".to_string())
        }
        fn kill(&mut self) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    type Make = Box<dyn Fn(&WorkerRequest) -> Result<Serve, LaunchError> + Send + Sync>;

    struct FakeLauncher {
        make: Make,
        launches: AtomicUsize,
        requests: Mutex<Vec<WorkerRequest>>,
    }

    impl FakeLauncher {
        fn new(
            make: impl Fn(&WorkerRequest) -> Result<Serve, LaunchError> + Send + Sync + 'static,
        ) -> Arc<Self> {
            Arc::new(FakeLauncher {
                make: Box::new(make),
                launches: AtomicUsize::new(0),
                requests: Mutex::new(Vec::new()),
            })
        }
        fn launches(&self) -> usize {
            self.launches.load(Ordering::SeqCst)
        }
    }

    impl Launcher for FakeLauncher {
        fn launch(&self, request: &WorkerRequest) -> Result<WorkerHandle, LaunchError> {
            self.launches.fetch_add(1, Ordering::SeqCst);
            lock(&self.requests).push(request.clone());
            Ok(WorkerHandle::new(FakeProcess::spawn((self.make)(request)?)))
        }
    }

    fn router(r: Router) -> Serve {
        Box::new(move |listener| {
            Box::pin(async move {
                let _ = axum::serve(listener, r).await;
            }) as BoxFuture<'static, ()>
        })
    }

    fn ready() -> Router {
        Router::new().route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ready"})) }),
        )
    }

    fn record(spec: &RunSpec) -> RunRecord {
        weft_session::run_record(spec, weft_core::RunStatus::Succeeded, "fake:1")
    }

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("weft.toml", "[project]\nname = \"p\"\n");
        write(
            "pipelines.yml",
            "__default__:\n  nodes:\n    - name: wait\n      func: sleep_ms\n      inputs: [params:delay, params:start]\n      outputs: waited\n    - name: next\n      func: add_one\n      inputs: waited\n      outputs: out\n",
        );
        write("conf/base/parameters.yml", "start: 1\ndelay: 0\n");
        std::fs::create_dir_all(root.join("conf/local")).unwrap();
        dir
    }

    fn open(root: &std::path::Path, id: &str) -> Arc<weft_session::ServiceSession> {
        Arc::new(crate::worker::open_served_session(root, Default::default(), id, 1).unwrap())
    }

    fn spec_of(session: &weft_session::ServiceSession, params: Value) -> RunSpec {
        let config = weft_session::RunConfig {
            runtime_params: params,
            ..weft_session::RunConfig::default()
        };
        session.prepare(&config).unwrap().spec().clone()
    }

    fn worker(launcher: Arc<FakeLauncher>, slots: usize) -> ProcessWorker {
        let mut options = ProcessOptions::new(slots);
        options.ready_timeout = Duration::from_secs(5);
        ProcessWorker::new(launcher, "s1", "/nowhere", None, options)
    }

    /// A launcher of real worker routers ([`crate::worker_app`]) over one
    /// project, each its own "process".
    fn real_workers(root: &std::path::Path, max_runs: Option<u32>) -> Arc<FakeLauncher> {
        let root = root.to_path_buf();
        FakeLauncher::new(move |req| {
            let state = crate::worker_app::WorkerState::new(
                req.session_id.clone(),
                Some(req.token.clone()),
                max_runs,
            );
            state.set_ready(open(&root, &req.session_id));
            let serve: Serve = Box::new(move |listener| {
                Box::pin(async move {
                    let _ = crate::worker_app::serve_worker(state, listener).await;
                }) as BoxFuture<'static, ()>
            });
            Ok(serve)
        })
    }

    #[tokio::test]
    async fn dispatches_to_real_workers_and_recycles_with_a_replacement_ready() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let launcher = real_workers(dir.path(), Some(2));
        let w = worker(Arc::clone(&launcher), 1);
        w.start().await.unwrap();
        assert_eq!(w.health().await, Health::Ready);
        assert_eq!(launcher.launches(), 1);
        for i in 0..5 {
            let record = w
                .dispatch(spec_of(&session, json!({"start": i})), CancelToken::new())
                .await
                .unwrap();
            assert_eq!(record.status, weft_core::RunStatus::Succeeded, "{record:?}");
            assert_eq!(record.outputs["out"], json!(i + 1));
        }
        // Runs 2 and 4 recycled their worker: three workers served five runs.
        assert_eq!(launcher.launches(), 3);
        let tokens: std::collections::BTreeSet<String> =
            lock(&launcher.requests).iter().map(|r| r.token.clone()).collect();
        assert_eq!(tokens.len(), 3, "each worker gets its own token");
        w.stop(CloseMode::Wait).await;
        assert_eq!(w.health().await, Health::Down);
        let err = w
            .dispatch(spec_of(&session, json!({})), CancelToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, WorkerError::Unavailable(_)), "{err}");
    }

    #[tokio::test]
    async fn cancel_is_forwarded_to_the_worker() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let w = worker(real_workers(dir.path(), None), 1);
        let cancel = CancelToken::new();
        let spec = spec_of(&session, json!({"delay": 5000}));
        let t0 = Instant::now();
        let run = {
            let cancel = cancel.clone();
            async move { w.dispatch(spec, cancel).await }
        };
        let canceller = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            cancel.cancel();
        };
        let (record, ()) = tokio::join!(run, canceller);
        let record = record.unwrap();
        assert_eq!(record.status, weft_core::RunStatus::Cancelled, "{record:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "cancelled, not run to the end"
        );
    }

    #[tokio::test]
    async fn a_worker_stopped_from_outside_mid_run_interrupts_the_run_and_is_replaced() {
        // A real worker router whose state the test holds: stopping it with
        // `Cancel` is what SIGTERM (a stopped Ray job) does to `weft worker`.
        let dir = project();
        let session = open(dir.path(), "s1");
        let states: Arc<Mutex<Vec<Arc<crate::worker_app::WorkerState>>>> = Arc::default();
        let root = dir.path().to_path_buf();
        let held = Arc::clone(&states);
        let launcher = FakeLauncher::new(move |req| {
            let state =
                crate::worker_app::WorkerState::new(req.session_id.clone(), Some(req.token.clone()), None);
            state.set_ready(open(&root, &req.session_id));
            lock(&held).push(Arc::clone(&state));
            let serve: Serve = Box::new(move |listener| {
                Box::pin(async move {
                    let _ = crate::worker_app::serve_worker(state, listener).await;
                }) as BoxFuture<'static, ()>
            });
            Ok(serve)
        });
        let w = Arc::new(worker(Arc::clone(&launcher), 1));
        w.start().await.unwrap();
        let run = {
            let w = Arc::clone(&w);
            let spec = spec_of(&session, json!({"delay": 3000}));
            tokio::spawn(async move { w.dispatch(spec, CancelToken::new()).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let first = lock(&states)[0].clone();
        first.stop(CloseMode::Cancel);
        let err = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, WorkerError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains("stopped mid-run"), "{err}");
        // The next run goes to a replacement worker and succeeds.
        let record = w
            .dispatch(spec_of(&session, json!({"start": 4})), CancelToken::new())
            .await
            .unwrap();
        assert_eq!(record.status, weft_core::RunStatus::Succeeded, "{record:?}");
        assert_eq!(launcher.launches(), 2);
        w.stop(CloseMode::Wait).await;
    }

    #[tokio::test]
    async fn a_5xx_is_retried_once_then_the_run_fails() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let launcher = FakeLauncher::new(move |_| {
            let c = Arc::clone(&c);
            Ok(router(ready().route(
                "/run_spec",
                post(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                    async {
                        (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            axum::Json(json!({"error": {"code": "x", "message": "disk on fire"}})),
                        )
                    }
                }),
            )))
        });
        let dir = project();
        let session = open(dir.path(), "s1");
        let w = worker(launcher, 1);
        let err = w
            .dispatch(spec_of(&session, json!({})), CancelToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, WorkerError::Refused { status: 500, message } if message.contains("disk on fire")),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one retry, no more");
    }

    #[tokio::test]
    async fn a_4xx_fails_the_run_with_the_workers_error_without_retry() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let launcher = FakeLauncher::new(move |_| {
            let c = Arc::clone(&c);
            Ok(router(ready().route(
                "/run_spec",
                post(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                    async {
                        (
                            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                            axum::Json(json!({"error": {"code": "invalid", "message": "invalid runs", "problems": ["pipeline `x` does not exist"]}})),
                        )
                    }
                }),
            )))
        });
        let dir = project();
        let session = open(dir.path(), "s1");
        let w = worker(launcher, 1);
        let err = w
            .dispatch(spec_of(&session, json!({})), CancelToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, WorkerError::Refused { status: 422, message } if message.contains("pipeline `x` does not exist")),
            "{err}"
        );
        assert_eq!(err.code(), "worker_refused");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn busy_is_retried_later() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let launcher = FakeLauncher::new(move |_| {
            let c = Arc::clone(&c);
            Ok(router(ready().route(
                "/run_spec",
                post(move |body: axum::body::Bytes| {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n < 2 {
                            return (
                                axum::http::StatusCode::CONFLICT,
                                axum::Json(json!({"error": {"code": "busy", "message": "busy"}})),
                            );
                        }
                        let v: Value = serde_json::from_slice(&body).unwrap();
                        let spec: RunSpec = serde_json::from_value(v["spec"].clone()).unwrap();
                        (
                            axum::http::StatusCode::OK,
                            axum::Json(json!({"record": record(&spec), "recycle": false})),
                        )
                    }
                }),
            )))
        });
        let dir = project();
        let session = open(dir.path(), "s1");
        let spec = spec_of(&session, json!({}));
        let w = worker(Arc::clone(&launcher), 1);
        let got = w.dispatch(spec.clone(), CancelToken::new()).await.unwrap();
        assert_eq!(got.run_id, spec.run_id());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(launcher.launches(), 1, "busy is not a dead worker");
    }

    #[tokio::test]
    async fn a_worker_dying_mid_run_is_unavailable_and_replaced_before_the_next_dispatch() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let launcher = FakeLauncher::new(move |_| {
            Ok(router(ready().route(
                "/run_spec",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "never"
                }),
            )))
        });
        let w = Arc::new(worker(Arc::clone(&launcher), 1));
        w.start().await.unwrap();
        let run = {
            let w = Arc::clone(&w);
            let spec = spec_of(&session, json!({}));
            tokio::spawn(async move { w.dispatch(spec, CancelToken::new()).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Kill the worker "process" under the running dispatch.
        let victim = lock(&w.inner.pool).members[0].clone();
        victim.kill();
        let t0 = Instant::now();
        let err = run.await.unwrap().unwrap_err();
        assert!(matches!(err, WorkerError::Unavailable(_)), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(5), "detected at once");
        // The replacement is started without waiting for a dispatch.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(launcher.launches() == 2 && lock(&w.inner.pool).idle.len() == 1) {
            assert!(Instant::now() < deadline, "no replacement");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            !lock(&w.inner.pool)
                .members
                .iter()
                .any(|m| Arc::ptr_eq(m, &victim))
        );
    }

    #[tokio::test]
    async fn a_worker_never_ready_fails_start_with_healthz_timeout() {
        let launcher = FakeLauncher::new(|_| {
            Ok(router(Router::new().route(
                "/healthz",
                get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting") }),
            )))
        });
        let mut options = ProcessOptions::new(2);
        options.ready_timeout = Duration::from_millis(300);
        let w = ProcessWorker::new(launcher, "s1", "/nowhere", None, options);
        let t0 = Instant::now();
        let err = w.start().await.unwrap_err();
        assert_eq!(err.code(), "worker_healthz_timeout", "{err}");
        assert!(t0.elapsed() < Duration::from_secs(3));
        assert!(
            lock(&w.inner.pool).members.is_empty(),
            "the started workers are gone"
        );
    }

    #[tokio::test]
    async fn a_refusing_launcher_fails_start_with_its_message() {
        let launcher =
            FakeLauncher::new(|_| Err(LaunchError::Refused("no capacity left on the moon".into())));
        let w = worker(launcher, 1);
        let err = w.start().await.unwrap_err();
        assert_eq!(err.code(), "worker_launch_failed");
        assert!(err.to_string().contains("no capacity left on the moon"), "{err}");
    }

    #[tokio::test]
    async fn keeps_one_single_flight_worker_per_slot() {
        let dir = project();
        let session = open(dir.path(), "s1");
        let launcher = real_workers(dir.path(), None);
        let w = Arc::new(worker(Arc::clone(&launcher), 2));
        w.start().await.unwrap();
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let w = Arc::clone(&w);
                let spec = spec_of(&session, json!({"start": i, "delay": 100}));
                tokio::spawn(async move { w.dispatch(spec, CancelToken::new()).await })
            })
            .collect();
        for r in runs {
            assert_eq!(r.await.unwrap().unwrap().status, weft_core::RunStatus::Succeeded);
        }
        assert_eq!(
            launcher.launches(),
            2,
            "two slots, two workers, none busy-refused into a third"
        );
    }

    #[test]
    fn backtrace_lines_stay_out_of_the_stderr_tail() {
        for line in [
            "stack backtrace:",
            "   0: __rustc::rust_begin_unwind",
            "             at ./src/main.rs:4:5",
            "note: Some details are omitted, run with `RUST_BACKTRACE=full`",
        ] {
            assert!(is_backtrace_line(line), "{line}");
        }
        for line in [
            "memory allocation of 1073741824 bytes failed",
            "12: not indented",
            "error: x",
        ] {
            assert!(!is_backtrace_line(line), "{line}");
        }
    }

    #[test]
    fn local_launcher_reports_a_missing_program() {
        let launcher = LocalProcessLauncher::new("/definitely/not/a/program");
        let request = WorkerRequest {
            session_id: "s".into(),
            project: PathBuf::from("."),
            env: None,
            max_runs: None,
            token: "t".into(),
            limits: WorkerLimits::default(),
            resources: SessionResources::default(),
        };
        let err = launcher.launch(&request).err().unwrap();
        assert!(matches!(err, LaunchError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/definitely/not/a/program"));
    }

    #[test]
    fn local_launcher_reports_an_early_exit_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("broken-worker");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'error: the project is broken' >&2\nexit 3\n",
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        let request = WorkerRequest {
            session_id: "s".into(),
            project: PathBuf::from("."),
            env: None,
            max_runs: None,
            token: "t".into(),
            limits: WorkerLimits::default(),
            resources: SessionResources::default(),
        };
        let mut handle = LocalProcessLauncher::new(&script).launch(&request).unwrap();
        let err = handle
            .process()
            .address(Instant::now() + Duration::from_secs(5))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LaunchError::Exited { .. }), "{text}");
        assert!(
            text.contains("the project is broken") && text.contains('3'),
            "{text}"
        );
    }
}
