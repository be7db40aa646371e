//! Two servers on one PostgreSQL store share the queue: every run executes
//! exactly once. Needs the real PostgreSQL of scripts/with-postgres.sh
//! (`WEFT_TEST_POSTGRES_URL`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};
use weft_pipeline::FunctionRegistry;
use weft_server::{CreateSession, Server, ServerConfig, SystemClock};
use weft_session::{ProjectCode, RunConfig, SessionOptions};
use weft_store::Store;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

async fn fresh_schema() -> String {
    let base = std::env::var("WEFT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_POSTGRES_URL is not set: this test needs a real PostgreSQL; run it through \
             scripts/with-postgres.sh, e.g. `scripts/with-postgres.sh cargo nextest run -p weft-server`"
        )
    });
    let schema = format!("t_{}", uuid_like());
    let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    )
}

/// A server whose `count` function counts its executions.
async fn server(root: &Path, url: &str, counter: Arc<AtomicUsize>) -> Arc<Server> {
    let mut functions = FunctionRegistry::with_builtins();
    functions
        .register("count", move |x: &i64| -> i64 {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(3));
            *x
        })
        .unwrap();
    let mut config = ServerConfig::new(root);
    config.max_workers = 2;
    config.session_options = SessionOptions {
        code: ProjectCode {
            functions: Arc::new(functions),
            ..Default::default()
        },
        ..Default::default()
    };
    let store = Store::open(url).await.unwrap();
    let s = Server::new(config, store, Arc::new(SystemClock));
    s.recover().await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_run_every_run_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "weft.toml", "[project]\nname = \"shared\"\n");
    write(
        root,
        "pipelines.yml",
        "__default__:\n  nodes:\n    - name: counted\n      func: count\n      inputs: params:start\n      outputs: out\n",
    );
    write(root, "conf/base/parameters.yml", "start: 0\n");
    std::fs::create_dir_all(root.join("conf/local")).unwrap();
    let url = fresh_schema().await;
    let (count_a, count_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let a = server(root, &url, count_a.clone()).await;
    let b = server(root, &url, count_b.clone()).await;
    let (view, created) = a
        .create_session(CreateSession {
            max_concurrency: Some(4),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created);
    let id = view["id"].as_str().unwrap().to_string();
    // B learns about the session from the store.
    b.reconcile_once().await.unwrap();
    assert!(b.live(&id).is_some(), "server B serves the session too");
    let configs: Vec<RunConfig> = (0..200)
        .map(|i| RunConfig {
            runtime_params: json!({ "start": i }),
            ..Default::default()
        })
        .collect();
    let run_ids = a.submit(&id, configs, 1, None).await.unwrap();
    assert_eq!(run_ids.len(), 200);
    // B sees the new queue at its next reconcile.
    b.reconcile_once().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = 0;
        for r in &run_ids {
            let rec = a.store().get_run(r).await.unwrap().unwrap();
            if rec.status.is_terminal() {
                assert_eq!(rec.status, weft_core::RunStatus::Succeeded, "{rec:?}");
                assert_eq!(rec.attempts, 1);
                done += 1;
            }
        }
        if done == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{done}/200 finished");
        b.reconcile_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (na, nb) = (count_a.load(Ordering::SeqCst), count_b.load(Ordering::SeqCst));
    eprintln!("server A ran {na} runs, server B ran {nb}");
    assert_eq!(na + nb, 200, "every run executed exactly once");
    assert!(
        na > 0 && nb > 0,
        "both servers took runs from the shared queue: {na} + {nb}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
