//! The session state machine of `weft serve`: one transition function is
//! the only way a session changes state. (Runs use
//! [`weft_core::RunStatus::check_transition`], the same rule the store and
//! the sessions apply.)
//!
//! ```text
//! pending → ready → busy ↔ idle → draining → closed
//!                   busy ↔ input_required
//! ready | idle → expired (idle_timeout)     input_required → aborted (abandoned)
//! any live state → failed (worker or start-up failure)
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Created; its workers are starting.
    Pending,
    /// Workers ready, nothing has run yet.
    Ready,
    /// At least one run is executing.
    Busy,
    /// Runs ran before; none is executing or queued now.
    Idle,
    /// A run waits for input from the caller (`POST /v1/runs/{id}/input`).
    InputRequired,
    /// Terminating: accepts no new runs; finishes (drain) or cancels
    /// (cancel) what it has.
    Draining,
    /// Terminated on request, everything finished.
    Closed,
    /// No heartbeat and no activity for its idle TTL.
    Expired,
    /// Waited for input longer than its abandon window.
    Aborted,
    /// Its workers could not start or died.
    Failed,
}

impl SessionState {
    /// Every state, in lifecycle order.
    pub const ALL: [SessionState; 10] = [
        SessionState::Pending,
        SessionState::Ready,
        SessionState::Busy,
        SessionState::Idle,
        SessionState::InputRequired,
        SessionState::Draining,
        SessionState::Closed,
        SessionState::Expired,
        SessionState::Aborted,
        SessionState::Failed,
    ];

    /// The name used in JSON, the store and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Ready => "ready",
            SessionState::Busy => "busy",
            SessionState::Idle => "idle",
            SessionState::InputRequired => "input_required",
            SessionState::Draining => "draining",
            SessionState::Closed => "closed",
            SessionState::Expired => "expired",
            SessionState::Aborted => "aborted",
            SessionState::Failed => "failed",
        }
    }

    /// Whether the session is over (no state follows).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Closed | SessionState::Expired | SessionState::Aborted | SessionState::Failed
        )
    }

    /// Whether the session accepts new runs.
    pub fn accepts_runs(self) -> bool {
        matches!(
            self,
            SessionState::Pending
                | SessionState::Ready
                | SessionState::Busy
                | SessionState::Idle
                | SessionState::InputRequired
        )
    }

    /// A coarse phase for dashboards: `starting`, `waiting`, `running`,
    /// `awaiting_input`, `terminating` or `terminated`.
    pub fn phase(self) -> &'static str {
        match self {
            SessionState::Pending => "starting",
            SessionState::Ready | SessionState::Idle => "waiting",
            SessionState::Busy => "running",
            SessionState::InputRequired => "awaiting_input",
            SessionState::Draining => "terminating",
            _ => "terminated",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown session state `{s}`"))
    }
}

/// What happens to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// Its workers are up.
    WorkersReady,
    /// A run started executing.
    RunStarted,
    /// No run is executing or queued any more.
    RunsDone,
    /// A run asks for input.
    InputRequested,
    /// The awaited input arrived (and no other input is awaited).
    InputProvided,
    /// Termination was asked for (`DELETE`, server shutdown).
    Terminate,
    /// Draining finished: nothing runs any more.
    Drained,
    /// No heartbeat and no activity for the idle TTL.
    IdleTimeout,
    /// Waited for input past the abandon window.
    Abandoned,
    /// A worker could not start or died.
    WorkerFailed,
}

impl SessionEvent {
    /// Every event.
    pub const ALL: [SessionEvent; 10] = [
        SessionEvent::WorkersReady,
        SessionEvent::RunStarted,
        SessionEvent::RunsDone,
        SessionEvent::InputRequested,
        SessionEvent::InputProvided,
        SessionEvent::Terminate,
        SessionEvent::Drained,
        SessionEvent::IdleTimeout,
        SessionEvent::Abandoned,
        SessionEvent::WorkerFailed,
    ];
}

/// An event that the state does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("session in state `{from}` cannot take event {event:?}")]
pub struct IllegalTransition {
    /// The state the session was in.
    pub from: SessionState,
    /// The refused event.
    pub event: SessionEvent,
}

