use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a run is in its lifecycle:
/// `queued → running → succeeded | failed | cancelled | interrupted`, and
/// `queued → skipped | cancelled` for runs that never started, and
/// `running → input_required → queued` for runs that paused for input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Every node ran.
    Succeeded,
    /// A node or dataset failed, or the run was invalid.
    Failed,
    /// Never started (its batch stopped, or the session was closed).
    Skipped,
    /// Stopped on request.
    Cancelled,
    /// Its process died while it ran.
    Interrupted,
    /// Paused at an `await_input` node until its caller answers; then it is
    /// queued (or run) again with the answer.
    InputRequired,
}

/// A forbidden status change, found by [`RunStatus::check_transition`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("run {run_id}: cannot go from `{from}` to `{to}`")]
pub struct TransitionError {
    /// The run.
    pub run_id: String,
    /// Its current status.
    pub from: RunStatus,
    /// The status asked for.
    pub to: RunStatus,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
        RunStatus::InputRequired,
    ];

    /// The lowercase name used in JSON, the CLI and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
            RunStatus::InputRequired => "input_required",
        }
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            RunStatus::Queued | RunStatus::Running | RunStatus::InputRequired
        )
    }

    /// The one place run transitions are decided:
    /// `queued → running → succeeded | failed | cancelled | interrupted`,
    /// `queued → skipped | cancelled | interrupted` (the process that
    /// planned it died before it started), and `failed | interrupted → queued |
    /// running` (retries, recovery), `running → input_required → queued |
    /// running` (a paused run answered) or `→ cancelled | failed` (nobody
    /// will answer). A run that is not over may be rewritten with the same
    /// status (progress updates); a finished one may not.
    pub fn can_transition(from: RunStatus, to: RunStatus) -> bool {
        use RunStatus::*;
        (from == to && !from.is_terminal())
            || matches!(
                (from, to),
                (Queued, Running | Skipped | Cancelled | Interrupted)
                    | (
                        Running,
                        Succeeded | Failed | Cancelled | Interrupted | InputRequired
                    )
                    | (Failed | Interrupted, Queued | Running)
                    | (InputRequired, Queued | Running | Cancelled | Failed)
            )
    }

    /// [`RunStatus::can_transition`] as a `Result` naming the run.
    pub fn check_transition(run_id: &str, from: RunStatus, to: RunStatus) -> Result<(), TransitionError> {
        if RunStatus::can_transition(from, to) {
            Ok(())
        } else {
            Err(TransitionError {
                run_id: run_id.to_string(),
                from,
                to,
            })
        }
    }

    /// Statuses from which `to` may be reached.
    pub fn sources(to: RunStatus) -> Vec<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .filter(|from| RunStatus::can_transition(*from, to))
            .collect()
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown run status `{s}`; expected one of {}",
                    RunStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use RunStatus::*;
        assert!(RunStatus::can_transition(Queued, Running));
        assert!(RunStatus::can_transition(Running, Interrupted));
        assert!(RunStatus::can_transition(Failed, Running));
        assert!(!RunStatus::can_transition(Succeeded, Running));
        assert!(!RunStatus::can_transition(Queued, Succeeded));
        assert!(!RunStatus::can_transition(Skipped, Running));
        assert_eq!("failed".parse::<RunStatus>().unwrap(), Failed);
        assert!(
            "done"
                .parse::<RunStatus>()
                .unwrap_err()
                .contains("expected one of")
        );
        assert!(Succeeded.is_terminal() && !Running.is_terminal());
        assert!(RunStatus::can_transition(Running, Running));
        assert!(!RunStatus::can_transition(Succeeded, Succeeded));
        assert!(RunStatus::can_transition(Interrupted, Queued));
        assert!(RunStatus::can_transition(Queued, Skipped));
        assert!(!RunStatus::can_transition(Running, Skipped));
        for s in RunStatus::ALL {
            assert_eq!(s.to_string().parse::<RunStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(RunStatus::sources(Interrupted), vec![Queued, Running]);
        assert_eq!(RunStatus::sources(InputRequired), vec![Running, InputRequired]);
        assert!(!InputRequired.is_terminal());
        assert!(RunStatus::can_transition(InputRequired, Queued));
        assert!(!RunStatus::can_transition(InputRequired, Succeeded));
        assert!(!RunStatus::can_transition(Queued, InputRequired));
        let err = RunStatus::check_transition("r1", Succeeded, Running).unwrap_err();
        assert_eq!(err.to_string(), "run r1: cannot go from `succeeded` to `running`");
    }
}
