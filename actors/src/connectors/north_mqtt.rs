//! North MQTT (OIBus `north-mqtt.ts`): publishes `mqtt` content (`[{topic, payload}]`, what
//! `setpoint-to-mqtt` makes of setpoints) to a broker, in order, at the connector's QoS.
//!
//! The settings are the MQTT south's (`url`, `qos`, `persistent`, `authentication` none, basic or
//! cert, `rejectUnauthorized`, `connectTimeout`); the client id is the engine's and the north's.
//! Setpoints are rare: each cache entry is published on a connection of its own, sent once the
//! broker acknowledged every message (PUBACK at QoS 1, PUBCOMP at QoS 2, written at QoS 0). As
//! OIBus, a broker that cannot be reached or does not acknowledge retries the entry forever
//! (it stays at the head of the queue); content that is not MQTT values counts toward
//! `retryCount`.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{Event, Outgoing, Packet, QoS};
use serde::Deserialize;
use serde_json::Value;

use super::south_mqtt::{explain, Broker};
use super::{writes_of, ConnectorError, Delivery};
use crate::content::ContentType;
use crate::entities::NorthConnector;
use crate::supervision::Peers;

/// Messages queued to the client ahead of the broker's acknowledgements (its channel holds
/// 1024).
const AHEAD: usize = 256;

/// One message (OIBus `OIBusMQTTValue`).
#[derive(Debug, Deserialize)]
struct MqttValue {
    topic: String,
    payload: String,
}

pub struct MqttNorth {
    broker: Broker,
}

impl MqttNorth {
    pub fn new(
        north: &NorthConnector,
        engine_id: &str,
        peers: Peers,
    ) -> Result<MqttNorth, ConnectorError> {
        Ok(MqttNorth {
            broker: Broker::new(
                format!("north '{}'", north.name),
                &north.id,
                &north.settings,
                engine_id,
                peers,
            )?,
        })
    }

    pub async fn send(&self, content_type: ContentType, _filename: &str, body: Bytes) -> Delivery {
        let label = &self.broker.label;
        let accepted = (ContentType::Mqtt, "MQTT values [{topic, payload}]");
        let values: Vec<MqttValue> = match writes_of(label, accepted, content_type, &body) {
            Ok(values) => values,
            Err(failed) => return failed,
        };
        if values.is_empty() {
            return Delivery::Sent;
        }
        let limit = self.broker.settings.connect_timeout + Duration::from_secs(30);
        match tokio::time::timeout(limit, self.publish(&values)).await {
            Ok(Ok(())) => Delivery::Sent,
            Ok(Err(e)) => Delivery::Retry(e),
            Err(_) => Delivery::Retry(format!(
                "{label}: the broker did not acknowledge {} message(s) within {} s",
                values.len(),
                limit.as_secs()
            )),
        }
    }

    async fn publish(&self, values: &[MqttValue]) -> Result<(), String> {
        let b = &self.broker;
        let s = &b.settings;
        let options = b.options(&b.client_id, !s.persistent).await?;
        let (client, mut event_loop) = b.event_loop(options);
        let failed = |e: String| {
            format!(
                "{}: cannot publish to the MQTT broker {}:{}: {e}",
                b.label, s.host, s.port
            )
        };
        let (mut next, mut done, mut connected) = (0, 0, false);
        while done < values.len() {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => connected = true,
                Ok(Event::Incoming(Packet::PubAck(_))) if s.qos == QoS::AtLeastOnce => done += 1,
                Ok(Event::Incoming(Packet::PubComp(_))) if s.qos == QoS::ExactlyOnce => done += 1,
                Ok(Event::Outgoing(Outgoing::Publish(_))) if s.qos == QoS::AtMostOnce => done += 1,
                Ok(_) => {}
                Err(e) => return Err(failed(explain(&e))),
            }
            while connected && next < values.len() && next - done < AHEAD {
                let v = &values[next];
                client
                    .try_publish(&v.topic, s.qos, false, v.payload.clone().into_bytes())
                    .map_err(|e| failed(e.to_string()))?;
                next += 1;
            }
        }
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), event_loop.poll()).await;
        Ok(())
    }

    /// `test-north-connection`: see [`Broker::test_connection`].
    pub async fn test_connection(&self) -> Result<Value, String> {
        self.broker.test_connection().await
    }
}
