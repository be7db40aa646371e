//! A new server on the same store picks up what the last one left: live
//! sessions (a `pending` one becomes ready) that then run new work, and idle
//! expiry measured from the stored heartbeat.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use weft_server::{CreateSession, ManualClock, Server, ServerConfig};
use weft_session::RunConfig;
use weft_store::{ServerSessionRecord, Store};

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("weft.toml"), "[project]\nname = \"rec\"\n").unwrap();
    std::fs::write(
        root.join("pipelines.yml"),
        "__default__:\n  nodes:\n    - name: n\n      func: add_one\n      inputs: params:start\n      outputs: out\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("conf/base")).unwrap();
    std::fs::write(root.join("conf/base/parameters.yml"), "start: 1\n").unwrap();
    dir
}

async fn server(root: &std::path::Path, clock: Arc<ManualClock>) -> Arc<Server> {
    let store = Store::open(root.join("s.db").to_str().unwrap()).await.unwrap();
    let s = Server::new(ServerConfig::new(root), store, clock);
    s.recover().await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_adopts_live_sessions() {
    let dir = project();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let first = server(dir.path(), clock.clone()).await;
    let (view, _) = first
        .create_session(CreateSession {
            idle_ttl_s: Some(600),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = view["id"].as_str().unwrap().to_string();
    // Stop the first server before it can run anything, with runs queued.
    first.shutdown().await;
    let configs = (0..3)
        .map(|i| RunConfig {
            runtime_params: json!({ "start": i }),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    assert!(
        first.submit(&id, configs.clone(), 1, None).await.is_err(),
        "a stopped server accepts nothing"
    );
    // A session record left `pending` (a crash while it was created).
    let now = weft_server::Clock::now(clock.as_ref());
    first
        .store()
        .create_or_reuse_server_session(&ServerSessionRecord {
            session_id: "left-pending".into(),
            key: None,
            project_path: dir.path().display().to_string(),
            env: None,
            state: "pending".into(),
            reason: None,
            idle_ttl_s: 600,
            max_concurrency: 1,
            created_at: now,
            heartbeat_at: now,
            closed_at: None,
            extra: json!({}),
        })
        .await
        .unwrap();

    let second = server(dir.path(), clock.clone()).await;
    let adopted = second.live(&id).expect("the live session is served again");
    let pending = second.live("left-pending").expect("the pending session too");
    assert_eq!(pending.state().as_str(), "ready");
    let run_ids = second.submit(&id, configs, 1, None).await.unwrap();
    for r in &run_ids {
        let mut done = false;
        for _ in 0..300 {
            let rec = second.store().get_run(r).await.unwrap().unwrap();
            if rec.status.is_terminal() {
                assert_eq!(rec.status.as_str(), "succeeded");
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(done, "run {r} did not finish");
    }
    assert_eq!(adopted.view()["runs"]["succeeded"], 3);
    // Idle expiry counts from the stored heartbeat, across the restart.
    clock.advance(Duration::from_secs(601));
    second.reconcile_once().await.unwrap();
    let stored = second
        .store()
        .get_server_session("left-pending")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, "expired");
    assert_eq!(stored.reason.unwrap()["code"], "idle_timeout");
    second.shutdown().await;
}

/// Regression: shutdown right after a session is created used to hang when
/// the master had not subscribed to the shutdown signal yet (the signal was
/// sent to no receiver and dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_right_after_create_returns() {
    for _ in 0..30 {
        let dir = project();
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
        let s = server(dir.path(), clock).await;
        s.create_session(CreateSession::default()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), s.shutdown())
            .await
            .expect("shutdown finished");
    }
}

/// A server that lost a run's lease (it was expired and taken over) stops
/// the run and never records over the store's decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_run_and_writes_nothing() {
    let dir = project();
    std::fs::write(
        dir.path().join("pipelines.yml"),
        "__default__:\n  nodes:\n    - name: wait\n      func: sleep_ms\n      inputs: [params:delay, params:start]\n      outputs: out\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf/base/parameters.yml"),
        "start: 1\ndelay: 5000\n",
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let s = server(dir.path(), clock.clone()).await;
    let (view, _) = s.create_session(CreateSession::default()).await.unwrap();
    let id = view["id"].as_str().unwrap().to_string();
    let run_id = s
        .submit(&id, vec![RunConfig::default()], 1, None)
        .await
        .unwrap()
        .remove(0);
    for _ in 0..300 {
        if s.store().get_run(&run_id).await.unwrap().unwrap().status.as_str() == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Someone else decides the lease is over (as another server's reconcile would).
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let expired = s.store().expire_leases(later).await.unwrap();
    assert_eq!(expired.len(), 1);
    let started = std::time::Instant::now();
    s.reconcile_once().await.unwrap();
    // The run stops soon (cancelled between/inside nodes), long before its 5 s.
    let mut final_status = String::new();
    for _ in 0..300 {
        let r = s.store().get_run(&run_id).await.unwrap().unwrap();
        final_status = r.status.as_str().to_string();
        if s.live(&id).unwrap().view()["runs"]["running"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the run was not stopped"
    );
    assert_eq!(final_status, "interrupted", "the store's decision stands");
    s.shutdown().await;
}
