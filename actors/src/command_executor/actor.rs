//! The actix shell of the CommandExecutor: messages, the one-at-a-time pump, and the I/O each
//! command needs (KeyVault, store, shutdown).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::Value;

use super::configure::{self, ApplyError, Env, SecretPlan};
use super::{generates_keys, may_seal, precheck, recover, start_journaling, Recovery};
use crate::command_poller::{CommandPoller, PollNow};
use crate::command_reporter::{CommandReporter, ReportsPending};
use crate::commands::{CommandRecord, CommandType, Journal, Reporting, Status, Transition};
use crate::config::Config;
use crate::context::{AgentContext, ConfigReloaded};
use crate::data_flow::{DataCommand, DataFlow, Reconcile};
use crate::entities::{EffectiveRegistrationSettings, EntityStore, RegistrationSettingsRecord};
use crate::events::{CommandCancelled, CommandExecuted, CommandExitsEngine, EntityChanged};
use crate::key_vault::{DecryptSettings, GetLocalCipher, KeyVault, LocalCipher, RegenerateKeys};
use crate::messages::{ConfigKind, ConfigOutbox};
use crate::store::{Batch, Durability, StoreError};
use crate::supervision::{ChildGuard, Shutdown, Stop, Supervisor};
use crate::upgrade::stager::UpgradeStager;
use crate::upgrade::{self, StageRequest, UpgradeError};

/// New commands were journaled: look for work.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct CommandsReady;

/// OIAnalytics cancelled these commands (E4): the ones still RETRIEVED become CANCELLED.
/// Answers how many were cancelled.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct CancelCommands {
    pub ids: Vec<String>,
}

/// Run the next command (internal).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct Pump;

/// How long the engine may take to stop in order before a restart or an upgrade exit.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(20);
/// Pause before looking again after the journal could not be read.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// How often finished commands past `journal_retention` are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Records forgotten per store batch; a sweep stops after ten batches (the next one goes on).
const PRUNE_BATCH: usize = 5_000;
/// How often an `update-version` on probation asks the launcher's journal for its outcome.
const UPGRADE_CHECK: Duration = Duration::from_secs(1);
/// OIBus caps every `test-*` command at 300 s (protocol §4.3); cache commands and setpoints
/// answer well within it.
const DATA_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

pub struct CommandExecutor {
    ctx: AgentContext,
    journal: Journal,
    entities: EntityStore,
    outbox: ConfigOutbox,
    stager: Option<Arc<dyn UpgradeStager>>,
    cipher: Option<LocalCipher>,
    /// A command is being run.
    busy: bool,
    /// A restart or upgrade exit was requested: run nothing more.
    exiting: bool,
    /// Every command with a smaller sequence number is finished.
    cursor: u64,
    /// The `update-version` left RUNNING while the launcher decides its outcome: never run
    /// again, ended by [`Self::check_upgrade`].
    awaiting_upgrade: Option<String>,
    /// Test hook `OIBUS_AGENT_TEST_EXEC_DELAY_MS`.
    delay: Option<Duration>,
    /// The permissions in force, with the configuration they were computed from; dropped when
    /// a command changes the registration settings.
    permissions: Option<(Arc<Config>, EffectiveRegistrationSettings)>,
    _guard: ChildGuard,
}

impl CommandExecutor {
    pub fn new(
        ctx: AgentContext,
        entities: EntityStore,
        outbox: ConfigOutbox,
        stager: Option<Arc<dyn UpgradeStager>>,
        guard: ChildGuard,
    ) -> CommandExecutor {
        CommandExecutor {
            journal: ctx.journal.clone(),
            ctx,
            entities,
            outbox,
            stager,
            cipher: None,
            busy: false,
            exiting: false,
            cursor: 0,
            awaiting_upgrade: None,
            delay: crate::test_hooks::exec_delay(),
            permissions: None,
            _guard: guard,
        }
    }

