//! What the simulator remembers: registrations, queued commands, and everything agents sent.
//!
//! Every change is an [`Event`]. [`Store::commit`] appends it to the journal (when `--data` is
//! given) and then applies it with [`State::apply`], the same function that replays the journal
//! at start, so a restarted simulator rebuilds exactly the state it had. Decisions take `now` as
//! an argument so they can be tested without a clock.
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use oibus_actors::protocol::RegistrationRequest;

use super::journal::Journal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RegistrationStatus {
    Pending,
    Completed,
    Rejected,
}

/// One E1 call and what became of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    pub id: String,
    /// The E1 body as the agent sent it.
    #[serde(flatten)]
    pub request: RegistrationRequest,
    pub created_at: DateTime<Utc>,
    pub expiration_date: DateTime<Utc>,
    pub status: RegistrationStatus,
    pub token: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    /// A later registration of the same OIBus completed, so this token no longer authenticates.
    pub revoked: bool,
}

impl Registration {
    /// Expiry only matters until completion: a completed registration never expires.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.status != RegistrationStatus::Completed && now >= self.expiration_date
    }

    /// The admin view: the stored fields plus `expired`.
    pub fn view(&self, now: DateTime<Utc>) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("expired".into(), Value::Bool(self.expired(now)));
        }
        value
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedCommand {
    pub seq: u64,
    /// The `oibusId` this command is for; `None` = every agent.
    pub agent: Option<String>,
    pub command: Value,
    pub queued_at: DateTime<Utc>,
    pub cancelled: bool,
    /// A command without a string `id` is served once, then dropped (no status can name it).
    pub dropped: bool,
}

impl QueuedCommand {
    pub fn id(&self) -> Option<&str> {
        self.command.get("id").and_then(Value::as_str)
    }

    fn visible_to(&self, agent: &str) -> bool {
        !self.dropped && self.agent.as_deref().is_none_or(|target| target == agent)
    }
}

/// A record received on E5, E8 (one per log record) or a message body on E6/E7.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    pub seq: u64,
    pub agent: String,
    pub at: DateTime<Utc>,
    pub body: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    FullConfig,
    HistoryQueries,
}

impl MessageKind {
    pub fn parse(text: &str) -> Option<MessageKind> {
        match text {
            "full-config" => Some(MessageKind::FullConfig),
            "history-queries" => Some(MessageKind::HistoryQueries),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub kind: MessageKind,
    #[serde(flatten)]
    pub received: Received,
}

/// Something an agent sent that OIBus would not have sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub route: String,
    pub agent: Option<String>,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
}

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A full snapshot: the last one of an id wins.
    Registration(Registration),
    CommandQueued(QueuedCommand),
    CommandCancelled {
        id: String,
    },
    CommandDropped {
        seq: u64,
    },
    Status(Received),
    Message(Message),
    Log(Received),
    Violation(Violation),
    ViolationsCleared,
}

/// The in-memory state, rebuilt from events only.
#[derive(Default)]
pub struct State {
    registrations: Vec<Registration>,
    registration_index: HashMap<String, usize>,
    /// Live tokens → `oibusId`.
    tokens: HashMap<String, String>,
    commands: Vec<QueuedCommand>,
    /// `oibusId` → command ids it reported any status for.
    reported: HashMap<String, HashSet<String>>,
    statuses: Vec<Received>,
    messages: Vec<Message>,
    logs: Vec<Received>,
    violations: Vec<Violation>,
}

