//! North OPC UA (OIBus `north-opcua.ts`): writes `opcua` content (`[{nodeId, value}]`, what
//! `setpoint-to-opcua` makes of setpoints) to the nodes of an OPC UA server, in order. Each
//! node's DataType is read first and the value converted to it, as OIBus does.
//!
//! One session per north (the south's [`Server`]), opened at the first write and again after
//! the server dropped it. As OIBus, a connection failure retries the entry forever; a node that
//! cannot be written (a bad node id, a value its type cannot hold, a refused write) is logged
//! and skipped, the others are written.

use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use opcua::client::Session;
use opcua::types::{
    AttributeId, DataTypeId, DataValue, NodeId, ReadValueId, TimestampsToReturn, Variant,
    WriteValue,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Mutex};

use super::south_opcua::{close_later, explain, Server};
use super::{writes_of, ConnectorError, Delivery};
use crate::content::ContentType;
use crate::supervision::Peers;

/// One write (OIBus `OIBusOPCUAValue`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpcuaValue {
    node_id: String,
    value: Value,
}

type Link = Option<(Arc<Session>, oneshot::Receiver<String>)>;

pub struct OpcuaNorth {
    server: Server,
    link: Mutex<Link>,
}

impl Drop for OpcuaNorth {
    fn drop(&mut self) {
        if let Some((session, _)) = self.link.get_mut().take() {
            close_later(session);
        }
    }
}

impl OpcuaNorth {
    pub fn new(
        name: &str,
        settings: &Value,
        peers: Peers,
        data_dir: &std::path::Path,
    ) -> Result<OpcuaNorth, ConnectorError> {
        Ok(OpcuaNorth {
            server: Server::new(&format!("north '{name}'"), settings, peers, data_dir)?,
            link: Mutex::new(None),
        })
    }

    /// The open session, connecting when there is none or the last one was lost.
    async fn session(&self, link: &mut Link) -> Result<Arc<Session>, String> {
        if let Some((session, lost)) = link.as_mut() {
            if matches!(lost.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                return Ok(session.clone());
            }
        }
        *link = None;
        let (session, lost) = self.server.connect().await?;
        *link = Some((session.clone(), lost));
        Ok(session)
    }

    pub async fn send(&self, content_type: ContentType, _filename: &str, body: Bytes) -> Delivery {
        let label = self.server.label();
        let accepted = (ContentType::Opcua, "opcua values");
        let values: Vec<OpcuaValue> = match writes_of(label, accepted, content_type, &body) {
            Ok(values) => values,
            Err(failed) => return failed,
        };
        let mut link = self.link.lock().await;
        let session = match self.session(&mut link).await {
            Ok(session) => session,
            Err(e) => return Delivery::Retry(e),
        };
        for value in &values {
            let Ok(node_id) = NodeId::from_str(value.node_id.trim()) else {
                tracing::warn!(north = %label, node_id = %value.node_id, "not an OPC UA node id; value skipped; correct the transformer's mapping");
                continue;
            };
            match self.write(&session, &node_id, &value.value).await {
                Ok(Ok(())) => {
                    tracing::debug!(north = %label, node_id = %value.node_id, value = %value.value, "value written")
                }
                Ok(Err(why)) => {
                    tracing::warn!(north = %label, node_id = %value.node_id, value = %value.value, error = %why, "value not written; skipped")
                }
                Err(e) => {
                    *link = None;
                    return Delivery::Retry(format!(
                        "{label}: writing to {} failed: {e}; reconnecting",
                        self.server.url()
                    ));
                }
            }
        }
        Delivery::Sent
    }