    fn now() -> String {
        crate::protocol::iso_now()
    }

    /// Journal `transition` of `record` in one batch with `changes`. Returns the new record, or
    /// `None` if the transition no longer applies.
    fn write(
        &self,
        record: &CommandRecord,
        transition: Transition,
        reporting: Reporting,
        durability: Durability,
        changes: Batch,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let Some(mut next) = record.transition(transition, &Self::now()) else {
            return Ok(None);
        };
        self.journal.commit(
            changes,
            std::slice::from_mut(&mut next),
            reporting,
            durability,
        )?;
        if reporting == Reporting::Report {
            self.ctx.peers.do_send::<CommandReporter, _>(ReportsPending);
        }
        Ok(Some(next))
    }

    /// End a command with `outcome`, committing the entity `changes` it staged in the same batch,
    /// and have it reported; a command run here (not one ended after a restart) is also logged,
    /// counted and timed.
    fn record_outcome(
        &self,
        record: &CommandRecord,
        outcome: Result<String, String>,
        changes: Batch,
        ending: Ending,
    ) {
        let transition = Transition::Finish(outcome);
        match self.write(
            record,
            transition,
            Reporting::Report,
            Durability::Buffered,
            changes,
        ) {
            Ok(Some(done)) => {
                if let Ending::Ran { started } = ending {
                    CommandExecuted {
                        id: &done.id,
                        kind: &done.command_type,
                        status: done.status,
                        result: done.result.as_deref().unwrap_or(""),
                        elapsed: started.elapsed(),
                    }
                    .emit();
                }
            }
            Ok(None) => {}
            Err(e) => {
                // The command stays open and is run again (or recovered) at the next start.
                tracing::error!(id = %record.id, error = %e, "cannot journal a command outcome");
                self.ctx.peers.do_send::<CommandReporter, _>(ReportsPending);
            }
        }
    }

    fn no_changes(&self) -> Batch {
        self.ctx.store.batch()
    }

    /// [`Self::record_outcome`] of a command run here from `started` that changed no entity.
    fn finish(&self, record: &CommandRecord, outcome: Result<String, String>, started: Instant) {
        self.record_outcome(record, outcome, self.no_changes(), Ending::Ran { started });
    }

    /// Recover the commands a crash left RUNNING (at most one, as they run one at a time).
    fn recover_interrupted(&mut self, ctx: &mut Context<Self>) -> Result<(), StoreError> {
        let install_dir = self.ctx.config().launcher.install_dir.clone();
        for record in self.journal.open_commands(usize::MAX)? {
            if record.status != Status::Running {
                continue;
            }
            match recover(&record, || upgrade::settle(&record.id, &install_dir)) {
                Recovery::Rerun => {
                    tracing::warn!(id = %record.id, r#type = %record.command_type, runs = record.runs,
                        "command interrupted by a stop; running it again (its effect is idempotent)");
                }
                Recovery::Finish(outcome) => {
                    tracing::warn!(id = %record.id, r#type = %record.command_type, ?outcome,
                        "command interrupted by a stop; ending it");
                    self.record_outcome(&record, outcome, self.no_changes(), Ending::AfterRestart);
                }
                Recovery::AwaitUpgrade => {
                    tracing::info!(id = %record.id,
                        "upgrade on probation: its outcome is reported once the launcher commits or rolls it back");
                    self.awaiting_upgrade = Some(record.id);
                    ctx.run_interval(UPGRADE_CHECK, |act, ctx| act.check_upgrade(ctx));
                }
            }
        }
        Ok(())
    }

