//! The Registration actor: owns the registration record (`state` CF, key `registration`) and
//! publishes its status and token to the authenticated actors.
//!
//! Messages: [`Register`] and [`Unregister`] (local API), [`GetRegistration`] (status views),
//! and its own `Tick` (start or poll, never overlapping).

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use super::{
    next_on_start, on_check, CheckOutcome, Next, RegistrationChanged, RegistrationRecord,
    RegistrationStatus,
};
use crate::client::{routes, Auth, ClientError};
use crate::events::{RegistrationStepFailed, RegistrationStepSucceeded};
use crate::key_vault::{GetLocalCipher, KeyVault, LocalCipher, RegenerateKeys};
use crate::protocol::{self, RegistrationCheck, RegistrationRequest, RegistrationResponse};
use crate::store::{Cf, Durability};
use crate::supervision::{ChildGuard, Stop};
use crate::{AgentContext, Secret};

const RECORD_KEY: &[u8] = b"registration";

/// Start a registration (new code and keys). Without `force`, refused while REGISTERED.
#[derive(Debug, Message)]
#[rtype(result = "Result<RegistrationView, RegistrationError>")]
pub struct Register {
    pub force: bool,
}

/// Local unregister (no HTTP, as in OIBus): clears the token; host and keys are kept. The
/// agent stays unregistered until `Register`.
#[derive(Debug, Message)]
#[rtype(result = "Result<RegistrationView, RegistrationError>")]
pub struct Unregister;

#[derive(Debug, Message)]
#[rtype(result = "RegistrationView")]
pub struct GetRegistration;

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Tick;

/// What `/status` shows of the registration (never the token).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistrationView {
    pub status: RegistrationStatus,
    pub activation_code: Option<String>,
    pub expiration_date: Option<String>,
    pub activation_date: Option<String>,
    pub host: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(
        "oianalytics.host is not set in the configuration; set it, reload (SIGHUP), then register"
    )]
    NoHost,
    #[error("already registered with {0}; use `oibus-agent register --force` to register again with new keys")]
    AlreadyRegistered(String),
    #[error("cannot store the registration: {0}")]
    Store(#[from] crate::store::StoreError),
}

pub struct Registration {
    _guard: ChildGuard,
    ctx: AgentContext,
    publish: std::sync::Arc<watch::Sender<RegistrationChanged>>,
    record: RegistrationRecord,
    cipher: Option<LocalCipher>,
    busy: bool,
    /// Bumped by local register/unregister, so an answer to an older request is ignored.
    epoch: u64,
    last_error: Option<String>,
}

impl Registration {
    pub fn new(
        guard: ChildGuard,
        ctx: AgentContext,
        publish: std::sync::Arc<watch::Sender<RegistrationChanged>>,
    ) -> Self {
        Registration {
            _guard: guard,
            ctx,
            publish,
            record: RegistrationRecord::default(),
            cipher: None,
            busy: false,
            epoch: 0,
            last_error: None,
        }
    }

    fn interval(&self) -> Duration {
        self.ctx.config().oianalytics.intervals.registration_check
    }

    fn view(&self) -> RegistrationView {
        RegistrationView {
            status: self.record.status,
            activation_code: self.record.activation_code.clone(),
            expiration_date: self.record.expiration_date.clone(),
            activation_date: self.record.activation_date.clone(),
            host: self.record.host.clone(),
            last_error: self.last_error.clone(),
        }
    }

    fn save(&mut self, record: RegistrationRecord) -> Result<(), crate::store::StoreError> {
        self.ctx
            .store
            .put(Cf::State, RECORD_KEY, &record, Durability::Sync)?;
        self.record = record;
        self.announce();
        Ok(())
    }

