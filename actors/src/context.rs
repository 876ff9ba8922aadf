//! What every engine actor is given at start: the live configuration, the store, the directory
//! of peers and the engine's identity. Cheap to clone.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;

use crate::commands::Journal;
use crate::config::Config;
use crate::entities::LiveEngineSettings;
use crate::registration::RegistrationWatch;
use crate::store::Store;
use crate::supervision::Peers;

#[derive(Clone, Debug)]
pub struct AgentContext {
    /// The YAML configuration; a SIGHUP reload replaces it (read it at use, not at start).
    pub config: watch::Receiver<Arc<Config>>,
    pub store: Store,
    /// The command journal over `store`, shared by the actors that write it (it numbers the
    /// status reports).
    pub journal: Journal,
    pub peers: Peers,
    /// Stable across restarts; reported to OIAnalytics as `oibusId`.
    pub engine_id: String,
    /// The current registration (status and token), updated by the Registration actor.
    pub registration: RegistrationWatch,
    /// The engine settings in force (YAML baseline plus OIAnalytics changes), republished by
    /// the CommandExecutor when a command changes them: the console level and the log shipper
    /// follow it.
    pub engine_settings: LiveEngineSettings,
}

impl AgentContext {
    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Send [`ConfigReloaded`] to the actor after each reload, for as long as it lives.
    pub fn follow_config<A>(&self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>> + Handler<ConfigReloaded>,
    {
        let mut config = self.config.clone();
        config.borrow_and_update();
        forward_changes(ctx, config, ConfigReloaded);
    }
}

/// Send `message(value)` to the actor after each later change of `watch`, for as long as it
/// lives; the current value is not sent (read it in `started`).
pub fn forward_changes<A, T, M>(
    ctx: &mut Context<A>,
    mut watch: watch::Receiver<T>,
    message: fn(T) -> M,
) where
    A: Actor<Context = Context<A>> + Handler<M>,
    T: Clone + Send + Sync + 'static,
    M: Message<Result = ()> + Send + 'static,
{
    let addr = ctx.address();
    ctx.spawn(actix::fut::wrap_future(async move {
        while watch.changed().await.is_ok() {
            let current = watch.borrow_and_update().clone();
            if addr.send(message(current)).await.is_err() {
                break; // the actor is gone
            }
        }
    }));
}

/// A SIGHUP reload replaced the configuration with this one.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ConfigReloaded(pub Arc<Config>);

#[cfg(test)]
impl AgentContext {
    /// A context for actor tests: `config`, not registered, no peers.
    pub fn for_tests(store: Store, config: Config) -> AgentContext {
        let (_, config) = watch::channel(Arc::new(config));
        let (_, registration) = watch::channel(crate::registration::RegistrationChanged::default());
        AgentContext {
            config,
            journal: Journal::open(store.clone()).expect("a fresh test store opens its journal"),
            store,
            peers: Peers::default(),
            engine_id: "engine".into(),
            registration,
            engine_settings: LiveEngineSettings::new(Default::default()),
        }
    }
}