    /// Report the awaited upgrade once the launcher's journal has its outcome.
    fn check_upgrade(&mut self, ctx: &mut Context<Self>) {
        let Some(id) = self.awaiting_upgrade.clone() else {
            return;
        };
        let install_dir = self.ctx.config().launcher.install_dir.clone();
        let Some(outcome) = upgrade::settle(&id, &install_dir) else {
            return;
        };
        match self.journal.get(&id) {
            Ok(Some(record)) => {
                tracing::info!(id, ?outcome, "the launcher decided the upgrade");
                self.record_outcome(&record, outcome, self.no_changes(), Ending::AfterRestart);
            }
            Ok(None) => tracing::error!(id, "the awaited upgrade command is not journaled"),
            Err(e) => {
                tracing::error!(id, error = %e, "cannot read the awaited upgrade command; retrying");
                return;
            }
        }
        self.awaiting_upgrade = None;
        ctx.notify(Pump);
    }

    /// Forget the finished, acknowledged commands older than `journal_retention`.
    fn prune_journal(&self) {
        let retention = self.ctx.config().actors.command_executor.journal_retention;
        let Some(cutoff) = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| chrono::Utc::now().checked_sub_signed(r))
        else {
            return; // a retention beyond the calendar: nothing is old enough
        };
        let cutoff = crate::protocol::iso(cutoff);
        let mut forgotten = 0;
        for _ in 0..10 {
            let n = match self.journal.prune(&cutoff, PRUNE_BATCH) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "cannot prune the command journal; trying again later");
                    break;
                }
            };
            forgotten += n;
            if n < PRUNE_BATCH {
                break;
            }
        }
        if forgotten > 0 {
            tracing::info!(forgotten, %cutoff, "finished commands removed from the journal");
        }
    }

    /// The oldest open command to run: the upgrade awaiting its outcome stays open but is
    /// skipped.
    fn next_open(&self) -> Result<Option<CommandRecord>, StoreError> {
        let wanted = 1 + usize::from(self.awaiting_upgrade.is_some());
        Ok(self
            .journal
            .open_from(self.cursor, wanted)?
            .into_iter()
            .find(|r| self.awaiting_upgrade.as_ref() != Some(&r.id)))
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.exiting {
            return;
        }
        let record = match self.next_open() {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the command journal; retrying");
                ctx.notify_later(Pump, STORE_RETRY);
                return;
            }
        };
        self.busy = true;
        self.cursor = record.seq;
        let started = Instant::now();
        let delay = self.delay;
        let fut = async move {
            match delay {
                Some(delay) => actix_rt::time::sleep(delay).await,
                // Let the other actors of this thread (the poller's HTTP calls) run between
                // two commands: actix would otherwise run the whole queue in one go.
                None => tokio::task::yield_now().await,
            }
        };
        ctx.spawn(
            fut.into_actor(self)
                .then(move |(), act, ctx| act.run(record.id, started, ctx))
                .map(|(), act, ctx| {
                    act.busy = false;
                    ctx.notify(Pump);
                }),
        );
    }

    /// Run command `id` from its current journaled state.
    fn run(
        &mut self,
        id: String,
        started: Instant,
        _ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, ()> {
        // Re-read: it may have been cancelled while we waited.
        let record = match self.journal.get(&id) {
            Ok(Some(r)) if !r.status.is_terminal() => r,
            Ok(_) => return Box::pin(actix::fut::ready(())),
            Err(e) => {
                tracing::error!(id, error = %e, "cannot read a journaled command");
                return Box::pin(actix::fut::ready(()));
            }
        };
        let command_type = if record.status == Status::Retrieved {
            // OIA targets the OIBus version it was told, not the agent's own.
            let reported = self.ctx.config().oianalytics.oibus_version.clone();
            let permissions = self.permissions();
            match precheck(&record, &reported, |flag| permissions.permitted(flag)) {
                Ok(t) => t,
                Err(refusal) => {
                    self.finish(&record, Err(refusal), started);
                    return Box::pin(actix::fut::ready(()));
                }
            }
        } else {
            // RUNNING again after a crash: it passed the checks when it first started.
            match CommandType::parse(&record.command_type) {
                Some(t) => t,
                None => {
                    self.finish(
                        &record,
                        Err("interrupted: unknown command type".into()),
                        started,
                    );
                    return Box::pin(actix::fut::ready(()));
                }
            }
        };
        let (durability, reporting) = start_journaling(command_type);
        let start = self.write(
            &record,
            Transition::Start,
            reporting,
            durability,
            self.no_changes(),
        );
        let record = match start {
            Ok(Some(r)) => r,
            Ok(None) => return Box::pin(actix::fut::ready(())),
            Err(e) => {
                tracing::error!(id = %record.id, error = %e, "cannot journal a command start; retrying");
                return Box::pin(actix::fut::wrap_future::<_, Self>(actix_rt::time::sleep(
                    STORE_RETRY,
                )));
            }
        };
        tracing::debug!(id = %record.id, r#type = %record.command_type, runs = record.runs, "command running");
        match command_type {
            CommandType::RestartEngine => {
                self.exit(crate::exit::RESTART, &record);
                Box::pin(actix::fut::ready(()))
            }
            CommandType::UpdateVersion => self.update_version(record, started),
            CommandType::RegenerateCipherKeys => self.regenerate_keys(record, started),
            t if t.runs_on_data_plane() => self.data_command(t, record, started),
            _ => self.configure(command_type, record, started),
        }
    }

    /// Stop the engine in order, then exit with `code` for the launcher.
    fn exit(&mut self, code: i32, record: &CommandRecord) {
        self.exiting = true;
        CommandExitsEngine {
            id: &record.id,
            kind: &record.command_type,
            code,
        }
        .emit();
        let supervisor = self.ctx.peers.get::<Supervisor>();
        // Spawned on the arbiter, not on this actor: the shutdown stops this actor too.
        actix_rt::spawn(async move {
            if let Some(supervisor) = supervisor {
                let _ = supervisor
                    .send(Shutdown {
                        timeout: SHUTDOWN_BUDGET,
                    })
                    .await;
            }
            System::current().stop_with_code(code);
        });
    }

    fn update_version(
        &mut self,
        record: CommandRecord,
        started: Instant,
    ) -> ResponseActFuture<Self, ()> {
        let cc = record.fields.get("commandContent").unwrap_or(&Value::Null);
        let version = cc["version"].as_str().unwrap_or_default();
        let request = StageRequest {
            command_id: record.id.clone(),
            asset_id: cc["assetId"].as_str().unwrap_or_default().to_owned(),
            version: version.strip_prefix('v').unwrap_or(version).to_owned(),
            update_launcher: cc["updateLauncher"].as_bool().unwrap_or(false),
        };
        let staged = match &self.stager {
            Some(stager) => stager.stage(request),
            None => Box::pin(async { Err(UpgradeError::NoLauncher) }),
        };
        Box::pin(
            staged
                .into_actor(self)
                .map(move |staged, act, _| match staged {
                    Ok(()) => act.exit(crate::exit::UPGRADE, &record),
                    Err(e) => act.finish(&record, Err(e.to_string()), started),
                }),
        )
    }

    /// A command on the running data plane (test, cache, setpoint): the DataFlow runs it.
    fn data_command(
        &mut self,
        command_type: CommandType,
        record: CommandRecord,
        started: Instant,
    ) -> ResponseActFuture<Self, ()> {
        let data_flow = self.ctx.peers.get::<DataFlow>();
        let command = DataCommand {
            command_type,
            fields: record.fields.clone(),
        };
        let fut = async move {
            let Some(data_flow) = data_flow else {
                return Err("The data plane is not running".to_owned());
            };
            let ran = data_flow.send(command);
            match actix_rt::time::timeout(DATA_COMMAND_TIMEOUT, ran).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Err("The data plane is not running".to_owned()),
                Err(_) => Err(format!(
                    "{} timed out after {} s",
                    command_type.as_str(),
                    DATA_COMMAND_TIMEOUT.as_secs()
                )),
            }
        };
        Box::pin(fut.into_actor(self).map(move |outcome, act, _| {
            act.finish(&record, outcome, started);
        }))
    }

    fn regenerate_keys(
        &mut self,
        record: CommandRecord,
        started: Instant,
    ) -> ResponseActFuture<Self, ()> {
        let vault = self.ctx.peers.get::<KeyVault>();
        let fut = async move {
            match vault {
                Some(vault) => match vault.send(RegenerateKeys).await {
                    Ok(Ok(_public_key)) => Ok("OIAnalytics keys reloaded".to_owned()),
                    Ok(Err(e)) => Err(format!("Cannot regenerate the keys: {e}")),
                    Err(_) => Err("The key vault is not running".to_owned()),
                },
                None => Err("The key vault is not running".to_owned()),
            }
        };
        Box::pin(fut.into_actor(self).map(move |outcome, act, _| {
            let ok = outcome.is_ok();
            act.finish(&record, outcome, started);
            if ok {
                act.outbox.send(ConfigKind::FullConfig);
            }
        }))
    }

    /// Configuration commands: decrypt the secrets the plan lists, then apply and commit the
    /// entity writes with the outcome.
    fn configure(
        &mut self,
        command_type: CommandType,
        record: CommandRecord,
        started: Instant,
    ) -> ResponseActFuture<Self, ()> {
        let content = record
            .fields
            .get("commandContent")
            .cloned()
            .unwrap_or(Value::Null);
        let modulus = (self.ctx.config().oianalytics.key_size / 8) as usize;
        let plan = configure::secret_plan(command_type, &content, modulus);
        // Scan modes, IP filters, certificates and most settings hold no secret: they need
        // neither the vault nor a round trip through it.
        if plan.parts.is_empty() && !may_seal(command_type) {
            return self.run_configuration(command_type, record, content, plan, started);
        }
        let vault = self.ctx.peers.get::<KeyVault>();
        let need_cipher = self.cipher.is_none();
        let fut = async move {
            let cipher = match (need_cipher, &vault) {
                (true, Some(vault)) => vault.send(GetLocalCipher).await.ok(),
                _ => None,
            };
            let content = decrypt(content, &plan, vault.as_ref()).await;
            (cipher, content, plan)
        };
        Box::pin(
            fut.into_actor(self)
                .then(move |(cipher, content, plan), act, _| {
                    if let Some(cipher) = cipher {
                        act.cipher = Some(cipher);
                    }
                    let next: ResponseActFuture<Self, ()> = match content {
                        Ok(content) => {
                            act.run_configuration(command_type, record, content, plan, started)
                        }
                        Err(e) => {
                            act.finish(&record, Err(e), started);
                            Box::pin(actix::fut::ready(()))
                        }
                    };
                    next
                }),
        )
    }

    /// Apply a configuration command and commit its writes with its outcome. Commands that
    /// generate keys run on a blocking thread: a 4096-bit RSA key takes seconds, which would
    /// stall every actor of this arbiter.
    fn run_configuration(
        &mut self,
        command_type: CommandType,
        record: CommandRecord,
        content: Value,
        plan: SecretPlan,
        started: Instant,
    ) -> ResponseActFuture<Self, ()> {
        let job = ApplyJob {
            entities: self.entities.clone(),
            config: self.ctx.config(),
            store: self.ctx.store.clone(),
            cipher: self.cipher.clone(),
            now: Self::now(),
            command_type,
            fields: record.fields.clone(),
            command_id: record.id.clone(),
            content,
            plan,
        };
        if !generates_keys(command_type) {
            let (outcome, batch) = job.run();
            self.applied(&record, outcome, batch, started);
            return Box::pin(actix::fut::ready(()));
        }
        let blocking = actix_rt::task::spawn_blocking(move || job.run());
        Box::pin(
            blocking
                .into_actor(self)
                .map(move |joined, act, _| match joined {
                    Ok((outcome, batch)) => act.applied(&record, outcome, batch, started),
                    Err(e) => {
                        tracing::error!(id = %record.id, error = %e, "applying a command failed");
                        act.finish(
                            &record,
                            Err(format!("oibus-agent could not apply the command: {e}")),
                            started,
                        );
                    }
                }),
        )
    }

    /// End `record` with what [`ApplyJob::run`] gave, then the command's effects.
    fn applied(
        &mut self,
        record: &CommandRecord,
        outcome: Result<configure::Applied, ApplyError>,
        batch: Batch,
        started: Instant,
    ) {
        match outcome {
            Ok(applied) => {
                self.record_outcome(
                    record,
                    Ok(applied.result.clone()),
                    batch,
                    Ending::Ran { started },
                );
                if let Some((kind, op)) = applied.ontology {
                    EntityChanged {
                        entity: kind.as_str(),
                        op: op.as_str(),
                    }
                    .emit();
                }
                let effects = applied.effects;
                if effects.full_config {
                    self.outbox.send(ConfigKind::FullConfig);
                }
                if effects.full_config || effects.history_queries {
                    // Connectors, scan modes, transformers or history queries may have changed.
                    self.ctx.peers.do_send::<DataFlow, _>(Reconcile);
                }
                if effects.history_queries {
                    self.outbox.send(ConfigKind::HistoryQueries);
                }
                if effects.engine {
                    self.publish_engine_settings();
                }
                if effects.registration {
                    self.permissions = None;
                    self.ctx.peers.do_send::<CommandPoller, _>(PollNow);
                }
            }
            Err(ApplyError::Invalid(reason)) => self.finish(record, Err(reason), started),
            Err(e) => {
                tracing::error!(id = %record.id, error = %e, "local failure while applying a command");
                self.finish(
                    record,
                    Err(format!("oibus-agent could not apply the command: {e}")),
                    started,
                );
            }
        }
    }

    /// The permissions in force (cached until the configuration or the settings change).
    fn permissions(&mut self) -> &EffectiveRegistrationSettings {
        let config = self.ctx.config();
        if self
            .permissions
            .as_ref()
            .is_some_and(|(built_for, _)| !Arc::ptr_eq(built_for, &config))
        {
            self.permissions = None;
        }
        let entities = &self.entities;
        let outbox = &self.outbox;
        let (_, permissions) = self.permissions.get_or_insert_with(|| {
            let mut stored = entities.registration_settings().unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read the registration settings; the YAML permissions apply");
                None
            });
            // The executor is the only writer of this record, so a local edit seen here cannot
            // race a remote command.
            if let Some(record) = stored.as_mut() {
                record_local_edit(entities, record, &config.oianalytics.permissions, outbox);
            }
            let effective =
                RegistrationSettingsRecord::effective_of(stored.as_ref(), &config.oianalytics);
            (config.clone(), effective)
        });
        permissions
    }

    fn publish_engine_settings(&self) {
        match self.entities.engine_settings() {
            Ok(Some(record)) => self
                .ctx
                .engine_settings
                .publish(record.effective(&self.ctx.config())),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the engine settings to apply them"),
        }
    }
}

