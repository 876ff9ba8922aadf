//! The OIAnalytics HTTP client every actor uses (protocol spec §1, §2).
//!
//! - [`ClientSettings`] is what the config model maps onto.
//! - [`ClientFactory`] validates the settings and builds the TLS config once (it reads the system
//!   CA store). It is `Send + Sync + Clone`: give each actor a clone.
//! - [`OiaClient`] wraps an `awc::Client`, which is `!Send` and belongs to one arbiter: build it
//!   with [`ClientFactory::client`] inside the actor (e.g. in `started`). That is cheap, no I/O.
//!
//! Every call: `User-Agent: OIBus/<oibus_version> (https://oibus.optimistik.com/)`, byte for byte
//! what OIBus sends; the gateway header when configured and the gateway prefix in front of the
//! path; `Authorization: Bearer <token>` for [`Auth::Bearer`]; `Content-Type: application/json` on
//! JSON bodies and on E2 (OIBus sets it on that GET too). Redirects are not followed. A whole call
//! (connect, send, read the answer) has one deadline: `timeout`, or `download_timeout` for a
//! download. Through a proxy, every connection is an HTTP CONNECT tunnel (`proxy.rs`).

mod error;
mod proxy;
pub(crate) mod tls;

#[cfg(test)]
pub(crate) mod tests;

use std::{
    cell::Cell,
    fmt,
    future::Future,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_rt::net::ActixStream;
use actix_service::Service;
use actix_tls::connect::{ConnectError as TcpConnectError, ConnectInfo, Connection};
use awc::{
    http::{
        header::{self, HeaderName, HeaderValue},
        Method, Uri,
    },
    ClientResponse, Connector,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

pub use self::error::{ClientError, MAX_ERROR_BODY};
use self::proxy::{ProxyConnector, ProxyTarget};
use crate::Secret;

/// Per-call deadline of the reference client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of an upgrade asset download (E9).
pub const DEFAULT_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(900);
/// Largest JSON answer read into memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The OIAnalytics routes (spec §2). The gateway prefix is added by the client.
pub mod routes {
    /// `P` in the spec.
    pub const API_PREFIX: &str = "/api/oianalytics/oibus";
    /// E1, `POST`, no Bearer.
    pub const REGISTRATION: &str = "/api/oianalytics/oibus/registration";
    /// E3, `GET`.
    pub const COMMANDS_PENDING: &str = "/api/oianalytics/oibus/commands/pending";
    /// E4, `GET` with repeated `ids`.
    pub const COMMANDS_LIST_BY_IDS: &str = "/api/oianalytics/oibus/commands/list-by-ids";
    /// E5, `PUT`.
    pub const COMMANDS_STATUS: &str = "/api/oianalytics/oibus/commands/status";
    /// E6, `PUT`.
    pub const CONFIGURATION: &str = "/api/oianalytics/oibus/configuration";
    /// E7, `PUT`.
    pub const CONFIGURATION_HISTORY_QUERY: &str =
        "/api/oianalytics/oibus/configuration/history-query";
    /// E8, `POST`.
    pub const LOGS: &str = "/api/oianalytics/oibus/logs";
    /// E9, `GET` with `assetId`.
    pub const UPGRADE_ASSET: &str = "/api/oianalytics/oibus/upgrade/asset";
    /// E10, `GET`.
    pub const STATUS: &str = "/api/oianalytics/oibus/status";
    /// The route label of E2, whose URL comes from OIA.
    pub const CHECK_REGISTRATION_LABEL: &str = "registration/check";
    /// North OIAnalytics values, `POST` with `dataSourceId` (data-plane §2).
    pub const TIME_VALUES: &str = "/api/oianalytics/oibus/time-values";
    /// The same, gzip body (no `Content-Encoding`).
    pub const TIME_VALUES_COMPRESSED: &str = "/api/oianalytics/oibus/time-values/compressed";
    /// North OIAnalytics files, multipart `POST` with `dataSourceId`; outside [`API_PREFIX`].
    pub const FILE_UPLOADS: &str = "/api/oianalytics/file-uploads";
}

/// Where and how to reach OIAnalytics.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// e.g. `https://oia.example.com`. Any path is dropped, as `new URL(path, host)` does.
    pub host: String,
    /// Accept any server certificate (test servers only; logged as a warning).
    pub accept_unauthorized: bool,
    pub proxy: Option<ProxySettings>,
    pub gateway: Option<GatewaySettings>,
    /// Deadline of a whole call (connect, send, read the answer).
    pub timeout: Duration,
    /// Deadline of a whole download (E9).
    pub download_timeout: Duration,
    /// Largest JSON answer accepted; a larger one is [`ClientError::BodyTooLarge`].
    pub max_body_bytes: usize,
    /// The OIBus version named in the User-Agent (`oianalytics.oibus_version`).
    pub oibus_version: String,
}

impl ClientSettings {
    /// Settings for `host` with the defaults: verified TLS, no proxy, no gateway.
    pub fn new(host: impl Into<String>) -> Self {
        ClientSettings {
            host: host.into(),
            accept_unauthorized: false,
            proxy: None,
            gateway: None,
            timeout: DEFAULT_TIMEOUT,
            download_timeout: DEFAULT_DOWNLOAD_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            oibus_version: crate::COMPATIBLE_OIBUS_VERSION.to_owned(),
        }
    }
}

/// A forward proxy reached with HTTP CONNECT.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `http://host:port`.
    pub url: String,
    /// With a username, `Proxy-Authorization: Basic` is sent (empty password if none).
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
}

