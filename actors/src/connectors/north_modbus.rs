//! North modbus (OIBus `north-modbus.ts`): writes `modbus` content (`[{address, value,
//! modbusType}]`, what `setpoint-to-modbus` makes of setpoints) to a Modbus TCP server, a coil
//! with function 5, a register with function 6, in order.
//!
//! The connection is the south's [`Endpoint`]: one per north, reconnected with the agent's
//! backoff. As OIBus, a connection or transport failure and a Modbus exception retry the entry
//! forever (it stays at the head of the queue), and content that cannot be written (an unknown
//! `modbusType`, a malformed address, a register value outside 0..=65535) counts toward
//! `retryCount`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use tokio_modbus::client::Writer;

use super::south_modbus::{parse_address, Endpoint, ModbusError};
use super::{writes_of, ConnectorError, Delivery, SettingsReader};
use crate::content::ContentType;

pub struct ModbusNorth {
    endpoint: Endpoint,
}

/// One write (OIBus `OIBusModbusValue`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModbusValue {
    address: String,
    value: Value,
    modbus_type: String,
}

enum Write {
    Coil(u16, bool),
    Register(u16, u16),
}

impl ModbusNorth {
    /// `settings`: `host`, `port`, `slaveId`, `connectTimeout`, `networkTimeout`,
    /// `retryInterval`, `addressOffset`.
    pub fn new(name: &str, settings: &Value) -> Result<ModbusNorth, ConnectorError> {
        let label = format!("north '{name}'");
        let reader = SettingsReader::new(&label, settings);
        Ok(ModbusNorth {
            endpoint: Endpoint::new(&label, &reader)?,
        })
    }

    pub async fn send(&self, content_type: ContentType, _filename: &str, body: Bytes) -> Delivery {
        let accepted = (ContentType::Modbus, "modbus values");
        let values: Vec<ModbusValue> =
            match writes_of(&self.endpoint.label, accepted, content_type, &body) {
                Ok(values) => values,
                Err(failed) => return failed,
            };
        let writes = match values
            .iter()
            .map(|v| self.write_of(v))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(writes) => writes,
            Err(reason) => return Delivery::Failed(reason),
        };
        let mut link = self.endpoint.lock().await;
        for write in writes {
            let outcome = async {
                let context = self.endpoint.connected(&mut link).await?;
                let (what, asked) = match write {
                    Write::Coil(address, on) => (
                        format!("writing coil {address}"),
                        context.write_single_coil(address, on),
                    ),
                    Write::Register(address, word) => (
                        format!("writing register {address}"),
                        context.write_single_register(address, word),
                    ),
                };
                let answer = self.endpoint.within(asked).await;
                Ok::<_, ModbusError>(answer.map_err(|reason| (what, reason)))
            }
            .await;
            let failed = match outcome {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(exception))) => format!(
                    "{}: the server answered {exception} to a write; check the transformer's mapping",
                    self.endpoint.label
                ),
                Ok(Err((what, reason))) => self.endpoint.lost(&mut link, what, reason).to_string(),
                Err(error) => error.to_string(),
            };
            return Delivery::Retry(failed);
        }
        Delivery::Sent
    }

    /// What `value` writes, with the connector's address offset; `Err` says why it cannot be.
    fn write_of(&self, value: &ModbusValue) -> Result<Write, String> {
        let label = &self.endpoint.label;
        let address = parse_address(&value.address)
            .map(|a| a + self.endpoint.offset)
            .and_then(|a| u16::try_from(a).ok())
            .ok_or_else(|| {
                format!(
                    "{label}: address {:?} is not a Modbus address (0..=65535, decimal or 0x-hexadecimal)",
                    value.address
                )
            })?;
        match value.modbus_type.as_str() {
            "coil" => Ok(Write::Coil(address, js_truthy(&value.value))),
            "register" => value
                .value
                .as_f64()
                .filter(|v| v.fract() == 0.0 && (0.0..=65535.0).contains(v))
                .map(|v| Write::Register(address, v as u16))
                .ok_or_else(|| {
                    format!(
                        "{label}: register {address} cannot hold {} (an integer 0..=65535)",
                        value.value
                    )
                }),
            other => Err(format!(
                "Wrong Modbus type \"{other}\" for address {address}"
            )),
        }
    }

    /// `test-north-connection`: `RemoteAddress`, as OIBus.
    pub async fn test_connection(&self) -> Result<Value, String> {
        self.endpoint
            .test_connection()
            .await
            .map_err(|e| e.to_string())
    }
}

/// JavaScript's `Boolean(value)`.
pub(crate) fn js_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