impl State {
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Registration(registration) => self.apply_registration(registration),
            Event::CommandQueued(command) => self.commands.push(command),
            Event::CommandCancelled { id } => {
                for command in &mut self.commands {
                    if command.id() == Some(id.as_str()) {
                        command.cancelled = true;
                    }
                }
            }
            Event::CommandDropped { seq } => {
                if let Some(command) = self.commands.iter_mut().find(|command| command.seq == seq) {
                    command.dropped = true;
                }
            }
            Event::Status(status) => {
                if let Some(id) = status.body.get("id").and_then(Value::as_str) {
                    let ids = self.reported.entry(status.agent.clone()).or_default();
                    if !ids.contains(id) {
                        ids.insert(id.to_owned());
                    }
                }
                self.statuses.push(status);
            }
            Event::Message(message) => self.messages.push(message),
            Event::Log(log) => self.logs.push(log),
            Event::Violation(violation) => self.violations.push(violation),
            Event::ViolationsCleared => self.violations.clear(),
        }
    }

    fn apply_registration(&mut self, registration: Registration) {
        if let Some(token) = &registration.token {
            if registration.revoked {
                self.tokens.remove(token);
            } else {
                self.tokens
                    .insert(token.clone(), registration.request.oibus_id.clone());
            }
        }
        match self.registration_index.get(&registration.id) {
            Some(&index) => self.registrations[index] = registration,
            None => {
                self.registration_index
                    .insert(registration.id.clone(), self.registrations.len());
                self.registrations.push(registration);
            }
        }
    }

    fn registration(&self, id: &str) -> Option<&Registration> {
        self.registration_index
            .get(id)
            .map(|&index| &self.registrations[index])
    }

    /// The `oibusId` a live token belongs to.
    pub fn agent_for_token(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(String::as_str)
    }

    /// Events completing `registration` now with `token`, revoking the older tokens of the same OIBus.
    fn completion(
        &self,
        registration: &Registration,
        now: DateTime<Utc>,
        token: String,
    ) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .registrations
            .iter()
            .filter(|other| {
                other.request.oibus_id == registration.request.oibus_id
                    && other.token.is_some()
                    && !other.revoked
            })
            .map(|other| {
                let mut revoked = other.clone();
                revoked.revoked = true;
                Event::Registration(revoked)
            })
            .collect();
        let mut completed = registration.clone();
        completed.status = RegistrationStatus::Completed;
        completed.token = Some(token);
        completed.completed_at = Some(now);
        events.push(Event::Registration(completed));
        events
    }

    /// Events for the pending registrations whose `--auto-complete` delay has passed.
    fn due_auto_completions(&self, now: DateTime<Utc>, after: Option<Duration>) -> Vec<Event> {
        let Some(after) = after.and_then(|after| chrono::Duration::from_std(after).ok()) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for registration in &self.registrations {
            let due = registration.status == RegistrationStatus::Pending
                && !registration.expired(now)
                && now >= registration.created_at + after;
            if due {
                events.extend(self.completion(registration, now, new_secret(40)));
            }
        }
        events
    }

    /// Commands for E3: not dropped, not cancelled, and without any status from `agent` yet.
    /// Also returns the seqs of the malformed ones served, which must be dropped now.
    pub fn pending_for(&self, agent: &str) -> (Vec<Value>, Vec<u64>) {
        let reported = self.reported.get(agent);
        let mut served = Vec::new();
        let mut malformed = Vec::new();
        for command in self
            .commands
            .iter()
            .filter(|command| command.visible_to(agent))
        {
            match command.id() {
                Some(id) => {
                    if !command.cancelled && !reported.is_some_and(|ids| ids.contains(id)) {
                        served.push(command.command.clone());
                    }
                }
                None => {
                    served.push(command.command.clone());
                    malformed.push(command.seq);
                }
            }
        }
        (served, malformed)
    }

    /// E4: the cancelled commands among `ids`, one per id, in queue order.
    pub fn cancelled_among(&self, agent: &str, ids: &[String]) -> Vec<Value> {
        let mut seen = HashSet::new();
        self.commands
            .iter()
            .filter(|command| command.visible_to(agent) && command.cancelled)
            .filter_map(|command| {
                let id = command.id()?;
                (ids.iter().any(|wanted| wanted == id) && seen.insert(id))
                    .then(|| command.command.clone())
            })
            .collect()
    }

    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    pub fn commands(&self) -> &[QueuedCommand] {
        &self.commands
    }

    pub fn statuses(&self) -> &[Received] {
        &self.statuses
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn logs(&self) -> &[Received] {
        &self.logs
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
}

/// What [`Store::record`] keeps.
#[derive(Clone, Copy, Debug)]
pub enum Records {
    Statuses,
    Logs,
    Message(MessageKind),
}

/// How an admin call names a registration.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    pub id: Option<String>,
    pub activation_code: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("cannot write the simulator journal: {0}")]
    Journal(#[from] std::io::Error),
}

/// Registration timing, from the command line.
#[derive(Clone, Copy, Debug)]
pub struct RegistrationPolicy {
    pub ttl: Duration,
    pub auto_complete: Option<Duration>,
}

/// [`State`] plus its journal: every mutation goes through [`Store::commit`].
pub struct Store {
    state: State,
    journal: Option<Journal<Event>>,
    policy: RegistrationPolicy,
}

