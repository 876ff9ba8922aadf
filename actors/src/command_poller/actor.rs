//! The actix shell of the CommandPoller: the refresh cycle, its timer, and the HTTP calls E4
//! and E3.

use actix::prelude::*;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{cancel_chunks, intake_from, Intake, INTAKE_CHUNK, MAX_CANCEL_QUERY};
use crate::client::{routes, Auth, ClientError, OiaClient};
use crate::command_executor::{CancelCommands, CommandExecutor, CommandsReady};
use crate::command_reporter::{CommandReporter, ReportsPending};
use crate::commands::{off_thread, Journal};
use crate::context::AgentContext;
use crate::entities::{EffectiveRegistrationSettings, EntityStore};
use crate::events::{CancellationsChecked, CommandWithoutId, PollCycleFinished};
use crate::oia::CachedClient;
use crate::registration::{self, RegistrationChanged};
use crate::secret::Secret;
use crate::single_flight::SingleFlight;
use crate::store::StoreError;
use crate::supervision::{ChildGuard, Stop};

/// Run a command cycle now (registration settings changed), or right after the current one.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct PollNow;

/// The cycle timer fired (internal).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct Tick;

/// Why a cycle failed.
#[derive(Debug, thiserror::Error)]
enum CycleError {
    #[error("{0}")]
    Worker(String),
    #[error("no OIAnalytics client: {0}")]
    Client(String),
    #[error("cancellation check (E4) failed: {0}")]
    Cancel(ClientError),
    #[error("fetching pending commands (E3) failed: {0}")]
    Fetch(ClientError),
    #[error("the pending commands answer is {0}, not a JSON array")]
    NotAnArray(&'static str),
    #[error("cannot journal commands: {0}")]
    Journal(#[from] StoreError),
}

pub struct CommandPoller {
    ctx: AgentContext,
    journal: Journal,
    entities: EntityStore,
    client: CachedClient,
    /// The access token while REGISTERED.
    token: Option<Secret<String>>,
    /// One cycle at a time; another as soon as it ends if a poll was asked for meanwhile.
    cycles: SingleFlight,
    cycle_timer: Option<SpawnHandle>,
    _guard: ChildGuard,
}

impl CommandPoller {
    pub fn new(ctx: AgentContext, entities: EntityStore, guard: ChildGuard) -> Self {
        CommandPoller {
            journal: ctx.journal.clone(),
            ctx,
            entities,
            client: CachedClient::default(),
            token: None,
            cycles: SingleFlight::default(),
            cycle_timer: None,
            _guard: guard,
        }
    }

    fn settings(&self) -> EffectiveRegistrationSettings {
        self.entities
            .effective_registration_settings(&self.ctx.config().oianalytics)
    }

    fn on_registration(&mut self, change: &RegistrationChanged, ctx: &mut Context<Self>) {
        if change.is_registered() {
            let was = self.token.replace(change.token.clone().unwrap_or_default());
            if was.is_none() {
                tracing::info!("registered: command polling starts");
            }
            self.poll_now(ctx);
        } else {
            if self.token.take().is_some() {
                tracing::info!(
                    status = change.status.as_str(),
                    "not registered: command polling stops"
                );
            }
            if let Some(handle) = self.cycle_timer.take() {
                ctx.cancel_future(handle);
            }
        }
    }

    fn poll_now(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.cycle_timer.take() {
            ctx.cancel_future(handle);
        }
        if self.cycles.is_running() {
            self.cycles.request_again();
        } else {
            self.cycle(ctx);
        }
    }

    /// One refresh cycle (§4.1); the next one is scheduled when it ends.
    fn cycle(&mut self, ctx: &mut Context<Self>) {
        let Some(token) = self.token.clone() else {
            return;
        };
        if !self.cycles.try_start() {
            return;
        }
        let client = self.client.get(self.ctx.config());
        let journal = self.journal.clone();
        let executor = self.ctx.peers.get::<CommandExecutor>();
        let fut = async move {
            let client = client.map_err(CycleError::Client)?;
            run_cycle(&client, &token, &journal, executor).await
        };
        ctx.spawn(fut.into_actor(self).map(|outcome, act, ctx| {
            let again = act.cycles.finish();
            let ok = outcome.is_ok();
            PollCycleFinished {
                error: outcome.as_ref().err().map(|e| e as &dyn std::fmt::Display),
            }
            .emit();
            // Intake queued RETRIEVED reports; a cycle is also the reporter's heartbeat.
            act.ctx.peers.do_send::<CommandReporter, _>(ReportsPending);
            if act.token.is_none() {
                return;
            }
            if again {
                act.cycle(ctx);
                return;
            }
            let settings = act.settings();
            let delay = if ok {
                settings.command_refresh
            } else {
                settings.command_retry
            };
            act.cycle_timer = Some(ctx.notify_later(Tick, delay));
        }));
    }
}

/// Cancellation check, fetch, journal. Returns how many commands were journaled.
async fn run_cycle(
    client: &OiaClient,
    token: &Secret<String>,
    journal: &Journal,
    executor: Option<Addr<CommandExecutor>>,
) -> Result<usize, CycleError> {
    let auth = Auth::Bearer(token);
    // 1. Cancellation check: OIA answers, among the ids asked, the cancelled commands.
    let retrieved = journal.retrieved_ids()?;
    let mut cancelled = Vec::new();
    for chunk in cancel_chunks(&retrieved, MAX_CANCEL_QUERY) {
        let query: Vec<(&str, &str)> = chunk.iter().map(|id| ("ids", id.as_str())).collect();
        let answer: Vec<Value> = client
            .get_json_query(routes::COMMANDS_LIST_BY_IDS, &query, auth)
            .await
            .map_err(CycleError::Cancel)?;
        cancelled.extend(
            answer
                .iter()
                .filter_map(|c| c.get("id").and_then(Value::as_str))
                .filter(|id| chunk.iter().any(|asked| asked == id))
                .map(str::to_owned),
        );
    }
    if !cancelled.is_empty() {
        match &executor {
            Some(executor) => {
                let n = executor
                    .send(CancelCommands { ids: cancelled })
                    .await
                    .unwrap_or(0);
                CancellationsChecked { cancelled: n }.emit();
            }
            None => tracing::warn!(
                "the command executor is not running; cancellations are checked again next cycle"
            ),
        }
    }

    // 2. Fetch and journal. The elements stay raw JSON text until their part is journaled: a
    // parsed backlog takes several times its size.
    let answer: Box<RawValue> = client
        .get_json(routes::COMMANDS_PENDING, auth)
        .await
        .map_err(CycleError::Fetch)?;
    journal_answer(&elements_of(&answer)?, journal, executor.as_ref()).await
}

/// The elements of an E3 answer, still as JSON text.
fn elements_of(answer: &RawValue) -> Result<Vec<&RawValue>, CycleError> {
    serde_json::from_str(answer.get()).map_err(|_| {
        let other: Value = serde_json::from_str(answer.get()).unwrap_or(Value::Null);
        CycleError::NotAnArray(crate::commands::catalogue::kind_of(&other))
    })
}

/// Journal the elements of an E3 answer, [`INTAKE_CHUNK`] at a time: each part is parsed, then
/// journaled in one synced batch and dropped, so a long backlog is only held as its raw text,
/// not parsed, as records and as a write batch at once. The executor starts on the first part
/// while the next ones are written. A failed write ends the cycle; the next one fetches the
/// rest again and skips what is already journaled.
async fn journal_answer(
    elements: &[&RawValue],
    journal: &Journal,
    executor: Option<&Addr<CommandExecutor>>,
) -> Result<usize, CycleError> {
    let now = crate::protocol::iso_now();
    let mut journaled = 0;
    for (n, part) in elements.chunks(INTAKE_CHUNK).enumerate() {
        let first = n * INTAKE_CHUNK;
        let mut unparsable = Vec::new();
        let mut parsed = Vec::with_capacity(part.len());
        for (index, raw) in (first..).zip(part) {
            // Valid JSON, but serde_json refuses some of it as a value (a number beyond f64).
            match serde_json::from_str::<Value>(raw.get()) {
                Ok(value) => parsed.push((index, value)),
                Err(e) => unparsable.push(format!("element {index} cannot be read: {e}")),
            }
        }
        let mut received = intake_from(
            parsed.iter().map(|(index, value)| (*index, value)),
            |id| journal.contains(id),
            journal.next_seq()?,
            &now,
        )?;
        drop(parsed);
        received.unusable.append(&mut unparsable);
        log_intake(&received);
        let mut records = received.records;
        let count = records.len();
        // The synced write waits for the disk: off the actors' thread.
        let writer = journal.clone();
        off_thread(move || writer.insert(&mut records))
            .await
            .map_err(CycleError::Worker)??;
        if count > 0 {
            journaled += count;
            if let Some(executor) = executor {
                executor.do_send(CommandsReady);
            }
        }
    }
    if journaled > 0 {
        tracing::info!(count = journaled, "commands journaled");
    }
    Ok(journaled)
}

/// Log and count what an intake set aside.
fn log_intake(received: &Intake) {
    for problem in &received.unusable {
        CommandWithoutId { problem }.emit();
    }
    if received.malformed > 0 {
        tracing::warn!(
            count = received.malformed,
            "malformed commands journaled as ERRORED"
        );
    }
    if received.duplicates > 0 {
        tracing::debug!(
            count = received.duplicates,
            "already journaled commands ignored"
        );
    }
}

impl Actor for CommandPoller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        registration::subscribe::<Self>(ctx, self.ctx.registration.clone());
        let current = self.ctx.registration.borrow().clone();
        self.on_registration(&current, ctx);
    }
}