/// Take a local edit of the YAML permissions into the stored record (see
/// [`RegistrationSettingsRecord::apply_local_edit`]); flags granted again are logged and pushed to
/// OIAnalytics in a full config.
fn record_local_edit(
    entities: &EntityStore,
    record: &mut RegistrationSettingsRecord,
    yaml: &std::collections::BTreeMap<String, bool>,
    outbox: &ConfigOutbox,
) {
    let (granted, changed) = record.apply_local_edit(yaml);
    if !changed {
        return;
    }
    match entities.write_registration_settings(record) {
        Ok(()) if !granted.is_empty() => {
            tracing::info!(flags = ?granted, "command permissions granted again by a local edit of oianalytics.permissions");
            outbox.send(ConfigKind::FullConfig);
        }
        Ok(()) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot store the local permissions; a local grant applies only until restart")
        }
    }
}

/// Everything [`configure::run`] needs, owned, so that it can run on another thread. The
/// executor runs one command at a time, so nothing else writes entities meanwhile.
struct ApplyJob {
    entities: EntityStore,
    config: Arc<Config>,
    store: crate::store::Store,
    cipher: Option<LocalCipher>,
    now: String,
    command_type: CommandType,
    command_id: String,
    fields: serde_json::Map<String, Value>,
    content: Value,
    plan: SecretPlan,
}

