//! Human-readable tables and comparisons for `weft sessions` / `weft runs`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{RunErrorRecord, RunRecord, RunStatus, SessionRecord};

/// Left-aligned columns separated by two spaces; the first row is the header.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn flatten(v: &Value, out: &mut BTreeMap<String, Value>) {
    crate::model::for_each_leaf("", v, &mut |key, v| {
        out.insert(key, v.clone());
    });
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn duration(r: &RunRecord) -> String {
    r.duration_ms
        .map(|d| format!("{:.3}s", d / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// A table cell for a run's error: the first line of its message, empty
/// when the run did not fail.
pub fn error_cell(error: Option<&RunErrorRecord>) -> String {
    error
        .map(|e| e.message.lines().next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Runs as a table: id, status, duration, and the runtime params that
/// differ between the listed runs.
pub fn runs_table(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "no runs recorded\n".into();
    }
    let flat: Vec<BTreeMap<String, Value>> = runs
        .iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            flatten(&r.runtime_params, &mut m);
            m
        })
        .collect();
    let keys: BTreeSet<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    let varying: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            flat.iter()
                .map(|m| m.get(*k))
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] != w[1])
        })
        .collect();
    let mut rows = vec![{
        let mut h = vec!["run_id".to_string(), "status".into(), "duration".into()];
        h.extend(varying.iter().map(|k| k.to_string()));
        h.push("error".into());
        h
    }];
    for (r, params) in runs.iter().zip(&flat) {
        let mut row = vec![r.run_id.clone(), r.status.to_string(), duration(r)];
        row.extend(varying.iter().map(|k| show(params.get(*k))));
        row.push(error_cell(r.error.as_ref()));
        rows.push(row);
    }
    table(&rows)
}

/// Sessions as a table.
pub fn sessions_table(sessions: &[SessionRecord]) -> String {
    if sessions.is_empty() {
        return "no sessions recorded\n".into();
    }
    let mut rows = vec![vec![
        "session_id".to_string(),
        "kind".into(),
        "env".into(),
        "created".into(),
        "closed".into(),
        "user".into(),
        "git".into(),
    ]];
    for s in sessions {
        rows.push(vec![
            s.session_id.clone(),
            s.kind.clone(),
            s.env.clone(),
            s.created_at.to_string(),
            s.closed_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            s.username.clone().unwrap_or_else(|| "-".into()),
            match (&s.git_commit, s.git_dirty) {
                (Some(c), Some(true)) => format!("{}+dirty", &c[..c.len().min(10)]),
                (Some(c), _) => c[..c.len().min(10)].to_string(),
                _ => "-".into(),
            },
        ]);
    }
    table(&rows)
}

/// One run in detail.
pub fn run_detail(r: &RunRecord) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
    line(&mut out, "run_id", r.run_id.clone());
    line(&mut out, "session_id", r.session_id.clone());
    line(&mut out, "status", r.status.to_string());
    line(&mut out, "env", r.env.clone());
    line(&mut out, "pipelines", r.pipeline_names.join(", "));
    line(&mut out, "filters", r.filters.to_string());
    line(&mut out, "runtime_params", r.runtime_params.to_string());
    line(
        &mut out,
        "start",
        r.start_time.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
    );
    line(
        &mut out,
        "end",
        r.end_time.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
    );
    line(&mut out, "duration", duration(r));
    line(&mut out, "attempts", r.attempts.to_string());
    if let Some(m) = r.process_peak_rss_bytes {
        line(&mut out, "peak_memory", format!("{:.1} MB", m as f64 / 1e6));
    }
    for (k, v) in &r.load_versions {
        line(&mut out, "loaded", format!("{k} @ {v}"));
    }
    for (k, v) in &r.saved_versions {
        line(&mut out, "saved", format!("{k} @ {v}"));
    }
    if let Some(e) = &r.error {
        line(
            &mut out,
            "error",
            format!("[{}] {}", e.kind, e.message.lines().next().unwrap_or("")),
        );
        if let Some(n) = &e.node {
            line(&mut out, "failed node", n.clone());
        }
        for c in e.causes.iter().skip(1) {
            line(&mut out, "caused by", c.clone());
        }
    }
    if !r.node_timings.is_empty() {
        out.push_str("nodes:\n");
        for t in &r.node_timings {
            out.push_str(&format!("  {:<40} {:>10.3} ms\n", t.node, t.duration_ms));
        }
    }
    out
}

