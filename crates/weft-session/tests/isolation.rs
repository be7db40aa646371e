//! Run correctness: no crosstalk between overlapping runs, panics are failed
//! runs, batches and close, run ids, inputs, bounded config cache.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::write;
use proptest::prelude::*;
use weft_core::RunStatus;
use weft_pipeline::FunctionRegistry;
use weft_session::{
    CloseMode, Policy, ProjectCode, RunConfig, ServiceOptions, ServiceSession, SessionError, SessionOptions,
    StoreChoice,
};

/// Three nodes chained through two NON-versioned JSON files; the middle one
/// sleeps so that concurrent runs overlap between the write and the read.
const CHAIN: &str = r#"
__default__:
  nodes:
    - name: first
      func: add_one
      inputs: params:start
      outputs: a
    - name: wait
      func: sleep_ms
      inputs: [params:delay, a]
      outputs: b
    - name: last
      func: add_one
      inputs: b
      outputs: c
panicky:
  nodes:
    - name: ok
      func: identity
      inputs: params:start
      outputs: fine
    - name: explode
      func: explode
      inputs: fine
      outputs: never
"#;

fn chain_project() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write(&root, "weft.toml", "[project]\nname = \"iso\"\n");
    write(&root, "pipelines.yml", CHAIN);
    write(&root, "conf/base/parameters.yml", "start: 0\ndelay: 0\n");
    write(
        &root,
        "conf/base/catalog.yml",
        "a:\n  type: json.JSONDataset\n  filepath: data/a.json\nb:\n  type: json.JSONDataset\n  filepath: data/b.json\n",
    );
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    (dir, root)
}

fn code() -> ProjectCode {
    let mut functions = FunctionRegistry::with_builtins();
    functions
        .register("explode", |x: &i64| -> i64 {
            if *x >= 0 {
                panic!("exploded on {x}");
            }
            *x
        })
        .unwrap();
    ProjectCode {
        functions: Arc::new(functions),
        ..Default::default()
    }
}

fn service(root: &std::path::Path, workers: usize, store: StoreChoice) -> ServiceSession {
    ServiceSession::create(
        root,
        ServiceOptions {
            session: SessionOptions {
                code: code(),
                store,
                ..Default::default()
            },
            max_workers: Some(workers),
            history_limit: None,
        },
    )
    .unwrap()
}

fn point(start: i64, delay: u64) -> RunConfig {
    RunConfig {
        runtime_params: serde_json::json!({"start": start, "delay": delay}),
        ..Default::default()
    }
}

fn c_of(r: &weft_core::RunResult) -> i64 {
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
    r.outputs["c"].to_json().unwrap().as_i64().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Every run of an overlapping batch gives what the same run gives alone.
    #[test]
    fn overlapping_runs_equal_runs_made_alone(starts in proptest::collection::vec(0i64..1000, 2..6)) {
        let (_tmp, root) = chain_project();
        let alone = service(&root, 1, StoreChoice::Disabled);
        let expected: Vec<i64> = starts.iter().map(|s| c_of(&alone.run(point(*s, 0)).unwrap())).collect();
        drop(alone);
        let s = service(&root, 3, StoreChoice::Disabled);
        let results = s.run_all(starts.iter().map(|x| point(*x, 30)).collect(), &Policy::default(), None).unwrap();
        let got: Vec<i64> = results.iter().map(c_of).collect();
        prop_assert_eq!(&got, &expected);
        for (r, start) in results.iter().zip(&starts) {
            // Each run wrote its own copy of the intermediate files.
            let a = &r.scoped_outputs["a"];
            prop_assert!(a.contains(&r.run_id), "{a}");
            let text = std::fs::read_to_string(a).unwrap();
            prop_assert_eq!(text.trim(), (start + 1).to_string());
        }
    }
}

#[test]
fn concurrent_run_calls_on_one_session_do_not_cross() {
    let (_tmp, root) = chain_project();
    let s = Arc::new(service(&root, 4, StoreChoice::Disabled));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || c_of(&s.run(point(i * 100, 40)).unwrap()))
        })
        .collect();
    let got: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, vec![2, 102, 202, 302]);
}

