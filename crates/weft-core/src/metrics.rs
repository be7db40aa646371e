//! Run and node metrics in Prometheus's text exposition format: one
//! aggregate, [`RunMetrics`], that `weft run --metrics-file` and `weft
//! multirun --metrics-file` fill from their results and `weft serve`'s
//! `/metrics` fills from its records, so both show the same series.
//!
//! Series (every one prefixed `weft_`):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `runs_total` | counter | `status` |
//! | `run_duration_seconds` | histogram | |
//! | `run_retries_total` | counter | |
//! | `node_duration_seconds` | histogram | |
//! | `node_runs_total` | counter | `node`, `status` (`succeeded`, `failed`) |
//! | `node_seconds_total` | counter | `node` |
//! | `node_rows_in_total`, `node_rows_out_total` | counter | `node` |
//! | `validations_total`, `validation_connections_total`, `validation_problems_total` | counter | |
//! | `validation_seconds_total` | counter | |
//! | `process_peak_rss_bytes` | gauge | |
//!
//! Node labels are bounded by the pipelines' sizes, never by the number of
//! runs: no series carries a run id.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::result::{NodeTiming, ValidationStats};
use crate::{RunResult, RunStatus};

/// Histogram bucket bounds in seconds (shared by every duration histogram).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
];

/// A duration histogram with fixed buckets, in atomics.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (atomics hold integers).
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation, in seconds (negative or non-finite values
    /// count as 0).
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

    /// Appends the histogram as `name` with its `# HELP` and `# TYPE` lines.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
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

/// One node's counters.
#[derive(Clone, Copy, Debug, Default)]
struct NodeSeries {
    succeeded: u64,
    failed: u64,
    seconds: f64,
    rows_in: u64,
    rows_out: u64,
}

/// What one finished run contributes, whatever holds it (a [`RunResult`]
/// or a stored record).
#[derive(Clone, Copy, Debug)]
pub struct RunObservation<'a> {
    /// How it ended.
    pub status: RunStatus,
    /// Start to end, when it started.
    pub duration_seconds: Option<f64>,
    /// Attempts made (retries are the ones past the first).
    pub attempts: u32,
    /// The nodes that finished.
    pub node_timings: &'a [NodeTiming],
    /// The node its error names, when a node failed.
    pub failed_node: Option<&'a str>,
    /// Its connection validation.
    pub validation: &'a ValidationStats,
    /// The peak resident memory of the process that ran it.
    pub process_peak_rss_bytes: Option<u64>,
}

impl<'a> RunObservation<'a> {
    /// The observation of a run result.
    pub fn of_result(result: &'a RunResult) -> Self {
        RunObservation {
            status: result.status,
            duration_seconds: (result.attempts > 0).then(|| result.duration().as_secs_f64()),
            attempts: result.attempts,
            node_timings: &result.node_timings,
            failed_node: result.error.as_ref().and_then(|e| e.node.as_deref()),
            validation: &result.validation,
            process_peak_rss_bytes: result.process_peak_rss_bytes,
        }
    }
}

/// Runs' and nodes' metrics, aggregated (thread-safe: a server observes
/// from many tasks).
#[derive(Default)]
pub struct RunMetrics {
    finished: [AtomicU64; RunStatus::ALL.len()],
    retries: AtomicU64,
    run_seconds: Histogram,
    node_seconds: Histogram,
    peak_rss: AtomicU64,
    nodes: Mutex<BTreeMap<String, NodeSeries>>,
    validation: Mutex<ValidationStats>,
}

