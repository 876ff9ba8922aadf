//! The durable command journal (`Cf::Commands`) and the status reports waiting for OIAnalytics'
//! acknowledgement (`Cf::Reports`).
//!
//! Invariants:
//! - a command is journaled (fsynced) before anything about it is reported upstream;
//! - a command id is journaled once; a later copy of it is ignored;
//! - a record's status only moves along [`CommandRecord::transition`];
//! - every status that must reach OIAnalytics is a report, written in the same atomic batch as
//!   the record change, and deleted only once OIAnalytics acknowledged it, or a later report of
//!   the same command that supersedes it
//!   ([`latest_per_command`]: OIBus never lists an id twice in one E5 PUT);
//! - `updatedAt` is the creation time, as in OIBus, whose status updates leave `updated_at`
//!   alone; when a command ended is kept in `endedAt` (local, never sent).
//!
//! Keys in `commands`: `c/<id>` the record; `o/<seq BE>` → id for open (RETRIEVED or RUNNING)
//! commands, in retrieval order; `t/<seq BE>` → id for finished ones, the order in which
//! [`Journal::prune`] forgets them; `m/seq` the next sequence number; `m/sync` a marker whose
//! synced write makes every earlier buffered write durable. Keys in `reports`: `q/<number BE>`,
//! numbered in commit order (see [`Journal::commit`]), so the flush reads them oldest first and
//! starts at the oldest one still waiting instead of walking over the acknowledged (deleted)
//! ones. The record of a command names the number of its latest report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::store::{Batch, Cf, Durability, Store, StoreError};

/// Local status of a command (protocol §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Retrieved,
    Running,
    Completed,
    Errored,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Retrieved => "RETRIEVED",
            Status::Running => "RUNNING",
            Status::Completed => "COMPLETED",
            Status::Errored => "ERRORED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Errored | Status::Cancelled
        )
    }
}

/// Whether a journal write also queues a status report (E5) of each record's new status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporting {
    /// OIAnalytics is told the new status.
    Report,
    /// Local only (e.g. RUNNING for a command that ends at once).
    Silent,
}

/// A status change asked of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// OIAnalytics cancelled it (E4) before it ran: RETRIEVED → CANCELLED.
    Cancel,
    /// Execution starts: RETRIEVED → RUNNING, or RUNNING again after a crash.
    Start,
    /// Ends it: `Ok(result)` → COMPLETED, `Err(result)` → ERRORED. From RETRIEVED when a check
    /// refuses it, from RUNNING when execution ends.
    Finish(Result<String, String>),
}

/// One journaled command: the local record OIBus keeps, plus the retrieval sequence number and
/// how many times it was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRecord {
    pub seq: u64,
    pub id: String,
    /// The type as received (a malformed element may carry an unknown one).
    #[serde(rename = "type")]
    pub command_type: String,
    pub status: Status,
    pub target_version: String,
    pub retrieved_date: String,
    pub completed_date: Option<String>,
    pub result: Option<String>,
    pub created_at: String,
    /// Set at creation and never moved by a status change (OIBus's SQL updates do not touch
    /// `updated_at`).
    pub updated_at: String,
    /// When it became terminal, for [`Journal::prune`]. Absent in records of earlier builds,
    /// which moved `updated_at` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// The type's fields under their local names (§4.6), `commandContent` as received.
    pub fields: Map<String, Value>,
    /// Times execution started; more than one means it was re-run after a crash.
    pub runs: u32,
    /// The number of the latest status report written for it, once one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<u64>,
}

/// The E5 record (protocol §4.5), field order as OIBus sends it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusRecord<'a> {
    id: &'a str,
    created_by: Option<&'a str>,
    updated_by: Option<&'a str>,
    created_at: &'a str,
    updated_at: &'a str,
    status: Status,
    ack: bool,
    target_version: &'a str,
    retrieved_date: &'a str,
    completed_date: Option<&'a str>,
    result: Option<&'a str>,
    #[serde(rename = "type")]
    command_type: &'a str,
    #[serde(flatten)]
    fields: &'a Map<String, Value>,
}

impl CommandRecord {
    /// A command just received, RETRIEVED at `now`.
    pub fn retrieved(
        seq: u64,
        id: String,
        command_type: String,
        target_version: String,
        fields: Map<String, Value>,
        now: &str,
    ) -> CommandRecord {
        CommandRecord {
            seq,
            id,
            command_type,
            status: Status::Retrieved,
            target_version,
            retrieved_date: now.to_owned(),
            completed_date: None,
            result: None,
            created_at: now.to_owned(),
            updated_at: now.to_owned(),
            ended_at: None,
            fields,
            runs: 0,
            report: None,
        }
    }

    /// The record after `transition` at `now`, or `None` when the transition is not allowed
    /// from the current status (e.g. cancelling a command that already runs).
    pub fn transition(&self, transition: Transition, now: &str) -> Option<CommandRecord> {
        let mut next = self.clone();
        match (self.status, transition) {
            (Status::Retrieved, Transition::Cancel) => {
                next.status = Status::Cancelled;
                next.ended_at = Some(now.to_owned());
            }
            (Status::Retrieved | Status::Running, Transition::Start) => {
                next.status = Status::Running;
                next.runs = self.runs.saturating_add(1);
            }
            (Status::Retrieved | Status::Running, Transition::Finish(outcome)) => {
                let (status, result) = match outcome {
                    Ok(result) => (Status::Completed, result),
                    Err(result) => (Status::Errored, result),
                };
                next.status = status;
                next.result = Some(result);
                next.completed_date = (status == Status::Completed).then(|| now.to_owned());
                next.ended_at = Some(now.to_owned());
            }
            _ => return None,
        }
        Some(next)
    }

