//! South MQTT (OIBus `south-mqtt.ts`): subscribes to each enabled item's `topic` (wildcards
//! allowed) and emits what arrives as OIBus's `any-content`, one content per item:
//! `[{message, timestamp, item: {id, name, topic}}]`, buffered up to `maxNumberOfMessages` or
//! `flushMessageTimeout` ms.
//!
//! Unlike OIBus (issue #3836), nothing is lost across restarts: the session is persistent
//! (`persistent`: a stable client id, `clean_session = false`) and a QoS 1/2 message is
//! acknowledged only once the caches hold it (`Received::ack`), so what arrives while the agent
//! is down, or arrived but was not yet committed at a kill, is delivered again by the broker.
//! The event loop reconnects by itself with the agent's backoff (up to `reconnectPeriod`) and
//! subscribes again at every connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Recipient;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode,
    TlsConfiguration, Transport,
};
use serde_json::{json, Value};

use super::{local_cipher, ConnectorError, Sealed, SettingsReader};
use crate::backoff::{Backoff, FIRST_RETRY};
use crate::content::{Content, ContentType};
use crate::entities::SouthConnector;
use crate::key_vault::LocalCipher;
use crate::south_connector::{Received, SubscriptionFailed};
use crate::supervision::Peers;

/// Incoming packets larger than this are refused (rumqttc's default is 10 KiB; mosquitto's
/// `message_size_limit` is 256 MiB).
const MAX_PACKET_BYTES: usize = 64 * 1024 * 1024;
/// QoS 1/2 messages held unacknowledged before a flush is forced: brokers stop sending past
/// their in-flight window (mosquitto's `max_inflight_messages` is 20).
const MAX_UNACKED: usize = 16;

#[derive(Debug, Clone)]
pub(crate) enum Auth {
    None,
    Basic {
        username: String,
        password: Sealed,
    },
    /// PEM files (OIBus's `certFilePath`, `keyFilePath`, `caFilePath`; each may be empty): the
    /// client certificate and key, and the CAs trusted instead of the system's.
    Cert {
        cert: String,
        key: String,
        ca: String,
    },
}

/// The rustls config of an MQTT connection over TLS (`mqtts://`): the CAs of `caFilePath` when
/// given (else the system's), the client certificate of `cert` auth, and every certificate
/// accepted unless `rejectUnauthorized`. The errors name the file and the setting.
pub(crate) fn tls_config(
    label: &str,
    auth: &Auth,
    reject_unauthorized: bool,
) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let read_certs = |key: &str, path: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{label}: settings.authentication.{key} {path:?}: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "{label}: settings.authentication.{key} {path:?} holds no PEM certificate"
            ));
        }
        Ok(certs)
    };
    let (roots, identity) = match auth {
        Auth::Cert { cert, key, ca } => {
            let roots = match ca.is_empty() {
                true => None,
                false => {
                    let mut roots = rustls::RootCertStore::empty();
                    for c in read_certs("caFilePath", ca)? {
                        roots.add(c).map_err(|e| {
                            format!("{label}: settings.authentication.caFilePath {ca:?}: {e}")
                        })?;
                    }
                    Some(roots)
                }
            };
            let identity = match (cert.is_empty(), key.is_empty()) {
                (true, true) => None,
                (false, false) => {
                    let chain = read_certs("certFilePath", cert)?;
                    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                        format!("{label}: settings.authentication.keyFilePath {key:?}: {e}")
                    })?;
                    Some((chain, key))
                }
                _ => {
                    return Err(format!(
                        "{label}: settings.authentication: certFilePath and keyFilePath go together"
                    ))
                }
            };
            (roots, identity)
        }
        _ => (None, None),
    };
    crate::client::tls::device_config(!reject_unauthorized, roots, identity)
        .map_err(|e| format!("{label}: {e}"))
}

/// The connector's settings (OIBus `SouthMQTTSettings`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    pub(crate) qos: QoS,
    pub(crate) persistent: bool,
    pub(crate) auth: Auth,
    pub(crate) reject_unauthorized: bool,
    pub(crate) reconnect_period: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_messages: usize,
    pub(crate) flush_timeout: Duration,
}

/// One subscribed item.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicItem {
    pub id: String,
    pub name: String,
    pub topic: String,
}