impl RunMetrics {
    /// Counts a run that reached `status` (a server counts queued runs that
    /// were cancelled before they started too, so this is apart from
    /// [`observe`](Self::observe)).
    pub fn count_status(&self, status: RunStatus) {
        if let Some(i) = RunStatus::ALL.iter().position(|s| *s == status) {
            self.finished[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds what a finished run did: its duration, retries, node timings,
    /// rows, failed node and validation. Does not count its status.
    pub fn observe(&self, run: &RunObservation<'_>) {
        if let Some(s) = run.duration_seconds {
            self.run_seconds.observe(s);
        }
        self.retries
            .fetch_add(u64::from(run.attempts.saturating_sub(1)), Ordering::Relaxed);
        if let Some(rss) = run.process_peak_rss_bytes {
            self.peak_rss.fetch_max(rss, Ordering::Relaxed);
        }
        for t in run.node_timings {
            self.node_seconds.observe(t.duration_ms / 1e3);
        }
        {
            let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            for t in run.node_timings {
                let series = nodes.entry(t.node.clone()).or_default();
                series.succeeded += 1;
                if t.duration_ms.is_finite() && t.duration_ms > 0.0 {
                    series.seconds += t.duration_ms / 1e3;
                }
                series.rows_in += t.rows_in.unwrap_or(0);
                series.rows_out += t.rows_out.unwrap_or(0);
            }
            if run.status == RunStatus::Failed
                && let Some(node) = run.failed_node
            {
                nodes.entry(node.to_string()).or_default().failed += 1;
            }
        }
        self.validation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(run.validation);
    }

    /// Counts and observes a run result (what the CLI does per run).
    pub fn record_result(&self, result: &RunResult) {
        self.count_status(result.status);
        self.observe(&RunObservation::of_result(result));
    }

    /// Appends every series in the text exposition format.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP weft_runs_total Runs that reached a final status.\n# TYPE weft_runs_total counter\n",
        );
        for (status, n) in RunStatus::ALL.iter().zip(&self.finished) {
            let _ = writeln!(
                out,
                "weft_runs_total{{status=\"{status}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        self.run_seconds
            .render(out, "weft_run_duration_seconds", "Run durations.");
        counter(
            out,
            "weft_run_retries_total",
            "Attempts past each run's first.",
            self.retries.load(Ordering::Relaxed) as f64,
        );
        self.node_seconds
            .render(out, "weft_node_duration_seconds", "Node durations.");
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let family = |out: &mut String, name: &str, help: &str, value: &dyn Fn(&NodeSeries) -> f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (node, series) in &nodes {
                let _ = writeln!(out, "{name}{{node=\"{}\"}} {}", escape(node), value(series));
            }
        };
        let _ = writeln!(
            out,
            "# HELP weft_node_runs_total Node executions by outcome.\n# TYPE weft_node_runs_total counter"
        );
        for (node, series) in &nodes {
            let node = escape(node);
            let _ = writeln!(
                out,
                "weft_node_runs_total{{node=\"{node}\",status=\"succeeded\"}} {}\nweft_node_runs_total{{node=\"{node}\",status=\"failed\"}} {}",
                series.succeeded, series.failed
            );
        }
        family(
            out,
            "weft_node_seconds_total",
            "Time spent in each node, loads and saves included.",
            &|s| s.seconds,
        );
        family(
            out,
            "weft_node_rows_in_total",
            "Rows nodes read, where the data knows its row count.",
            &|s| s.rows_in as f64,
        );
        family(
            out,
            "weft_node_rows_out_total",
            "Rows nodes wrote, where the data knows its row count.",
            &|s| s.rows_out as f64,
        );
        let v = *self.validation.lock().unwrap_or_else(|p| p.into_inner());
        counter(
            out,
            "weft_validations_total",
            "Runs whose connections were validated.",
            v.validations as f64,
        );
        counter(
            out,
            "weft_validation_connections_total",
            "Node inputs checked against their producers and datasets.",
            v.connections as f64,
        );
        counter(
            out,
            "weft_validation_problems_total",
            "Missing inputs and type mismatches found by validation.",
            v.problems as f64,
        );
        counter(
            out,
            "weft_validation_seconds_total",
            "Time spent validating connections.",
            v.duration_ms / 1e3,
        );
        let rss = self.peak_rss.load(Ordering::Relaxed);
        if rss > 0 {
            let _ = writeln!(
                out,
                "# HELP weft_process_peak_rss_bytes Peak resident memory of the processes that ran the runs (a process figure, not a run's).\n# TYPE weft_process_peak_rss_bytes gauge\nweft_process_peak_rss_bytes {rss}"
            );
        }
    }

    /// Every series as one text document.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render(&mut out);
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(node: &str, ms: f64, rows_in: Option<u64>, rows_out: Option<u64>) -> NodeTiming {
        NodeTiming {
            node: node.into(),
            duration_ms: ms,
            rows_in,
            rows_out,
            ..NodeTiming::default()
        }
    }

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::default();
        h.observe(0.002);
        h.observe(2.0);
        h.observe(f64::NAN);
        let mut text = String::new();
        h.render(&mut text, "x", "X.");
        assert!(text.contains("x_bucket{le=\"0.0005\"} 1"), "{text}");
        assert!(text.contains("x_bucket{le=\"0.0025\"} 2"), "{text}");
        assert!(text.contains("x_bucket{le=\"5\"} 3"), "{text}");
        assert!(text.contains("x_count 3"), "{text}");
    }

    #[test]
    fn runs_add_up_per_node_with_rows_failures_retries_and_validation() {
        let m = RunMetrics::default();
        let ok = [
            timing("a", 10.0, Some(5), Some(3)),
            timing("b", 20.0, None, Some(1)),
        ];
        let validation = ValidationStats {
            validations: 1,
            connections: 4,
            problems: 1,
            duration_ms: 2.0,
        };
        for _ in 0..2 {
            m.count_status(RunStatus::Succeeded);
            m.observe(&RunObservation {
                status: RunStatus::Succeeded,
                duration_seconds: Some(0.03),
                attempts: 1,
                node_timings: &ok,
                failed_node: None,
                validation: &validation,
                process_peak_rss_bytes: Some(1000),
            });
        }
        m.count_status(RunStatus::Failed);
        m.observe(&RunObservation {
            status: RunStatus::Failed,
            duration_seconds: Some(0.01),
            attempts: 3,
            node_timings: &ok[..1],
            failed_node: Some("b"),
            validation: &validation,
            process_peak_rss_bytes: Some(4000),
        });
        let text = m.to_text();
        for line in [
            "weft_runs_total{status=\"succeeded\"} 2",
            "weft_runs_total{status=\"failed\"} 1",
            "weft_run_retries_total 2",
            "weft_node_runs_total{node=\"a\",status=\"succeeded\"} 3",
            "weft_node_runs_total{node=\"b\",status=\"succeeded\"} 2",
            "weft_node_runs_total{node=\"b\",status=\"failed\"} 1",
            "weft_node_seconds_total{node=\"a\"} 0.03",
            "weft_node_rows_in_total{node=\"a\"} 15",
            "weft_node_rows_out_total{node=\"a\"} 9",
            "weft_node_rows_in_total{node=\"b\"} 0",
            "weft_node_rows_out_total{node=\"b\"} 2",
            "weft_node_duration_seconds_count 5",
            "weft_run_duration_seconds_count 3",
            "weft_validations_total 3",
            "weft_validation_connections_total 12",
            "weft_validation_problems_total 3",
            "weft_validation_seconds_total 0.006",
            "weft_process_peak_rss_bytes 4000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = RunMetrics::default();
        let t = [timing("ns.\"odd\"\\name", 1.0, None, None)];
        m.observe(&RunObservation {
            status: RunStatus::Succeeded,
            duration_seconds: None,
            attempts: 1,
            node_timings: &t,
            failed_node: None,
            validation: &ValidationStats::default(),
            process_peak_rss_bytes: None,
        });
        let text = m.to_text();
        assert!(
            text.contains("weft_node_seconds_total{node=\"ns.\\\"odd\\\"\\\\name\"} 0.001"),
            "{text}"
        );
        assert!(!text.contains("weft_process_peak_rss_bytes"), "{text}");
    }
}
