//! The kit's blocking HTTP client (ureq), to drive the simulator and the agent's local API and
//! see faults as they happen on the wire: a cut connection is an `Err`, never a response, and a
//! non-2xx answer is a `Response` like any other.
use std::time::Duration;

use serde_json::Value;
use ureq::http;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What OIBus 3.8.8 sends, byte for byte.
pub const OIBUS_USER_AGENT: &str = "OIBus/3.8.8 (https://oibus.optimistik.com/)";

/// Plain, or TLS trusting one extra root certificate.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Default for Client {
    fn default() -> Client {
        Client::with_tls(ureq::tls::TlsConfig::default())
    }
}

impl Client {
    pub fn new() -> Client {
        Client::default()
    }

    /// A client for `https://` URLs whose server certificate is signed by `ca_pem`.
    pub fn trusting(ca_pem: &str) -> Client {
        let roots: Vec<_> = ureq::tls::parse_pem(ca_pem.as_bytes())
            .filter_map(|item| match item.expect("test CA PEM is valid") {
                ureq::tls::PemItem::Certificate(cert) => Some(cert),
                _ => None,
            })
            .collect();
        Client::with_tls(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
                .build(),
        )
    }

    /// Only the headers a request sets are sent (no automatic User-Agent or Accept), no redirect
    /// is followed, every status is an answer, and each request has a connection of its own.
    fn with_tls(tls: ureq::tls::TlsConfig) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .user_agent(ureq::config::AutoHeaderValue::None)
            .accept(ureq::config::AutoHeaderValue::None)
            .tls_config(tls)
            .build()
            .into();
        Client { agent }
    }

    pub fn request(&self, method: &str, url: &str) -> Request<'_> {
        Request {
            client: self,
            method: method.to_owned(),
            url: url.to_owned(),
            // The simulator refuses any other User-Agent than OIBus's.
            headers: vec![("User-Agent".into(), OIBUS_USER_AGENT.into())],
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn get(&self, url: &str) -> Request<'_> {
        self.request("GET", url)
    }

    pub fn post(&self, url: &str) -> Request<'_> {
        self.request("POST", url)
    }

    pub fn put(&self, url: &str) -> Request<'_> {
        self.request("PUT", url)
    }

    pub fn delete(&self, url: &str) -> Request<'_> {
        self.request("DELETE", url)
    }
}

pub struct Request<'a> {
    client: &'a Client,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
}

impl Request<'_> {
    /// Sets a header, replacing one of the same name (case-insensitive).
    pub fn header(self, name: &str, value: &str) -> Self {
        let mut request = self.without_header(name);
        request.headers.push((name.to_owned(), value.to_owned()));
        request
    }

    pub fn without_header(mut self, name: &str) -> Self {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, value: &Value) -> Self {
        self.body(value.to_string().into_bytes(), "application/json")
    }

    pub fn body(mut self, body: Vec<u8>, content_type: &str) -> Self {
        self.body = body;
        self.header("Content-Type", content_type)
    }

    /// How long one read or one write on the connection may wait.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends on a new connection and returns once the status and headers are in; the body is
    /// still to be read (and may be late or cut).
    pub fn send_head(self) -> std::io::Result<http::Response<ureq::Body>> {
        let agent = &self.client.agent;
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(self.url.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let invalid = |e: http::Error| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        // POST and PUT always carry a length, even of an empty body.
        let sent = if self.body.is_empty() && !matches!(self.method.as_str(), "POST" | "PUT") {
            run(agent, builder.body(()).map_err(invalid)?, self.timeout)
        } else {
            run(
                agent,
                builder.body(self.body).map_err(invalid)?,
                self.timeout,
            )
        };
        sent.map_err(ureq::Error::into_io)
    }

    /// Sends on a new connection and reads the whole response.
    pub fn send(self) -> std::io::Result<Response> {
        let mut response = self.send_head()?;
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(ureq::Error::into_io)?;
        Ok(Response {
            status: response.status().as_u16(),
            headers,
            body,
        })
    }
}

/// Runs `request` with `timeout` for each read and each write on the connection.
fn run(
    agent: &ureq::Agent,
    request: http::Request<impl ureq::AsSendBody>,
    timeout: Duration,
) -> Result<http::Response<ureq::Body>, ureq::Error> {
    let request = agent
        .configure_request(request)
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .build();
    agent.run(request)
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {} body is not JSON ({err}): {}",
                self.status,
                self.text()
            )
        })
    }
}
