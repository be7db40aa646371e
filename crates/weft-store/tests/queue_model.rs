//! A property test of the run queue against a model: random sequences of
//! enqueue, claim, complete, cancel, expire, release and renew, on both
//! backends. After every step: each run is in exactly one state and its
//! run row agrees with it (queued ↔ `queued`, leased ↔ `running`, done ↔
//! terminal), no session has more leases than its concurrency limit,
//! claims are FIFO, and a finished run never changes again.
//! PostgreSQL needs `scripts/with-postgres.sh` (fails, never skips,
//! without `WEFT_TEST_POSTGRES_URL`).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};
use weft_store::{QueueItem, RunRecord, RunStatus, Store};

const SESSIONS: [&str; 2] = ["s0", "s1"];
/// The concurrency limit of each session.
const LIMIT: [u32; 2] = [1, 2];
const OWNERS: [&str; 2] = ["w0", "w1"];

#[derive(Clone, Debug)]
enum Step {
    Enqueue {
        session: usize,
        n: u32,
        max_attempts: u32,
    },
    Claim {
        session: usize,
        owner: usize,
        max: u32,
    },
    Complete {
        pick: usize,
        owner: usize,
        failed: bool,
    },
    CancelQueued {
        pick: usize,
    },
    CancelSession {
        session: usize,
    },
    Expire {
        later: bool,
    },
    Release {
        owner: usize,
    },
    Renew {
        pick: usize,
        owner: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..2usize, 1..4u32, 1..3u32).prop_map(|(session, n, max_attempts)| Step::Enqueue { session, n, max_attempts }),
        4 => (0..2usize, 0..2usize, 1..4u32).prop_map(|(session, owner, max)| Step::Claim { session, owner, max }),
        4 => (any::<usize>(), 0..2usize, any::<bool>()).prop_map(|(pick, owner, failed)| Step::Complete { pick, owner, failed }),
        1 => any::<usize>().prop_map(|pick| Step::CancelQueued { pick }),
        1 => (0..2usize).prop_map(|session| Step::CancelSession { session }),
        2 => any::<bool>().prop_map(|later| Step::Expire { later }),
        1 => (0..2usize).prop_map(|owner| Step::Release { owner }),
        1 => (any::<usize>(), 0..2usize).prop_map(|(pick, owner)| Step::Renew { pick, owner }),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Queued,
    Leased(String),
    Done(RunStatus),
}

#[derive(Clone, Debug)]
struct Model {
    session: usize,
    state: State,
    /// Claims counted so far.
    attempt: u32,
    max_attempts: u32,
}

