//! Running a batch under supervision: status lines copied to stderr from
//! the calling thread, and SIGINT/SIGTERM turned into a cancel request.
//!
//! Everything is scoped to one call: the signal thread is a scoped thread
//! whose signal handle is closed when the work ends, so no thread outlives
//! the command and no global state is left behind.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use anyhow::Context as _;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::Io;

/// Sent (on drop, so also after a panic) when the work has returned. Lines
/// from hooks never hold a NUL character.
const WORK_DONE: &str = "\u{0}work done";

/// How long the line writer sleeps when no line is waiting. Senders never
/// wake it (a wake-up per status line cost more than the node it reports);
/// the end of the work does, so no run waits for a tick to finish.
const LINE_TICK: std::time::Duration = std::time::Duration::from_millis(5);

struct WakeOnDrop(Sender<String>, std::thread::Thread);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(WORK_DONE.to_string());
        self.1.unpark();
    }
}

/// How the supervised work ended.
pub(super) struct Supervised<T> {
    /// What the work returned.
    pub value: T,
    /// A SIGINT or SIGTERM arrived while it ran.
    pub interrupted: bool,
}

/// Runs `work` on a scoped thread. Meanwhile this thread writes every line
/// received on `lines` to `io.err`; when `io.signals` is set, the first
/// SIGINT or SIGTERM calls `on_interrupt` on the signal thread, with a flag
/// that turns true once the work has returned (so `on_interrupt` may keep
/// cancelling until then).
pub(super) fn supervise<T: Send>(
    io: &mut Io<'_>,
    wake: Sender<String>,
    lines: Receiver<String>,
    on_interrupt: &(dyn Fn(&AtomicBool) + Sync),
    work: impl FnOnce() -> T + Send,
) -> anyhow::Result<Supervised<T>> {
    let interrupted = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let signals = if io.signals {
        Some(Signals::new([SIGINT, SIGTERM]).context("installing the SIGINT/SIGTERM handlers")?)
    } else {
        None
    };
    let handle = signals.as_ref().map(Signals::handle);
    let err = &mut *io.err;
    let joined = std::thread::scope(|scope| {
        if let Some(mut signals) = signals {
            let (interrupted, finished) = (&interrupted, &finished);
            scope.spawn(move || {
                // Ends without a signal when the handle is closed.
                if signals.forever().next().is_some() {
                    interrupted.store(true, Ordering::SeqCst);
                    on_interrupt(finished);
                }
            });
        }
        // The worker says when it is done (even if it panics), and wakes
        // this thread, which otherwise looks for lines every `LINE_TICK`.
        let writer = std::thread::current();
        let worker = scope.spawn(move || {
            let _done = WakeOnDrop(wake, writer);
            work()
        });
        // Lines that arrived since the last look are written in one go (a
        // burst of fast nodes costs one write, not one per line), then
        // flushed, so output stays live.
        let mut buffered = std::io::BufWriter::new(&mut *err);
        loop {
            match lines.try_recv() {
                Ok(line) if line == WORK_DONE => break,
                Ok(line) => {
                    let _ = writeln!(buffered, "{line}");
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    let _ = buffered.flush();
                    std::thread::park_timeout(LINE_TICK);
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
            }
        }
        let joined = worker.join();
        for line in lines.try_iter() {
            let _ = writeln!(buffered, "{line}");
        }
        let _ = buffered.flush();
        drop(buffered);
        let _ = err.flush();
        finished.store(true, Ordering::SeqCst);
        if let Some(handle) = &handle {
            handle.close();
        }
        joined
    });
    match joined {
        Ok(value) => Ok(Supervised {
            value,
            interrupted: interrupted.load(Ordering::SeqCst),
        }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            anyhow::bail!("internal error: the run thread panicked: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output to buffers, without progress bars or signal handling.
    fn plain_io<'a>(out: &'a mut Vec<u8>, err: &'a mut Vec<u8>) -> Io<'a> {
        Io {
            out,
            err,
            progress_bars: false,
            signals: false,
            prompt: None,
        }
    }

    #[test]
    fn lines_reach_stderr_in_order_and_the_value_comes_back() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = plain_io(&mut out, &mut err);
        let got = supervise(&mut io, tx.clone(), rx, &|_| {}, move || {
            for i in 0..3 {
                tx.send(format!("line {i}")).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            42
        })
        .unwrap();
        assert_eq!(got.value, 42);
        assert!(!got.interrupted);
        assert_eq!(String::from_utf8(err).unwrap(), "line 0\nline 1\nline 2\n");
    }

    #[test]
    fn a_burst_of_lines_arrives_complete_and_in_order() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = plain_io(&mut out, &mut err);
        let lines = tx.clone();
        let got = supervise(&mut io, tx, rx, &|_| {}, move || {
            for i in 0..10_000 {
                lines.send(format!("line {i}")).unwrap();
            }
            7
        })
        .unwrap();
        assert_eq!(got.value, 7);
        let text = String::from_utf8(err).unwrap();
        let expected: Vec<String> = (0..10_000).map(|i| format!("line {i}")).collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn a_panicking_run_thread_is_an_error_not_a_panic() {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut io = plain_io(&mut out, &mut err);
        let got = supervise(&mut io, tx, rx, &|_| {}, || -> u8 { panic!("boom") });
        let e = got.err().expect("an error").to_string();
        assert!(e.contains("boom"), "{e}");
    }
}