impl Store {
    /// An in-memory store, or one replayed from `<data>/journal.jsonl`.
    pub fn open(data: Option<&Path>, policy: RegistrationPolicy) -> std::io::Result<Store> {
        let mut state = State::default();
        let journal = match data {
            None => None,
            Some(dir) => {
                let (journal, events) = Journal::open(&dir.join("journal.jsonl"))?;
                for event in events {
                    state.apply(event);
                }
                Some(journal)
            }
        };
        Ok(Store {
            state,
            journal,
            policy,
        })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Journal first, then apply: what a caller was told is stored survives a restart.
    pub fn commit(&mut self, events: Vec<Event>) -> std::io::Result<()> {
        if let Some(journal) = &mut self.journal {
            journal.append(&events)?;
        }
        for event in events {
            self.state.apply(event);
        }
        Ok(())
    }

    /// Applies the `--auto-complete` delay; called before anything reads registrations.
    pub fn refresh(&mut self, now: DateTime<Utc>) -> std::io::Result<()> {
        let events = self
            .state
            .due_auto_completions(now, self.policy.auto_complete);
        if events.is_empty() {
            return Ok(());
        }
        self.commit(events)
    }

    /// E1, after validation.
    pub fn register(
        &mut self,
        request: RegistrationRequest,
        now: DateTime<Utc>,
    ) -> std::io::Result<Registration> {
        let ttl = chrono::Duration::from_std(self.policy.ttl).unwrap_or(chrono::Duration::MAX);
        let registration = Registration {
            id: new_secret(20),
            request,
            created_at: now,
            expiration_date: now
                .checked_add_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            status: RegistrationStatus::Pending,
            token: None,
            completed_at: None,
            revoked: false,
        };
        self.commit(vec![Event::Registration(registration.clone())])?;
        Ok(registration)
    }

    /// E2: the registration as it stands now (auto-completion applied).
    pub fn check_registration(
        &mut self,
        id: &str,
        now: DateTime<Utc>,
    ) -> std::io::Result<Option<Registration>> {
        self.refresh(now)?;
        Ok(self.state.registration(id).cloned())
    }

    fn select(&self, selector: &Selector) -> Result<&Registration, AdminError> {
        let found = match (&selector.id, &selector.activation_code) {
            (Some(id), None) => self.state.registration(id),
            // Codes are chosen by agents and may repeat: the newest registration wins.
            (None, Some(code)) => self
                .state
                .registrations
                .iter()
                .rev()
                .find(|registration| &registration.request.activation_code == code),
            _ => {
                return Err(AdminError::BadRequest(
                    "give exactly one of \"id\" or \"activationCode\"".into(),
                ))
            }
        };
        found.ok_or_else(|| AdminError::NotFound(format!("no registration matches {selector:?}")))
    }

    pub fn complete(
        &mut self,
        selector: &Selector,
        now: DateTime<Utc>,
    ) -> Result<Registration, AdminError> {
        self.refresh(now)?;
        let registration = self.select(selector)?;
        match registration.status {
            RegistrationStatus::Completed => return Ok(registration.clone()),
            RegistrationStatus::Rejected => {
                return Err(AdminError::Conflict(format!(
                    "registration {} was rejected",
                    registration.id
                )))
            }
            RegistrationStatus::Pending if registration.expired(now) => {
                return Err(AdminError::Conflict(format!(
                    "registration {} has expired",
                    registration.id
                )))
            }
            RegistrationStatus::Pending => {}
        }
        let id = registration.id.clone();
        let events = self.state.completion(registration, now, new_secret(40));
        self.commit(events)?;
        Ok(self
            .state
            .registration(&id)
            .cloned()
            .expect("just committed"))
    }

    pub fn reject(
        &mut self,
        selector: &Selector,
        now: DateTime<Utc>,
    ) -> Result<Registration, AdminError> {
        self.amend_pending(selector, now, |r| r.status = RegistrationStatus::Rejected)
    }

    pub fn expire(
        &mut self,
        selector: &Selector,
        now: DateTime<Utc>,
    ) -> Result<Registration, AdminError> {
        self.amend_pending(selector, now, |r| {
            r.expiration_date = r.expiration_date.min(now)
        })
    }

    /// Applies `change` to a registration not completed yet and stores it.
    fn amend_pending(
        &mut self,
        selector: &Selector,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Registration),
    ) -> Result<Registration, AdminError> {
        self.refresh(now)?;
        let registration = self.select(selector)?;
        if registration.status == RegistrationStatus::Completed {
            return Err(AdminError::Conflict(format!(
                "registration {} is already completed",
                registration.id
            )));
        }
        let mut changed = registration.clone();
        change(&mut changed);
        self.commit(vec![Event::Registration(changed.clone())])?;
        Ok(changed)
    }

