//! The engine process (`oibus-agent run`): opens the store, starts the supervised actors and the
//! local API, and turns signals into an ordered shutdown (SIGTERM/SIGINT) or a configuration
//! reload (SIGHUP). Its exit code tells the launcher what to do (see `oibus_actors::exit`).
//!
//! It also applies the engine settings that act on the process: the console and OIA log levels,
//! and `webServer.port`, on which the local API is moved live (new listener first, then the old
//! one stopped; if the new port cannot be bound the old listener stays). The address in use is
//! recorded for the launcher and the CLI (`oibus_actors::api_address`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use anyhow::Context as _;
use oibus_actors::command_executor::CommandExecutor;
use oibus_actors::command_poller::CommandPoller;
use oibus_actors::command_reporter::CommandReporter;
use oibus_actors::commands::Journal;
use oibus_actors::config::{self, Config};
use oibus_actors::data_flow::DataFlow;
use oibus_actors::entities::{EngineSettings, EntityStore, LiveEngineSettings};
use oibus_actors::events::{self, Scraped};
use oibus_actors::key_vault::{KeySize, KeyVault};
use oibus_actors::log_shipper::{
    self, LogIntake, LogShipper, OiaLevelHandle, OiaLogLayer, SetOiaLevel, StatsHandle,
};
use oibus_actors::message_sender::MessageSender;
use oibus_actors::messages::ConfigOutbox;
use oibus_actors::metrics_aggregator::actor::{install_recorder, MetricsAggregator};
use oibus_actors::metrics_aggregator::MetricsHandle;
use oibus_actors::protocol::iso_now;
use oibus_actors::registration::actor::Registration;
use oibus_actors::registration::RegistrationChanged;
use oibus_actors::store::{Cf, Durability, Store};
use oibus_actors::supervision::{failed_start, ChildSpec, Peers, Shutdown, Supervisor};
use oibus_actors::AgentContext;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::logging::ConsoleLevel;
use crate::shared::{Engine, ReloadAttempt, ReloadStatus, SharedApi};

const ENGINE_ID_KEY: &[u8] = b"engine/id";

/// Run the engine until it is asked to stop; returns the process exit code.
pub fn run(config_path: &Path) -> anyhow::Result<i32> {
    let config = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(oibus_actors::exit::CONFIG);
        }
    };
    let (oia_layer, log_intake, oia_level) =
        OiaLogLayer::new(config.engine.log.oia, log_shipper::CHANNEL_CAPACITY);
    let console = crate::logging::init(
        config.engine.log.console,
        config.engine.log.format,
        Some(oia_layer),
    );
    install_panic_hook();

    std::fs::create_dir_all(&config.engine.data_dir).with_context(|| {
        format!(
            "cannot create engine.data_dir {}",
            config.engine.data_dir.display()
        )
    })?;
    let store = Store::open(&config.engine.data_dir.join("store"))?;
    let api_token = oibus_actors::api_token::ensure(&config.engine.data_dir)
        .context("cannot create the local API token")?;
    let engine_id = engine_id(&store)?;
    let entities = EntityStore::new(store.clone());
    entities
        .seed(&config, &engine_id)
        .context("cannot seed the entity store")?;
    let engine_settings = LiveEngineSettings::new(effective_engine_settings(&entities, &config));
    console.set(engine_settings.current().logger.console.level);
    oia_level.set(engine_settings.current().logger.oia.level);
    tracing::info!(
        version = oibus_actors::VERSION,
        engine_id,
        config = %config_path.display(),
        data_dir = %config.engine.data_dir.display(),
        "oibus-agent engine starting"
    );

    let system = System::new();
    let listen = config.engine.api.listen;
    let shutdown_timeout = config.launcher.shutdown_timeout;
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let (registration_tx, registration_rx) = watch::channel(RegistrationChanged::default());
    let ctx = AgentContext {
        config: config_rx,
        store: store.clone(),
        journal: Journal::open(store.clone()).context("cannot open the command journal")?,
        peers: Peers::default(),
        engine_id: engine_id.clone(),
        registration: registration_rx.clone(),
        engine_settings: engine_settings.clone(),
    };
    let metrics = MetricsHandle::new();
    install_recorder(&metrics, &engine_id);
    register_scraped_metrics(&ctx, log_intake.stats());
    let engine = system.block_on(async {
        let oia_level_follow = oia_level.clone();
        let supervisor = Supervisor::new(children(
            &ctx,
            &metrics,
            Arc::new(registration_tx),
            (log_intake, oia_level),
        ))
        .start();
        // The CommandExecutor asks it for an ordered shutdown before a restart or an upgrade.
        ctx.peers.set(supervisor.clone());
        actix_rt::spawn(follow_log_levels(
            engine_settings.subscribe(),
            console.clone(),
            oia_level_follow,
            ctx.peers.clone(),
        ));
        Engine {
            config_path: config_path.to_path_buf(),
            config: config_tx,
            store: store.clone(),
            peers: ctx.peers.clone(),
            supervisor,
            engine_id,
            started: Instant::now(),
            reloads: Arc::new(Mutex::new(ReloadStatus {
                loaded_at: iso_now(),
                last_reload: None,
            })),
            entities,
            engine_settings,
            api: SharedApi::default(),
            api_token,
            journal: ctx.journal.clone(),
        }
    });
    // Subscribed before the first bind: a port change from then on is not missed.
    let port_changes = engine.engine_settings.subscribe();
    system.block_on(async { start_api(&engine, listen) })?;
    let data_dir = engine.config.borrow().engine.data_dir.clone();
    let socket = oibus_actors::api_address::socket_path(&data_dir);
    let unix = system.block_on(async { crate::api::start_unix(engine.clone(), &socket) });
    match unix.map_err(anyhow::Error::from).and_then(|_| {
        oibus_actors::api_address::write_socket(&data_dir, &socket).map_err(anyhow::Error::from)
    }) {
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(socket = %socket.display(), error = %e, "the local API's Unix socket is not available; `register` and `unregister` need the token over TCP")
        }
    }
    system.block_on(async {
        actix_rt::spawn(follow_web_server_port(port_changes, engine.clone()));
        actix_rt::spawn(handle_signals(engine.clone(), shutdown_timeout));
        actix_rt::spawn(crate::status_page::sample_values(engine.clone()));
    });
    let code = system.run_with_code().context("engine event loop failed")?;
    let _ = std::fs::remove_file(oibus_actors::api_address::socket_record(&data_dir));
    let _ = std::fs::remove_file(&socket);
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "store flush at exit failed; the WAL still has every write");
    }
    tracing::info!(exit_code = code, "oibus-agent engine stopped");
    Ok(code)
}

