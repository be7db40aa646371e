//! The `process` runner: every node's function runs in a **node host**, a
//! child process (the `weft` binary, or a project's own binary built on
//! `weft_cli::main_with`, started as `PROGRAM node-host --project DIR`), so
//! a crash, an `abort()`, a leak or a runaway loop in one node fails that
//! node only, and per-node memory and CPU-time limits can be enforced with
//! `setrlimit`.
//!
//! The run keeps everything else: it loads a node's inputs from its own
//! catalog, sends them to a host, and saves what comes back; hooks,
//! timings, retries and isolation are the same as on the thread runner
//! (the process runner schedules with the thread runner's loop). Hosts are
//! kept warm in a [`NodeHostPool`] that lives as long as the session, so a
//! node costs a round trip over a pipe, not a process start. A host that
//! dies, times out or is cancelled mid-node is killed and replaced.
//!
//! ## Limits
//! A node's [`NodeLimits`] are applied by the host around that one call:
//! the soft `RLIMIT_DATA` becomes the host's data size plus the memory
//! limit (an allocation past it fails and the host aborts with `memory
//! allocation of N bytes failed`), the soft `RLIMIT_CPU` the CPU time used
//! so far plus the CPU limit (`SIGXCPU`); both go back after the call. The
//! run tells those endings from other deaths and fails the node with the
//! limit's name: `node train_model exceeded its 512 MiB memory limit`.
//! cgroups v2 are not used.
//!
//! ## Wire format
//! A node host serves node calls over its stdin and a duplicate of its
//! stdout (its own stdout then goes to stderr, which the run logs, so a
//! node that prints cannot corrupt the stream). Every message is one **frame**: a one-byte kind, a
//! little-endian `u32` payload length, then the payload. Node values cross
//! as [`WireValue`]s: an `arrow_array::RecordBatch` as Arrow IPC stream
//! bytes (never JSON), any other serde-backed value as its JSON form, which
//! the receiving side decodes with the requested [`DataType`].
//!
//! ```
//! use weft_pipeline::{Data, DataType};
//! use weft_runner::process_runner::WireValue;
//!
//! let wire = WireValue::encode("ratio", &Data::new(0.25f64))?;
//! let back = wire.decode("ratio", Some(&DataType::of::<f64>()))?;
//! assert_eq!(back.downcast_ref::<f64>(), Some(&0.25));
//! # Ok::<(), weft_runner::process_runner::WireError>(())
//! ```
//!

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};
use weft_pipeline::{CancelToken, CycleReport, Data, DataType, Node, NodeLimits, Pipeline};

use crate::execution::{Execution, NodeCaller, Started};
use crate::panic::{PanicStage, panic_message};
use crate::{RunError, Runner};

/// The largest payload a frame may carry (1 GiB): a longer length prefix
/// is a corrupt stream, not an allocation to attempt.
pub const MAX_FRAME_LEN: u32 = 1 << 30;

/// Why a frame or a value could not cross the process boundary.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Reading or writing the pipe failed.
    #[error("node host pipe: {context}: {source}")]
    Io {
        /// What was being read or written.
        context: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The stream ended inside a frame.
    #[error("node host stream ended inside a frame ({got} of {expected} bytes of the {part})")]
    Truncated {
        /// `header` or `payload`.
        part: &'static str,
        /// Bytes read.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A length prefix above [`MAX_FRAME_LEN`].
    #[error("node host frame of {len} bytes exceeds the {max}-byte limit (corrupt stream?)")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// A value's tag byte is unknown.
    #[error("unknown value tag {tag} in a node host frame")]
    UnknownTag {
        /// The tag.
        tag: u8,
    },
    /// A value of dataset `dataset` cannot cross (not serde-backed, not a RecordBatch).
    #[error("dataset `{dataset}` holds a `{type_name}`, which cannot cross to a node host: {reason}")]
    NotTransferable {
        /// The dataset.
        dataset: String,
        /// The value's type.
        type_name: String,
        /// Why.
        reason: String,
    },
    /// Arrow IPC encoding or decoding failed.
    #[error("Arrow IPC of dataset `{dataset}`: {source}")]
    Arrow {
        /// The dataset.
        dataset: String,
        /// The Arrow error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// A JSON value could not be encoded or decoded into the requested type.
    #[error("value of dataset `{dataset}`: {message}")]
    Decode {
        /// The dataset.
        dataset: String,
        /// What failed.
        message: String,
    },
}

/// One frame: its kind byte and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is (defined by the protocol using the frames).
    pub kind: u8,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Writes one frame and flushes.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> Result<(), WireError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME_LEN)
        .ok_or(WireError::TooLong {
            len: payload.len() as u64,
            max: MAX_FRAME_LEN,
        })?;
    let io = |source| WireError::Io {
        context: "writing a frame",
        source,
    };
    let mut header = [0u8; 5];
    header[0] = kind;
    header[1..].copy_from_slice(&len.to_le_bytes());
    w.write_all(&header).map_err(io)?;
    w.write_all(payload).map_err(io)?;
    w.flush().map_err(io)
}

