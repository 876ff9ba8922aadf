//! The modbus south end to end, through OIAnalytics commands only, against a Modbus TCP server
//! in the test process whose registers change every second: the values reach the simulator
//! decoded as OIBus decodes them, an illegal address is reported with the item and address, and
//! the agent reconnects by itself after the server was down. And a north `modbus` writes
//! setpoints (through `setpoint-to-modbus`) to the server.

use std::collections::HashMap;
use std::future::{self, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::{ExceptionCode, Request, Response};

use crate::commands::{command, completed_json, run_completed, started};
use crate::data_plane::{every_second, oia_north};
use crate::kit::agent::{Agent, AgentHome};
use crate::kit::connectors::{
    connector_id, errored_naming, recent_values as recent, south_status, standard_transformer,
    tested_south_connection, write_setpoints,
};
use crate::kit::sim::Sim;
use crate::kit::wait_until;

const WAIT: Duration = Duration::from_secs(30);
/// Addresses from here answer IllegalDataAddress.
const MEMORY: u16 = 1000;
/// The double at holding registers 30..34, sent times the item's multiplier 2.
const DOUBLE: f64 = 1234.5678;

/// What was written to the device, by address: it wins over the computed values.
#[derive(Debug, Default)]
struct Written {
    registers: HashMap<u16, u16>,
    coils: HashMap<u16, bool>,
}

/// The device's registers at `seconds` since the server started.
fn holding(address: u16, seconds: u16) -> u16 {
    let temperature = (f32::from(seconds) + 0.5).to_bits();
    let double = DOUBLE.to_bits();
    let double_word = |i: u32| (double >> (48 - 16 * i)) as u16;
    match address {
        0 => seconds,
        // OIBus's default word order for 32 and 64 bits: low word first in each 32-bit half.
        1 => temperature as u16,
        2 => (temperature >> 16) as u16,
        20 => 0b1000,
        30 => double_word(1),
        31 => double_word(0),
        32 => double_word(3),
        33 => double_word(2),
        _ => 0,
    }
}

/// The device's service: holding and input registers, coils; single writes.
struct Device {
    started: Instant,
    written: Arc<Mutex<Written>>,
}

impl tokio_modbus::server::Service for Device {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        let seconds = self.started.elapsed().as_secs() as u16;
        let range = |start: u16, count: u16| {
            let end = u32::from(start) + u32::from(count);
            (end <= u32::from(MEMORY))
                .then_some(start..start + count)
                .ok_or(ExceptionCode::IllegalDataAddress)
        };
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let answer = match request {
            Request::ReadHoldingRegisters(start, count) => range(start, count).map(|r| {
                let value = |a| {
                    written
                        .registers
                        .get(&a)
                        .copied()
                        .unwrap_or(holding(a, seconds))
                };
                Response::ReadHoldingRegisters(r.map(value).collect())
            }),
            Request::WriteSingleRegister(address, word) => range(address, 1).map(|_| {
                written.registers.insert(address, word);
                Response::WriteSingleRegister(address, word)
            }),
            Request::WriteSingleCoil(address, on) => range(address, 1).map(|_| {
                written.coils.insert(address, on);
                Response::WriteSingleCoil(address, on)
            }),
            Request::ReadInputRegisters(start, count) => range(start, count).map(|r| {
                // Input register 10: minus the seconds, an int16.
                let value = |a| {
                    if a == 10 {
                        (-(i32::from(seconds % 100))) as u16
                    } else {
                        0
                    }
                };
                Response::ReadInputRegisters(r.map(value).collect())
            }),
            Request::ReadCoils(start, count) => range(start, count)
                .map(|r| Response::ReadCoils(r.map(|a| a == 3 && seconds % 2 == 0).collect())),
            _ => Err(ExceptionCode::IllegalFunction),
        };
        Box::pin(future::ready(answer))
    }
}

