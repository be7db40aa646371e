//! Per-session event log for the server-sent events stream.
//!
//! Each session keeps its most recent events in a bounded ring with
//! increasing sequence numbers. A subscriber remembers the next sequence it
//! wants and reads from the ring whenever it is woken, so a slow or
//! reconnecting client (`Last-Event-ID`) misses nothing that is still in the
//! ring, and a thousand subscribers cost a thousand cursors, not a thousand
//! queues. Event ids are `<boot>-<seq>`: an id from an earlier server start
//! replays the whole ring, and a cursor older than the ring gets an explicit
//! `gap` event instead of silently skipping.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Notify;

/// One event of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Sequence number within the session (from 1).
    pub seq: u64,
    /// The SSE event name: `session`, `run_queued`, `run_started`,
    /// `node_finished`, `run_finished`, `input_required`, `gap`.
    pub kind: &'static str,
    /// The JSON payload.
    pub data: Value,
}

/// How many events each session keeps for reconnecting clients.
pub const DEFAULT_RING: usize = 4096;

/// Most events one read hands a subscriber: one far behind (a new stream
/// replaying the ring) holds a short batch at a time, not the whole ring.
pub const MAX_BATCH: usize = 64;

struct Ring {
    events: VecDeque<Arc<Event>>,
    next_seq: u64,
    closed: bool,
}

/// A session's event log.
pub struct EventLog {
    ring: Mutex<Ring>,
    capacity: usize,
    notify: Notify,
}

/// What a subscriber reads next.
pub enum Next {
    /// Events at or after the cursor.
    Events(Vec<Arc<Event>>),
    /// Events were dropped from the ring before the subscriber read them:
    /// from `missed_from` up to (not including) the ring's first event.
    Gap {
        /// The first missed sequence number.
        missed_from: u64,
        /// The first sequence number still available.
        resume_at: u64,
    },
    /// The session is over and every event has been read.
    Closed,
}

impl EventLog {
    /// An empty log keeping `capacity` events.
    pub fn new(capacity: usize) -> Self {
        EventLog {
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                next_seq: 1,
                closed: false,
            }),
            capacity: capacity.max(1),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event and wakes every subscriber; returns its sequence.
    pub fn publish(&self, kind: &'static str, data: Value) -> u64 {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::new(Event { seq, kind, data }));
        drop(ring);
        self.notify.notify_waiters();
        seq
    }

    /// Marks the log finished: subscribers get [`Next::Closed`] once they
    /// have read everything.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// The next sequence number a new event will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Reads what follows `cursor` (the next sequence wanted), at most
    /// [`MAX_BATCH`] events, without waiting; `None` when there is nothing
    /// new yet.
    pub fn poll(&self, cursor: u64) -> Option<Next> {
        let ring = self.lock();
        let first = ring.events.front().map_or(ring.next_seq, |e| e.seq);
        if cursor < first {
            return Some(Next::Gap {
                missed_from: cursor,
                resume_at: first,
            });
        }
        if cursor < ring.next_seq {
            let skip = (cursor - first) as usize;
            return Some(Next::Events(
                ring.events.iter().skip(skip).take(MAX_BATCH).cloned().collect(),
            ));
        }
        ring.closed.then_some(Next::Closed)
    }

    /// Waits until something follows `cursor`.
    pub async fn next(&self, cursor: u64) -> Next {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a publish in between is not missed.
            notified.as_mut().enable();
            if let Some(next) = self.poll(cursor) {
                return next;
            }
            notified.await;
        }
    }
}

/// Parses a `Last-Event-ID` header of this boot into the next sequence to
/// send: `<boot>-<seq>` of this boot → `seq + 1`; anything else (another
/// boot, garbage) → 1, the whole ring.
pub fn resume_cursor(last_event_id: Option<&str>, boot: &str) -> u64 {
    last_event_id
        .and_then(|id| id.rsplit_once('-'))
        .filter(|(b, _)| *b == boot)
        .and_then(|(_, seq)| seq.parse::<u64>().ok())
        .map_or(1, |seq| seq.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seqs(next: Next) -> Vec<u64> {
        match next {
            Next::Events(e) => e.iter().map(|e| e.seq).collect(),
            _ => panic!("expected events"),
        }
    }

    #[test]
    fn reads_from_cursor_and_reports_gaps() {
        let log = EventLog::new(3);
        assert!(log.poll(1).is_none());
        for i in 0..5 {
            log.publish("run_queued", json!({ "i": i }));
        }
        // Ring holds 3, 4, 5.
        assert_eq!(seqs(log.poll(4).unwrap()), vec![4, 5]);
        match log.poll(1).unwrap() {
            Next::Gap {
                missed_from,
                resume_at,
            } => assert_eq!((missed_from, resume_at), (1, 3)),
            _ => panic!("expected a gap"),
        }
        assert!(log.poll(6).is_none());
        log.close();
        assert!(matches!(log.poll(6), Some(Next::Closed)));
    }

    #[test]
    fn a_reader_far_behind_gets_the_ring_in_bounded_batches() {
        let log = EventLog::new(1000);
        for i in 0..1000 {
            log.publish("run_queued", json!({ "i": i }));
        }
        let mut cursor = 1;
        let mut seen = Vec::new();
        while let Some(Next::Events(batch)) = log.poll(cursor) {
            assert!(batch.len() <= MAX_BATCH, "{} events in one read", batch.len());
            cursor = batch.last().unwrap().seq + 1;
            seen.extend(batch.iter().map(|e| e.seq));
        }
        assert_eq!(seen, (1..=1000).collect::<Vec<u64>>());
    }

    #[test]
    fn resume_cursor_accepts_only_this_boot() {
        assert_eq!(resume_cursor(Some("b1-7"), "b1"), 8);
        assert_eq!(resume_cursor(Some("b0-7"), "b1"), 1);
        assert_eq!(resume_cursor(Some("nonsense"), "b1"), 1);
        assert_eq!(resume_cursor(None, "b1"), 1);
    }

    #[tokio::test]
    async fn next_wakes_on_publish() {
        let log = Arc::new(EventLog::new(16));
        let reader = {
            let log = log.clone();
            tokio::spawn(async move { seqs(log.next(1).await) })
        };
        tokio::task::yield_now().await;
        log.publish("session", json!({}));
        assert_eq!(reader.await.unwrap(), vec![1]);
    }
}