/// Reads as many bytes as fill `buf` or the stream has; returns the count.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(WireError::Io {
                    context: "reading a frame",
                    source,
                });
            }
        }
    }
    Ok(got)
}

/// Reads one frame; `Ok(None)` when the stream ends cleanly between frames.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, WireError> {
    let mut header = [0u8; 5];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < header.len() {
        return Err(WireError::Truncated {
            part: "header",
            got,
            expected: header.len(),
        });
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if len > MAX_FRAME_LEN {
        return Err(WireError::TooLong {
            len: u64::from(len),
            max: MAX_FRAME_LEN,
        });
    }
    let mut payload = vec![0u8; len as usize];
    let got = read_full(r, &mut payload)?;
    if got < payload.len() {
        return Err(WireError::Truncated {
            part: "payload",
            got,
            expected: payload.len(),
        });
    }
    Ok(Some(Frame {
        kind: header[0],
        payload,
    }))
}

const TAG_ARROW: u8 = 1;
const TAG_JSON: u8 = 2;

/// A node value in its wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireValue {
    /// A RecordBatch as Arrow IPC stream bytes.
    ArrowIpc(Vec<u8>),
    /// A serde-backed value as JSON text.
    Json(Vec<u8>),
}

impl WireValue {
    /// Encodes `data`, the value of `dataset`.
    pub fn encode(dataset: &str, data: &Data) -> Result<Self, WireError> {
        if let Some(batch) = data.downcast_ref::<RecordBatch>() {
            let arrow = |source| WireError::Arrow {
                dataset: dataset.to_string(),
                source,
            };
            let mut bytes = Vec::new();
            let mut writer =
                arrow_ipc::writer::StreamWriter::try_new(&mut bytes, batch.schema_ref()).map_err(arrow)?;
            writer.write(batch).map_err(arrow)?;
            writer.finish().map_err(arrow)?;
            drop(writer);
            return Ok(WireValue::ArrowIpc(bytes));
        }
        let ser = data.as_serialize().ok_or_else(|| WireError::NotTransferable {
            dataset: dataset.to_string(),
            type_name: weft_pipeline::data::user_type_name(data.type_name()),
            reason: "it is neither a RecordBatch nor serde-backed (declare it with `serde_data!`)".into(),
        })?;
        serde_json::to_vec(ser)
            .map(WireValue::Json)
            .map_err(|e| WireError::Decode {
                dataset: dataset.to_string(),
                message: e.to_string(),
            })
    }

    /// Decodes into a [`Data`]: a RecordBatch, or the JSON decoded as `ty`
    /// (a `serde_json::Value` when no type is requested).
    pub fn decode(&self, dataset: &str, ty: Option<&DataType>) -> Result<Data, WireError> {
        match self {
            WireValue::ArrowIpc(bytes) => {
                let arrow = |source| WireError::Arrow {
                    dataset: dataset.to_string(),
                    source,
                };
                let reader =
                    arrow_ipc::reader::StreamReader::try_new(io::Cursor::new(bytes), None).map_err(arrow)?;
                let schema = reader.schema();
                let batches = reader.collect::<Result<Vec<_>, _>>().map_err(arrow)?;
                let batch = match batches.len() {
                    1 => batches
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| RecordBatch::new_empty(schema)),
                    0 => RecordBatch::new_empty(schema),
                    _ => arrow_select::concat::concat_batches(&schema, &batches).map_err(arrow)?,
                };
                Ok(Data::new(batch))
            }
            WireValue::Json(bytes) => {
                let decode = |message: String| WireError::Decode {
                    dataset: dataset.to_string(),
                    message,
                };
                let value: serde_json::Value =
                    serde_json::from_slice(bytes).map_err(|e| decode(e.to_string()))?;
                match ty {
                    Some(ty) => ty.decode_json(&value).map_err(|e| decode(e.to_string())),
                    None => Ok(Data::new(value)),
                }
            }
        }
    }

    /// Appends the tagged, length-prefixed value to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let (tag, bytes) = match self {
            WireValue::ArrowIpc(b) => (TAG_ARROW, b),
            WireValue::Json(b) => (TAG_JSON, b),
        };
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }

    /// Reads one value written by [`WireValue::write_to`] from the front of
    /// `input`, advancing it.
    pub fn read_from(input: &mut &[u8]) -> Result<Self, WireError> {
        let truncated = |got: usize, expected: usize| WireError::Truncated {
            part: "value",
            got,
            expected,
        };
        if input.len() < 9 {
            return Err(truncated(input.len(), 9));
        }
        let tag = input[0];
        let mut len = [0u8; 8];
        len.copy_from_slice(&input[1..9]);
        let len = u64::from_le_bytes(len);
        let rest = &input[9..];
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= rest.len())
            .ok_or_else(|| truncated(rest.len(), usize::try_from(len).unwrap_or(usize::MAX)))?;
        let bytes = rest[..len].to_vec();
        *input = &rest[len..];
        match tag {
            TAG_ARROW => Ok(WireValue::ArrowIpc(bytes)),
            TAG_JSON => Ok(WireValue::Json(bytes)),
            tag => Err(WireError::UnknownTag { tag }),
        }
    }
}

