//! `Session`: one run per session, contexts, YAML pipelines, config envs and
//! the run store, on real project files.

mod common;

use common::{project, write};
use weft_runner::RunStatus;
use weft_session::{RunConfig, Session, SessionError, SessionOptions, StoreChoice};

fn opts() -> SessionOptions {
    SessionOptions::default()
}

#[test]
fn runs_once_and_refuses_a_second_run() {
    let (_tmp, root) = project();
    let mut s = Session::create(&root, opts()).unwrap();
    let result = s.run(RunConfig::default()).unwrap();
    assert_eq!(result.status, RunStatus::Succeeded);
    assert_eq!(result.outputs["result"].to_json().unwrap(), serde_json::json!(12));
    let err = s.run(RunConfig::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SessionError::Session(_)));
    assert!(
        msg.contains("already completed a run") && msg.contains("exactly once"),
        "{msg}"
    );
}

#[test]
fn failed_run_reports_node_and_may_be_retried() {
    let (_tmp, root) = project();
    let mut s = Session::create(&root, opts()).unwrap();
    let err = s
        .run(RunConfig {
            pipeline_names: vec!["broken".into()],
            ..Default::default()
        })
        .unwrap_err();
    let SessionError::RunFailed(result) = &err else {
        panic!("{err}")
    };
    assert_eq!(result.status, RunStatus::Failed);
    let failure = result.error.as_ref().unwrap();
    assert_eq!(failure.node.as_deref(), Some("boom"));
    assert!(
        failure.message.contains("--from-nodes \"boom\""),
        "{}",
        failure.message
    );
    // as in Kedro, a failed run may be retried in the same session
    let ok = s.run(RunConfig::default()).unwrap();
    assert_eq!(ok.status, RunStatus::Succeeded);
}

#[test]
fn versioned_outputs_save_under_the_run_id_and_chain_through_load_versions() {
    let (_tmp, root) = project();
    let mut s = Session::create(&root, opts()).unwrap();
    let r1 = s.run(RunConfig::default()).unwrap();
    let version = &r1.saved_versions["result"];
    assert_eq!(version, &r1.run_id);
    let file = root.join("data/result.json").join(version).join("result.json");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "12");
    // A second session with other params saves another version; both stay.
    let mut s2 = Session::create(
        &root,
        SessionOptions {
            runtime_params: serde_json::json!({"start": 100}),
            ..opts()
        },
    )
    .unwrap();
    let r2 = s2.run(RunConfig::default()).unwrap();
    assert_ne!(r2.saved_versions["result"], r1.saved_versions["result"]);
    assert_eq!(r2.outputs["result"].to_json().unwrap(), serde_json::json!(111));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "12");
}

#[test]
fn env_overrides_base_and_runtime_params_override_both() {
    let (_tmp, root) = project();
    write(&root, "conf/prod/parameters.yml", "offset: 1000\n");
    let mut s = Session::create(
        &root,
        SessionOptions {
            env: Some("prod".into()),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(s.env(), "prod");
    let r = s.run(RunConfig::default()).unwrap();
    assert_eq!(r.outputs["result"].to_json().unwrap(), serde_json::json!(1002));
    let mut s = Session::create(
        &root,
        SessionOptions {
            env: Some("prod".into()),
            runtime_params: serde_json::json!({"offset": 5}),
            ..opts()
        },
    )
    .unwrap();
    let r = s.run(RunConfig::default()).unwrap();
    assert_eq!(r.outputs["result"].to_json().unwrap(), serde_json::json!(7));
}

#[test]
fn filters_select_nodes_and_unknown_pipelines_are_named() {
    let (_tmp, root) = project();
    let s = Session::create(&root, opts()).unwrap();
    let p = s
        .select_pipeline(&RunConfig {
            to_nodes: vec!["total".into()],
            ..Default::default()
        })
        .unwrap();
    let names: Vec<&str> = p.nodes().iter().map(|n| n.name()).collect();
    assert_eq!(names, ["inc", "total"]);
    let err = s
        .select_pipeline(&RunConfig {
            pipeline_names: vec!["nope".into()],
            ..Default::default()
        })
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unknown pipeline `nope`") && msg.contains("broken"),
        "{msg}"
    );
}

#[test]
fn yaml_errors_name_file_pipeline_node_and_line_all_at_once() {
    let (_tmp, root) = project();
    write(
        &root,
        "pipelines.yml",
        "good:\n  nodes:\n    - name: a\n      func: add_one\n      inputs: x\n      outputs: y\nbad:\n  nodez: []\n  nodes:\n    - name: n1\n      func: add_on\n      inputs: x\n      outputs: z\n    - name: n2\n      func: sum\n      inputs: {a: 1}\n      outputs: w\n",
    );
    let err = Session::create(&root, opts()).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("pipelines.yml"), "{msg}");
    assert!(msg.contains("pipeline `bad`: unknown key `nodez`"), "{msg}");
    assert!(
        msg.contains(":10: pipeline `bad`, node `n1`: unknown function `add_on` (did you mean `add_one`?)"),
        "{msg}"
    );
    assert!(
        msg.contains("node `n2`: `inputs.a` must be a dataset name"),
        "{msg}"
    );
}