async fn open(postgres: bool) -> (Store, Option<tempfile::TempDir>) {
    if !postgres {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q.db").display().to_string())
            .await
            .unwrap();
        return (store, Some(dir));
    }
    let base = std::env::var("WEFT_TEST_POSTGRES_URL")
        .expect("WEFT_TEST_POSTGRES_URL is not set: run through scripts/with-postgres.sh");
    let schema = format!("m_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = Store::open(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        .await
        .unwrap();
    (store, None)
}

fn record(session: &str, id: &str) -> RunRecord {
    RunRecord {
        run_id: id.into(),
        session_id: session.into(),
        run_index: 0,
        status: RunStatus::Queued,
        env: "local".into(),
        runtime_params: json!({}),
        pipeline_names: vec![],
        filters: json!({}),
        load_versions: BTreeMap::new(),
        saved_versions: BTreeMap::new(),
        start_time: None,
        end_time: None,
        duration_ms: None,
        error: None,
        attempts: 0,
        node_timings: vec![],
        process_peak_rss_bytes: None,
        validation: None,
        metrics: BTreeMap::new(),
        outputs: Default::default(),
        pending_input: None,
        owner: None,
        updated_at: None,
    }
}

fn ids_where(model: &BTreeMap<String, Model>, f: impl Fn(&Model) -> bool) -> Vec<String> {
    // Run ids are zero-padded dispatch numbers: their order is FIFO order,
    // and a requeued run keeps its place.
    model
        .iter()
        .filter(|(_, m)| f(m))
        .map(|(id, _)| id.clone())
        .collect()
}

async fn check(store: &Store, model: &BTreeMap<String, Model>, finished: &mut BTreeMap<String, RunRecord>) {
    for (session, name) in SESSIONS.iter().enumerate() {
        let counts = store.queue_counts(name).await.unwrap();
        let leased = model
            .values()
            .filter(|m| m.session == session && matches!(m.state, State::Leased(_)))
            .count() as u64;
        let queued = model
            .values()
            .filter(|m| m.session == session && m.state == State::Queued)
            .count() as u64;
        assert_eq!((counts.queued, counts.leased), (queued, leased), "session {name}");
        assert!(
            counts.leased <= u64::from(LIMIT[session]),
            "session {name} over its limit"
        );
    }
    for (id, m) in model {
        let r = store.get_run(id).await.unwrap().expect("run row");
        match &m.state {
            State::Queued => assert_eq!(r.status, RunStatus::Queued, "{id}"),
            State::Leased(owner) => {
                assert_eq!(r.status, RunStatus::Running, "{id}");
                assert_eq!(r.owner.as_deref(), Some(owner.as_str()), "{id}");
                assert_eq!(r.attempts, m.attempt, "{id}");
            }
            State::Done(status) => {
                assert_eq!(r.status, *status, "{id}");
                assert!(r.status.is_terminal(), "{id}");
                match finished.get(id) {
                    Some(before) => assert_eq!(&r, before, "finished run {id} changed"),
                    None => {
                        finished.insert(id.clone(), r);
                    }
                }
            }
        }
    }
}

async fn drive(postgres: bool, steps: Vec<Step>) {
    let (store, _dir) = open(postgres).await;
    let mut model: BTreeMap<String, Model> = BTreeMap::new();
    let mut finished = BTreeMap::new();
    let mut next = 0u32;
    let lease = Duration::from_secs(600);
    for step in steps {
        match step {
            Step::Enqueue {
                session,
                n,
                max_attempts,
            } => {
                let items: Vec<QueueItem> = (0..n)
                    .map(|_| {
                        next += 1;
                        QueueItem {
                            run: record(SESSIONS[session], &format!("r{next:05}")),
                            spec: json!({"n": next}),
                            max_attempts,
                        }
                    })
                    .collect();
                let e = store.enqueue(SESSIONS[session], &items, None).await.unwrap();
                for id in e.run_ids {
                    model.insert(
                        id,
                        Model {
                            session,
                            state: State::Queued,
                            attempt: 0,
                            max_attempts,
                        },
                    );
                }
            }
            Step::Claim { session, owner, max } => {
                let leased = model
                    .values()
                    .filter(|m| m.session == session && matches!(m.state, State::Leased(_)))
                    .count() as u32;
                let room = LIMIT[session].saturating_sub(leased).min(max) as usize;
                let mut expected = ids_where(&model, |m| m.session == session && m.state == State::Queued);
                expected.truncate(room);
                let got = store
                    .claim(SESSIONS[session], OWNERS[owner], max, LIMIT[session], lease)
                    .await
                    .unwrap();
                let got_ids: Vec<String> = got.iter().map(|c| c.run_id.clone()).collect();
                assert_eq!(got_ids, expected, "claims are FIFO and bounded");
                for c in got {
                    let m = model.get_mut(&c.run_id).unwrap();
                    m.attempt += 1;
                    m.state = State::Leased(OWNERS[owner].into());
                    assert_eq!(c.attempt, m.attempt);
                }
            }
            Step::Complete { pick, owner, failed } => {
                let Some(id) = model.keys().nth(pick % model.len().max(1)).cloned() else {
                    continue;
                };
                let mut r = store.get_run(&id).await.unwrap().unwrap();
                r.status = if failed {
                    RunStatus::Failed
                } else {
                    RunStatus::Succeeded
                };
                r.end_time = Some(Timestamp::now());
                let m = model.get_mut(&id).unwrap();
                let holds = m.state == State::Leased(OWNERS[owner].into());
                let done = store.complete(OWNERS[owner], &r).await.unwrap();
                assert_eq!(done, holds, "complete of {id} by {}", OWNERS[owner]);
                if done {
                    m.state = State::Done(r.status);
                }
            }
            Step::CancelQueued { pick } => {
                let Some(id) = model.keys().nth(pick % model.len().max(1)).cloned() else {
                    continue;
                };
                let m = model.get_mut(&id).unwrap();
                let queued = m.state == State::Queued;
                assert_eq!(store.cancel_queued(&id).await.unwrap(), queued);
                if queued {
                    m.state = State::Done(RunStatus::Cancelled);
                }
            }
            Step::CancelSession { session } => {
                let expected = ids_where(&model, |m| m.session == session && m.state == State::Queued);
                let got = store.cancel_session_queue(SESSIONS[session]).await.unwrap();
                assert_eq!(got, expected);
                for id in got {
                    model.get_mut(&id).unwrap().state = State::Done(RunStatus::Cancelled);
                }
            }
            Step::Expire { later } => {
                let at = if later {
                    Timestamp::now() + SignedDuration::from_secs(3600)
                } else {
                    Timestamp::now()
                };
                let expected = if later {
                    ids_where(&model, |m| matches!(m.state, State::Leased(_)))
                } else {
                    vec![]
                };
                let mut got: Vec<(String, bool)> = store
                    .expire_leases(at)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.run_id, e.requeued))
                    .collect();
                got.sort();
                assert_eq!(got.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), expected);
                for (id, requeued) in got {
                    let m = model.get_mut(&id).unwrap();
                    assert_eq!(requeued, m.attempt < m.max_attempts, "{id}");
                    m.state = if requeued {
                        State::Queued
                    } else {
                        State::Done(RunStatus::Interrupted)
                    };
                }
            }
            Step::Release { owner } => {
                let expected = ids_where(&model, |m| m.state == State::Leased(OWNERS[owner].into()));
                let n = store.release_leases(OWNERS[owner]).await.unwrap();
                assert_eq!(n, expected.len() as u64);
                for id in expected {
                    let m = model.get_mut(&id).unwrap();
                    m.state = State::Queued;
                    m.attempt -= 1;
                }
            }
            Step::Renew { pick, owner } => {
                let Some(id) = model.keys().nth(pick % model.len().max(1)).cloned() else {
                    continue;
                };
                let holds = model[&id].state == State::Leased(OWNERS[owner].into());
                let lost = store
                    .renew_leases(OWNERS[owner], std::slice::from_ref(&id), lease)
                    .await
                    .unwrap();
                assert_eq!(lost.is_empty(), holds);
            }
        }
        check(&store, &model, &mut finished).await;
    }
    store.close().await.unwrap();
}

fn run_case(postgres: bool, steps: Vec<Step>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(drive(postgres, steps));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sqlite(steps in prop::collection::vec(step(), 1..40)) {
        run_case(false, steps);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn postgres(steps in prop::collection::vec(step(), 1..40)) {
        run_case(true, steps);
    }
}