impl ApplyJob {
    fn run(self) -> (Result<configure::Applied, ApplyError>, Batch) {
        let cipher = self.cipher;
        let seal = cipher
            .as_ref()
            .map(|cipher| move |plain: &str| cipher.seal(plain.as_bytes()));
        let env = Env {
            entities: &self.entities,
            config: &self.config,
            command_id: &self.command_id,
            now: &self.now,
            sealer: seal.as_ref().map(|f| f as &dyn Fn(&str) -> String),
        };
        let mut batch = self.store.batch();
        let outcome = configure::run(
            self.command_type,
            &self.fields,
            &self.content,
            &self.plan,
            &env,
            &mut batch,
        );
        (outcome, batch)
    }
}

/// How a command reached its outcome.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// This engine ran it, from `started`: log, count and time it.
    Ran { started: Instant },
    /// It ran in an engine that stopped (recovery, an upgrade the launcher decided): only its
    /// report is owed.
    AfterRestart,
}

/// Decrypt every part of `plan` inside `content` with the KeyVault.
async fn decrypt(
    mut content: Value,
    plan: &SecretPlan,
    vault: Option<&Addr<KeyVault>>,
) -> Result<Value, String> {
    for part in &plan.parts {
        let Some(slot) = content.pointer_mut(&part.pointer) else {
            continue; // a missing parent skips its secrets (connector-secrets §1.3)
        };
        if slot.is_null() {
            continue;
        }
        let Some(vault) = vault else {
            return Err("The key vault is not running: secrets cannot be decrypted".to_owned());
        };
        let request = DecryptSettings {
            paths: part.paths.clone(),
            settings: slot.take(),
        };
        match vault.send(request).await {
            Ok(Ok(plain)) => *slot = plain,
            Ok(Err(e)) => {
                return Err(format!(
                    "Cannot decrypt secret in commandContent{}: {e}",
                    part.pointer.replace('/', ".")
                ))
            }
            Err(_) => {
                return Err("The key vault is not running: secrets cannot be decrypted".to_owned())
            }
        }
    }
    Ok(content)
}