/// Frame kinds of the node-host protocol.
mod kind {
    /// Host → run, once: the host is ready for calls.
    pub(super) const READY: u8 = 1;
    /// Run → host: call one node.
    pub(super) const CALL: u8 = 2;
    /// Host → run: the node's outputs.
    pub(super) const OUTPUTS: u8 = 3;
    /// Host → run: the node failed (its error or panic).
    pub(super) const FAILED: u8 = 4;
}

/// What a call frame says besides its input values.
#[derive(Debug, Serialize, Deserialize)]
struct CallHeader {
    node: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    #[serde(default)]
    limits: NodeLimits,
}

/// What an outputs frame says besides its values.
#[derive(Debug, Default, Serialize, Deserialize)]
struct OutputsHeader {
    #[serde(default)]
    cycle: Option<CycleReport>,
}

/// A failed call, as the host reports it.
#[derive(Debug, Serialize, Deserialize)]
struct Failure {
    message: String,
    #[serde(default)]
    panicked: bool,
}

/// A payload: a length-prefixed JSON header, then wire values.
fn pack(header: &impl Serialize, values: &[WireValue]) -> Vec<u8> {
    // Headers are plain structs of strings and numbers: they serialize.
    let json = serde_json::to_vec(header).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for v in values {
        v.write_to(&mut out);
    }
    out
}

/// Splits a payload written by [`pack`] into its header and `count` values.
fn unpack<H: for<'de> Deserialize<'de>>(
    payload: &[u8],
    count: Option<usize>,
) -> Result<(H, Vec<WireValue>), WireError> {
    let bad = |message: String| WireError::Decode {
        dataset: "(node host frame)".into(),
        message,
    };
    if payload.len() < 4 {
        return Err(WireError::Truncated {
            part: "frame header",
            got: payload.len(),
            expected: 4,
        });
    }
    let len = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
    let rest = &payload[4..];
    if len > rest.len() {
        return Err(WireError::Truncated {
            part: "frame header",
            got: rest.len(),
            expected: len,
        });
    }
    let header: H = serde_json::from_slice(&rest[..len]).map_err(|e| bad(e.to_string()))?;
    let mut input = &rest[len..];
    let mut values = Vec::new();
    while !input.is_empty() {
        values.push(WireValue::read_from(&mut input)?);
    }
    if let Some(expected) = count
        && values.len() != expected
    {
        return Err(bad(format!(
            "{} values where {expected} were expected",
            values.len()
        )));
    }
    Ok((header, values))
}

/// Serves node calls for the nodes of `pipelines` until `input` ends: the
/// body of `weft node-host`. Announces itself with a ready frame, then
/// answers every call frame with the node's outputs or its failure (a
/// panic in the node is caught and reported). Returns when the run closes
/// the stream; an error means the stream itself broke.
pub fn serve_node_host(
    pipelines: &BTreeMap<String, Pipeline>,
    mut input: impl Read,
    mut output: impl Write,
) -> Result<(), WireError> {
    let mut nodes: HashMap<&str, Vec<&Node>> = HashMap::new();
    for pipeline in pipelines.values() {
        for node in pipeline.nodes() {
            let same = nodes.entry(node.name()).or_default();
            if !same
                .iter()
                .any(|n| n.inputs() == node.inputs() && n.outputs() == node.outputs())
            {
                same.push(node);
            }
        }
    }
    // A limit's SIGXCPU would otherwise dump the host's core.
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    write_frame(
        &mut output,
        kind::READY,
        &pack(&serde_json::json!({"pid": std::process::id()}), &[]),
    )?;
    while let Some(frame) = read_frame(&mut input)? {
        if frame.kind != kind::CALL {
            return Err(WireError::Decode {
                dataset: "(node host frame)".into(),
                message: format!("unexpected frame kind {} from the run", frame.kind),
            });
        }
        let reply = match answer_call(&nodes, &frame.payload) {
            Ok((header, values)) => (kind::OUTPUTS, pack(&header, &values)),
            Err(failure) => (kind::FAILED, pack(&failure, &[])),
        };
        // Whatever the node printed goes out before its answer.
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        write_frame(&mut output, reply.0, &reply.1)?;
    }
    Ok(())
}

