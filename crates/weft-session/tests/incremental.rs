//! `partitions.IncrementalDataset` and node `confirms`, end to end: a real
//! folder of CSV and JSON partitions, runs through `Session` and
//! `ServiceSession`, the checkpoint file on disk.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};

use common::write;
use serde_json::{Value, json};
use weft_catalog::Partitions;
use weft_pipeline::FunctionRegistry;
use weft_runner::RunStatus;
use weft_session::{
    Policy, ProjectCode, RunConfig, ServiceOptions, ServiceSession, Session, SessionError, SessionOptions,
    StoreChoice,
};

/// Every loaded partition: id → its rows (as JSON).
fn rows_by_id(parts: &Partitions) -> Value {
    let mut out = serde_json::Map::new();
    for id in parts.ids() {
        let data = parts.load(id, None).expect("partition loads");
        out.insert(id.to_string(), data.to_json().expect("rows are JSON"));
    }
    Value::Object(out)
}

fn functions(barrier: Option<Arc<Barrier>>) -> FunctionRegistry {
    let mut f = FunctionRegistry::with_builtins();
    f.register("rows_by_id", rows_by_id).unwrap();
    // Both runs of the race hold here after loading, so both loaded from
    // the same checkpoint before either confirms.
    f.register("rows_after_barrier", move |parts: &Partitions| {
        if let Some(b) = &barrier {
            b.wait();
        }
        rows_by_id(parts)
    })
    .unwrap();
    f
}

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: process
      func: rows_by_id
      inputs: events
      outputs: seen
      confirms: events
broken:
  nodes:
    - name: process
      func: rows_by_id
      inputs: events
      outputs: seen
      confirms: [events]
    - name: boom
      func: fail
      inputs: seen
      outputs: never
race:
  nodes:
    - name: process
      func: rows_after_barrier
      inputs: events
      outputs: seen
      confirms: events
wrong:
  nodes:
    - name: process
      func: rows_by_id
      inputs: events
      outputs: seen
      confirms: [events, plain]
"#;

fn project(catalog: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"incremental\"\n");
    write(&root, "pipelines.yml", PIPELINES);
    write(&root, "conf/base/parameters.yml", "{}\n");
    write(&root, "conf/base/catalog.yml", catalog);
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    (dir, root)
}

const CSV_CATALOG: &str = r#"
events:
  type: partitions.IncrementalDataset
  path: data/events
  dataset: pandas.CSVDataset
  filename_suffix: .csv
plain:
  type: json.JSONDataset
  filepath: data/plain.json
"#;

fn csv(root: &Path, id: &str, n: i64) {
    write(
        root,
        &format!("data/events/{id}.csv"),
        &format!("day,count\n{id},{n}\n"),
    );
}

fn options(barrier: Option<Arc<Barrier>>) -> SessionOptions {
    SessionOptions {
        code: ProjectCode {
            functions: Arc::new(functions(barrier)),
            ..Default::default()
        },
        store: StoreChoice::Disabled,
        ..Default::default()
    }
}

fn pipeline(name: &str) -> RunConfig {
    RunConfig {
        pipeline_names: vec![name.into()],
        ..Default::default()
    }
}

/// One run in a session of its own (a `Session` runs once).
fn run_once(root: &Path, name: &str) -> Result<weft_runner::RunResult, SessionError> {
    Session::create(root, options(None))?.run(pipeline(name))
}

fn seen_ids(result: &weft_runner::RunResult) -> Vec<String> {
    let seen = result.outputs["seen"].to_json().unwrap();
    seen.as_object().unwrap().keys().cloned().collect()
}

fn checkpoint(root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join("data/events/CHECKPOINT")).ok()
}

