//! The manager (sessions, the store, the reconcile pass) and the session
//! masters (one async task per live session: its queue, concurrency limit,
//! idle timer, workers and shutdown).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use weft_core::{NodeTiming, RunContext, RunFailure, RunStatus};
use weft_pipeline::{CancelToken, Data, Node};
use weft_runner::Hook;
use weft_session::{CloseMode, RunConfig, RunSpec, ServiceSession, SessionOptions, run_record};
use weft_store::{Claimed, QueueItem, RunFilter, RunRecord, ServerSessionRecord, Store};

use crate::clock::Clock;
use crate::error::{ServerError, problems_of};
use crate::events::{DEFAULT_RING, EventLog};
use crate::metrics::{Gauges, Metrics};
use crate::process::LauncherConfig;
use crate::states::{SessionEvent, SessionState, transition};
use crate::worker::{RunProgress, Worker, WorkerError};

/// Settings of a server, resolved at the edge (the CLI reads flags and the
/// environment; the library reads neither).
#[derive(Clone)]
pub struct ServerConfig {
    /// The project sessions open when a create request names none.
    pub project: PathBuf,
    /// Options every session's project is opened with (functions, dataset
    /// types, runners, environment for `${oc.env:}`, provenance). Their
    /// `store` is ignored: the server records runs itself.
    pub session_options: SessionOptions,
    /// The bearer token; `None` serves without authentication (the CLI
    /// allows that only on a loopback address).
    pub token: Option<String>,
    /// Most runs executing at once in this server, over all sessions.
    pub max_workers: usize,
    /// Idle TTL of sessions that do not set one.
    pub idle_ttl: Duration,
    /// How long a session may wait for input without a heartbeat before it
    /// is aborted.
    pub abandon_after: Duration,
    /// A claimed run's lease; renewed while it runs.
    pub lease: Duration,
    /// How often the reconcile pass runs.
    pub reconcile_every: Duration,
    /// Most queued runs per session (more is 429).
    pub max_queued_per_session: u64,
    /// Most runs one request may submit (a sweep's product included).
    pub max_runs_per_request: u64,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Largest dataset file `GET /v1/runs/{id}/datasets/{name}` serves, in
    /// bytes (default 64 MiB; larger ones answer 422).
    pub dataset_limit: u64,
    /// How long shutdown waits for running runs.
    pub grace: Duration,
    /// Where the process's log layer writes run logs (`weft serve` sets
    /// `<project>/logs`); `None`: `GET /v1/runs/{id}/logs` answers 404.
    pub logs_dir: Option<PathBuf>,
    /// Where sessions' runs execute (default: in this process).
    pub launcher: LauncherConfig,
}

impl ServerConfig {
    /// Defaults for serving `project`.
    pub fn new(project: impl Into<PathBuf>) -> Self {
        ServerConfig {
            project: project.into(),
            session_options: SessionOptions::default(),
            token: None,
            max_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            idle_ttl: Duration::from_secs(900),
            abandon_after: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
            reconcile_every: Duration::from_secs(1),
            max_queued_per_session: 10_000,
            max_runs_per_request: weft_config::overrides::DEFAULT_MAX_RUNS,
            body_limit: 8 << 20,
            dataset_limit: 64 << 20,
            grace: Duration::from_secs(30),
            logs_dir: None,
            launcher: LauncherConfig::InProcess,
        }
    }
}

/// A run executing in this server.
struct Running {
    spec_total_nodes: usize,
    done_nodes: usize,
    cancel: CancelToken,
    /// The lease was lost (another server took the run over): write nothing more.
    lost: bool,
    /// Node timings not yet sent to the store (progress is written at
    /// most every [`PROGRESS_EVERY`] per run; the final record has them all).
    unwritten: Vec<NodeTiming>,
    /// When progress was last sent to the store (or the run started).
    written_at: Instant,
}

impl Running {
    fn new(cancel: CancelToken) -> Self {
        Running {
            spec_total_nodes: 0,
            done_nodes: 0,
            cancel,
            lost: false,
            unwritten: Vec::new(),
            written_at: Instant::now(),
        }
    }
}

/// How often a running run's node progress is written to the store at
/// most: a run shorter than this writes none (its final record holds every
/// node's timing); a longer one loses at most this much progress in a
/// crash. The events stream still sends every `node_finished` live.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Shared between a session and the hook its runs call: node progress
/// becomes events and store progress.
struct Progress {
    events: Arc<EventLog>,
    store: Store,
    running: Mutex<HashMap<String, Running>>,
    started: Mutex<HashMap<(String, String), (Instant, jiff::Timestamp)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hook for Progress {
    fn before_pipeline_run(&self, ctx: &RunContext, pipeline: &weft_pipeline::Pipeline) {
        self.pipeline_started(&ctx.run_id, pipeline.nodes().len());
    }

    fn before_node_run(&self, ctx: &RunContext, node: &Node, _inputs: &[Data]) {
        lock(&self.started).insert(
            (ctx.run_id.clone(), node.name().to_string()),
            (Instant::now(), jiff::Timestamp::now()),
        );
    }

    fn after_node_run(&self, ctx: &RunContext, node: &Node, _inputs: &[Data], _outputs: &[Data]) {
        let key = (ctx.run_id.clone(), node.name().to_string());
        let Some((t0, start)) = lock(&self.started).remove(&key) else {
            return;
        };
        self.node_finished(&ctx.run_id, node.name(), start, t0.elapsed());
    }

    fn on_node_error(&self, ctx: &RunContext, node: &Node, _error: &weft_runner::RunError) {
        lock(&self.started).remove(&(ctx.run_id.clone(), node.name().to_string()));
    }
}

impl RunProgress for Progress {
    fn pipeline_started(&self, run_id: &str, total_nodes: usize) {
        if let Some(r) = lock(&self.running).get_mut(run_id) {
            r.spec_total_nodes = total_nodes;
        }
    }

