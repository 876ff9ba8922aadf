//! What the connector tests (modbus, MQTT, OPC UA) share: queue configuration commands, find
//! what the agent made of them, read what reached the simulator, write setpoints.

use serde_json::{json, Value};

use super::agent::Agent;
use super::sim::Sim;
use super::{command, wait_until};
use crate::commands::{completed, completed_json, entities, named, run_completed, terminal, WAIT};
use crate::data_plane::every_second;

/// The id the agent gave the connector `name` of `list` (`southConnectors`, `northConnectors`).
pub fn connector_id(agent: &Agent, list: &str, name: &str) -> Value {
    named(&entities(agent)[list], name)[0]["id"].clone()
}

/// The status page's entry for the south `name` (null while it has none).
pub fn south_status(agent: &Agent, name: &str) -> Value {
    let status = agent.status();
    named(&status["data_flow"]["souths"], name)
        .first()
        .map(|s| (*s).clone())
        .unwrap_or(Value::Null)
}

/// The id the agent gave the standard transformer `function_name`, from its full-config message.
pub fn standard_transformer(sim: &Sim, agent: &Agent, function_name: &str) -> Value {
    let mut id = Value::Null;
    let ok = wait_until(WAIT, || {
        let messages = sim.admin_get("/admin/messages?kind=full-config");
        id = messages["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| {
                m["body"]["transformers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|t| t["settings"]["functionName"] == function_name)
            .map(|t| t["oIBusInternalId"].clone())
            .unwrap_or(Value::Null);
        !id.is_null()
    });
    assert!(
        ok,
        "no {function_name} transformer in a full-config message\n{}",
        agent.logs()
    );
    id
}

/// The values the simulator received lately: (pointId, timestamp, value).
pub fn recent_values(sim: &Sim) -> Vec<(String, String, String)> {
    let data = sim.admin_get("/admin/data");
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    data["recentValues"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let v = &r["value"];
            (
                text(&v["pointId"]),
                text(&v["timestamp"]),
                text(&v["data"]["value"]),
            )
        })
        .collect()
}

/// Command `id`: test the connection of the south `south_id`, of `south_type`.
pub fn test_south_connection(id: &str, south_id: &Value, south_type: &str) -> Value {
    command(
        id,
        "test-south-connection",
        json!({"southConnectorId": south_id,
               "commandContent": {"type": south_type, "settings": {}}}),
    )
}

/// Run `test-south-connection` on the south named `name` (of type `south_type`) and return its
/// completed result.
pub fn tested_south_connection(sim: &Sim, agent: &Agent, name: &str, south_type: &str) -> Value {
    let south_id = connector_id(agent, "southConnectors", name);
    sim.queue(&json!([test_south_connection("t1", &south_id, south_type)]));
    completed_json(sim, agent, "t1")
}

/// Wait until command `id` ends ERRORED with a result that names each of `words`.
pub fn errored_naming(sim: &Sim, agent: &Agent, id: &str, words: &[&str]) {
    let record = terminal(sim, agent, id);
    let result = record["result"].as_str().unwrap_or_default();
    assert_eq!(record["status"], "ERRORED", "{record}");
    assert!(words.iter().all(|w| result.contains(w)), "{record}");
}

/// A north `name` of `north_type` with `settings`, writing OIAnalytics setpoints through the
/// standard `setpoint-to-<north_type>` with `mapping`, created by commands w1 (the scan mode)
/// and w2; then command w3 sends it `setpoints`. Returns w3's COMPLETED record.
pub fn write_setpoints(
    sim: &Sim,
    agent: &Agent,
    (north_type, name): (&str, &str),
    settings: Value,
    mapping: Value,
    setpoints: Value,
) -> Value {
    let transformer = standard_transformer(sim, agent, &format!("setpoint-to-{north_type}"));
    let north = command(
        "w2",
        "create-north",
        json!({"retrieveSecretsFromNorth": null, "commandContent": {
            "name": name, "type": north_type, "description": "", "enabled": true,
            "settings": settings,
            "caching": {"trigger": {"scanModeId": null, "scanModeName": "every-second"}},
            "transformers": [{"transformerId": transformer, "options": {"mapping": mapping},
                              "source": {"type": "oianalytics-setpoint"}}]}}),
    );
    run_completed(sim, agent, &json!([every_second("w1"), north]));
    let north_id = connector_id(agent, "northConnectors", name);
    sim.queue(&json!([command(
        "w3",
        "setpoint",
        json!({"northConnectorId": north_id, "commandContent": setpoints})
    )]));
    completed(sim, agent, "w3")
}
