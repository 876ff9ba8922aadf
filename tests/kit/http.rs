//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream` (and rustls for https), enough to
//! drive the simulator and the agent's local API, and to see faults exactly as they happen on
//! the wire: a cut connection is an `Err`, never a response.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What OIBus 3.8.8 sends, byte for byte.
pub const OIBUS_USER_AGENT: &str = "OIBus/3.8.8 (https://oibus.optimistik.com/)";

trait Io: Read + Write {}
impl<T: Read + Write> Io for T {}

/// Plain, or TLS trusting one extra root certificate.
#[derive(Clone, Default)]
pub struct Client {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    pub fn new() -> Client {
        Client::default()
    }

    /// A client for `https://` URLs whose server certificate is signed by `ca_pem`.
    pub fn trusting(ca_pem: &str) -> Client {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.expect("test CA PEM is valid"))
                .expect("test CA is a usable root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            tls: Some(Arc::new(config)),
        }
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
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
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

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The request on the wire; `keep_alive` false adds `Connection: close`.
    pub fn encode(&self, keep_alive: bool) -> Vec<u8> {
        let target = Target::parse(&self.url);
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method, target.path, target.authority
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sends on a new connection and reads the whole response.
    pub fn send(self) -> std::io::Result<Response> {
        let target = Target::parse(&self.url);
        let tcp = TcpStream::connect(&target.authority)?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        tcp.set_nodelay(true)?;
        let mut io: Box<dyn Io> = match (target.tls, &self.client.tls) {
            (false, _) => Box::new(tcp),
            (true, Some(config)) => {
                let name = rustls_pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
                let connection = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
                Box::new(rustls::StreamOwned::new(connection, tcp))
            }
            (true, None) => panic!(
                "https URL {} with a plain Client: use Client::trusting",
                self.url
            ),
        };
        io.write_all(&self.encode(false))?;
        io.flush()?;
        read_response(&mut BufReader::new(io), &self.method)
    }
}

struct Target {
    tls: bool,
    authority: String,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Target {
        let (tls, rest) = match url.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => panic!("unsupported URL {url:?}: expected http:// or https://"),
        };
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, "/"),
        };
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        Target {
            tls,
            authority: authority.to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            path: path.to_owned(),
        }
    }
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

fn unexpected_eof(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("connection closed {what}"),
    )
}

fn read_line(reader: &mut impl BufRead, what: &str) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
        return Err(unexpected_eof(what));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads one response (status, headers, body framed by length, chunks or EOF). Usable on a
/// keep-alive connection: it never reads past the response.
pub fn read_response(reader: &mut impl BufRead, method: &str) -> std::io::Result<Response> {
    let status_line = read_line(reader, "before the status line")?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, "in the headers")?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    if response
        .header("Transfer-Encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size_line = read_line(reader, "in a chunk size")?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
            if size == 0 {
                while !read_line(reader, "in the trailers")?.is_empty() {}
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            reader
                .read_exact(&mut response.body[start..])
                .map_err(|_| unexpected_eof("inside a chunk"))?;
            read_line(reader, "after a chunk")?;
        }
    } else if let Some(length) = response.header("Content-Length") {
        let length: usize = length
            .parse()
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
        response.body.resize(length, 0);
        reader
            .read_exact(&mut response.body)
            .map_err(|_| unexpected_eof("before Content-Length bytes"))?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}