#[test]
fn yaml_namespaces_and_included_pipelines() {
    let (_tmp, root) = project();
    write(
        &root,
        "pipelines.yml",
        "base:\n  nodes:\n    - name: inc\n      func: add_one\n      inputs: model_input\n      outputs: out\nactive:\n  pipelines: [base]\n  namespace: active\n  inputs: {model_input: active_input}\n",
    );
    let s = Session::create(&root, opts()).unwrap();
    let p = &s.pipelines()["active"];
    let n = &p.nodes()[0];
    assert_eq!(n.name(), "active.inc");
    assert_eq!(n.inputs(), ["active_input"]);
    assert_eq!(n.outputs(), ["active.out"]);
    // no __default__ declared: it is the union of every pipeline
    assert_eq!(s.pipelines()["__default__"].len(), 2);
}

#[test]
fn runs_are_recorded_in_the_project_store() {
    let (_tmp, root) = project();
    let mut s = Session::create(
        &root,
        SessionOptions {
            store: StoreChoice::ProjectDefault,
            provenance: weft_session::Provenance {
                command: vec!["weft".into(), "run".into()],
                username: Some("ada".into()),
                ..Default::default()
            },
            ..opts()
        },
    )
    .unwrap();
    let session_id = s.id().to_string();
    let r = s.run(RunConfig::default()).unwrap();
    s.close();
    assert!(root.join(".weft/weft.db").exists());
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run(&r.run_id).unwrap().unwrap();
    assert_eq!(rec.status, weft_store::RunStatus::Succeeded);
    assert_eq!(rec.session_id, session_id);
    assert_eq!(rec.saved_versions["result"], r.run_id);
    assert_eq!(rec.node_timings.len(), 3);
    let sess = store.get_session(&session_id).unwrap().unwrap();
    assert!(sess.closed_at.is_some());
    assert_eq!(sess.command, ["weft", "run"]);
    assert_eq!(sess.username.as_deref(), Some("ada"));
}

#[test]
fn missing_project_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Session::create(dir.path(), opts()).err().unwrap();
    assert!(err.to_string().contains("no weft.toml here"), "{err}");
}

#[test]
fn weft_toml_selects_soft_merge_per_section() {
    let (_tmp, root) = project();
    write(
        &root,
        "conf/base/parameters.yml",
        "start: 1\noffset: 10\ndelay: 0\nmodel: {lr: 0.1, depth: 3}\n",
    );
    write(&root, "conf/local/parameters.yml", "model: {lr: 0.5}\n");
    let s = Session::create(&root, opts()).unwrap();
    let ctx = s.load_context(&RunConfig::default()).unwrap();
    assert_eq!(
        ctx.parameters["model"],
        serde_json::json!({"lr": 0.5}),
        "destructive by default"
    );
    write(
        &root,
        "weft.toml",
        "[project]\nname = \"fixture\"\n[config]\nmerge_strategy = {parameters = \"soft\"}\n",
    );
    let s = Session::create(&root, opts()).unwrap();
    let ctx = s.load_context(&RunConfig::default()).unwrap();
    assert_eq!(
        ctx.parameters["model"],
        serde_json::json!({"lr": 0.5, "depth": 3})
    );
    write(
        &root,
        "weft.toml",
        "[project]\nname = \"fixture\"\n[config]\nmerge_strategy = {parameters = \"gentle\"}\n",
    );
    let s = Session::create(&root, opts()).unwrap();
    let err = s.load_context(&RunConfig::default()).err().unwrap().to_string();
    assert!(
        err.contains("merge_strategy.parameters") && err.contains("gentle"),
        "{err}"
    );
}
