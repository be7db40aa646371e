use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use crate::execution::{InProcess, NodeCaller};
use crate::panic::{PanicStage, panic_message};
use crate::{Execution, RunError, Runner};

/// Runs every node as soon as its inputs exist, on a pool of worker threads.
///
/// Workers are scoped to the run: when `execute` returns, every thread has
/// finished (no detached work survives a failed or cancelled run). Ready
/// nodes are queued for the workers as soon as they are ready (so a worker
/// never waits for the main loop), and a worker checks the run before it
/// starts each one, so after the first node error or a cancellation no new
/// node starts; nodes already running finish. A panicking node is a
/// failed node (see [`Execution::run_node`]); every node handed to a worker
/// is reported back, even if the worker itself panics. Workers log inside
/// the caller's current [`tracing::Span`] (the run's span), so their events
/// carry the run's fields.
#[derive(Clone, Copy, Debug)]
pub struct ThreadRunner {
    max_workers: usize,
}

impl ThreadRunner {
    /// A pool of `max_workers` threads (default: the machine's parallelism).
    pub fn new(max_workers: Option<usize>) -> Self {
        let default = std::thread::available_parallelism().map_or(2, |n| n.get());
        ThreadRunner {
            max_workers: max_workers.unwrap_or(default).max(1),
        }
    }

    /// The pool size.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }
}

impl Default for ThreadRunner {
    fn default() -> Self {
        Self::new(None)
    }
}

/// What a worker reports for a node it was handed.
enum Report {
    /// The node ran (or was found cancelled before it started).
    Ran(Result<(), RunError>),
    /// The node was not started: another node had failed.
    NotStarted,
}

/// Reports a node's result to the main loop exactly once: if the worker
/// unwinds before [`ReportGuard::send`], the drop sends a failure, so the
/// main loop never waits for a result that cannot come.
struct ReportGuard<'s, 'e> {
    tx: &'s Sender<(usize, Report)>,
    exec: &'s Execution<'e>,
    node: usize,
    sent: bool,
}

impl ReportGuard<'_, '_> {
    /// Sends the report; false if the main loop is gone.
    fn send(mut self, report: Report) -> bool {
        self.sent = true;
        self.tx.send((self.node, report)).is_ok()
    }
}

impl Drop for ReportGuard<'_, '_> {
    fn drop(&mut self) {
        if !self.sent {
            let err = self.exec.panic_error(
                self.node,
                PanicStage::Runner,
                "the worker thread panicked before reporting the node".to_string(),
            );
            // The main loop may be gone already; nothing else to tell.
            let _ = self.tx.send((self.node, Report::Ran(Err(err))));
        }
    }
}

fn worker_loop(
    exec: &Execution<'_>,
    caller: &dyn NodeCaller,
    jobs: &Mutex<Receiver<usize>>,
    done: &Sender<(usize, Report)>,
) {
    loop {
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(i) = next else { break };
        let guard = ReportGuard {
            tx: done,
            exec,
            node: i,
            sent: false,
        };
        let report = if exec.has_failed() {
            Report::NotStarted
        } else if let Err(e) = exec.check_cancelled() {
            Report::Ran(Err(e))
        } else {
            Report::Ran(exec.run_node_with(i, caller))
        };
        if !guard.send(report) {
            break;
        }
    }
}

impl Runner for ThreadRunner {
    fn name(&self) -> &'static str {
        "thread"
    }

    fn execute(&self, exec: &Execution<'_>) -> Result<(), RunError> {
        schedule(exec, self.max_workers, &InProcess)
    }
}