/// One key of a compared section: both runs' values (`None` when a run
/// has no such key) and whether they differ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CompareRow {
    /// The key (dotted for nested params).
    pub key: String,
    /// Run A's value.
    pub a: Option<Value>,
    /// Run B's value.
    pub b: Option<Value>,
    /// Whether they differ (a missing value differs from any value).
    pub differs: bool,
}

/// Both runs' statuses.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusPair {
    /// Run A's.
    pub a: RunStatus,
    /// Run B's.
    pub b: RunStatus,
}

/// Two runs side by side, section by section, keys sorted in each.
/// Serialized, it is the stable `weft runs compare --json` document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Run A's id.
    pub run_a: String,
    /// Run B's id.
    pub run_b: String,
    /// Both statuses.
    pub status: StatusPair,
    /// Runtime parameters, flattened to dotted keys.
    pub params: Vec<CompareRow>,
    /// Versions loaded.
    pub load_versions: Vec<CompareRow>,
    /// Versions saved.
    pub saved_versions: Vec<CompareRow>,
    /// Metrics (numbers; a non-finite one is `null`).
    pub metrics: Vec<CompareRow>,
    /// Node durations in milliseconds (a node run twice is summed).
    pub node_ms: Vec<CompareRow>,
}

/// The rows of one section: every key of either side, sorted.
fn rows(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> Vec<CompareRow> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let (va, vb) = (a.get(k).cloned(), b.get(k).cloned());
            CompareRow {
                key: k.clone(),
                differs: va != vb,
                a: va,
                b: vb,
            }
        })
        .collect()
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn params(r: &RunRecord) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    flatten(&r.runtime_params, &mut out);
    out
}

fn versions(m: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    m.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
}

fn metrics(r: &RunRecord) -> BTreeMap<String, Value> {
    r.metrics.iter().map(|(k, v)| (k.clone(), number(*v))).collect()
}

fn node_ms(r: &RunRecord) -> BTreeMap<String, Value> {
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for t in &r.node_timings {
        *total.entry(t.node.clone()).or_default() += t.duration_ms;
    }
    total.into_iter().map(|(k, v)| (k, number(v))).collect()
}

/// Two runs side by side.
pub fn comparison(a: &RunRecord, b: &RunRecord) -> Comparison {
    Comparison {
        run_a: a.run_id.clone(),
        run_b: b.run_id.clone(),
        status: StatusPair {
            a: a.status,
            b: b.status,
        },
        params: rows(&params(a), &params(b)),
        load_versions: rows(&versions(&a.load_versions), &versions(&b.load_versions)),
        saved_versions: rows(&versions(&a.saved_versions), &versions(&b.saved_versions)),
        metrics: rows(&metrics(a), &metrics(b)),
        node_ms: rows(&node_ms(a), &node_ms(b)),
    }
}

/// [`comparison`] as JSON: `{"run_a", "run_b", "status": {"a", "b"}, and
/// per section (`params`, `load_versions`, `saved_versions`, `metrics`,
/// `node_ms`) a list of `{"key", "a", "b", "differs"}`}`.
pub fn compare_json(a: &RunRecord, b: &RunRecord) -> Value {
    serde_json::to_value(comparison(a, b)).unwrap_or(Value::Null)
}

