//! Prometheus metrics at `GET /metrics`: the run and node series every
//! weft command exports ([`weft_core::RunMetrics`], the same as `weft run
//! --metrics-file`), plus the server's own (accepted runs, queue depth,
//! dispatch latency, sessions).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use weft_core::{Histogram, RunMetrics, RunObservation, RunStatus};

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    runs: RunMetrics,
    /// Runs accepted (durably queued).
    pub accepted: AtomicU64,
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
        self.runs.count_status(status);
    }

    /// Adds what a run that a worker answered did (duration, retries,
    /// nodes, rows, validation) from its record.
    pub fn run_recorded(&self, record: &weft_store::RunRecord) {
        let validation = record.validation.unwrap_or_default();
        self.runs.observe(&RunObservation {
            status: record.status,
            duration_seconds: record.duration_ms.map(|ms| ms / 1e3),
            attempts: record.attempts,
            node_timings: &record.node_timings,
            failed_node: record.error.as_ref().and_then(|e| e.node.as_deref()),
            validation: &validation,
            process_peak_rss_bytes: record.process_peak_rss_bytes,
        });
    }

    /// The text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        self.runs.render(&mut out);
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
        let mut record = weft_store::RunRecord::new("r", "s", RunStatus::Succeeded);
        record.attempts = 2;
        record.duration_ms = Some(2.0);
        record.node_timings = vec![weft_core::NodeTiming {
            node: "train".into(),
            duration_ms: 1.5,
            rows_in: Some(7),
            ..weft_core::NodeTiming::default()
        }];
        m.run_recorded(&record);
        record.duration_ms = Some(2000.0);
        m.run_recorded(&record);
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
        assert!(text.contains("weft_run_retries_total 2"), "{text}");
        assert!(
            text.contains("weft_node_rows_in_total{node=\"train\"} 14"),
            "{text}"
        );
        assert!(text.contains("weft_node_duration_seconds_count 2"), "{text}");
        assert!(text.contains("weft_sessions{state=\"idle\"} 2"));
    }
}
