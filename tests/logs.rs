//! Log shipping (issue 7) end to end: the real tracing layer, LogShipper actor, RocksDB queue and
//! OIA client, in this process on their own actix system, against the simulator process. In
//! process so that the tests control exactly which records are logged and can count them.
//!
//! The benchmarks at the end are `#[ignore]`d; run them with
//! `cargo test --test main logs::bench -- --ignored --nocapture --test-threads 1`.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use oibus_actors::config::{ByteSize, Config, LogLevel};
use oibus_actors::context::AgentContext;
use oibus_actors::log_shipper::{
    LogIntake, LogShipper, LogShipperStats, OiaLevelHandle, OiaLogLayer, SetOiaLevel,
    CHANNEL_CAPACITY, QUEUE_NAME,
};
use oibus_actors::registration::{RegistrationChanged, RegistrationStatus};
use oibus_actors::store::{Cf, Durability, Queue, Store};
use oibus_actors::supervision::{ChildGuard, Peers, Stop};
use oibus_actors::Secret;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;

use crate::kit::agent::{sim_section, AgentHome};
use crate::kit::sim::{array, Sim, SimOpts};
use crate::kit::{bench_figure, wait_until};

/// The target of the test records: "ours" (`oibus*`), so every level is shippable.
const TARGET: &str = "oibus_test";

/// A LogShipper in this process: its layer, its store folder, its configuration and
/// registration, and the actix system it runs on (a thread of its own).
struct Node {
    dir: tempfile::TempDir,
    config: watch::Sender<Arc<Config>>,
    registration: watch::Sender<RegistrationChanged>,
    dispatch: tracing::Dispatch,
    intake: LogIntake,
    level: OiaLevelHandle,
    running: Option<Running>,
}

struct Running {
    addr: Addr<LogShipper>,
    system: actix_rt::System,
    thread: JoinHandle<()>,
}

/// A configuration shipping to `sim` at `level`, posting every 200 ms.
fn config(sim: &Sim, level: LogLevel) -> Config {
    let mut config = Config::default();
    config.oianalytics.host = Some(sim.host().to_owned());
    config.engine.log.oia = level;
    config.actors.log_shipper.interval = Duration::from_millis(200);
    config.actors.log_shipper.batch_max = 100;
    config
}

impl Node {
    fn new(config: Config) -> Node {
        let (layer, intake, level) = OiaLogLayer::new(config.engine.log.oia, CHANNEL_CAPACITY);
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        Node {
            dir: tempfile::tempdir().expect("temp dir"),
            config: watch::channel(Arc::new(config)).0,
            registration: watch::channel(RegistrationChanged::default()).0,
            dispatch,
            intake,
            level,
            running: None,
        }
    }