    /// The E5 status record for the current status, as it is stored and sent.
    pub fn status_json(&self) -> Vec<u8> {
        let record = StatusRecord {
            id: &self.id,
            created_by: None,
            updated_by: None,
            created_at: &self.created_at,
            updated_at: &self.updated_at,
            status: self.status,
            ack: false,
            target_version: &self.target_version,
            retrieved_date: &self.retrieved_date,
            completed_date: self.completed_date.as_deref(),
            result: self.result.as_deref(),
            command_type: &self.command_type,
            fields: &self.fields,
        };
        // Only strings, options and a JSON map: serialising cannot fail.
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// [`CommandRecord::status_json`] as a JSON value.
    pub fn status_record(&self) -> Value {
        serde_json::from_slice(&self.status_json()).unwrap_or(Value::Null)
    }
}

fn record_key(id: &str) -> Vec<u8> {
    let mut key = b"c/".to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

fn open_key(seq: u64) -> Vec<u8> {
    seq_key(OPEN_PREFIX, seq)
}

fn done_key(seq: u64) -> Vec<u8> {
    seq_key(DONE_PREFIX, seq)
}

fn report_key(number: u64) -> Vec<u8> {
    seq_key(REPORT_PREFIX, number)
}

fn seq_key(prefix: &[u8], seq: u64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The number of a report key, `None` for a key of an earlier build (`<id>\0<rank><STATUS>`,
/// never 10 bytes long with this prefix: an id starting with `q/` makes it longer).
fn report_number(key: &[u8]) -> Option<u64> {
    let digits = key.strip_prefix(REPORT_PREFIX)?;
    Some(u64::from_be_bytes(digits.try_into().ok()?))
}

const SEQ_KEY: &[u8] = b"m/seq";
const SYNC_KEY: &[u8] = b"m/sync";
const OPEN_PREFIX: &[u8] = b"o/";
const DONE_PREFIX: &[u8] = b"t/";
const REPORT_PREFIX: &[u8] = b"q/";

/// The value of an open-index entry: which command, and its status, so the cancellation check
/// does not read every record.
#[derive(Debug, Serialize, Deserialize)]
struct OpenEntry {
    id: String,
    status: Status,
}

/// A status report waiting for OIAnalytics: its number (to acknowledge exactly it) and its
/// record, kept as the stored JSON text and sent as it is.
#[derive(Debug, Clone)]
pub struct PendingReport {
    pub number: u64,
    pub record: Box<RawValue>,
    /// The record's `id` and `status`, read once, for [`latest_per_command`].
    id: Option<String>,
    status: Option<Status>,
}

impl PendingReport {
    /// The report numbered `number` holding `record`; `None` when `record` is not a JSON object.
    pub fn new(number: u64, record: Box<RawValue>) -> Option<PendingReport> {
        #[derive(Deserialize)]
        struct Head {
            id: Option<Value>,
            status: Option<Value>,
        }
        // A struct also deserialises from an array: only an object is a record.
        if !record.get().starts_with('{') {
            return None;
        }
        let head: Head = serde_json::from_str(record.get()).ok()?;
        Some(PendingReport {
            number,
            id: head.id.and_then(|id| id.as_str().map(str::to_owned)),
            status: head.status.and_then(|s| serde_json::from_value(s).ok()),
            record,
        })
    }

    /// The record as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.record.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for PendingReport {
    fn eq(&self, other: &PendingReport) -> bool {
        self.number == other.number && self.record.get() == other.record.get()
    }
}

/// The journal and report queue over the store. Cheap to clone; one per store (the engine keeps
/// it in its `AgentContext`), since it numbers the reports.
///
/// Writers: the CommandPoller inserts new records and acknowledges reports; the CommandExecutor
/// changes existing records. They never write the same key.
#[derive(Clone, Debug)]
pub struct Journal {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Store,
    /// The number the next report gets. Held while a commit is written, so reports become
    /// visible in number order.
    next_report: Mutex<u64>,
    /// Every report numbered below this one is written (a copy of `next_report` that readers
    /// take without waiting for a commit in progress).
    written_below: AtomicU64,
    /// No report numbered below this one waits: the flush reads from here.
    pending_from: AtomicU64,
    /// How many reports wait and how many commands are open, kept in step with every write so
    /// that a `/metrics` scrape reads two numbers instead of scanning (counted once at open).
    reports_waiting: AtomicU64,
    commands_open: AtomicU64,
}

impl Journal {
    /// The journal of `store`. Reports written by an earlier build are renumbered first, in one
    /// synced batch.
    pub fn open(store: Store) -> Result<Journal, StoreError> {
        migrate_reports(&store)?;
        let next = next_report_number(&store)?;
        let waiting = store
            .scan_raw(Cf::Reports, REPORT_PREFIX, usize::MAX)?
            .len();
        let journal = Journal {
            inner: Arc::new(Shared {
                store,
                next_report: Mutex::new(next),
                written_below: AtomicU64::new(next),
                // The first flush finds the oldest waiting report.
                pending_from: AtomicU64::new(0),
                reports_waiting: AtomicU64::new(waiting as u64),
                commands_open: AtomicU64::new(0),
            }),
        };
        // Also drops the dangling open-index entries, so the count starts exact.
        let open = journal.open_commands(usize::MAX)?.len();
        journal
            .inner
            .commands_open
            .store(open as u64, Ordering::Release);
        Ok(journal)
    }

    /// Status reports waiting for OIAnalytics' acknowledgement.
    pub fn reports_waiting(&self) -> u64 {
        self.inner.reports_waiting.load(Ordering::Acquire)
    }

    /// Commands RETRIEVED or RUNNING.
    pub fn commands_open(&self) -> u64 {
        self.inner.commands_open.load(Ordering::Acquire)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn get(&self, id: &str) -> Result<Option<CommandRecord>, StoreError> {
        self.store().get(Cf::Commands, &record_key(id))
    }

    pub fn contains(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .store()
            .get_raw(Cf::Commands, &record_key(id))?
            .is_some())
    }

    /// The `limit` latest commands by arrival, newest first, whatever their status (the status
    /// page). Pruned ones are skipped; at most `limit * 50` sequence numbers are looked at.
    pub fn recent(&self, limit: usize) -> Result<Vec<CommandRecord>, StoreError> {
        let mut out = Vec::with_capacity(limit);
        let mut seq = self.next_seq()?;
        let floor = seq.saturating_sub(limit as u64 * 50);
        while seq > floor && out.len() < limit {
            seq -= 1;
            let id = match self.store().get::<String>(Cf::Commands, &done_key(seq))? {
                Some(id) => Some(id),
                None => self
                    .store()
                    .get::<OpenEntry>(Cf::Commands, &open_key(seq))?
                    .map(|entry| entry.id),
            };
            if let Some(record) = id.map(|id| self.get(&id)).transpose()?.flatten() {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// The sequence number the next received command gets.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.store().get::<u64>(Cf::Commands, SEQ_KEY)?.unwrap_or(0))
    }

    /// Journal new records (RETRIEVED, or ERRORED when malformed) with a report of their status
    /// each, in one synced batch: only then may they be reported.
    pub fn insert(&self, records: &mut [CommandRecord]) -> Result<(), StoreError> {
        let Some(last) = records.iter().map(|r| r.seq).max() else {
            return Ok(());
        };
        let mut batch = self.store().batch();
        batch.put(Cf::Commands, SEQ_KEY, &(last + 1))?;
        self.commit(batch, records, Reporting::Report, Durability::Sync)
    }

    /// Write `records` (with a report of their current status each, as `reporting` says) in one
    /// atomic batch with what `batch` already holds (e.g. entity changes), keeping the open
    /// index in step. Each record learns the number of its report.
    ///
    /// Reports are numbered under a lock held until the batch is written, so a report is never
    /// visible before one with a smaller number: the flush can start at the oldest report its
    /// previous scan found without missing a report committed late.
    pub fn commit(
        &self,
        mut batch: Batch,
        records: &mut [CommandRecord],
        reporting: Reporting,
        durability: Durability,
    ) -> Result<(), StoreError> {
        // The counter is only advanced after a successful write: a panic cannot leave it wrong.
        let mut next_report = self
            .inner
            .next_report
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut number = *next_report;
        let (mut opened, mut closed) = (0, 0);
        for record in records.iter_mut() {
            if reporting == Reporting::Report {
                record.report = Some(number);
                batch.put_raw(Cf::Reports, &report_key(number), &record.status_json());
                number += 1;
            }
            // Only this record's writer touches its index entry: what is there now stays until
            // the batch lands.
            let was_open = self
                .store()
                .get_raw(Cf::Commands, &open_key(record.seq))?
                .is_some();
            match (was_open, record.status.is_terminal()) {
                (false, false) => opened += 1,
                (true, true) => closed += 1,
                _ => {}
            }
            stage(&mut batch, record)?;
        }
        self.store().write(batch, durability)?;
        let written = number - *next_report;
        *next_report = number;
        self.inner.written_below.store(number, Ordering::Release);
        self.inner
            .reports_waiting
            .fetch_add(written, Ordering::AcqRel);
        self.inner.commands_open.fetch_add(opened, Ordering::AcqRel);
        decrement(&self.inner.commands_open, closed);
        Ok(())
    }

    /// Open commands (RETRIEVED or RUNNING), oldest retrieval first, at most `limit`.
    pub fn open_commands(&self, limit: usize) -> Result<Vec<CommandRecord>, StoreError> {
        self.open_from(0, limit)
    }

    /// Open commands with a sequence number of at least `from_seq`. A reader that knows every
    /// older command is finished starts there, so it does not walk over the deleted index
    /// entries of finished commands.
    pub fn open_from(&self, from_seq: u64, limit: usize) -> Result<Vec<CommandRecord>, StoreError> {
        let mut out = Vec::new();
        let start = open_key(from_seq);
        for (key, raw_id) in self
            .store()
            .scan_from(Cf::Commands, OPEN_PREFIX, &start, limit)?
        {
            let entry: Option<OpenEntry> = serde_json::from_slice(&raw_id).ok();
            match entry.map(|e| self.get(&e.id)).transpose()? {
                Some(Some(record)) if !record.status.is_terminal() => out.push(record),
                // A dangling index entry (its record was quarantined or is already terminal):
                // drop it so it cannot hide the next command.
                _ => {
                    self.store()
                        .delete(Cf::Commands, &key, Durability::Buffered)?;
                    decrement(&self.inner.commands_open, 1);
                }
            }
        }
        Ok(out)
    }

    /// The ids of the RETRIEVED commands, oldest first, read from the open index alone (the
    /// cancellation check runs every cycle, over possibly thousands of commands).
    pub fn retrieved_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store()
            .scan_raw(Cf::Commands, OPEN_PREFIX, usize::MAX)?
            .into_iter()
            .filter_map(|(_, raw)| serde_json::from_slice::<OpenEntry>(&raw).ok())
            .filter(|e| e.status == Status::Retrieved)
            .map(|e| e.id)
            .collect())
    }

    /// Forget finished commands that ended before `cutoff` (an ISO 8601 UTC date as the journal
    /// writes them, so text order is time order) and whose reports OIAnalytics acknowledged,
    /// oldest retrieval first, at most `limit` per call. Stops at the first one still needed: a
    /// command kept longer only delays the ones after it. Returns how many were removed.
    pub fn prune(&self, cutoff: &str, limit: usize) -> Result<usize, StoreError> {
        let mut batch = self.store().batch();
        let mut removed = 0;
        for (key, raw) in self.store().scan_raw(Cf::Commands, DONE_PREFIX, limit)? {
            let id: Option<String> = serde_json::from_slice(&raw).ok();
            let record = match &id {
                Some(id) => self.get(id)?,
                None => None,
            };
            match record {
                Some(r) if r.ended_at.as_deref().unwrap_or(&r.updated_at) >= cutoff => break,
                Some(r) if self.report_pending(&r)? => break,
                Some(r) => {
                    batch.delete(Cf::Commands, &record_key(&r.id));
                    removed += 1;
                }
                None => {} // a dangling index entry: only the entry goes
            }
            batch.delete(Cf::Commands, &key);
        }
        self.store().write(batch, Durability::Buffered)?;
        Ok(removed)
    }

    /// Whether the latest status report of `record` still waits for OIAnalytics (reports are
    /// acknowledged in number order, so the earlier ones are gone once it is).
    fn report_pending(&self, record: &CommandRecord) -> Result<bool, StoreError> {
        match record.report {
            Some(number) => Ok(self
                .store()
                .get_raw(Cf::Reports, &report_key(number))?
                .is_some()),
            None => Ok(false),
        }
    }

    /// Make every earlier buffered write durable (one fsync of the WAL).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.store()
            .put(Cf::Commands, SYNC_KEY, &0u8, Durability::Sync)
    }

    /// Up to `limit` reports waiting for OIAnalytics, oldest first.
    ///
    /// The scan starts at the oldest report the previous one found, so it never walks over
    /// more deleted reports than one batch: every report below that one was acknowledged, and
    /// a report committed later has a larger number than any visible one.
    pub fn pending_reports(&self, limit: usize) -> Result<Vec<PendingReport>, StoreError> {
        let written = self.inner.written_below.load(Ordering::Acquire);
        let start = report_key(self.inner.pending_from.load(Ordering::Acquire));
        let mut out = Vec::new();
        let mut oldest = None;
        for (key, bytes) in self
            .store()
            .scan_from(Cf::Reports, REPORT_PREFIX, &start, limit)?
        {
            let Some(number) = report_number(&key) else {
                continue; // cannot be: earlier builds' keys are renumbered at open
            };
            oldest.get_or_insert(number);
            let report = serde_json::from_slice::<Box<RawValue>>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|record| {
                    PendingReport::new(number, record).ok_or_else(|| "not a JSON object".into())
                });
            match report {
                Ok(report) => out.push(report),
                Err(e) => {
                    self.store().quarantine(Cf::Reports, &key, &bytes, &e)?;
                    decrement(&self.inner.reports_waiting, 1);
                }
            }
        }
        // Nothing found: every report written before the scan began was acknowledged.
        self.inner
            .pending_from
            .fetch_max(oldest.unwrap_or(written), Ordering::AcqRel);
        Ok(out)
    }

    /// OIAnalytics acknowledged these reports (or later ones of the same commands).
    pub fn ack_reports<'a>(
        &self,
        reports: impl IntoIterator<Item = &'a PendingReport>,
    ) -> Result<(), StoreError> {
        let mut batch = self.store().batch();
        let mut acked = 0;
        for report in reports {
            let key = report_key(report.number);
            // A report acknowledged twice is counted once.
            if self.store().get_raw(Cf::Reports, &key)?.is_some() {
                acked += 1;
            }
            batch.delete(Cf::Reports, &key);
        }
        self.store().write(batch, Durability::Buffered)?;
        decrement(&self.inner.reports_waiting, acked);
        Ok(())
    }
}

/// Lowers a count without wrapping below zero.
fn decrement(count: &AtomicU64, by: u64) {
    let _ = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
        Some(n.saturating_sub(by))
    });
}