/// The `/metrics` values the store, the journal and the log shipper own, read at every scrape.
fn register_scraped_metrics(ctx: &AgentContext, logs: StatsHandle) {
    let store = ctx.store.clone();
    events::register_collector(Scraped::counter(
        "oibus_agent_store_quarantined",
        "Corrupt records moved to quarantine",
        move || store.quarantined(),
    ));
    // Counts the journal keeps in step with its writes: a scrape reads no record.
    type Count = fn(&Journal) -> u64;
    let gauges: [(&str, &str, Count); 2] = [
        (
            "oibus_agent_status_reports_pending",
            "Status reports waiting to be acknowledged by OIAnalytics",
            Journal::reports_waiting,
        ),
        (
            "oibus_agent_commands_open",
            "Commands retrieved or running, not finished yet",
            Journal::commands_open,
        ),
    ];
    for (name, help, count) in gauges {
        let journal = ctx.journal.clone();
        events::register_collector(Scraped::gauge(name, help, move || Some(count(&journal))));
    }
    events::register_collector(logs);
}

/// The supervised actors, in start order (stopped in reverse).
fn children(
    ctx: &AgentContext,
    metrics: &MetricsHandle,
    registration: Arc<watch::Sender<RegistrationChanged>>,
    (log_intake, oia_level): (LogIntake, OiaLevelHandle),
) -> Vec<ChildSpec> {
    let config = ctx.config();
    let policy = |name| config.actors.restart_policy(name);
    let vault_dir = config.engine.data_dir.join("vault");
    // Validated by the config model; the default only guards against a bug there.
    let key_size = KeySize::try_from(config.oianalytics.key_size).unwrap_or_default();
    let mut specs = Vec::new();
    // First to start, last to stop: its final flush counts everything the others did.
    let (c, m) = (ctx.clone(), metrics.clone());
    specs.push(ChildSpec::new(
        "metrics_aggregator",
        policy("metrics_aggregator"),
        move |guard| {
            c.peers
                .started(MetricsAggregator::new(guard, c.clone(), m.clone()).start())
        },
    ));
    // Next: stopped just before the metrics, so the other actors' shutdown logs reach the queue
    // and its final post is still counted.
    specs.push(LogShipper::child_spec(ctx.clone(), log_intake, oia_level));
    let c = ctx.clone();
    specs.push(ChildSpec::new(
        "key_vault",
        policy("key_vault"),
        move |guard| match KeyVault::open(&vault_dir, key_size) {
            Ok(vault) => c.peers.started(vault.with_guard(guard).start()),
            Err(e) => failed_start(guard, "key_vault", &e),
        },
    ));
    let c = ctx.clone();
    specs.push(ChildSpec::new(
        "registration",
        policy("registration"),
        move |guard| {
            c.peers
                .started(Registration::new(guard, c.clone(), registration.clone()).start())
        },
    ));
    let entities = EntityStore::new(ctx.store.clone());
    specs.push(MessageSender::child_spec(ctx.clone(), entities.clone()));
    // Before the executor, which tells it of entity changes; stopped after it.
    let (c, e) = (ctx.clone(), entities.clone());
    specs.push(ChildSpec::new(
        "data_flow",
        policy("data_flow"),
        move |guard| {
            c.peers
                .started(DataFlow::new(c.clone(), e.clone(), guard).start())
        },
    ));
    let (c, e) = (ctx.clone(), entities.clone());
    specs.push(ChildSpec::new(
        "command_executor",
        policy("command_executor"),
        move |guard| {
            let outbox = ConfigOutbox::to_peer::<MessageSender>(c.peers.clone());
            let stager = oibus_actors::upgrade::stager::LauncherStager::new(c.clone());
            c.peers.started(
                CommandExecutor::new(c.clone(), e.clone(), outbox, Some(stager), guard).start(),
            )
        },
    ));
    // The reporter shares the poller's restart policy (`actors.command_poller`): both talk to
    // OIAnalytics about commands, and the YAML keeps one key for it.
    let (c, e) = (ctx.clone(), entities.clone());
    specs.push(ChildSpec::new(
        "command_reporter",
        policy("command_poller"),
        move |guard| {
            c.peers
                .started(CommandReporter::new(c.clone(), e.clone(), guard).start())
        },
    ));
    let (c, e) = (ctx.clone(), entities);
    specs.push(ChildSpec::new(
        "command_poller",
        policy("command_poller"),
        move |guard| {
            c.peers
                .started(CommandPoller::new(c.clone(), e.clone(), guard).start())
        },
    ));
    specs
}