    /// Start the actor on a fresh actix system over the store in this node's folder.
    fn start(&mut self) {
        assert!(self.running.is_none(), "already running");
        let store = Store::open(&self.dir.path().join("store")).expect("open the store");
        let ctx = AgentContext {
            config: self.config.subscribe(),
            journal: oibus_actors::commands::Journal::open(store.clone())
                .expect("open the journal"),
            store,
            peers: Peers::default(),
            engine_id: "logs-test".into(),
            registration: self.registration.subscribe(),
            engine_settings: oibus_actors::entities::LiveEngineSettings::new(Default::default()),
        };
        let (intake, level, dispatch) = (
            self.intake.clone(),
            self.level.clone(),
            self.dispatch.clone(),
        );
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            // The shipper's own events go through the same layer, as in the engine.
            let _default = tracing::dispatcher::set_default(&dispatch);
            let system = actix_rt::System::new();
            system.block_on(async {
                let addr = LogShipper::new(ctx, intake, level, ChildGuard::unsupervised()).start();
                let _ = tx.send((addr, actix_rt::System::current()));
            });
            let _ = system.run();
        });
        let (addr, system) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the shipper starts");
        self.running = Some(Running {
            addr,
            system,
            thread,
        });
    }

    /// Graceful stop (`supervision::Stop`), then the system; the store is closed after.
    fn stop(&mut self) {
        let running = self.running.take().expect("running");
        running.addr.do_send(Stop);
        let stopped = wait_until(Duration::from_secs(15), || !running.addr.connected());
        assert!(stopped, "the shipper did not stop within 15 s");
        running.system.stop();
        running
            .thread
            .join()
            .expect("the actix thread ends cleanly");
    }

    /// Stop the system without telling the actor: what a crash leaves behind (the store's WAL).
    fn kill(&mut self) {
        let running = self.running.take().expect("running");
        running.system.stop();
        running.thread.join().expect("the actix thread ends");
    }

    /// Log `count` records `record seq=<n>` (n from `first`, zero-padded to equal sizes).
    fn log_records(&self, first: usize, count: usize) {
        tracing::dispatcher::with_default(&self.dispatch, || {
            for n in first..first + count {
                tracing::info!(target: TARGET, seq = format_args!("{n:07}"), "record");
            }
        });
    }

    fn register(&self, token: &str) {
        self.registration.send_replace(RegistrationChanged {
            status: RegistrationStatus::Registered,
            token: Some(Secret::new(token.to_owned())),
        });
    }

    fn stats(&self) -> LogShipperStats {
        self.intake.stats().snapshot()
    }

    /// Wait until the queue holds `len` records (the channel is drained into it).
    fn wait_queued(&self, len: u64) {
        let ok = wait_until(Duration::from_secs(30), || {
            self.intake.pending() == 0 && self.stats().queue_len == len
        });
        assert!(ok, "queue never reached {len}: {:?}", self.stats());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.system.stop();
            let _ = running.thread.join();
        }
    }
}

/// Register an agent with the simulator and return its token.
fn token(sim: &Sim, oibus_id: &str) -> String {
    sim.register_oibus(&format!("c{}", &oibus_id[..5]), oibus_id)
}

/// Every log record the simulator received, in arrival order.
fn received(sim: &Sim) -> Vec<Value> {
    array(&sim.admin_get("/admin/logs?limit=10000000"), "records")
        .into_iter()
        .map(|r| r["record"].clone())
        .collect()
}

/// How many log records the simulator received (without listing them).
fn received_count(sim: &Sim) -> u64 {
    sim.admin_get("/admin/logs?limit=1")["count"]
        .as_u64()
        .expect("count")
}

/// The `seq` of each received test record.
fn seqs(records: &[Value]) -> Vec<usize> {
    records
        .iter()
        .filter_map(|r| {
            r["message"]
                .as_str()?
                .strip_prefix("record seq=")?
                .parse()
                .ok()
        })
        .collect()
}

/// Wait until the simulator holds at least `count` records (the shipper's own warnings count).
fn wait_received(sim: &Sim, count: u64, timeout: Duration) {
    let ok = wait_until(timeout, || received_count(sim) >= count);
    assert!(
        ok,
        "the simulator got {} of {count} records; stderr:\n{}",
        received_count(sim),
        sim.stderr()
    );
}

/// Wait until the simulator holds at least `count` test records; their seqs.
fn wait_seqs(sim: &Sim, count: usize, timeout: Duration) -> Vec<usize> {
    let mut got = Vec::new();
    let ok = wait_until(timeout, || {
        got = seqs(&received(sim));
        got.len() >= count
    });
    assert!(
        ok,
        "the simulator got {} of {count} test records; stderr:\n{}",
        got.len(),
        sim.stderr()
    );
    got
}