    fn node_finished(&self, run_id: &str, node: &str, start: jiff::Timestamp, elapsed: Duration) {
        let timing = NodeTiming {
            node: node.to_string(),
            start,
            duration_ms: elapsed.as_secs_f64() * 1e3,
            peak_memory_bytes: None,
            rows_in: None,
            rows_out: None,
            cycle: None,
        };
        let (done, total, lost, due) = {
            let mut running = lock(&self.running);
            match running.get_mut(run_id) {
                Some(r) => {
                    r.done_nodes += 1;
                    r.unwritten.push(timing);
                    let due = if r.written_at.elapsed() >= PROGRESS_EVERY {
                        r.written_at = Instant::now();
                        std::mem::take(&mut r.unwritten)
                    } else {
                        Vec::new()
                    };
                    (r.done_nodes, r.spec_total_nodes, r.lost, due)
                }
                // Not a run this server tracks: record it as it comes.
                None => (0, 0, false, vec![timing]),
            }
        };
        if lost {
            return;
        }
        self.events.publish(
            "node_finished",
            json!({"run_id": run_id, "node": node, "duration_ms": elapsed.as_secs_f64() * 1e3, "done": done, "total": total}),
        );
        for timing in due {
            if let Err(e) = self.store.update_progress(run_id, timing) {
                tracing::warn!(%run_id, "could not record progress: {e}");
            }
        }
    }
}

/// The mutable part of a live session.
struct SessionInner {
    record: ServerSessionRecord,
    state: SessionState,
    counts: BTreeMap<RunStatus, u64>,
    last_activity: jiff::Timestamp,
    /// `DELETE ?mode=cancel` was asked for.
    cancelling: bool,
    /// The queue may hold runs (cleared when a claim finds none).
    maybe_queued: bool,
    /// The state changed between `busy` and `idle` since the record was
    /// last written (see [`Server::apply_unrecorded`]).
    unrecorded: bool,
}

/// A session this server runs a master for.
pub struct LiveSession {
    id: String,
    inner: Mutex<SessionInner>,
    service: Arc<ServiceSession>,
    worker: Arc<dyn Worker>,
    progress: Arc<Progress>,
    wake: Notify,
}

impl LiveSession {
    fn lock(&self) -> MutexGuard<'_, SessionInner> {
        lock(&self.inner)
    }

    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its current state.
    pub fn state(&self) -> SessionState {
        self.lock().state
    }

    /// Its event log.
    pub fn events(&self) -> &Arc<EventLog> {
        &self.progress.events
    }

    /// The service session that validates and runs its specs.
    pub fn service(&self) -> &Arc<ServiceSession> {
        &self.service
    }

    /// The JSON view served by the API.
    pub fn view(&self) -> Value {
        let inner = self.lock();
        session_view(&inner.record, inner.state, Some(&inner.counts))
    }

    fn max_concurrency(&self) -> usize {
        self.lock().record.max_concurrency.max(1) as usize
    }
}

/// A paused run's question as sessions and events show it.
fn pending_input_view(run_id: &str, p: &weft_core::PendingInput) -> Value {
    json!({
        "run_id": run_id,
        "node": p.node,
        "prompt": p.prompt,
        "schema": p.schema,
        "requested_at": p.requested_at.to_string(),
    })
}

/// The JSON form of a session (live or from the store).
pub fn session_view(
    record: &ServerSessionRecord,
    state: SessionState,
    counts: Option<&BTreeMap<RunStatus, u64>>,
) -> Value {
    let mut runs = serde_json::Map::new();
    for status in RunStatus::ALL {
        let n = counts.and_then(|c| c.get(&status)).copied().unwrap_or(0);
        runs.insert(status.as_str().into(), json!(n));
    }
    json!({
        "id": record.session_id,
        "key": record.key,
        "project": record.project_path,
        "env": record.env,
        "state": state.as_str(),
        "phase": state.phase(),
        "runs": runs,
        "created_at": record.created_at.to_string(),
        "last_heartbeat_at": record.heartbeat_at.to_string(),
        "closed_at": record.closed_at.map(|t| t.to_string()),
        "termination_reason": record.reason,
        "idle_ttl_s": record.idle_ttl_s,
        "max_concurrency": record.max_concurrency,
        "next_action": record.extra.get("next_action").cloned().unwrap_or(Value::Null),
        "pending_input": record.extra.get("pending_input").cloned().unwrap_or(Value::Null),
        "resources": crate::resources::SessionResources::from_extra(&record.extra).view(),
    })
}

/// What `POST /v1/sessions` asks for.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Project folder (default: the server's).
    pub project: Option<String>,
    /// Configuration environment.
    pub env: Option<String>,
    /// Reuse a live session with this key.
    pub key: Option<String>,
    /// Idle TTL in seconds.
    pub idle_ttl_s: Option<u64>,
    /// Most runs of the session at once.
    pub max_concurrency: Option<u32>,
    /// Launcher resources of the session's workers (each set field
    /// overrides the server's default).
    #[serde(default, deserialize_with = "crate::api::object_or_null")]
    pub resources: Option<crate::resources::ResourcesRequest>,
}

/// The manager: the store, the live sessions and their masters.
pub struct Server {
    config: ServerConfig,
    store: Store,
    clock: Arc<dyn Clock>,
    boot: String,
    owner: String,
    sessions: RwLock<HashMap<String, Arc<LiveSession>>>,
    create_lock: tokio::sync::Mutex<()>,
    global: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    accepting: AtomicBool,
    shutdown: watch::Sender<bool>,
    masters: Mutex<JoinSet<()>>,
    runs_in_flight: AtomicU64,
    /// Final records of runs a `?wait=true` request waits for, left by
    /// [`Server::execute`] when it records their end (see
    /// [`Server::watch_results`]).
    results: Mutex<HashMap<String, Option<RunRecord>>>,
}

/// The final records of some runs, as this server records them; the runs
/// are unwatched when it is dropped.
pub(crate) struct ResultWatch<'a> {
    server: &'a Server,
    run_ids: &'a [String],
}

impl ResultWatch<'_> {
    /// Each run's final record if this server recorded its end since the
    /// watch began (`None`: ask the store).
    pub(crate) fn take(&self) -> Vec<Option<RunRecord>> {
        let mut results = lock(&self.server.results);
        self.run_ids
            .iter()
            .map(|id| results.get_mut(id).and_then(Option::take))
            .collect()
    }
}

impl Drop for ResultWatch<'_> {
    fn drop(&mut self) {
        let mut results = lock(&self.server.results);
        for id in self.run_ids {
            results.remove(id);
        }
    }
}