    /// Publish the status (and the token while REGISTERED) to the authenticated actors.
    fn announce(&self) {
        let token = match (&self.record.status, &self.record.sealed_token, &self.cipher) {
            (RegistrationStatus::Registered, Some(sealed), Some(cipher)) => {
                match cipher.open_secret(sealed) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::error!(error = %e, "the stored access token cannot be opened with the vault's local key; register again (oibus-agent register --force)");
                        None
                    }
                }
            }
            _ => None,
        };
        let status = if token.is_none() && self.record.status == RegistrationStatus::Registered {
            RegistrationStatus::NotRegistered
        } else {
            self.record.status
        };
        self.publish.send_if_modified(|current| {
            let next = RegistrationChanged { status, token };
            if *current == next {
                return false;
            }
            *current = next;
            true
        });
    }

    fn decide(&mut self, ctx: &mut Context<Self>) {
        let config = self.ctx.config();
        let host = config.oianalytics.host.as_deref();
        if self.record.unregistered_by_user
            && self.record.status == RegistrationStatus::NotRegistered
        {
            return;
        }
        match next_on_start(&self.record, host, chrono::Utc::now()) {
            Next::Idle | Next::Announce => {}
            Next::Start => self.start(ctx),
            Next::Poll => self.poll(ctx),
        }
    }

    /// New code, new key pair, E1. Failures are retried at the next tick.
    fn start(&mut self, ctx: &mut Context<Self>) {
        let config = self.ctx.config();
        let Some(host) = config.oianalytics.host.clone() else {
            return;
        };
        let client = match crate::oia::client_factory(&config) {
            Ok(Some(f)) => f.client(),
            Ok(None) => return,
            Err(e) => return self.failed("registration", &e.to_string()),
        };
        let Some(vault) = self.ctx.peers.get::<KeyVault>() else {
            return self.failed("registration", "the key vault is not running yet");
        };
        self.busy = true;
        let code = crate::random_id(6);
        let request = RegistrationRequest {
            activation_code: code.clone(),
            oibus_id: self.ctx.engine_id.clone(),
            oibus_name: config.engine.name.clone(),
            oibus_version: config.oianalytics.oibus_version.clone(),
            oibus_os: protocol::os_string(),
            oibus_arch: protocol::arch_string().to_string(),
            public_key: String::new(),
        };
        let fut = async move {
            let public_key = vault
                .send(RegenerateKeys)
                .await
                .map_err(|e| format!("key vault unavailable: {e}"))?
                .map_err(|e| e.to_string())?;
            let request = RegistrationRequest {
                public_key,
                ..request
            };
            client
                .post_json_reply::<_, RegistrationResponse>(
                    routes::REGISTRATION,
                    &request,
                    Auth::None,
                )
                .await
                .map_err(|e: ClientError| e.to_string())
        };
        let epoch = self.epoch;
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            act.busy = false;
            if act.epoch != epoch {
                return;
            }
            match result {
                Ok(answer) => {
                    let record = RegistrationRecord {
                        status: RegistrationStatus::Pending,
                        activation_code: Some(code.clone()),
                        check_url: Some(answer.redirect_url),
                        expiration_date: Some(answer.expiration_date.clone()),
                        host: Some(host),
                        ..Default::default()
                    };
                    match act.save(record) {
                        Ok(()) => {
                            act.last_error = None;
                            RegistrationStepSucceeded { step: "register" }.emit();
                            tracing::info!(
                                activation_code = %code,
                                expires = %answer.expiration_date,
                                "registration started: enter this activation code in OIAnalytics"
                            );
                        }
                        Err(e) => act.failed("registration", &e.to_string()),
                    }
                }
                Err(e) => act.failed("registration", &e),
            }
        }));
    }

    /// E2 once; completion stores the token and announces REGISTERED.
    fn poll(&mut self, ctx: &mut Context<Self>) {
        let config = self.ctx.config();
        let (Some(check_url), Ok(Some(factory))) = (
            self.record.check_url.clone(),
            crate::oia::client_factory(&config),
        ) else {
            return;
        };
        let client = factory.client();
        self.busy = true;
        let fut = async move {
            client
                .get_url_json::<RegistrationCheck>(&check_url, Auth::None)
                .await
        };
        let epoch = self.epoch;
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.busy = false;
            if act.epoch != epoch {
                return;
            }
            let answer = match result {
                Ok(a) => a,
                Err(e) => return act.failed("check-registration", &e.to_string()),
            };
            RegistrationStepSucceeded {
                step: "check-registration",
            }
            .emit();
            match on_check(&act.record, &answer, chrono::Utc::now()) {
                CheckOutcome::Waiting => {}
                CheckOutcome::Expired => {
                    tracing::info!(
                        "activation code expired; starting a new registration with a new code"
                    );
                    act.start(ctx);
                }
                CheckOutcome::Completed { token } => act.complete(token),
            }
        }));
    }

    fn complete(&mut self, token: String) {
        let Some(cipher) = &self.cipher else {
            return self.failed(
                "check-registration",
                "the vault's local key is not available",
            );
        };
        let record = RegistrationRecord {
            status: RegistrationStatus::Registered,
            sealed_token: Some(cipher.seal_secret(&Secret::new(token))),
            activation_date: Some(protocol::iso_now()),
            host: self.record.host.clone(),
            ..Default::default()
        };
        match self.save(record) {
            Ok(()) => {
                self.last_error = None;
                RegistrationStepSucceeded {
                    step: "registration-completed",
                }
                .emit();
                tracing::info!(host = ?self.record.host, "registered with OIAnalytics");
            }
            Err(e) => self.failed("check-registration", &e.to_string()),
        }
    }

    fn failed(&mut self, operation: &'static str, error: &str) {
        RegistrationStepFailed {
            step: operation,
            error,
            retry_in: self.interval(),
        }
        .emit();
        self.last_error = Some(format!("{operation}: {error}"));
    }

    fn load(&mut self) {
        match self
            .ctx
            .store
            .get::<RegistrationRecord>(Cf::State, RECORD_KEY)
        {
            Ok(Some(r)) => self.record = r,
            Ok(None) => {}
            // The store logs and quarantines corrupt records itself; an I/O error is retried by
            // the supervisor restarting us.
            Err(e) => tracing::error!(error = %e, "cannot read the registration record"),
        }
    }
}

