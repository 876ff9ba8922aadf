//! North OIAnalytics (data-plane §2): values as a JSON array (gzipped with `compress`), files as
//! one multipart part, both with `?dataSourceId=<north name>`.
//!
//! With `useOiaModule` (the default) it speaks as the registered agent: Bearer token, host,
//! proxy, TLS and gateway of the agent's own OIA client. Without it, `specificSettings` name the
//! host, proxy and Basic credentials. The OIA client is `!Send`, so an [`OiaNorth`] lives in
//! its actor's arbiter.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{gzip, local_cipher, ConnectorError, Delivery, Sealed, SettingsReader};
use crate::client::{
    routes, Auth, ClientError, ClientFactory, ClientSettings, OiaClient, ProxySettings, Upload,
};
use crate::config::Config;
use crate::content::ContentType;
use crate::key_vault::LocalCipher;
use crate::oia::CachedClient;
use crate::registration::RegistrationWatch;
use crate::supervision::Peers;
use crate::{AgentContext, Secret};

/// The text OIBus fails with when the agent is not registered (`utils-oianalytics.ts`).
pub const NOT_REGISTERED: &str = "OIBus not registered in OIAnalytics";

/// Default `timeout` setting, in seconds.
const DEFAULT_TIMEOUT_S: u64 = 30;

pub struct OiaNorth {
    name: String,
    compress: bool,
    timeout: Duration,
    target: Target,
    /// Opens the sealed secrets of `specificSettings`; asked of the key vault at first use.
    cipher: RefCell<Option<LocalCipher>>,
    peers: Peers,
}

enum Target {
    /// The agent's registration: its token and its OIA client.
    Registration {
        registration: RegistrationWatch,
        config: watch::Receiver<Arc<Config>>,
        client: RefCell<CachedClient>,
    },
    /// `useOiaModule: false`.
    Specific {
        settings: Specific,
        /// Built at first use, once the secrets are open.
        client: RefCell<Option<Rc<SpecificClient>>>,
    },
}

/// `specificSettings` with the Basic authentication (Azure AD is refused at construction).
struct Specific {
    host: String,
    accept_unauthorized: bool,
    proxy: Option<(String, Option<String>, Sealed)>,
    access_key: String,
    secret_key: Sealed,
}

struct SpecificClient {
    client: OiaClient,
    secret_key: Secret<String>,
}

impl OiaNorth {
    /// `name` = the north connector's name (dataSourceId); `settings` its stored settings
    /// (secrets still sealed: they are opened at first use with the key vault found in
    /// `ctx.peers`); `ctx` gives the configuration and the registration watch.
    pub fn new(
        name: &str,
        settings: &Value,
        ctx: &AgentContext,
    ) -> Result<OiaNorth, ConnectorError> {
        let label = format!("north '{name}'");
        let reader = SettingsReader::new(&label, settings);
        let use_oia_module = reader.bool_or("useOiaModule", true)?;
        let timeout_s = reader.u64_or("timeout", DEFAULT_TIMEOUT_S)?;
        if timeout_s == 0 {
            return Err(ConnectorError::settings(
                &label,
                "timeout",
                "must be at least 1 (seconds)",
            ));
        }
        let target = if use_oia_module {
            Target::Registration {
                registration: ctx.registration.clone(),
                config: ctx.config.clone(),
                client: RefCell::default(),
            }
        } else {
            Target::Specific {
                settings: Specific::read(&label, &reader)?,
                client: RefCell::default(),
            }
        };
        Ok(OiaNorth {
            name: name.to_owned(),
            compress: reader.bool_or("compress", false)?,
            timeout: Duration::from_secs(timeout_s),
            target,
            cipher: RefCell::default(),
            peers: ctx.peers.clone(),
        })
    }

    /// Opens the sealed secrets with `cipher` instead of asking the key vault.
    pub fn with_cipher(self, cipher: LocalCipher) -> OiaNorth {
        *self.cipher.borrow_mut() = Some(cipher);
        self
    }