    /// `Err`: the session failed (retry); `Ok(Err)`: this node cannot take this value.
    async fn write(
        &self,
        session: &Session,
        node_id: &NodeId,
        value: &Value,
    ) -> Result<Result<(), String>, String> {
        let timeout = self.server.read_timeout();
        let mut read = ReadValueId::from(node_id.clone());
        read.attribute_id = AttributeId::DataType as u32;
        let answer = tokio::time::timeout(
            timeout,
            session.read(&[read], TimestampsToReturn::Neither, 0.0),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        let data_type = match answer.first().and_then(|d| d.value.clone()) {
            Some(Variant::NodeId(id)) => *id,
            _ => {
                let status = answer.first().and_then(|d| d.status).unwrap_or_default();
                return Ok(Err(format!(
                    "cannot read its DataType ({})",
                    explain(status)
                )));
            }
        };
        let Some(variant) = to_variant(&data_type, value) else {
            return Ok(Err(format!(
                "the value cannot be converted to its DataType {data_type}"
            )));
        };
        let write = WriteValue {
            node_id: node_id.clone(),
            attribute_id: AttributeId::Value as u32,
            index_range: Default::default(),
            value: DataValue::value_only(variant),
        };
        let results = tokio::time::timeout(timeout, session.write(&[write]))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        match results.first() {
            Some(status) if status.is_good() => Ok(Ok(())),
            Some(status) => Ok(Err(format!("the server answered {status}"))),
            None => Ok(Err("the server answered nothing".into())),
        }
    }

    /// `test-north-connection`: a session, its security mode and policy.
    pub async fn test_connection(&self) -> Result<Value, String> {
        let (session, _lost) = self.server.connect().await?;
        let endpoint = session.endpoint_info();
        let items = json!({"items": [
            {"key": "SecurityMode", "value": format!("{:?}", endpoint.endpoint.security_mode)},
            {"key": "SecurityPolicy", "value": endpoint.endpoint.security_policy_uri.as_ref().rsplit('#').next().unwrap_or_default()},
        ]});
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), session.disconnect()).await;
        Ok(items)
    }
}

/// `value` (a JSON number, string or boolean, as setpoints carry them) as a variant of the
/// built-in `data_type`; `None` when it does not fit.
fn to_variant(data_type: &NodeId, value: &Value) -> Option<Variant> {
    let number = || match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    let integer = || number().filter(|f| f.fract() == 0.0);
    let id = data_type.as_data_type_id().ok()?;
    Some(match id {
        DataTypeId::Boolean => Variant::Boolean(match value {
            Value::Bool(b) => *b,
            Value::String(s) if s.eq_ignore_ascii_case("true") => true,
            Value::String(s) if s.eq_ignore_ascii_case("false") => false,
            _ => number()? != 0.0,
        }),
        DataTypeId::SByte => Variant::SByte(i8::try_from(integer()? as i64).ok()?),
        DataTypeId::Byte => Variant::Byte(u8::try_from(integer()? as i64).ok()?),
        DataTypeId::Int16 => Variant::Int16(i16::try_from(integer()? as i64).ok()?),
        DataTypeId::UInt16 => Variant::UInt16(u16::try_from(integer()? as i64).ok()?),
        DataTypeId::Int32 => Variant::Int32(i32::try_from(integer()? as i64).ok()?),
        DataTypeId::UInt32 => Variant::UInt32(u32::try_from(integer()? as i64).ok()?),
        DataTypeId::Int64 => Variant::Int64(integer()? as i64),
        DataTypeId::UInt64 => Variant::UInt64(u64::try_from(integer()? as i64).ok()?),
        DataTypeId::Float => Variant::Float(number()? as f32),
        DataTypeId::Double => Variant::Double(number()?),
        DataTypeId::String => Variant::String(
            match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
            .into(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setpoint_values_become_the_node_data_type() {
        let double = NodeId::from(DataTypeId::Double);
        assert_eq!(
            to_variant(&double, &json!("12.5")),
            Some(Variant::Double(12.5))
        );
        let int16 = NodeId::from(DataTypeId::Int16);
        assert_eq!(to_variant(&int16, &json!(7)), Some(Variant::Int16(7)));
        assert_eq!(to_variant(&int16, &json!(70000)), None);
        assert_eq!(to_variant(&int16, &json!("x")), None);
        let boolean = NodeId::from(DataTypeId::Boolean);
        assert_eq!(
            to_variant(&boolean, &json!(1)),
            Some(Variant::Boolean(true))
        );
    }
}
