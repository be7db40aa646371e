//! Workers as Slurm batch jobs: [`SlurmLauncher`] submits each `weft
//! worker` with `sbatch --parsable`, and the master talks to the worker over
//! HTTP as it does to a local child ([`crate::ProcessWorker`] keeps the
//! session's workers and does the error matrix; this module only starts,
//! watches and stops them).
//!
//! - Submission: `sbatch --parsable --job-name weft-<session>-w<k>
//!   --output FILE --chdir PROJECT [--partition P] [--account A] [--time T]
//!   [--cpus-per-task N] [--mem NM] [--gpus N] [EXTRA...]` (each of the
//!   session's `resources` in place of the launcher's default) with the batch script on
//!   its stdin: `exec env -u WEFT_SERVER PROGRAM worker --project P
//!   --session-id ID --listen HOST:0 [--env E] [--max-runs N]`. The
//!   worker's bearer token goes in sbatch's own environment as
//!   `WEFT_TOKEN` (`--export=ALL` carries it to the job), never on a
//!   command line or in the script. A submission sbatch refuses (an
//!   unknown partition or account, a bad time limit) is
//!   [`LaunchError::Refused`] with sbatch's error.
//! - Address: the worker's line `weft worker: listening on http://ADDR`,
//!   read from the job's output file (`<output_dir>/<job name>-<nonce>.out`,
//!   default `<project>/.weft/slurm/`: the file is written on the node that
//!   runs the job, so the folder must be shared with the master, as the
//!   project and the program are). With `--listen 0.0.0.0` the announced
//!   host is replaced by the job's batch host.
//! - Watch: a thread per job polls `squeue -h -j ID -o %T|%r|%B` (joined
//!   when the job's handle is dropped). `PENDING` with a reason that can
//!   never be satisfied ([`is_hopeless`]: `PartitionConfig`,
//!   `ReqNodeNotAvail`, `PartitionTimeLimit`, ...) fails the launch with
//!   that reason at once; other pending reasons (`Resources`, `Priority`)
//!   wait up to the ready timeout. A job that ended (`COMPLETING`, or
//!   gone from `squeue`) is read from `sacct -n -X -P -j ID -o
//!   State,ExitCode,Reason`, or, when accounting is off (no slurmdbd),
//!   from `scontrol show job -o ID`; it means the worker exited
//!   ([`WorkerProcess::exited`]), so a job cancelled from outside is seen
//!   as a dead worker: its run becomes `interrupted` and a new job is
//!   submitted.
//! - Stop: `scancel ID`; Slurm sends the worker SIGTERM, on which `weft
//!   worker` exits, and records the job `CANCELLED`. Before its first
//!   submission a launcher (one per session master) cancels this user's
//!   queued or running jobs named `weft-<session>-w<k>`: left by an
//!   earlier master of the session, nobody holds their tokens.
//!
//! The commands are run with this process's environment (`SLURM_CONF`
//! included), from [`SlurmCommands`] (default: found on `PATH`). With
//! [`SlurmOptions::rest`] the same jobs are submitted, watched, listed
//! and cancelled through `slurmrestd` instead ([`crate::slurm_rest`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process::{
    LaunchError, Launcher, WorkerHandle, WorkerProcess, WorkerRequest, announced_address, reachable,
    shell_quote,
};
pub use crate::slurm_rest::SlurmRest;
use crate::slurm_rest::{RestClient, RestJob};

/// The Slurm client programs a [`SlurmLauncher`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmCommands {
    /// Submits the worker's batch script.
    pub sbatch: PathBuf,
    /// Reads a queued or running job's state.
    pub squeue: PathBuf,
    /// Reads an ended job's state from accounting.
    pub sacct: PathBuf,
    /// Reads an ended job's state from the controller (no accounting).
    pub scontrol: PathBuf,
    /// Cancels a job.
    pub scancel: PathBuf,
}

impl SlurmCommands {
    /// The programs in folder `dir` (`dir/sbatch`, `dir/squeue`, ...).
    pub fn in_dir(dir: &Path) -> Self {
        SlurmCommands {
            sbatch: dir.join("sbatch"),
            squeue: dir.join("squeue"),
            sacct: dir.join("sacct"),
            scontrol: dir.join("scontrol"),
            scancel: dir.join("scancel"),
        }
    }
}

impl Default for SlurmCommands {
    /// The programs by name, found on `PATH`.
    fn default() -> Self {
        SlurmCommands {
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            sacct: "sacct".into(),
            scontrol: "scontrol".into(),
            scancel: "scancel".into(),
        }
    }
}

