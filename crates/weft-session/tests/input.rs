//! Runs that wait for input: `await_input` nodes in `pipelines.yml`, a
//! `Session` that pauses and resumes under the same run id, answers checked
//! against the node's schema, and what the store records.

mod common;

use std::collections::BTreeMap;

use common::write;
use serde_json::json;
use weft_pipeline::CancelToken;
use weft_runner::RunStatus;
use weft_session::{
    RunConfig, ServiceOptions, ServiceSession, Session, SessionError, SessionOptions, StoreChoice,
};

const PIPELINES: &str = r#"
__default__:
  nodes:
    - name: prepare
      func: add_one
      inputs: params:start
      outputs: prepared
    - name: approve
      await_input:
        prompt: How much to add?
        schema: {type: object, properties: {amount: {type: integer, minimum: 0}}, required: [amount]}
      inputs: prepared
      outputs: approval
    - name: finish
      func: identity
      inputs: [prepared, approval]
      outputs: [result, answer]
"#;

fn project() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"asks\"\n");
    write(&root, "pipelines.yml", PIPELINES);
    write(&root, "conf/base/parameters.yml", "start: 1\n");
    write(
        &root,
        "conf/base/catalog.yml",
        "result:\n  type: json.JSONDataset\n  filepath: data/result.json\n  versioned: true\n",
    );
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    (dir, root)
}

fn answers(value: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    BTreeMap::from([("approve".to_string(), value)])
}

#[test]
fn a_session_pauses_at_await_input_and_resumes_under_the_same_run_id() {
    let (_tmp, root) = project();
    let mut s = Session::create(&root, SessionOptions::default()).unwrap();
    let err = s.run(RunConfig::default()).unwrap_err();
    let SessionError::InputRequired(paused) = &err else {
        panic!("expected a paused run, got {err}")
    };
    assert_eq!(paused.status, RunStatus::InputRequired);
    assert!(paused.error.is_none(), "a paused run has not failed");
    let pending = paused.pending_input.as_ref().unwrap();
    assert_eq!(pending.node, "approve");
    assert_eq!(pending.prompt, "How much to add?");
    assert_eq!(pending.schema["required"], json!(["amount"]));
    assert!(
        err.to_string()
            .contains("waits for input at node `approve`: How much to add?")
    );
    assert_eq!(s.pending_input().unwrap().node, "approve");
    let run_id = paused.run_id.clone();
    // The node before the question ran; the one after it did not.
    assert!(paused.node_timings.iter().any(|t| t.node == "prepare"));
    assert!(!paused.node_timings.iter().any(|t| t.node == "finish"));

    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run(&run_id).unwrap().unwrap();
    assert_eq!(rec.status, RunStatus::InputRequired);
    assert_eq!(rec.pending_input.as_ref().unwrap().node, "approve");

    // A wrong answer is refused with the failing path; the run stays paused.
    let err = s
        .resume(answers(json!({"amount": -3})), &CancelToken::new())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("node `approve`") && text.contains("at /amount"),
        "{text}"
    );
    assert!(s.pending_input().is_some());

    let done = s
        .resume(answers(json!({"amount": 5})), &CancelToken::new())
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.run_id, run_id);
    assert_eq!(done.outputs["answer"].to_json().unwrap(), json!({"amount": 5}));
    assert!(s.pending_input().is_none());
    // The versioned output was saved once, under the run id.
    assert!(
        root.join("data/result.json")
            .join(&run_id)
            .join("result.json")
            .is_file()
    );
    let rec = store.get_run(&run_id).unwrap().unwrap();
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert!(rec.pending_input.is_none());
}

#[test]
fn a_paused_run_nobody_answers_fails_when_its_session_closes() {
    let (_tmp, root) = project();
    let mut s = Session::create(&root, SessionOptions::default()).unwrap();
    let run_id = match s.run(RunConfig::default()) {
        Err(SessionError::InputRequired(r)) => r.run_id,
        other => panic!("expected a paused run, got {other:?}"),
    };
    s.close();
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run(&run_id).unwrap().unwrap();
    assert_eq!(rec.status, RunStatus::Failed);
    let err = rec.error.unwrap();
    assert_eq!(err.kind, "input_required");
    assert!(
        err.message.contains("waiting for input at node `approve`"),
        "{}",
        err.message
    );
}

#[test]
fn answers_in_the_run_config_skip_the_question() {
    let (_tmp, root) = project();
    let s = ServiceSession::create(
        &root,
        ServiceOptions {
            session: SessionOptions {
                store: StoreChoice::Disabled,
                ..Default::default()
            },
            max_workers: Some(2),
            history_limit: None,
        },
    )
    .unwrap();
    let asked = s.run(RunConfig::default()).unwrap();
    assert_eq!(asked.status, RunStatus::InputRequired);
    assert_eq!(asked.pending_input.unwrap().node, "approve");
    let answered = s
        .run(RunConfig {
            answers: answers(json!({"amount": 2})),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(answered.status, RunStatus::Succeeded, "{:?}", answered.error);
    assert_eq!(
        answered.outputs["answer"].to_json().unwrap(),
        json!({"amount": 2})
    );
}

#[test]
fn bad_answers_are_all_reported_before_anything_runs() {
    let (_tmp, root) = project();
    let s = Session::create(
        &root,
        SessionOptions {
            store: StoreChoice::Disabled,
            ..Default::default()
        },
    )
    .unwrap();
    let cfg = RunConfig {
        answers: BTreeMap::from([
            ("approve".to_string(), json!({"amount": "many"})),
            ("prepare".to_string(), json!(1)),
            ("nope".to_string(), json!(1)),
        ]),
        ..Default::default()
    };
    let err = s
        .prepare(&cfg)
        .err()
        .expect("bad answers are refused")
        .to_string();
    assert!(err.contains("`nope` is not a node of the pipeline"), "{err}");
    assert!(err.contains("node `prepare` does not wait for input"), "{err}");
    assert!(
        err.contains("node `approve`: the answer does not match its schema: at /amount"),
        "{err}"
    );
}

#[test]
fn malformed_await_input_blocks_are_errors_naming_the_node() {
    let (_tmp, root) = project();
    write(
        &root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - name: a\n      await_input: {schema: {type: 7}, colour: red}\n      outputs: [x, y]\n    - name: b\n      func: add_one\n      await_input: {prompt: hi}\n      inputs: params:start\n      outputs: z\n",
    );
    let err = Session::create(&root, SessionOptions::default())
        .err()
        .expect("the pipelines file is invalid")
        .to_string();
    for expected in [
        "node `a`: `await_input`: unknown key `colour`",
        "node `a`: `await_input` needs a `prompt`",
        "node `a`: `await_input.schema`: invalid JSON Schema",
        "node `b`: `await_input` and `func` exclude each other",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn a_paused_run_on_object_storage_saves_its_versions_once_when_resumed() {
    let (_tmp, root) = project();
    write(
        &root,
        "conf/base/catalog.yml",
        "prepared:\n  type: json.JSONDataset\n  filepath: memory://bucket/prepared.json\n  versioned: true\n",
    );
    let mut s = Session::create(&root, SessionOptions::default()).unwrap();
    let run_id = match s.run(RunConfig::default()) {
        Err(SessionError::InputRequired(r)) => {
            // The node before the question saved its version; pausing removed it.
            assert!(r.saved_versions.is_empty(), "{:?}", r.saved_versions);
            r.run_id
        }
        other => panic!("expected a paused run, got {other:?}"),
    };
    let done = s
        .resume(answers(json!({"amount": 1})), &CancelToken::new())
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.saved_versions["prepared"], run_id);
}