#[test]
fn one_worker_sessions_write_where_the_catalog_says() {
    let (_tmp, root) = chain_project();
    let s = service(&root, 1, StoreChoice::Disabled);
    let r = s.run(point(5, 0)).unwrap();
    assert!(r.scoped_outputs.is_empty());
    assert_eq!(
        std::fs::read_to_string(root.join("data/a.json")).unwrap().trim(),
        "6"
    );
}

#[test]
fn a_panicking_node_fails_its_run_in_run_all_and_close_returns() {
    let (_tmp, root) = chain_project();
    let s = service(&root, 2, StoreChoice::ProjectDefault);
    let panicky = RunConfig {
        pipeline_names: vec!["panicky".into()],
        ..Default::default()
    };
    let results = s
        .run_all(
            vec![panicky.clone(), point(1, 0)],
            &Policy::continue_on_error(),
            None,
        )
        .unwrap();
    assert_eq!(results[0].status, RunStatus::Failed);
    let err = results[0].error.as_ref().unwrap();
    assert_eq!(err.node.as_deref(), Some("explode"));
    assert!(err.causes.join(" ").contains("exploded on 0"), "{err:?}");
    assert_eq!(results[1].status, RunStatus::Succeeded);
    // The node that finished before the panic keeps its timing.
    assert!(results[0].node_timings.iter().any(|t| t.node == "ok"));
    let id = results[0].run_id.clone();
    s.close(CloseMode::Wait);
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run(&id).unwrap().unwrap();
    assert_eq!(rec.status, RunStatus::Failed);
    assert!(rec.node_timings.iter().any(|t| t.node == "ok"));
}