fn answer_call(
    nodes: &HashMap<&str, Vec<&Node>>,
    payload: &[u8],
) -> Result<(OutputsHeader, Vec<WireValue>), Failure> {
    let failed = |message: String| Failure {
        message,
        panicked: false,
    };
    let (header, values): (CallHeader, _) = unpack(payload, None).map_err(|e| failed(e.to_string()))?;
    let node = nodes
        .get(header.node.as_str())
        .and_then(|same| {
            same.iter()
                .find(|n| n.inputs() == header.inputs.as_slice() && n.outputs() == header.outputs.as_slice())
        })
        .ok_or_else(|| {
            failed(format!(
                "the node host has no node `{}` with inputs {:?} and outputs {:?} (is it the same program and project as the run?)",
                header.node, header.inputs, header.outputs
            ))
        })?;
    if values.len() != header.inputs.len() {
        return Err(failed(format!(
            "{} input values for {} inputs",
            values.len(),
            header.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(values.len());
    for (k, (value, name)) in values.iter().zip(&header.inputs).enumerate() {
        inputs.push(
            value
                .decode(name, node.input_type(k).as_ref())
                .map_err(|e| failed(e.to_string()))?,
        );
    }
    let armed = limits::arm(&header.limits).map_err(failed)?;
    let result = catch_unwind(AssertUnwindSafe(|| {
        node.run_detailed(inputs, &CancelToken::new())
    }));
    drop(armed);
    let (outputs, cycle) = match result {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(failed(error_chain(&*e))),
        Err(payload) => {
            return Err(Failure {
                message: panic_message(payload),
                panicked: true,
            });
        }
    };
    let values = outputs
        .iter()
        .zip(node.outputs())
        .map(|(data, name)| WireValue::encode(name, data))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    Ok((OutputsHeader { cycle }, values))
}

/// An error and its sources, `: `-separated (what the run shows).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Per-call limits inside a node host (see the module docs).
mod limits {
    use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
    use weft_pipeline::NodeLimits;

    /// Puts the soft limits it changed back when dropped.
    pub(super) struct Armed {
        restore: Vec<(Resource, u64, u64)>,
    }

    impl Drop for Armed {
        fn drop(&mut self) {
            for (resource, soft, hard) in self.restore.drain(..) {
                let _ = setrlimit(resource, soft, hard);
            }
        }
    }

    /// The host's data size now (`VmData`, what `RLIMIT_DATA` counts).
    fn data_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmData:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    pub(super) fn arm(limits: &NodeLimits) -> Result<Armed, String> {
        let mut armed = Armed { restore: Vec::new() };
        if let Some(bytes) = limits.memory_bytes {
            let (soft, hard) =
                getrlimit(Resource::RLIMIT_DATA).map_err(|e| format!("cannot read the memory limit: {e}"))?;
            let base = data_bytes().ok_or("cannot read the node host's data size from /proc/self/status")?;
            setrlimit(Resource::RLIMIT_DATA, base.saturating_add(bytes).min(hard), hard)
                .map_err(|e| format!("cannot set the memory limit: {e}"))?;
            armed.restore.push((Resource::RLIMIT_DATA, soft, hard));
        }
        if let Some(limit) = limits.cpu_time {
            let (soft, hard) = getrlimit(Resource::RLIMIT_CPU)
                .map_err(|e| format!("cannot read the CPU-time limit: {e}"))?;
            let usage = getrusage(UsageWho::RUSAGE_SELF)
                .map_err(|e| format!("cannot read the CPU time used: {e}"))?;
            let (user, system) = (usage.user_time(), usage.system_time());
            let used_us = (user.tv_sec() + system.tv_sec()) as u64 * 1_000_000
                + (user.tv_usec() + system.tv_usec()) as u64;
            // RLIMIT_CPU counts whole seconds: the node gets its limit,
            // rounded up to the next whole second of the host's CPU time.
            let limit_us = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
            let new_soft = used_us
                .saturating_add(limit_us)
                .div_ceil(1_000_000)
                .max(1)
                .min(hard);
            setrlimit(Resource::RLIMIT_CPU, new_soft, hard)
                .map_err(|e| format!("cannot set the CPU-time limit: {e}"))?;
            armed.restore.push((Resource::RLIMIT_CPU, soft, hard));
        }
        Ok(armed)
    }
}

/// How to start a node host: `program` with `args` (for weft's CLI:
/// `weft node-host --project DIR`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHostCommand {
    /// The program (the `weft` binary or a project binary on `weft_cli::main_with`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// How long a host may take from start to ready.
    pub ready_timeout: Duration,
}

impl NodeHostCommand {
    /// `program --project project_dir node-host`, ready within 30 s.
    pub fn weft(program: impl Into<PathBuf>, project_dir: impl Into<PathBuf>) -> Self {
        let project: PathBuf = project_dir.into();
        NodeHostCommand {
            program: program.into(),
            args: vec!["--project".into(), project.into_os_string(), "node-host".into()],
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a node could not be run in a node host: the source of the node's
/// [`RunError::Node`].
#[derive(Debug, thiserror::Error)]
pub enum NodeHostError {
    /// The host program could not be started.
    #[error("cannot start the node host `{program}`: {source}")]
    Start {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The host ended (or timed out) before it was ready.
    #[error("the node host `{program}` was not ready ({reason}){}", tail(stderr))]
    NotReady {
        /// The program.
        program: String,
        /// Its exit status, or the time-out.
        reason: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// The node exceeded one of its limits (the host was killed by it).
    #[error("node {node} exceeded its {limit} limit{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    LimitExceeded {
        /// The node.
        node: String,
        /// `512 MiB memory` or `10 s CPU-time`.
        limit: String,
        /// What the host said, if anything.
        detail: Option<String>,
    },
    /// The host process ended while it ran the node (a crash, `abort()`, a signal).
    #[error("its node host process ended while running it ({status}){}", tail(stderr))]
    Died {
        /// The host's exit status.
        status: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// The node's function failed in the host.
    #[error("{message}")]
    Failed {
        /// The function's error, with its sources.
        message: String,
    },
    /// The values could not cross to or from the host.
    #[error(transparent)]
    Wire(#[from] WireError),
}

fn tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; last stderr lines:\n{}", stderr.trim_end())
    }
}

/// How many stderr lines a host keeps for error messages.
const STDERR_TAIL_LINES: usize = 20;

/// A host's stderr: recent lines for error messages, and lines not yet
/// logged into a run.
#[derive(Default)]
struct StderrLines {
    recent: VecDeque<String>,
    unlogged: Vec<String>,
    /// The last `memory allocation of N bytes failed` line (a backtrace
    /// may follow it and push it out of `recent`).
    allocation_failure: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One running node host: the child, its stdin, and the two threads that
/// read its stdout (frames) and stderr (lines). Dropping it kills the
/// child and joins both threads.
struct NodeHost {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: mpsc::Receiver<Result<Frame, WireError>>,
    stderr: Arc<Mutex<StderrLines>>,
    threads: Vec<JoinHandle<()>>,
}

/// How a call to a host ended, when it did not answer.
enum CallEnd {
    /// The deadline passed (the host is killed).
    TimedOut,
    /// The run was cancelled (the host is killed).
    Cancelled,
    /// The host died: its exit status, last stderr lines, and the
    /// allocation failure it reported, if any.
    Died(String, String, Option<String>),
    /// The stream broke.
    Wire(WireError),
}

/// The pipe buffer asked for on a host's stdin and stdout.
const PIPE_BUFFER: i32 = 1 << 20;

/// How often a waiting call looks at its run's cancel token.
const CANCEL_POLL: Duration = Duration::from_millis(20);

impl NodeHost {
    fn start(command: &NodeHostCommand) -> Result<NodeHost, NodeHostError> {
        let program = command.program.display().to_string();
        // Its own process group: killing the host kills whatever its node
        // started too, so no grandchild outlives it holding its pipes.
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NodeHostError::Start {
                program: program.clone(),
                source,
            })?;
        let (stdin, stdout, stderr_pipe) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // Tables cross these pipes: a 1 MiB buffer instead of the default
        // 64 KiB takes a few context switches per megabyte instead of
        // sixteen. Best effort (the limit may be lower for this user).
        for fd in [
            stdin.as_ref().map(|p| p.as_fd()),
            stdout.as_ref().map(|p| p.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BUFFER));
        }
        let stderr = Arc::new(Mutex::new(StderrLines::default()));
        let (tx, frames) = mpsc::channel();
        let mut threads = Vec::new();
        if let Some(mut stdout) = stdout {
            let reader = std::thread::Builder::new()
                .name("weft-node-host-out".into())
                .spawn(move || {
                    loop {
                        match read_frame(&mut stdout) {
                            Ok(Some(frame)) => {
                                if tx.send(Ok(frame)).is_err() {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                break;
                            }
                        }
                    }
                });
            match reader {
                Ok(h) => threads.push(h),
                Err(source) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(NodeHostError::Start { program, source });
                }
            }
        }
        if let Some(pipe) = stderr_pipe {
            let lines = Arc::clone(&stderr);
            let reader = std::thread::Builder::new()
                .name("weft-node-host-err".into())
                .spawn(move || {
                    for line in io::BufReader::new(pipe).lines() {
                        let Ok(line) = line else { break };
                        let mut l = lock(&lines);
                        if line.contains("memory allocation of") {
                            l.allocation_failure = Some(line.trim().to_string());
                        }
                        if l.recent.len() == STDERR_TAIL_LINES {
                            l.recent.pop_front();
                        }
                        l.recent.push_back(line.clone());
                        // Bounded: a host that prints without end between
                        // runs keeps its last lines only.
                        if l.unlogged.len() < 10_000 {
                            l.unlogged.push(line);
                        }
                    }
                });
            if let Ok(h) = reader {
                threads.push(h);
            }
        }
        let mut host = NodeHost {
            child,
            stdin,
            frames,
            stderr,
            threads,
        };
        let not_ready = |host: &mut NodeHost, reason: String| NodeHostError::NotReady {
            program: program.clone(),
            reason,
            stderr: host.stderr_tail(),
        };
        match host.frames.recv_timeout(command.ready_timeout) {
            Ok(Ok(frame)) if frame.kind == kind::READY => {
                tracing::info!(pid = host.child.id(), "node host started");
                Ok(host)
            }
            Ok(Ok(frame)) => Err(not_ready(
                &mut host,
                format!("it sent frame kind {} first", frame.kind),
            )),
            Ok(Err(e)) => Err(not_ready(&mut host, e.to_string())),
            Err(RecvTimeoutError::Timeout) => Err(not_ready(
                &mut host,
                format!("not ready within {:?}", command.ready_timeout),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                let status = host.exit_status();
                Err(not_ready(&mut host, status))
            }
        }
    }

    /// Kills the host (if still running) and waits for it: its exit status.
    fn exit_status(&mut self) -> String {
        // Give a host that is exiting on its own a moment to do so, so its
        // real status (a signal) is reported rather than our kill.
        for _ in 0..50 {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return format!("unknown exit status: {e}"),
            }
        }
        self.kill_group();
        match self.child.wait() {
            Ok(status) => status.to_string(),
            Err(e) => format!("unknown exit status: {e}"),
        }
    }

    /// SIGKILL to the host's process group (the host and anything its
    /// nodes started).
    fn kill_group(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
    }

    fn died(&mut self) -> CallEnd {
        let status = self.exit_status();
        // A process the node started may still hold the stderr pipe.
        self.kill_group();
        // The stderr reader ends with the host; join it so every line the
        // host wrote is in.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let allocation = lock(&self.stderr).allocation_failure.clone();
        CallEnd::Died(status, self.stderr_tail(), allocation)
    }

    fn stderr_tail(&self) -> String {
        let mut lines = lock(&self.stderr)
            .recent
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        lines.push('\n');
        lines
    }

    /// Logs what the host printed since the last call, in the caller's span.
    fn log_stderr(&self, node: &str) {
        let lines = std::mem::take(&mut lock(&self.stderr).unlogged);
        for line in lines {
            tracing::info!(node, "{line}");
        }
    }

    fn call(
        &mut self,
        payload: &[u8],
        deadline: Option<Instant>,
        cancel: &CancelToken,
    ) -> Result<Frame, CallEnd> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.died());
        };
        if let Err(e) = write_frame(stdin, kind::CALL, payload) {
            return match e {
                WireError::Io { .. } => Err(self.died()),
                other => Err(CallEnd::Wire(other)),
            };
        }
        loop {
            let wait = match deadline {
                Some(at) => at.saturating_duration_since(Instant::now()).min(CANCEL_POLL),
                None => CANCEL_POLL,
            };
            match self.frames.recv_timeout(wait) {
                Ok(Ok(frame)) => return Ok(frame),
                Ok(Err(e)) => return Err(CallEnd::Wire(e)),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.died());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if cancel.is_cancelled() {
                        return Err(CallEnd::Cancelled);
                    }
                    if deadline.is_some_and(|at| Instant::now() >= at) {
                        return Err(CallEnd::TimedOut);
                    }
                }
            }
        }
    }
}

impl Drop for NodeHost {
    fn drop(&mut self) {
        drop(self.stdin.take());
        self.kill_group();
        let _ = self.child.wait();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Warm node hosts shared by the runs of one session: a run takes a host
/// per node call and gives it back after an answer; a host that failed
/// mid-call is dropped (killed) instead. Dropping the pool kills every
/// idle host.
pub struct NodeHostPool {
    command: NodeHostCommand,
    idle: Mutex<Vec<NodeHost>>,
    max_idle: usize,
    started: AtomicUsize,
    only_tagged: Option<String>,
}

impl std::fmt::Debug for NodeHostPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHostPool")
            .field("command", &self.command)
            .field("idle", &lock(&self.idle).len())
            .field("started", &self.hosts_started())
            .finish()
    }
}

impl NodeHostPool {
    /// A pool that starts hosts with `command` and keeps at most `max_idle`
    /// of them warm between calls.
    pub fn new(command: NodeHostCommand, max_idle: usize) -> Self {
        NodeHostPool {
            command,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
            started: AtomicUsize::new(0),
            only_tagged: None,
        }
    }

    /// Sends only nodes tagged `tag` to hosts (the others run on the
    /// runner's threads); `None`: every node (`[run] process_tag`).
    pub fn only_tagged(mut self, tag: Option<String>) -> Self {
        self.only_tagged = tag;
        self
    }

    /// How many hosts this pool has started so far.
    pub fn hosts_started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// How many hosts are warm now.
    pub fn idle_hosts(&self) -> usize {
        lock(&self.idle).len()
    }

    fn take(&self) -> Result<NodeHost, NodeHostError> {
        if let Some(host) = lock(&self.idle).pop() {
            return Ok(host);
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        NodeHost::start(&self.command)
    }

    fn give_back(&self, host: NodeHost) {
        let mut idle = lock(&self.idle);
        if idle.len() < self.max_idle {
            idle.push(host);
        }
    }

    /// Runs `node` on `inputs` in a host; `deadline` and `cancel` end the
    /// call (killing the host). Used by [`ProcessRunner`].
    fn run(
        &self,
        node: &Node,
        inputs: &[Data],
        deadline: Option<Instant>,
        cancel: &CancelToken,
    ) -> Result<(Vec<Data>, Option<CycleReport>), HostCallError> {
        let values = inputs
            .iter()
            .zip(node.inputs())
            .map(|(data, name)| WireValue::encode(name, data))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HostCallError::Host(e.into()))?;
        let header = CallHeader {
            node: node.name().to_string(),
            inputs: node.inputs().to_vec(),
            outputs: node.outputs().to_vec(),
            limits: node.limits(),
        };
        let payload = pack(&header, &values);
        drop(values);
        let mut host = self.take().map_err(HostCallError::Host)?;
        let answer = host.call(&payload, deadline, cancel);
        host.log_stderr(node.name());
        let frame = match answer {
            Ok(frame) => frame,
            Err(end) => {
                return Err(match end {
                    CallEnd::TimedOut => HostCallError::TimedOut,
                    CallEnd::Cancelled => HostCallError::Cancelled,
                    CallEnd::Wire(e) => HostCallError::Host(e.into()),
                    CallEnd::Died(status, stderr, allocation) => {
                        HostCallError::Host(explain_death(node, status, stderr, allocation))
                    }
                });
            }
        };
        match frame.kind {
            kind::OUTPUTS => {
                let (header, values): (OutputsHeader, _) = unpack(&frame.payload, Some(node.outputs().len()))
                    .map_err(|e| HostCallError::Host(e.into()))?;
                self.give_back(host);
                let outputs = values
                    .iter()
                    .zip(node.outputs())
                    .enumerate()
                    .map(|(k, (v, name))| v.decode(name, node.output_type(k).as_ref()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| HostCallError::Host(e.into()))?;
                Ok((outputs, header.cycle))
            }
            kind::FAILED => {
                let (failure, _): (Failure, Vec<WireValue>) =
                    unpack(&frame.payload, Some(0)).map_err(|e| HostCallError::Host(e.into()))?;
                self.give_back(host);
                if failure.panicked {
                    Err(HostCallError::Panicked(failure.message))
                } else {
                    Err(HostCallError::Host(NodeHostError::Failed {
                        message: failure.message,
                    }))
                }
            }
            other => Err(HostCallError::Host(
                WireError::Decode {
                    dataset: "(node host frame)".into(),
                    message: format!("unexpected frame kind {other} from the node host"),
                }
                .into(),
            )),
        }
    }
}

/// What a dead host's status and stderr say: a limit, or a death.
fn explain_death(node: &Node, status: String, stderr: String, allocation: Option<String>) -> NodeHostError {
    let limits = node.limits();
    if let Some(cpu) = limits.cpu_time
        && status.contains("SIGXCPU")
    {
        return NodeHostError::LimitExceeded {
            node: node.name().to_string(),
            limit: format!("{} CPU-time", weft_pipeline::format_duration(cpu)),
            detail: None,
        };
    }
    if let Some(bytes) = limits.memory_bytes
        && status.contains("SIGABRT")
        && let Some(line) = allocation
    {
        return NodeHostError::LimitExceeded {
            node: node.name().to_string(),
            limit: format!("{} memory", weft_pipeline::format_size(bytes)),
            detail: Some(line),
        };
    }
    NodeHostError::Died { status, stderr }
}

/// A host call that did not return outputs.
enum HostCallError {
    TimedOut,
    Cancelled,
    Panicked(String),
    Host(NodeHostError),
}

/// Runs each node's function in a node host of its session's
/// [`NodeHostPool`], scheduled like the [`crate::ThreadRunner`] (up to
/// `max_workers` nodes at once). Command nodes run their own programs as
/// on every runner. Built by [`crate::RunnerRegistry`] under `process`;
/// without a pool (a session opened without a node-host program) every
/// run fails validation with an explanation.
#[derive(Clone, Debug)]
pub struct ProcessRunner {
    max_workers: usize,
    pool: Option<Arc<NodeHostPool>>,
}

impl ProcessRunner {
    /// Up to `max_workers` nodes at once (default: the machine's
    /// parallelism), in hosts of `pool`.
    pub fn new(max_workers: Option<usize>, pool: Option<Arc<NodeHostPool>>) -> Self {
        let default = std::thread::available_parallelism().map_or(2, |n| n.get());
        ProcessRunner {
            max_workers: max_workers.unwrap_or(default).max(1),
            pool,
        }
    }
}

impl Runner for ProcessRunner {
    fn name(&self) -> &'static str {
        "process"
    }

    fn execute(&self, exec: &Execution<'_>) -> Result<(), RunError> {
        let Some(pool) = &self.pool else {
            return Err(RunError::Validation {
                problems: vec![
                    "the `process` runner needs a node-host program: open the session with `SessionOptions::node_host_program` (the weft CLI, `weft worker` and `weft serve` set it to their own executable)".into(),
                ],
            });
        };
        crate::thread::schedule(exec, self.max_workers, &HostCaller { pool })
    }
}

struct HostCaller<'p> {
    pool: &'p NodeHostPool,
}