impl Actor for CommandExecutor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.recover_interrupted(ctx) {
            tracing::error!(error = %e, "cannot read the command journal at start");
        }
        self.prune_journal();
        ctx.run_interval(PRUNE_EVERY, |act, _| act.prune_journal());
        // A local edit of the permissions is taken at start and at each reload.
        self.permissions();
        self.ctx.follow_config(ctx);
        ctx.notify(Pump);
    }
}

impl Handler<ConfigReloaded> for CommandExecutor {
    type Result = ();

    fn handle(&mut self, _: ConfigReloaded, _: &mut Context<Self>) {
        self.permissions();
    }
}

impl Handler<CommandsReady> for CommandExecutor {
    type Result = ();

    fn handle(&mut self, _: CommandsReady, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}

impl Handler<Pump> for CommandExecutor {
    type Result = ();

    fn handle(&mut self, _: Pump, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}

impl Handler<CancelCommands> for CommandExecutor {
    type Result = usize;

    fn handle(&mut self, msg: CancelCommands, _: &mut Context<Self>) -> usize {
        let mut cancelled = 0;
        for id in msg.ids {
            let record = match self.journal.get(&id) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(id, error = %e, "cannot read a command to cancel");
                    continue;
                }
            };
            match self.write(
                &record,
                Transition::Cancel,
                Reporting::Report,
                Durability::Buffered,
                self.no_changes(),
            ) {
                Ok(Some(_)) => {
                    cancelled += 1;
                    CommandCancelled { id: &id }.emit();
                }
                Ok(None) => {} // already running or finished: too late to cancel
                Err(e) => tracing::error!(id, error = %e, "cannot journal a cancellation"),
            }
        }
        cancelled
    }
}