/// The latest report of one command within a flush, and the older ones of the same command it
/// supersedes: they are acknowledged together once `latest` is.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportGroup<'a> {
    pub latest: &'a PendingReport,
    pub superseded: Vec<&'a PendingReport>,
}

impl<'a> ReportGroup<'a> {
    /// Every report this group acknowledges.
    pub fn reports(&self) -> impl Iterator<Item = &'a PendingReport> + '_ {
        std::iter::once(self.latest).chain(self.superseded.iter().copied())
    }
}

/// One group per command id among `reports` (oldest first, as [`Journal::pending_reports`]
/// gives them), ordered by their latest report. A report is the whole record at its status and
/// statuses only move forward, so the latest one says everything the older ones did; a terminal
/// report is still never replaced by a non-terminal one, whatever the numbering. A report
/// without a string `id` is a group of its own.
pub fn latest_per_command(reports: &[PendingReport]) -> Vec<ReportGroup<'_>> {
    let mut groups: Vec<ReportGroup<'_>> = Vec::with_capacity(reports.len());
    let mut by_id: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let terminal = |r: &PendingReport| r.status.is_some_and(Status::is_terminal);
    for report in reports {
        let Some(id) = report.id.as_deref() else {
            groups.push(ReportGroup {
                latest: report,
                superseded: Vec::new(),
            });
            continue;
        };
        match by_id.get(id) {
            Some(&index) => {
                let group = &mut groups[index];
                if terminal(group.latest) && !terminal(report) {
                    group.superseded.push(report);
                } else {
                    let older = std::mem::replace(&mut group.latest, report);
                    group.superseded.push(older);
                }
            }
            None => {
                by_id.insert(id, groups.len());
                groups.push(ReportGroup {
                    latest: report,
                    superseded: Vec::new(),
                });
            }
        }
    }
    groups.sort_by_key(|g| g.latest.number);
    groups
}