#[test]
fn records_reach_the_simulator_in_order_exactly_once_and_well_formed() {
    let sim = Sim::start(SimOpts::default());
    let mut node = Node::new(config(&sim, LogLevel::Info));
    node.register(&token(&sim, "inorder0000000001"));
    node.start();
    node.log_records(0, 1_000);
    wait_received(&sim, 1_000, Duration::from_secs(30));
    let records = received(&sim);
    assert_eq!(seqs(&records), (0..1_000).collect::<Vec<_>>());
    let first = &records[0];
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["scopeType"], "INTERNAL");
    assert_eq!(
        first["scopeName"],
        Value::Null,
        "OIBus names no internal scope"
    );
    assert_eq!(first["scopeId"], Value::Null);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    let wait = wait_until(Duration::from_secs(5), || node.stats().queue_len == 0);
    assert!(
        wait,
        "delivered records leave the queue: {:?}",
        node.stats()
    );
    let stats = node.stats();
    assert_eq!(
        (stats.accepted, stats.delivered, stats.dropped()),
        (1_000, 1_000, 0)
    );
    // batch_max 100: at least ten posts, never an empty one.
    assert!(stats.posts_ok >= 10, "{stats:?}");
    node.stop();
    assert_eq!(received_count(&sim), 1_000, "nothing sent twice");
}

#[test]
fn records_logged_during_an_outage_arrive_after_recovery() {
    let sim = Sim::start(SimOpts::default());
    let mut node = Node::new(config(&sim, LogLevel::Info));
    node.register(&token(&sim, "outage00000000001"));
    sim.fault(
        "logs",
        3,
        json!({"status": 500, "body": "down for maintenance"}),
    );
    node.start();
    node.log_records(0, 50);
    let failing = wait_until(Duration::from_secs(10), || node.stats().posts_failed >= 1);
    assert!(failing, "the first post fails: {:?}", node.stats());
    node.log_records(50, 50);
    assert_eq!(
        wait_seqs(&sim, 100, Duration::from_secs(30)),
        (0..100).collect::<Vec<_>>()
    );
    let stats = node.stats();
    assert_eq!(stats.posts_failed, 3, "{stats:?}");
    assert_eq!(stats.dropped(), 0);
    assert!(
        stats.last_error.is_none(),
        "a delivery clears the error: {stats:?}"
    );
}