/// The server on its own thread and runtime; `stop` closes the listener and every connection.
pub(crate) struct ModbusServer {
    pub(crate) port: u16,
    written: Arc<Mutex<Written>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ModbusServer {
    /// Listens on 127.0.0.1:`port` (0: any free port).
    pub(crate) fn start(port: u16) -> ModbusServer {
        let (bound_tx, bound_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let written = Arc::new(Mutex::new(Written::default()));
        let device_written = written.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the Modbus server");
            runtime.block_on(async move {
                // Tokio sets SO_REUSEADDR: the port can be taken again right after a stop.
                let address = SocketAddr::from(([127, 0, 0, 1], port));
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .expect("bind the Modbus server");
                let _ = bound_tx.send(listener.local_addr().expect("local address").port());
                let started = Instant::now();
                let server = Server::new(listener);
                let on_connected = |stream, socket_addr| {
                    let written = device_written.clone();
                    async move {
                        accept_tcp_connection(stream, socket_addr, |_| {
                            Ok(Some(Device {
                                started,
                                written: written.clone(),
                            }))
                        })
                    }
                };
                let _ = server
                    .serve_until(&on_connected, |_| {}, async {
                        let _ = stopped.await;
                    })
                    .await;
            });
            // Dropping the runtime aborts the connection tasks: the clients see the close.
            runtime.shutdown_background();
        });
        let port = bound_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the Modbus server listens");
        ModbusServer {
            port,
            written,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ModbusServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn register(name: &str, modbus_type: &str, address: &str, data: Value) -> Value {
    json!({"id": null, "name": name, "enabled": true, "scanModeId": null, "scanModeName": "every-second",
           "settings": {"modbusType": modbus_type, "address": address, "data": data}})
}

fn data(data_type: &str, bit_index: u32, multiplier: f64) -> Value {
    json!({"dataType": data_type, "bitIndex": bit_index, "multiplierCoefficient": multiplier})
}

fn modbus_south(id: &str, name: &str, port: u16, items: Vec<Value>) -> Value {
    command(
        id,
        "create-south",
        json!({"retrieveSecretsFromSouth": null, "commandContent": {
            "name": name, "type": "modbus", "description": "", "enabled": true,
            "settings": {"host": "127.0.0.1", "port": port, "connectTimeout": 1000,
                         "networkTimeout": 2000, "retryInterval": 1000, "slaveId": 1,
                         "addressOffset": "modbus", "endianness": "big-endian",
                         "swapBytesInWords": false, "swapWordsInDWords": false,
                         "batchQuery": true, "groupingGap": 0},
            "items": items, "groups": []}}),
    )
}

/// The device's items, one of each kind of read.
fn device_items() -> Vec<Value> {
    vec![
        register("counter", "holding-register", "0", data("uint16", 0, 1.0)),
        register(
            "temperature",
            "holding-register",
            "0x0001",
            data("float", 0, 1.0),
        ),
        register("alarm", "holding-register", "20", data("bit", 3, 1.0)),
        register("energy", "holding-register", "30", data("double", 0, 2.0)),
        register("drift", "input-register", "10", data("int16", 0, 1.0)),
        json!({"id": null, "name": "running", "enabled": true, "scanModeId": null,
               "scanModeName": "every-second",
               "settings": {"modbusType": "coil", "address": "3"}}),
    ]
}

/// A registered agent with an OIA north, a modbus south `plc` on `port` and `extra` commands.
fn flow(port: u16, extra: &[Value]) -> (Sim, AgentHome, Agent) {
    let (sim, home, agent) = started(&[]);
    let mut commands = vec![
        every_second("m1"),
        oia_north("m2", "to-oia", 3),
        modbus_south("m3", "plc", port, device_items()),
    ];
    commands.extend_from_slice(extra);
    run_completed(&sim, &agent, &json!(commands));
    (sim, home, agent)
}

/// The instants at which the simulator lately received a `counter`, sorted, each once.
fn counter_instants(sim: &Sim) -> Vec<String> {
    let mut at: Vec<String> = recent(sim)
        .into_iter()
        .filter(|(p, _, _)| p == "counter")
        .map(|(_, t, _)| t)
        .collect();
    at.sort();
    at.dedup();
    at
}

fn value_of<'a>(values: &'a [(String, String, String)], point: &str, at: &str) -> Option<&'a str> {
    values
        .iter()
        .find(|(p, t, _)| p == point && t == at)
        .map(|(_, _, v)| v.as_str())
}

#[test]
fn registers_and_coils_of_a_modbus_server_reach_oianalytics_decoded_as_oibus_does() {
    let server = ModbusServer::start(0);
    let ghost = modbus_south(
        "m4",
        "ghost-plc",
        server.port,
        vec![register(
            "ghost",
            "holding-register",
            "2000",
            data("uint16", 0, 1.0),
        )],
    );
    let (sim, _home, agent) = flow(server.port, &[ghost]);

    // Both coil states seen, and one read where every item has a value.
    let mut complete = None;
    let ok = wait_until(WAIT, || {
        let values = recent(&sim);
        let coil = |state: &str| values.iter().any(|(p, _, v)| p == "running" && v == state);
        complete = values
            .iter()
            .filter(|(p, _, _)| p == "counter")
            .map(|(_, t, _)| t.clone())
            .find(|t| {
                ["temperature", "alarm", "energy", "drift", "running"]
                    .iter()
                    .all(|p| value_of(&values, p, t).is_some())
            });
        coil("0") && coil("1") && complete.is_some()
    });
    let values = recent(&sim);
    assert!(ok, "values missing: {values:?}\n{}", agent.logs());
    let at = complete.unwrap_or_default();
    let counter: u16 = value_of(&values, "counter", &at)
        .and_then(|v| v.parse().ok())
        .expect("counter is an integer");
    // counter and temperature come from one request: the same instant of the device.
    assert_eq!(
        value_of(&values, "temperature", &at),
        Some(format!("{counter}.5").as_str())
    );
    assert_eq!(value_of(&values, "alarm", &at), Some("1"));
    assert_eq!(value_of(&values, "energy", &at), Some("2469.1356"));
    let drift: i32 = value_of(&values, "drift", &at)
        .and_then(|v| v.parse().ok())
        .expect("drift is an integer");
    assert!((-99..=0).contains(&drift), "{drift}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&at).is_ok() && at.ends_with('Z'),
        "{at}"
    );
    assert!(values.iter().all(|(p, _, _)| p != "ghost"));

    let ghost = south_status(&agent, "ghost-plc");
    let error = ghost["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("'ghost'") && error.contains("2000"),
        "{ghost}"
    );
    assert_eq!(south_status(&agent, "plc")["last_error"], Value::Null);

    let tested = tested_south_connection(&sim, &agent, "plc", "modbus");
    assert_eq!(
        tested,
        json!({"items": [{"key": "RemoteAddress", "value": format!("127.0.0.1:{}", server.port)}]})
    );
}

#[test]
fn values_resume_by_themselves_after_the_modbus_server_was_down() {
    let mut server = ModbusServer::start(0);
    let port = server.port;
    let (sim, _home, agent) = flow(port, &[]);
    assert!(
        wait_until(WAIT, || !counter_instants(&sim).is_empty()),
        "no value before the outage\n{}",
        agent.logs()
    );

    server.stop();
    let down = Instant::now();
    let ok = wait_until(WAIT, || {
        south_status(&agent, "plc")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("127.0.0.1:{port}")))
    });
    assert!(ok, "{}\n{}", south_status(&agent, "plc"), agent.logs());
    let errors = south_status(&agent, "plc")["errors"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed()));
    let during = south_status(&agent, "plc");
    assert_eq!(during["state"], "error", "{during}");
    assert!(during["errors"].as_u64().unwrap_or(0) > errors, "{during}");
    let last_before = counter_instants(&sim).into_iter().max().unwrap_or_default();

    let _server = ModbusServer::start(port);
    let ok = wait_until(WAIT, || {
        counter_instants(&sim).into_iter().max().unwrap_or_default() > last_before
            && south_status(&agent, "plc")["last_error"].is_null()
    });
    assert!(ok, "{}\n{}", south_status(&agent, "plc"), agent.logs());
}