/// The enabled items by topic filter.
#[derive(Debug, Clone, Default)]
pub struct Topics {
    items: Vec<TopicItem>,
}

/// Why a received message has no item.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopicError {
    #[error("Item can't be determined from topic {0}")]
    NoItem(String),
    #[error("Topic \"{topic}\" should be subscribed only once but items {items:?} all match it")]
    Ambiguous { topic: String, items: Vec<String> },
}

impl Topics {
    pub fn new(south: &SouthConnector) -> Topics {
        let items = south
            .items
            .iter()
            .filter(|i| i.enabled)
            .filter_map(|i| {
                let topic = i.settings.get("topic")?.as_str()?;
                Some(TopicItem {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    topic: topic.to_owned(),
                })
            })
            .collect();
        Topics { items }
    }

    /// The one item whose filter matches `topic`.
    pub fn item_of(&self, topic: &str) -> Result<&TopicItem, TopicError> {
        let mut found = self.items.iter().filter(|i| matches(&i.topic, topic));
        match (found.next(), found.next()) {
            (Some(item), None) => Ok(item),
            (None, _) => Err(TopicError::NoItem(topic.to_owned())),
            (Some(first), Some(second)) => Err(TopicError::Ambiguous {
                topic: topic.to_owned(),
                items: [first, second]
                    .into_iter()
                    .chain(found)
                    .map(|i| i.name.clone())
                    .collect(),
            }),
        }
    }

    fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = self.items.iter().map(|i| i.topic.clone()).collect();
        filters.sort();
        filters.dedup();
        filters
    }
}