impl Actor for Registration {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load();
        let Some(vault) = self.ctx.peers.get::<KeyVault>() else {
            tracing::error!("the key vault must start before registration");
            ctx.stop();
            return;
        };
        ctx.wait(vault.send(GetLocalCipher).into_actor(self).map(|cipher, act, ctx| {
            match cipher {
                Ok(c) => {
                    act.cipher = Some(c);
                    act.announce();
                    if act.record.status == RegistrationStatus::Pending {
                        tracing::info!(activation_code = ?act.record.activation_code, "registration pending: enter the activation code in OIAnalytics");
                    }
                    ctx.notify(Tick);
                }
                Err(_) => ctx.stop(),
            }
        }));
    }
}

impl Handler<Tick> for Registration {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        if !self.busy {
            self.decide(ctx);
        }
        ctx.notify_later(Tick, self.interval());
    }
}

impl Handler<Register> for Registration {
    type Result = Result<RegistrationView, RegistrationError>;

    fn handle(&mut self, msg: Register, ctx: &mut Context<Self>) -> Self::Result {
        let config = self.ctx.config();
        let host = config
            .oianalytics
            .host
            .clone()
            .ok_or(RegistrationError::NoHost)?;
        if self.record.status == RegistrationStatus::Registered && !msg.force {
            return Err(RegistrationError::AlreadyRegistered(host));
        }
        // Registering again stops every authenticated flow until the new one completes.
        self.epoch += 1;
        self.busy = false;
        self.save(RegistrationRecord {
            status: RegistrationStatus::NotRegistered,
            host: Some(host),
            ..Default::default()
        })?;
        self.start(ctx);
        Ok(self.view())
    }
}

impl Handler<Unregister> for Registration {
    type Result = Result<RegistrationView, RegistrationError>;

    fn handle(&mut self, _: Unregister, _: &mut Context<Self>) -> Self::Result {
        self.epoch += 1;
        self.busy = false;
        self.save(RegistrationRecord {
            status: RegistrationStatus::NotRegistered,
            host: self.record.host.clone(),
            unregistered_by_user: true,
            ..Default::default()
        })?;
        tracing::info!(
            "unregistered: authenticated calls to OIAnalytics stop until `oibus-agent register`"
        );
        Ok(self.view())
    }
}

impl Handler<GetRegistration> for Registration {
    type Result = MessageResult<GetRegistration>;

    fn handle(&mut self, _: GetRegistration, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view())
    }
}

impl Handler<Stop> for Registration {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
