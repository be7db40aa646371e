//! Command nodes: run any executable (Python, R, a shell tool, a container)
//! on the files of a node's catalog datasets.
//!
//! A command node is declared in the pipeline model
//! ([`weft_pipeline::command`]); runners call [`run_command`] for it:
//!
//! * **Inputs** become file paths: a file dataset on disk gives the file a
//!   load would read (this run's version, the pinned one, or the newest;
//!   recorded as the loaded version); a file on an object store is
//!   downloaded to a temporary file with the same name; a memory dataset
//!   (also `params:`) is written to a temporary file in its JSON form; a
//!   folder dataset on disk gives its folder.
//! * **Outputs** are the files the command writes. For a file dataset on
//!   disk the command writes a temporary sibling of the file a save would
//!   write (same folder, same extension: `.weft-<hex>-<basename>`; for a
//!   versioned dataset inside the run's version folder), renamed into
//!   place once the command succeeded, so a failed command never leaves a
//!   half-written dataset; then the save is recorded (versions). For an
//!   object store the file is written in a temporary folder and uploaded
//!   through the dataset's storage. For a memory dataset the command
//!   writes JSON, which becomes the dataset's value. A declared output
//!   the command did not write is an error naming it and the path.
//! * The child runs without a shell, with `cwd` and `env` applied (it
//!   inherits the rest of the environment, plus `WEFT_RUN_ID` and
//!   `WEFT_NODE`), stdin closed, in its own process group. Each line of
//!   its stdout and stderr is a tracing event (`node`, `stream` fields) in
//!   the caller's span, so it lands in the run's log.
//! * A non-zero exit is an error with the exit code (or signal) and the
//!   last [`STDERR_TAIL`] lines of stderr. Cancellation and `timeout` kill
//!   the whole process group with `SIGKILL` and wait for the child: no
//!   zombie, no hang. When the child exits, stragglers it left in its
//!   group are killed too.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_catalog::{Catalog, CatalogError, Dataset};
use weft_pipeline::command::{CommandSpec, Piece, Template};
use weft_pipeline::{CancelToken, Data, Node};

/// How many lines of stderr a failure quotes.
pub const STDERR_TAIL: usize = 20;

