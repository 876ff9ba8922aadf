//! The DataFlow actor: starts, restarts and stops one actor per enabled south and north as the
//! stored entities change (`Reconcile`, sent by the CommandExecutor after a configuration
//! command), keeps one timer per scan mode in use, and answers the commands that act on the
//! running data plane (`DataCommand`).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use actix::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value};

use super::item_test::str_field;
use super::router::{NorthRoute, Router};
use super::schedule::Schedule;
use super::transform::{Origin, Routing};
use crate::commands::CommandType;
use crate::content::{Content, ContentType};
use crate::entities::transformers::Transformer;
use crate::entities::{EntityStore, HistoryQuery, NorthConnector, ScanMode, SouthConnector};
use crate::message_sender::MessageSender;
use crate::messages::{ConfigKind, ConfigOutbox};
use crate::north_cache::{Area, CacheOwner, CachingSettings, NorthCache, SearchQuery};
use crate::north_connector::{
    driver::unsupported as north_unsupported, GetNorthStatus, NorthConnectorActor, NorthDriver,
    NorthStatus, Tick,
};
use crate::south_connector::{
    scan_modes, GetSouthStatus, ScanTick, SouthConnectorActor, SouthDriver, SouthStatus,
};
use crate::store::Durability;
use crate::supervision::{ChildGuard, Stop};
use crate::AgentContext;

/// How often the DataFlow looks for connector actors that died: also the delay before one
/// that keeps dying is started again.
const LIVENESS_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// `Reconcile`s that arrive within this window are done once: a reconcile reads every stored
/// connector and scan mode, and a burst of 10,000 configuration commands would otherwise read
/// them 10,000 times (quadratic in the burst). A data command does a pending one first.
const RECONCILE_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// The stored connectors changed: start, restart or stop what differs.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Reconcile;

/// A command that acts on the data plane (test, cache, setpoint), with its local fields.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, String>")]
pub struct DataCommand {
    pub command_type: CommandType,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Message)]
#[rtype(result = "DataFlowStatus")]
pub struct GetDataFlowStatus;

/// Every connector: running ones with their counts, the others with why they do not run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataFlowStatus {
    pub souths: Vec<SouthStatus>,
    pub norths: Vec<NorthStatus>,
    pub not_running: Vec<NotRunning>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotRunning {
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub connector_type: String,
    pub reason: String,
}

struct RunningNorth {
    fingerprint: u64,
    addr: Addr<NorthConnectorActor>,
    scan_mode: Option<String>,
    route: Arc<NorthRoute>,
}

struct RunningSouth {
    fingerprint: u64,
    addr: Addr<SouthConnectorActor>,
    scan_modes: Vec<String>,
}

/// What the reconcile loop needs of a running connector.
trait Running {
    fn fingerprint(&self) -> u64;
    fn stop(&self);
}

impl Running for RunningNorth {
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    fn stop(&self) {
        self.addr.do_send(Stop);
    }
}

impl Running for RunningSouth {
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    fn stop(&self) {
        self.addr.do_send(Stop);
    }
}

/// A stored connector, as the status lists it.
struct Listed<'a> {
    kind: &'static str,
    id: &'a str,
    name: &'a str,
    connector_type: &'a str,
    enabled: bool,
}

impl Listed<'_> {
    fn not_running(&self, reason: String) -> NotRunning {
        NotRunning {
            kind: self.kind,
            id: self.id.to_owned(),
            name: self.name.to_owned(),
            connector_type: self.connector_type.to_owned(),
            reason,
        }
    }
}

pub struct DataFlow {
    ctx: AgentContext,
    entities: EntityStore,
    router: Router,
    norths: HashMap<String, RunningNorth>,
    souths: HashMap<String, RunningSouth>,
    /// Scan mode id → (cron, timer).
    schedules: HashMap<String, (String, SpawnHandle)>,
    not_running: Vec<NotRunning>,
    /// A `Reconcile` waits for the end of its settle window.
    reconcile_due: Option<SpawnHandle>,
    _guard: ChildGuard,
}

