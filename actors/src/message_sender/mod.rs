//! MessageSender: pushes the configuration to OIAnalytics (protocol §6): `full-config` (E6) and
//! `history-queries` (E7).
//!
//! This module is the pure part: the persisted [`Outbox`] (FIFO of PENDING messages in
//! `Cf::Messages`, at most one PENDING per kind) and the decisions on a send's result
//! ([`outcome_of`]; retries wait with [`crate::backoff::Backoff`]). [`actor`] holds the actix shell, which takes
//! [`ConfigChanged`](crate::messages::ConfigChanged), `RegistrationChanged` and `Stop`.
//! [`snapshot`] builds the bodies from the entity store at send time, secrets kept out by type
//! ([`outbound`]).
//!
//! Keys in `Cf::Messages`: `m/<seq>` a PENDING message (zero-padded, so key order is FIFO
//! order), `next-seq` the next sequence number, `last/<kind>` the last COMPLETED or ERRORED
//! message of a kind (for status views).

pub mod actor;
pub mod outbound;
pub mod snapshot;

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::client::{routes, ClientError};
use crate::messages::ConfigKind;
use crate::store::{Cf, Durability, Store, StoreError};

pub use actor::MessageSender;

/// The wire name of a message kind (the `operation` of its count, too).
pub fn kind_name(kind: ConfigKind) -> &'static str {
    match kind {
        ConfigKind::FullConfig => "full-config",
        ConfigKind::HistoryQueries => "history-queries",
    }
}

/// Where a message of `kind` is `PUT`.
pub fn route(kind: ConfigKind) -> &'static str {
    match kind {
        ConfigKind::FullConfig => routes::CONFIGURATION,
        ConfigKind::HistoryQueries => routes::CONFIGURATION_HISTORY_QUERY,
    }
}

/// Both kinds, in the order they are queued at boot and on registration.
pub const ALL_KINDS: [ConfigKind; 2] = [ConfigKind::FullConfig, ConfigKind::HistoryQueries];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageStatus {
    Pending,
    Completed,
    Errored,
}

/// One message. The body is not stored: it is built from the entity store when sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    pub seq: u64,
    pub kind: ConfigKind,
    pub status: MessageStatus,
    pub created_at: String,
    pub updated_at: String,
    /// Sends that failed so far (counted in memory; reset by a restart).
    #[serde(default)]
    pub attempts: u32,
    /// Why it ended ERRORED, or why the last send failed.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message outbox: {0}")]
    Store(#[from] StoreError),
}

/// What became of a request for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A new PENDING message was persisted.
    Queued { seq: u64 },
    /// A PENDING message of this kind is waiting; it will carry the change (its body is built
    /// when sent).
    Coalesced,
    /// The message of this kind is being sent with a body built before the change: a new one is
    /// queued when that send ends.
    AfterInFlight,
}

/// How a send ended, decided from the client's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: COMPLETED.
    Delivered,
    /// `Bad Request` in the answer's body: ERRORED, dropped (protocol §6.1).
    Rejected(String),
    /// Anything else (network, 401, 5xx, a 400 without the words, a body that could not be
    /// built): retried with backoff capped at the message retry interval, holding up the
    /// messages behind it.
    Failed(String),
}

