//! What the engine's parts share: the handles the local API and the signal handlers read
//! ([`Engine`]) and the local API's listener ([`SharedApi`]). The engine fills them and moves the
//! listener; the API only serves them, so neither module needs the other's internals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::Addr;
use actix_web::dev::ServerHandle;
use oibus_actors::config::Config;
use oibus_actors::entities::{EntityStore, LiveEngineSettings};
use oibus_actors::store::Store;
use oibus_actors::supervision::{Peers, Supervisor};
use serde::Serialize;
use tokio::sync::watch;

/// What the local API and the signal handlers share.
#[derive(Clone)]
pub struct Engine {
    pub config_path: PathBuf,
    pub config: watch::Sender<Arc<Config>>,
    pub store: Store,
    pub peers: Peers,
    pub supervisor: Addr<Supervisor>,
    pub engine_id: String,
    pub started: Instant,
    pub reloads: Arc<Mutex<ReloadStatus>>,
    pub entities: EntityStore,
    pub engine_settings: LiveEngineSettings,
    /// The local API's listener (moved by `webServer.port`).
    pub api: SharedApi,
    /// What the routes that change state require (`oibus_actors::api_token`).
    pub api_token: oibus_actors::Secret<String>,
    /// The command journal (the status page's latest commands and waiting reports).
    pub journal: oibus_actors::commands::Journal,
}

/// The outcome of the last configuration (re)load, shown in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    pub loaded_at: String,
    pub last_reload: Option<ReloadAttempt>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadAttempt {
    pub at: String,
    pub applied: bool,
    pub error: Option<String>,
}

/// The local API's listener, shared by the engine (which binds and moves it) and `/status`.
#[derive(Default)]
pub struct ApiState {
    /// Where it listens now.
    pub listen: Option<SocketAddr>,
    /// Stops the listener at `listen`.
    pub handle: Option<ServerHandle>,
    /// Why the last move to `webServer.port` failed, until a later bind succeeds.
    pub error: Option<String>,
}

pub type SharedApi = Arc<Mutex<ApiState>>;