#[test]
fn a_run_loads_what_is_new_and_confirms_only_after_it_succeeds() {
    let (_tmp, root) = project(CSV_CATALOG);
    csv(&root, "2024-01-01", 3);
    csv(&root, "2024-01-02", 5);
    // First run: every partition, rows decoded from CSV; then the checkpoint.
    let first = run_once(&root, "__default__").unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(
        first.outputs["seen"].to_json().unwrap(),
        json!({"2024-01-01": [{"day": "2024-01-01", "count": 3}], "2024-01-02": [{"day": "2024-01-02", "count": 5}]})
    );
    assert_eq!(checkpoint(&root).as_deref(), Some("2024-01-02"));
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);

    // Second run: only the new partition.
    csv(&root, "2024-01-03", 7);
    let second = run_once(&root, "__default__").unwrap();
    assert_eq!(seen_ids(&second), ["2024-01-03"]);
    assert_eq!(checkpoint(&root).as_deref(), Some("2024-01-03"));

    // Nothing new: an empty map, and the checkpoint stays.
    let third = run_once(&root, "__default__").unwrap();
    assert!(seen_ids(&third).is_empty());
    assert_eq!(checkpoint(&root).as_deref(), Some("2024-01-03"));

    // A run that loads a new partition and then fails moves nothing.
    csv(&root, "2024-01-04", 9);
    match run_once(&root, "broken") {
        Err(SessionError::RunFailed(result)) => assert_eq!(result.status, RunStatus::Failed),
        other => panic!("expected a failed run, got {other:?}"),
    }
    assert_eq!(checkpoint(&root).as_deref(), Some("2024-01-03"));
    // ... so the next run still sees that partition.
    let fourth = run_once(&root, "__default__").unwrap();
    assert_eq!(seen_ids(&fourth), ["2024-01-04"]);
    assert_eq!(checkpoint(&root).as_deref(), Some("2024-01-04"));
}

#[test]
fn json_partitions_with_force_checkpoint_and_a_checkpoint_elsewhere() {
    let catalog = r#"
events:
  type: partitions.IncrementalDataset
  path: data/events
  dataset: {type: json.JSONDataset}
  filename_suffix: .json
  checkpoint:
    filepath: state/events.checkpoint
    force_checkpoint: b
    comparison_func: operator.gt
"#;
    let (_tmp, root) = project(catalog);
    for id in ["a", "b", "c"] {
        write(
            &root,
            &format!("data/events/{id}.json"),
            &format!("{{\"id\": \"{id}\"}}"),
        );
    }
    let r = run_once(&root, "__default__").unwrap();
    assert_eq!(r.outputs["seen"].to_json().unwrap(), json!({"c": {"id": "c"}}));
    assert_eq!(
        std::fs::read_to_string(root.join("state/events.checkpoint")).unwrap(),
        "c"
    );
    assert!(!root.join("data/events/CHECKPOINT").exists());
}

#[test]
fn two_concurrent_runs_move_the_checkpoint_once() {
    let (_tmp, root) = project(CSV_CATALOG);
    csv(&root, "p1", 1);
    csv(&root, "p2", 2);
    let barrier = Arc::new(Barrier::new(2));
    let s = ServiceSession::create(
        &root,
        ServiceOptions {
            session: options(Some(Arc::clone(&barrier))),
            max_workers: Some(2),
            history_limit: None,
        },
    )
    .unwrap();
    let results = s
        .run_all(
            vec![pipeline("race"), pipeline("race")],
            &Policy::continue_on_error(),
            None,
        )
        .unwrap();
    assert!(
        results.iter().all(|r| r.status == RunStatus::Succeeded),
        "{results:?}"
    );
    // Both loaded both partitions from "no checkpoint"; one confirmed.
    for r in &results {
        assert_eq!(seen_ids(r), ["p1", "p2"]);
    }
    let refused: Vec<&String> = results
        .iter()
        .flat_map(|r| &r.warnings)
        .filter(|w| w.contains("not confirmed"))
        .collect();
    assert_eq!(refused.len(), 1, "exactly one confirm is refused: {results:?}");
    assert!(
        refused[0].contains("`events`") && refused[0].contains("another run confirmed it first"),
        "{}",
        refused[0]
    );
    assert_eq!(checkpoint(&root).as_deref(), Some("p2"));
}