    /// E3, dropping the malformed commands it serves.
    pub fn pending_for(&mut self, agent: &str) -> std::io::Result<Vec<Value>> {
        let (served, malformed) = self.state.pending_for(agent);
        if !malformed.is_empty() {
            self.commit(
                malformed
                    .into_iter()
                    .map(|seq| Event::CommandDropped { seq })
                    .collect(),
            )?;
        }
        Ok(served)
    }

    pub fn queue_commands(
        &mut self,
        agent: Option<String>,
        commands: Vec<Value>,
        now: DateTime<Utc>,
    ) -> std::io::Result<Vec<u64>> {
        let first = self.state.commands.len() as u64;
        let seqs: Vec<u64> = (first..first + commands.len() as u64).collect();
        let events = commands
            .into_iter()
            .zip(&seqs)
            .map(|(command, &seq)| {
                Event::CommandQueued(QueuedCommand {
                    seq,
                    agent: agent.clone(),
                    command,
                    queued_at: now,
                    cancelled: false,
                    dropped: false,
                })
            })
            .collect();
        self.commit(events)?;
        Ok(seqs)
    }

    /// Cancels every queued command with this id; returns how many there were.
    pub fn cancel(&mut self, id: &str) -> Result<usize, AdminError> {
        let count = self
            .state
            .commands
            .iter()
            .filter(|command| command.id() == Some(id))
            .count();
        if count == 0 {
            return Err(AdminError::NotFound(format!(
                "no queued command has id {id:?}"
            )));
        }
        self.commit(vec![Event::CommandCancelled { id: id.to_owned() }])?;
        Ok(count)
    }

    /// E5 records, E8 log records, or an E6/E7 message body (`kind`), as `agent` sent them.
    pub fn record(
        &mut self,
        kind: Records,
        agent: &str,
        bodies: Vec<Value>,
        now: DateTime<Utc>,
    ) -> std::io::Result<()> {
        let first = match kind {
            Records::Statuses => self.state.statuses.len(),
            Records::Logs => self.state.logs.len(),
            Records::Message(_) => self.state.messages.len(),
        } as u64;
        let received = bodies.into_iter().zip(first..).map(|(body, seq)| Received {
            seq,
            agent: agent.to_owned(),
            at: now,
            body,
        });
        self.commit(
            received
                .map(|received| match kind {
                    Records::Statuses => Event::Status(received),
                    Records::Logs => Event::Log(received),
                    Records::Message(kind) => Event::Message(Message { kind, received }),
                })
                .collect(),
        )
    }

    pub fn record_violation(&mut self, violation: Violation) -> std::io::Result<()> {
        self.commit(vec![Event::Violation(violation)])
    }
}

/// A random alphanumeric string (ids and tokens).
pub fn new_secret(length: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), length)
}

/// Rank used to pick the latest status of a command: status reports can arrive out of order
/// (§4.5), so a final status is never overridden by a late RETRIEVED or RUNNING.
pub fn status_rank(record: &Value) -> u8 {
    match record.get("status").and_then(Value::as_str) {
        Some("RETRIEVED") => 0,
        Some("RUNNING") => 1,
        _ => 2,
    }
}