impl NodeCaller for HostCaller<'_> {
    fn call(&self, exec: &Execution<'_>, i: usize, started: &mut Started) -> Result<Vec<Data>, RunError> {
        let node = &exec.job().pipeline.nodes()[i];
        if let Some(tag) = &self.pool.only_tagged
            && !node.tags().contains(tag)
        {
            return exec.call_sync(i, started);
        }
        let inputs = std::mem::take(&mut started.call_inputs);
        let deadline = started.deadline;
        match self
            .pool
            .run(node, &inputs, deadline.map(|d| d.at), &started.token)
        {
            Ok((outputs, cycle)) => {
                started.cycle = cycle;
                Ok(outputs)
            }
            Err(HostCallError::TimedOut) => match deadline {
                Some(d) => Err(exec.timeout_error(i, d)),
                None => Err(exec.call_error(i, "the node host call timed out".into())),
            },
            Err(HostCallError::Cancelled) => Err(exec.call_error(i, "cancelled".into())),
            Err(HostCallError::Panicked(message)) => {
                Err(exec.node_failed(i, exec.panic_error(i, PanicStage::Run, message)))
            }
            Err(HostCallError::Host(e)) => Err(exec.call_error(i, Box::new(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int64Array, StringArray};

    fn batch(rows: i64) -> RecordBatch {
        let ids = Int64Array::from_iter_values(0..rows);
        let names = StringArray::from_iter_values((0..rows).map(|i| format!("row{i}")));
        let xs = Float64Array::from_iter_values((0..rows).map(|i| i as f64 * 0.5));
        RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as _),
            ("name", Arc::new(names) as _),
            ("x", Arc::new(xs) as _),
        ])
        .unwrap()
    }

    #[test]
    fn frames_round_trip_in_order() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 1, b"hello").unwrap();
        write_frame(&mut buf, 7, b"").unwrap();
        write_frame(&mut buf, 2, &[0u8; 70_000]).unwrap();
        let mut r = io::Cursor::new(buf);
        assert_eq!(
            read_frame(&mut r).unwrap().unwrap(),
            Frame {
                kind: 1,
                payload: b"hello".to_vec()
            }
        );
        assert_eq!(
            read_frame(&mut r).unwrap().unwrap(),
            Frame {
                kind: 7,
                payload: vec![]
            }
        );
        let big = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((big.kind, big.payload.len()), (2, 70_000));
        assert!(read_frame(&mut r).unwrap().is_none(), "clean end between frames");
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, 1, b"hello").unwrap();
        let cut = &buf[..buf.len() - 2];
        let err = read_frame(&mut io::Cursor::new(cut)).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Truncated {
                    part: "payload",
                    got: 3,
                    expected: 5
                }
            ),
            "{err}"
        );
        let err = read_frame(&mut io::Cursor::new(&buf[..3])).unwrap_err();
        assert!(
            matches!(err, WireError::Truncated { part: "header", .. }),
            "{err}"
        );
        let mut huge = vec![9u8];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read_frame(&mut io::Cursor::new(huge)).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn record_batch_crosses_as_arrow_ipc() {
        let original = batch(1000);
        let wire = WireValue::encode("features", &Data::new(original.clone())).unwrap();
        let WireValue::ArrowIpc(bytes) = &wire else {
            panic!("expected Arrow IPC, got {wire:?}")
        };
        assert!(!bytes.starts_with(b"{"), "not JSON");
        let back = wire.decode("features", None).unwrap();
        assert_eq!(back.downcast_ref::<RecordBatch>().unwrap(), &original);
    }

    #[test]
    fn serde_values_cross_with_the_requested_type() {
        let wire = WireValue::encode("ratio", &Data::new(0.25f64)).unwrap();
        assert_eq!(wire, WireValue::Json(b"0.25".to_vec()));
        let back = wire.decode("ratio", Some(&DataType::of::<f64>())).unwrap();
        assert_eq!(back.downcast_ref::<f64>(), Some(&0.25));
        let untyped = wire.decode("ratio", None).unwrap();
        assert_eq!(
            untyped.downcast_ref::<serde_json::Value>(),
            Some(&serde_json::json!(0.25))
        );
        let err = WireValue::Json(b"\"x\"".to_vec())
            .decode("ratio", Some(&DataType::of::<f64>()))
            .unwrap_err();
        assert!(err.to_string().contains("dataset `ratio`"), "{err}");
    }

    #[test]
    fn opaque_values_are_a_clear_error_naming_the_dataset() {
        struct Handle;
        weft_pipeline::opaque_data!(Handle);
        let err = WireValue::encode("model", &Data::new(Handle)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("dataset `model`") && text.contains("Handle"),
            "{text}"
        );
    }

    #[test]
    fn values_pack_back_to_back_and_bad_input_is_an_error() {
        let a = WireValue::encode("a", &Data::new(batch(3))).unwrap();
        let b = WireValue::encode("b", &Data::new("text".to_string())).unwrap();
        let mut packed = Vec::new();
        a.write_to(&mut packed);
        b.write_to(&mut packed);
        let mut input = packed.as_slice();
        assert_eq!(WireValue::read_from(&mut input).unwrap(), a);
        assert_eq!(WireValue::read_from(&mut input).unwrap(), b);
        assert!(input.is_empty());
        let mut short = &packed[..5];
        assert!(WireValue::read_from(&mut short).is_err());
        let mut bad = packed.clone();
        bad[0] = 99;
        let mut bad = bad.as_slice();
        assert!(matches!(
            WireValue::read_from(&mut bad),
            Err(WireError::UnknownTag { tag: 99 })
        ));
    }
}