/// Whether `topic` matches the subscription `filter` (MQTT 3.1.1 §4.7: `+` one level, `#` this
/// level and every one below, including none: `a/#` matches `a`).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for wanted in filter.split('/') {
        match (wanted, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (wanted, Some(level)) if wanted == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// What one item received since the last flush.
struct Pending {
    item: TopicItem,
    elements: Vec<Value>,
}

/// Messages received and not yet handed to the south actor.
#[derive(Default)]
struct Buffer {
    by_item: Vec<Pending>,
    /// The QoS 1/2 publishes to acknowledge once their content is committed, per item.
    to_ack: Vec<Vec<Publish>>,
    messages: usize,
    unacked: usize,
}

impl Buffer {
    fn push(&mut self, item: &TopicItem, publish: Publish) {
        let element = any_content(item, &publish.payload, &crate::protocol::iso_now());
        let index = match self.by_item.iter().position(|p| p.item.id == item.id) {
            Some(index) => index,
            None => {
                self.by_item.push(Pending {
                    item: item.clone(),
                    elements: Vec::new(),
                });
                self.to_ack.push(Vec::new());
                self.by_item.len() - 1
            }
        };
        self.by_item[index].elements.push(element);
        self.messages += 1;
        if publish.qos != QoS::AtMostOnce {
            self.unacked += 1;
            self.to_ack[index].push(publish);
        }
    }

    /// One `Received` per item, acknowledging its messages once committed.
    fn flush(&mut self, client: &AsyncClient, sink: &Recipient<Received>) {
        let to_ack = std::mem::take(&mut self.to_ack);
        for (pending, publishes) in std::mem::take(&mut self.by_item).into_iter().zip(to_ack) {
            let ack = (!publishes.is_empty()).then(|| {
                let client = client.clone();
                Box::new(move || {
                    // The actor calls this on its arbiter; the PUBACKs go through the event loop.
                    actix_rt::spawn(async move {
                        for publish in &publishes {
                            if let Err(e) = client.ack(publish).await {
                                tracing::debug!(error = %e, "MQTT acknowledgement not sent; the broker will deliver again");
                            }
                        }
                    });
                }) as Box<dyn FnOnce() + Send>
            });
            sink.do_send(Received {
                content: Content::Elements {
                    kind: ContentType::AnyContent,
                    elements: pending.elements,
                },
                ack,
            });
        }
        self.messages = 0;
        self.unacked = 0;
    }
}

/// OIBus's any-content element of one message: the payload as text (lossy UTF-8, as Node's
/// `toString()`), the reception time, and the item.
pub fn any_content(item: &TopicItem, payload: &[u8], timestamp: &str) -> Value {
    json!({
        "message": String::from_utf8_lossy(payload),
        "timestamp": timestamp,
        "item": {"id": item.id, "name": item.name, "topic": item.topic},
    })
}

/// How to reach the broker; cloned into the event loop, which must not hold the driver
/// (dropping the driver is what stops the loop).
#[derive(Clone)]
pub(crate) struct Broker {
    pub(crate) label: String,
    pub(crate) client_id: String,
    pub(crate) settings: Settings,
    pub(crate) peers: Peers,
}

pub struct MqttSouth {
    broker: Broker,
    /// The running event loop; aborted when the driver goes (the south actor stopped).
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for MqttSouth {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl MqttSouth {
    /// `engine_id` and the south's id make the client id: stable across restarts, which a
    /// persistent session needs, and distinct per engine sharing a broker.
    pub fn new(
        south: &SouthConnector,
        engine_id: &str,
        peers: Peers,
    ) -> Result<MqttSouth, ConnectorError> {
        Ok(MqttSouth {
            broker: Broker::new(
                format!("south '{}'", south.name),
                &south.id,
                &south.settings,
                engine_id,
                peers,
            )?,
            task: Mutex::default(),
        })
    }

    /// Start the event loop: connect, subscribe to every item's topic, hand what arrives to
    /// `sink`, report failures to `errors`, and reconnect after any failure.
    pub fn subscribe(
        &self,
        south: &SouthConnector,
        sink: Recipient<Received>,
        errors: Recipient<SubscriptionFailed>,
    ) {
        let topics = Topics::new(south);
        if topics.items.is_empty() {
            return;
        }
        let run = Runner {
            broker: self.broker.clone(),
            topics,
            sink,
            errors,
        };
        let task = actix_rt::spawn(async move {
            let broker = &run.broker;
            let clean = !broker.settings.persistent;
            // The options need the key vault (async), so they are built here.
            match broker.options(&broker.client_id, clean).await {
                Ok(options) => {
                    let (client, event_loop) = broker.event_loop(options);
                    run.run(client, event_loop).await;
                }
                Err(e) => run.failed(e),
            }
        });
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// `test-south-connection`: see [`Broker::test_connection`].
    pub async fn test_connection(&self) -> Result<Value, String> {
        self.broker.test_connection().await
    }
}

impl MqttSouth {
    /// `test-south-item` (OIBus `testItem`): with a client of its own (never the running
    /// session), subscribe to `item`'s topic and wait for the first message: the any-content of
    /// it, the milliseconds the connection took and those the message took to come.
    pub async fn test_item(&self, item: &TopicItem) -> Result<(Value, u64, u64), String> {
        let broker = &self.broker;
        let s = &broker.settings;
        let failed = |e: String| format!("Error when testing item {}: {e}", item.topic);
        let options = broker
            .options(&format!("{}-test", broker.client_id), true)
            .await
            .map_err(failed)?;
        let (client, mut event_loop) = broker.event_loop(options);
        let started = std::time::Instant::now();
        let mut connection_ms = 0;
        let mut query_start = started;
        let element = loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connection_ms = started.elapsed().as_millis() as u64;
                    query_start = std::time::Instant::now();
                    client
                        .try_subscribe(&item.topic, s.qos)
                        .map_err(|e| failed(e.to_string()))?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack)))
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) =>
                {
                    return Err(failed("the broker refused the subscription".into()));
                }
                Ok(Event::Incoming(Packet::Publish(publish)))
                    if matches(&item.topic, &publish.topic) =>
                {
                    break any_content(item, &publish.payload, &crate::protocol::iso_now());
                }
                Ok(_) => {}
                Err(e) => return Err(failed(explain(&e))),
            }
        };
        let query_ms = query_start.elapsed().as_millis() as u64;
        let _ = client.try_unsubscribe(&item.topic);
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), event_loop.poll()).await;
        Ok((element, connection_ms, query_ms))
    }
}