/// The latest status record per command id among `records` (by rank, then arrival).
pub fn latest_statuses<'a>(records: impl Iterator<Item = &'a Received>) -> Map<String, Value> {
    let mut latest: HashMap<&str, &Received> = HashMap::new();
    for record in records {
        let Some(id) = record.body.get("id").and_then(Value::as_str) else {
            continue;
        };
        let replace = latest
            .get(id)
            .is_none_or(|previous| status_rank(&record.body) >= status_rank(&previous.body));
        if replace {
            latest.insert(id, record);
        }
    }
    latest
        .into_iter()
        .map(|(id, record)| {
            let status = record.body.get("status").cloned().unwrap_or(Value::Null);
            let entry = json!({"status": status, "agent": record.agent, "at": record.at, "seq": record.seq, "record": record.body});
            (id.to_owned(), entry)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn memory(auto_complete: Option<Duration>) -> Store {
        let policy = RegistrationPolicy {
            ttl: Duration::from_secs(600),
            auto_complete,
        };
        Store::open(None, policy).unwrap()
    }

    /// An E1 body as OIBus sends it.
    pub(crate) fn e1(code: &str, oibus_id: &str) -> RegistrationRequest {
        serde_json::from_value(json!({"activationCode": code, "oibusId": oibus_id, "oibusName": "n",
            "oibusVersion": "3.8.8", "oibusOs": "Linux", "oibusArch": "x64", "publicKey": "-----BEGIN PUBLIC KEY-----"}))
        .unwrap()
    }

    fn by_code(code: &str) -> Selector {
        Selector {
            id: None,
            activation_code: Some(code.into()),
        }
    }

    fn statuses(records: &[(&str, &str)]) -> Vec<Value> {
        records
            .iter()
            .map(|(id, status)| json!({"id": id, "status": status}))
            .collect()
    }

    fn ids(values: &[&str]) -> Vec<Value> {
        values.iter().map(|id| json!({ "id": id })).collect()
    }

    #[test]
    fn registration_completes_after_the_auto_complete_delay_only() {
        let mut store = memory(Some(Duration::from_secs(2)));
        let t0 = Utc::now();
        let id = store.register(e1("abc123", "o1"), t0).unwrap().id;
        let early = store.check_registration(&id, t0).unwrap().unwrap();
        assert_eq!(early.status, RegistrationStatus::Pending);
        let later = t0 + chrono::Duration::seconds(2);
        let done = store.check_registration(&id, later).unwrap().unwrap();
        assert_eq!(done.status, RegistrationStatus::Completed);
        let token = done.token.expect("completion gives a token");
        assert_eq!(store.state().agent_for_token(&token), Some("o1"));
    }

    #[test]
    fn expired_registration_can_never_complete() {
        let mut store = memory(Some(Duration::from_secs(2)));
        let t0 = Utc::now();
        let id = store.register(e1("abc123", "o1"), t0).unwrap().id;
        store.expire(&by_code("abc123"), t0).unwrap();
        let later = t0 + chrono::Duration::seconds(5);
        let seen = store.check_registration(&id, later).unwrap().unwrap();
        assert!(seen.expired(later));
        assert_eq!(seen.status, RegistrationStatus::Pending);
        let completed = store.complete(&by_code("abc123"), later);
        assert!(matches!(completed, Err(AdminError::Conflict(_))));
    }

    #[test]
    fn completing_a_new_registration_revokes_the_old_token_of_the_same_oibus() {
        let mut store = memory(None);
        let now = Utc::now();
        let mut tokens = Vec::new();
        for code in ["aaaaaa", "bbbbbb"] {
            store.register(e1(code, "o1"), now).unwrap();
            tokens.push(store.complete(&by_code(code), now).unwrap().token.unwrap());
        }
        assert_eq!(store.state().agent_for_token(&tokens[0]), None);
        assert_eq!(store.state().agent_for_token(&tokens[1]), Some("o1"));
    }

    #[test]
    fn command_leaves_pending_after_any_status_from_that_agent_only() {
        let mut store = memory(None);
        let now = Utc::now();
        store.queue_commands(None, ids(&["c1", "c2"]), now).unwrap();
        let records = statuses(&[("c1", "RETRIEVED")]);
        store.record(Records::Statuses, "a1", records, now).unwrap();
        assert_eq!(store.pending_for("a1").unwrap(), ids(&["c2"]));
        assert_eq!(store.pending_for("a2").unwrap().len(), 2);
    }

    #[test]
    fn malformed_command_is_served_once_then_dropped() {
        let mut store = memory(None);
        let commands = vec![json!({"id": 7}), json!("junk"), json!({"id": "ok"})];
        store.queue_commands(None, commands, Utc::now()).unwrap();
        assert_eq!(store.pending_for("a1").unwrap().len(), 3);
        assert_eq!(store.pending_for("a1").unwrap(), ids(&["ok"]));
        assert_eq!(store.pending_for("a2").unwrap(), ids(&["ok"]));
    }

    #[test]
    fn command_for_one_agent_is_not_served_to_another() {
        let mut store = memory(None);
        store
            .queue_commands(Some("a1".into()), ids(&["c1"]), Utc::now())
            .unwrap();
        assert_eq!(store.pending_for("a1").unwrap().len(), 1);
        assert!(store.pending_for("a2").unwrap().is_empty());
    }
}
