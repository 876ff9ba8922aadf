//! Protocol figures for `scripts/bench.sh` (`BENCH_ONLY=protocols`, `#[ignore]`d), in this
//! process against real servers:
//!
//! - `modbus_reads_per_s`: reads of one holding register by the modbus south's read path
//!   (`ModbusSouth::read`: plan, request, decode), one after the other, against the tokio-modbus
//!   server of `protocols_modbus` (same process, its own thread): the round trips a south does;
//! - `modbus_values_per_s`: reads of 100 registers items batched into one request;
//! - `modbus_rss_mib`: the process RSS after them;
//! - `mqtt_messages_per_s`: QoS 1 messages published to mosquitto and committed (synced) to a
//!   north cache by the MQTT south actor and the fan-out, acknowledged only after the commit;
//! - `mqtt_rss_mib`: the process RSS then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

use oibus_actors::connectors::south_modbus::ModbusSouth;
use oibus_actors::content::ContentType;
use oibus_actors::data_flow::router::{NorthRoute, Router};
use oibus_actors::data_flow::transform::Routing;
use oibus_actors::entities::{SouthConnector, SouthItem};
use oibus_actors::north_cache::{CacheOwner, CachingSettings, NorthCache};
use oibus_actors::south_connector::{SouthConnectorActor, SouthDriver};
use oibus_actors::store::Store;

use crate::data_bench::{context, rss_mib, wait_async, Parked};
use crate::kit::bench_figure;
use crate::kit::mosquitto::Mosquitto;
use crate::protocols_modbus::ModbusServer;

const RUN: Duration = Duration::from_secs(5);
/// Messages published ahead of what is cached.
const AHEAD: u64 = 500;

fn item(name: &str, settings: Value) -> SouthItem {
    serde_json::from_value(json!({
        "id": name, "name": name, "enabled": true, "settings": settings,
        "scanModeId": "subscription", "groupId": null, "other": {},
        "audit": {"createdBy": "", "updatedBy": "", "createdAt": "", "updatedAt": ""}
    }))
    .expect("an item")
}

#[test]
#[ignore = "benchmark: prints protocol figures"]
fn protocol_figures() {
    modbus_figures();
    mqtt_figures();
}

fn modbus_figures() {
    let server = ModbusServer::start(0);
    let settings = json!({"host": "127.0.0.1", "port": server.port, "slaveId": 1,
        "connectTimeout": 1000, "networkTimeout": 2000, "retryInterval": 1000,
        "addressOffset": "modbus", "endianness": "big-endian", "batchQuery": true, "groupingGap": 0});
    let south = ModbusSouth::new("bench", &settings).expect("a modbus south");
    let register = |i: u16| {
        item(
            &format!("r{i}"),
            json!({"modbusType": "holding-register", "address": i.to_string(),
                   "data": {"dataType": "uint16", "multiplierCoefficient": 1}}),
        )
    };
    let one = [register(0)];
    let hundred: Vec<SouthItem> = (0..100).map(register).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (reads, _) = rate(&south, &one).await;
        bench_figure("modbus_reads_per_s", reads, "reads/s");
        let (_, values) = rate(&south, &hundred).await;
        bench_figure("modbus_values_per_s", values, "values/s");
    });
    bench_figure("modbus_rss_mib", rss_mib(), "MiB");
}

