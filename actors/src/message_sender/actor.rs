//! The MessageSender actor: queues configuration messages in the [`Outbox`] and sends them one at
//! a time, FIFO, while REGISTERED.
//!
//! Messages: [`ConfigChanged`] (from the CommandExecutor, through its `ConfigOutbox`),
//! [`RegistrationChanged`], [`Stop`], and its own wake-ups (settle and retry timers, reloads of
//! the YAML).
//!
//! Both kinds are queued at start when REGISTERED and on every change to REGISTERED; a YAML
//! reload queues `full-config` (it can change the name, the intervals, the permissions). Nothing
//! is queued while not REGISTERED, and what is pending waits until REGISTERED again. The body of
//! a message is built when it is sent, from the entity store; `full-config` asks the KeyVault
//! for the public key (or reads the vault's public key file while the KeyVault restarts).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::snapshot::{self, EngineInfo, FullConfig, HistoryQueries, PublicKeyPem, SnapshotError};
use super::{kind_name, outcome_of, route, Outbox, Outcome, Request, ALL_KINDS};
use crate::backoff::{Backoff, FIRST_RETRY};
use crate::client::{Auth, ClientError};
use crate::config::Config;
use crate::context::ConfigReloaded;
use crate::entities::{EntityStore, RegistrationSettingsRecord};
use crate::events::ConfigPushFinished;
use crate::key_vault::{GetPublicKey, KeyVault, PUBLIC_KEY_FILE};
use crate::messages::{ConfigChanged, ConfigKind};
use crate::registration::{self, RegistrationChanged};
use crate::supervision::{failed_start, ChildGuard, ChildSpec, Stop};
use crate::{AgentContext, Secret};

/// How long a change waits before its message is sent, so a burst of changes (a batch of
/// commands) goes out as one snapshot.
pub const SETTLE: Duration = Duration::from_millis(200);

/// After a delivery, the next message waits this many times as long as the last one took to
/// build and send: a snapshot costs O(entities), and during a long burst of commands sending
/// back to back would take the CPU the commands need (at most a fifth goes to snapshots).
const PACING: u32 = 4;

/// The key vault's directory under `engine.data_dir`, as the engine opens it.
const VAULT_DIR: &str = "vault";

/// A body ready to send.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Body {
    Full(Box<FullConfig>),
    History(HistoryQueries),
}

type Sending = Pin<Box<dyn Future<Output = Result<u16, ClientError>>>>;

pub struct MessageSender {
    _guard: ChildGuard,
    ctx: AgentContext,
    entities: EntityStore,
    outbox: Outbox,
    registration: RegistrationChanged,
    info: EngineInfo,
    /// A settle or retry wake-up is armed: nothing is sent before it fires.
    timer: Option<SpawnHandle>,
    /// Waits between failed sends, capped at the message retry interval.
    backoff: Backoff,
    /// When the message being sent was taken from the outbox.
    sending_since: Option<Instant>,
}

impl MessageSender {
    pub fn new(
        ctx: AgentContext,
        entities: EntityStore,
        outbox: Outbox,
        guard: ChildGuard,
    ) -> MessageSender {
        let registration = ctx.registration.borrow().clone();
        let info = EngineInfo::current(&ctx.config());
        // The effective interval (set by OIAnalytics) replaces this cap at the first failure.
        let backoff = Backoff::new(
            FIRST_RETRY,
            ctx.config().oianalytics.intervals.message_retry,
        );
        MessageSender {
            _guard: guard,
            ctx,
            entities,
            outbox,
            registration,
            info,
            timer: None,
            backoff,
            sending_since: None,
        }
    }

    /// The supervised child. The outbox is reopened from the store at each start.
    pub fn child_spec(ctx: AgentContext, entities: EntityStore) -> ChildSpec {
        let policy = ctx.config().actors.restart_policy("message_sender");
        ChildSpec::new("message_sender", policy, move |guard| {
            match Outbox::open(ctx.store.clone()) {
                Ok(outbox) => ctx.peers.started(
                    MessageSender::new(ctx.clone(), entities.clone(), outbox, guard).start(),
                ),
                Err(e) => failed_start(guard, "message_sender", &e),
            }
        })
    }

