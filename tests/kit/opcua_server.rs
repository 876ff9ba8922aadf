//! A real OPC UA server in the test process (`async-opcua`'s server), on 127.0.0.1 and an
//! ephemeral port, with its own thread and runtime; it stops when dropped.
//!
//! Namespace `urn:oibus-test` (index 2 here: 0 is OPC UA's, 1 the server's) holds, under the
//! folder `Plant`:
//! - `ns=2;s=Counter` (Double): the current whole second since the epoch modulo 100 000, with
//!   that second as its source timestamp: it changes every second, so a subscription gets a
//!   value per second;
//! - `ns=2;s=Temperature` (Double): `20 + (second mod 10) / 10`, same timestamp;
//! - `ns=2;s=History` (Double, historized): its history is every whole second `t` from the
//!   server's `history_from` up to now with the value [`history_value`]`(t)`; a stopped and
//!   restarted server serves the same history, so a client catching up after an outage must
//!   get every second with no hole;
//! - `ns=2;s=Setpoint` (Double, writable): what was written, read back by [`OpcuaServer::written`].
//!
//! Users: anonymous, and `operator` / `secret`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use opcua::server::address_space::{AccessLevel, AddressSpace, VariableBuilder};
use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{
    InMemoryNodeManagerBuilder, InMemoryNodeManagerImpl, InMemoryNodeManagerImplBuilder,
    SimpleNodeManagerBuilder, SimpleNodeManagerImpl,
};
use opcua::server::node_manager::{
    HistoryNode, MethodCall, MonitoredItemRef, MonitoredItemUpdateRef, ParsedReadValueId,
    RequestContext, ServerContext, WriteNode,
};
use opcua::server::{
    CreateMonitoredItem, ServerBuilder, ServerEndpoint, ServerUserToken, ANONYMOUS_USER_TOKEN_ID,
};
use opcua::sync::RwLock;
use opcua::types::{
    DataTypeId, DataValue, DateTime, HistoryData, MessageSecurityMode, MonitoringMode, NodeId,
    ObjectId, ReadRawModifiedDetails, StatusCode, TimestampsToReturn, Variant,
};

pub const NAMESPACE: &str = "urn:oibus-test";
pub const USER: &str = "operator";
pub const PASSWORD: &str = "secret";

/// The value the history holds at whole second `t` (seconds since the epoch).
pub fn history_value(t: i64) -> f64 {
    (t % 100_000) as f64 / 2.0
}

/// The counter's value at whole second `t`.
pub fn counter_value(t: i64) -> f64 {
    (t % 100_000) as f64
}

fn whole_second_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn at(t: i64) -> DateTime {
    DateTime::from(chrono::DateTime::from_timestamp(t, 0).unwrap_or_default())
}

/// What a test reads back and what the history starts from.
#[derive(Clone)]
struct Shared {
    written: Arc<Mutex<HashMap<String, f64>>>,
    history_from: i64,
    /// The index the server gave [`NAMESPACE`].
    ns: Arc<Mutex<u16>>,
    /// Variables `B0`… `B<n-1>` (Int64) for the benchmark, all set every `bench_period`.
    bench_items: usize,
    bench_period: std::time::Duration,
}

/// The simple node manager, plus a history for `History`.
struct TestNodes {
    inner: SimpleNodeManagerImpl,
    ns: u16,
    shared: Shared,
}

#[async_trait]
impl InMemoryNodeManagerImpl for TestNodes {
    async fn init(&self, address_space: &mut AddressSpace, context: ServerContext) {
        self.inner.init(address_space, context).await
    }

    fn name(&self) -> &str {
        "oibus-test"
    }

    fn namespaces(&self) -> Vec<NamespaceMetadata> {
        self.inner.namespaces()
    }

    async fn read_values(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        nodes: &[&ParsedReadValueId],
        max_age: f64,
        timestamps_to_return: TimestampsToReturn,
    ) -> Vec<DataValue> {
        self.inner
            .read_values(context, address_space, nodes, max_age, timestamps_to_return)
            .await
    }

    async fn create_value_monitored_items(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        items: &mut [&mut &mut CreateMonitoredItem],
    ) {
        self.inner
            .create_value_monitored_items(context, address_space, items)
            .await
    }

    async fn modify_monitored_items(
        &self,
        context: &RequestContext,
        items: &[&MonitoredItemUpdateRef],
    ) {
        self.inner.modify_monitored_items(context, items).await
    }