/// Reads of `items` one after the other for [`RUN`]: (reads/s, values/s).
async fn rate(south: &ModbusSouth, items: &[SouthItem]) -> (f64, f64) {
    let items: Vec<&SouthItem> = items.iter().collect();
    let (mut reads, mut values) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < RUN {
        let read = south.read(&items).await.expect("a read");
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        reads += 1;
        values += read.values.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    (reads as f64 / secs, values as f64 / secs)
}

fn mqtt_figures() {
    let total: u64 = std::env::var("BENCH_MQTT_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let ctx = context(store.clone(), "http://127.0.0.1:9", "token".into());
    let south: SouthConnector = serde_json::from_value(json!({
        "id": "bench-mqtt", "name": "bench-mqtt", "type": "mqtt", "description": "", "enabled": true,
        "settings": {"url": broker.url(), "qos": "1", "persistent": true,
            "authentication": {"type": "none"}, "rejectUnauthorized": false,
            "reconnectPeriod": 1000, "connectTimeout": 5000,
            "maxNumberOfMessages": 1000, "flushMessageTimeout": 100},
        "items": [item("bench", json!({"topic": "bench/#"}))],
        "groups": [], "secretPaths": [],
        "audit": {"createdBy": "", "updatedBy": "", "createdAt": "", "updatedAt": ""}
    }))
    .expect("a south");
    actix_rt::System::new().block_on(async {
        let caching = json!({"trigger": {"numberOfElements": 1_000_000},
                             "throttling": {"maxNumberOfElements": 0}});
        let settings = CachingSettings::from_value(&caching).expect("caching");
        let cache =
            NorthCache::open(&store, CacheOwner::North("n".into()), settings).expect("cache");
        let router = Router::new(store.clone());
        router.set(vec![Arc::new(NorthRoute {
            north_id: "n".into(),
            name: "n".into(),
            cache: cache.clone(),
            // The MQTT south's any-content, cached as is.
            accepts: &[ContentType::AnyContent],
            routing: Routing::default(),
            wake: Parked.start().recipient(),
        })]);
        let driver = SouthDriver::new(&south, &ctx).expect("a driver");
        let _south = SouthConnectorActor::new(south, driver, router).start();
        let cached = || cache.stats().cache_elements;
        // Subscribed once a probe arrives.
        let subscribed = wait_async(Duration::from_secs(30), || {
            // Its blocking client runs a runtime of its own: not on this one's thread.
            std::thread::scope(|scope| {
                let _ = scope
                    .spawn(|| broker.publish("bench/probe", &["probe".to_owned()]))
                    .join();
            });
            cached() > 0
        })
        .await;
        assert!(
            subscribed,
            "the MQTT south did not subscribe\n{}",
            broker.logs()
        );
        let before = cached();
        let started = Instant::now();
        let port = broker.port;
        let progress = Arc::new(AtomicU64::new(0));
        let seen = progress.clone();
        let publisher = std::thread::spawn(move || publish(port, total, seen));
        let done = wait_async(Duration::from_secs(120), || {
            progress.store(cached() - before, Ordering::SeqCst);
            cached() >= before + total
        })
        .await;
        assert!(done, "{} of {total} messages cached", cached() - before);
        let rate = total as f64 / started.elapsed().as_secs_f64();
        let _ = publisher.join();
        bench_figure("mqtt_messages_per_s", rate, "messages/s");
        bench_figure("mqtt_rss_mib", rss_mib(), "MiB");
        System::current().stop();
    });
}

/// `total` QoS 1 messages of about 60 bytes on `bench/<n % 10>`, as fast as the broker
/// acknowledges them but never more than [`AHEAD`] ahead of the cache (`cached`): mosquitto
/// drops QoS 1 messages past its `max_queued_messages` (1,000) for a subscriber.
fn publish(port: u16, total: u64, cached: Arc<AtomicU64>) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut connection) = Client::new(options, 1000);
    let sender = std::thread::spawn(move || {
        for n in 0..total {
            while n > cached.load(Ordering::SeqCst) + AHEAD {
                std::thread::sleep(Duration::from_millis(1));
            }
            let payload = json!({"point": format!("p{}", n % 100), "v": n}).to_string();
            client
                .publish(
                    format!("bench/{}", n % 10),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .expect("queued");
        }
        client
    });
    let mut acked = 0;
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked += 1;
                if acked == total {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("publishing: {e}"),
        }
    }
    if let Ok(client) = sender.join() {
        let _ = client.disconnect();
    }
}