/// How a [`SlurmLauncher`] submits workers.
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmOptions {
    /// The program started as `PROGRAM worker ...` in the batch job (a
    /// path valid on the compute nodes).
    pub program: PathBuf,
    /// The Slurm client programs.
    pub commands: SlurmCommands,
    /// `--partition` (default: the cluster's default partition).
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`, in any form sbatch takes (`30`, `1:00:00`, `2-00`).
    pub time_limit: Option<String>,
    /// `--cpus-per-task` of each worker job.
    pub cpus: Option<u32>,
    /// Memory of each worker job in bytes (`--mem`, rounded up to MiB).
    pub memory: Option<u64>,
    /// More sbatch options, given after the others (`--qos=high`).
    pub extra_args: Vec<String>,
    /// The host the worker listens on (default `127.0.0.1`: a node on this
    /// machine); `0.0.0.0` announces the job's batch host instead.
    pub listen_host: IpAddr,
    /// Where job output files go (default `<project>/.weft/slurm`); must be
    /// a folder the compute nodes and the master share.
    pub output_dir: Option<PathBuf>,
    /// Submit, watch and cancel through `slurmrestd` instead of the
    /// commands (see [`crate::slurm_rest`]); `extra_args` cannot be used then.
    pub rest: Option<Box<SlurmRest>>,
}

impl SlurmOptions {
    /// Workers of `program` in the default partition, listening on
    /// 127.0.0.1, no resource request, the Slurm commands from `PATH`.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        SlurmOptions {
            program: program.into(),
            commands: SlurmCommands::default(),
            partition: None,
            account: None,
            time_limit: None,
            cpus: None,
            memory: None,
            extra_args: Vec::new(),
            listen_host: IpAddr::from([127, 0, 0, 1]),
            output_dir: None,
            rest: None,
        }
    }
}

/// Starts each worker as a Slurm batch job (see the module docs).
#[derive(Debug)]
pub struct SlurmLauncher {
    options: SlurmOptions,
    rest: Option<RestClient>,
    launches: AtomicU64,
    /// Whether jobs left by an earlier master were looked for; held while
    /// looking, so no job of this launcher is submitted (and cancelled as
    /// left behind) meanwhile.
    swept: Mutex<bool>,
}

impl SlurmLauncher {
    /// A launcher submitting with `options`.
    pub fn new(options: SlurmOptions) -> Self {
        SlurmLauncher {
            rest: options.rest.clone().map(|r| RestClient::new(*r)),
            options,
            launches: AtomicU64::new(0),
            swept: Mutex::new(false),
        }
    }

    /// The batch script sbatch runs for `request` (no secret in it).
    pub fn script(&self, request: &WorkerRequest) -> String {
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
            shell_quote(&request.project.display().to_string()),
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
        format!("#!/bin/sh\n{}\n", words.join(" "))
    }

    /// sbatch's arguments for a job named `name` writing to `output`.
    pub fn sbatch_args(&self, request: &WorkerRequest, name: &str, output: &Path) -> Vec<String> {
        let o = &self.options;
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={name}"),
            format!("--output={}", output.display()),
            format!("--chdir={}", request.project.display()),
            "--export=ALL".into(),
        ];
        // The session's resources override the launcher's defaults.
        let r = &request.resources;
        if let Some(p) = r.partition.as_ref().or(o.partition.as_ref()) {
            args.push(format!("--partition={p}"));
        }
        if let Some(a) = r.account.as_ref().or(o.account.as_ref()) {
            args.push(format!("--account={a}"));
        }
        if let Some(t) = r.time_limit.as_ref().or(o.time_limit.as_ref()) {
            args.push(format!("--time={t}"));
        }
        if let Some(n) = r.cpus.or(o.cpus) {
            args.push(format!("--cpus-per-task={n}"));
        }
        if let Some(bytes) = r.memory.or(o.memory) {
            args.push(format!("--mem={}M", bytes.div_ceil(1 << 20).max(1)));
        }
        if let Some(n) = r.gpus {
            args.push(format!("--gpus={n}"));
        }
        args.extend(o.extra_args.iter().cloned());
        args
    }

    /// The `POST /slurm/v0.0.38/job/submit` body for `request` (the same
    /// job as [`SlurmLauncher::sbatch_args`]; the environment is this
    /// process's, as `--export=ALL` gives, without its `SLURM_*` variables,
    /// plus the worker's `WEFT_TOKEN`).
    pub fn rest_submission(
        &self,
        request: &WorkerRequest,
        name: &str,
        output: &Path,
    ) -> Result<serde_json::Value, LaunchError> {
        use serde_json::{Value, json};
        let o = &self.options;
        let r = &request.resources;
        if !o.extra_args.is_empty() {
            return Err(LaunchError::Refused(
                "extra sbatch options cannot be given through slurmrestd".into(),
            ));
        }
        if r.gpus.is_some() {
            return Err(LaunchError::Refused(format!(
                "the worker job {name} asks for GPUs (resources.gpus), which this launcher submits \
                 only with sbatch, not through slurmrestd"
            )));
        }
        let mut environment: serde_json::Map<String, Value> = std::env::vars()
            .filter(|(k, _)| !k.starts_with("SLURM_") && k != "WEFT_TOKEN")
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        environment.insert("WEFT_TOKEN".into(), json!(request.token));
        let output = output.display().to_string();
        let mut job = json!({
            "name": name,
            "current_working_directory": request.project.display().to_string(),
            "standard_output": output,
            "standard_error": output,
            "environment": environment,
        });
        if let Some(p) = r.partition.as_ref().or(o.partition.as_ref()) {
            job["partition"] = json!(p);
        }
        if let Some(a) = r.account.as_ref().or(o.account.as_ref()) {
            job["account"] = json!(a);
        }
        if let Some(t) = r.time_limit.as_ref().or(o.time_limit.as_ref()) {
            let seconds = crate::resources::time_limit_seconds(t)
                .map_err(|m| LaunchError::Refused(format!("the time limit of the worker job {name}: {m}")))?;
            // In whole minutes (rounded up); no limit: the partition's.
            if let Some(seconds) = seconds {
                job["time_limit"] = json!(seconds.div_ceil(60));
            }
        }
        if let Some(n) = r.cpus.or(o.cpus) {
            job["cpus_per_task"] = json!(n);
        }
        if let Some(bytes) = r.memory.or(o.memory) {
            job["memory_per_node"] = json!(bytes.div_ceil(1 << 20).max(1));
        }
        Ok(json!({"script": self.script(request), "job": job}))
    }

    /// Cancels this user's queued or running jobs of session `session_id`
    /// (named `weft-<session>-w<k>`): left by an earlier master of the
    /// session, nobody holds their tokens any more.
    fn cancel_left_behind(&self, session_id: &str) {
        if let Some(rest) = &self.rest {
            let jobs = match rest.jobs() {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!("cannot list the Slurm jobs through slurmrestd: {e}");
                    return;
                }
            };
            let mine: String = jobs
                .iter()
                .filter(|j| j.user == rest.user() && !is_ended(&j.state))
                .map(|j| format!("{}|{}\n", j.id, j.name))
                .collect();
            for id in left_behind(&mine, session_id) {
                tracing::info!(job_id = %id, "cancelling a Slurm job left by an earlier master of session {session_id}");
                if let Err(e) = rest.cancel(&id) {
                    tracing::warn!(job_id = %id, "cannot cancel through slurmrestd: {e}");
                }
            }
            return;
        }
        let commands = &self.options.commands;
        let Some((true, stdout, _)) = run(&commands.squeue, &["-h", "--me", "-o", "%i|%j"]) else {
            return;
        };
        for id in left_behind(&stdout, session_id) {
            tracing::info!(job_id = %id, "cancelling a Slurm job left by an earlier master of session {session_id}");
            let _ = run(&commands.scancel, &[&id]);
        }
    }

    fn output_dir(&self, request: &WorkerRequest) -> PathBuf {
        self.options
            .output_dir
            .clone()
            .unwrap_or_else(|| request.project.join(".weft").join("slurm"))
    }
}

/// The last non-empty lines of `text` (at most `n`), joined.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The ids in `squeue -o %i|%j` lines of the jobs named
/// `weft-<session_id>-w<k>`.
fn left_behind(squeue: &str, session_id: &str) -> Vec<String> {
    let prefix = format!("weft-{session_id}-w");
    squeue
        .lines()
        .filter_map(|line| {
            let (id, name) = line.trim().split_once('|')?;
            let k = name.strip_prefix(&prefix)?;
            (!k.is_empty() && k.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
        })
        .collect()
}

/// The job id sbatch `--parsable` printed (`ID` or `ID;CLUSTER`).
fn parse_job_id(stdout: &str) -> Option<String> {
    let id = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = id.split(';').next().unwrap_or(id);
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_')).then(|| id.to_string())
}

impl Launcher for SlurmLauncher {
    fn launch(&self, request: &WorkerRequest) -> Result<WorkerHandle, LaunchError> {
        {
            let mut swept = lock(&self.swept);
            if !*swept {
                self.cancel_left_behind(&request.session_id);
                *swept = true;
            }
        }
        let k = self.launches.fetch_add(1, Ordering::SeqCst);
        let name = format!("weft-{}-w{k}", request.session_id);
        let dir = self.output_dir(request);
        std::fs::create_dir_all(&dir).map_err(|e| {
            LaunchError::Refused(format!(
                "cannot create the Slurm output folder {}: {e}",
                dir.display()
            ))
        })?;
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let output = dir.join(format!("{name}-{}.out", &nonce[..12]));
        if let Some(rest) = &self.rest {
            let body = self.rest_submission(request, &name, &output)?;
            let id = rest.submit(&body).map_err(|e| {
                LaunchError::Refused(format!(
                    "Slurm refused the worker job {name} (slurmrestd at {}): {e}",
                    rest.url()
                ))
            })?;
            tracing::debug!(job_id = %id, job_name = %name, "worker submitted to slurmrestd");
            return Ok(WorkerHandle::new(SlurmJob::watch(
                Api::Rest(rest.clone()),
                id,
                name,
                output,
            )));
        }
        let sbatch = &self.options.commands.sbatch;
        let mut child = Command::new(sbatch)
            .args(self.sbatch_args(request, &name, &output))
            .env("WEFT_TOKEN", &request.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                program: sbatch.clone(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            // sbatch reads the whole script before it answers; a failed
            // write shows as its error below.
            let _ = stdin.write_all(self.script(request).as_bytes());
        }
        let out = child.wait_with_output().map_err(|source| LaunchError::Spawn {
            program: sbatch.clone(),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(LaunchError::Refused(format!(
                "Slurm refused the worker job {name} ({} {}): {}",
                sbatch.display(),
                out.status,
                last_lines(&stderr, 5)
            )));
        }
        let Some(id) = parse_job_id(&stdout) else {
            return Err(LaunchError::Refused(format!(
                "sbatch --parsable printed no job id for the worker job {name}: {:?}",
                last_lines(&format!("{stdout}\n{stderr}"), 5)
            )));
        };
        tracing::debug!(job_id = %id, job_name = %name, "worker submitted to Slurm");
        Ok(WorkerHandle::new(SlurmJob::watch(
            Api::Commands(self.options.commands.clone()),
            id,
            name,
            output,
        )))
    }
}

/// A job's state as `squeue -o %T|%r|%B` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct QueueLine {
    state: String,
    reason: String,
    batch_host: Option<String>,
}

/// One line of `squeue -h -o %T|%r|%B` (`None`: no line, the job left the queue).
fn parse_squeue(stdout: &str) -> Option<QueueLine> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut parts = line.splitn(3, '|');
    let state = parts.next()?.trim().to_string();
    let reason = parts.next().unwrap_or("").trim().to_string();
    let host = parts.next().unwrap_or("").trim();
    let batch_host =
        (!host.is_empty() && !host.eq_ignore_ascii_case("n/a") && host != "(null)").then(|| host.to_string());
    Some(QueueLine {
        state,
        reason,
        batch_host,
    })
}

/// Slurm job states in which the batch script (the worker) has ended or is
/// ending. `PENDING`, `CONFIGURING`, `RUNNING`, `SUSPENDED`, `STOPPED`,
/// `REQUEUED`, `RESIZING`, `SIGNALING` still have (or will have) a worker.
pub fn is_ended(state: &str) -> bool {
    // `CANCELLED by 1000` in sacct.
    let state = state.split_whitespace().next().unwrap_or(state);
    matches!(
        state,
        "COMPLETING"
            | "COMPLETED"
            | "CANCELLED"
            | "FAILED"
            | "TIMEOUT"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "OUT_OF_MEMORY"
            | "SPECIAL_EXIT"
            | "REVOKED"
    )
}

/// Pending reasons under which a job can never start as submitted: it asks
/// for more than any node or its partition allows, or names something the
/// cluster refuses (`ReqNodeNotAvail, UnavailableNodes:n1` counts by its
/// first word).
pub fn is_hopeless(reason: &str) -> bool {
    let first = reason.split([',', ' ']).next().unwrap_or(reason);
    matches!(
        first,
        "PartitionConfig"
            | "PartitionNodeLimit"
            | "PartitionTimeLimit"
            | "ReqNodeNotAvail"
            | "BadConstraints"
            | "InvalidAccount"
            | "InvalidQOS"
            | "AccountNotAllowed"
            | "DependencyNeverSatisfied"
            | "JobHeldAdmin"
    )
}

/// `Key=Value` fields of `scontrol show job -o` (values have no spaces,
/// except the last field's).
fn scontrol_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// How an ended job ended, for messages: `Slurm job 12 CANCELLED (exit code
/// 0:15)`, with its reason when it has one.
fn ended_message(id: &str, state: &str, exit_code: &str, reason: &str) -> String {
    let mut text = format!("Slurm job {id} {}", state.trim());
    let exit_code = exit_code.trim();
    let reason = reason.trim();
    let reason = (!reason.is_empty() && reason != "None" && reason != "(null)").then_some(reason);
    match (exit_code.is_empty(), reason) {
        (false, Some(r)) => text.push_str(&format!(" (exit code {exit_code}, reason {r})")),
        (false, None) => text.push_str(&format!(" (exit code {exit_code})")),
        (true, Some(r)) => text.push_str(&format!(" (reason {r})")),
        (true, None) => {}
    }
    text
}

/// `sacct -n -X -P -o State,ExitCode,Reason` → the ended message, when
/// accounting knows the job as ended.
fn parse_sacct(id: &str, stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut parts = line.split('|');
    let state = parts.next()?.trim();
    let exit_code = parts.next().unwrap_or("");
    let reason = parts.next().unwrap_or("");
    is_ended(state).then(|| ended_message(id, state, exit_code, reason))
}

/// `scontrol show job -o ID` → the ended message, when the controller
/// knows the job as ended.
fn parse_scontrol(id: &str, stdout: &str) -> Option<String> {
    let state = scontrol_field(stdout, "JobState")?;
    is_ended(state).then(|| {
        ended_message(
            id,
            state,
            scontrol_field(stdout, "ExitCode").unwrap_or(""),
            scontrol_field(stdout, "Reason").unwrap_or(""),
        )
    })
}

/// What the watcher last saw of a job.
#[derive(Default)]
struct Seen {
    /// How the job ended, once it did.
    exit: Option<String>,
    /// A pending reason under which the job never starts.
    never: Option<String>,
    /// The node running the batch script.
    batch_host: Option<String>,
    /// The last `STATE (reason)` seen in the queue.
    queued: Option<String>,
}

impl Seen {
    /// The job is queued or running in `state` (with `reason`), on
    /// `batch_host` once it has one.
    fn live(&mut self, state: &str, reason: String, batch_host: Option<String>) {
        self.queued = Some(format!("{state} (reason {reason})"));
        if batch_host.is_some() {
            self.batch_host = batch_host;
        }
        if state == "PENDING" && is_hopeless(&reason) {
            self.never = Some(reason);
        }
    }
}

/// How a job is watched and cancelled: the Slurm commands, or slurmrestd.
enum Api {
    Commands(SlurmCommands),
    Rest(RestClient),
}

struct Shared {
    api: Api,
    id: String,
    name: String,
    output: PathBuf,
    seen: Mutex<Seen>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `program args...` → (success, stdout, stderr); `None`: it did not run.
fn run(program: &Path, args: &[&str]) -> Option<(bool, String, String)> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| tracing::warn!(program = %program.display(), "cannot run: {e}"))
        .ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

impl Shared {
    /// One look at the job's state (a Slurm command that fails for a moment
    /// changes nothing: the next poll tries again).
    fn poll(&self) {
        let commands = match &self.api {
            Api::Commands(commands) => commands,
            Api::Rest(rest) => return self.poll_rest(rest),
        };
        let Some((ok, stdout, stderr)) = run(&commands.squeue, &["-h", "-j", &self.id, "-o", "%T|%r|%B"])
        else {
            return;
        };
        let line = if ok {
            parse_squeue(&stdout)
        } else if stderr.contains("Invalid job id") {
            // Purged from the controller.
            None
        } else {
            tracing::debug!(job_id = %self.id, "squeue failed: {}", stderr.trim());
            return;
        };
        match line {
            Some(line) if !is_ended(&line.state) => {
                lock(&self.seen).live(&line.state, line.reason, line.batch_host);
            }
            Some(line) => {
                let exit = self
                    .final_state()
                    .unwrap_or_else(|| ended_message(&self.id, &line.state, "", &line.reason));
                lock(&self.seen).exit = Some(exit);
            }
            None => {
                let exit = self
                    .final_state()
                    .unwrap_or_else(|| format!("Slurm job {} is no longer known to Slurm", self.id));
                lock(&self.seen).exit = Some(exit);
            }
        }
    }

    /// [`Shared::poll`] through slurmrestd: the job's answer holds its
    /// state, pending reason, batch host and, once ended, exit code.
    fn poll_rest(&self, rest: &RestClient) {
        match rest.job(&self.id) {
            Err(e) => tracing::debug!(job_id = %self.id, "slurmrestd: {e}"),
            Ok(None) => {
                lock(&self.seen).exit = Some(format!("Slurm job {} is no longer known to Slurm", self.id));
            }
            Ok(Some(RestJob {
                state,
                reason,
                batch_host,
                exit_code,
                ..
            })) => {
                let mut seen = lock(&self.seen);
                if is_ended(&state) {
                    let code = exit_code.map(|c| c.to_string()).unwrap_or_default();
                    seen.exit = Some(ended_message(&self.id, &state, &code, &reason));
                    return;
                }
                seen.live(&state, reason, batch_host);
            }
        }
    }

    /// Cancels the job (a failure is logged: the watcher still sees it end
    /// or not).
    fn cancel(&self) {
        match &self.api {
            Api::Rest(rest) => {
                if let Err(e) = rest.cancel(&self.id) {
                    tracing::warn!(job_id = %self.id, "cancelling through slurmrestd failed: {e}");
                }
            }
            Api::Commands(commands) => match run(&commands.scancel, &[&self.id]) {
                Some((true, _, _)) | None => {}
                Some((false, _, stderr)) => {
                    tracing::warn!(job_id = %self.id, "scancel failed: {}", stderr.trim())
                }
            },
        }
    }

    /// How the job ended: accounting first, else the controller's memory.
    fn final_state(&self) -> Option<String> {
        let Api::Commands(commands) = &self.api else {
            return None;
        };
        if let Some((true, stdout, _)) = run(
            &commands.sacct,
            &["-n", "-X", "-P", "-j", &self.id, "-o", "State,ExitCode,Reason"],
        ) && let Some(message) = parse_sacct(&self.id, &stdout)
        {
            return Some(message);
        }
        match run(&commands.scontrol, &["show", "job", "-o", &self.id]) {
            Some((true, stdout, _)) => parse_scontrol(&self.id, &stdout),
            _ => None,
        }
    }

    fn output_text(&self) -> String {
        std::fs::read(&self.output)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// One worker submitted as a Slurm batch job.
struct SlurmJob {
    shared: Arc<Shared>,
    address: Option<String>,
    cancel_sent: bool,
    /// Dropping it wakes and ends the watcher.
    stop_watch: Option<mpsc::Sender<()>>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

/// How often a job's state is polled.
const WATCH_EVERY: Duration = Duration::from_millis(250);

impl SlurmJob {
    fn watch(api: Api, id: String, name: String, output: PathBuf) -> Self {
        let shared = Arc::new(Shared {
            api,
            id,
            name,
            output,
            seen: Mutex::new(Seen::default()),
        });
        let (stop_watch, stopped) = mpsc::channel::<()>();
        let watched = Arc::clone(&shared);
        let watcher = std::thread::Builder::new()
            .name(format!("slurm-job-{}", shared.id))
            .spawn(move || {
                loop {
                    watched.poll();
                    if lock(&watched.seen).exit.is_some() {
                        break;
                    }
                    match stopped.recv_timeout(WATCH_EVERY) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                }
            })
            .map_err(|e| tracing::warn!("cannot start the Slurm job watcher: {e}"))
            .ok();
        SlurmJob {
            shared,
            address: None,
            cancel_sent: false,
            stop_watch: Some(stop_watch),
            watcher,
        }
    }

    fn exited_error(&self, exit: String) -> LaunchError {
        LaunchError::Exited {
            worker: self.describe(),
            status: exit,
            stderr: self.stderr_tail(),
        }
    }
}

impl WorkerProcess for SlurmJob {
    fn describe(&self) -> String {
        format!("Slurm job {} ({})", self.shared.id, self.shared.name)
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
            // The state first: output read after it cannot miss a line
            // written before the job ended.
            let (exit, never) = {
                let seen = lock(&self.shared.seen);
                (seen.exit.clone(), seen.never.clone())
            };
            if let Some(url) = announced_address(&self.shared.output_text()) {
                let host = lock(&self.shared.seen).batch_host.clone();
                let url = reachable(&url, host.as_deref());
                self.address = Some(url.clone());
                return Ok(url);
            }
            if let Some(exit) = exit {
                return Err(self.exited_error(exit));
            }
            if let Some(reason) = never {
                return Err(LaunchError::Refused(format!(
                    "{} can never start: Slurm keeps it PENDING with reason {reason} \
                     (it asks for more than the partition or its nodes allow, or for \
                     something the cluster refuses)",
                    self.describe()
                )));
            }
            if Instant::now() >= deadline {
                let queued = lock(&self.shared.seen).queued.clone();
                tracing::warn!(
                    job_id = %self.shared.id,
                    "the worker's Slurm job announced no address in time; last seen {}",
                    queued.as_deref().unwrap_or("nothing")
                );
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
        last_lines(&self.shared.output_text(), 20)
    }

    fn kill(&mut self) {
        if !self.cancel_sent && lock(&self.shared.seen).exit.is_none() {
            self.cancel_sent = true;
            self.shared.cancel();
            // Slurm signals the worker, which exits at once when idle; wait
            // a little for the job to be recorded ended.
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                self.shared.poll();
                if lock(&self.shared.seen).exit.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn stop_idle_by_kill(&self) -> bool {
        true
    }
}

impl Drop for SlurmJob {
    fn drop(&mut self) {
        drop(self.stop_watch.take());
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
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
    fn the_rest_submission_is_the_same_job_with_the_token_in_its_environment() {
        let mut options = SlurmOptions::new("/opt/weft/bin/weft");
        options.partition = Some("batch".into());
        options.cpus = Some(4);
        options.rest = Some(Box::new(SlurmRest {
            url: "http://127.0.0.1:1".into(),
            user: "me".into(),
            token: "jwt".into(),
        }));
        let launcher = SlurmLauncher::new(options);
        let mut session = request();
        session.resources.cpus = Some(1);
        session.resources.memory = Some(100 << 20);
        session.resources.time_limit = Some("1:30".into());
        let body = launcher
            .rest_submission(&session, "weft-s1-w0", Path::new("/srv/out/w0.out"))
            .unwrap();
        assert_eq!(body["script"], launcher.script(&session));
        let job = &body["job"];
        assert_eq!(job["name"], "weft-s1-w0");
        assert_eq!(job["current_working_directory"], "/srv/my project");
        assert_eq!(job["standard_output"], "/srv/out/w0.out");
        assert_eq!(job["partition"], "batch");
        assert_eq!(job["cpus_per_task"], 1);
        assert_eq!(job["memory_per_node"], 100);
        assert_eq!(job["time_limit"], 2, "90 s, in whole minutes");
        assert_eq!(job["environment"]["WEFT_TOKEN"], "secret-token");
        assert!(!body["script"].as_str().unwrap().contains("secret-token"));
        assert!(
            job["environment"]
                .as_object()
                .unwrap()
                .keys()
                .all(|k| !k.starts_with("SLURM_")),
            "{job}"
        );
        // What it cannot carry is refused, not dropped.
        session.resources.gpus = Some(1);
        let err = launcher
            .rest_submission(&session, "n", Path::new("o"))
            .unwrap_err();
        assert!(err.to_string().contains("resources.gpus"), "{err}");
        let mut options = SlurmOptions::new("weft");
        options.extra_args = vec!["--qos=high".into()];
        options.rest = launcher.options.rest.clone();
        let err = SlurmLauncher::new(options)
            .rest_submission(&request(), "n", Path::new("o"))
            .unwrap_err();
        assert!(err.to_string().contains("extra sbatch options"), "{err}");
    }

    #[test]
    fn the_script_quotes_paths_and_keeps_the_token_out() {
        let launcher = SlurmLauncher::new(SlurmOptions::new("/opt/weft/bin/weft"));
        let script = launcher.script(&request());
        assert_eq!(
            script,
            "#!/bin/sh\nexec env -u WEFT_SERVER /opt/weft/bin/weft worker --project '/srv/my project' \
             --session-id s1 --listen 127.0.0.1:0 --env prod --max-runs 3\n"
        );
        let args = launcher.sbatch_args(&request(), "weft-s1-w0", Path::new("/srv/out/w0.out"));
        assert!(!script.contains("secret-token"));
        assert!(!args.iter().any(|a| a.contains("secret-token")), "{args:?}");
        assert_eq!(
            args,
            [
                "--parsable",
                "--job-name=weft-s1-w0",
                "--output=/srv/out/w0.out",
                "--chdir=/srv/my project",
                "--export=ALL"
            ]
        );
    }

    #[test]
    fn resources_become_sbatch_options_before_the_extra_ones() {
        let mut options = SlurmOptions::new("weft");
        options.partition = Some("gpu".into());
        options.account = Some("team-a".into());
        options.time_limit = Some("1:30:00".into());
        options.cpus = Some(4);
        options.memory = Some((1 << 30) + 1);
        options.extra_args = vec!["--qos=high".into()];
        options.listen_host = "0.0.0.0".parse().unwrap();
        let launcher = SlurmLauncher::new(options);
        let args = launcher.sbatch_args(&request(), "n", Path::new("o"));
        assert_eq!(
            &args[5..],
            [
                "--partition=gpu",
                "--account=team-a",
                "--time=1:30:00",
                "--cpus-per-task=4",
                "--mem=1025M",
                "--qos=high"
            ]
        );
        assert!(launcher.script(&request()).contains("--listen 0.0.0.0:0"));
        // A session's resources replace the server's, field by field.
        let mut session = request();
        session.resources.partition = Some("debug".into());
        session.resources.time_limit = Some("5".into());
        session.resources.memory = Some(100 << 20);
        session.resources.gpus = Some(2);
        let args = launcher.sbatch_args(&session, "n", Path::new("o"));
        assert_eq!(
            &args[5..],
            [
                "--partition=debug",
                "--account=team-a",
                "--time=5",
                "--cpus-per-task=4",
                "--mem=100M",
                "--gpus=2",
                "--qos=high"
            ]
        );
        assert_eq!(
            launcher.output_dir(&request()),
            PathBuf::from("/srv/my project/.weft/slurm")
        );
    }

    #[test]
    fn sbatch_job_ids_are_parsed() {
        assert_eq!(parse_job_id("12345\n").as_deref(), Some("12345"));
        assert_eq!(parse_job_id("77;cluster-a\n").as_deref(), Some("77"));
        assert_eq!(parse_job_id("sbatch: warning: x\n9\n").as_deref(), Some("9"));
        assert_eq!(parse_job_id(""), None);
        assert_eq!(parse_job_id("Submitted batch job 5\n"), None);
    }

    #[test]
    fn squeue_lines_are_parsed() {
        assert_eq!(
            parse_squeue("RUNNING|None|node7\n"),
            Some(QueueLine {
                state: "RUNNING".into(),
                reason: "None".into(),
                batch_host: Some("node7".into())
            })
        );
        let pending = parse_squeue("PENDING|ReqNodeNotAvail, UnavailableNodes:n1|n/a\n").unwrap();
        assert_eq!(pending.reason, "ReqNodeNotAvail, UnavailableNodes:n1");
        assert_eq!(pending.batch_host, None);
        assert!(is_hopeless(&pending.reason));
        assert_eq!(parse_squeue("\n"), None);
    }

    #[test]
    fn states_and_reasons_are_classified() {
        for s in [
            "COMPLETING",
            "COMPLETED",
            "CANCELLED by 0",
            "FAILED",
            "TIMEOUT",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
        ] {
            assert!(is_ended(s), "{s}");
        }
        for s in ["PENDING", "RUNNING", "CONFIGURING", "SUSPENDED", "REQUEUED"] {
            assert!(!is_ended(s), "{s}");
        }
        for r in [
            "PartitionConfig",
            "PartitionTimeLimit",
            "InvalidAccount",
            "BadConstraints",
        ] {
            assert!(is_hopeless(r), "{r}");
        }
        for r in ["Resources", "Priority", "None", "BeginTime", "Dependency", ""] {
            assert!(!is_hopeless(r), "{r}");
        }
    }

    #[test]
    fn ended_jobs_are_read_from_sacct_or_scontrol() {
        assert_eq!(
            parse_sacct("12", "CANCELLED by 0|0:15|None\n").as_deref(),
            Some("Slurm job 12 CANCELLED by 0 (exit code 0:15)")
        );
        assert_eq!(
            parse_sacct("12", "FAILED|127:0|NonZeroExitCode\n").as_deref(),
            Some("Slurm job 12 FAILED (exit code 127:0, reason NonZeroExitCode)")
        );
        // Still running in accounting: not an end.
        assert_eq!(parse_sacct("12", "RUNNING|0:0|None\n"), None);
        assert_eq!(parse_sacct("12", ""), None);
        let line = "JobId=3 JobName=weft-s1-w0 UserId=root(0) JobState=CANCELLED Reason=None \
                    Dependency=(null) Requeue=1 ExitCode=0:15 RunTime=00:00:04";
        assert_eq!(
            parse_scontrol("3", line).as_deref(),
            Some("Slurm job 3 CANCELLED (exit code 0:15)")
        );
        let line = "JobId=4 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:0";
        assert_eq!(
            parse_scontrol("4", line).as_deref(),
            Some("Slurm job 4 TIMEOUT (exit code 0:0, reason TimeLimit)")
        );
        assert_eq!(parse_scontrol("5", "JobId=5 JobState=RUNNING Reason=None"), None);
    }

    #[test]
    fn the_address_is_found_in_the_job_output() {
        let output = "2026-01-01 INFO loading\nweft worker: listening on http://0.0.0.0:4567\n";
        let url = announced_address(output).unwrap();
        assert_eq!(reachable(&url, Some("node7")), "http://node7:4567");
        assert_eq!(
            reachable("http://127.0.0.1:1", Some("node7")),
            "http://127.0.0.1:1"
        );
        assert_eq!(announced_address("weft worker: listening on ftp://x\n"), None);
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b\nc");
    }

    /// Fake Slurm commands in `dir`: scripts that print their answer (on
    /// stderr when they exit non-zero) and record their arguments in
    /// `dir/calls`.
    fn fake_commands(dir: &Path, answers: &[(&str, &str, i32)]) -> SlurmCommands {
        use std::os::unix::fs::PermissionsExt;
        for (name, stdout, code) in answers {
            let path = dir.join(name);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{name} $* token=${{WEFT_TOKEN:-}}\" >> '{}/calls'\ncat >/dev/null\nprintf '%s' '{stdout}' {redirect}\nexit {code}\n",
                    dir.display(),
                    redirect = if *code == 0 { "" } else { ">&2" },
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        SlurmCommands::in_dir(dir)
    }

    #[test]
    fn jobs_left_by_an_earlier_master_are_cancelled_before_the_first_launch() {
        let dir = tempfile::tempdir().unwrap();
        let commands = fake_commands(
            dir.path(),
            &[
                ("sbatch", "50", 0),
                (
                    "squeue",
                    "7|weft-s1-w0\n8|weft-s1-w12\n9|weft-s10-w0\n10|weft-s1-wx\n11|other",
                    0,
                ),
                ("scancel", "", 0),
                ("sacct", "", 1),
                ("scontrol", "", 1),
            ],
        );
        let mut options = SlurmOptions::new("weft");
        options.commands = commands;
        options.output_dir = Some(dir.path().join("out"));
        let launcher = SlurmLauncher::new(options);
        let first = launcher.launch(&request()).unwrap();
        let second = launcher.launch(&request()).unwrap();
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        let cancels: Vec<&str> = calls
            .lines()
            .filter(|l| l.starts_with("scancel"))
            .map(|l| l.split(" token=").next().unwrap_or(l))
            .collect();
        assert_eq!(cancels, ["scancel 7", "scancel 8"], "{calls}");
        // Only the first launch looks.
        assert_eq!(calls.matches("squeue -h --me").count(), 1, "{calls}");
        drop((first, second));
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert!(calls.contains("scancel 50"), "{calls}");
    }

    #[test]
    fn concurrent_first_launches_never_cancel_each_others_jobs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        // sbatch lists each job it takes in `jobs`; squeue --me shows them
        // after a moment (a listing racing a submission).
        let scripts = [
            (
                "sbatch",
                format!(
                    "#!/bin/sh\ncat >/dev/null\nname=$(echo \"$*\" | sed -n 's/.*--job-name=\\([^ ]*\\).*/\\1/p')\n\
                     n=$(cat '{d}/jobs' 2>/dev/null | wc -l)\necho \"$((n+100))|$name\" >> '{d}/jobs'\necho $((n+100))\n"
                ),
            ),
            (
                "squeue",
                format!(
                    "#!/bin/sh\ncase \"$*\" in *--me*) sleep 0.3; cat '{d}/jobs' 2>/dev/null;; \
                     *) echo 'RUNNING|None|n/a';; esac\n"
                ),
            ),
            ("scancel", format!("#!/bin/sh\necho \"$*\" >> '{d}/cancels'\n")),
        ];
        for (name, text) in scripts {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut options = SlurmOptions::new("weft");
        options.commands = SlurmCommands::in_dir(dir.path());
        options.output_dir = Some(dir.path().join("out"));
        let launcher = Arc::new(SlurmLauncher::new(options));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let launcher = Arc::clone(&launcher);
                std::thread::spawn(move || launcher.launch(&request()).unwrap())
            })
            .collect();
        let handles: Vec<WorkerHandle> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let jobs = std::fs::read_to_string(dir.path().join("jobs")).unwrap();
        assert_eq!(jobs.lines().count(), 2, "{jobs}");
        assert!(
            !dir.path().join("cancels").exists(),
            "{:?}",
            std::fs::read_to_string(dir.path().join("cancels"))
        );
        drop(handles);
    }

    #[test]
    fn a_refused_submission_carries_sbatchs_error() {
        let dir = tempfile::tempdir().unwrap();
        let commands = fake_commands(
            dir.path(),
            &[(
                "sbatch",
                "sbatch: error: Batch job submission failed: Invalid partition name specified",
                1,
            )],
        );
        let mut options = SlurmOptions::new("weft");
        options.commands = commands;
        options.output_dir = Some(dir.path().join("out"));
        let Err(err) = SlurmLauncher::new(options).launch(&request()) else {
            panic!("the launch was not refused")
        };
        let text = err.to_string();
        assert!(
            text.contains("weft-s1-w0") && text.contains("Invalid partition name specified"),
            "{text}"
        );
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        // The token travels in sbatch's environment only.
        assert!(calls.contains("token=secret-token"), "{calls}");
        assert_eq!(calls.matches("secret-token").count(), 1, "{calls}");
    }

    #[test]
    fn a_hopeless_pending_job_fails_the_launch_and_is_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let commands = fake_commands(
            dir.path(),
            &[
                ("sbatch", "41", 0),
                ("squeue", "PENDING|PartitionConfig|n/a", 0),
                ("scancel", "", 0),
                ("sacct", "", 1),
                ("scontrol", "", 1),
            ],
        );
        let mut options = SlurmOptions::new("weft");
        options.commands = commands;
        options.output_dir = Some(dir.path().join("out"));
        let mut handle = SlurmLauncher::new(options).launch(&request()).unwrap();
        assert_eq!(handle.process().describe(), "Slurm job 41 (weft-s1-w0)");
        let err = handle
            .process()
            .address(Instant::now() + Duration::from_secs(10))
            .unwrap_err();
        assert!(err.to_string().contains("reason PartitionConfig"), "{err}");
        drop(handle);
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert!(calls.contains("scancel 41"), "{calls}");
    }

    #[test]
    fn a_job_gone_from_squeue_is_read_from_scontrol_when_sacct_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let commands = fake_commands(
            dir.path(),
            &[
                ("sbatch", "42", 0),
                ("squeue", "", 0),
                ("sacct", "Slurm accounting storage is disabled", 1),
                (
                    "scontrol",
                    "JobId=42 JobState=FAILED Reason=NonZeroExitCode ExitCode=127:0",
                    0,
                ),
                ("scancel", "", 0),
            ],
        );
        let mut options = SlurmOptions::new("weft");
        options.commands = commands;
        options.output_dir = Some(dir.path().join("out"));
        let mut handle = SlurmLauncher::new(options).launch(&request()).unwrap();
        let err = handle
            .process()
            .address(Instant::now() + Duration::from_secs(10))
            .unwrap_err();
        assert!(
            matches!(&err, LaunchError::Exited { status, .. }
                if status == "Slurm job 42 FAILED (exit code 127:0, reason NonZeroExitCode)"),
            "{err}"
        );
        // An ended job is not cancelled.
        drop(handle);
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert!(!calls.contains("scancel"), "{calls}");
    }
}