    async fn set_monitoring_mode(
        &self,
        context: &RequestContext,
        mode: MonitoringMode,
        items: &[&MonitoredItemRef],
    ) {
        self.inner.set_monitoring_mode(context, mode, items).await
    }

    async fn delete_monitored_items(&self, context: &RequestContext, items: &[&MonitoredItemRef]) {
        self.inner.delete_monitored_items(context, items).await
    }

    async fn write(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        nodes_to_write: &mut [&mut WriteNode],
    ) -> Result<(), StatusCode> {
        self.inner
            .write(context, address_space, nodes_to_write)
            .await
    }

    async fn call(
        &self,
        context: &RequestContext,
        address_space: &RwLock<AddressSpace>,
        methods_to_call: &mut [&mut &mut MethodCall],
    ) -> Result<(), StatusCode> {
        self.inner
            .call(context, address_space, methods_to_call)
            .await
    }

    async fn history_read_raw_modified(
        &self,
        _context: &RequestContext,
        details: &ReadRawModifiedDetails,
        nodes: &mut [&mut &mut HistoryNode],
        _timestamps_to_return: TimestampsToReturn,
    ) -> Result<(), StatusCode> {
        let start = details.start_time.as_chrono();
        let end = details.end_time.as_chrono();
        // Whole seconds t with start <= t < end, up to now.
        let first = (start.timestamp_millis() + 999).div_euclid(1000);
        let last = ((end.timestamp_millis() - 1).div_euclid(1000)).min(whole_second_now());
        let first = first.max(self.shared.history_from);
        for node in nodes.iter_mut() {
            if node.node_id() != &NodeId::new(self.ns, "History") {
                node.set_status(StatusCode::BadHistoryOperationUnsupported);
                continue;
            }
            let values: Vec<DataValue> = (first..=last)
                .map(|t| DataValue {
                    value: Some(Variant::Double(history_value(t))),
                    status: Some(StatusCode::Good),
                    source_timestamp: Some(at(t)),
                    server_timestamp: Some(at(t)),
                    ..Default::default()
                })
                .collect();
            node.set_result(HistoryData {
                data_values: Some(values),
            });
            node.set_status(StatusCode::Good);
        }
        Ok(())
    }
}

fn build_nodes(
    context: ServerContext,
    address_space: &mut AddressSpace,
    shared: Shared,
) -> TestNodes {
    let inner = SimpleNodeManagerBuilder::new(
        NamespaceMetadata {
            namespace_uri: NAMESPACE.to_owned(),
            ..Default::default()
        },
        "oibus-test",
    )
    .build(context, address_space);
    let ns = inner
        .namespaces()
        .first()
        .map(|n| n.namespace_index)
        .unwrap_or(2);
    *shared.ns.lock().unwrap_or_else(|e| e.into_inner()) = ns;
    let folder = NodeId::new(ns, "Plant");
    address_space.add_folder(
        &folder,
        "Plant",
        "Plant",
        &NodeId::from(ObjectId::ObjectsFolder),
    );
    for i in 0..shared.bench_items {
        let name = format!("B{i}");
        VariableBuilder::new(
            &NodeId::new(ns, name.as_str()),
            name.as_str(),
            name.as_str(),
        )
        .data_type(DataTypeId::Int64)
        .value(0i64)
        .organized_by(folder.clone())
        .insert(address_space);
    }
    let variable = |name: &str| {
        VariableBuilder::new(&NodeId::new(ns, name), name, name)
            .data_type(DataTypeId::Double)
            .value(0.0f64)
            .organized_by(folder.clone())
    };
    variable("Counter").insert(address_space);
    variable("Temperature").insert(address_space);
    variable("History")
        .historizing(true)
        .access_level(AccessLevel::CURRENT_READ | AccessLevel::HISTORY_READ)
        .user_access_level(AccessLevel::CURRENT_READ | AccessLevel::HISTORY_READ)
        .insert(address_space);
    variable("Setpoint")
        .access_level(AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE)
        .user_access_level(AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE)
        .insert(address_space);

    let now_value = |f: fn(i64) -> f64| {
        move |_: &_, _: TimestampsToReturn, _: f64| {
            let t = whole_second_now();
            Ok(DataValue {
                value: Some(Variant::Double(f(t))),
                status: Some(StatusCode::Good),
                source_timestamp: Some(at(t)),
                server_timestamp: Some(at(t)),
                ..Default::default()
            })
        }
    };
    inner.add_read_callback(NodeId::new(ns, "Counter"), now_value(counter_value));
    inner.add_read_callback(
        NodeId::new(ns, "Temperature"),
        now_value(|t| 20.0 + (t % 10) as f64 / 10.0),
    );
    inner.add_read_callback(NodeId::new(ns, "History"), now_value(history_value));
    let written = shared.written.clone();
    inner.add_write_callback(NodeId::new(ns, "Setpoint"), move |value, _| {
        let number = match value.value {
            Some(Variant::Double(v)) => v,
            Some(Variant::Float(v)) => f64::from(v),
            Some(Variant::Int32(v)) => f64::from(v),
            Some(Variant::Int64(v)) => v as f64,
            Some(Variant::UInt32(v)) => f64::from(v),
            Some(Variant::Boolean(v)) => f64::from(u8::from(v)),
            Some(Variant::String(s)) => match s.as_ref().parse() {
                Ok(v) => v,
                Err(_) => return StatusCode::BadTypeMismatch,
            },
            _ => return StatusCode::BadTypeMismatch,
        };
        written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert("Setpoint".into(), number);
        StatusCode::Good
    });
    TestNodes { inner, ns, shared }
}