    /// time-values/oianalytics → `POST /api/oianalytics/oibus/time-values` (the gzip body to
    /// `…/compressed` with `compress`, no `Content-Encoding`); any → `POST
    /// /api/oianalytics/file-uploads` multipart (gzip level 9 and `.gz` appended with
    /// `compress`, unless the name ends `.gz`). `?dataSourceId=<name>` on both.
    pub async fn send(&self, content_type: ContentType, filename: &str, body: Bytes) -> Delivery {
        let (endpoint, upload_type, body) = match content_type {
            ContentType::TimeValues | ContentType::Oianalytics => match self.values_body(body) {
                Ok((path, body)) => ("values", (path, "application/json".to_owned()), body),
                Err(e) => return Delivery::Failed(format!("Cannot compress the values: {e}")),
            },
            ContentType::Any => match self.file_body(filename, &body) {
                Ok((content_type, body)) => ("file", (routes::FILE_UPLOADS, content_type), body),
                Err(e) => {
                    return Delivery::Failed(format!("Cannot compress file \"{filename}\": {e}"))
                }
            },
            other => {
                return Delivery::Failed(format!(
                    "Content type {other} is not supported by north oianalytics"
                ))
            }
        };
        let ((path, content_type), query) = (upload_type, [("dataSourceId", self.name.as_str())]);
        let upload = Upload {
            path,
            query: &query,
            content_type: &content_type,
            body,
            timeout: Some(self.timeout),
        };
        match self.post(upload).await {
            Ok(Ok(_status)) => Delivery::Sent,
            Ok(Err(e)) => classify(e, endpoint, path),
            Err(not_ready) => Delivery::Retry(not_ready),
        }
    }

    /// `GET /api/oianalytics/oibus/status` → `{"items": []}` on 2xx; otherwise OIBus's text.
    pub async fn test_connection(&self) -> Result<Value, String> {
        let result = match &self.target {
            Target::Registration { .. } => {
                let (client, token) = self.registered()?;
                client
                    .get_status(routes::STATUS, Auth::Bearer(&token))
                    .await
            }
            Target::Specific { settings, .. } => {
                let specific = self.specific().await?;
                specific
                    .client
                    .get_status(routes::STATUS, specific.auth(settings))
                    .await
            }
        };
        match result {
            Ok(_) => Ok(json!({"items": []})),
            Err(ClientError::Status { status, body }) => Err(format!(
                "HTTP request failed with status code {status} and message: {body}"
            )),
            Err(e) => Err(format!("Fetch error: {e}")),
        }
    }

    /// The route and body of a values entry: the cache's JSON array as is, or gzipped.
    fn values_body(&self, body: Bytes) -> std::io::Result<(&'static str, Bytes)> {
        if !self.compress {
            return Ok((routes::TIME_VALUES, body));
        }
        // zlib's default level, as OIBus's `zlib.createGzip()`.
        let gz = gzip(&body, flate2::Compression::default().level())?;
        Ok((routes::TIME_VALUES_COMPRESSED, Bytes::from(gz)))
    }

    /// The multipart `Content-Type` and body of a file entry.
    fn file_body(&self, filename: &str, body: &[u8]) -> std::io::Result<(String, Bytes)> {
        let compressed;
        let (filename, bytes) = if self.compress && !filename.ends_with(".gz") {
            compressed = gzip(body, 9)?;
            (format!("{filename}.gz"), compressed.as_slice())
        } else {
            (filename.to_owned(), body)
        };
        let boundary = format!("OIBusBoundary{}", now_ms());
        Ok((
            format!("multipart/form-data; boundary={boundary}"),
            multipart(&boundary, &filename, bytes),
        ))
    }

    /// Sends `upload` with the target's client and credentials. The outer `Err` says why no
    /// call could be made (not registered, settings or secrets unusable): retried, since every
    /// entry would fail the same way until someone fixes it.
    async fn post(&self, upload: Upload<'_>) -> Result<Result<u16, ClientError>, String> {
        match &self.target {
            Target::Registration { .. } => {
                let (client, token) = self.registered()?;
                Ok(client.post_bytes(upload, Auth::Bearer(&token)).await)
            }
            Target::Specific { settings, .. } => {
                let specific = self.specific().await?;
                Ok(specific
                    .client
                    .post_bytes(upload, specific.auth(settings))
                    .await)
            }
        }
    }

    /// The agent's client and token; `Err` when not registered or without an OIA host.
    fn registered(&self) -> Result<(Rc<OiaClient>, Secret<String>), String> {
        let Target::Registration {
            registration,
            config,
            client,
        } = &self.target
        else {
            unreachable!("called for the registration target only");
        };
        let token = {
            let current = registration.borrow();
            match (current.is_registered(), &current.token) {
                (true, Some(token)) => token.clone(),
                _ => return Err(NOT_REGISTERED.to_owned()),
            }
        };
        let config = config.borrow().clone();
        let client = client.borrow_mut().get(config)?;
        Ok((client, token))
    }