fn fingerprint<T: Serialize>(parts: &[&T]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for part in parts {
        serde_json::to_string(part)
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    hasher.finish()
}

impl DataFlow {
    pub fn new(ctx: AgentContext, entities: EntityStore, guard: ChildGuard) -> Self {
        DataFlow {
            router: Router::new(ctx.store.clone()),
            ctx,
            entities,
            norths: HashMap::new(),
            souths: HashMap::new(),
            schedules: HashMap::new(),
            not_running: Vec::new(),
            reconcile_due: None,
            _guard: guard,
        }
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        let e = &self.entities;
        let norths = e.list::<NorthConnector>().map_err(|e| e.to_string())?;
        let souths = e.list::<SouthConnector>().map_err(|e| e.to_string())?;
        let transformers = e.list::<Transformer>().map_err(|e| e.to_string())?;
        let scan_mode_list = e.list::<ScanMode>().map_err(|e| e.to_string())?;
        let histories = e.list::<HistoryQuery>().map_err(|e| e.to_string())?;
        self.not_running.clear();
        self.reconcile_norths(&norths, &transformers);
        self.reconcile_souths(&souths);
        self.reconcile_schedules(&scan_mode_list, ctx);
        self.reconcile_histories(&histories)
    }

    /// No south type this agent runs can read history yet: a query set RUNNING ends ERRORED
    /// at once, with the reason logged (and shipped to OIA), and E7 tells OIAnalytics.
    fn reconcile_histories(&mut self, histories: &[HistoryQuery]) -> Result<(), String> {
        let mut batch = self.ctx.store.batch();
        let mut ended = 0;
        for query in histories {
            let reason = format!(
                "History queries from a '{}' south are not supported by this agent",
                query.south_type
            );
            if query.status == "RUNNING" {
                tracing::error!(history = %query.name, reason = %reason, "history query ERRORED");
                let mut next = query.clone();
                next.status = "ERRORED".to_owned();
                self.entities
                    .stage_put(&mut batch, Some(query), &next)
                    .map_err(|e| e.to_string())?;
                ended += 1;
            }
            let listed = Listed {
                kind: "history",
                id: &query.id,
                name: &query.name,
                connector_type: &query.south_type,
                enabled: true,
            };
            self.not_running.push(listed.not_running(reason));
        }
        if ended > 0 {
            self.ctx
                .store
                .write(batch, Durability::Sync)
                .map_err(|e| e.to_string())?;
            ConfigOutbox::to_peer::<MessageSender>(self.ctx.peers.clone())
                .send(ConfigKind::HistoryQueries);
        }
        Ok(())
    }

    /// Stop the running connectors of `running` that are no longer wanted or whose stored
    /// form changed (`wanted`: id → fingerprint of the enabled ones); returns their ids.
    fn stop_stale<R: Running>(
        running: &mut HashMap<String, R>,
        wanted: &HashMap<&str, u64>,
    ) -> Vec<String> {
        let stale: Vec<String> = running
            .iter()
            .filter(|(id, r)| wanted.get(id.as_str()) != Some(&r.fingerprint()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            if let Some(r) = running.remove(id) {
                r.stop();
            }
        }
        stale
    }

    /// Start `connector` with `start` unless it runs already; a connector that is disabled or
    /// cannot start is listed with why.
    fn start_if_needed<R: Running>(
        running: &mut HashMap<String, R>,
        not_running: &mut Vec<NotRunning>,
        connector: Listed<'_>,
        start: impl FnOnce() -> Result<R, String>,
    ) {
        if running.contains_key(connector.id) {
            return;
        }
        let outcome = if connector.enabled {
            start()
        } else {
            Err("disabled".to_owned())
        };
        match outcome {
            Ok(r) => {
                running.insert(connector.id.to_owned(), r);
            }
            Err(reason) => {
                if connector.enabled {
                    tracing::warn!(kind = connector.kind, name = %connector.name, reason = %reason,
                        "connector not started");
                }
                not_running.push(connector.not_running(reason));
            }
        }
    }

    fn reconcile_norths(&mut self, norths: &[NorthConnector], transformers: &[Transformer]) {
        let transformers_json = serde_json::to_value(transformers).unwrap_or_default();
        let fp = |n: &NorthConnector| {
            fingerprint(&[
                &serde_json::to_value(n).unwrap_or_default(),
                &transformers_json,
            ])
        };
        let wanted: HashMap<&str, u64> = norths
            .iter()
            .filter(|n| n.enabled)
            .map(|n| (n.id.as_str(), fp(n)))
            .collect();
        for id in Self::stop_stale(&mut self.norths, &wanted) {
            if !norths.iter().any(|n| n.id == id) {
                let owner = CacheOwner::North(id.clone());
                if let Err(e) = NorthCache::destroy(&self.ctx.store, &owner) {
                    tracing::warn!(north = %id, error = %e, "cannot remove the deleted north's cache");
                }
            }
        }
        for north in norths {
            let listed = Listed {
                kind: "north",
                id: &north.id,
                name: &north.name,
                connector_type: &north.connector_type,
                enabled: north.enabled,
            };
            let ctx = &self.ctx;
            let start = || Self::start_north(ctx, north, transformers, fp(north));
            Self::start_if_needed(&mut self.norths, &mut self.not_running, listed, start);
        }
        let routes = self.norths.values().map(|r| r.route.clone()).collect();
        self.router.set(routes);
    }

    fn start_north(
        ctx: &AgentContext,
        north: &NorthConnector,
        transformers: &[Transformer],
        fingerprint: u64,
    ) -> Result<RunningNorth, String> {
        if !NorthDriver::supports(&north.connector_type) {
            return Err(north_unsupported(&north.connector_type));
        }
        let settings =
            CachingSettings::from_value(&north.caching).map_err(|e| format!("caching: {e}"))?;
        let routing = Routing::new(&north.transformers, transformers)?;
        let driver = NorthDriver::new(north, ctx)?;
        let cache = NorthCache::open(
            &ctx.store,
            CacheOwner::North(north.id.clone()),
            settings.clone(),
        )
        .map_err(|e| e.to_string())?;
        let status = NorthStatus {
            id: north.id.clone(),
            name: north.name.clone(),
            north_type: north.connector_type.clone(),
            ..NorthStatus::default()
        };
        let scan_mode = settings.trigger.scan_mode_id.clone();
        let addr = NorthConnectorActor::new(status, cache.clone(), settings, driver).start();
        let route = Arc::new(NorthRoute {
            north_id: north.id.clone(),
            name: north.name.clone(),
            cache,
            accepts: NorthDriver::accepts(&north.connector_type),
            routing,
            wake: addr.clone().recipient(),
        });
        Ok(RunningNorth {
            fingerprint,
            addr,
            scan_mode,
            route,
        })
    }

    fn reconcile_souths(&mut self, souths: &[SouthConnector]) {
        let wanted: HashMap<&str, u64> = souths
            .iter()
            .filter(|s| s.enabled)
            .map(|s| (s.id.as_str(), fingerprint(&[s])))
            .collect();
        for id in Self::stop_stale(&mut self.souths, &wanted) {
            if !souths.iter().any(|s| s.id == id) {
                SouthDriver::forget(&id, &self.ctx.store);
            }
        }
        for south in souths {
            let listed = Listed {
                kind: "south",
                id: &south.id,
                name: &south.name,
                connector_type: &south.connector_type,
                enabled: south.enabled,
            };
            let (agent, router) = (&self.ctx, &self.router);
            let start = || {
                let driver = SouthDriver::new(south, agent)?;
                Ok(RunningSouth {
                    fingerprint: fingerprint(&[south]),
                    addr: SouthConnectorActor::new(south.clone(), driver, router.clone()).start(),
                    scan_modes: scan_modes(south),
                })
            };
            Self::start_if_needed(&mut self.souths, &mut self.not_running, listed, start);
        }
    }

    /// One timer per scan mode that a running connector uses; a changed cron restarts its timer.
    fn reconcile_schedules(&mut self, scan_modes: &[ScanMode], ctx: &mut Context<Self>) {
        let mut used: Vec<&str> = self
            .souths
            .values()
            .flat_map(|s| s.scan_modes.iter().map(String::as_str))
            .chain(self.norths.values().filter_map(|n| n.scan_mode.as_deref()))
            .collect();
        used.sort_unstable();
        used.dedup();
        let wanted: HashMap<String, String> = used
            .iter()
            .filter_map(|id| {
                let mode = scan_modes.iter().find(|m| m.id == *id)?;
                Some((id.to_string(), mode.cron.clone()))
            })
            .collect();
        let stale: Vec<String> = self
            .schedules
            .iter()
            .filter(|(id, (cron, _))| wanted.get(id.as_str()) != Some(cron))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some((_, timer)) = self.schedules.remove(&id) {
                ctx.cancel_future(timer);
            }
        }
        for (id, cron) in wanted {
            if !self.schedules.contains_key(&id) {
                self.schedule(id, cron, ctx);
            }
        }
    }

    fn schedule(&mut self, id: String, cron: String, ctx: &mut Context<Self>) {
        let schedule = match Schedule::parse(&cron) {
            Ok(Some(schedule)) => schedule,
            Ok(None) => return, // subscription: nothing to poll
            Err(e) => {
                tracing::error!(scan_mode = %id, error = %e, "scan mode cannot be scheduled");
                return;
            }
        };
        let Some(delay) = schedule.delay_from(chrono::Local::now()) else {
            tracing::warn!(scan_mode = %id, cron = %cron, "scan mode never fires again");
            return;
        };
        let fired = id.clone();
        let timer = ctx.run_later(delay, move |act, ctx| {
            act.fire(&fired);
            if let Some((cron, _)) = act.schedules.remove(&fired) {
                act.schedule(fired, cron, ctx);
            }
        });
        self.schedules.insert(id, (cron, timer));
    }

    fn fire(&self, scan_mode_id: &str) {
        for south in self
            .souths
            .values()
            .filter(|s| s.scan_modes.iter().any(|m| m == scan_mode_id))
        {
            south.addr.do_send(ScanTick {
                scan_mode_id: scan_mode_id.to_owned(),
            });
        }
        for north in self
            .norths
            .values()
            .filter(|n| n.scan_mode.as_deref() == Some(scan_mode_id))
        {
            north.addr.do_send(Tick);
        }
    }

    /// The cache of north or history query `owner`: the running one's, else a view opened for
    /// the command (its connector does not run, so nothing else writes it).
    fn cache_of(&self, owner: CacheOwner) -> Result<NorthCache, String> {
        if let CacheOwner::North(id) = &owner {
            if let Some(running) = self.norths.get(id) {
                return Ok(running.route.cache.clone());
            }
        }
        let caching = match &owner {
            CacheOwner::North(id) => self
                .entities
                .get::<NorthConnector>(id)
                .map(|n| n.map(|n| n.caching)),
            CacheOwner::History(id) => self
                .entities
                .get::<HistoryQuery>(id)
                .map(|h| h.map(|h| h.caching)),
        }
        .map_err(|e| e.to_string())?;
        let Some(caching) = caching else {
            return Err(match &owner {
                CacheOwner::North(id) => format!("North \"{id}\" not found"),
                CacheOwner::History(id) => format!("History query \"{id}\" not found"),
            });
        };
        let settings = CachingSettings::from_value(&caching).map_err(|e| e.to_string())?;
        NorthCache::open(&self.ctx.store, owner, settings).map_err(|e| e.to_string())
    }

    fn run_cache_command(&self, command: &DataCommand) -> Result<String, String> {
        use CommandType::*;
        let field = |name: &str| str_field(&command.fields, name).to_owned();
        let content = command
            .fields
            .get("commandContent")
            .cloned()
            .unwrap_or(Value::Null);
        let owner = match command.command_type {
            SearchHistoryCacheContent | GetHistoryCacheFileContent | UpdateHistoryCacheContent => {
                CacheOwner::History(field("historyQueryId"))
            }
            _ => CacheOwner::North(field("northConnectorId")),
        };
        let cache = self.cache_of(owner)?;
        match command.command_type {
            SearchNorthCacheContent | SearchHistoryCacheContent => {
                let query: SearchQuery =
                    serde_json::from_value(content).map_err(|e| format!("commandContent: {e}"))?;
                let found = cache.search(&query).map_err(|e| e.to_string())?;
                Ok(found.to_string())
            }
            GetNorthCacheFileContent | GetHistoryCacheFileContent => {
                #[derive(serde::Deserialize)]
                struct FileRef {
                    folder: Area,
                    filename: String,
                }
                let file: FileRef =
                    serde_json::from_value(content).map_err(|e| format!("commandContent: {e}"))?;
                let found = cache
                    .file_content(file.folder, &file.filename)
                    .map_err(|e| e.to_string())?;
                Ok(found.to_string())
            }
            _ => {
                cache.update(&content).map_err(|e| e.to_string())?;
                Ok("Cache updated successfully".to_owned())
            }
        }
    }

    /// `setpoint`: the content goes into the north's cache through its `oianalytics-setpoint`
    /// transformer; done once it is committed (OIBus `north.service.ts` `executeSetpoint`).
    fn setpoint(&self, command: &DataCommand) -> Result<String, String> {
        let id = str_field(&command.fields, "northConnectorId");
        let elements = match command.fields.get("commandContent") {
            Some(Value::Array(elements)) => elements.clone(),
            _ => return Err("commandContent must be an array of {reference, value}".into()),
        };
        let Some(running) = self.norths.get(id) else {
            return Err(match self.entities.get::<NorthConnector>(id) {
                Ok(Some(north)) if !NorthDriver::supports(&north.connector_type) => {
                    north_unsupported(&north.connector_type)
                }
                Ok(Some(_)) => format!("North connector \"{id}\" disabled"),
                _ => format!("North \"{id}\" not found"),
            });
        };
        let json = Value::Array(elements.clone()).to_string();
        let content = Content::Elements {
            kind: ContentType::Setpoint,
            elements,
        };
        let done = self
            .router
            .dispatch_to(&running.route, Origin::Setpoint, &content)
            .map_err(|e| e.to_string())?;
        if let Some(why) = done.untransformed.first() {
            return Err(why.clone());
        }
        Ok(format!(
            "Setpoint {json} properly sent into the cache of {id}"
        ))
    }

    fn test_north(&self, command: &DataCommand) -> ResponseFuture<Result<String, String>> {
        let id = str_field(&command.fields, "northConnectorId");
        let driver = match self.entities.get::<NorthConnector>(id) {
            Ok(Some(north)) => NorthDriver::new(&north, &self.ctx),
            Ok(None) => Err(format!("North \"{id}\" not found")),
            Err(e) => Err(e.to_string()),
        };
        Box::pin(async move {
            let result = driver?.test_connection().await?;
            Ok(result.to_string())
        })
    }

    /// `test-south-connection` with the stored south's settings; a test never touches the
    /// running connector (its own driver, its own connection).
    fn test_south(&self, command: &DataCommand) -> ResponseFuture<Result<String, String>> {
        let id = str_field(&command.fields, "southConnectorId");
        let driver = match self.entities.get::<SouthConnector>(id) {
            Ok(Some(south)) => SouthDriver::new(&south, &self.ctx),
            Ok(None) => Err(format!("South \"{id}\" not found")),
            Err(e) => Err(e.to_string()),
        };
        Box::pin(async move {
            let result = driver?.test_connection().await?;
            Ok(result.to_string())
        })
    }

    fn status(&self) -> ResponseFuture<DataFlowStatus> {
        let norths: Vec<_> = self
            .norths
            .values()
            .map(|n| n.addr.send(GetNorthStatus))
            .collect();
        let souths: Vec<_> = self
            .souths
            .values()
            .map(|s| s.addr.send(GetSouthStatus))
            .collect();
        let not_running = self.not_running.clone();
        Box::pin(async move {
            let mut status = DataFlowStatus {
                not_running,
                ..DataFlowStatus::default()
            };
            for n in norths {
                if let Ok(s) = n.await {
                    status.norths.push(s);
                }
            }
            for s in souths {
                if let Ok(s) = s.await {
                    status.souths.push(s);
                }
            }
            status.norths.sort_by(|a, b| a.name.cmp(&b.name));
            status.souths.sort_by(|a, b| a.name.cmp(&b.name));
            status
        })
    }
}

impl Actor for DataFlow {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.reconcile(ctx) {
            tracing::error!(error = %e, "cannot read the connectors; the data plane starts empty");
        }
        // A connector whose actor died (a panic in a handler) is started again, alone.
        ctx.run_interval(LIVENESS_CHECK, |act, ctx| act.restart_dead(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for north in self.norths.values() {
            north.addr.do_send(Stop);
        }
        for south in self.souths.values() {
            south.addr.do_send(Stop);
        }
    }
}

impl DataFlow {
    fn restart_dead(&mut self, ctx: &mut Context<Self>) {
        let dead_norths: Vec<String> = self
            .norths
            .iter()
            .filter(|(_, n)| !n.addr.connected())
            .map(|(id, _)| id.clone())
            .collect();
        let dead_souths: Vec<String> = self
            .souths
            .iter()
            .filter(|(_, s)| !s.addr.connected())
            .map(|(id, _)| id.clone())
            .collect();
        if dead_norths.is_empty() && dead_souths.is_empty() {
            return;
        }
        for id in &dead_norths {
            tracing::error!(north = %id, "north connector stopped unexpectedly; starting it again");
            self.norths.remove(id);
        }
        for id in &dead_souths {
            tracing::error!(south = %id, "south connector stopped unexpectedly; starting it again");
            self.souths.remove(id);
        }
        if let Err(e) = self.reconcile(ctx) {
            tracing::error!(error = %e, "cannot read the connectors; retrying at the next check");
        }
    }
}

impl DataFlow {
    /// Do the reconcile a `Reconcile` asked for, if it still waits for its settle window.
    fn reconcile_if_due(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.reconcile_due.take() {
            ctx.cancel_future(handle);
            self.reconcile_logged(ctx);
        }
    }

    fn reconcile_logged(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.reconcile(ctx) {
            tracing::error!(error = %e, "cannot read the connectors; keeping the running ones");
        }
    }
}

impl Handler<Reconcile> for DataFlow {
    type Result = ();
    fn handle(&mut self, _: Reconcile, ctx: &mut Context<Self>) {
        if self.reconcile_due.is_none() {
            let due = ctx.run_later(RECONCILE_SETTLE, |act, ctx| {
                act.reconcile_due = None;
                act.reconcile_logged(ctx);
            });
            self.reconcile_due = Some(due);
        }
    }
}

impl Handler<DataCommand> for DataFlow {
    type Result = ResponseFuture<Result<String, String>>;
    fn handle(&mut self, command: DataCommand, ctx: &mut Context<Self>) -> Self::Result {
        // A command queued after a configuration one acts on that configuration.
        self.reconcile_if_due(ctx);
        let outcome = match command.command_type {
            CommandType::TestNorthConnection => return self.test_north(&command),
            CommandType::TestSouthConnection => return self.test_south(&command),
            CommandType::TestSouthItem
            | CommandType::TestHistoryQuerySouthItem
            | CommandType::TestHistoryQuerySouthConnection => {
                let t = command.command_type;
                return Box::pin(super::item_test::run(
                    t,
                    &command.fields,
                    &self.entities,
                    &self.ctx,
                ));
            }
            CommandType::Setpoint => self.setpoint(&command),
            _ => self.run_cache_command(&command),
        };
        Box::pin(async move { outcome })
    }
}

impl Handler<GetDataFlowStatus> for DataFlow {
    type Result = ResponseFuture<DataFlowStatus>;
    fn handle(&mut self, _: GetDataFlowStatus, ctx: &mut Context<Self>) -> Self::Result {
        self.reconcile_if_due(ctx);
        self.status()
    }
}

impl Handler<Stop> for DataFlow {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