impl Broker {
    /// A connection test: connect once with a client of its own (never the running session,
    /// which a shared client id would take over) and report the CONNACK as OIBus does.
    pub(crate) async fn test_connection(&self) -> Result<Value, String> {
        let options = self
            .options(&format!("{}-test", self.client_id), true)
            .await?;
        let (client, mut event_loop) = self.event_loop(options);
        let connack = loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => break ack,
                Ok(_) => {}
                Err(e) => {
                    let s = &self.settings;
                    return Err(format!(
                        "{}: cannot connect to the MQTT broker {}:{}: {}",
                        self.label,
                        s.host,
                        s.port,
                        explain(&e)
                    ));
                }
            }
        };
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), event_loop.poll()).await;
        Ok(json!({"items": [
            {"key": "SessionPresent", "value": connack.session_present.to_string()},
        ]}))
    }

    /// `engine_id` and the connector's id make the client id: stable across restarts, which a
    /// persistent session needs, and distinct per engine sharing a broker.
    pub(crate) fn new(
        label: String,
        connector_id: &str,
        settings: &Value,
        engine_id: &str,
        peers: Peers,
    ) -> Result<Broker, ConnectorError> {
        Ok(Broker {
            settings: Settings::read(&label, settings)?,
            client_id: format!("oibus-{engine_id}-{connector_id}"),
            label,
            peers,
        })
    }

    pub(crate) async fn options(
        &self,
        client_id: &str,
        clean: bool,
    ) -> Result<MqttOptions, String> {
        let s = &self.settings;
        let mut options = MqttOptions::new(client_id, &s.host, s.port);
        options
            .set_clean_session(clean)
            .set_manual_acks(true)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_keep_alive(Duration::from_secs(60));
        if let Auth::Basic { username, password } = &s.auth {
            let cipher: Option<LocalCipher> = match password.is_empty() {
                true => None,
                false => local_cipher(&self.peers).await,
            };
            let password = password
                .open(&self.label, cipher.as_ref())
                .map_err(|e| e.to_string())?;
            options.set_credentials(username.clone(), password.expose().clone());
        }
        if s.tls {
            let config = tls_config(&self.label, &s.auth, s.reject_unauthorized)?;
            options.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(config))));
        }
        Ok(options)
    }

    pub(crate) fn event_loop(&self, options: MqttOptions) -> (AsyncClient, EventLoop) {
        let (client, mut event_loop) = AsyncClient::new(options, 1024);
        let mut network = event_loop.network_options();
        network.set_connection_timeout(self.settings.connect_timeout.as_secs().max(1));
        event_loop.set_network_options(network);
        (client, event_loop)
    }
}

/// The event loop's own state.
struct Runner {
    broker: Broker,
    topics: Topics,
    sink: Recipient<Received>,
    errors: Recipient<SubscriptionFailed>,
}

impl Runner {
    fn failed(&self, error: String) {
        tracing::warn!(south = %self.broker.label, error = %error, "MQTT south");
        self.errors.do_send(SubscriptionFailed { error });
    }

    async fn run(self, client: AsyncClient, mut event_loop: EventLoop) {
        let (label, s) = (&self.broker.label, &self.broker.settings);
        let mut backoff = Backoff::new(FIRST_RETRY, s.reconnect_period);
        let mut buffer = Buffer::default();
        let mut flush = tokio::time::interval(s.flush_timeout.max(Duration::from_millis(10)));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                event = event_loop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        backoff = Backoff::new(FIRST_RETRY, s.reconnect_period);
                        last_error = None;
                        tracing::info!(south = %label, session_present = ack.session_present, "MQTT south connected");
                        // Again at every connection: a broker without our session forgot them.
                        let filters = self.topics.filters().into_iter()
                            .map(|f| rumqttc::SubscribeFilter::new(f, s.qos));
                        if let Err(e) = client.try_subscribe_many(filters) {
                            self.failed(format!("{label}: cannot subscribe: {e}"));
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                            self.failed(format!("{label}: the broker refused a subscription among {:?}", self.topics.filters()));
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        match self.topics.item_of(&publish.topic) {
                            Ok(item) => buffer.push(item, publish),
                            Err(e) => {
                                // Not ours to keep: acknowledged so the broker stops resending it.
                                let _ = client.try_ack(&publish);
                                self.failed(format!("{label}: {e}"));
                            }
                        }
                        if buffer.messages >= s.max_messages.max(1) || buffer.unacked >= MAX_UNACKED {
                            buffer.flush(&client, &self.sink);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // What arrived is committed; its acknowledgements go on the next connection
                        // (or the broker delivers it again: a duplicate, never a loss).
                        buffer.flush(&client, &self.sink);
                        let error = format!("{label}: MQTT connection to the broker lost or refused: {}", explain(&e));
                        if last_error.as_ref() != Some(&error) {
                            self.failed(error.clone());
                            last_error = Some(error);
                        }
                        tokio::time::sleep(backoff.on_failure()).await;
                    }
                },
                _ = flush.tick() => {
                    if buffer.messages > 0 {
                        buffer.flush(&client, &self.sink);
                    }
                    if !self.sink.connected() {
                        return;
                    }
                }
            }
        }
    }
}