    /// The `specificSettings` client, built at first use.
    async fn specific(&self) -> Result<Rc<SpecificClient>, String> {
        let Target::Specific { settings, client } = &self.target else {
            unreachable!("called for the specific target only");
        };
        if let Some(built) = client.borrow().as_ref() {
            return Ok(built.clone());
        }
        if self.cipher.borrow().is_none() && settings.has_secrets() {
            let cipher = local_cipher(&self.peers).await;
            *self.cipher.borrow_mut() = cipher;
        }
        let built = {
            let cipher = self.cipher.borrow();
            Rc::new(
                settings
                    .build(&self.name, self.timeout, cipher.as_ref())
                    .map_err(|e| e.to_string())?,
            )
        };
        *client.borrow_mut() = Some(built.clone());
        Ok(built)
    }
}

impl Specific {
    fn read(label: &str, reader: &SettingsReader<'_>) -> Result<Specific, ConnectorError> {
        let authentication = reader.string_or("specificSettings.authentication", "basic")?;
        match authentication.as_str() {
            "basic" => {}
            "aad-client-secret" | "aad-certificate" => {
                return Err(ConnectorError::Unsupported {
                    connector: label.to_owned(),
                    feature: format!("Azure AD authentication ({authentication})"),
                    advice: "Azure AD authentication is not supported by this agent; use basic \
                             authentication or the OIAnalytics module (useOiaModule)"
                        .to_owned(),
                })
            }
            other => {
                return Err(ConnectorError::settings(
                    label,
                    "specificSettings.authentication",
                    format!("is {other:?}; expected basic"),
                ))
            }
        }
        let host = reader.required_string("specificSettings.host")?;
        let proxy = if reader.bool_or("specificSettings.useProxy", false)? {
            let username = reader.string_or("specificSettings.proxyUsername", "")?;
            Some((
                reader.required_string("specificSettings.proxyUrl")?,
                (!username.is_empty()).then_some(username),
                Sealed::read(reader, "specificSettings.proxyPassword")?,
            ))
        } else {
            None
        };
        Ok(Specific {
            host,
            accept_unauthorized: reader.bool_or("specificSettings.acceptUnauthorized", false)?,
            proxy,
            access_key: reader.string_or("specificSettings.accessKey", "")?,
            secret_key: Sealed::read(reader, "specificSettings.secretKey")?,
        })
    }

    fn has_secrets(&self) -> bool {
        !self.secret_key.is_empty() || self.proxy.as_ref().is_some_and(|p| !p.2.is_empty())
    }

    fn build(
        &self,
        name: &str,
        timeout: Duration,
        cipher: Option<&LocalCipher>,
    ) -> Result<SpecificClient, ConnectorError> {
        let label = format!("north '{name}'");
        let mut client_settings = ClientSettings::new(self.host.clone());
        client_settings.accept_unauthorized = self.accept_unauthorized;
        client_settings.timeout = timeout;
        if let Some((url, username, password)) = &self.proxy {
            client_settings.proxy = Some(ProxySettings {
                url: url.clone(),
                username: username.clone(),
                password: Some(password.open(&label, cipher)?),
            });
        }
        let factory = ClientFactory::new(Arc::new(client_settings)).map_err(|e| {
            ConnectorError::settings(&label, "specificSettings", format!("are unusable: {e}"))
        })?;
        Ok(SpecificClient {
            client: crate::oia::counted(factory).client(),
            secret_key: self.secret_key.open(&label, cipher)?,
        })
    }
}

impl SpecificClient {
    /// Basic with the access key; none without one, as OIBus.
    fn auth<'a>(&'a self, settings: &'a Specific) -> Auth<'a> {
        if settings.access_key.is_empty() {
            Auth::None
        } else {
            Auth::Basic {
                username: &settings.access_key,
                password: &self.secret_key,
            }
        }
    }
}

/// A failed call as OIBus classifies it (`north-oianalytics.ts`): an answer by its status, a
/// network failure retried forever, anything else counted.
fn classify(error: ClientError, endpoint: &str, path: &str) -> Delivery {
    match error {
        ClientError::Status { status, body } => Delivery::from_status(status, &body),
        ClientError::Redirect { status, .. } => Delivery::from_status(status, &error.to_string()),
        e if e.is_network() => {
            Delivery::Retry(format!("Fail to reach {endpoint} endpoint {path}. {e}"))
        }
        e => Delivery::Failed(e.to_string()),
    }
}

/// One `file` part, framed as OIBus frames it.
fn multipart(boundary: &str, filename: &str, bytes: &[u8]) -> Bytes {
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = BytesMut::with_capacity(head.len() + bytes.len() + tail.len());
    body.put_slice(head.as_bytes());
    body.put_slice(bytes);
    body.put_slice(tail.as_bytes());
    body.freeze()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests;
