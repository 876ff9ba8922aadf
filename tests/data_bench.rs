//! Data-plane figures for `scripts/bench.sh` (`#[ignore]`d): the agent's own fan-out, RocksDB
//! cache and north `oianalytics` actor, in this process, against the real simulator process.
//! A synthetic source stands in for a south (the protocols come with their own figures): it
//! hands batches of 1,000 time values to the fan-out as a south read would.
//!
//! Printed figures (`BENCH` lines):
//! - `data_into_cache_values_per_s`: 1M values committed (synced) with no north sending;
//! - `data_backlog_rss_mib`: the process RSS with that 1M-value backlog;
//! - `data_drain_values_per_s`: the north then drains the backlog to the simulator (after an
//!   outage, this is the recovery rate), and `data_drain_rss_mib` the peak RSS meanwhile;
//! - `data_delivered_values_per_s`: source and north running together, values per second
//!   acknowledged by the simulator;
//! - `data_latency_p50_ms` / `data_latency_p99_ms`: value timestamp to receipt at the simulator,
//!   at a steady 100k values/s (a read of 1,000 values every 10 ms) with a north that sends at
//!   once (`numberOfElements: 1`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

use oibus_actors::content::{Content, ContentType, TimeValue};
use oibus_actors::data_flow::router::{NorthRoute, Router};
use oibus_actors::data_flow::transform::{ItemIndex, Origin, Routing};
use oibus_actors::entities::NorthConnector;
use oibus_actors::north_cache::{CacheOwner, CachingSettings, NorthCache};
use oibus_actors::north_connector::{CacheGrew, NorthConnectorActor, NorthDriver, NorthStatus};
use oibus_actors::registration::{RegistrationChanged, RegistrationStatus};
use oibus_actors::store::Store;
use oibus_actors::AgentContext;

use crate::commands::sim;
use crate::kit::{bench_figure, procfs};

const BATCH: usize = 1_000;

/// Receives the fan-out's wake-ups while no north runs (the backlog phase), or in a bench
/// where no north sends.
pub(crate) struct Parked;
impl Actor for Parked {
    type Context = Context<Self>;
}
impl Handler<CacheGrew> for Parked {
    type Result = ();
    fn handle(&mut self, _: CacheGrew, _: &mut Context<Self>) {}
}

fn batch(seq: &mut u64) -> Content {
    let now = oibus_actors::protocol::iso_now();
    let values = (0..BATCH)
        .map(|_| {
            *seq += 1;
            TimeValue {
                // One point per value: the simulator counts a (pointId, timestamp) seen twice.
                point_id: format!("p{}", *seq),
                timestamp: now.clone(),
                data: json!({ "value": *seq }),
            }
        })
        .collect();
    Content::Values {
        kind: ContentType::TimeValues,
        values,
    }
}

pub(crate) fn context(store: Store, host: &str, token: String) -> AgentContext {
    context_with(
        store,
        &format!("oianalytics: {{ host: {host} }}\n"),
        Some(token),
    )
}

/// A registered agent's context on `store`, with the configuration `yaml`.
pub(crate) fn context_with(store: Store, yaml: &str, token: Option<String>) -> AgentContext {
    let config = oibus_actors::config::parse(yaml).expect("a minimal configuration");
    let (_, config) = tokio::sync::watch::channel(Arc::new(config));
    let (_, registration) = tokio::sync::watch::channel(RegistrationChanged {
        status: RegistrationStatus::Registered,
        token: token.map(oibus_actors::Secret::new),
    });
    AgentContext {
        config,
        journal: oibus_actors::commands::Journal::open(store.clone()).expect("journal"),
        store,
        peers: Default::default(),
        engine_id: "bench".into(),
        registration,
        engine_settings: oibus_actors::entities::LiveEngineSettings::new(Default::default()),
    }
}

/// The test process's RSS.
pub(crate) fn rss_mib() -> f64 {
    procfs::rss_kib(std::process::id()).unwrap_or(0) as f64 / 1024.0
}

fn north() -> NorthConnector {
    serde_json::from_value(json!({
        "id": "bench-north", "name": "bench-north", "type": "oianalytics", "description": "",
        "enabled": true, "settings": {"useOiaModule": true, "timeout": 30, "compress": false},
        "caching": {"trigger": {"numberOfElements": 1, "numberOfFiles": 1},
                    "throttling": {"maxNumberOfElements": 50000}},
        "transformers": [], "secretPaths": [],
        "audit": {"createdBy": "", "updatedBy": "", "createdAt": "", "updatedAt": ""}
    }))
    .expect("a north connector")
}

fn received(sim: &crate::kit::sim::Sim) -> Value {
    sim.admin_get("/admin/data")
}