impl Handler<RegistrationChanged> for CommandPoller {
    type Result = ();

    fn handle(&mut self, msg: RegistrationChanged, ctx: &mut Context<Self>) {
        self.on_registration(&msg, ctx);
    }
}

impl Handler<Tick> for CommandPoller {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        self.cycle_timer = None;
        if !self.cycles.is_running() {
            self.cycle(ctx);
        }
    }
}

impl Handler<PollNow> for CommandPoller {
    type Result = ();

    fn handle(&mut self, _: PollNow, ctx: &mut Context<Self>) {
        if self.token.is_some() {
            self.poll_now(ctx);
        }
    }
}

impl Handler<Stop> for CommandPoller {
    type Result = ();

    /// The journal is durable as it is written; nothing to flush.
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::Status;
    use crate::store::Store;

    fn answer(text: &str) -> Box<RawValue> {
        serde_json::from_str(text).expect("a JSON test answer")
    }

    #[test]
    fn an_answer_that_is_not_an_array_says_what_it_is() {
        let error = elements_of(&answer(r#"{"commands": []}"#)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the pending commands answer is an object, not a JSON array"
        );
    }

    #[actix_rt::test]
    async fn an_answer_longer_than_a_part_is_journaled_in_order_and_unreadable_elements_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(Store::open(dir.path()).unwrap()).unwrap();
        let mut text = String::from("[");
        for i in 0..INTAKE_CHUNK + 5 {
            text.push_str(&format!(
                r#"{{"id": "c{i}", "type": "restart-engine", "targetVersion": "1"}},"#
            ));
        }
        // Valid JSON that serde_json cannot hold as a value; then a repeat of a journaled id.
        text.push_str(r#"{"id": "huge", "type": "restart-engine", "targetVersion": 1e400},"#);
        text.push_str(r#"{"id": "c3", "type": "restart-engine", "targetVersion": "1"}]"#);
        let answer = answer(&text);
        let elements: Vec<&RawValue> = serde_json::from_str(answer.get()).unwrap();

        let journaled = journal_answer(&elements, &journal, None).await.unwrap();

        assert_eq!(journaled, INTAKE_CHUNK + 5, "every readable command, once");
        let open = journal.open_commands(usize::MAX).unwrap();
        assert_eq!(open.len(), INTAKE_CHUNK + 5);
        assert!(open.iter().all(|r| r.status == Status::Retrieved));
        assert_eq!(open.last().map(|r| r.id.as_str()), Some("c1004"));
        assert!(
            open.windows(2).all(|w| w[0].seq < w[1].seq),
            "numbered in the order received"
        );
        assert!(!journal.contains("huge").unwrap());
    }
}