/// The session state machine: the state after `event`, or an error when
/// `from` does not allow it. `Terminate` on a terminal session is allowed
/// and changes nothing (termination is idempotent).
pub fn transition(from: SessionState, event: SessionEvent) -> Result<SessionState, IllegalTransition> {
    use SessionEvent as E;
    use SessionState as S;
    let to = match (from, event) {
        (s, E::Terminate) if s.is_terminal() => s,
        (S::Draining, E::Terminate) => S::Draining,
        (s, E::Terminate) if !s.is_terminal() => S::Draining,
        (s, E::WorkerFailed) if !s.is_terminal() => S::Failed,
        (S::Pending, E::WorkersReady) => S::Ready,
        (S::Ready | S::Idle | S::Busy, E::RunStarted) => S::Busy,
        (S::InputRequired, E::RunStarted) => S::InputRequired,
        (S::Draining, E::RunStarted | E::InputRequested | E::InputProvided) => S::Draining,
        (S::Busy, E::RunsDone) => S::Idle,
        (S::Busy, E::InputRequested) => S::InputRequired,
        (S::InputRequired, E::InputRequested) => S::InputRequired,
        (S::InputRequired, E::InputProvided) => S::Busy,
        (S::Draining, E::Drained) => S::Closed,
        (S::Ready | S::Idle, E::IdleTimeout) => S::Expired,
        (S::InputRequired, E::Abandoned) => S::Aborted,
        _ => return Err(IllegalTransition { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionEvent as E;
    use SessionState as S;

    /// Every (state, event) pair, with the expected outcome (`None` = refused).
    #[test]
    fn exhaustive_table() {
        let table: &[(S, [Option<S>; 10])] = &[
            // WorkersReady RunStarted RunsDone InputRequested InputProvided Terminate Drained IdleTimeout Abandoned WorkerFailed
            (
                S::Pending,
                [
                    Some(S::Ready),
                    None,
                    None,
                    None,
                    None,
                    Some(S::Draining),
                    None,
                    None,
                    None,
                    Some(S::Failed),
                ],
            ),
            (
                S::Ready,
                [
                    None,
                    Some(S::Busy),
                    None,
                    None,
                    None,
                    Some(S::Draining),
                    None,
                    Some(S::Expired),
                    None,
                    Some(S::Failed),
                ],
            ),
            (
                S::Busy,
                [
                    None,
                    Some(S::Busy),
                    Some(S::Idle),
                    Some(S::InputRequired),
                    None,
                    Some(S::Draining),
                    None,
                    None,
                    None,
                    Some(S::Failed),
                ],
            ),
            (
                S::Idle,
                [
                    None,
                    Some(S::Busy),
                    None,
                    None,
                    None,
                    Some(S::Draining),
                    None,
                    Some(S::Expired),
                    None,
                    Some(S::Failed),
                ],
            ),
            (
                S::InputRequired,
                [
                    None,
                    Some(S::InputRequired),
                    None,
                    Some(S::InputRequired),
                    Some(S::Busy),
                    Some(S::Draining),
                    None,
                    None,
                    Some(S::Aborted),
                    Some(S::Failed),
                ],
            ),
            (
                S::Draining,
                [
                    None,
                    Some(S::Draining),
                    None,
                    Some(S::Draining),
                    Some(S::Draining),
                    Some(S::Draining),
                    Some(S::Closed),
                    None,
                    None,
                    Some(S::Failed),
                ],
            ),
            (
                S::Closed,
                [
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(S::Closed),
                    None,
                    None,
                    None,
                    None,
                ],
            ),
            (
                S::Expired,
                [
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(S::Expired),
                    None,
                    None,
                    None,
                    None,
                ],
            ),
            (
                S::Aborted,
                [
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(S::Aborted),
                    None,
                    None,
                    None,
                    None,
                ],
            ),
            (
                S::Failed,
                [
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(S::Failed),
                    None,
                    None,
                    None,
                    None,
                ],
            ),
        ];
        assert_eq!(table.len(), S::ALL.len());
        for (state, row) in table {
            for (event, expected) in E::ALL.iter().zip(row) {
                let got = transition(*state, *event).ok();
                assert_eq!(got, *expected, "{state} + {event:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        assert!("done".parse::<S>().is_err());
    }

    proptest::proptest! {
        /// Random event sequences: a terminal state never changes again,
        /// refused events leave the state as it was, and a session that
        /// stops accepting runs never accepts them again.
        #[test]
        fn random_sequences(events in proptest::collection::vec(0usize..10, 0..60)) {
            let mut state = S::Pending;
            let mut stopped_accepting = false;
            for i in events {
                let event = E::ALL[i];
                let before = state;
                match transition(state, event) {
                    Ok(next) => state = next,
                    Err(e) => proptest::prop_assert_eq!(e.from, before),
                }
                if before.is_terminal() {
                    proptest::prop_assert_eq!(state, before);
                }
                if !state.accepts_runs() {
                    stopped_accepting = true;
                }
                if stopped_accepting {
                    proptest::prop_assert!(!state.accepts_runs());
                }
            }
        }
    }
}