#[test]
fn racing_threads_on_one_checkpoint_move_it_once_per_value() {
    // Many runs in threads, each a fresh session: whatever the timing, the
    // checkpoint is written by at most one run per value it held, and
    // ends at the newest partition.
    let (_tmp, root) = project(CSV_CATALOG);
    for i in 0..6 {
        csv(&root, &format!("q{i}"), i);
    }
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let outcomes: Vec<(Vec<String>, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let root = root.clone();
                scope.spawn(move || {
                    let mut s = Session::create(&root, options(Some(barrier))).unwrap();
                    let r = s.run(pipeline("race")).unwrap();
                    (seen_ids(&r), r.warnings)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let confirmed = outcomes
        .iter()
        .filter(|(_, w)| !w.iter().any(|w| w.contains("not confirmed")))
        .count();
    assert_eq!(
        confirmed, 1,
        "every run loaded from no checkpoint; one wins: {outcomes:?}"
    );
    assert!(outcomes.iter().all(|(ids, _)| ids.len() == 6));
    assert_eq!(checkpoint(&root).as_deref(), Some("q5"));
}

#[test]
fn confirming_a_dataset_that_is_not_incremental_is_refused_when_prepared() {
    let (_tmp, root) = project(CSV_CATALOG);
    csv(&root, "p1", 1);
    let err = run_once(&root, "wrong").unwrap_err().to_string();
    assert!(
        err.contains("node `process` confirms dataset `plain`, which is a json.JSONDataset"),
        "{err}"
    );
    assert_eq!(checkpoint(&root), None, "nothing ran");
}

#[test]
fn bad_arguments_name_the_dataset_and_the_field() {
    let cases = [
        (
            "  checkpoint: {comparison_func: operator.lt}\n",
            "`checkpoint.comparison_func`",
        ),
        (
            "  checkpoint: {force_checkpoint: [1]}\n",
            "`checkpoint.force_checkpoint`",
        ),
        ("  checkpoint: {colour: red}\n", "`checkpoint.colour`"),
        ("  load_args: {maxdepth: 2}\n", "`load_args`: `maxdepth`"),
        ("  versioned: true\n", "`versioned`"),
    ];
    for (extra, field) in cases {
        let catalog = format!(
            "events:\n  type: partitions.IncrementalDataset\n  path: data/events\n  dataset: json.JSONDataset\n{extra}"
        );
        let (_tmp, root) = project(&catalog);
        std::fs::create_dir_all(root.join("data/events")).unwrap();
        let err = match Session::create(&root, options(None)) {
            Err(e) => e.to_string(),
            Ok(mut s) => s.run(pipeline("__default__")).unwrap_err().to_string(),
        };
        assert!(err.contains("`events`") && err.contains(field), "{field}: {err}");
    }
    let refused = |catalog: &str| {
        let (_tmp, root) = project(catalog);
        std::fs::create_dir_all(root.join("data/events")).unwrap();
        match Session::create(&root, options(None)) {
            Err(e) => e.to_string(),
            Ok(mut s) => s.run(pipeline("__default__")).unwrap_err().to_string(),
        }
    };
    let err = refused(
        "events:\n  type: partitions.IncrementalDataset\n  path: s3://bucket/events\n  dataset: json.JSONDataset\n",
    );
    assert!(
        err.contains("`events`") && err.contains("`path`") && err.contains("local folder"),
        "{err}"
    );
    // A plain partitioned dataset has no checkpoint: saying so, not ignoring it.
    let err = refused(
        "events:\n  type: partitions.PartitionedDataset\n  path: data/events\n  dataset: json.JSONDataset\n  checkpoint: {force_checkpoint: a}\n",
    );
    assert!(
        err.contains("`events`") && err.contains("`checkpoint`: only `partitions.IncrementalDataset`"),
        "{err}"
    );
}
