//! The targets a north can send to: one variant per north type this agent runs. Any other
//! type is [`Unsupported`]: its configuration is kept and E6 lists it, but it never runs and
//! its status and `test-*` results say so.

use bytes::Bytes;
use serde_json::Value;

use crate::connectors::north_console::ConsoleNorth;
use crate::connectors::north_file_writer::FileWriterNorth;
use crate::connectors::north_modbus::ModbusNorth;
use crate::connectors::north_mqtt::MqttNorth;
use crate::connectors::north_oianalytics::OiaNorth;
use crate::connectors::Delivery;
use crate::content::ContentType;
use crate::entities::NorthConnector;
use crate::AgentContext;

/// What a north of `north_type` that this agent cannot run says.
pub fn unsupported(north_type: &str) -> String {
    format!("North type '{north_type}' is not supported by this agent")
}

pub enum NorthDriver {
    Oianalytics(OiaNorth),
    Console(ConsoleNorth),
    FileWriter(FileWriterNorth),
    Modbus(ModbusNorth),
    Mqtt(MqttNorth),
}

impl NorthDriver {
    /// The driver of `north`; `Err` says why it cannot run (an unsupported type, bad settings).
    pub fn new(north: &NorthConnector, ctx: &AgentContext) -> Result<NorthDriver, String> {
        let (name, settings) = (&north.name, &north.settings);
        match north.connector_type.as_str() {
            "oianalytics" => OiaNorth::new(name, settings, ctx).map(NorthDriver::Oianalytics),
            "console" => ConsoleNorth::new(name, settings).map(NorthDriver::Console),
            "file-writer" => FileWriterNorth::new(name, settings).map(NorthDriver::FileWriter),
            "modbus" => ModbusNorth::new(name, settings).map(NorthDriver::Modbus),
            "mqtt" => {
                MqttNorth::new(north, &ctx.engine_id, ctx.peers.clone()).map(NorthDriver::Mqtt)
            }
            other => return Err(unsupported(other)),
        }
        .map_err(|e| e.to_string())
    }

    /// Whether this agent runs norths of this type.
    pub fn supports(north_type: &str) -> bool {
        matches!(
            north_type,
            "oianalytics" | "console" | "file-writer" | "modbus" | "mqtt"
        )
    }

    /// What the north caches without a transformer (OIBus `supportedTypes()`).
    pub fn accepts(north_type: &str) -> &'static [ContentType] {
        use ContentType::*;
        match north_type {
            "oianalytics" => &[Any, TimeValues, Oianalytics],
            "console" => &[Any, TimeValues, Setpoint],
            "file-writer" => &[Any, Setpoint, TimeValues],
            "modbus" => &[Modbus],
            "mqtt" => &[Mqtt],
            _ => &[],
        }
    }

    pub async fn send(&self, content_type: ContentType, filename: &str, body: Bytes) -> Delivery {
        match self {
            NorthDriver::Oianalytics(n) => n.send(content_type, filename, body).await,
            NorthDriver::Console(n) => n.send(content_type, filename, body).await,
            NorthDriver::FileWriter(n) => n.send(content_type, filename, body).await,
            NorthDriver::Modbus(n) => n.send(content_type, filename, body).await,
            NorthDriver::Mqtt(n) => n.send(content_type, filename, body).await,
        }
    }

    pub async fn test_connection(&self) -> Result<Value, String> {
        match self {
            NorthDriver::Oianalytics(n) => n.test_connection().await,
            NorthDriver::Console(n) => n.test_connection().await,
            NorthDriver::FileWriter(n) => n.test_connection().await,
            NorthDriver::Modbus(n) => n.test_connection().await,
            NorthDriver::Mqtt(n) => n.test_connection().await,
        }
    }
}
