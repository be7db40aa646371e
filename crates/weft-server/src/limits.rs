//! Memory and CPU-time limits of `weft worker` processes (setrlimit).
//!
//! A worker applies its own limits, so every launcher that starts `weft
//! worker` (local children, Ray jobs) enforces them the same way:
//!
//! - **memory**: `RLIMIT_DATA` for the worker's whole life (heap, thread
//!   stacks and other private writable mappings; address space that is
//!   only reserved does not count, unlike `RLIMIT_AS`). An allocation past
//!   it fails, and the worker aborts with `memory allocation of N bytes
//!   failed` on stderr;
//! - **CPU time**: per run. Before each run the worker sets the soft
//!   `RLIMIT_CPU` to the CPU time it has used so far plus the limit, so a
//!   run that computes past it gets `SIGXCPU` and the worker ends (core
//!   dumps off).
//!
//! The master tells the two endings from other deaths ([`WorkerLimits::explain_exit`])
//! and fails the run with the limit's name instead of interrupting it: a
//! rerun would meet the same limit.

use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};

/// Limits a worker process applies to itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerLimits {
    /// Most bytes of data (heap and other private writable memory) the worker may hold.
    pub memory_bytes: Option<u64>,
    /// Most seconds of CPU time one run may use.
    pub cpu_seconds: Option<u64>,
}

/// A limit could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("cannot set the worker's {limit} limit: {source}")]
pub struct LimitError {
    limit: &'static str,
    #[source]
    source: nix::Error,
}

impl WorkerLimits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.memory_bytes.is_none() && self.cpu_seconds.is_none()
    }

    /// The `weft worker` arguments that carry these limits.
    pub fn worker_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(bytes) = self.memory_bytes {
            args.extend(["--memory-limit".to_string(), bytes.to_string()]);
        }
        if let Some(s) = self.cpu_seconds {
            args.extend(["--cpu-limit-s".to_string(), s.to_string()]);
        }
        args
    }

    /// Applies the memory limit to this process (once, at start-up).
    pub fn apply_memory(&self) -> Result<(), LimitError> {
        let Some(bytes) = self.memory_bytes else {
            return Ok(());
        };
        let error = |source| LimitError {
            limit: "memory",
            source,
        };
        let (_, hard) = getrlimit(Resource::RLIMIT_DATA).map_err(error)?;
        setrlimit(Resource::RLIMIT_DATA, bytes.min(hard), hard).map_err(error)
    }

    /// Arms the CPU-time limit for the run about to start in this process:
    /// the soft limit becomes the CPU time used so far plus the limit.
    pub fn arm_cpu(&self) -> Result<(), LimitError> {
        let Some(limit) = self.cpu_seconds else {
            return Ok(());
        };
        let error = |source| LimitError {
            limit: "CPU-time",
            source,
        };
        let usage = getrusage(UsageWho::RUSAGE_SELF).map_err(error)?;
        let (user, system) = (usage.user_time(), usage.system_time());
        let used_us =
            (user.tv_sec() + system.tv_sec()) as u64 * 1_000_000 + (user.tv_usec() + system.tv_usec()) as u64;
        let soft = used_us.div_ceil(1_000_000) + limit;
        // A limit's SIGXCPU would otherwise dump the worker's core.
        setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(error)?;
        let (_, hard) = getrlimit(Resource::RLIMIT_CPU).map_err(error)?;
        setrlimit(Resource::RLIMIT_CPU, soft.min(hard), hard).map_err(error)
    }

    /// What a dead worker's exit status and last stderr lines say about
    /// these limits: the run's error when a limit ended it.
    pub fn explain_exit(&self, status: &str, stderr: &str) -> Option<String> {
        if let Some(s) = self.cpu_seconds
            && status.contains("SIGXCPU")
        {
            return Some(format!(
                "the run exceeded its {s} s CPU-time limit (the worker got SIGXCPU)"
            ));
        }
        if let Some(bytes) = self.memory_bytes
            && status.contains("SIGABRT")
            && stderr.contains("memory allocation of")
        {
            return Some(format!(
                "the run exceeded the worker's {} memory limit ({})",
                format_size(bytes),
                stderr
                    .lines()
                    .rev()
                    .find(|l| l.contains("memory allocation of"))
                    .unwrap_or_default()
                    .trim()
            ));
        }
        None
    }
}

pub use weft_pipeline::{format_size, parse_size};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_explained_only_by_the_limits_that_are_set() {
        let limits = WorkerLimits {
            memory_bytes: Some(64 << 20),
            cpu_seconds: Some(2),
        };
        let cpu = limits.explain_exit("signal: 24 (SIGXCPU)", "").unwrap();
        assert!(cpu.contains("2 s CPU-time limit"), "{cpu}");
        let mem = limits
            .explain_exit(
                "signal: 6 (SIGABRT) (core dumped)",
                "loading\nmemory allocation of 134217728 bytes failed",
            )
            .unwrap();
        assert!(mem.contains("64 MiB memory limit"), "{mem}");
        assert!(mem.contains("134217728 bytes"), "{mem}");
        assert_eq!(limits.explain_exit("signal: 9 (SIGKILL)", ""), None);
        assert_eq!(
            limits.explain_exit("signal: 6 (SIGABRT)", "assertion failed"),
            None
        );
        assert_eq!(
            WorkerLimits::default().explain_exit("signal: 24 (SIGXCPU)", ""),
            None
        );
    }

    #[test]
    fn limits_travel_as_worker_arguments() {
        let limits = WorkerLimits {
            memory_bytes: Some(1 << 30),
            cpu_seconds: Some(30),
        };
        assert_eq!(
            limits.worker_args(),
            ["--memory-limit", "1073741824", "--cpu-limit-s", "30"]
        );
        assert!(WorkerLimits::default().worker_args().is_empty());
    }
}