/// Why a command node failed. Every variant names the node; the runner's
/// node error names it again in front, so the messages leave it out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program is not on `PATH` (or the path does not exist).
    #[error("program `{program}` not found (is it installed and on PATH?)")]
    ProgramNotFound {
        /// The node.
        node: String,
        /// The program as given.
        program: String,
    },
    /// The child could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The node.
        node: String,
        /// The program as given.
        program: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The working directory does not exist.
    #[error("working directory {} does not exist", cwd.display())]
    CwdMissing {
        /// The node.
        node: String,
        /// The directory.
        cwd: PathBuf,
    },
    /// The command exited with a non-zero code or was killed by a signal.
    #[error("`{command}` {how}{}", tail(stderr_tail))]
    Failed {
        /// The node.
        node: String,
        /// The command line (for the message).
        command: String,
        /// `exited with code 3`, `was killed by signal 9`.
        how: String,
        /// The exit code, if it exited.
        code: Option<i32>,
        /// The last lines of its stderr.
        stderr_tail: Vec<String>,
    },
    /// The command ran longer than its `timeout`; it was killed.
    #[error(
        "`{command}` exceeded its timeout of {timeout:?} and was killed{}",
        tail(stderr_tail)
    )]
    TimedOut {
        /// The node.
        node: String,
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
        /// The last lines of its stderr.
        stderr_tail: Vec<String>,
    },
    /// The run was cancelled; the command was killed.
    #[error("`{command}` was killed: the run was cancelled")]
    Cancelled {
        /// The node.
        node: String,
        /// The command line.
        command: String,
    },
    /// The command succeeded but did not write a declared output.
    #[error("the command did not write output `{output}` (expected at {})", path.display())]
    OutputMissing {
        /// The node.
        node: String,
        /// The output dataset.
        output: String,
        /// Where the command was told to write it.
        path: PathBuf,
    },
    /// An input file does not exist.
    #[error("input `{dataset}` has no file at {}", path.display())]
    InputMissing {
        /// The node.
        node: String,
        /// The input dataset.
        dataset: String,
        /// The path looked at.
        path: PathBuf,
    },
    /// The catalog could not give, load or save a dataset.
    #[error("could not {action} dataset `{dataset}`: {source}")]
    Catalog {
        /// The node.
        node: String,
        /// The dataset.
        dataset: String,
        /// What was being done.
        action: &'static str,
        /// The catalog's error.
        #[source]
        source: Box<CatalogError>,
    },
    /// A dataset a command cannot use as a file.
    #[error("dataset `{dataset}` cannot be {role} of a command: {reason}")]
    Unsupported {
        /// The node.
        node: String,
        /// The dataset.
        dataset: String,
        /// `an input` or `an output`.
        role: &'static str,
        /// Why.
        reason: String,
    },
    /// A value could not be written as, or read from, JSON.
    #[error("dataset `{dataset}`: {message}")]
    Json {
        /// The node.
        node: String,
        /// The dataset.
        dataset: String,
        /// What went wrong.
        message: String,
    },
    /// A file operation of the staging failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// The node.
        node: String,
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl CommandError {
    /// The node the error belongs to.
    pub fn node(&self) -> &str {
        match self {
            CommandError::ProgramNotFound { node, .. }
            | CommandError::Spawn { node, .. }
            | CommandError::CwdMissing { node, .. }
            | CommandError::Failed { node, .. }
            | CommandError::TimedOut { node, .. }
            | CommandError::Cancelled { node, .. }
            | CommandError::OutputMissing { node, .. }
            | CommandError::InputMissing { node, .. }
            | CommandError::Catalog { node, .. }
            | CommandError::Unsupported { node, .. }
            | CommandError::Json { node, .. }
            | CommandError::Io { node, .. } => node,
        }
    }
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    format!("; last lines of stderr:\n    | {}", lines.join("\n    | "))
}

/// One command node to run against one run's catalog.
pub struct CommandJob<'a> {
    /// The node (its inputs and outputs, as renamed by namespaces).
    pub node: &'a Node,
    /// What it runs.
    pub spec: &'a CommandSpec,
    /// The run's catalog.
    pub catalog: &'a Catalog,
    /// The run's id (`WEFT_RUN_ID` in the child's environment).
    pub run_id: &'a str,
    /// The run's cancellation flag: the child is killed when it is set.
    pub cancel: &'a CancelToken,
}

/// What a successful command leaves for the runner to save: the values of
/// outputs that are memory datasets (`(output index, value)`). File
/// outputs are already in place and recorded as saved.
#[derive(Debug, Default)]
pub struct CommandOutcome {
    /// Memory outputs, read back from the JSON the command wrote.
    pub memory_outputs: Vec<(usize, Data)>,
}

/// Where one output goes.
enum OutputPlan {
    /// A file on disk: the command writes `staging`, renamed to `target`.
    Local {
        dataset: Arc<dyn Dataset>,
        staging: PathBuf,
        target: PathBuf,
    },
    /// An object: written locally, then uploaded through the storage.
    Remote {
        dataset: Arc<dyn Dataset>,
        staging: PathBuf,
    },
    /// A memory dataset: JSON read back into a value.
    Memory { staging: PathBuf },
}

impl OutputPlan {
    fn staging(&self) -> &Path {
        match self {
            OutputPlan::Local { staging, .. }
            | OutputPlan::Remote { staging, .. }
            | OutputPlan::Memory { staging } => staging,
        }
    }
}

/// Removes staged output files left by a failed command.
struct StagingGuard(Vec<PathBuf>);