#[test]
fn fail_fast_stops_only_its_own_batch() {
    let (_tmp, root) = chain_project();
    let s = Arc::new(service(&root, 4, StoreChoice::Disabled));
    let other = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || {
            s.run_all(
                (0..3).map(|i| point(i, 150)).collect(),
                &Policy::fail_fast(),
                None,
            )
            .unwrap()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    let failing = RunConfig {
        pipeline_names: vec!["panicky".into()],
        ..Default::default()
    };
    let mine = s
        .run_all(vec![failing, point(7, 0)], &Policy::fail_fast(), None)
        .unwrap();
    assert_eq!(mine[0].status, RunStatus::Failed);
    let theirs = other.join().unwrap();
    assert!(
        theirs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{:?}",
        theirs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

/// Counts runs that reached their pipeline.
struct Started(Arc<AtomicUsize>);

impl weft_runner::Hook for Started {
    fn before_pipeline_run(&self, _: &weft_core::RunContext, _: &weft_pipeline::Pipeline) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn close_stops_a_running_batch_and_records_every_planned_run() {
    let (_tmp, root) = chain_project();
    let started = Arc::new(AtomicUsize::new(0));
    let s = Arc::new(
        ServiceSession::create(
            &root,
            ServiceOptions {
                session: SessionOptions {
                    code: code(),
                    hooks: weft_runner::Hooks::new().with(Arc::new(Started(Arc::clone(&started)))),
                    ..Default::default()
                },
                max_workers: Some(2),
                history_limit: None,
            },
        )
        .unwrap(),
    );
    let batch = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || {
            s.run_all((0..10).map(|i| point(i, 300)).collect(), &Policy::default(), None)
                .unwrap()
        })
    };
    // Close as soon as the batch is running (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while started.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(started.load(Ordering::SeqCst) > 0, "the batch started");
    s.close(CloseMode::Cancel);
    let results = batch.join().unwrap();
    let statuses: Vec<RunStatus> = results.iter().map(|r| r.status).collect();
    assert_eq!(results.len(), 10);
    let count = |st: RunStatus| statuses.iter().filter(|s| **s == st).count();
    assert!(count(RunStatus::Cancelled) >= 1, "{statuses:?}");
    assert!(
        count(RunStatus::Skipped) >= 6,
        "no run starts after close: {statuses:?}"
    );
    assert_eq!(
        count(RunStatus::Skipped) + count(RunStatus::Cancelled) + count(RunStatus::Succeeded),
        10
    );
    assert!(matches!(s.run(point(1, 0)), Err(SessionError::Session(_))));
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    for r in &results {
        let rec = store
            .get_run(&r.run_id)
            .unwrap()
            .expect("every planned run is recorded");
        assert_eq!(rec.status, r.status);
        assert_eq!(
            rec.runtime_params["start"], r.runtime_params["start"],
            "params kept"
        );
    }
}

#[test]
fn an_existing_run_id_is_refused() {
    let (_tmp, root) = chain_project();
    let s = service(&root, 1, StoreChoice::ProjectDefault);
    let first = s
        .run(RunConfig {
            run_id: Some("my-run-1".into()),
            ..point(1, 0)
        })
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    let err = s
        .run(RunConfig {
            run_id: Some("my-run-1".into()),
            ..point(2, 0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let err = s
        .run(RunConfig {
            run_id: Some("../escape".into()),
            ..point(2, 0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("may contain only"), "{err}");
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run("my-run-1").unwrap().unwrap();
    assert_eq!(rec.runtime_params["start"], 1, "the first record is untouched");
}

#[test]
fn config_cache_stays_bounded_over_distinct_params() {
    let (_tmp, root) = chain_project();
    // A catalog that uses runtime params defeats the per-env fast path.
    write(
        &root,
        "conf/base/catalog.yml",
        "a:\n  type: json.JSONDataset\n  filepath: data/a_${runtime_params:start,0}.json\nb:\n  type: json.JSONDataset\n  filepath: data/b.json\n",
    );
    let s = service(&root, 1, StoreChoice::Disabled);
    for i in 0..150 {
        c_of(&s.run(point(i, 0)).unwrap());
    }
    assert!(s.cached_configs() <= 64, "{}", s.cached_configs());
    assert!(root.join("data/a_149.json").exists());
}

#[test]
fn a_missing_free_input_fails_before_any_node_runs() {
    let (_tmp, root) = chain_project();
    let s = service(&root, 1, StoreChoice::ProjectDefault);
    let err = s
        .run(RunConfig {
            from_nodes: vec!["wait".into()],
            ..point(1, 0)
        })
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`a`") && text.contains("wait") && text.contains("a.json"),
        "{text}"
    );
    assert!(!root.join("data/b.json").exists(), "nothing ran");
}

#[test]
fn unknown_env_lists_the_envs() {
    let (_tmp, root) = chain_project();
    std::fs::create_dir_all(root.join("conf/prod")).unwrap();
    let s = service(&root, 1, StoreChoice::Disabled);
    let err = s
        .run(RunConfig {
            env: Some("staging".into()),
            ..point(1, 0)
        })
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("unknown env `staging`") && text.contains("envs: base, local, prod"),
        "{text}"
    );
}

#[test]
fn metrics_hold_numeric_outputs() {
    let (_tmp, root) = chain_project();
    let s = service(&root, 1, StoreChoice::ProjectDefault);
    let r = s.run(point(3, 0)).unwrap();
    assert_eq!(r.metrics["c"], 5.0);
    assert_eq!(r.metrics.len(), 1, "{:?}", r.metrics);
    s.close(CloseMode::Wait);
    let store = weft_store::BlockingStore::open_project_default(&root).unwrap();
    let rec = store.get_run(&r.run_id).unwrap().unwrap();
    assert_eq!(rec.metrics["c"], 5.0);
}

#[test]
fn reading_another_runs_unpinned_version_warns_and_a_pin_silences_it() {
    let (_tmp, root) = chain_project();
    write(
        &root,
        "pipelines.yml",
        "produce:\n  nodes:\n    - {name: p, func: add_one, inputs: params:start, outputs: shared}\nconsume:\n  nodes:\n    - {name: c, func: add_one, inputs: shared, outputs: next}\n",
    );
    write(
        &root,
        "conf/base/catalog.yml",
        "shared:\n  type: json.JSONDataset\n  filepath: data/shared.json\n  versioned: true\n",
    );
    let s = service(&root, 1, StoreChoice::Disabled);
    let producer = s
        .run(RunConfig {
            pipeline_names: vec!["produce".into()],
            ..point(1, 0)
        })
        .unwrap();
    let consumer = s
        .run(RunConfig {
            pipeline_names: vec!["consume".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(consumer.outputs["next"].to_json().unwrap(), 3);
    let warning = consumer.warnings.join("\n");
    assert!(
        warning.contains(&producer.run_id)
            && warning.contains(&consumer.run_id)
            && warning.contains("`shared`"),
        "{warning}"
    );
    let pinned = s
        .run(RunConfig {
            pipeline_names: vec!["consume".into()],
            load_versions: producer.saved_versions.clone(),
            ..Default::default()
        })
        .unwrap();
    assert!(pinned.warnings.is_empty(), "{:?}", pinned.warnings);
}

#[test]
fn a_misspelled_input_suggests_close_names() {
    let (_tmp, root) = chain_project();
    write(
        &root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - {name: use_b, func: add_one, inputs: bb, outputs: out}\n    - {name: make_b, func: add_one, inputs: params:start, outputs: b_}\n",
    );
    let s = service(&root, 1, StoreChoice::Disabled);
    let err = s.run(RunConfig::default()).unwrap_err().to_string();
    assert!(
        err.contains("`bb` needed by node `use_b`") && err.contains("did you mean"),
        "{err}"
    );
}

#[test]
fn a_batch_mixing_transcodings_of_one_dataset_warns() {
    let (_tmp, root) = chain_project();
    write(
        &root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - {name: w0, func: add_one, inputs: params:start, outputs: other}\nas_json:\n  nodes:\n    - {name: w1, func: add_one, inputs: params:start, outputs: t@json}\nas_yaml:\n  nodes:\n    - {name: w2, func: add_one, inputs: params:start, outputs: t@yaml}\n",
    );
    write(
        &root,
        "conf/base/catalog.yml",
        "t@json:\n  type: json.JSONDataset\n  filepath: data/t.json\n  versioned: true\nt@yaml:\n  type: yaml.YAMLDataset\n  filepath: data/t.yml\n  versioned: true\n",
    );
    let s = service(&root, 1, StoreChoice::Disabled);
    let pick = |p: &str| RunConfig {
        pipeline_names: vec![p.into()],
        ..Default::default()
    };
    let results = s
        .run_all(vec![pick("as_json"), pick("as_yaml")], &Policy::default(), None)
        .unwrap();
    for r in &results {
        assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.error);
        assert!(
            r.warnings.iter().any(|w| w.contains("t@json, t@yaml")),
            "{:?}",
            r.warnings
        );
    }
    let alone = s
        .run_all(vec![pick("as_json")], &Policy::default(), None)
        .unwrap();
    assert!(alone[0].warnings.is_empty(), "{:?}", alone[0].warnings);
}

#[test]
fn a_custom_runner_registered_by_name_runs_sessions() {
    let (_tmp, root) = chain_project();
    let used = Arc::new(AtomicUsize::new(0));
    let mut runners = weft_runner::RunnerRegistry::with_builtins();
    let counter = Arc::clone(&used);
    runners
        .register("counting", move |_workers| {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::new(weft_runner::SequentialRunner) as Box<dyn weft_runner::Runner>
        })
        .unwrap();
    let s = ServiceSession::create(
        &root,
        ServiceOptions {
            session: SessionOptions {
                code: ProjectCode {
                    runners: Arc::new(runners),
                    ..code()
                },
                store: StoreChoice::Disabled,
                ..Default::default()
            },
            max_workers: Some(1),
            history_limit: None,
        },
    )
    .unwrap();
    let r = s
        .run(RunConfig {
            runner: Some("counting".into()),
            ..point(1, 0)
        })
        .unwrap();
    assert_eq!(c_of(&r), 3);
    assert_eq!(used.load(Ordering::SeqCst), 1);
    let err = s
        .run(RunConfig {
            runner: Some("warp".into()),
            ..point(1, 0)
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("counting"),
        "known runners listed: {err}"
    );
}

/// A custom dataset type with no file path: the isolation rule cannot move it.
struct Counter(std::sync::Mutex<Option<weft_pipeline::Data>>);

impl weft_catalog::Dataset for Counter {
    fn load(
        &self,
        _: Option<&weft_pipeline::DataType>,
    ) -> Result<weft_pipeline::Data, weft_catalog::CatalogError> {
        Ok(self.0.lock().unwrap().clone().expect("saved first"))
    }
    fn save(&self, data: &weft_pipeline::Data) -> Result<(), weft_catalog::CatalogError> {
        *self.0.lock().unwrap() = Some(data.clone());
        Ok(())
    }
    fn exists(&self) -> Result<bool, weft_catalog::CatalogError> {
        Ok(self.0.lock().unwrap().is_some())
    }
    fn describe(&self) -> weft_catalog::DatasetInfo {
        weft_catalog::DatasetInfo {
            name: "b".into(),
            type_name: "test.Counter".into(),
            filepath: None,
            versioned: false,
            pattern: None,
        }
    }
    fn load_type(&self) -> weft_catalog::LoadType {
        weft_catalog::LoadType::Any
    }
}

#[test]
fn overlapping_runs_refuse_a_shared_dataset_they_cannot_scope() {
    let (_tmp, root) = chain_project();
    write(
        &root,
        "conf/base/catalog.yml",
        "a:\n  type: json.JSONDataset\n  filepath: data/a.json\nb:\n  type: test.Counter\n",
    );
    let mut types = weft_catalog::DatasetTypeRegistry::with_builtins();
    types
        .register(
            "test.Counter",
            Arc::new(|_spec: &weft_catalog::DatasetSpec<'_>| {
                Ok(Arc::new(Counter(std::sync::Mutex::new(None))) as Arc<dyn weft_catalog::Dataset>)
            }),
        )
        .unwrap();
    let make = |workers| {
        ServiceSession::create(
            &root,
            ServiceOptions {
                session: SessionOptions {
                    code: ProjectCode {
                        dataset_types: Arc::new(types.clone()),
                        ..code()
                    },
                    store: StoreChoice::Disabled,
                    ..Default::default()
                },
                max_workers: Some(workers),
                history_limit: None,
            },
        )
        .unwrap()
    };
    let err = make(2)
        .run_all(vec![point(1, 0), point(2, 0)], &Policy::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dataset `b` (test.Counter)") && err.contains("max_workers = 1"),
        "{err}"
    );
    // One worker: runs never overlap, so the dataset may be shared.
    let ok = make(1).run(point(1, 0)).unwrap();
    assert_eq!(c_of(&ok), 3);
}

/// The prepared run's spec is what the service queues and remote workers
/// receive: it survives JSON and prepares into the same run.
#[test]
fn a_run_spec_round_trips_through_json_and_prepares_the_same_run() {
    let (_tmp, root) = chain_project();
    let s = service(&root, 2, StoreChoice::Disabled);
    let prepared = s
        .prepare(&RunConfig {
            to_nodes: vec!["wait".into()],
            ..point(7, 0)
        })
        .unwrap();
    let spec = prepared.spec().clone();
    let json = serde_json::to_string(&spec).unwrap();
    let back: weft_session::RunSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    assert_eq!(back.config.runtime_params["start"], 7);
    assert_eq!(back.config.env.as_deref(), Some("local"));
    assert_eq!(back.config.runner.as_deref(), Some("sequential"));
    assert!(matches!(
        back.isolation,
        weft_session::Isolation::RunScoped { .. }
    ));
    let again = s.prepare_spec(&back).unwrap();
    assert_eq!(again.spec(), &spec);
    let names = |p: &weft_session::PreparedRun| -> Vec<String> {
        p.pipeline()
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    };
    assert_eq!(names(&again), names(&prepared));
    assert_eq!(names(&again), ["first", "wait"]);
    let r = s.run_prepared(again).unwrap();
    assert_eq!(r.run_id, spec.run_id());
    assert_eq!(r.outputs["b"].to_json().unwrap(), 8);
}
