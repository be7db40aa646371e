//! Thread-runner workers log inside the caller's run span, through the
//! caller's subscriber (its own test binary: it installs a subscriber).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_catalog::Catalog;
use weft_pipeline::{CancelToken, Data, Pipeline, node};
use weft_runner::{Hooks, RunContext, RunJob, ThreadRunner, TypeCheck, run_pipeline};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(x: &i64) -> i64 {
    tracing::info!(value = *x, "inside the node");
    std::thread::sleep(Duration::from_millis(20));
    *x
}

#[test]
fn worker_events_carry_the_run_id() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_thread_names(true)
        .with_writer(move || writer.clone())
        .finish();
    // A scoped (thread-local) subscriber: workers must inherit it too.
    tracing::subscriber::with_default(subscriber, || {
        let mut nodes = vec![node(|x: &i64| *x, "src", "root").name("root").build().unwrap()];
        for i in 0..4 {
            nodes.push(
                node(logged, "root", format!("m{i}"))
                    .name(format!("m{i}"))
                    .build()
                    .unwrap(),
            );
        }
        let sink = |a: &i64, b: &i64, c: &i64, d: &i64| a + b + c + d;
        nodes.push(
            node(sink, ["m0", "m1", "m2", "m3"], "total")
                .name("sink")
                .build()
                .unwrap(),
        );
        let pipeline = Pipeline::new(nodes).unwrap();
        let mut catalog = Catalog::new();
        catalog.add_data("src", Data::new(1i64));
        let context = RunContext {
            session_id: "s".into(),
            run_id: "run-trace-1".into(),
            run_index: 0,
            total_runs: 1,
        };
        let span = tracing::info_span!("run", run_id = %context.run_id);
        let _entered = span.enter();
        let out = run_pipeline(
            &RunJob {
                pipeline: &pipeline,
                catalog: &catalog,
                hooks: &Hooks::new(),
                context: &context,
                cancel: &CancelToken::new(),
                only_missing_outputs: false,
                type_check: TypeCheck::Strict,
                timeout: None,
            },
            &ThreadRunner::new(Some(2)),
        )
        .unwrap();
        assert_eq!(out.outputs["total"].downcast_ref::<i64>(), Some(&4));
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let message = |e: &serde_json::Value| e["fields"]["message"].as_str().unwrap_or_default().to_string();
    let inside: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| message(e) == "inside the node")
        .collect();
    assert_eq!(
        inside.len(),
        4,
        "every node's event reached the subscriber: {text}"
    );
    assert!(
        inside.iter().any(|e| e["threadName"]
            .as_str()
            .unwrap_or_default()
            .starts_with("weft-worker-")),
        "nodes ran on worker threads: {text}"
    );
    let completed = events.iter().filter(|e| message(e) == "node completed").count();
    assert_eq!(completed, 6, "one completion event per node: {text}");
    for e in &events {
        assert_eq!(
            e["span"]["run_id"], "run-trace-1",
            "event outside the run span: {e}"
        );
    }
}