/// Two runs side by side as a table; differing rows are marked `*`.
/// Sections in order: status, params, versions loaded and saved, metrics
/// (sorted by name), node durations.
pub fn compare(a: &RunRecord, b: &RunRecord) -> String {
    let c = comparison(a, b);
    let mut table_rows = vec![vec![
        String::new(),
        "key".into(),
        c.run_a.clone(),
        c.run_b.clone(),
    ]];
    table_rows.push(vec![
        if c.status.a != c.status.b { "*" } else { "" }.into(),
        "status".into(),
        c.status.a.to_string(),
        c.status.b.to_string(),
    ]);
    let ms = |v: &Option<Value>| match v {
        Some(Value::Number(n)) => format!("{:.3} ms", n.as_f64().unwrap_or(0.0)),
        other => show(other.as_ref()),
    };
    let sections: [(&str, &Vec<CompareRow>, bool); 5] = [
        ("params", &c.params, false),
        ("load_versions", &c.load_versions, false),
        ("saved_versions", &c.saved_versions, false),
        ("metrics", &c.metrics, false),
        ("node_ms", &c.node_ms, true),
    ];
    for (name, section, in_ms) in sections {
        for row in section {
            let (va, vb) = if in_ms {
                (ms(&row.a), ms(&row.b))
            } else {
                (
                    show(row.a.as_ref().filter(|v| !v.is_null())),
                    show(row.b.as_ref().filter(|v| !v.is_null())),
                )
            };
            table_rows.push(vec![
                if row.differs { "*" } else { "" }.into(),
                format!("{name}.{}", row.key),
                va,
                vb,
            ]);
        }
    }
    table(&table_rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, params: Value, metrics: Value) -> RunRecord {
        // `null` stands for NaN (json! cannot hold one).
        let metrics = crate::metrics_from_json(&metrics);
        RunRecord {
            run_id: id.into(),
            session_id: "s".into(),
            run_index: 0,
            status: RunStatus::Succeeded,
            env: "local".into(),
            runtime_params: params,
            pipeline_names: vec!["__default__".into()],
            filters: json!({}),
            load_versions: BTreeMap::new(),
            saved_versions: BTreeMap::from([("model".to_string(), id.to_string())]),
            start_time: None,
            end_time: None,
            duration_ms: Some(1500.0),
            error: None,
            attempts: 1,
            node_timings: vec![],
            process_peak_rss_bytes: None,
            validation: None,
            metrics,
            outputs: Default::default(),
            pending_input: None,
            owner: None,
            updated_at: None,
        }
    }

    #[test]
    fn params_flatten_to_dotted_leaves_keeping_empty_objects() {
        let mut out = BTreeMap::new();
        flatten(
            &json!({"model": {"lr": 0.1, "opts": {}}, "tag": "x", "none": null}),
            &mut out,
        );
        assert_eq!(
            out,
            BTreeMap::from([
                ("model.lr".to_string(), json!(0.1)),
                ("model.opts".to_string(), json!({})),
                ("none".to_string(), Value::Null),
                ("tag".to_string(), json!("x")),
            ])
        );
        let mut top = BTreeMap::new();
        flatten(&json!(3), &mut top);
        assert!(top.is_empty(), "{top:?}");
    }

    #[test]
    fn error_cell_is_the_first_line_of_the_message() {
        let failure = RunErrorRecord {
            kind: "node".into(),
            message: "node `train` failed\ncaused by: boom".into(),
            node: Some("train".into()),
            causes: vec![],
        };
        assert_eq!(error_cell(Some(&failure)), "node `train` failed");
        assert_eq!(error_cell(None), "");
    }

    #[test]
    fn runs_table_shows_only_varying_params() {
        let t = runs_table(&[
            run("r1", json!({"lr": 0.1, "seed": 1}), json!({})),
            run("r2", json!({"lr": 0.2, "seed": 1}), json!({})),
        ]);
        let header = t.lines().next().unwrap();
        assert!(header.contains("lr") && !header.contains("seed"), "{t}");
        assert!(t.contains("1.500s") && t.contains("0.2"), "{t}");
    }

    #[test]
    fn compare_marks_differences() {
        let a = run("r1", json!({"lr": 0.1, "seed": 1}), json!({"r2": 0.9}));
        let b = run("r2", json!({"lr": 0.2, "seed": 1}), json!({"r2": 0.8}));
        let j = compare_json(&a, &b);
        let params = j["params"].as_array().unwrap();
        assert_eq!(
            params[0],
            json!({"key": "lr", "a": 0.1, "b": 0.2, "differs": true})
        );
        assert_eq!(params[1]["differs"], false);
        assert_eq!(j["metrics"][0]["differs"], true);
        let t = compare(&a, &b);
        assert!(
            t.lines().any(|l| l.starts_with('*') && l.contains("params.lr")),
            "{t}"
        );
        assert!(
            t.lines()
                .any(|l| !l.starts_with('*') && l.contains("params.seed")),
            "{t}"
        );
    }

    #[test]
    fn compare_shows_metrics_and_node_times_side_by_side_sorted() {
        let mut a = run("r1", json!({}), json!({"r2": 0.9, "mae": 1.5, "loss": f64::NAN}));
        let mut b = run("r2", json!({}), json!({"r2": 0.8, "rmse": 2.0, "loss": f64::NAN}));
        let t = |node: &str, ms: f64| crate::NodeTiming {
            node: node.into(),
            start: "2026-01-01T00:00:00Z".parse().unwrap(),
            duration_ms: ms,
            peak_memory_bytes: None,
            rows_in: None,
            rows_out: None,
            cycle: None,
        };
        a.node_timings = vec![t("train", 2.0), t("evaluate", 1.0), t("train", 0.5)];
        b.node_timings = vec![t("train", 3.0)];
        let c = comparison(&a, &b);
        let keys: Vec<&str> = c.metrics.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["loss", "mae", "r2", "rmse"], "sorted, both sides' keys");
        assert_eq!(c.metrics[1].a, Some(json!(1.5)));
        assert_eq!(c.metrics[1].b, None);
        assert_eq!(
            (c.metrics[2].a.clone(), c.metrics[2].b.clone()),
            (Some(json!(0.9)), Some(json!(0.8)))
        );
        assert!(!c.metrics[0].differs, "NaN on both sides is the same (null)");
        let nodes: Vec<(&str, Option<Value>)> =
            c.node_ms.iter().map(|r| (r.key.as_str(), r.a.clone())).collect();
        assert_eq!(
            nodes,
            [("evaluate", Some(json!(1.0))), ("train", Some(json!(2.5)))]
        );
        assert_eq!(
            compare_json(&a, &b)["metrics"][2],
            json!({"key": "r2", "a": 0.9, "b": 0.8, "differs": true})
        );
        let table = compare(&a, &b);
        let lines: Vec<&str> = table.lines().collect();
        let pos = |k: &str| {
            lines
                .iter()
                .position(|l| l.contains(k))
                .unwrap_or_else(|| panic!("{k}: {table}"))
        };
        assert!(pos("metrics.loss") < pos("metrics.mae") && pos("metrics.mae") < pos("metrics.r2"));
        assert!(pos("metrics.r2") < pos("metrics.rmse") && pos("metrics.rmse") < pos("node_ms.evaluate"));
        let r2 = lines[pos("metrics.r2")];
        assert!(
            r2.starts_with('*') && r2.contains("0.9") && r2.contains("0.8"),
            "{r2}"
        );
        let mae = lines[pos("metrics.mae")];
        assert!(mae.contains("1.5") && mae.trim_end().ends_with('-'), "{mae}");
        assert!(
            lines[pos("node_ms.train")].contains("2.500 ms")
                && lines[pos("node_ms.train")].contains("3.000 ms")
        );
    }

    #[test]
    fn runs_table_without_varying_params_and_empty() {
        assert_eq!(runs_table(&[]), "no runs recorded\n");
        let t = runs_table(&[
            run("r1", json!({"seed": 1}), json!({})),
            run("r2", json!({"seed": 1, "extra": {"deep": true}}), json!({})),
        ]);
        let header = t.lines().next().unwrap();
        assert!(!header.contains("seed"), "{t}");
        assert!(header.contains("extra.deep"), "{t}");
        assert_eq!(t.lines().count(), 3);
        let r1 = t.lines().find(|l| l.starts_with("r1")).unwrap();
        assert!(r1.ends_with(" -"), "a missing param shows as -: {t}");
    }

    #[test]
    fn sessions_table_lists_sessions() {
        assert_eq!(sessions_table(&[]), "no sessions recorded\n");
        let s = SessionRecord {
            session_id: "sess-1".into(),
            kind: "service".into(),
            project_path: "/p".into(),
            env: "prod".into(),
            runtime_params: json!({}),
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            closed_at: None,
            username: Some("ada".into()),
            git_commit: Some("0123456789abcdef".into()),
            git_dirty: Some(true),
            command: vec![],
        };
        let t = sessions_table(&[s]);
        let mut lines = t.lines();
        assert!(lines.next().unwrap().starts_with("session_id"));
        let row = lines.next().unwrap();
        for part in [
            "sess-1",
            "service",
            "prod",
            "2026-01-01T00:00:00Z",
            "ada",
            "0123456789+dirty",
        ] {
            assert!(row.contains(part), "{part} missing: {t}");
        }
    }

    #[test]
    fn run_detail_shows_error_versions_and_nodes() {
        let mut r = run("r1", json!({"lr": 0.1}), json!({}));
        r.status = RunStatus::Failed;
        r.load_versions = BTreeMap::from([("raw".to_string(), "v1".to_string())]);
        r.error = Some(crate::RunErrorRecord {
            kind: "node".into(),
            message: "node `train` failed\nmore".into(),
            node: Some("train".into()),
            causes: vec!["node `train` failed".into(), "division by zero".into()],
        });
        r.node_timings = vec![crate::NodeTiming {
            node: "train".into(),
            start: "2026-01-01T00:00:00Z".parse().unwrap(),
            duration_ms: 2.5,
            peak_memory_bytes: None,
            rows_in: None,
            rows_out: None,
            cycle: None,
        }];
        let d = run_detail(&r);
        for part in [
            "status          failed",
            "loaded          raw @ v1",
            "saved           model @ r1",
            "[node] node `train` failed",
            "failed node     train",
            "caused by       division by zero",
            "2.500 ms",
            "duration        1.500s",
        ] {
            assert!(d.contains(part), "{part} missing:\n{d}");
        }
        assert!(!d.contains("more"), "only the first line of the message: {d}");
    }

    #[test]
    fn compare_json_covers_versions_and_missing_keys() {
        let a = run("r1", json!({"lr": 0.1}), json!({}));
        let mut b = run("r2", json!({"lr": 0.1, "epochs": 3}), json!({}));
        b.status = RunStatus::Failed;
        let j = compare_json(&a, &b);
        assert_eq!(j["run_a"], "r1");
        assert_eq!(j["status"], json!({"a": "succeeded", "b": "failed"}));
        assert_eq!(
            j["params"][0],
            json!({"key": "epochs", "a": null, "b": 3, "differs": true})
        );
        assert_eq!(
            j["saved_versions"][0],
            json!({"key": "model", "a": "r1", "b": "r2", "differs": true})
        );
        let t = compare(&a, &b);
        assert!(
            t.lines().any(|l| l.starts_with('*') && l.contains("status")),
            "{t}"
        );
        assert!(
            t.lines()
                .any(|l| l.starts_with('*') && l.contains("params.epochs") && l.contains(" - ")),
            "{t}"
        );
    }
}