    fn registered(&self) -> bool {
        self.registration.is_registered()
    }

    /// Queue a message of `kind`, unless not REGISTERED.
    fn request(&mut self, kind: ConfigKind) {
        let name = kind_name(kind);
        if !self.registered() {
            tracing::debug!(
                kind = name,
                "not registered: no configuration message queued"
            );
            return;
        }
        match self.outbox.request(kind, &crate::protocol::iso_now()) {
            Ok(Request::Queued { seq }) => {
                tracing::info!(kind = name, seq, "configuration message queued")
            }
            Ok(Request::Coalesced) => {
                tracing::debug!(kind = name, "a pending message will carry the change")
            }
            Ok(Request::AfterInFlight) => tracing::debug!(
                kind = name,
                "message being sent; another is queued when it ends"
            ),
            Err(e) => tracing::error!(
                kind = name,
                error = %e,
                "cannot persist a configuration message; the next change or restart queues it again"
            ),
        }
    }

    /// Arm a wake-up in `delay`, unless one is armed already (a retry wait is never shortened).
    fn wake_in(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        if self.timer.is_some() {
            return;
        }
        self.timer = Some(ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.pump(ctx);
        }));
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
    }

    /// The message retry interval in force (remote setting, else the YAML).
    fn message_retry(&self, config: &Config) -> Duration {
        let record = match self.entities.registration_settings() {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the registration settings; using the YAML message retry interval");
                None
            }
        };
        RegistrationSettingsRecord::effective_of(record.as_ref(), &config.oianalytics).message_retry
    }

    /// Send the head of the outbox if nothing holds it back.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.timer.is_some() || !self.registered() {
            return;
        }
        let Some(token) = self.registration.token.clone() else {
            return;
        };
        let Some(record) = self.outbox.begin() else {
            return;
        };
        let kind = record.kind;
        self.sending_since = Some(Instant::now());
        let vault = match kind {
            ConfigKind::FullConfig => self.ctx.peers.get::<KeyVault>(),
            ConfigKind::HistoryQueries => None,
        };
        let public_key = async move {
            match vault {
                Some(vault) => vault.send(GetPublicKey).await.ok(),
                None => None,
            }
        };
        let send = actix::fut::wrap_future::<_, Self>(public_key)
            .then(move |from_vault, act, _| {
                let prepared = act.prepare(kind, from_vault, token);
                async move {
                    match prepared {
                        Ok(sending) => outcome_of(&sending.await),
                        Err(reason) => Outcome::Failed(reason),
                    }
                }
                .into_actor(act)
            })
            .map(move |outcome, act, ctx| act.finished(kind, outcome, ctx));
        ctx.spawn(send);
    }

    /// Build the body and the call. `from_vault` is the KeyVault's answer, `None` when it could
    /// not be asked.
    fn prepare(
        &self,
        kind: ConfigKind,
        from_vault: Option<Option<String>>,
        token: Secret<String>,
    ) -> Result<Sending, String> {
        let config = self.ctx.config();
        let body = self
            .body(kind, &config, from_vault)
            .map_err(|e| e.to_string())?;
        let factory = crate::oia::client_factory(&config)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "oianalytics.host is not set; set it and reload".to_owned())?;
        let client = factory.client();
        Ok(Box::pin(async move {
            client
                .put_json(route(kind), &body, Auth::Bearer(&token))
                .await
        }))
    }

    fn body(
        &self,
        kind: ConfigKind,
        config: &Arc<Config>,
        from_vault: Option<Option<String>>,
    ) -> Result<Body, SnapshotError> {
        match kind {
            ConfigKind::FullConfig => {
                let pem = match from_vault {
                    Some(answer) => answer,
                    None => read_public_key_file(&config.engine.data_dir),
                };
                let key = pem.as_deref().map(PublicKeyPem::parse).transpose()?;
                let body = snapshot::full_config(&self.entities, config, &self.info, key)?;
                Ok(Body::Full(Box::new(body)))
            }
            ConfigKind::HistoryQueries => {
                Ok(Body::History(snapshot::history_queries(&self.entities)?))
            }
        }
    }

    fn finished(&mut self, kind: ConfigKind, outcome: Outcome, ctx: &mut Context<Self>) {
        let name = kind_name(kind);
        ConfigPushFinished {
            kind: name,
            delivered: outcome == Outcome::Delivered,
        }
        .emit();
        let ended = self.outbox.finish(&outcome, &crate::protocol::iso_now());
        let retry = match (&ended, &outcome) {
            (Err(e), _) => {
                tracing::error!(kind = name, error = %e, "cannot record the outcome of a configuration message; it stays pending");
                true
            }
            (Ok(None), _) => false,
            (Ok(Some(record)), Outcome::Delivered) => {
                tracing::info!(
                    kind = name,
                    seq = record.seq,
                    "configuration message delivered"
                );
                false
            }
            (Ok(Some(record)), Outcome::Rejected(answer)) => {
                tracing::error!(
                    kind = name,
                    seq = record.seq,
                    answer = %answer,
                    "OIAnalytics rejected the configuration message (Bad Request); it is dropped"
                );
                false
            }
            (Ok(Some(_)), Outcome::Failed(_)) => true,
        };
        let took = self.sending_since.take().map(|t| t.elapsed());
        if !retry {
            self.backoff.reset();
            let pause = took.map_or(SETTLE, |took| SETTLE.max(took * PACING));
            self.wake_in(ctx, pause);
            return;
        }
        let interval = self.message_retry(&self.ctx.config());
        self.backoff.set_limits(FIRST_RETRY, interval);
        let delay = self.backoff.on_failure();
        if let (Ok(Some(record)), Outcome::Failed(reason)) = (&ended, &outcome) {
            tracing::warn!(
                kind = name,
                seq = record.seq,
                attempts = record.attempts,
                error = %reason,
                retry_in = %humantime::format_duration(delay),
                "configuration message not delivered; it will be retried"
            );
        }
        self.wake_in(ctx, delay);
    }
}