#[test]
#[ignore = "benchmark: prints data-plane figures"]
fn data_plane_figures() {
    let total: u64 = std::env::var("BENCH_VALUES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let sim = sim();
    let token = sim.register_oibus("bench1", "Eldonz03GzRljJ8G");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let ctx = context(store.clone(), sim.host(), token);
    let north = north();
    let settings = CachingSettings::from_value(&north.caching).expect("caching");
    let pid = std::process::id();
    let items = ItemIndex::default();
    let origin = || Origin::South {
        south_id: "bench-south",
        items: &items,
    };

    actix_rt::System::new().block_on(async {
        let cache = NorthCache::open(
            &store,
            CacheOwner::North(north.id.clone()),
            settings.clone(),
        )
        .expect("cache");
        let route = |wake| {
            Arc::new(NorthRoute {
                north_id: north.id.clone(),
                name: north.name.clone(),
                cache: cache.clone(),
                accepts: NorthDriver::accepts("oianalytics"),
                routing: Routing::default(),
                wake,
            })
        };
        let router = Router::new(store.clone());

        // 1. Into the cache, nobody sending: the backlog of an outage.
        router.set(vec![route(Parked.start().recipient())]);
        // Only the dispatch is timed: making up the values is the bench's work, not the cache's.
        let (mut seq, mut dispatching) = (0, Duration::ZERO);
        while seq < total {
            let content = batch(&mut seq);
            let started = Instant::now();
            router.dispatch(origin(), &content).expect("dispatch");
            dispatching += started.elapsed();
        }
        let into = seq as f64 / dispatching.as_secs_f64();
        bench_figure("data_into_cache_values_per_s", into, "values/s");
        let rss = procfs::rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
        bench_figure("data_backlog_rss_mib", rss, "MiB");

        // 2. The north drains the backlog.
        let driver = NorthDriver::new(&north, &ctx).expect("driver");
        let status = NorthStatus {
            name: north.name.clone(),
            ..NorthStatus::default()
        };
        let started = Instant::now();
        let addr =
            NorthConnectorActor::new(status, cache.clone(), settings.clone(), driver).start();
        router.set(vec![route(addr.clone().recipient())]);
        let mut peak = 0;
        let drained = wait_async(Duration::from_secs(300), || {
            peak = peak.max(procfs::rss_kib(pid).unwrap_or(0));
            received(&sim)["values"].as_u64().unwrap_or(0) >= total
        })
        .await;
        assert!(drained, "the backlog did not drain: {}", received(&sim));
        let drain = total as f64 / started.elapsed().as_secs_f64();
        bench_figure("data_drain_values_per_s", drain, "values/s");
        bench_figure("data_drain_rss_mib", peak as f64 / 1024.0, "MiB");

        // 3. Source and north together.
        sim.admin_delete("/admin/data");
        let started = Instant::now();
        let mut sent = 0;
        while sent < total {
            router
                .dispatch(origin(), &batch(&mut seq))
                .expect("dispatch");
            sent += BATCH as u64;
            // Let the north's futures run between two batches, as between two south reads.
            actix_rt::task::yield_now().await;
        }
        let delivered = wait_async(Duration::from_secs(300), || {
            received(&sim)["values"].as_u64().unwrap_or(0) >= total
        })
        .await;
        assert!(delivered, "the flow did not arrive: {}", received(&sim));
        let rate = total as f64 / started.elapsed().as_secs_f64();
        bench_figure("data_delivered_values_per_s", rate, "values/s");
        let duplicates = received(&sim)["duplicates"].as_u64().unwrap_or(0);
        assert_eq!(duplicates, 0, "values arrived twice: {}", received(&sim));

        // 4. Latency at a steady 100k values/s (one read of 1,000 every 10 ms), sent at once.
        sim.admin_delete("/admin/data");
        let reads = 500;
        let mut tick = actix_rt::time::interval(Duration::from_millis(10));
        for _ in 0..reads {
            tick.tick().await;
            router
                .dispatch(origin(), &batch(&mut seq))
                .expect("dispatch");
        }
        let steady = wait_async(Duration::from_secs(60), || {
            received(&sim)["values"].as_u64().unwrap_or(0) >= (reads * BATCH) as u64
        })
        .await;
        assert!(steady, "the steady flow did not arrive: {}", received(&sim));
        let data = received(&sim);
        bench_figure(
            "data_latency_p50_ms",
            data["latencyMs"]["p50"].as_f64().unwrap_or(f64::NAN),
            "ms",
        );
        bench_figure(
            "data_latency_p99_ms",
            data["latencyMs"]["p99"].as_f64().unwrap_or(f64::NAN),
            "ms",
        );
        System::current().stop();
    });
}

/// `wait_until` without blocking the actors of this thread.
pub(crate) async fn wait_async(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}