impl Drop for StagingGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// `path` made absolute (against the process's folder, without touching
/// the disk), so a command with its own `cwd` finds it.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A file name made of a dataset name (`params:a.b` → `params_a.b`).
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct Ctx<'a> {
    job: &'a CommandJob<'a>,
    tmp: tempfile::TempDir,
}

impl Ctx<'_> {
    fn node(&self) -> String {
        self.job.node.name().to_string()
    }

    fn io(&self, path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> CommandError + '_ {
        let path = path.to_path_buf();
        move |source| CommandError::Io {
            node: self.node(),
            path,
            action,
            source,
        }
    }

    fn catalog_err(
        &self,
        dataset: &str,
        action: &'static str,
    ) -> impl FnOnce(CatalogError) -> CommandError + '_ {
        let dataset = dataset.to_string();
        move |source| CommandError::Catalog {
            node: self.node(),
            dataset,
            action,
            source: Box::new(source),
        }
    }

    fn dataset(&self, name: &str) -> Result<Option<Arc<dyn Dataset>>, CommandError> {
        self.job
            .catalog
            .dataset(name)
            .map_err(self.catalog_err(name, "resolve"))
    }

    fn json_of(&self, name: &str) -> Result<serde_json::Value, CommandError> {
        let data = self
            .job
            .catalog
            .load(name, None)
            .map_err(self.catalog_err(name, "load"))?;
        data.to_json().map_err(|e| CommandError::Json {
            node: self.node(),
            dataset: name.to_string(),
            message: format!("its value (of type `{}`) has no JSON form: {e}", data.type_name()),
        })
    }

    /// The file the command reads input `k` from.
    fn input_path(&self, k: usize) -> Result<PathBuf, CommandError> {
        let name = &self.job.node.inputs()[k];
        let dataset = self.dataset(name)?;
        match dataset {
            Some(ds) if !ds.is_memory() => {
                if let Some(target) = ds.file_target() {
                    if target.storage().scheme() == "file" {
                        let path = target
                            .open_for_reading()
                            .map_err(self.catalog_err(name, "load"))?;
                        if !path.is_file() {
                            return Err(CommandError::InputMissing {
                                node: self.node(),
                                dataset: name.clone(),
                                path,
                            });
                        }
                        return Ok(path);
                    }
                    let (_, bytes) = target.read().map_err(self.catalog_err(name, "load"))?;
                    let dir = self.tmp.path().join(format!("in-{k}"));
                    std::fs::create_dir_all(&dir).map_err(self.io(&dir, "create"))?;
                    let base = target
                        .path
                        .file_name()
                        .map(|b| b.to_os_string())
                        .unwrap_or_else(|| file_stem(name).into());
                    let file = dir.join(base);
                    std::fs::write(&file, bytes).map_err(self.io(&file, "write"))?;
                    return Ok(file);
                }
                match (ds.path(), ds.storage()) {
                    (Some(path), None) => Ok(path),
                    (Some(path), Some(s)) if s.scheme() == "file" => Ok(path),
                    _ => Err(CommandError::Unsupported {
                        node: self.node(),
                        dataset: name.clone(),
                        role: "an input",
                        reason: format!(
                            "a `{}` has no single local file or folder",
                            ds.describe().type_name
                        ),
                    }),
                }
            }
            _ => {
                let value = self.json_of(name)?;
                let file = self.tmp.path().join(format!("in-{k}-{}.json", file_stem(name)));
                let text = serde_json::to_vec_pretty(&value).map_err(|e| CommandError::Json {
                    node: self.node(),
                    dataset: name.clone(),
                    message: e.to_string(),
                })?;
                std::fs::write(&file, text).map_err(self.io(&file, "write"))?;
                Ok(file)
            }
        }
    }

    /// Where output `k` is written, and what to do with it afterwards.
    fn output_plan(&self, k: usize) -> Result<OutputPlan, CommandError> {
        let name = &self.job.node.outputs()[k];
        let Some(ds) = self.dataset(name)?.filter(|ds| !ds.is_memory()) else {
            return Ok(OutputPlan::Memory {
                staging: self.tmp.path().join(format!("out-{k}-{}.json", file_stem(name))),
            });
        };
        let Some(target) = ds.file_target() else {
            return Err(CommandError::Unsupported {
                node: self.node(),
                dataset: name.clone(),
                role: "an output",
                reason: format!(
                    "a `{}` is not a single file (command outputs are file datasets or memory datasets)",
                    ds.describe().type_name
                ),
            });
        };
        let save = target.save_path().map_err(self.catalog_err(name, "save"))?;
        let base = save
            .file_name()
            .map(|b| b.to_string_lossy().to_string())
            .unwrap_or_else(|| file_stem(name));
        let hex = &uuid::Uuid::new_v4().simple().to_string()[..8];
        if target.storage().scheme() == "file" {
            let dir = save.parent().map(Path::to_path_buf).unwrap_or_default();
            std::fs::create_dir_all(&dir).map_err(self.io(&dir, "create"))?;
            let staging = dir.join(format!(".weft-{hex}-{base}"));
            Ok(OutputPlan::Local {
                dataset: Arc::clone(&ds),
                staging,
                target: save,
            })
        } else {
            let dir = self.tmp.path().join(format!("out-{k}"));
            std::fs::create_dir_all(&dir).map_err(self.io(&dir, "create"))?;
            Ok(OutputPlan::Remote {
                dataset: Arc::clone(&ds),
                staging: dir.join(base),
            })
        }
    }

    fn render(
        &self,
        t: &Template,
        inputs: &[Option<PathBuf>],
        outputs: &[OutputPlan],
    ) -> Result<String, CommandError> {
        let mut out = String::new();
        for piece in &t.pieces {
            match piece {
                Piece::Text(s) => out.push_str(s),
                Piece::InputPath(i) => match inputs.get(*i).and_then(Option::as_ref) {
                    Some(p) => out.push_str(&absolute(p).to_string_lossy()),
                    None => {
                        return Err(CommandError::Unsupported {
                            node: self.node(),
                            dataset: t.source.clone(),
                            role: "an input",
                            reason: "the placeholder's input is not staged".into(),
                        });
                    }
                },
                Piece::OutputPath(i) => match outputs.get(*i) {
                    Some(p) => out.push_str(&absolute(p.staging()).to_string_lossy()),
                    None => {
                        return Err(CommandError::Unsupported {
                            node: self.node(),
                            dataset: t.source.clone(),
                            role: "an output",
                            reason: "the placeholder names no output of the node".into(),
                        });
                    }
                },
                Piece::Value(i) => {
                    let name = self.job.node.inputs().get(*i).cloned().unwrap_or_default();
                    match self.json_of(&name)? {
                        serde_json::Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    }
                }
            }
        }
        Ok(out)
    }

    fn finish_output(&self, k: usize, plan: &OutputPlan) -> Result<Option<Data>, CommandError> {
        let name = &self.job.node.outputs()[k];
        let staging = plan.staging();
        if !staging.exists() {
            return Err(CommandError::OutputMissing {
                node: self.node(),
                output: name.clone(),
                path: staging.to_path_buf(),
            });
        }
        match plan {
            OutputPlan::Local {
                dataset,
                staging,
                target,
            } => {
                std::fs::rename(staging, target).map_err(self.io(target, "move the output into"))?;
                if let Some(t) = dataset.file_target() {
                    t.mark_saved();
                }
                Ok(None)
            }
            OutputPlan::Remote { dataset, staging } => {
                let bytes = std::fs::read(staging).map_err(self.io(staging, "read"))?;
                if let Some(t) = dataset.file_target() {
                    t.write_with(|w| w.write_all(&bytes).map_err(|e| e.to_string()))
                        .map_err(self.catalog_err(name, "save"))?;
                }
                Ok(None)
            }
            OutputPlan::Memory { staging } => {
                let text = std::fs::read(staging).map_err(self.io(staging, "read"))?;
                let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| CommandError::Json {
                    node: self.node(),
                    dataset: name.clone(),
                    message: format!(
                        "{} is not JSON ({e}); a memory output is read back as JSON (declare a file dataset for other formats)",
                        staging.display()
                    ),
                })?;
                Ok(Some(Data::new(value)))
            }
        }
    }
}