/// Stage `record` and its open or done index entry into `batch`.
fn stage(batch: &mut Batch, record: &CommandRecord) -> Result<(), StoreError> {
    batch.put(Cf::Commands, &record_key(&record.id), record)?;
    if record.status.is_terminal() {
        batch.delete(Cf::Commands, &open_key(record.seq));
        batch.put(Cf::Commands, &done_key(record.seq), &record.id)?;
    } else {
        let entry = OpenEntry {
            id: record.id.clone(),
            status: record.status,
        };
        batch.put(Cf::Commands, &open_key(record.seq), &entry)?;
    }
    Ok(())
}

/// One past the largest report number in the store. A number whose report was acknowledged
/// and deleted may be given again after a restart; at worst a record then looks as if its
/// report still waited, which only delays its pruning.
fn next_report_number(store: &Store) -> Result<u64, StoreError> {
    Ok(store
        .last_key(Cf::Reports, REPORT_PREFIX)?
        .and_then(|key| report_number(&key))
        .map_or(0, |n| n + 1))
}

/// Renumber the reports an earlier build keyed `<id>\0<rank><STATUS>` (a command's statuses in
/// the order they happened), after any numbered one, and point their records at them.
/// Looked for at every start, not once behind a marker: reports an older build writes into a
/// store this build already opened (a manual downgrade) are still renumbered, not stranded.
fn migrate_reports(store: &Store) -> Result<(), StoreError> {
    let legacy: Vec<_> = store
        .scan_raw(Cf::Reports, b"", usize::MAX)?
        .into_iter()
        .filter(|(key, _)| report_number(key).is_none())
        .collect();
    if legacy.is_empty() {
        return Ok(());
    }
    let first = next_report_number(store)?;
    let mut latest: Vec<(String, u64)> = Vec::new();
    let mut batch = store.batch();
    for (number, (key, value)) in (first..).zip(&legacy) {
        batch.delete(Cf::Reports, key);
        batch.put_raw(Cf::Reports, &report_key(number), value);
        let id_end = key.iter().rposition(|&b| b == 0).unwrap_or(key.len());
        let id = String::from_utf8_lossy(&key[..id_end]).into_owned();
        match latest.last_mut() {
            Some((last, n)) if *last == id => *n = number,
            _ => latest.push((id, number)),
        }
    }
    for (id, number) in &latest {
        let Some(mut record) = store.get::<CommandRecord>(Cf::Commands, &record_key(id))? else {
            continue; // a report whose record was quarantined: it is still sent
        };
        record.report = Some(*number);
        batch.put(Cf::Commands, &record_key(id), &record)?;
    }
    tracing::info!(
        reports = legacy.len(),
        "status reports of an earlier build renumbered"
    );
    store.write(batch, Durability::Sync)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(status: Status) -> CommandRecord {
        let mut r = CommandRecord::retrieved(
            7,
            "wire-1".into(),
            "create-scan-mode".into(),
            "3.8.8".into(),
            match json!({"commandContent": {"name": "wire-sample-scan", "description": "captured sample", "cron": "0 * * * * *"}})
            {
                Value::Object(m) => m,
                _ => unreachable!(),
            },
            "2026-11-23T19:10:26.490Z",
        );
        r.status = status;
        r
    }

    #[test]
    fn finished_and_acknowledged_commands_are_forgotten_after_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(Store::open(dir.path()).unwrap()).unwrap();
        let at = |day: u32| format!("2026-11-{day:02}T00:00:00.000Z");
        let mut records = Vec::new();
        for (seq, id) in ["old-acked", "old-unacked", "new"].iter().enumerate() {
            let r = CommandRecord::retrieved(
                seq as u64,
                id.to_string(),
                "create-scan-mode".into(),
                "1".into(),
                Map::new(),
                &at(1),
            );
            records.push(r);
        }
        journal.insert(&mut records).unwrap();
        for (r, day) in records.iter().zip([1, 2, 20]) {
            let done = r.transition(Transition::Finish(Ok("ok".into())), &at(day));
            let batch = journal.store().batch();
            journal
                .commit(
                    batch,
                    &mut [done.unwrap()],
                    Reporting::Report,
                    Durability::Sync,
                )
                .unwrap();
        }
        let acked: Vec<_> = journal
            .pending_reports(10)
            .unwrap()
            .into_iter()
            .filter(|p| p.value()["id"] == "old-acked")
            .collect();
        journal.ack_reports(&acked).unwrap();

        assert_eq!(journal.prune(&at(10), 100).unwrap(), 1);
        assert!(
            !journal.contains("old-acked").unwrap(),
            "ended long ago and acknowledged"
        );
        assert!(
            journal.contains("old-unacked").unwrap(),
            "its final status has not reached OIAnalytics yet"
        );
        assert!(journal.contains("new").unwrap(), "within the retention");

        let rest: Vec<_> = journal.pending_reports(10).unwrap().into_iter().collect();
        journal.ack_reports(&rest).unwrap();
        assert_eq!(journal.prune(&at(10), 100).unwrap(), 1);
        assert!(journal.contains("new").unwrap());
        assert_eq!(journal.prune(&at(30), 100).unwrap(), 1);
        assert_eq!(journal.prune(&at(30), 100).unwrap(), 0);
    }

    #[test]
    fn a_retrieved_command_can_be_cancelled_started_or_refused() {
        let r = record(Status::Retrieved);
        assert_eq!(
            r.transition(Transition::Cancel, "t").unwrap().status,
            Status::Cancelled
        );
        let running = r.transition(Transition::Start, "t").unwrap();
        assert_eq!((running.status, running.runs), (Status::Running, 1));
        let refused = r
            .transition(Transition::Finish(Err("no".into())), "t")
            .unwrap();
        assert_eq!(
            (refused.status, refused.result.as_deref()),
            (Status::Errored, Some("no"))
        );
        assert_eq!(
            refused.completed_date, None,
            "completedDate is for COMPLETED only"
        );
    }

    #[test]
    fn a_running_command_cannot_be_cancelled_but_can_restart_after_a_crash() {
        let running = record(Status::Retrieved)
            .transition(Transition::Start, "t1")
            .unwrap();
        assert_eq!(running.transition(Transition::Cancel, "t2"), None);
        let again = running.transition(Transition::Start, "t2").unwrap();
        assert_eq!(again.runs, 2);
        let done = again
            .transition(Transition::Finish(Ok("ok".into())), "t3")
            .unwrap();
        assert_eq!(done.status, Status::Completed);
        assert_eq!(done.completed_date.as_deref(), Some("t3"));
        assert_eq!(done.ended_at.as_deref(), Some("t3"));
    }

    #[test]
    fn terminal_statuses_are_final() {
        for status in [Status::Completed, Status::Errored, Status::Cancelled] {
            let r = record(status);
            for t in [
                Transition::Cancel,
                Transition::Start,
                Transition::Finish(Ok(String::new())),
            ] {
                assert_eq!(
                    r.transition(t.clone(), "t"),
                    None,
                    "{status:?} accepted {t:?}"
                );
            }
        }
    }

    #[test]
    fn the_status_record_matches_the_e5_wire_sample() {
        // The first record of spec/wire-samples/e5-command-status.json (OIBus 3.8.8), verbatim.
        let expected: Value = serde_json::from_str(
            r#"{
                "id": "wire-1",
                "createdBy": null,
                "updatedBy": null,
                "createdAt": "2026-11-23T19:10:26.490Z",
                "updatedAt": "2026-11-23T19:10:26.490Z",
                "status": "COMPLETED",
                "ack": false,
                "targetVersion": "3.8.8",
                "retrievedDate": "2026-11-23T19:10:26.490Z",
                "completedDate": "2026-11-23T19:10:26.520Z",
                "result": "Scan mode created successfully",
                "type": "create-scan-mode",
                "commandContent": {
                    "name": "wire-sample-scan",
                    "description": "captured sample",
                    "cron": "0 * * * * *"
                }
            }"#,
        )
        .expect("the e5 sample parses");
        let r = record(Status::Retrieved)
            .transition(Transition::Start, "2026-11-23T19:10:26.490Z")
            .unwrap()
            .transition(
                Transition::Finish(Ok("Scan mode created successfully".into())),
                "2026-11-23T19:10:26.520Z",
            )
            .unwrap();
        assert_eq!(r.status_record(), expected);
    }

    #[test]
    fn a_long_float_in_a_command_reads_back_exactly_however_often_it_is_rewritten() {
        // Found by fuzzing: without serde_json's `float_roundtrip`, this moved by an ulp at
        // each write and read of the record.
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(Store::open(dir.path()).unwrap()).unwrap();
        let mut r = record(Status::Retrieved);
        let long: Value =
            serde_json::from_str("72033300000000000000000000001623340224473290065").unwrap();
        r.fields["commandContent"]["maxReadInterval"] = long.clone();
        journal.insert(std::slice::from_mut(&mut r)).unwrap();
        for round in 0..5 {
            let read = journal.get(&r.id).unwrap().unwrap();
            assert_eq!(
                read.fields["commandContent"]["maxReadInterval"], long,
                "round {round}"
            );
            commit(&journal, &mut [read], Reporting::Silent);
        }
    }

    #[test]
    fn the_journal_keeps_open_commands_in_retrieval_order_and_reports_until_acked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s")).unwrap();
        let journal = Journal::open(store).unwrap();
        let mut a = record(Status::Retrieved);
        a.id = "zzz".into();
        a.seq = 0;
        let mut b = record(Status::Retrieved);
        b.id = "aaa".into();
        b.seq = 1;
        journal.insert(&mut [a.clone(), b.clone()]).unwrap();
        assert_eq!(journal.next_seq().unwrap(), 2);
        assert!(journal.contains("zzz").unwrap());
        assert_eq!(journal.open_from(0, 1).unwrap()[0].id, "zzz");
        assert_eq!(journal.retrieved_ids().unwrap(), ["zzz", "aaa"]);

        let done = a
            .transition(Transition::Finish(Ok("ok".into())), "t")
            .unwrap();
        commit(&journal, &mut [done], Reporting::Report);
        journal.sync().unwrap();
        assert_eq!(journal.open_from(0, 1).unwrap()[0].id, "aaa");

        let reports = journal.pending_reports(10).unwrap();
        assert_eq!(
            ids_and_statuses(&reports),
            [
                ("zzz".into(), "RETRIEVED".into()),
                ("aaa".into(), "RETRIEVED".into()),
                ("zzz".into(), "COMPLETED".into())
            ],
            "in the order they were written"
        );
        journal
            .ack_reports(&[reports[0].clone(), reports[2].clone()])
            .unwrap();
        let left = journal.pending_reports(10).unwrap();
        assert_eq!(
            left.len(),
            1,
            "acknowledged out of order, the other one stays"
        );
        assert_eq!(left[0].value()["status"], "RETRIEVED");
        assert_eq!(left[0].value()["id"], "aaa");
        journal.ack_reports(&left).unwrap();
        assert_eq!(journal.pending_reports(10).unwrap(), []);
        assert_eq!(
            journal.get("zzz").unwrap().unwrap().report,
            Some(2),
            "a record names its latest report"
        );
    }

    #[test]
    fn the_waiting_report_and_open_command_counts_match_a_scan_after_writes_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let scanned = |journal: &Journal| {
            let reports = journal.pending_reports(usize::MAX).unwrap().len() as u64;
            let open = journal.open_commands(usize::MAX).unwrap().len() as u64;
            assert_eq!(
                (journal.reports_waiting(), journal.commands_open()),
                (reports, open)
            );
            (reports, open)
        };
        let journal = Journal::open(Store::open(&path).unwrap()).unwrap();
        let mut errored = retrieved(2, "bad");
        errored.status = Status::Errored;
        let mut records = [retrieved(0, "a"), retrieved(1, "b"), errored];
        journal.insert(&mut records).unwrap();
        assert_eq!(scanned(&journal), (3, 2));
        let running = records[0].transition(Transition::Start, "t1").unwrap();
        commit(&journal, &mut [running.clone()], Reporting::Silent);
        assert_eq!(scanned(&journal), (3, 2), "RUNNING is still open");
        let done = running.transition(Transition::Finish(Ok("ok".into())), "t2");
        let cancelled = records[1].transition(Transition::Cancel, "t3");
        let mut ended = [done.unwrap(), cancelled.unwrap()];
        commit(&journal, &mut ended, Reporting::Report);
        assert_eq!(scanned(&journal), (5, 0));
        let reports = journal.pending_reports(usize::MAX).unwrap();
        journal.ack_reports(&reports[..2]).unwrap();
        journal.ack_reports(&reports[..2]).unwrap();
        assert_eq!(scanned(&journal), (3, 0), "a repeated ack is counted once");
        journal.insert(&mut [retrieved(3, "c")]).unwrap();
        journal.sync().unwrap();
        drop(journal);

        let reopened = Journal::open(Store::open(&path).unwrap()).unwrap();
        assert_eq!(scanned(&reopened), (4, 1));
    }

    #[test]
    fn recent_lists_the_latest_commands_newest_first_whatever_their_status() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(Store::open(&dir.path().join("s")).unwrap()).unwrap();
        let mut records: Vec<_> = (0..5).map(|i| retrieved(i, &format!("c{i}"))).collect();
        journal.insert(&mut records).unwrap();
        let done = records[3]
            .transition(Transition::Finish(Ok("done".into())), "t")
            .unwrap();
        commit(&journal, &mut [done], Reporting::Report);
        let recent = journal.recent(3).unwrap();
        let shown: Vec<_> = recent
            .iter()
            .map(|r| (r.id.as_str(), r.status.as_str(), r.result.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                ("c4", "RETRIEVED", None),
                ("c3", "COMPLETED", Some("done")),
                ("c2", "RETRIEVED", None)
            ]
        );
        assert_eq!(journal.recent(20).unwrap().len(), 5);
    }

    fn commit(journal: &Journal, records: &mut [CommandRecord], reporting: Reporting) {
        let batch = journal.store().batch();
        journal
            .commit(batch, records, reporting, Durability::Buffered)
            .unwrap();
    }

    fn retrieved(seq: u64, id: &str) -> CommandRecord {
        let mut r = record(Status::Retrieved);
        r.seq = seq;
        r.id = id.into();
        r
    }

    fn ids_and_statuses(reports: &[PendingReport]) -> Vec<(String, String)> {
        reports
            .iter()
            .map(|r| {
                let field = |f: &str| r.value()[f].as_str().unwrap_or_default().to_owned();
                (field("id"), field("status"))
            })
            .collect()
    }

    #[test]
    fn status_changes_leave_updated_at_at_the_creation_time_as_oibus_does() {
        let created = record(Status::Retrieved);
        let running = created.transition(Transition::Start, "t1").unwrap();
        let done = running
            .transition(Transition::Finish(Err("no".into())), "t2")
            .unwrap();
        let cancelled = created.transition(Transition::Cancel, "t3").unwrap();
        for r in [&running, &done, &cancelled] {
            assert_eq!(r.updated_at, created.created_at, "{:?}", r.status);
            assert_eq!(r.status_record()["updatedAt"], created.created_at.as_str());
        }
        assert_eq!(running.ended_at, None);
        assert_eq!(done.ended_at.as_deref(), Some("t2"));
        assert_eq!(cancelled.ended_at.as_deref(), Some("t3"));
        assert!(
            done.status_record().get("endedAt").is_none(),
            "local only, not an E5 field"
        );
    }

    #[test]
    fn a_flush_lists_each_command_once_with_its_latest_status_and_acks_the_older_reports() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(Store::open(dir.path()).unwrap()).unwrap();
        let mut records = [retrieved(0, "a"), retrieved(1, "b")];
        journal.insert(&mut records).unwrap();
        let running = records[0].transition(Transition::Start, "t1").unwrap();
        let done = running.transition(Transition::Finish(Ok("ok".into())), "t2");
        for next in [running, done.unwrap()] {
            commit(&journal, &mut [next], Reporting::Report);
        }
        // As after a failed PUT: a's RETRIEVED, RUNNING and COMPLETED all wait.
        let pending = journal.pending_reports(10).unwrap();
        assert_eq!(pending.len(), 4);

        let groups = latest_per_command(&pending);
        let sent: Vec<Value> = groups.iter().map(|g| g.latest.value()).collect();
        let mut ids: Vec<&str> = sent.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids, ["b", "a"], "ordered by their latest report");
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), sent.len(), "no id twice in one PUT");
        assert_eq!(sent[1]["status"], "COMPLETED", "the latest status of a");
        let superseded: Vec<Value> = groups[1]
            .superseded
            .iter()
            .map(|r| r.value()["status"].clone())
            .collect();
        assert_eq!(superseded, ["RETRIEVED", "RUNNING"]);

        journal
            .ack_reports(groups.iter().flat_map(ReportGroup::reports))
            .unwrap();
        assert_eq!(
            journal.pending_reports(10).unwrap(),
            [],
            "the superseded reports are acknowledged with the latest one"
        );
    }

    #[test]
    fn a_terminal_report_is_never_superseded_by_an_older_status() {
        let raw = |record: Value| serde_json::value::to_raw_value(&record).unwrap();
        let report = |number: u64, status: &str| {
            PendingReport::new(number, raw(json!({"id": "a", "status": status}))).unwrap()
        };
        // Numbering out of order (cannot happen through `commit`): the terminal one still wins.
        let reports = [
            report(0, "ERRORED"),
            report(1, "RUNNING"),
            report(2, "RETRIEVED"),
        ];
        let groups = latest_per_command(&reports);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].latest.value()["status"], "ERRORED");
        assert_eq!(groups[0].reports().count(), 3, "all acknowledged together");

        let no_id = [0, 1]
            .map(|number| PendingReport::new(number, raw(json!({"status": "RETRIEVED"}))).unwrap());
        assert_eq!(latest_per_command(&no_id).len(), 2, "nothing to merge on");
        assert!(
            PendingReport::new(0, raw(json!(["a", "RETRIEVED"]))).is_none(),
            "an array is not a record, even one that fits the fields"
        );
    }

    #[test]
    fn a_report_written_after_an_acknowledgement_is_found_even_for_an_older_command() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(Store::open(dir.path()).unwrap()).unwrap();
        let mut records = [retrieved(0, "first"), retrieved(1, "second")];
        journal.insert(&mut records).unwrap();
        let sent = journal.pending_reports(10).unwrap();
        journal.ack_reports(&sent).unwrap();
        assert_eq!(journal.pending_reports(10).unwrap(), []);

        let done = records[0].transition(Transition::Finish(Ok("ok".into())), "t");
        commit(&journal, &mut [done.unwrap()], Reporting::Report);
        assert_eq!(
            ids_and_statuses(&journal.pending_reports(10).unwrap()),
            [("first".to_owned(), "COMPLETED".to_owned())]
        );

        // A restart reads the same from the store alone.
        let reopened = Journal::open(journal.store().clone()).unwrap();
        assert_eq!(reopened.pending_reports(10).unwrap().len(), 1);
    }

    #[test]
    fn reports_of_an_earlier_build_are_renumbered_in_order_and_still_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // What an earlier build left: records without a report number, reports keyed
        // `<id>\0<rank><STATUS>`.
        let legacy_key = |id: &str, rank: u8, status: Status| {
            let mut key = id.as_bytes().to_vec();
            key.extend([0, rank]);
            key.extend_from_slice(status.as_str().as_bytes());
            key
        };
        let a = retrieved(0, "a");
        let a_done = a
            .transition(Transition::Finish(Ok("ok".into())), "t")
            .unwrap();
        let b = retrieved(1, "b");
        let mut batch = store.batch();
        for (r, rank) in [(&a, b'1'), (&a_done, b'3'), (&b, b'1')] {
            batch
                .put(
                    Cf::Reports,
                    &legacy_key(&r.id, rank, r.status),
                    &r.status_record(),
                )
                .unwrap();
        }
        for r in [&a_done, &b] {
            stage(&mut batch, r).unwrap();
        }
        store.write(batch, Durability::Sync).unwrap();

        let journal = Journal::open(store).unwrap();
        let pending = journal.pending_reports(10).unwrap();
        assert_eq!(
            ids_and_statuses(&pending),
            [
                ("a".to_owned(), "RETRIEVED".to_owned()),
                ("a".to_owned(), "COMPLETED".to_owned()),
                ("b".to_owned(), "RETRIEVED".to_owned())
            ]
        );
        assert_eq!(journal.get("a").unwrap().unwrap().report, Some(1));
        assert_eq!(
            journal.prune("z", 10).unwrap(),
            0,
            "not forgotten before its final status is acknowledged"
        );
        journal.ack_reports(&pending).unwrap();
        assert_eq!(journal.prune("z", 10).unwrap(), 1);

        let mut c = [retrieved(2, "c")];
        journal.insert(&mut c).unwrap();
        assert_eq!(
            c[0].report,
            Some(3),
            "numbering goes on after the renumbered ones"
        );
    }
}