/// The running server. Dropping it stops it.
pub struct OpcuaServer {
    pub port: u16,
    shared: Shared,
    pki: tempfile::TempDir,
    stop: Option<tokio_util_free::Stop>,
}

/// A cancel handle and the thread, without another dependency.
mod tokio_util_free {
    pub struct Stop {
        pub cancel: Box<dyn FnOnce() + Send>,
        pub thread: std::thread::JoinHandle<()>,
    }
}

impl OpcuaServer {
    /// A server on an ephemeral port whose history starts `history_seconds` ago.
    pub fn start(history_seconds: i64) -> OpcuaServer {
        let shared = Shared {
            written: Arc::default(),
            history_from: whole_second_now() - history_seconds,
            ns: Arc::default(),
            bench_items: 0,
            bench_period: std::time::Duration::from_millis(100),
        };
        OpcuaServer::start_with(shared)
    }

    /// A server whose `items` Int64 variables `B<i>` all change every `period`.
    pub fn start_bench(items: usize, period: std::time::Duration) -> OpcuaServer {
        OpcuaServer::start_with(Shared {
            written: Arc::default(),
            history_from: whole_second_now(),
            ns: Arc::default(),
            bench_items: items,
            bench_period: period,
        })
    }

    fn start_with(shared: Shared) -> OpcuaServer {
        let pki = tempfile::tempdir().expect("pki dir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let mut server = OpcuaServer {
            port,
            shared,
            pki,
            stop: None,
        };
        server.run(Some(listener));
        server
    }