impl Handler<Stop> for CommandExecutor {
    type Result = ();

    /// Every outcome is committed as it happens; a command still running stays RUNNING and is
    /// recovered at the next start.
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Store;
    use crate::upgrade::{marker_path, write_marker, Marker, Step};

    fn context(store: Store, install_dir: &std::path::Path) -> AgentContext {
        let mut config = Config::default();
        config.launcher.install_dir = install_dir.to_path_buf();
        AgentContext::for_tests(store, config)
    }

    fn command(
        seq: u64,
        id: &str,
        command_type: &str,
        content: serde_json::Value,
    ) -> CommandRecord {
        let fields = match json!({ "commandContent": content }) {
            Value::Object(fields) => fields,
            _ => unreachable!("a JSON object literal"),
        };
        CommandRecord::retrieved(
            seq,
            id.into(),
            command_type.into(),
            crate::COMPATIBLE_OIBUS_VERSION.into(),
            fields,
            "2026-11-23T00:00:00.000Z",
        )
    }

    async fn status_after(journal: &Journal, id: &str, wait: Duration) -> Status {
        let deadline = Instant::now() + wait;
        loop {
            let status = journal.get(id).unwrap().unwrap().status;
            if status.is_terminal() || Instant::now() >= deadline {
                return status;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[actix_rt::test]
    async fn an_upgrade_on_probation_is_reported_only_once_the_launcher_commits_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let ctx = context(store.clone(), dir.path());
        let journal = ctx.journal.clone();
        // The engine stopped for the upgrade with the command RUNNING; the launcher swapped the
        // binary and this (new) engine is on probation.
        let upgrade = command(
            0,
            "up",
            "update-version",
            json!({"version": crate::VERSION}),
        );
        let running = upgrade.transition(Transition::Start, "t").unwrap();
        journal.insert(&mut [running]).unwrap();
        let mut marker = Marker::staged("up", "asset", "0.0.1", crate::VERSION, false);
        for step in [Step::BackedUp, Step::Swapped, Step::Probation] {
            marker.advance(step, None).unwrap();
        }
        write_marker(&marker_path(dir.path()), &marker).unwrap();
        let scan = json!({"name": "s", "description": "", "cron": "0 * * * * *"});
        journal
            .insert(&mut [command(1, "next", "create-scan-mode", scan)])
            .unwrap();

        let _executor = CommandExecutor::new(
            ctx,
            EntityStore::new(store),
            ConfigOutbox::none(),
            None,
            ChildGuard::unsupervised(),
        )
        .start();
        assert_eq!(
            status_after(&journal, "next", Duration::from_secs(5)).await,
            Status::Completed,
            "the queue goes on while the upgrade is on probation"
        );
        assert_eq!(
            status_after(&journal, "up", Duration::from_millis(1500)).await,
            Status::Running,
            "not reported before the launcher decides"
        );

        marker.advance(Step::Committed, None).unwrap();
        write_marker(&marker_path(dir.path()), &marker).unwrap();
        assert_eq!(
            status_after(&journal, "up", Duration::from_secs(5)).await,
            Status::Completed
        );
        let record = journal.get("up").unwrap().unwrap();
        assert_eq!(
            record.result.as_deref(),
            Some(
                format!(
                    "OIBus updated to version {v}, launcher updated to version {v}",
                    v = crate::VERSION
                )
                .as_str()
            )
        );
        assert_eq!(record.runs, 1, "an upgrade is never started twice");
    }
}
