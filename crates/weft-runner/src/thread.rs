use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::{Execution, RunError, Runner};

/// Runs every node as soon as its inputs exist, on a pool of worker threads.
///
/// Workers are scoped to the run: when `execute` returns, every thread has
/// finished (no detached work survives a failed or cancelled run). On the
/// first node error no new node starts; nodes already running finish.
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

impl Runner for ThreadRunner {
    fn name(&self) -> &'static str {
        "thread"
    }

    fn execute(&self, exec: &Execution<'_>) -> Result<(), RunError> {
        let pipeline = exec.job().pipeline;
        let n = pipeline.nodes().len();
        if n == 0 {
            return Ok(());
        }
        let parents = pipeline.parents();
        let children = pipeline.children();
        let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
        let workers = self.max_workers.min(n);
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

        std::thread::scope(|scope| {
            let (job_tx, job_rx) = mpsc::channel::<usize>();
            let job_rx = Arc::new(Mutex::new(job_rx));
            let (done_tx, done_rx) = mpsc::channel::<(usize, Result<(), RunError>)>();
            for _ in 0..workers {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    loop {
                        let next = job_rx.lock().expect("job queue lock").recv();
                        let Ok(i) = next else { break };
                        if done_tx.send((i, exec.run_node(i))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);

            // Nodes whose inputs are all available, lowest topological index first;
            // skipped nodes complete at once.
            let mut ready: BinaryHeap<Reverse<usize>> =
                (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
            let mut in_flight = 0usize;
            let mut finished = 0usize;
            let mut first_error: Option<RunError> = None;
            loop {
                while let Some(Reverse(i)) = ready.pop() {
                    if first_error.is_some() {
                        ready.clear();
                        break;
                    }
                    if !exec.should_run(i) {
                        finished += 1;
                        complete(i, &mut waiting, &mut ready);
                        continue;
                    }
                    if let Err(e) = exec.check_cancelled() {
                        first_error = Some(e);
                        ready.clear();
                        break;
                    }
                    if in_flight == 0 && ready.is_empty() {
                        // Nothing could run beside it (a chain): run it here
                        // rather than pay a hand-off to a worker thread.
                        finished += 1;
                        match exec.run_node(i) {
                            Ok(()) => {
                                complete(i, &mut waiting, &mut ready);
                            }
                            Err(e) => {
                                first_error = Some(e);
                                ready.clear();
                                break;
                            }
                        }
                        continue;
                    }
                    job_tx.send(i).expect("workers alive while jobs are pending");
                    in_flight += 1;
                }
                if in_flight == 0 {
                    break;
                }
                let (i, result) = done_rx.recv().expect("a worker reports every job");
                in_flight -= 1;
                finished += 1;
                match result {
                    Ok(()) => {
                        complete(i, &mut waiting, &mut ready);
                    }
                    Err(e) => {
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                    }
                }
            }
            drop(job_tx);
            match first_error {
                Some(e) => Err(e),
                None => {
                    debug_assert_eq!(finished, n);
                    Ok(())
                }
            }
        })
    }
}