impl Server {
    /// A server over an opened store. Call [`Server::recover`] before
    /// serving, and [`Server::reconcile_loop`] (or `reconcile_once` in
    /// tests) to expire leases and sessions.
    pub fn new(config: ServerConfig, store: Store, clock: Arc<dyn Clock>) -> Arc<Self> {
        let boot = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        // `host:pid/boot`: unique per server object (two servers in one
        // process must not renew or complete each other's leases), and the
        // store can tell when the process behind a lease is gone.
        let owner = format!("{}/{boot}", weft_store::current_owner());
        let (shutdown, _) = watch::channel(false);
        Arc::new(Server {
            global: Arc::new(Semaphore::new(config.max_workers.max(1))),
            config,
            store,
            clock,
            boot,
            owner,
            sessions: RwLock::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
            metrics: Arc::new(Metrics::default()),
            accepting: AtomicBool::new(true),
            shutdown,
            masters: Mutex::new(JoinSet::new()),
            runs_in_flight: AtomicU64::new(0),
            results: Mutex::new(HashMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This start's id (the prefix of event ids).
    pub fn boot(&self) -> &str {
        &self.boot
    }

    /// The clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// Whether new work is accepted (false once shutdown began).
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// A run's stored record; an unknown id is [`ServerError::NotFound`].
    pub async fn stored_run(&self, run_id: &str) -> Result<RunRecord, ServerError> {
        self.store
            .get_run(run_id)
            .await?
            .ok_or_else(|| not_found("run", run_id))
    }

    /// A live session by id.
    pub fn live(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn live_all(&self) -> Vec<Arc<LiveSession>> {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Prometheus text.
    pub async fn render_metrics(&self) -> String {
        let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut queued = 0;
        for s in self.live_all() {
            let inner = s.lock();
            *by_state.entry(inner.state.as_str()).or_default() += 1;
            queued += inner.counts.get(&RunStatus::Queued).copied().unwrap_or(0);
        }
        self.metrics.render(&Gauges {
            queue_depth: queued,
            running: self.runs_in_flight.load(Ordering::Relaxed),
            sessions_by_state: by_state.into_iter().collect(),
        })
    }

    /// Creates a session (or, with a key held by a live session, returns
    /// that one: `(view, false)`).
    pub async fn create_session(self: &Arc<Self>, req: CreateSession) -> Result<(Value, bool), ServerError> {
        if !self.accepting() {
            return Err(ServerError::ShuttingDown);
        }
        if let Some(key) = &req.key
            && (key.is_empty() || key.chars().count() > 200)
        {
            return Err(ServerError::BadRequest {
                message: "key must be 1 to 200 characters".into(),
                path: Some("key".into()),
            });
        }
        if req.max_concurrency == Some(0) {
            return Err(ServerError::BadRequest {
                message: "max_concurrency must be at least 1".into(),
                path: Some("max_concurrency".into()),
            });
        }
        let resources = match req.resources.clone() {
            None => crate::resources::SessionResources::default(),
            Some(r) => r.validate().map_err(|p| ServerError::InvalidField {
                message: p.to_string(),
                path: p.path,
            })?,
        };
        // One creation at a time in this process; the store's unique key
        // index makes reuse-or-reserve atomic across processes.
        let _guard = self.create_lock.lock().await;
        if let Some(key) = &req.key {
            let existing = self
                .live_all()
                .into_iter()
                .find(|s| s.lock().record.key.as_deref() == Some(key) && !s.state().is_terminal());
            if let Some(s) = existing {
                return Ok((s.view(), false));
            }
        }
        let project = req
            .project
            .clone()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.config.project.clone());
        let now = self.now();
        let record = ServerSessionRecord {
            session_id: weft_session::new_run_id(),
            key: req.key.clone(),
            project_path: project.display().to_string(),
            env: req.env.clone(),
            state: SessionState::Pending.as_str().into(),
            reason: None,
            idle_ttl_s: req.idle_ttl_s.unwrap_or(self.config.idle_ttl.as_secs()),
            max_concurrency: req.max_concurrency.unwrap_or(1),
            created_at: now,
            heartbeat_at: now,
            closed_at: None,
            extra: if resources.is_empty() {
                json!({})
            } else {
                json!({ "resources": resources.view() })
            },
        };
        // Open the project before reserving anything: a project that does not
        // load is the caller's error (422), not a failed session.
        let service = self.open_service(&record).await?;
        let (stored, created) = self.store.create_or_reuse_server_session(&record).await?;
        if !created {
            // Another server holds the key: serve its session (opening it here).
            drop(service);
            let s = self.adopt_locked(stored).await?;
            return Ok((s.view(), false));
        }
        let s = self.start_master(stored, service, SessionState::Pending, BTreeMap::new());
        if self.config.launcher == LauncherConfig::InProcess {
            self.apply(&s, SessionEvent::WorkersReady, None).await;
        } // else the master starts the workers; runs queue meanwhile.
        Ok((s.view(), true))
    }

    async fn open_service(
        &self,
        record: &ServerSessionRecord,
    ) -> Result<(Arc<ServiceSession>, Arc<Progress>), ServerError> {
        let events = Arc::new(EventLog::new(DEFAULT_RING));
        let progress = Arc::new(Progress {
            events,
            store: self.store.clone(),
            running: Mutex::new(HashMap::new()),
            started: Mutex::new(HashMap::new()),
        });
        let mut options = self.config.session_options.clone();
        options.env = record.env.clone().or(options.env);
        options.hooks.push(Arc::clone(&progress) as Arc<dyn Hook>);
        let project = PathBuf::from(&record.project_path);
        let max_workers = record.max_concurrency.max(1) as usize;
        let session_id = record.session_id.clone();
        let service = tokio::task::spawn_blocking(move || {
            crate::worker::open_served_session(&project, options, &session_id, max_workers)
        })
        .await
        .map_err(|e| ServerError::bad(format!("opening the project failed: {e}")))?
        .map_err(|e| ServerError::Invalid {
            problems: problems_of(&e),
        })?;
        Ok((Arc::new(service), progress))
    }

    /// Starts serving a session found in the store (after a restart, or
    /// created by another server on the same store).
    ///
    /// Holds the creation lock: a reconcile pass that finds a session
    /// `create_session` has stored but not started yet must not start a
    /// second master for it (two masters would share the queue, and runs
    /// would finish on an events stream no one reads).
    async fn adopt(self: &Arc<Self>, record: ServerSessionRecord) -> Result<Arc<LiveSession>, ServerError> {
        let _guard = self.create_lock.lock().await;
        self.adopt_locked(record).await
    }

    /// [`Server::adopt`] for a caller that holds the creation lock.
    async fn adopt_locked(
        self: &Arc<Self>,
        record: ServerSessionRecord,
    ) -> Result<Arc<LiveSession>, ServerError> {
        if let Some(s) = self.live(&record.session_id) {
            return Ok(s);
        }
        let state = record.state.parse::<SessionState>().unwrap_or(SessionState::Idle);
        let counts = self.store.run_status_counts(&record.session_id).await?;
        match self.open_service(&record).await {
            Ok(service) => {
                let s = self.start_master(record, service, state, counts);
                // Its project just opened here: a session left `pending` by a
                // crash during its creation is ready now.
                if state == SessionState::Pending {
                    self.apply(&s, SessionEvent::WorkersReady, None).await;
                }
                Ok(s)
            }
            Err(e) => {
                let mut record = record;
                record.state = SessionState::Failed.as_str().into();
                record
                    .reason
                    .get_or_insert(json!({"code": "worker_failed", "message": e.to_string()}));
                record.closed_at = Some(self.now());
                let _ = self.store.update_server_session(&record).await;
                Err(e)
            }
        }
    }

    fn start_master(
        self: &Arc<Self>,
        record: ServerSessionRecord,
        (service, progress): (Arc<ServiceSession>, Arc<Progress>),
        state: SessionState,
        counts: BTreeMap<RunStatus, u64>,
    ) -> Arc<LiveSession> {
        let env = record.env.clone().or(self.config.session_options.env.clone());
        let worker = crate::process::session_worker(
            &self.config.launcher,
            &service,
            &record,
            env,
            Arc::clone(&progress) as Arc<dyn RunProgress>,
        );
        let now = self.now();
        let s = Arc::new(LiveSession {
            id: record.session_id.clone(),
            inner: Mutex::new(SessionInner {
                record,
                state,
                counts,
                last_activity: now,
                cancelling: false,
                maybe_queued: true,
                unrecorded: false,
            }),
            service,
            worker,
            progress,
            wake: Notify::new(),
        });
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(s.id.clone(), Arc::clone(&s));
        let server = Arc::clone(self);
        let master = Arc::clone(&s);
        lock(&self.masters).spawn(async move { server.master(master).await });
        s
    }

    /// Applies a state-machine event; records the new state (and the first
    /// termination reason) in the store and on the events stream. Refused
    /// transitions are logged and change nothing.
    async fn apply(&self, s: &LiveSession, event: SessionEvent, reason: Option<Value>) -> bool {
        let Some(record) = self.transition_in_memory(s, event, reason) else {
            return false;
        };
        if let Some(record) = record
            && let Err(e) = self.store.update_server_session(&record).await
        {
            tracing::error!(session = %s.id, "could not record session state: {e}");
        }
        s.wake.notify_one();
        true
    }

    /// [`Server::apply`] for the master's `busy` ↔ `idle` moves, which
    /// happen around every run: the new state is live (views, events) at
    /// once and written to the store by [`Server::record_state`] when the
    /// master next waits, not on the run's path. A crash in between leaves
    /// the previous of the two states stored, which recovery corrects (a
    /// master re-derives busy or idle from its queue).
    fn apply_unrecorded(&self, s: &LiveSession, event: SessionEvent) {
        if let Some(Some(_)) = self.transition_in_memory(s, event, None) {
            s.lock().unrecorded = true;
        }
    }

    /// Writes the session's record when a state change is not written yet.
    async fn record_state(&self, s: &LiveSession) {
        let record = {
            let mut inner = s.lock();
            if !std::mem::take(&mut inner.unrecorded) {
                return;
            }
            inner.record.clone()
        };
        if let Err(e) = self.store.update_server_session(&record).await {
            tracing::error!(session = %s.id, "could not record session state: {e}");
        }
    }

    /// The state-machine step of [`Server::apply`]: `None` when refused,
    /// `Some(None)` when nothing changed, `Some(record)` with the record to
    /// write otherwise (published on the events stream already).
    fn transition_in_memory(
        &self,
        s: &LiveSession,
        event: SessionEvent,
        reason: Option<Value>,
    ) -> Option<Option<ServerSessionRecord>> {
        let record = {
            let mut inner = s.lock();
            let next = match transition(inner.state, event) {
                Ok(next) => next,
                Err(e) => {
                    tracing::debug!(session = %s.id, "{e}");
                    return None;
                }
            };
            if next == inner.state && reason.is_none() {
                return Some(None);
            }
            // This record carries every change made so far.
            inner.unrecorded = false;
            inner.state = next;
            inner.record.state = next.as_str().into();
            if let Some(reason) = reason
                && inner.record.reason.is_none()
            {
                inner.record.reason = Some(reason);
            }
            if next.is_terminal() && inner.record.closed_at.is_none() {
                inner.record.closed_at = Some(self.clock.now());
            }
            inner.record.clone()
        };
        s.progress.events.publish(
            "session",
            json!({"session_id": s.id, "state": record.state, "termination_reason": record.reason}),
        );
        Some(Some(record))
    }

    /// Records a heartbeat.
    pub async fn heartbeat(&self, id: &str) -> Result<Value, ServerError> {
        let s = self.live(id).ok_or_else(|| not_found("session", id))?;
        let record = {
            let mut inner = s.lock();
            if inner.state.is_terminal() {
                return Err(ServerError::Conflict(format!(
                    "session `{id}` is {}",
                    inner.state
                )));
            }
            inner.record.heartbeat_at = self.clock.now();
            inner.unrecorded = false;
            inner.record.clone()
        };
        self.store.update_server_session(&record).await?;
        Ok(s.view())
    }

    /// Terminates a session (`drain` finishes queued and running runs,
    /// `cancel` cancels them). Idempotent; the first reason is kept.
    pub async fn terminate(&self, id: &str, mode: CloseMode) -> Result<Value, ServerError> {
        let Some(s) = self.live(id) else {
            return match self.store.get_server_session(id).await? {
                Some(r) => {
                    let state = r.state.parse().unwrap_or(SessionState::Closed);
                    Ok(session_view(&r, state, None))
                }
                None => Err(not_found("session", id)),
            };
        };
        if mode == CloseMode::Cancel {
            s.lock().cancelling = true;
            self.cancel_queue(&s).await?;
            for run in lock(&s.progress.running).values() {
                run.cancel.cancel();
            }
        }
        let mode_name = if mode == CloseMode::Cancel {
            "cancel"
        } else {
            "drain"
        };
        self.apply(
            &s,
            SessionEvent::Terminate,
            Some(json!({"code": "terminated", "mode": mode_name})),
        )
        .await;
        Ok(s.view())
    }

    /// Cancels the session's queued runs and the ones paused for input.
    async fn cancel_queue(&self, s: &LiveSession) -> Result<(), ServerError> {
        let cancelled = self.store.cancel_session_queue(&s.id).await?;
        if cancelled.is_empty() {
            return Ok(());
        }
        for run_id in &cancelled {
            self.metrics.run_finished(RunStatus::Cancelled);
            s.progress
                .events
                .publish("run_finished", json!({"run_id": run_id, "status": "cancelled"}));
        }
        // Queued and paused runs were cancelled: count them again.
        s.lock().counts = self.store.run_status_counts(&s.id).await?;
        self.refresh_pending_input(s).await;
        Ok(())
    }

    /// Shows the session's oldest run paused for input as its
    /// `pending_input` (with `next_action: awaiting_input`), or clears
    /// both; read from the store and recorded there, so it survives a
    /// restart.
    async fn refresh_pending_input(&self, s: &LiveSession) {
        let filter = RunFilter {
            session_id: Some(s.id.clone()),
            status: Some(RunStatus::InputRequired),
            limit: Some(10_000),
            before: None,
        };
        let first = match self.store.list_runs(&filter).await {
            // Newest first: the oldest is last.
            Ok(runs) => runs
                .into_iter()
                .rev()
                .find_map(|r| r.pending_input.map(|p| (r.run_id, p))),
            Err(e) => {
                tracing::error!(session = %s.id, "could not read the runs waiting for input: {e}");
                return;
            }
        };
        let record = {
            let mut inner = s.lock();
            if !inner.record.extra.is_object() {
                inner.record.extra = json!({});
            }
            let extra = inner.record.extra.as_object_mut().expect("made an object above");
            match first {
                Some((run_id, p)) => {
                    extra.insert("pending_input".into(), pending_input_view(&run_id, &p));
                    extra.insert("next_action".into(), json!("awaiting_input"));
                }
                None => {
                    extra.insert("pending_input".into(), Value::Null);
                    extra.insert("next_action".into(), Value::Null);
                }
            }
            inner.record.clone()
        };
        if let Err(e) = self.store.update_server_session(&record).await {
            tracing::error!(session = %s.id, "could not record the pending input: {e}");
        }
    }

    /// Answers a run paused at an `await_input` node: checks `answer`
    /// against the node's schema and queues the run again with it (it
    /// keeps its place in the session's FIFO). `node`, when given, must be
    /// the node the run waits at.
    pub async fn provide_input(
        &self,
        run_id: &str,
        node: Option<&str>,
        answer: Value,
    ) -> Result<RunRecord, ServerError> {
        let record = self.stored_run(run_id).await?;
        let pending = match (&record.status, &record.pending_input) {
            (RunStatus::InputRequired, Some(p)) => p.clone(),
            (status, _) => {
                return Err(ServerError::Conflict(format!(
                    "run `{run_id}` is {status}, not waiting for input"
                )));
            }
        };
        if let Some(node) = node
            && node != pending.node
        {
            return Err(ServerError::Invalid {
                problems: vec![format!(
                    "node: run `{run_id}` waits for input at node `{}`, not `{node}`",
                    pending.node
                )],
            });
        }
        let problems = weft_session::answers::check_answer(&pending.schema, &answer);
        if !problems.is_empty() {
            return Err(ServerError::InvalidInput {
                node: pending.node,
                problems,
            });
        }
        let Some(spec) = self.store.waiting_spec(run_id).await? else {
            return Err(ServerError::Conflict(format!(
                "run `{run_id}` is no longer waiting for input"
            )));
        };
        let mut spec: RunSpec = serde_json::from_value(spec).map_err(|e| {
            ServerError::Internal(format!("the queued spec of run `{run_id}` does not decode: {e}"))
        })?;
        spec.config.answers.insert(pending.node.clone(), answer);
        let spec = serde_json::to_value(&spec)
            .map_err(|e| ServerError::Internal(format!("cannot encode the spec of run `{run_id}`: {e}")))?;
        if !self.store.provide_input(run_id, &spec).await? {
            return Err(ServerError::Conflict(format!(
                "run `{run_id}` is no longer waiting for input"
            )));
        }
        if let Some(s) = self.live(&record.session_id) {
            self.count_move(&s, RunStatus::InputRequired, RunStatus::Queued);
            s.progress
                .events
                .publish("input_provided", json!({"run_id": run_id, "node": pending.node}));
            {
                let mut inner = s.lock();
                inner.last_activity = self.clock.now();
                inner.maybe_queued = true;
            }
            self.refresh_pending_input(&s).await;
            self.apply(&s, SessionEvent::InputProvided, None).await;
            s.wake.notify_one();
        }
        Ok(self.store.get_run(run_id).await?.unwrap_or(record))
    }

    fn count_move(&self, s: &LiveSession, from: RunStatus, to: RunStatus) {
        let mut inner = s.lock();
        if let Some(n) = inner.counts.get_mut(&from) {
            *n = n.saturating_sub(1);
        }
        *inner.counts.entry(to).or_default() += 1;
        if to.is_terminal() {
            self.metrics.run_finished(to);
        }
    }

    /// Validates and durably queues runs; returns their ids once committed.
    pub async fn submit(
        &self,
        session_id: &str,
        configs: Vec<RunConfig>,
        max_attempts: u32,
        idempotency_key: Option<&str>,
    ) -> Result<Vec<String>, ServerError> {
        if !self.accepting() {
            return Err(ServerError::ShuttingDown);
        }
        let s = self
            .live(session_id)
            .ok_or_else(|| not_found("session", session_id))?;
        if !s.state().accepts_runs() {
            return Err(ServerError::Conflict(format!(
                "session `{session_id}` is {} and accepts no runs",
                s.state()
            )));
        }
        if configs.is_empty() {
            return Err(ServerError::BadRequest {
                message: "no runs to submit".into(),
                path: Some("runs".into()),
            });
        }
        let n = configs.len() as u64;
        let queued = s.lock().counts.get(&RunStatus::Queued).copied().unwrap_or(0);
        if queued + n > self.config.max_queued_per_session {
            return Err(ServerError::TooMany {
                message: format!(
                    "session `{session_id}` has {queued} queued runs; {n} more would pass its limit of {}",
                    self.config.max_queued_per_session
                ),
                retry_after_s: 1,
            });
        }
        let service = Arc::clone(&s.service);
        let owner = self.owner.clone();
        let items = tokio::task::spawn_blocking(move || -> Result<Vec<QueueItem>, ServerError> {
            let mut items = Vec::with_capacity(configs.len());
            let mut problems = Vec::new();
            let mut bases: HashMap<Option<String>, Option<Value>> = HashMap::new();
            for (i, config) in configs.iter().enumerate() {
                let prefix = if configs.len() > 1 {
                    format!("runs[{i}]: ")
                } else {
                    String::new()
                };
                let base = bases
                    .entry(config.env.clone())
                    .or_insert_with(|| service.parameters(config.env.as_deref()).ok());
                if let Some(base) = base {
                    for unknown in unknown_params(base, &config.runtime_params) {
                        problems.push(format!("{prefix}{unknown}"));
                    }
                }
                match service.prepare(config) {
                    Ok(prepared) => {
                        let mut spec = prepared.spec().clone();
                        spec.run_index = i;
                        let spec_json =
                            serde_json::to_value(&spec).map_err(|e| ServerError::bad(e.to_string()))?;
                        items.push(QueueItem {
                            run: run_record(&spec, RunStatus::Queued, &owner),
                            spec: spec_json,
                            max_attempts,
                        });
                    }
                    Err(e) => problems.extend(problems_of(&e).into_iter().map(|p| format!("{prefix}{p}"))),
                }
            }
            if problems.is_empty() {
                Ok(items)
            } else {
                Err(ServerError::Invalid { problems })
            }
        })
        .await
        .map_err(|e| ServerError::bad(format!("validating the runs failed: {e}")))??;
        let enqueued = self.store.enqueue(session_id, &items, idempotency_key).await?;
        if !enqueued.replayed {
            self.metrics.accepted.fetch_add(n, Ordering::Relaxed);
            let mut inner = s.lock();
            *inner.counts.entry(RunStatus::Queued).or_default() += n;
            inner.maybe_queued = true;
            inner.last_activity = self.clock.now();
            drop(inner);
            for id in &enqueued.run_ids {
                s.progress.events.publish("run_queued", json!({"run_id": id}));
            }
            s.wake.notify_one();
        }
        Ok(enqueued.run_ids)
    }

    /// Cancels a run: a queued one without running it, a running one
    /// between nodes. Returns the run's record after the request.
    pub async fn cancel_run(&self, run_id: &str) -> Result<RunRecord, ServerError> {
        let record = self.stored_run(run_id).await?;
        match record.status {
            RunStatus::Queued => {
                if self.store.cancel_queued(run_id).await? {
                    if let Some(s) = self.live(&record.session_id) {
                        self.count_move(&s, RunStatus::Queued, RunStatus::Cancelled);
                        s.progress
                            .events
                            .publish("run_finished", json!({"run_id": run_id, "status": "cancelled"}));
                    }
                } else if !self.cancel_running(&record.session_id, run_id) {
                    return Err(ServerError::Conflict(format!(
                        "run `{run_id}` was claimed by another server meanwhile; retry"
                    )));
                }
            }
            RunStatus::Running => {
                if !self.cancel_running(&record.session_id, run_id) {
                    return Err(ServerError::Conflict(format!(
                        "run `{run_id}` is running in another server; cancel it there"
                    )));
                }
            }
            RunStatus::InputRequired => {
                if !self.store.cancel_queued(run_id).await? {
                    return Err(ServerError::Conflict(format!(
                        "run `{run_id}` was answered meanwhile; retry"
                    )));
                }
                if let Some(s) = self.live(&record.session_id) {
                    self.count_move(&s, RunStatus::InputRequired, RunStatus::Cancelled);
                    s.progress
                        .events
                        .publish("run_finished", json!({"run_id": run_id, "status": "cancelled"}));
                    self.refresh_pending_input(&s).await;
                    // Nothing waits any more: the session is busy (and then
                    // idle) again.
                    if s.lock()
                        .record
                        .extra
                        .get("pending_input")
                        .is_none_or(Value::is_null)
                    {
                        self.apply(&s, SessionEvent::InputProvided, None).await;
                        s.lock().maybe_queued = true;
                        s.wake.notify_one();
                    }
                }
            }
            status => {
                return Err(ServerError::Conflict(format!("run `{run_id}` already {status}")));
            }
        }
        Ok(self.store.get_run(run_id).await?.unwrap_or(record))
    }

    /// Cancels a run executing in this server; false when it does not run here.
    fn cancel_running(&self, session_id: &str, run_id: &str) -> bool {
        let Some(s) = self.live(session_id) else {
            return false;
        };
        let running = lock(&s.progress.running);
        match running.get(run_id) {
            Some(r) => {
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// The session master: claims runs FIFO while the session and the
    /// server have capacity, runs them on the session's worker, and
    /// finishes the session when it drains.
    async fn master(self: Arc<Self>, s: Arc<LiveSession>) {
        if s.state() == SessionState::Pending {
            // Runs submitted meanwhile wait in the queue, in order.
            match s.worker.start().await {
                Ok(()) => {
                    self.apply(&s, SessionEvent::WorkersReady, None).await;
                }
                Err(e) => {
                    tracing::error!(session = %s.id, "the session's workers did not start: {e}");
                    let reason = json!({"code": e.code(), "message": e.to_string()});
                    self.apply(&s, SessionEvent::WorkerFailed, Some(reason)).await;
                    if let Err(e) = self.cancel_queue(&s).await {
                        tracing::error!(session = %s.id, "could not cancel the queued runs: {e}");
                    }
                }
            }
        }
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut shutdown = self.shutdown.subscribe();
        loop {
            let state = s.state();
            if state.is_terminal() {
                break;
            }
            let cancelling = s.lock().cancelling;
            let may_start = !*shutdown.borrow() && !cancelling;
            // Start what capacity allows.
            while may_start && tasks.len() < s.max_concurrency() && s.lock().maybe_queued {
                let permit = tokio::select! {
                    p = Arc::clone(&self.global).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                    _ = s.wake.notified() => {
                        s.lock().maybe_queued = true;
                        continue;
                    }
                    _ = shutdown.changed() => break,
                };
                // As many runs as free capacity allows, in one claim.
                let permits = self.more_permits(permit, s.max_concurrency() - tasks.len());
                let asked = permits.len();
                let claimed = match self
                    .store
                    .claim(
                        &s.id,
                        &self.owner,
                        asked as u32,
                        s.max_concurrency() as u32,
                        self.config.lease,
                    )
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(session = %s.id, "claiming runs failed: {e}");
                        s.lock().maybe_queued = false;
                        break;
                    }
                };
                if claimed.is_empty() {
                    s.lock().maybe_queued = false;
                    break;
                }
                let short = claimed.len() < asked;
                for (claimed, permit) in claimed.into_iter().zip(permits) {
                    self.apply_unrecorded(&s, SessionEvent::RunStarted);
                    let server = Arc::clone(&self);
                    let session = Arc::clone(&s);
                    tasks.spawn(async move {
                        server.execute(&session, claimed, permit).await;
                    });
                }
                if short {
                    // The queue (or the session's limit) gave fewer than
                    // asked: look again when woken or a run ends.
                    s.lock().maybe_queued = false;
                    break;
                }
            }
            let state = s.state();
            let mut look_again_soon = false;
            if tasks.is_empty() {
                let mut queue_empty = !s.lock().maybe_queued;
                let mut waiting = 0;
                // The hint says empty: ask the store before finishing anything
                // (another server may have queued or may be running runs).
                if queue_empty && matches!(state, SessionState::Draining | SessionState::Busy) && !cancelling
                {
                    match self.store.queue_counts(&s.id).await {
                        Ok(c) if c.queued > 0 || c.leased > 0 => {
                            queue_empty = false;
                            s.lock().maybe_queued = c.queued > 0;
                            look_again_soon = true;
                        }
                        Ok(c) => waiting = c.waiting,
                        Err(e) => {
                            tracing::error!(session = %s.id, "reading the queue failed: {e}");
                            queue_empty = false;
                            look_again_soon = true;
                        }
                    }
                }
                if state == SessionState::Draining && (queue_empty || cancelling || *shutdown.borrow()) {
                    if !*shutdown.borrow() || queue_empty {
                        // Nobody answers a closed session's paused runs.
                        if waiting > 0
                            && let Err(e) = self.cancel_queue(&s).await
                        {
                            tracing::error!(session = %s.id, "could not cancel the paused runs: {e}");
                        }
                        self.apply(&s, SessionEvent::Drained, None).await;
                    }
                    break;
                }
                if state == SessionState::Busy && queue_empty {
                    s.lock().last_activity = self.clock.now();
                    // Other runs still wait for input: the session waits too.
                    if waiting > 0 {
                        self.apply(&s, SessionEvent::InputRequested, None).await;
                    } else {
                        self.apply_unrecorded(&s, SessionEvent::RunsDone);
                    }
                }
                if *shutdown.borrow() {
                    break;
                }
            }
            self.record_state(&s).await;
            tokio::select! {
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                // Whoever woke us may have queued work (a submit racing a
                // claim that found nothing): look again.
                _ = s.wake.notified() => s.lock().maybe_queued = true,
                _ = tokio::time::sleep(Duration::from_millis(100)), if look_again_soon => {}
                _ = shutdown.changed() => {}
            }
        }
        self.record_state(&s).await;
        // Shutdown with runs in flight: they finish within the grace period.
        let grace = tokio::time::sleep(self.config.grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                _ = &mut grace => {
                    s.worker.stop(CloseMode::Cancel).await;
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        if s.state().is_terminal() {
            s.worker.stop(CloseMode::Wait).await;
            s.progress.events.close();
        }
    }

    /// Keeps the final records of these runs in memory when this server
    /// records their end, until the watch is dropped: a waiting request
    /// answers without reading the store.
    pub(crate) fn watch_results<'a>(&'a self, run_ids: &'a [String]) -> ResultWatch<'a> {
        let mut results = lock(&self.results);
        for id in run_ids {
            results.entry(id.clone()).or_insert(None);
        }
        ResultWatch {
            server: self,
            run_ids,
        }
    }

    /// `first` and as many more worker permits as are free, `want` at most
    /// (at least `first`).
    fn more_permits(&self, first: OwnedSemaphorePermit, want: usize) -> Vec<OwnedSemaphorePermit> {
        let mut permits = vec![first];
        while permits.len() < want {
            match Arc::clone(&self.global).try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        permits
    }

    /// Runs one claimed run and records its end (only while this server
    /// still holds its lease, so no run finishes twice). The worker
    /// `permit` is returned as soon as the worker is done, before the end
    /// is recorded, so the next run starts meanwhile.
    async fn execute(&self, s: &LiveSession, claimed: Claimed, permit: OwnedSemaphorePermit) {
        self.runs_in_flight.fetch_add(1, Ordering::Relaxed);
        let run_id = claimed.run_id.clone();
        let spec: Result<RunSpec, _> = serde_json::from_value(claimed.spec.clone());
        self.count_move(s, RunStatus::Queued, RunStatus::Running);
        let record = match spec {
            Err(e) => failed_record(
                &claimed,
                &self.owner,
                RunFailure::message("validation", format!("the queued spec does not decode: {e}")),
            ),
            Ok(spec) => {
                let cancel = CancelToken::new();
                lock(&s.progress.running).insert(run_id.clone(), Running::new(cancel.clone()));
                let waited = jiff::Timestamp::now().duration_since(claimed.enqueued_at);
                self.metrics.dispatch_seconds.observe(waited.as_secs_f64());
                s.progress.events.publish(
                    "run_started",
                    json!({"run_id": run_id, "attempt": claimed.attempt}),
                );
                let outcome = s.worker.dispatch(spec.clone(), cancel).await;
                drop(permit);
                lock(&s.progress.running).remove(&run_id);
                match outcome {
                    Ok(mut record) => {
                        record.attempts = claimed.attempt;
                        record.owner = Some(self.owner.clone());
                        self.metrics.run_recorded(&record);
                        record
                    }
                    Err(e) => {
                        // A worker that died or became unreachable mid-run
                        // leaves the run interrupted, not failed.
                        let status = if matches!(e, WorkerError::Unavailable(_)) {
                            RunStatus::Interrupted
                        } else {
                            RunStatus::Failed
                        };
                        let mut record = run_record(&spec, status, &self.owner);
                        let now = jiff::Timestamp::now();
                        record.start_time = Some(now);
                        record.end_time = Some(now);
                        record.attempts = claimed.attempt;
                        let kind = match e {
                            WorkerError::LimitExceeded(_) => "limit_exceeded",
                            _ => "worker",
                        };
                        record.error = Some(RunFailure::from_error(kind, None, &e));
                        record
                    }
                }
            }
        };
        let status = record.status;
        let mut record = record;
        // The store stamps its own time too (microseconds later).
        record.updated_at = Some(jiff::Timestamp::now());
        match self.store.complete(&self.owner, &record).await {
            Ok(true) if status == RunStatus::InputRequired => {
                // Paused: its queue row waits for the answer (survives restarts).
                if let Some(slot) = lock(&self.results).get_mut(&run_id) {
                    *slot = Some(record.clone());
                }
                self.count_move(s, RunStatus::Running, status);
                s.lock().last_activity = self.clock.now();
                let pending = record
                    .pending_input
                    .as_ref()
                    .map_or(Value::Null, |p| pending_input_view(&run_id, p));
                s.progress.events.publish(
                    "input_required",
                    json!({"run_id": run_id, "pending_input": pending}),
                );
                self.refresh_pending_input(s).await;
                self.apply(s, SessionEvent::InputRequested, None).await;
            }
            Ok(true) => {
                if let Some(slot) = lock(&self.results).get_mut(&run_id) {
                    *slot = Some(record.clone());
                }
                self.count_move(s, RunStatus::Running, status);
                s.lock().last_activity = self.clock.now();
                s.progress.events.publish(
                    "run_finished",
                    json!({"run_id": run_id, "status": status.as_str(), "error": record.error.as_ref().map(|e| e.message.clone())}),
                );
            }
            Ok(false) => {
                self.count_move(s, RunStatus::Running, RunStatus::Interrupted);
                tracing::warn!(%run_id, "lease lost before the run finished; its result is dropped")
            }
            Err(e) => {
                self.count_move(s, RunStatus::Running, RunStatus::Interrupted);
                tracing::error!(%run_id, "could not record the run's end: {e}")
            }
        }
        self.runs_in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Loads live sessions from the store (after a restart or from another
    /// server) and re-queues runs left by dead owners. Call once before
    /// serving.
    pub async fn recover(self: &Arc<Self>) -> Result<(), ServerError> {
        // Runs leased by a crashed process on this host are interrupted (and
        // re-queued when their retries allow) at once, not a lease later.
        let expired = self.store.expire_leases_of_dead_owners().await?;
        if !expired.is_empty() {
            tracing::info!(runs = expired.len(), "recovered the runs of a crashed server");
        }
        self.reconcile_once().await
    }

    /// One reconcile pass: renews this server's leases, expires leases of
    /// crashed servers, adopts live sessions it does not serve yet, expires
    /// idle sessions and aborts abandoned ones.
    pub async fn reconcile_once(self: &Arc<Self>) -> Result<(), ServerError> {
        let now = self.now();
        let mine: Vec<String> = self
            .live_all()
            .iter()
            .flat_map(|s| lock(&s.progress.running).keys().cloned().collect::<Vec<_>>())
            .collect();
        if !mine.is_empty() {
            let lost = self
                .store
                .renew_leases(&self.owner, &mine, self.config.lease)
                .await?;
            // A lease we no longer hold (we were too slow to renew and another
            // server took the run): stop the run here and write nothing more
            // for it; the new holder records it.
            for s in self.live_all() {
                for (run_id, run) in lock(&s.progress.running).iter_mut() {
                    if lost.contains(run_id) {
                        tracing::warn!(%run_id, "lease lost; stopping the run here");
                        run.lost = true;
                        run.cancel.cancel();
                    }
                }
            }
        }
        for expired in self.store.expire_leases(now).await? {
            if let Some(s) = self.live(&expired.session_id) {
                let to = if expired.requeued {
                    RunStatus::Queued
                } else {
                    RunStatus::Interrupted
                };
                self.count_move(&s, RunStatus::Running, to);
                s.progress.events.publish(
                    "run_finished",
                    json!({"run_id": expired.run_id, "status": "interrupted", "requeued": expired.requeued}),
                );
                s.lock().maybe_queued = true;
                s.wake.notify_one();
            }
        }
        if self.accepting() {
            for record in self.store.list_server_sessions(true).await? {
                if self.live(&record.session_id).is_none()
                    && let Err(e) = self.adopt(record).await
                {
                    tracing::error!("could not serve a stored session: {e}");
                }
            }
        }
        for s in self.live_all() {
            let (state, idle_since, heartbeat, ttl) = {
                let inner = s.lock();
                (
                    inner.state,
                    inner.last_activity.max(inner.record.heartbeat_at),
                    inner.record.heartbeat_at,
                    inner.record.idle_ttl_s,
                )
            };
            let idle_for = now.duration_since(idle_since).as_secs_f64();
            if matches!(state, SessionState::Ready | SessionState::Idle) && idle_for >= ttl as f64 {
                self.apply(
                    &s,
                    SessionEvent::IdleTimeout,
                    Some(json!({"code": "idle_timeout", "idle_s": idle_for.floor()})),
                )
                .await;
            }
            let silent_for = now.duration_since(heartbeat).as_secs_f64();
            if state == SessionState::InputRequired
                && silent_for >= self.config.abandon_after.as_secs_f64()
                && self
                    .apply(
                        &s,
                        SessionEvent::Abandoned,
                        Some(json!({"code": "session_abandoned"})),
                    )
                    .await
            {
                s.lock().cancelling = true;
                self.cancel_queue(&s).await?;
                for run in lock(&s.progress.running).values() {
                    run.cancel.cancel();
                }
            }
            // Other servers' queue changes are seen here.
            if s.state().accepts_runs() || s.state() == SessionState::Draining {
                s.lock().maybe_queued = true;
                s.wake.notify_one();
            }
        }
        // Terminal sessions leave memory once their master stopped.
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| !(s.state().is_terminal() && lock(&s.progress.running).is_empty()));
        Ok(())
    }

    /// Runs [`Server::reconcile_once`] every `reconcile_every` until shutdown.
    pub async fn reconcile_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut tick = tokio::time::interval(self.config.reconcile_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.reconcile_once().await {
                        tracing::error!("reconcile failed: {e}");
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Graceful shutdown: stop accepting (503), let running runs finish
    /// within the grace period, leave queued runs queued for the next start.
    pub async fn shutdown(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        // send_replace: stores the value even when no master has subscribed yet
        // (send would drop it and a master started just now would never stop).
        self.shutdown.send_replace(true);
        let mut masters = std::mem::take(&mut *lock(&self.masters));
        while masters.join_next().await.is_some() {}
        if let Err(e) = self.store.release_leases(&self.owner).await {
            tracing::error!("could not release leases: {e}");
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!("could not flush the store: {e}");
        }
    }
}

/// The runtime parameter keys that name no parameter of the project, with
/// close matches: a typo in a sweep would otherwise run the same point N
/// times. (Hydra refuses such keys too, unless appended with `+`.)
pub fn unknown_params(base: &Value, over: &Value) -> Vec<String> {
    fn walk(
        base: &serde_json::Map<String, Value>,
        over: &serde_json::Map<String, Value>,
        path: &str,
        out: &mut Vec<String>,
    ) {
        for (k, v) in over {
            let dotted = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match base.get(k) {
                Some(Value::Object(inner)) => {
                    if let Value::Object(v) = v {
                        walk(inner, v, &dotted, out);
                    }
                }
                Some(_) => {}
                None => {
                    let close: Vec<String> = base
                        .keys()
                        .filter(|c| weft_pipeline::registry::edit_distance(c, k) <= 2)
                        .take(3)
                        .map(|c| {
                            if path.is_empty() {
                                format!("`{c}`")
                            } else {
                                format!("`{path}.{c}`")
                            }
                        })
                        .collect();
                    let hint = if close.is_empty() {
                        String::new()
                    } else {
                        format!("; did you mean {}?", close.join(", "))
                    };
                    out.push(format!(
                        "runtime_params: `{dotted}` is not a parameter of the project (add it to parameters.yml to set it){hint}"
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    if let (Value::Object(base), Value::Object(over)) = (base, over) {
        walk(base, over, "", &mut out);
    }
    out
}

fn not_found(what: &'static str, id: &str) -> ServerError {
    ServerError::NotFound {
        what,
        id: id.to_string(),
    }
}

fn failed_record(claimed: &Claimed, owner: &str, failure: RunFailure) -> RunRecord {
    let now = jiff::Timestamp::now();
    RunRecord {
        start_time: Some(now),
        end_time: Some(now),
        duration_ms: Some(0.0),
        error: Some(failure),
        attempts: claimed.attempt,
        owner: Some(owner.to_string()),
        ..RunRecord::new(&claimed.run_id, &claimed.session_id, RunStatus::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: with no receiver yet, `watch::Sender::send` dropped the
    /// shutdown signal, so a master subscribing afterwards never stopped.
    #[tokio::test]
    async fn the_shutdown_signal_reaches_masters_that_subscribe_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db").to_str().unwrap())
            .await
            .unwrap();
        let server = Server::new(ServerConfig::new(dir.path()), store, Arc::new(crate::SystemClock));
        server.shutdown().await;
        assert!(*server.shutdown.subscribe().borrow());
    }

    /// Regression: a reconcile pass that listed a session `create_session`
    /// had stored but not started yet adopted it too, starting a second
    /// master; runs claimed by the first finished on an events stream no
    /// `?wait=true` waiter read (the waiter timed out on succeeded runs).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reconcile_racing_a_creation_never_starts_a_second_master() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("weft.toml"), "[project]\nname = \"race\"\n").unwrap();
        std::fs::write(
            root.join("pipelines.yml"),
            "__default__:\n  nodes:\n    - {name: one, func: add_one, inputs: params:start, outputs: a}\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("conf/base")).unwrap();
        std::fs::write(root.join("conf/base/parameters.yml"), "start: 1\n").unwrap();
        let store = Store::open(root.join("s.db").to_str().unwrap()).await.unwrap();
        let server = Server::new(ServerConfig::new(root), store, Arc::new(crate::SystemClock));
        server.recover().await.unwrap();
        for _ in 0..40 {
            let creating = {
                let server = Arc::clone(&server);
                tokio::spawn(async move {
                    server
                        .create_session(CreateSession {
                            project: None,
                            env: None,
                            key: None,
                            idle_ttl_s: None,
                            max_concurrency: None,
                            resources: None,
                        })
                        .await
                        .map(|_| ())
                })
            };
            while !creating.is_finished() {
                server.reconcile_once().await.unwrap();
            }
            creating.await.unwrap().unwrap();
            server.reconcile_once().await.unwrap();
            assert_eq!(
                lock(&server.masters).len(),
                server.live_all().len(),
                "one master per live session"
            );
        }
        server.shutdown().await;
    }
}