    /// `opc.tcp://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}/", self.port)
    }

    pub fn written(&self, name: &str) -> Option<f64> {
        self.shared
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    /// `ns=<index>;s=<name>` for a variable of the test namespace.
    pub fn node(&self, name: &str) -> String {
        let ns = *self.shared.ns.lock().unwrap_or_else(|e| e.into_inner());
        format!("ns={ns};s={name}")
    }

    /// The whole second the history starts at.
    pub fn history_from(&self) -> i64 {
        self.shared.history_from
    }

    /// Stop the server: the listener and every session close.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            (stop.cancel)();
            let _ = stop.thread.join();
        }
    }

    /// Start it again on the same port, with the same history and written values.
    pub fn restart(&mut self) {
        self.stop();
        self.run(None);
    }

    fn run(&mut self, listener: Option<std::net::TcpListener>) {
        let port = self.port;
        let shared = self.shared.clone();
        let (bench_items, bench_period) = (shared.bench_items, shared.bench_period);
        let pki = self.pki.path().to_path_buf();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread: JoinHandle<()> = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                // Built inside the runtime: the server spawns its samplers at once.
                let user_tokens = [ANONYMOUS_USER_TOKEN_ID.to_owned(), USER.to_owned()];
                let (server, handle) = ServerBuilder::new()
                    .application_name("OIBus test server")
                    .application_uri("urn:oibus-test-server")
                    .product_uri("urn:oibus-test-server")
                    .host("127.0.0.1")
                    .port(port)
                    .pki_dir(pki)
                    .create_sample_keypair(true)
                    .trust_client_certs(true)
                    .add_user_token(
                        USER,
                        ServerUserToken {
                            user: USER.to_owned(),
                            pass: Some(PASSWORD.to_owned()),
                            ..Default::default()
                        },
                    )
                    .add_endpoint("none", ServerEndpoint::new_none("/", &user_tokens))
                    .add_endpoint(
                        "basic256sha256_sign_encrypt",
                        ServerEndpoint::new(
                            "/",
                            opcua::crypto::SecurityPolicy::Basic256Sha256,
                            MessageSecurityMode::SignAndEncrypt,
                            &user_tokens,
                        ),
                    )
                    .discovery_urls(vec!["/".to_owned()])
                    .max_message_size(64 * 1024 * 1024)
                    .max_chunk_count(64 * 1024 * 1024 / 8192)
                    .with_node_manager(InMemoryNodeManagerBuilder::new(
                        move |context: ServerContext, address_space: &mut AddressSpace| {
                            build_nodes(context, address_space, shared)
                        },
                    ))
                    .limits(limits())
                    .build()
                    .expect("the OPC UA test server's configuration");
                if bench_items > 0 {
                    let handle = handle.clone();
                    tokio::spawn(update_bench_values(handle, bench_items, bench_period));
                }
                let listener = match listener {
                    Some(l) => {
                        l.set_nonblocking(true).expect("nonblocking");
                        tokio::net::TcpListener::from_std(l).expect("listener")
                    }
                    None => {
                        // The port was just released by the previous run: retry a moment.
                        let addr = SocketAddr::from(([127, 0, 0, 1], port));
                        let mut tries = 0;
                        loop {
                            match tokio::net::TcpListener::bind(addr).await {
                                Ok(l) => break l,
                                Err(_) if tries < 100 => {
                                    tries += 1;
                                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                }
                                Err(e) => panic!("cannot bind {addr} again: {e}"),
                            }
                        }
                    }
                };
                let _ = ready_tx.send(handle);
                if let Err(e) = server.run_with(listener).await {
                    eprintln!("OPC UA test server: {e}");
                }
            });
            // Dropping the runtime ends every session task and closes their sockets.
            runtime.shutdown_background();
        });
        let handle = ready_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the OPC UA test server starts");
        self.stop = Some(tokio_util_free::Stop {
            cancel: Box::new(move || handle.cancel()),
            thread,
        });
    }
}

/// Room for the benchmark's subscriptions of up to 100,000 monitored items.
fn limits() -> opcua::server::Limits {
    let mut limits = opcua::server::Limits::default();
    limits.subscriptions.max_monitored_items_per_sub = 100_000;
    limits.subscriptions.max_queued_notifications = 200_000;
    limits.subscriptions.max_pending_publish_requests = 100;
    limits.subscriptions.max_publish_requests_per_subscription = 100;
    limits.max_message_size = 64 * 1024 * 1024;
    limits.max_chunk_count = 64 * 1024 * 1024 / 8192;
    limits
}

/// Every `period`, all `B<i>` take the tick count, with the tick's time as source timestamp.
async fn update_bench_values(
    handle: opcua::server::ServerHandle,
    items: usize,
    period: std::time::Duration,
) {
    use opcua::server::node_manager::memory::InMemoryNodeManager;
    let Some(manager) = handle
        .node_managers()
        .get_of_type::<InMemoryNodeManager<TestNodes>>()
    else {
        eprintln!("OPC UA test server: no test node manager");
        return;
    };
    let ns = manager.inner().ns;
    let ids: Vec<NodeId> = (0..items)
        .map(|i| NodeId::new(ns, format!("B{i}")))
        .collect();
    let mut tick = tokio::time::interval(period);
    let mut count: i64 = 0;
    loop {
        tick.tick().await;
        count += 1;
        let now = DateTime::now();
        // In slices, yielding between them, so the sessions are served meanwhile.
        for slice in ids.chunks(5_000) {
            let values = slice.iter().map(|id| {
                (
                    id,
                    None,
                    DataValue {
                        value: Some(Variant::Int64(count)),
                        status: Some(StatusCode::Good),
                        source_timestamp: Some(now),
                        server_timestamp: Some(now),
                        ..Default::default()
                    },
                )
            });
            if let Err(e) = manager.set_values(handle.subscriptions(), values) {
                eprintln!("OPC UA test server: cannot set the bench values: {e}");
                return;
            }
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for OpcuaServer {
    fn drop(&mut self) {
        self.stop();
    }
}