/// Runs every node of `exec` as soon as its inputs exist, on up to
/// `max_workers` scoped threads, calling functions through `caller` (the
/// thread runner's and the process runner's scheduling).
pub(crate) fn schedule(
    exec: &Execution<'_>,
    max_workers: usize,
    caller: &dyn NodeCaller,
) -> Result<(), RunError> {
    let pipeline = exec.job().pipeline;
    let n = pipeline.nodes().len();
    if n == 0 {
        return Ok(());
    }
    let parents = pipeline.parents();
    let children = pipeline.children();
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let workers = max_workers.min(n);
    // Node `i` is done (or skipped): its children with no other pending
    // parent become ready.
    let complete = |i: usize, waiting: &mut Vec<usize>, ready: &mut BinaryHeap<Reverse<usize>>| {
        for &c in &children[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    };
    // The caller's subscriber and span (the run's): every worker logs
    // through the same subscriber, inside the same span, so its events
    // carry the run id even when the subscriber is the caller thread's
    // scoped default rather than the global one.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let span = tracing::Span::current();

    std::thread::scope(|scope| {
        let (job_tx, job_rx) = mpsc::channel::<usize>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<(usize, Report)>();
        let mut spawned = 0usize;
        for w in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let (span, dispatch) = (&span, &dispatch);
            let started = std::thread::Builder::new()
                .name(format!("weft-worker-{w}"))
                .spawn_scoped(scope, move || {
                    tracing::dispatcher::with_default(dispatch, || {
                        let _entered = span.enter();
                        // Every node handed out is reported by its guard; a
                        // panic that still unwinds here ends this worker only.
                        if let Err(payload) =
                            catch_unwind(AssertUnwindSafe(|| worker_loop(exec, caller, &job_rx, &done_tx)))
                        {
                            tracing::error!("weft worker thread panicked: {}", panic_message(payload));
                        }
                    });
                });
            match started {
                Ok(_) => spawned += 1,
                Err(e) => {
                    tracing::warn!("could not start a worker thread ({e}); running with {spawned}");
                    break;
                }
            }
        }
        drop(done_tx);

        // Nodes whose inputs are all available, lowest topological index first;
        // skipped nodes complete at once.
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
        let mut in_flight = 0usize;
        let mut handed_out = vec![false; n];
        let mut first_error: Option<RunError> = None;
        loop {
            // Hand out every ready node (or run one here when the pool is
            // idle), never after a failure or a cancel.
            while first_error.is_none() {
                let Some(Reverse(i)) = ready.pop() else { break };
                if !exec.should_run(i) {
                    complete(i, &mut waiting, &mut ready);
                    continue;
                }
                if let Err(e) = exec.check_cancelled() {
                    first_error = Some(e);
                    break;
                }
                if in_flight == 0 && (ready.is_empty() || spawned == 0) {
                    // Nothing could run beside it (a chain), or no worker
                    // started: run it here rather than pay a hand-off.
                    match exec.run_node_with(i, caller) {
                        Ok(()) => complete(i, &mut waiting, &mut ready),
                        Err(e) => first_error = Some(e),
                    }
                    continue;
                }
                if job_tx.send(i).is_err() {
                    // Unreachable: this loop holds the receiver too.
                    first_error =
                        Some(exec.panic_error(i, PanicStage::Runner, "the worker queue closed".to_string()));
                    break;
                }
                handed_out[i] = true;
                in_flight += 1;
            }
            if in_flight == 0 {
                break;
            }
            let Ok((i, report)) = done_rx.recv() else {
                // Every worker is gone and some nodes were never reported
                // (the guards make this unreachable): fail, never hang.
                let lost = handed_out.iter().position(|h| *h).unwrap_or(0);
                if first_error.is_none() {
                    first_error = Some(exec.panic_error(
                        lost,
                        PanicStage::Runner,
                        "every worker thread exited before reporting the node".to_string(),
                    ));
                }
                break;
            };
            in_flight -= 1;
            handed_out[i] = false;
            match report {
                Report::Ran(Ok(())) => complete(i, &mut waiting, &mut ready),
                Report::Ran(Err(e)) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
                Report::NotStarted => {}
            }
        }
        drop(job_tx);
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hooks, NodePanic, RunContext, RunJob, TypeCheck};
    use weft_catalog::Catalog;
    use weft_pipeline::{CancelToken, Pipeline, node};

    #[test]
    fn a_worker_that_unwinds_before_reporting_still_reports_its_node() {
        let pipeline = Pipeline::new([node(|x: &i64| *x, "a", "b").name("only").build().unwrap()]).unwrap();
        let catalog = Catalog::new();
        let hooks = Hooks::new();
        let context = RunContext {
            run_id: "r7".into(),
            ..Default::default()
        };
        let cancel = CancelToken::new();
        let job = RunJob {
            pipeline: &pipeline,
            catalog: &catalog,
            hooks: &hooks,
            context: &context,
            cancel: &cancel,
            only_missing_outputs: false,
            type_check: TypeCheck::Off,
            timeout: None,
        };
        let exec = Execution::plan(&job).unwrap();
        let (tx, rx) = mpsc::channel();
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let _guard = ReportGuard {
                tx: &tx,
                exec: &exec,
                node: 0,
                sent: false,
            };
            panic!("a bug in the worker loop");
        }));
        assert!(unwound.is_err());
        let Ok((0, Report::Ran(Err(err)))) = rx.try_recv() else {
            panic!("the guard did not report the node")
        };
        let RunError::Node { node, source, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(node, "only");
        let panic = source.downcast_ref::<NodePanic>().unwrap();
        assert_eq!((panic.stage, panic.run_id.as_str()), (PanicStage::Runner, "r7"));
        // A guard that sent its report sends nothing more.
        let guard = ReportGuard {
            tx: &tx,
            exec: &exec,
            node: 0,
            sent: false,
        };
        assert!(guard.send(Report::NotStarted));
        assert!(matches!(rx.try_recv(), Ok((0, Report::NotStarted))));
        assert!(rx.try_recv().is_err());
    }
}