/// Regression: after a 30 s outage the backoff had grown past the interval (30.7 s), so the
/// records held during it waited for the agent's stop. The backoff is capped at the interval.
#[test]
fn records_held_during_a_30_s_outage_arrive_within_one_interval_of_the_recovery() {
    let sim = Sim::start(SimOpts::default());
    let mut config = config(&sim, LogLevel::Info);
    // The shipped defaults: a 10 s interval, and batches of 500, so the backlog is one post.
    config.actors.log_shipper = Config::default().actors.log_shipper;
    let interval = config.actors.log_shipper.interval;
    let mut node = Node::new(config);
    node.register(&token(&sim, "recover0000000001"));
    // More failures than any backoff makes in 30 s: the route is down until the faults go.
    sim.fault("logs", 10_000, json!({"status": 500, "body": "down"}));
    node.start();
    let outage = Instant::now();
    let mut logged = 0;
    while outage.elapsed() < Duration::from_secs(30) {
        node.log_records(logged, 2);
        logged += 2;
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(node.stats().posts_failed >= 4, "{:?}", node.stats());
    assert!(
        seqs(&received(&sim)).is_empty(),
        "nothing gets through the outage"
    );
    sim.admin_delete("/admin/faults");
    let recovered = Instant::now();
    assert_eq!(
        wait_seqs(&sim, logged, interval * 3),
        (0..logged).collect::<Vec<_>>()
    );
    let took = recovered.elapsed();
    // One interval for the pending retry, plus the post itself and this test's polling.
    assert!(
        took <= interval + Duration::from_secs(2),
        "{logged} records took {took:?} after the recovery; the interval is {interval:?}"
    );
    node.stop();
}

#[test]
fn a_backlog_left_by_a_graceful_stop_or_a_crash_is_delivered_after_a_restart() {
    for (graceful, count, oibus_id) in [
        (true, 2_000, "backlog0000000001"),
        (false, 500, "crashed0000000001"),
    ] {
        let sim = Sim::start(SimOpts::default());
        let mut node = Node::new(config(&sim, LogLevel::Info));
        node.start();
        node.log_records(0, count);
        node.wait_queued(count as u64);
        if graceful {
            node.stop();
        } else {
            node.kill();
        }
        let posts = sim.requests_on("logs");
        assert_eq!(posts, 0, "nothing is posted while not registered");
        node.register(&token(&sim, oibus_id));
        node.start();
        wait_received(&sim, count as u64, Duration::from_secs(30));
        assert_eq!(seqs(&received(&sim)), (0..count).collect::<Vec<_>>());
    }
}

#[test]
fn a_graceful_stop_posts_what_the_layer_just_handed_over() {
    let sim = Sim::start(SimOpts::default());
    let mut cfg = config(&sim, LogLevel::Info);
    // Only the final flush can deliver within this test.
    cfg.actors.log_shipper.interval = Duration::from_secs(60);
    cfg.actors.log_shipper.batch_max = 500;
    let mut node = Node::new(cfg);
    node.register(&token(&sim, "finalfl0000000001"));
    node.start();
    node.log_records(0, 120);
    node.stop();
    assert_eq!(seqs(&received(&sim)), (0..120).collect::<Vec<_>>());
    assert_eq!(sim.requests_on("logs"), 1, "one final post");
}

#[test]
fn the_cap_drops_the_oldest_records_and_counts_every_drop() {
    let sim = Sim::start(SimOpts::default());
    let mut node = Node::new(config(&sim, LogLevel::Info));
    node.start();
    // Every test record has the same size (fixed-width timestamp and seq).
    node.log_records(0, 1);
    node.wait_queued(1);
    let size = node.stats().queue_bytes;
    let mut cfg = (**node.config.borrow()).clone();
    cfg.actors.log_shipper.queue_max_bytes = ByteSize(100 * size);
    node.config.send_replace(Arc::new(cfg));
    node.log_records(1, 999);
    let settled = wait_until(Duration::from_secs(30), || {
        let s = node.stats();
        node.intake.pending() == 0 && s.queue_len + s.dropped_cap == 1_000
    });
    assert!(settled, "{:?}", node.stats());
    let stats = node.stats();
    assert_eq!((stats.queue_len, stats.queue_bytes), (100, 100 * size));
    assert_eq!(
        stats.dropped_cap, 900,
        "exactly the overflow is dropped and counted"
    );
    assert_eq!(stats.dropped_channel, 0);
    node.register(&token(&sim, "capped00000000001"));
    wait_received(&sim, 100, Duration::from_secs(30));
    assert_eq!(
        seqs(&received(&sim)),
        (900..1_000).collect::<Vec<_>>(),
        "the newest are kept"
    );
}

/// `warn 1`, `debug 2`…: the messages the level test logs (E8 names no scope to filter on).
fn is_test_message(message: &str) -> bool {
    message.split_once(' ').is_some_and(|(level, n)| {
        ["trace", "debug", "info", "warn", "error"].contains(&level)
            && n.len() == 1
            && n.bytes().all(|b| b.is_ascii_digit())
    })
}

#[test]
fn only_records_at_or_above_the_oia_level_are_shipped() {
    let sim = Sim::start(SimOpts::default());
    let mut node = Node::new(config(&sim, LogLevel::Warn));
    node.register(&token(&sim, "levels00000000001"));
    node.start();
    tracing::dispatcher::with_default(&node.dispatch, || {
        tracing::debug!(target: TARGET, "debug 1");
        tracing::info!(target: TARGET, "info 1");
        tracing::warn!(target: TARGET, "warn 1");
        tracing::error!(target: TARGET, "error 1");
    });
    node.level.set(LogLevel::Debug);
    tracing::dispatcher::with_default(&node.dispatch, || {
        tracing::trace!(target: TARGET, "trace 2");
        tracing::debug!(target: TARGET, "debug 2");
        tracing::debug!(target: "h2::codec", "foreign debug 2");
    });
    // A reload that changes engine.log.oia applies at once too.
    let mut cfg = (**node.config.borrow()).clone();
    cfg.engine.log.oia = LogLevel::Error;
    node.config.send_replace(Arc::new(cfg));
    let applied = wait_until(Duration::from_secs(10), || {
        node.level.get() == LogLevel::Error
    });
    assert!(applied, "the reload sets the level");
    tracing::dispatcher::with_default(&node.dispatch, || {
        tracing::warn!(target: TARGET, "warn 3");
        tracing::error!(target: TARGET, "error 3");
    });
    wait_received(&sim, 4, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let got: Vec<(String, String)> = received(&sim)
        .iter()
        .filter(|r| r["message"].as_str().is_some_and(is_test_message))
        .map(|r| {
            (
                r["level"].as_str().unwrap_or("").to_owned(),
                r["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("WARN", "warn 1"),
            ("ERROR", "error 1"),
            ("DEBUG", "debug 2"),
            ("ERROR", "error 3")
        ]
        .map(|(l, m)| (l.to_owned(), m.to_owned()))
    );
}

#[test]
fn nothing_is_posted_while_not_registered_or_silent() {
    let sim = Sim::start(SimOpts::default());
    let mut node = Node::new(config(&sim, LogLevel::Info));
    node.start();
    node.log_records(0, 10);
    node.wait_queued(10);
    std::thread::sleep(Duration::from_secs(1)); // five intervals
    assert_eq!(sim.requests_on("logs"), 0, "not registered: no post");

    node.level.set(LogLevel::Silent);
    node.register(&token(&sim, "silent00000000001"));
    node.log_records(10, 10);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        sim.requests_on("logs"),
        0,
        "silent: no post, even with records queued"
    );
    assert_eq!(node.stats().accepted, 10, "silent: nothing new accepted");
    assert_eq!(node.stats().queue_len, 10, "the backlog waits");

    node.running
        .as_ref()
        .expect("running")
        .addr
        .do_send(SetOiaLevel(LogLevel::Info));
    wait_received(&sim, 10, Duration::from_secs(10));
    assert_eq!(seqs(&received(&sim)), (0..10).collect::<Vec<_>>());
}

/// A real engine of `sim` shipping its own logs at `info`, posting every second.
fn engine_home(sim: &Sim) -> AgentHome {
    let home = AgentHome::new(&format!(
        "{}actors:\n  log_shipper: {{ interval: 1s }}\n",
        sim_section(sim, "")
    ));
    let yaml = std::fs::read_to_string(home.config_path()).expect("read the config");
    std::fs::write(home.config_path(), yaml.replace("oia: silent", "oia: info"))
        .expect("write the config");
    home
}

fn messages(sim: &Sim) -> Vec<String> {
    received(sim)
        .iter()
        .filter_map(|r| r["message"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_engine_queues_its_logs_until_registered_then_ships_them_in_order() {
    let sim = Sim::start(SimOpts::default());
    let home = engine_home(&sim);
    let agent = home.start();
    agent.wait_healthy(Duration::from_secs(30));
    agent.activation_code();
    std::thread::sleep(Duration::from_secs(3)); // three intervals
    assert_eq!(
        sim.requests_on("logs"),
        0,
        "nothing is posted before registration"
    );
    let queued = agent.status()["logs"]["queue_len"].as_u64().unwrap_or(0);
    assert!(
        queued > 0,
        "the startup logs wait in the queue: {}",
        agent.status()
    );
    let (_, metrics) = agent
        .get("/metrics")
        .expect("the local API answers /metrics");
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix("oibus_agent_log_queue_records "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        gauge.is_some_and(|n| n > 0),
        "the queue depth is a gauge: {metrics}"
    );
    assert!(metrics.contains("oibus_agent_log_records_dropped_total{reason=\"queue_cap\"} 0"));

    agent.complete_registration(&sim);
    let ok = wait_until(Duration::from_secs(30), || {
        messages(&sim)
            .iter()
            .any(|m| m.starts_with("oibus-agent engine starting"))
    });
    assert!(
        ok,
        "startup logs never arrived: {:?}\n{}",
        messages(&sim),
        agent.logs()
    );
    let records = received(&sim);
    let starting = records
        .iter()
        .find(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("oibus-agent engine starting"))
        })
        .expect("found above");
    assert_eq!(starting["scopeType"], "INTERNAL");
    assert_eq!(starting["scopeName"], Value::Null);
    assert_eq!(starting["level"], "INFO");
    let stamps: Vec<&str> = records
        .iter()
        .filter_map(|r| r["timestamp"].as_str())
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "in order: {stamps:?}"
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

#[test]
fn logs_of_a_stop_during_an_outage_are_delivered_after_the_restart() {
    let sim = Sim::start(SimOpts::default());
    let home = engine_home(&sim);
    let mut agent = home.start();
    agent.wait_healthy(Duration::from_secs(30));
    agent.complete_registration(&sim);
    let ok = wait_until(Duration::from_secs(30), || received_count(&sim) > 0);
    assert!(ok, "{}", agent.logs());
    sim.fault("logs", 1_000, json!({"status": 503, "body": "maintenance"}));
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let failing = wait_until(Duration::from_secs(30), || {
        agent.status()["logs"]["posts_failed"].as_u64().unwrap_or(0) > 0
    });
    assert!(failing, "{}", agent.status());
    agent.stop(Duration::from_secs(30));
    for m in [
        "configuration reloaded",
        "stop requested; shutting down in order",
    ] {
        assert!(
            !messages(&sim).iter().any(|x| x.starts_with(m)),
            "{m} arrived during the outage"
        );
    }
    sim.admin_delete("/admin/faults");

    let agent = home.start();
    agent.wait_healthy(Duration::from_secs(30));
    let ok = wait_until(Duration::from_secs(30), || {
        let got = messages(&sim);
        [
            "configuration reloaded",
            "stop requested; shutting down in order",
        ]
        .iter()
        .all(|m| got.iter().any(|x| x.starts_with(m)))
    });
    assert!(
        ok,
        "the backlog never arrived: {:?}\n{}",
        messages(&sim),
        agent.logs()
    );
    assert_eq!(agent.status()["logs"]["dropped_cap"], 0);
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
}

/// CPU seconds this process used so far (every thread, RocksDB's included).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Fill the node's queue directly with `count` rendered records (as the actor would store them).
fn preload(node: &Node, count: usize) {
    let store = Store::open(&node.dir.path().join("store")).expect("open the store");
    let queue = Queue::open(&store, Cf::Logs, QUEUE_NAME, u64::MAX).expect("open the queue");
    let chunk = 10_000;
    for start in (0..count).step_by(chunk) {
        let records: Vec<Vec<u8>> = (start..(start + chunk).min(count))
            .map(|n| {
                serde_json::to_vec(&json!({
                    "timestamp": "2026-11-23T19:10:44.382Z", "level": "INFO", "scopeType": "INTERNAL",
                    "scopeId": null, "scopeName": null, "itemId": null, "itemName": null,
                    "groupId": null, "groupName": null, "message": format!("record seq={n:07}")
                }))
                .expect("JSON")
            })
            .collect();
        queue
            .push_batch(&records, Durability::Buffered)
            .expect("push");
    }
    store.flush().expect("flush");
}

mod bench {
    use super::*;
    use crate::data_bench::rss_mib;

    /// Records per second from `tracing::info!` into the durable queue (not registered, so
    /// nothing is posted), one producer thread (the second core runs the actor).
    #[test]
    #[ignore = "benchmark"]
    fn bench_accept_rate() {
        let sim = Sim::start(SimOpts::default());
        let mut cfg = config(&sim, LogLevel::Info);
        cfg.actors.log_shipper.queue_max_bytes = ByteSize(4 << 30);
        let mut node = Node::new(cfg);
        node.start();
        let total = 300_000;
        let (started, cpu) = (Instant::now(), cpu_seconds());
        node.log_records(0, total);
        let produced = started.elapsed();
        let ok = wait_until(Duration::from_secs(120), || {
            let s = node.stats();
            node.intake.pending() == 0 && s.queue_len + s.dropped_channel >= total as u64
        });
        assert!(ok, "{:?}", node.stats());
        let (stored, cpu) = (started.elapsed(), cpu_seconds() - cpu);
        let s = node.stats();
        println!(
            "accept: {total} records logged in {produced:.2?} ({:.0}/s offered); {} queued in {stored:.2?} ({:.0}/s stored, {:.0} per CPU-second); {} dropped (channel full)",
            total as f64 / produced.as_secs_f64(),
            s.queue_len,
            s.queue_len as f64 / stored.as_secs_f64(),
            s.queue_len as f64 / cpu,
            s.dropped_channel
        );
        bench_figure(
            "log_accept_per_s",
            s.queue_len as f64 / stored.as_secs_f64(),
            "records/s",
        );
    }

    /// Records per second delivered to the simulator from a preloaded backlog.
    #[test]
    #[ignore = "benchmark"]
    fn bench_delivery_rate() {
        let sim = Sim::start(SimOpts::default());
        let mut cfg = config(&sim, LogLevel::Info);
        cfg.actors.log_shipper.batch_max = 500;
        cfg.actors.log_shipper.queue_max_bytes = ByteSize(4 << 30);
        let mut node = Node::new(cfg);
        // Long enough (about 5 s) that the start of the shipper and the 20 ms polling of the
        // count do not weigh on the figure.
        let total = 1_000_000;
        preload(&node, total);
        node.register(&token(&sim, "benchdelivery0001"));
        let (started, cpu) = (Instant::now(), cpu_seconds());
        node.start();
        wait_received(&sim, total as u64, Duration::from_secs(600));
        let (took, cpu) = (started.elapsed(), cpu_seconds() - cpu);
        println!(
            "delivery: {total} records to the simulator in {took:.2?} ({:.0}/s), batches of 500; shipper side {:.0} per CPU-second",
            total as f64 / took.as_secs_f64(),
            total as f64 / cpu
        );
        bench_figure(
            "log_delivery_per_s",
            total as f64 / took.as_secs_f64(),
            "records/s",
        );
    }

    /// Resident memory with a 1M-record backlog, idle and while delivering.
    #[test]
    #[ignore = "benchmark"]
    fn bench_rss_with_a_million_record_backlog() {
        let sim = Sim::start(SimOpts::default());
        let mut cfg = config(&sim, LogLevel::Info);
        cfg.actors.log_shipper.batch_max = 500;
        cfg.actors.log_shipper.queue_max_bytes = ByteSize(4 << 30);
        let mut node = Node::new(cfg);
        let before = rss_mib();
        preload(&node, 1_000_000);
        let after_preload = rss_mib();
        node.start();
        node.wait_queued(1_000_000);
        std::thread::sleep(Duration::from_secs(3));
        let idle = rss_mib();
        node.register(&token(&sim, "benchrss000000001"));
        let mut peak = idle;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            peak = peak.max(rss_mib());
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "rss: {before:.1} MiB at start, {after_preload:.1} after writing 1M records, {idle:.1} idle with the backlog, {peak:.1} peak while delivering ({} delivered in 20 s)",
            node.stats().delivered
        );
        bench_figure("log_backlog_rss_idle", idle, "MiB");
        bench_figure("log_backlog_rss_delivering", peak, "MiB");
    }
}