/// The engine settings in force: the stored ones over the YAML (the reference defaults if the
/// store cannot be read, which the executor reports when it next writes them).
fn effective_engine_settings(entities: &EntityStore, config: &Config) -> EngineSettings {
    match entities.engine_settings() {
        Ok(Some(record)) => record.effective(config),
        Ok(None) => EngineSettings::default(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the engine settings; using the defaults");
            EngineSettings::default()
        }
    }
}

/// Apply the console and OIA log levels of the engine settings whenever they change (remote
/// `update-engine-logger`, or a SIGHUP when OIAnalytics never set the logger).
async fn follow_log_levels(
    mut settings: watch::Receiver<Arc<EngineSettings>>,
    console: ConsoleLevel,
    oia: OiaLevelHandle,
    peers: Peers,
) {
    while settings.changed().await.is_ok() {
        let logger = settings.borrow_and_update().logger.clone();
        console.set(logger.console.level);
        if logger.oia.level != oia.get() {
            oia.set(logger.oia.level);
            // Wakes the shipper so records queued while silent go out at once.
            peers.do_send::<LogShipper, _>(SetOiaLevel(logger.oia.level));
        }
    }
}

/// Bind the local API at start: the IP of `engine.api.listen` (loopback by default; OIAnalytics
/// never changes it) and the effective `webServer.port`. If that port was set by OIAnalytics and
/// cannot be bound, fall back to `engine.api.listen`, so the launcher and the CLI still reach
/// the engine.
fn start_api(engine: &Engine, yaml: SocketAddr) -> anyhow::Result<()> {
    let wanted = SocketAddr::new(yaml.ip(), engine.engine_settings.current().web_server.port);
    let (handle, listen, error) = match crate::api::start(engine.clone(), wanted) {
        Ok(handle) => (handle, wanted, None),
        Err(e) if wanted != yaml => {
            let error = format!(
                "cannot listen on {wanted} (webServer.port set by OIAnalytics): {e}; listening on engine.api.listen {yaml} instead. Free port {port} and restart, or send update-engine-web-server with a free port",
                port = wanted.port()
            );
            tracing::error!("{error}");
            let handle = crate::api::start(engine.clone(), yaml).with_context(|| {
                format!("cannot start the local API on engine.api.listen {yaml} either")
            })?;
            (handle, yaml, Some(error))
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot start the local API on engine.api.listen {yaml}"))
        }
    };
    record_api(engine, listen, handle, error);
    Ok(())
}

/// Remember where the local API listens, and record it for the launcher and the CLI.
fn record_api(
    engine: &Engine,
    listen: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    error: Option<String>,
) {
    {
        let mut api = engine.api.lock().unwrap_or_else(|p| p.into_inner());
        api.listen = Some(listen);
        api.handle = Some(handle);
        api.error = error;
    }
    let data_dir = engine.config.borrow().engine.data_dir.clone();
    if let Err(e) = oibus_actors::api_address::write(&data_dir, listen) {
        tracing::warn!(error = %e, %listen, "cannot record the local API address; the launcher and the CLI use engine.api.listen");
    }
}