impl Settings {
    pub(crate) fn read(label: &str, settings: &Value) -> Result<Settings, ConnectorError> {
        let reader = SettingsReader::new(label, settings);
        let url = reader.required_string("url")?;
        let (host, port, tls) =
            parse_url(&url).map_err(|problem| ConnectorError::settings(label, "url", problem))?;
        let qos = match reader.string_or("qos", "1")?.as_str() {
            "0" => QoS::AtMostOnce,
            "1" => QoS::AtLeastOnce,
            "2" => QoS::ExactlyOnce,
            other => {
                return Err(ConnectorError::settings(
                    label,
                    "qos",
                    format!("must be 0, 1 or 2, not {other:?}"),
                ))
            }
        };
        let auth = match reader.string_or("authentication.type", "none")?.as_str() {
            "none" => Auth::None,
            "basic" => Auth::Basic {
                username: reader.string_or("authentication.username", "")?,
                password: Sealed::read(&reader, "authentication.password")?,
            },
            "cert" => Auth::Cert {
                cert: reader.string_or("authentication.certFilePath", "")?,
                key: reader.string_or("authentication.keyFilePath", "")?,
                ca: reader.string_or("authentication.caFilePath", "")?,
            },
            other => {
                return Err(ConnectorError::settings(
                    label,
                    "authentication.type",
                    format!("must be none, basic or cert, not {other:?}"),
                ))
            }
        };
        let ms = |key: &str, default: u64| reader.u64_or(key, default).map(Duration::from_millis);
        Ok(Settings {
            host,
            port,
            tls,
            qos,
            // OIBus enables `persistent` only for QoS 1 and 2; QoS 0 has nothing to redeliver.
            persistent: reader.bool_or("persistent", false)? && qos != QoS::AtMostOnce,
            auth,
            reject_unauthorized: reader.bool_or("rejectUnauthorized", false)?,
            reconnect_period: ms("reconnectPeriod", 10_000)?.max(Duration::from_millis(100)),
            connect_timeout: ms("connectTimeout", 10_000)?,
            max_messages: reader.u64_or("maxNumberOfMessages", 1000)? as usize,
            flush_timeout: ms("flushMessageTimeout", 1000)?,
        })
    }
}

/// A connection error, with what to check when it is about certificates.
pub(crate) fn explain(error: &rumqttc::ConnectionError) -> String {
    let text = error.to_string();
    let hint = if text.contains("invalid peer certificate") {
        "; the broker's certificate is not trusted: check settings.authentication.caFilePath (the CA that signed it) or rejectUnauthorized"
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        "; the broker asks for a client certificate: use authentication type cert with certFilePath and keyFilePath"
    } else if text.contains("BadCertificate")
        || text.contains("UnknownCA")
        || text.contains("bad certificate")
    {
        "; the broker refused the client certificate: check settings.authentication.certFilePath"
    } else {
        ""
    };
    format!("{text}{hint}")
}

/// Host, port and TLS of `mqtt://host[:port]` (also `tcp://`; `mqtts://` and `tls://` for
/// TLS). WebSockets are not supported.
pub fn parse_url(url: &str) -> Result<(String, u16, bool), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} must start with mqtt:// or mqtts://"))?;
    let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => (false, 1883),
        "mqtts" | "tls" | "ssl" => (true, 8883),
        "ws" | "wss" => {
            return Err(format!(
            "{url:?}: MQTT over WebSockets is not supported by this agent; use mqtt:// or mqtts://"
        ))
        }
        other => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not mqtt:// or mqtts://"
            ))
        }
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("{url:?}: the port {port:?} is not a number"))?;
            (host, port)
        }
        _ => (authority, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((host.to_owned(), port, tls))
}

#[cfg(test)]
mod tests;