/// An API gateway in front of OIAnalytics.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Put in front of every path, e.g. `/gw`. Empty means no prefix (the header is still sent).
    pub base_endpoint: String,
    pub header_key: String,
    pub header_value: Secret<String>,
}

/// How a call authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No `Authorization` header (E1, E2).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a Secret<String>),
    /// `Authorization: Basic base64(username:password)` (a north OIAnalytics with its own
    /// access key instead of the registration).
    Basic {
        username: &'a str,
        password: &'a Secret<String>,
    },
}

/// A `POST` of a ready-made body (data-plane §2: values, compressed values, multipart files).
#[derive(Debug, Clone)]
pub struct Upload<'a> {
    /// An OIA path, e.g. [`routes::TIME_VALUES`].
    pub path: &'a str,
    /// Appended percent-encoded, e.g. `[("dataSourceId", name)]`.
    pub query: &'a [(&'a str, &'a str)],
    /// The `Content-Type` header, e.g. `multipart/form-data; boundary=…`.
    pub content_type: &'a str,
    pub body: Bytes,
    /// The call's deadline when not the client's (a north's own `timeout` setting).
    pub timeout: Option<Duration>,
}

/// One finished call, reported to the metrics hook.
#[derive(Debug)]
pub struct ApiCall<'a> {
    /// The OIA route, e.g. `commands/pending` (see [`route_label`]).
    pub route: &'a str,
    pub method: &'static str,
    /// The status code (`"200"`, `"404"`) or the failure kind ([`ClientError::label`]).
    pub result: &'a str,
    pub elapsed: Duration,
}