/// Move the local API whenever the effective `webServer.port` changes (`update-engine-web-server`,
/// or a SIGHUP changing the port of `engine.api.listen` while OIAnalytics never set it).
async fn follow_web_server_port(
    mut settings: watch::Receiver<Arc<EngineSettings>>,
    engine: Engine,
) {
    while settings.changed().await.is_ok() {
        let port = settings.borrow_and_update().web_server.port;
        move_api(&engine, port).await;
    }
}

/// Start a listener on `port` first, then stop the old one; if `port` cannot be bound, keep the
/// old listener and say so (the command that asked has already completed, as in OIBus).
async fn move_api(engine: &Engine, port: u16) {
    let (current, old) = {
        let api = engine.api.lock().unwrap_or_else(|p| p.into_inner());
        (api.listen, api.handle.clone())
    };
    let Some(current) = current else { return };
    if current.port() == port {
        // Back to the port in use: an earlier failed move no longer matters.
        engine.api.lock().unwrap_or_else(|p| p.into_inner()).error = None;
        return;
    }
    let wanted = SocketAddr::new(current.ip(), port);
    match crate::api::start(engine.clone(), wanted) {
        Ok(handle) => {
            record_api(engine, wanted, handle, None);
            tracing::info!(from = %current, to = %wanted, "local API moved to webServer.port");
            if let Some(old) = old {
                old.stop(true).await;
            }
        }
        Err(e) => {
            let error = format!(
                "cannot move the local API to port {port} (webServer.port): {e}; it keeps listening on {current}. Free port {port} and restart the engine, or send update-engine-web-server with a free port"
            );
            tracing::error!("{error}");
            engine.api.lock().unwrap_or_else(|p| p.into_inner()).error = Some(error);
        }
    }
}

fn engine_id(store: &Store) -> anyhow::Result<String> {
    if let Some(id) = store.get::<String>(Cf::State, ENGINE_ID_KEY)? {
        return Ok(id);
    }
    let id = oibus_actors::random_id(16);
    store.put(Cf::State, ENGINE_ID_KEY, &id, Durability::Sync)?;
    Ok(id)
}

async fn handle_signals(engine: Engine, shutdown_timeout: Duration) {
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        _ => {
            tracing::error!("cannot install signal handlers; stopping");
            System::current().stop_with_code(1);
            return;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&engine),
        }
    }
    tracing::info!(timeout = %humantime::format_duration(shutdown_timeout), "stop requested; shutting down in order");
    // Leave the launcher a margin before its own SIGKILL.
    let budget = shutdown_timeout
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_secs(1));
    let _ = engine.supervisor.send(Shutdown { timeout: budget }).await;
    let api = engine
        .api
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .handle
        .clone();
    if let Some(api) = api {
        api.stop(true).await;
    }
    System::current().stop_with_code(oibus_actors::exit::STOPPED);
}

/// SIGHUP: re-read and validate the whole file; apply it, or keep the old one and say why.
pub fn reload(engine: &Engine) {
    let attempt = match config::load(&engine.config_path) {
        Ok(new) => {
            let old = engine.config.borrow().clone();
            for key in restart_only_changes(&old, &new) {
                tracing::warn!(
                    key,
                    "changed in the file but only applied at the next restart"
                );
            }
            // The console level follows the effective engine settings (see follow_console_level).
            engine
                .engine_settings
                .publish(effective_engine_settings(&engine.entities, &new));
            engine.config.send_replace(Arc::new(new));
            tracing::info!(config = %engine.config_path.display(), "configuration reloaded");
            ReloadAttempt {
                at: iso_now(),
                applied: true,
                error: None,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "configuration reload rejected; keeping the running configuration");
            ReloadAttempt {
                at: iso_now(),
                applied: false,
                error: Some(e.to_string()),
            }
        }
    };
    let mut status = engine.reloads.lock().unwrap_or_else(|p| p.into_inner());
    if attempt.applied {
        status.loaded_at = attempt.at.clone();
    }
    status.last_reload = Some(attempt);
}

/// Keys that a running engine cannot change in place.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.engine.data_dir != new.engine.data_dir {
        keys.push("engine.data_dir");
    }
    // Its port follows the effective webServer.port, live; only the address needs a restart.
    if old.engine.api.listen.ip() != new.engine.api.listen.ip() {
        keys.push("engine.api.listen");
    }
    if old.oianalytics.key_size != new.oianalytics.key_size {
        keys.push("oianalytics.key_size");
    }
    keys
}

/// Panics are bugs: log them with their location before the actor (or thread) unwinds, so the
/// supervisor's restart has a visible cause.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            panic = %info,
            "panic (a bug): the actor it happened in is restarted by its supervisor"
        );
        default(info);
    }));
}