#[test]
fn setpoints_are_written_to_the_modbus_server_through_setpoint_to_modbus() {
    let server = ModbusServer::start(0);
    let (sim, _home, agent) = started(&[]);
    // jbus: addresses from 1, so 41 is register 40 and 8 is coil 7.
    let mapping = json!([
        {"reference": "speed", "address": "41", "modbusType": "register"},
        {"reference": "pump", "address": "8", "modbusType": "coil"}
    ]);
    let settings = json!({"host": "127.0.0.1", "port": server.port, "connectTimeout": 1000,
                          "retryInterval": 1000, "slaveId": 1, "addressOffset": "jbus",
                          "endianness": "big-endian", "swapBytesInWords": false,
                          "swapWordsInDWords": false});
    let setpoints = json!([{"reference": "speed", "value": "1500"}, {"reference": "pump", "value": 1},
                           {"reference": "unmapped", "value": 7}]);
    write_setpoints(
        &sim,
        &agent,
        ("modbus", "to-plc"),
        settings,
        mapping,
        setpoints,
    );
    let ok = wait_until(WAIT, || {
        let written = server.written.lock().unwrap_or_else(|e| e.into_inner());
        written.registers.get(&40) == Some(&1500) && written.coils.get(&7) == Some(&true)
    });
    assert!(ok, "{:?}\n{}", server.written, agent.logs());
    let written = server.written.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        written.registers.len() + written.coils.len(),
        2,
        "{written:?}"
    );
}

