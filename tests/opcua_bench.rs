//! OPC UA figures for `scripts/bench.sh` (`BENCH_ONLY=opcua`, `#[ignore]`d): the opcua south's
//! subscription, in this process, against the test OPC UA server (`kit::opcua_server`) also
//! in this process, whose `n` variables all change every 100 ms (every 500 ms at 50k items:
//! the server shares the 2 cores). The south runs in its actor
//! with the real driver, fan-out and RocksDB cache of one north that sends nothing (the values
//! stay in its cache), so the figure is what the south commits (synced) per second.
//!
//! Printed figures, for `n` = 1,000, 10,000 and 50,000 monitored items (`BENCH_OPCUA_SIZES`
//! overrides, comma-separated):
//! - `opcua_<n>_values_per_s`: values committed into the cache per second, over 10 s once
//!   the subscription is live (the south's 150 ms sampling keeps at most one change per item
//!   per publish: about 6.7 values per item and second when the server changes them every
//!   100 ms, 2 at 500 ms);
//! - `opcua_<n>_rss_mib`: the process RSS meanwhile (server and agent together), and
//!   `opcua_<n>_south_rss_mib` what the running south added to the RSS of the idle server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use oibus_actors::data_flow::router::{NorthRoute, Router};
use oibus_actors::data_flow::transform::Routing;
use oibus_actors::entities::{Audit, SouthConnector, SouthItem};
use oibus_actors::north_cache::{CacheOwner, CachingSettings, NorthCache};
use oibus_actors::north_connector::NorthDriver;
use oibus_actors::south_connector::{GetSouthStatus, SouthConnectorActor, SouthDriver};
use oibus_actors::store::Store;
use oibus_actors::AgentContext;

use crate::data_bench::{context_with, rss_mib, Parked};
use crate::kit::bench_figure;
use crate::kit::opcua_server::OpcuaServer;

fn context(store: Store, data_dir: &std::path::Path) -> AgentContext {
    let yaml = format!(
        "engine: {{ data_dir: {} }}\noianalytics: {{ host: http://127.0.0.1:9 }}\n",
        data_dir.display()
    );
    context_with(store, &yaml, None)
}

fn south(server: &OpcuaServer, n: usize) -> SouthConnector {
    let items = (0..n)
        .map(|i| SouthItem {
            id: format!("i{i}"),
            name: format!("B{i}"),
            enabled: true,
            settings: json!({"nodeId": server.node(&format!("B{i}")), "mode": "da",
                             "timestampOrigin": "point"}),
            scan_mode_id: Some("subscription".into()),
            group_id: None,
            other: Default::default(),
            audit: Audit::new("", ""),
        })
        .collect();
    SouthConnector {
        id: "bench-south".into(),
        name: "bench-south".into(),
        connector_type: "opcua".into(),
        description: String::new(),
        enabled: true,
        settings: json!({"url": server.url(), "securityMode": "none", "securityPolicy": "none",
                         "authentication": {"type": "none"}, "readTimeout": 60000,
                         "retryInterval": 1000, "maxNumberOfMessages": 10000,
                         "flushMessageTimeout": 200}),
        items,
        groups: vec![],
        secret_paths: vec![],
        audit: Audit::new("", ""),
    }
}

#[test]
#[ignore = "benchmark: prints OPC UA figures"]
fn opcua_subscription_figures() {
    let sizes: Vec<usize> = std::env::var("BENCH_OPCUA_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 50_000]);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    for n in sizes {
        // The server shares this process: past 10k items it changes them less often.
        let period = Duration::from_millis(100 * (n as u64 / 10_000).max(1));
        let server = OpcuaServer::start_bench(n, period);
        std::thread::sleep(Duration::from_secs(1));
        let idle = rss_mib();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let ctx = context(store.clone(), dir.path());
        let south = south(&server, n);
        let (rate, rss) = actix_rt::System::new().block_on(async {
            let caching = json!({"trigger": {"numberOfElements": 1, "numberOfFiles": 1},
                                 "throttling": {"maxNumberOfElements": 50000}});
            let settings = CachingSettings::from_value(&caching).expect("caching");
            let cache = NorthCache::open(&store, CacheOwner::North("bench-north".into()), settings)
                .expect("cache");
            let router = Router::new(store.clone());
            router.set(vec![Arc::new(NorthRoute {
                north_id: "bench-north".into(),
                name: "bench-north".into(),
                cache,
                accepts: NorthDriver::accepts("oianalytics"),
                routing: Routing::default(),
                wake: Parked.start().recipient(),
            })]);
            let driver = SouthDriver::new(&south, &ctx).expect("the opcua driver");
            let actor = SouthConnectorActor::new(south, driver, router).start();
            let read = |status: &oibus_actors::south_connector::SouthStatus| status.read_elements;
            // Live: every item has given its first value.
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let status = actor.send(GetSouthStatus).await.expect("status");
                if read(&status) >= n as u64 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the subscription of {n} items did not go live: {status:?}"
                );
                actix_rt::time::sleep(Duration::from_millis(200)).await;
            }
            let before = read(&actor.send(GetSouthStatus).await.expect("status"));
            let started = Instant::now();
            let mut peak: f64 = 0.0;
            while started.elapsed() < Duration::from_secs(10) {
                actix_rt::time::sleep(Duration::from_millis(250)).await;
                peak = peak.max(rss_mib());
            }
            let status = actor.send(GetSouthStatus).await.expect("status");
            let rate = (read(&status) - before) as f64 / started.elapsed().as_secs_f64();
            assert_eq!(status.errors, 0, "{status:?}");
            System::current().stop();
            (rate, peak)
        });
        bench_figure(&format!("opcua_{n}_values_per_s"), rate, "values/s");
        bench_figure(&format!("opcua_{n}_rss_mib"), rss, "MiB");
        bench_figure(&format!("opcua_{n}_south_rss_mib"), rss - idle, "MiB");
        drop(server);
    }
}