/// The protocol's decision on a send's result.
pub fn outcome_of(result: &Result<u16, ClientError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Delivered,
        Err(e) if e.body_contains("Bad Request") => Outcome::Rejected(e.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

const PENDING_PREFIX: &[u8] = b"m/";
const NEXT_SEQ_KEY: &[u8] = b"next-seq";

fn pending_key(seq: u64) -> Vec<u8> {
    format!("m/{seq:020}").into_bytes()
}

fn last_key(kind: ConfigKind) -> Vec<u8> {
    format!("last/{}", kind_name(kind)).into_bytes()
}

/// The persisted queue of PENDING messages, FIFO, at most one per kind, one in flight at a time.
#[derive(Debug)]
pub struct Outbox {
    store: Store,
    pending: VecDeque<MessageRecord>,
    next_seq: u64,
    /// The head is being sent.
    in_flight: bool,
    /// Kinds requested while their message was in flight.
    again: HashSet<ConfigKind>,
}

impl Outbox {
    /// Loads the PENDING messages left by a previous run, in FIFO order.
    pub fn open(store: Store) -> Result<Outbox, MessageError> {
        let pending: VecDeque<MessageRecord> = store
            .scan::<MessageRecord>(Cf::Messages, PENDING_PREFIX)?
            .into_iter()
            .map(|(_, record)| record)
            .collect();
        let stored_next = store.get::<u64>(Cf::Messages, NEXT_SEQ_KEY)?.unwrap_or(0);
        let after_last = pending.back().map_or(0, |r| r.seq + 1);
        Ok(Outbox {
            store,
            next_seq: stored_next.max(after_last),
            pending,
            in_flight: false,
            again: HashSet::new(),
        })
    }

    /// The PENDING messages, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &MessageRecord> {
        self.pending.iter()
    }

    /// The last COMPLETED or ERRORED message of `kind`.
    pub fn last(&self, kind: ConfigKind) -> Result<Option<MessageRecord>, MessageError> {
        Ok(self.store.get(Cf::Messages, &last_key(kind))?)
    }

    /// Asks for a message of `kind`; persisted (synced) before this returns when a new one is
    /// needed.
    pub fn request(&mut self, kind: ConfigKind, now: &str) -> Result<Request, MessageError> {
        if self.in_flight && self.pending.front().is_some_and(|h| h.kind == kind) {
            self.again.insert(kind);
            return Ok(Request::AfterInFlight);
        }
        if self.pending.iter().any(|r| r.kind == kind) {
            return Ok(Request::Coalesced);
        }
        let mut batch = self.store.batch();
        let record = self.stage_new(&mut batch, kind, now)?;
        self.store.write(batch, Durability::Sync)?;
        let seq = record.seq;
        self.next_seq += 1;
        self.pending.push_back(record);
        Ok(Request::Queued { seq })
    }

    fn stage_new(
        &self,
        batch: &mut crate::store::Batch,
        kind: ConfigKind,
        now: &str,
    ) -> Result<MessageRecord, MessageError> {
        let record = MessageRecord {
            seq: self.next_seq,
            kind,
            status: MessageStatus::Pending,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            attempts: 0,
            error: None,
        };
        batch.put(Cf::Messages, &pending_key(record.seq), &record)?;
        batch.put(Cf::Messages, NEXT_SEQ_KEY, &(record.seq + 1))?;
        Ok(record)
    }

    /// The next message to send, now in flight; `None` when one is already in flight or none
    /// is pending.
    pub fn begin(&mut self) -> Option<MessageRecord> {
        if self.in_flight {
            return None;
        }
        let head = self.pending.front()?.clone();
        self.in_flight = true;
        Some(head)
    }

    /// Records how the send of the head ended. Returns the record as it ended (COMPLETED,
    /// ERRORED, or still PENDING with one more attempt); `None` if nothing was in flight.
    pub fn finish(
        &mut self,
        outcome: &Outcome,
        now: &str,
    ) -> Result<Option<MessageRecord>, MessageError> {
        if !std::mem::replace(&mut self.in_flight, false) {
            return Ok(None);
        }
        let Some(head) = self.pending.front_mut() else {
            return Ok(None);
        };
        let kind = head.kind;
        let (status, error) = match outcome {
            Outcome::Delivered => (MessageStatus::Completed, None),
            Outcome::Rejected(e) => (MessageStatus::Errored, Some(e.clone())),
            Outcome::Failed(e) => {
                head.attempts += 1;
                head.error = Some(e.clone());
                // The head stays PENDING and its next body is built afresh: it carries any
                // change requested meanwhile.
                self.again.remove(&kind);
                return Ok(Some(head.clone()));
            }
        };
        let mut ended = head.clone();
        ended.status = status;
        ended.error = error;
        ended.updated_at = now.to_owned();
        let mut batch = self.store.batch();
        batch.delete(Cf::Messages, &pending_key(ended.seq));
        batch.put(Cf::Messages, &last_key(kind), &ended)?;
        let follow_up = if self.again.remove(&kind) {
            Some(self.stage_new(&mut batch, kind, now)?)
        } else {
            None
        };
        self.store.write(batch, Durability::Sync)?;
        self.pending.pop_front();
        if let Some(record) = follow_up {
            self.next_seq += 1;
            self.pending.push_back(record);
        }
        Ok(Some(ended))
    }
}

#[cfg(test)]
mod tests;