/// Runs a command node: stages its inputs and outputs, runs the child
/// (see the crate docs) and moves its outputs into place.
pub fn run_command(job: &CommandJob<'_>) -> Result<CommandOutcome, CommandError> {
    let node_name = job.node.name().to_string();
    let tmp = tempfile::Builder::new()
        .prefix("weft-command-")
        .tempdir()
        .map_err(|source| CommandError::Io {
            node: node_name.clone(),
            path: PathBuf::from("the system's temporary folder"),
            action: "create a temporary folder in",
            source,
        })?;
    let ctx = Ctx { job, tmp };
    let wanted = job.spec.input_files();
    let mut inputs: Vec<Option<PathBuf>> = vec![None; job.node.inputs().len()];
    for k in wanted {
        if k < inputs.len() {
            inputs[k] = Some(ctx.input_path(k)?);
        }
    }
    let mut plans = Vec::with_capacity(job.node.outputs().len());
    let mut guard = StagingGuard(Vec::new());
    for k in 0..job.node.outputs().len() {
        let plan = ctx.output_plan(k)?;
        guard.0.push(plan.staging().to_path_buf());
        plans.push(plan);
    }
    let argv: Vec<String> = job
        .spec
        .argv
        .iter()
        .map(|t| ctx.render(t, &inputs, &plans))
        .collect::<Result<_, _>>()?;
    let env: Vec<(String, String)> = job
        .spec
        .env
        .iter()
        .map(|(k, t)| Ok((k.clone(), ctx.render(t, &inputs, &plans)?)))
        .collect::<Result<_, CommandError>>()?;
    let Some((program, args)) = argv.split_first() else {
        return Err(CommandError::ProgramNotFound {
            node: node_name,
            program: String::new(),
        });
    };
    if let Some(cwd) = &job.spec.cwd
        && !cwd.is_dir()
    {
        return Err(CommandError::CwdMissing {
            node: node_name,
            cwd: cwd.clone(),
        });
    }
    let line = argv.join(" ");
    tracing::info!(node = %node_name, command = %line, "running command");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env)
        .env("WEFT_RUN_ID", job.run_id)
        .env("WEFT_NODE", &node_name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &job.spec.cwd {
        cmd.current_dir(cwd);
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let status = run_child(&mut cmd, job, program, &line)?;
    if !status.success() {
        return Err(status_error(&node_name, &line, status.status, status.stderr_tail));
    }
    let mut outcome = CommandOutcome::default();
    for (k, plan) in plans.iter().enumerate() {
        if let Some(data) = ctx.finish_output(k, plan)? {
            outcome.memory_outputs.push((k, data));
        }
    }
    drop(guard);
    Ok(outcome)
}

fn status_error(node: &str, line: &str, status: ExitStatus, stderr_tail: Vec<String>) -> CommandError {
    let how = match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => {
            #[cfg(unix)]
            let how = match std::os::unix::process::ExitStatusExt::signal(&status) {
                Some(sig) => format!("was killed by signal {sig}"),
                None => format!("ended with {status}"),
            };
            #[cfg(not(unix))]
            let how = format!("ended with {status}");
            how
        }
    };
    CommandError::Failed {
        node: node.to_string(),
        command: line.to_string(),
        how,
        code: status.code(),
        stderr_tail,
    }
}