#[test]
fn an_illegal_address_or_a_malformed_item_costs_only_itself_named_and_counted() {
    let server = ModbusServer::start(0);
    let (sim, _home, agent) = started(&[]);
    // In the same south as the device's items: the server answers IllegalDataAddress for
    // 2000, and `pump-3` is no address at all.
    let mut items = device_items();
    items.push(register(
        "ghost",
        "holding-register",
        "2000",
        data("uint16", 0, 1.0),
    ));
    items.push(register(
        "typo",
        "input-register",
        "pump-3",
        data("uint16", 0, 1.0),
    ));
    let commands = json!([
        every_second("m1"),
        oia_north("m2", "to-oia", 3),
        modbus_south("m3", "plc", server.port, items)
    ]);
    run_completed(&sim, &agent, &commands);
    // The other items keep flowing: counters at several instants.
    let ok = wait_until(WAIT, || counter_instants(&sim).len() >= 3);
    assert!(ok, "values stopped: {:?}\n{}", recent(&sim), agent.logs());
    let values = recent(&sim);
    assert!(
        values.iter().any(|(p, _, _)| p == "drift")
            && values.iter().any(|(p, _, _)| p == "running"),
        "{values:?}"
    );
    assert!(
        values.iter().all(|(p, _, _)| p != "ghost" && p != "typo"),
        "{values:?}"
    );
    // Counted, each read, and named: the item, the address and what the server said.
    let status = south_status(&agent, "plc");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("'ghost'") && error.contains("2000") && error.contains("'typo'"),
        "{status}"
    );
    assert!(error.contains("pump-3"), "{status}");
    assert!(status["errors"].as_u64().unwrap_or(0) >= 4, "{status}");
    assert!(
        status["read_elements"].as_u64().unwrap_or(0) >= 12,
        "{status}"
    );
    let logs = agent.logs();
    assert!(logs.contains("'ghost'"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn test_south_item_reads_one_item_with_its_transformer_and_leaves_the_live_south_alone() {
    let server = ModbusServer::start(0);
    let (sim, _home, agent) = flow(server.port, &[]);
    assert!(
        wait_until(WAIT, || !counter_instants(&sim).is_empty()),
        "{}",
        agent.logs()
    );
    let south_id = connector_id(&agent, "southConnectors", "plc");
    let transformer = standard_transformer(&sim, &agent, "time-values-to-oianalytics");
    // The settings OIAnalytics shows: the live south's.
    let settings =
        modbus_south("x", "plc", server.port, vec![])["commandContent"]["settings"].clone();
    let item = |name: &str, address: &str| {
        json!({"name": name, "enabled": true,
               "settings": {"modbusType": "holding-register", "address": address,
                            "data": data("float", 0, 1.0)}})
    };
    sim.queue(&json!([command(
        "i1",
        "test-south-item",
        json!({"southConnectorId": south_id, "itemId": "x", "commandContent": {
            "southCommand": {"name": "plc", "type": "modbus", "settings": settings},
            "itemCommand": item("temperature", "1"),
            "testingSettings": {"transformer": {"transformerId": transformer,
                                                "options": {"precision": "s"}}}}})
    )]));
    let tested: Value = completed_json(&sim, &agent, "i1");
    let raw = &tested["raw"];
    assert_eq!(raw["type"], "time-values", "{tested}");
    assert_eq!(
        (raw["truncated"].clone(), raw["totalSize"].clone()),
        (json!(false), json!(1))
    );
    assert_eq!(raw["content"][0]["pointId"], "temperature", "{tested}");
    let value = raw["content"][0]["data"]["value"]
        .as_str()
        .unwrap_or_default();
    assert!(value.ends_with(".5"), "{tested}");
    let transformed = &tested["transformed"];
    assert_eq!(transformed["type"], "oianalytics", "{tested}");
    assert!(
        transformed["content"][0]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with(":00.000Z")
                || t.ends_with("0.000Z")
                || t.ends_with(".000Z")),
        "{tested}"
    );
    assert!(tested["connectionDuration"].is_u64() && tested["queryDuration"].is_u64());

    // An illegal address: the test fails with the item and the address named.
    sim.queue(&json!([command(
        "i2",
        "test-south-item",
        json!({"southConnectorId": south_id, "itemId": "x", "commandContent": {
            "southCommand": {"name": "plc", "type": "modbus", "settings": settings},
            "itemCommand": item("ghost", "2000"), "testingSettings": {}}})
    )]));
    errored_naming(&sim, &agent, "i2", &["'ghost'", "2000"]);

    // The history form runs the same connection test on the history's south settings.
    sim.queue(&json!([command(
        "i3",
        "test-history-query-south-connection",
        json!({"historyId": "create", "southConnectorId": south_id, "commandContent": {
            "southType": "modbus", "southSettings": settings}})
    )]));
    let tested: Value = completed_json(&sim, &agent, "i3");
    assert_eq!(tested["items"][0]["key"], "RemoteAddress", "{tested}");

    // The live south kept reading all along.
    let before = counter_instants(&sim).len();
    assert!(
        wait_until(WAIT, || counter_instants(&sim).len() >= before + 2),
        "{}",
        agent.logs()
    );
    assert_eq!(south_status(&agent, "plc")["last_error"], Value::Null);
}
