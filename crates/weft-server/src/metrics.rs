//! Prometheus metrics: counters and fixed-bucket histograms in atomics,
//! rendered as the text exposition format at `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use weft_core::RunStatus;

/// Histogram bucket bounds in seconds (shared by every duration histogram).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
];

/// A duration histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (atomics hold integers).
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation, in seconds.
    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    finished: [AtomicU64; RunStatus::ALL.len()],
    /// Runs accepted (durably queued).
    pub accepted: AtomicU64,
    /// Run durations (start to end).
    pub run_seconds: Histogram,
    /// Node durations.
    pub node_seconds: Histogram,
    /// Time from acceptance to start.
    pub dispatch_seconds: Histogram,
}

/// Gauges read at render time.
pub struct Gauges {
    /// Queued runs over all sessions.
    pub queue_depth: u64,
    /// Running runs over all sessions.
    pub running: u64,
    /// Live sessions by state name.
    pub sessions_by_state: Vec<(&'static str, u64)>,
}

impl Metrics {
    /// Counts a run that reached `status`.
    pub fn run_finished(&self, status: RunStatus) {
        if let Some(i) = RunStatus::ALL.iter().position(|s| *s == status) {
            self.finished[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP weft_runs_total Runs that reached a final status since the server started.\n# TYPE weft_runs_total counter\n");
        for (status, n) in RunStatus::ALL.iter().zip(&self.finished) {
            let _ = writeln!(
                out,
                "weft_runs_total{{status=\"{status}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP weft_runs_accepted_total Runs accepted (durably queued).\n# TYPE weft_runs_accepted_total counter\nweft_runs_accepted_total {}",
            self.accepted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP weft_queue_depth Queued runs.\n# TYPE weft_queue_depth gauge\nweft_queue_depth {}",
            gauges.queue_depth
        );
        let _ = writeln!(
            out,
            "# HELP weft_runs_running Runs executing in this server.\n# TYPE weft_runs_running gauge\nweft_runs_running {}",
            gauges.running
        );
        out.push_str(
            "# HELP weft_sessions Sessions known to this server, by state.\n# TYPE weft_sessions gauge\n",
        );
        for (state, n) in &gauges.sessions_by_state {
            let _ = writeln!(out, "weft_sessions{{state=\"{state}\"}} {n}");
        }
        self.run_seconds
            .render(&mut out, "weft_run_duration_seconds", "Run durations.");
        self.node_seconds
            .render(&mut out, "weft_node_duration_seconds", "Node durations.");
        self.dispatch_seconds.render(
            &mut out,
            "weft_dispatch_latency_seconds",
            "Time from a run's acceptance to its start.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.run_finished(RunStatus::Succeeded);
        m.run_finished(RunStatus::Succeeded);
        m.run_finished(RunStatus::Failed);
        m.run_seconds.observe(0.002);
        m.run_seconds.observe(2.0);
        let text = m.render(&Gauges {
            queue_depth: 3,
            running: 1,
            sessions_by_state: vec![("idle", 2)],
        });
        assert!(text.contains("weft_runs_total{status=\"succeeded\"} 2"), "{text}");
        assert!(text.contains("weft_runs_total{status=\"failed\"} 1"));
        assert!(text.contains("weft_run_duration_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("weft_run_duration_seconds_bucket{le=\"5\"} 2"));
        assert!(text.contains("weft_run_duration_seconds_count 2"));
        assert!(text.contains("weft_queue_depth 3"));
        assert!(text.contains("weft_sessions{state=\"idle\"} 2"));
    }
}