/// Called once per call, whatever its outcome.
pub type MetricsHook = Arc<dyn Fn(&ApiCall<'_>) + Send + Sync>;

/// What every client built from the same settings shares. `Send + Sync`.
struct Shared {
    settings: Arc<ClientSettings>,
    /// `scheme://authority` of `host`.
    origin: String,
    /// Normalised gateway base endpoint: empty, or `/x` without a trailing slash.
    prefix: String,
    gateway_header: Option<(HeaderName, HeaderValue)>,
    user_agent: HeaderValue,
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<ProxyTarget>,
}

/// Validated settings and TLS config from which each actor builds its own [`OiaClient`].
#[derive(Clone)]
pub struct ClientFactory {
    shared: Arc<Shared>,
    metrics: Option<MetricsHook>,
}

impl fmt::Debug for ClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientFactory")
            .field("settings", &self.shared.settings)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

impl ClientFactory {
    /// Validates the settings and builds the TLS config. Errors name the setting at fault.
    pub fn new(settings: Arc<ClientSettings>) -> Result<Self, ClientError> {
        let origin = origin_of(&settings.host)?;
        if settings.timeout.is_zero() || settings.download_timeout.is_zero() {
            return Err(ClientError::Settings(
                "the call and download timeouts must be longer than zero".to_owned(),
            ));
        }
        if settings.max_body_bytes == 0 {
            return Err(ClientError::Settings(
                "the answer size limit must be above zero".to_owned(),
            ));
        }
        let (prefix, gateway_header) = match &settings.gateway {
            Some(gateway) => (
                normalise_prefix(&gateway.base_endpoint)?,
                Some(gateway_header(gateway)?),
            ),
            None => (String::new(), None),
        };
        let proxy = settings
            .proxy
            .as_ref()
            .map(ProxyTarget::from_settings)
            .transpose()?;
        let user_agent =
            HeaderValue::from_str(&user_agent(&settings.oibus_version)).map_err(|_| {
                ClientError::Settings(format!(
                    "oianalytics.oibus_version '{}' cannot go in a User-Agent header",
                    settings.oibus_version
                ))
            })?;
        let tls = tls::client_config(settings.accept_unauthorized)?;
        if settings.accept_unauthorized {
            warn!(
                host = %origin,
                "TLS certificate verification of OIAnalytics is OFF \
                 (oianalytics.accept_unauthorized: true); use this only with a test server"
            );
        }
        Ok(ClientFactory {
            shared: Arc::new(Shared {
                settings,
                origin,
                prefix,
                gateway_header,
                user_agent,
                tls,
                proxy,
            }),
            metrics: None,
        })
    }

    /// Reports every call of the clients built from now on to `hook`.
    pub fn with_metrics(mut self, hook: MetricsHook) -> Self {
        self.metrics = Some(hook);
        self
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.shared.settings
    }

    /// Builds a client for the current arbiter. Cheap (no I/O); the client is `!Send`.
    pub fn client(&self) -> OiaClient {
        let shared = &self.shared;
        let builder = awc::Client::builder()
            .disable_redirects()
            .timeout(shared.settings.timeout);
        let http = match &shared.proxy {
            Some(proxy) => builder
                .connector(tuned(
                    Connector::new().connector(ProxyConnector::new(proxy.clone())),
                    shared,
                ))
                .finish(),
            None => builder.connector(tuned(Connector::new(), shared)).finish(),
        };
        OiaClient {
            http,
            shared: Arc::clone(shared),
            metrics: self.metrics.clone(),
        }
    }
}

/// Our TLS config and connect deadlines on an awc connector, whatever its TCP layer.
fn tuned<S, Io>(connector: Connector<S>, shared: &Shared) -> Connector<S>
where
    Io: ActixStream + fmt::Debug + 'static,
    S: Service<ConnectInfo<Uri>, Response = Connection<Uri, Io>, Error = TcpConnectError>
        + Clone
        + 'static,
{
    connector
        .rustls_0_23(Arc::clone(&shared.tls))
        .timeout(shared.settings.timeout)
        .handshake_timeout(shared.settings.timeout)
}

/// The User-Agent OIBus sends (`OIBus: backend/src/service/http-request.utils.ts`).
pub fn user_agent(oibus_version: &str) -> String {
    format!("OIBus/{oibus_version} (https://oibus.optimistik.com/)")
}

/// `scheme://authority` of the configured host; its path, if any, is dropped.
fn origin_of(host: &str) -> Result<String, ClientError> {
    let invalid =
        |problem: String| ClientError::Settings(format!("oianalytics.host '{host}' {problem}"));
    let uri: Uri = host
        .trim()
        .parse()
        .map_err(|e| invalid(format!("is not a URL ({e}); expected https://host[:port]")))?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        _ => return Err(invalid("must start with https:// or http://".to_owned())),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("has no host name".to_owned()))?;
    if authority.as_str().contains('@') {
        return Err(invalid("must not contain credentials".to_owned()));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// `gw`, `/gw/` and `/gw` all become `/gw`; blank becomes no prefix.
fn normalise_prefix(base_endpoint: &str) -> Result<String, ClientError> {
    let trimmed = base_endpoint.trim().trim_end_matches('/');
    if trimmed.contains(['?', '#', ' ']) {
        return Err(ClientError::Settings(format!(
            "oianalytics.api_gateway.base_endpoint '{base_endpoint}' must be a plain path like /gw"
        )));
    }
    Ok(match trimmed {
        "" => String::new(),
        p if p.starts_with('/') => p.to_owned(),
        p => format!("/{p}"),
    })
}

fn gateway_header(gateway: &GatewaySettings) -> Result<(HeaderName, HeaderValue), ClientError> {
    let name = HeaderName::from_bytes(gateway.header_key.trim().as_bytes()).map_err(|_| {
        ClientError::Settings(format!(
            "oianalytics.api_gateway.header_key '{}' is not a valid HTTP header name",
            gateway.header_key
        ))
    })?;
    let mut value = HeaderValue::from_str(gateway.header_value.expose()).map_err(|_| {
        ClientError::Settings(
            "oianalytics.api_gateway.header_value contains characters not allowed in an HTTP \
             header (a trailing newline in the file?)"
                .to_owned(),
        )
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// The route label of a path: the part after `/api/oianalytics/oibus/` (or after
/// `/api/oianalytics/` for the routes outside it, e.g. `file-uploads`), without the query.
pub fn route_label(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path
        .strip_prefix(routes::API_PREFIX)
        .or_else(|| path.strip_prefix("/api/oianalytics"))
        .unwrap_or(path);
    path.trim_start_matches('/')
}

/// Appends `pairs` to `path` as a query, percent-encoded, repeating keys for arrays
/// (`ids=a&ids=b`).
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::from(path);
    let mut separator = if path.contains('?') { '&' } else { '?' };
    for (key, value) in pairs {
        out.push(separator);
        out.extend(query_encoded(key));
        out.push('=');
        out.extend(query_encoded(value));
        separator = '&';
    }
    out
}

/// Everything but RFC 3986 unreserved characters is escaped in a query key or value.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as it stands in a query, in pieces (their lengths add up to the encoded length).
pub fn query_encoded(text: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(text, QUERY)
}

fn parse_url(url: &str) -> Result<Uri, ClientError> {
    url.parse().map_err(|e| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason: format!("{e}"),
    })
}

fn is_absolute(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// One call to make.
struct Request<'a> {
    method: Method,
    url: Uri,
    route: &'a str,
    auth: Auth<'a>,
    body: Option<Bytes>,
    /// The body's `Content-Type` when not `application/json`.
    content_type: Option<&'a str>,
    /// `Content-Type: application/json` without a body (E2, as OIBus).
    json_without_body: bool,
    timeout: Duration,
}

/// An OIAnalytics client for one arbiter. Build it with [`ClientFactory::client`].
pub struct OiaClient {
    http: awc::Client,
    shared: Arc<Shared>,
    metrics: Option<MetricsHook>,
}

impl OiaClient {
    /// `GET path`, 2xx JSON answer decoded as `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        auth: Auth<'_>,
    ) -> Result<T, ClientError> {
        let request = self.request(Method::GET, path, route_label(path), auth, None)?;
        self.json_call(request).await
    }

    /// `GET path?k=v&…` (repeated keys for arrays, values percent-encoded), JSON answer.
    pub async fn get_json_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        auth: Auth<'_>,
    ) -> Result<T, ClientError> {
        let request = self.request(
            Method::GET,
            &with_query(path, query),
            route_label(path),
            auth,
            None,
        )?;
        self.json_call(request).await
    }

    /// E2: `GET check_url`, JSON answer. An absolute URL is used as-is; a path is resolved
    /// against the host with the gateway prefix. The gateway header is sent either way.
    pub async fn get_url_json<T: DeserializeOwned>(
        &self,
        check_url: &str,
        auth: Auth<'_>,
    ) -> Result<T, ClientError> {
        let check_url = check_url.trim();
        let route = routes::CHECK_REGISTRATION_LABEL;
        let mut request = if is_absolute(check_url) {
            Request {
                method: Method::GET,
                url: parse_url(check_url)?,
                route,
                auth,
                body: None,
                content_type: None,
                json_without_body: false,
                timeout: self.shared.settings.timeout,
            }
        } else if check_url.starts_with('/') {
            self.request(Method::GET, check_url, route, auth, None)?
        } else {
            self.request(Method::GET, &format!("/{check_url}"), route, auth, None)?
        };
        request.json_without_body = true;
        self.json_call(request).await
    }

    /// `PUT path` with a JSON body; returns the 2xx status, the answer body is ignored.
    pub async fn put_json<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        auth: Auth<'_>,
    ) -> Result<u16, ClientError> {
        let request = self.json_request(Method::PUT, path, body, auth)?;
        self.status_call(request).await
    }

    /// `POST path` with a body that is JSON already (E8 batches are queued serialised, so they
    /// are not parsed and encoded again); returns the 2xx status, the answer body is ignored.
    pub async fn post_json_bytes(
        &self,
        path: &str,
        json: Bytes,
        auth: Auth<'_>,
    ) -> Result<u16, ClientError> {
        let request = self.request(Method::POST, path, route_label(path), auth, Some(json))?;
        self.status_call(request).await
    }

    /// `POST path` with a JSON body, 2xx JSON answer decoded as `T` (E1).
    pub async fn post_json_reply<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        auth: Auth<'_>,
    ) -> Result<T, ClientError> {
        let request = self.json_request(Method::POST, path, body, auth)?;
        self.json_call(request).await
    }

    /// `POST` of `upload.body` as is; returns the 2xx status, the answer body is ignored. Any
    /// other answer is a [`ClientError::Status`] with its code and body, for the caller to
    /// classify.
    pub async fn post_bytes(&self, upload: Upload<'_>, auth: Auth<'_>) -> Result<u16, ClientError> {
        let mut request = self.request(
            Method::POST,
            &with_query(upload.path, upload.query),
            route_label(upload.path),
            auth,
            Some(upload.body),
        )?;
        request.content_type = Some(upload.content_type);
        if let Some(timeout) = upload.timeout {
            request.timeout = timeout;
        }
        self.status_call(request).await
    }

    /// `GET path`; returns the 2xx status (E10, "test connection").
    pub async fn get_status(&self, path: &str, auth: Auth<'_>) -> Result<u16, ClientError> {
        let request = self.request(Method::GET, path, route_label(path), auth, None)?;
        self.status_call(request).await
    }

    /// `GET path_and_query` streamed into `dest` (created or truncated, then fsynced), within
    /// `download_timeout`. More than `max_bytes` is [`ClientError::BodyTooLarge`]. On any failure
    /// after `dest` was created, it is removed. Returns the number of bytes written.
    pub async fn download_to_file(
        &self,
        path_and_query: &str,
        auth: Auth<'_>,
        dest: &Path,
        max_bytes: u64,
    ) -> Result<u64, ClientError> {
        let mut request = self.request(
            Method::GET,
            path_and_query,
            route_label(path_and_query),
            auth,
            None,
        )?;
        request.timeout = self.shared.settings.download_timeout;
        let (route, url) = (request.route.to_owned(), request.url.to_string());
        let created = Cell::new(false);
        let target = DownloadTarget {
            dest,
            max_bytes,
            route: &route,
            url: &url,
            created: &created,
        };
        let result = self
            .exchange(request, |res| stream_to_file(res, target))
            .await;
        if result.is_err() && created.get() {
            if let Err(e) = tokio::fs::remove_file(dest).await {
                warn!(path = %dest.display(), error = %e, "cannot remove a failed download");
            }
        }
        result
    }

    /// A request for a path on the configured host (gateway prefix added).
    fn request<'a>(
        &self,
        method: Method,
        path: &str,
        route: &'a str,
        auth: Auth<'a>,
        body: Option<Bytes>,
    ) -> Result<Request<'a>, ClientError> {
        if !path.starts_with('/') {
            return Err(ClientError::InvalidUrl {
                url: path.to_owned(),
                reason: "an OIAnalytics route must start with '/'".to_owned(),
            });
        }
        let shared = &self.shared;
        Ok(Request {
            method,
            url: parse_url(&format!("{}{}{}", shared.origin, shared.prefix, path))?,
            route,
            auth,
            body,
            content_type: None,
            json_without_body: false,
            timeout: shared.settings.timeout,
        })
    }

    fn json_request<'a, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &'a str,
        body: &B,
        auth: Auth<'a>,
    ) -> Result<Request<'a>, ClientError> {
        let route = route_label(path);
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Encode {
            route: route.to_owned(),
            error: e.to_string(),
        })?;
        self.request(method, path, route, auth, Some(Bytes::from(bytes)))
    }

    async fn json_call<T: DeserializeOwned>(&self, request: Request<'_>) -> Result<T, ClientError> {
        let limit = self.shared.settings.max_body_bytes;
        let (route, url) = (request.route.to_owned(), request.url.to_string());
        self.exchange(request, |res| read_json(res, limit, route, url))
            .await
    }

    async fn status_call(&self, request: Request<'_>) -> Result<u16, ClientError> {
        let limit = self.shared.settings.max_body_bytes;
        self.exchange(request, |res| async move {
            let status = res.status().as_u16();
            drain(res, limit).await;
            Ok(status)
        })
        .await
    }

    /// Sends `request`, turns a non-2xx answer into an error, lets `read` consume a 2xx answer,
    /// all within the request's deadline; then reports the call to the metrics hook.
    async fn exchange<R, F, Fut>(&self, request: Request<'_>, read: F) -> Result<R, ClientError>
    where
        F: FnOnce(ClientResponse) -> Fut,
        Fut: Future<Output = Result<R, ClientError>>,
    {
        let started = Instant::now();
        let method = method_name(&request.method);
        let url = request.url.to_string();
        let outcome = actix_rt::time::timeout(request.timeout, async {
            let res = self.send(&request, method, &url).await?;
            let status = res.status().as_u16();
            read(res).await.map(|value| (status, value))
        })
        .await
        .unwrap_or_else(|_elapsed| {
            Err(ClientError::Timeout {
                method,
                url: url.clone(),
                after: request.timeout,
            })
        });
        let elapsed = started.elapsed();
        let result = match &outcome {
            Ok((status, _)) => status.to_string(),
            Err(e) => e.label().into_owned(),
        };
        debug!(
            route = request.route,
            method,
            result = %result,
            elapsed_ms = elapsed.as_millis() as u64,
            "OIAnalytics call"
        );
        if let Some(hook) = &self.metrics {
            hook(&ApiCall {
                route: request.route,
                method,
                result: &result,
                elapsed,
            });
        }
        outcome.map(|(_, value)| value)
    }

    /// Sends the request with our headers; only a 2xx answer comes back as `Ok`.
    async fn send(
        &self,
        request: &Request<'_>,
        method: &'static str,
        url: &str,
    ) -> Result<ClientResponse, ClientError> {
        let shared = &self.shared;
        let mut req = self
            .http
            .request(request.method.clone(), request.url.clone())
            .timeout(request.timeout)
            .insert_header((header::USER_AGENT, shared.user_agent.clone()));
        if let Some((name, value)) = &shared.gateway_header {
            req = req.insert_header((name.clone(), value.clone()));
        }
        match request.auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                req = req.insert_header((header::AUTHORIZATION, bearer(token)?));
            }
            Auth::Basic { username, password } => {
                req = req.insert_header((header::AUTHORIZATION, basic(username, password)?));
            }
        }
        let sent = match &request.body {
            Some(body) => req
                .insert_header((
                    header::CONTENT_TYPE,
                    request.content_type.unwrap_or("application/json"),
                ))
                .send_body(body.clone()),
            None if request.json_without_body => req
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .send(),
            None => req.send(),
        };
        let mut res = sent
            .await
            .map_err(|e| ClientError::from_send(e, method, url, request.timeout))?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        if status.is_redirection() {
            let location = res
                .headers()
                .get(header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(ClientError::Redirect {
                url: url.to_owned(),
                status: status.as_u16(),
                location,
            });
        }
        // Keep what we need for the message; a read failure keeps what arrived.
        let mut body = BytesMut::new();
        while body.len() <= MAX_ERROR_BODY {
            match res.next().await {
                Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                Some(Err(_)) | None => break,
            }
        }
        Err(ClientError::from_status(status.as_u16(), &body))
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// `Bearer <token>`, never `Bearer Bearer <token>` even if the stored token carries the prefix.
fn bearer(token: &Secret<String>) -> Result<HeaderValue, ClientError> {
    let raw = token.expose().trim();
    let raw = raw.strip_prefix("Bearer ").unwrap_or(raw).trim_start();
    let mut value = HeaderValue::from_str(&format!("Bearer {raw}")).map_err(|_| {
        ClientError::Settings(
            "the stored access token contains characters not allowed in an HTTP header; \
             register the agent again"
                .to_owned(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// `Basic base64(username:password)`.
fn basic(username: &str, password: &Secret<String>) -> Result<HeaderValue, ClientError> {
    use base64::Engine as _;
    let pair = format!("{username}:{}", password.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| ClientError::Settings("the Basic credentials cannot go in a header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn content_length(res: &ClientResponse) -> Option<u64> {
    res.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the whole answer, failing as soon as it exceeds `limit` bytes.
async fn read_body(
    mut res: ClientResponse,
    limit: usize,
    route: &str,
    url: &str,
) -> Result<Bytes, ClientError> {
    let too_large = || ClientError::BodyTooLarge {
        route: route.to_owned(),
        limit: limit as u64,
        advice: "if it is legitimate (e.g. a long backlog of pending commands), raise \
                 oianalytics.max_answer_bytes, else check what answers at oianalytics.host",
    };
    let declared = content_length(&res);
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) = res.next().await {
        let chunk = chunk.map_err(|e| ClientError::from_payload(e, url))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn read_json<T: DeserializeOwned>(
    res: ClientResponse,
    limit: usize,
    route: String,
    url: String,
) -> Result<T, ClientError> {
    let body = read_body(res, limit, &route, &url).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
        route,
        error: e.to_string(),
    })
}

/// Reads and drops an ignored answer so the connection can be reused; gives up (dropping the
/// connection) past `limit` bytes or on a read error, since the 2xx status already counts.
async fn drain(mut res: ClientResponse, limit: usize) {
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = res.next().await {
        seen += chunk.len();
        if seen > limit {
            break;
        }
    }
}

/// Where a download goes, and what to say about it.
#[derive(Clone, Copy)]
struct DownloadTarget<'a> {
    dest: &'a Path,
    max_bytes: u64,
    route: &'a str,
    url: &'a str,
    /// Set once `dest` exists, so a failure knows to remove it.
    created: &'a Cell<bool>,
}

/// Streams the answer into the file through a buffer, never holding the whole body.
async fn stream_to_file(
    mut res: ClientResponse,
    target: DownloadTarget<'_>,
) -> Result<u64, ClientError> {
    let DownloadTarget {
        dest,
        max_bytes,
        route,
        url,
        created,
    } = target;
    let too_large = || ClientError::BodyTooLarge {
        route: route.to_owned(),
        limit: max_bytes,
        advice: "a release asset may not be larger; check the asset OIAnalytics serves",
    };
    if content_length(&res).is_some_and(|len| len > max_bytes) {
        return Err(too_large());
    }
    let file_error = |source| ClientError::File {
        path: dest.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::create(dest).await.map_err(file_error)?;
    created.set(true);
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut written = 0u64;
    while let Some(chunk) = res.next().await {
        let chunk = chunk.map_err(|e| ClientError::from_payload(e, url))?;
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(too_large());
        }
        out.write_all(&chunk).await.map_err(file_error)?;
    }
    out.flush().await.map_err(file_error)?;
    out.get_ref().sync_all().await.map_err(file_error)?;
    Ok(written)
}