/// The public key the vault keeps next to the private one, when the KeyVault cannot be asked.
fn read_public_key_file(data_dir: &Path) -> Option<String> {
    let path = data_dir.join(VAULT_DIR).join(PUBLIC_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(pem) => Some(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the public key file");
            None
        }
    }
}

impl Actor for MessageSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        registration::subscribe::<Self>(ctx, self.ctx.registration.clone());
        self.ctx.follow_config(ctx);
        let pending = self.outbox.pending().count();
        if pending > 0 {
            tracing::info!(
                pending,
                "configuration messages left pending by the previous run"
            );
        }
        if self.registered() {
            for kind in ALL_KINDS {
                self.request(kind);
            }
            self.pump(ctx);
        }
    }
}

impl Handler<ConfigChanged> for MessageSender {
    type Result = ();

    fn handle(&mut self, msg: ConfigChanged, ctx: &mut Context<Self>) {
        self.request(msg.kind);
        if self.registered() {
            self.wake_in(ctx, SETTLE);
        }
    }
}

impl Handler<ConfigReloaded> for MessageSender {
    type Result = ();

    fn handle(&mut self, _: ConfigReloaded, ctx: &mut Context<Self>) {
        self.handle(
            ConfigChanged {
                kind: ConfigKind::FullConfig,
            },
            ctx,
        );
    }
}

impl Handler<RegistrationChanged> for MessageSender {
    type Result = ();

    fn handle(&mut self, msg: RegistrationChanged, ctx: &mut Context<Self>) {
        let was_registered = self.registered();
        self.registration = msg;
        if !self.registered() {
            // Pending messages wait; nothing is sent until REGISTERED again.
            self.cancel_timer(ctx);
            return;
        }
        if !was_registered {
            self.cancel_timer(ctx);
            self.backoff.reset();
            for kind in ALL_KINDS {
                self.request(kind);
            }
            self.pump(ctx);
        }
    }
}

impl Handler<Stop> for MessageSender {
    type Result = ();

    /// Everything is persisted: a message in flight stays PENDING and is sent at the next start.
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
