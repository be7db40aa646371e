//! Running command nodes directly against a catalog: cancellation kills the
//! whole process group and reaps the child; output lines reach the log.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_catalog::Catalog;
use weft_command::{CommandError, CommandJob, run_command};
use weft_pipeline::command::{CommandDecl, command};
use weft_pipeline::{CancelToken, Data, Node};

fn node(decl: CommandDecl, inputs: &[(&str, &str)], outputs: &[(&str, &str)]) -> Node {
    command(decl, inputs.iter().copied(), outputs.iter().copied())
        .unwrap()
        .name("n")
        .build()
        .unwrap()
}

fn run(
    node: &Node,
    catalog: &Catalog,
    cancel: &CancelToken,
) -> Result<weft_command::CommandOutcome, CommandError> {
    run_command(&CommandJob {
        node,
        spec: node.command().unwrap(),
        catalog,
        run_id: "run-1",
        cancel,
    })
}

fn alive(pid: &str) -> bool {
    // A zombie still has a /proc entry, with state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok()
}

fn wait_for(path: &Path) -> String {
    for _ in 0..500 {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

#[test]
fn cancellation_kills_the_child_and_its_background_children_and_reaps_them() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The shell starts a background sleep, writes both pids, and waits.
    let script = format!(
        "sleep 60 & echo $$ $! > {}.tmp && mv {0}.tmp {0}; wait",
        pids.display()
    );
    let n = node(CommandDecl::new(["sh", "-c", script.as_str()]), &[], &[]);
    let catalog = Catalog::new();
    let cancel = CancelToken::new();
    let result = std::thread::scope(|s| {
        let h = s.spawn(|| run(&n, &catalog, &cancel));
        let text = wait_for(&pids);
        cancel.cancel();
        (h.join().unwrap(), text)
    });
    let (outcome, text) = result;
    let err = outcome.unwrap_err();
    assert!(matches!(err, CommandError::Cancelled { .. }), "{err}");
    let mut ids = text.split_whitespace();
    let (shell, sleeper) = (ids.next().unwrap(), ids.next().unwrap());
    assert!(!alive(shell), "the child {shell} was reaped");
    // The background sleep was killed with its group (its parent, the
    // shell, is gone, so init reaps it: give it a moment).
    let mut gone = false;
    for _ in 0..200 {
        if !alive(sleeper) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone, "background process {sleeper} survived");
}

#[test]
fn memory_inputs_and_params_reach_the_command_and_a_memory_output_comes_back() {
    let mut catalog = Catalog::new();
    catalog.add_data("numbers", Data::new(serde_json::json!([1, 2, 3])));
    catalog.add_parameters(&serde_json::json!({"label": "total", "k": 2}));
    let code = "import json, sys; xs = json.load(open(sys.argv[1])); json.dump({sys.argv[3]: sum(xs) * int(sys.argv[4])}, open(sys.argv[2], 'w'))";
    let n = node(
        CommandDecl::new([
            "python3",
            "-c",
            code,
            "{inputs.xs}",
            "{outputs.out}",
            "{params.label}",
            "{params.k}",
        ]),
        &[("xs", "numbers")],
        &[("out", "result")],
    );
    let outcome = run(&n, &catalog, &CancelToken::new()).unwrap();
    assert_eq!(outcome.memory_outputs.len(), 1);
    assert_eq!(
        outcome.memory_outputs[0].1.to_json().unwrap(),
        serde_json::json!({"total": 12})
    );
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn stdout_and_stderr_lines_are_log_events_with_the_node_in_the_callers_span() {
    let lines = Lines::default();
    let sink = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let n = node(
        CommandDecl::new([
            "sh",
            "-c",
            "echo out-line; echo err-line >&2; echo $WEFT_RUN_ID $WEFT_NODE $EXTRA",
        ])
        .env("EXTRA", "x"),
        &[],
        &[],
    );
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("run", run_id = "run-1");
        let _e = span.enter();
        run(&n, &Catalog::new(), &CancelToken::new()).unwrap();
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for want in ["out-line", "err-line", "run-1 n x"] {
        let line = text
            .lines()
            .find(|l| l.contains(want))
            .unwrap_or_else(|| panic!("no {want} in {text}"));
        assert!(
            line.contains("run{run_id=\"run-1\"}") && line.contains("node=n"),
            "{line}"
        );
    }
    assert!(text.contains("stream=\"stderr\""), "{text}");
}