struct Finished {
    status: ExitStatus,
    stderr_tail: Vec<String>,
}

impl Finished {
    fn success(&self) -> bool {
        self.status.success()
    }
}

/// Sends `SIGKILL` to the child's process group (its id: it leads it).
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid
            && rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_ok()
        {
            return;
        }
    }
    let _ = child.kill();
}

/// Kills what the child left in its process group (after it exited).
fn kill_stragglers(pid: u32) {
    #[cfg(unix)]
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Logs each line of `stream`; keeps the last `keep` lines.
fn pump(stream: impl Read, node: &str, name: &'static str, keep: usize) -> Vec<String> {
    let mut reader = BufReader::new(stream);
    let mut last = VecDeque::with_capacity(keep);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\n', '\r']);
                tracing::info!(node = %node, stream = name, "{text}");
                if keep > 0 {
                    if last.len() == keep {
                        last.pop_front();
                    }
                    last.push_back(text.to_string());
                }
            }
        }
    }
    last.into()
}

/// Starts the child, streams its output into the log, and waits for it,
/// killing it on cancellation or timeout.
fn run_child(
    cmd: &mut Command,
    job: &CommandJob<'_>,
    program: &str,
    line: &str,
) -> Result<Finished, CommandError> {
    let node = job.node.name();
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            CommandError::ProgramNotFound {
                node: node.to_string(),
                program: program.to_string(),
            }
        } else {
            CommandError::Spawn {
                node: node.to_string(),
                program: program.to_string(),
                source,
            }
        }
    })?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let span = tracing::Span::current();
    // The caller's subscriber may be a thread-local default: the readers use it too.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let deadline = job.spec.timeout.map(|t| Instant::now() + t);
    enum End {
        Exited(ExitStatus),
        TimedOut,
        Cancelled,
        WaitFailed(std::io::Error),
    }
    let (end, stderr_tail) = std::thread::scope(|scope| {
        let (out_span, out_dispatch) = (span.clone(), dispatch.clone());
        let out = stdout.map(|s| {
            scope.spawn(move || {
                tracing::dispatcher::with_default(&out_dispatch, || {
                    let _entered = out_span.enter();
                    pump(s, node, "stdout", 0)
                })
            })
        });
        let (err_span, err_dispatch) = (span.clone(), dispatch.clone());
        let err = stderr.map(|s| {
            scope.spawn(move || {
                tracing::dispatcher::with_default(&err_dispatch, || {
                    let _entered = err_span.enter();
                    pump(s, node, "stderr", STDERR_TAIL)
                })
            })
        });
        let mut pause = Duration::from_millis(1);
        let end = loop {
            match child.try_wait() {
                Ok(Some(status)) => break End::Exited(status),
                Ok(None) => {}
                Err(e) => {
                    kill_group(&mut child);
                    let _ = child.wait();
                    break End::WaitFailed(e);
                }
            }
            if job.cancel.is_cancelled() {
                kill_group(&mut child);
                let _ = child.wait();
                break End::Cancelled;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                kill_group(&mut child);
                let _ = child.wait();
                break End::TimedOut;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        // Background processes the child left keep its pipes open: they go too.
        kill_stragglers(pid);
        if let Some(h) = out {
            let _ = h.join();
        }
        let tail = err.and_then(|h| h.join().ok()).unwrap_or_default();
        (end, tail)
    });
    match end {
        End::Exited(status) => Ok(Finished { status, stderr_tail }),
        End::TimedOut => Err(CommandError::TimedOut {
            node: node.to_string(),
            command: line.to_string(),
            timeout: job.spec.timeout.unwrap_or_default(),
            stderr_tail,
        }),
        End::Cancelled => Err(CommandError::Cancelled {
            node: node.to_string(),
            command: line.to_string(),
        }),
        End::WaitFailed(source) => Err(CommandError::Spawn {
            node: node.to_string(),
            program: program.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_tail_keeps_the_last_lines() {
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let kept = pump(text.as_bytes(), "n", "stderr", STDERR_TAIL);
        assert_eq!(kept.len(), STDERR_TAIL);
        assert_eq!(kept[0], "line 10");
        assert_eq!(kept[STDERR_TAIL - 1], "line 29");
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("params:model.lr"), "params_model.lr");
        assert_eq!(file_stem("a/b c"), "a_b_c");
    }
}
