//! Client tests against small raw HTTP/1.1 servers and a CONNECT proxy written here with tokio.

use std::{
    net::SocketAddr,
    rc::Rc,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use serde::Deserialize;
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use super::*;

/// Most connections any test server or proxy accepts before its loop ends.
const MAX_CONNECTIONS: usize = 32;

// ---------------------------------------------------------------------------------------------
// Test kit: a one-request-per-connection HTTP/1.1 server (the other modules' tests use it too)
// and a CONNECT proxy.

#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) target: String,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Send `Content-Length`; without it the body is chunked (awc reads an HTTP/1.1 answer with
    /// neither as empty, so close-delimited bodies cannot be tested).
    with_length: bool,
    /// Read the request, then never answer.
    silent: bool,
}

impl Reply {
    pub(crate) fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            with_length: true,
            silent: false,
        }
    }

    pub(crate) fn json(value: serde_json::Value) -> Self {
        Reply::new(200, value.to_string()).header("content-type", "application/json")
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn chunked(mut self) -> Self {
        self.with_length = false;
        self
    }
}

type Handler = Rc<dyn Fn(&Seen) -> Reply>;

/// Raw on purpose, like the proxy: it records the request line and headers exactly as the
/// client sent them, and answers unframed, chunked or never, which a server framework would not.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(handler: impl Fn(&Seen) -> Reply + 'static) -> Self {
        Self::start_with(None, handler).await
    }

    async fn start_tls(handler: impl Fn(&Seen) -> Reply + 'static) -> Self {
        Self::start_with(Some(self_signed_acceptor()), handler).await
    }

    async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl Fn(&Seen) -> Reply + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Rc::new(handler);
        let log = Arc::clone(&seen);
        let task = actix_rt::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, log, tls) = (Rc::clone(&handler), Arc::clone(&log), tls.clone());
                actix_rt::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            // A client refusing our certificate ends the handshake: fine.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_one(stream, &handler, &log).await;
                            }
                        }
                        None => serve_one(stream, &handler, &log).await,
                    }
                });
            }
        });
        TestServer { addr, seen, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub(crate) fn only_request(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "exactly one request expected: {seen:?}");
        seen[0].clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request head and body, answers, closes.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    handler: &Handler,
    log: &Mutex<Vec<Seen>>,
) {
    let mut reader = BufReader::new(stream);
    let Some((request_line, headers)) = read_head(&mut reader).await else {
        return;
    };
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    let seen = Seen {
        method,
        target,
        headers,
        body,
    };
    let reply = handler(&seen);
    log.lock().expect("lock").push(seen);
    if reply.silent {
        actix_rt::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    let mut head = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.with_length {
        head.push_str(&format!("content-length: {}\r\n", reply.body.len()));
    } else {
        head.push_str("transfer-encoding: chunked\r\n");
    }
    head.push_str("\r\n");
    let mut stream = reader.into_inner();
    let _ = stream.write_all(head.as_bytes()).await;
    // Write in pieces so streaming readers see several chunks.
    for piece in reply.body.chunks(8 * 1024) {
        let framed = if reply.with_length {
            piece.to_vec()
        } else {
            [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat()
        };
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
    if !reply.with_length {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
    let _ = stream.shutdown().await;
}

/// Request (or status) line and headers, up to the blank line; `None` if the peer went away.
async fn read_head<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<Head> {
    let mut first = String::new();
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if first.is_empty() {
            first = line.to_owned();
        } else if line.is_empty() {
            return Some((first, headers));
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    None
}

fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate");
    let private = rustls_pki_types::PrivatePkcs8KeyDer::from(key.key_pair.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![key.cert.der().clone()], private.into())
    .expect("server certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A request line (or status line) and its headers.
type Head = (String, Vec<(String, String)>);

/// A CONNECT-only proxy; with `credentials` ("user:pass") it demands Basic auth. Written by
/// hand: it is a server that records the exact heads the connector sends, which no client
/// crate replaces.
struct TestProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<Head>>>,
    task: JoinHandle<()>,
}

impl TestProxy {
    async fn start(credentials: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let expected = credentials.map(|c| format!("Basic {}", BASE64.encode(c)));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&heads);
        let task = actix_rt::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (expected, log) = (expected.clone(), Arc::clone(&log));
                actix_rt::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let Some((line, headers)) = read_head(&mut reader).await else {
                        return;
                    };
                    log.lock()
                        .expect("lock")
                        .push((line.clone(), headers.clone()));
                    let mut client = reader.into_inner();
                    let given = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("proxy-authorization"))
                        .map(|(_, v)| v.clone());
                    if expected.is_some() && given != expected {
                        let _ = client
                            .write_all(
                                b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                                  Proxy-Authenticate: Basic realm=\"test\"\r\n\
                                  Content-Length: 0\r\n\r\n",
                            )
                            .await;
                        return;
                    }
                    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    // The CONNECT tunnel: bytes both ways, so a raw TcpStream and not an HTTP client.
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        TestProxy { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn heads(&self) -> Vec<Head> {
        self.heads.lock().expect("lock").clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn settings(host: &str) -> ClientSettings {
    ClientSettings {
        timeout: Duration::from_secs(5),
        ..ClientSettings::new(host)
    }
}

fn client(settings: ClientSettings) -> OiaClient {
    ClientFactory::new(Arc::new(settings))
        .expect("valid settings")
        .client()
}

fn token() -> Secret<String> {
    Secret::new("tok-123".to_owned())
}

#[derive(Debug, Deserialize, PartialEq)]
struct Pong {
    ok: bool,
}

/// `GET /status` without credentials: the plainest call, to watch the connection under it.
async fn ping(client: &OiaClient) -> Result<Pong, ClientError> {
    client.get_json(routes::STATUS, Auth::None).await
}

// ---------------------------------------------------------------------------------------------
// Pure helpers.

#[test]
fn query_pairs_repeat_keys_and_are_percent_encoded() {
    let url = with_query("/c/list", &[("ids", "a b"), ("ids", "é&=/"), ("x", "-._~")]);
    assert_eq!(url, "/c/list?ids=a%20b&ids=%C3%A9%26%3D%2F&x=-._~");
    assert_eq!(with_query("/p?k=v", &[("a", "1")]), "/p?k=v&a=1");
    assert_eq!(with_query("/p", &[]), "/p");
}

#[test]
fn route_label_strips_the_api_prefix_and_query() {
    assert_eq!(route_label(routes::COMMANDS_PENDING), "commands/pending");
    assert_eq!(
        route_label("/api/oianalytics/oibus/upgrade/asset?assetId=1"),
        "upgrade/asset"
    );
    assert_eq!(route_label("/other/path"), "other/path");
    assert_eq!(route_label(routes::FILE_UPLOADS), "file-uploads");
    assert_eq!(
        route_label(routes::TIME_VALUES_COMPRESSED),
        "time-values/compressed"
    );
}

#[test]
fn host_keeps_only_scheme_and_authority() {
    assert_eq!(
        origin_of("https://oia.example.com/some/path?x=1").unwrap(),
        "https://oia.example.com"
    );
    assert_eq!(origin_of("HTTP://h:8080").unwrap(), "http://h:8080");
    for bad in ["", "oia.example.com", "ftp://h", "https://u:p@h"] {
        let err = origin_of(bad).expect_err(bad);
        assert!(err.to_string().contains("oianalytics.host"), "{err}");
    }
}

#[test]
fn gateway_prefix_is_normalised() {
    assert_eq!(normalise_prefix("gw/").unwrap(), "/gw");
    assert_eq!(normalise_prefix(" /gw ").unwrap(), "/gw");
    assert_eq!(normalise_prefix("").unwrap(), "");
    assert!(normalise_prefix("/gw?x").is_err());
}

#[test]
fn bearer_header_never_doubles_the_prefix() {
    let plain = bearer(&Secret::new("abc".to_owned())).unwrap();
    let prefixed = bearer(&Secret::new("Bearer abc".to_owned())).unwrap();
    assert_eq!(plain, "Bearer abc");
    assert_eq!(prefixed, "Bearer abc");
    assert!(plain.is_sensitive());
    assert!(bearer(&Secret::new("a\nb".to_owned())).is_err());
}

#[test]
fn invalid_gateway_header_is_a_settings_error() {
    let mut s = ClientSettings::new("https://oia.example.com");
    s.gateway = Some(GatewaySettings {
        base_endpoint: "/gw".to_owned(),
        header_key: "bad header".to_owned(),
        header_value: Secret::new("v".to_owned()),
    });
    let err = ClientFactory::new(Arc::new(s)).expect_err("invalid header name");
    assert!(err.to_string().contains("header_key"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP calls.

#[actix_rt::test]
async fn success_answer_is_decoded_and_reported_once() {
    let server = TestServer::start(|_| Reply::json(json!({"ok": true}))).await;
    type Reported = (String, &'static str, String);
    let calls: Arc<Mutex<Vec<Reported>>> = Arc::default();
    let log = Arc::clone(&calls);
    let factory = ClientFactory::new(Arc::new(settings(&server.url())))
        .unwrap()
        .with_metrics(Arc::new(move |call: &ApiCall<'_>| {
            log.lock()
                .unwrap()
                .push((call.route.to_owned(), call.method, call.result.to_owned()));
        }));
    let pong: Pong = factory
        .client()
        .get_json(routes::STATUS, Auth::None)
        .await
        .expect("call");
    assert_eq!(pong, Pong { ok: true });

    let seen = server.only_request();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, routes::STATUS);
    assert_eq!(
        seen.header("user-agent"),
        Some("OIBus/3.8.8 (https://oibus.optimistik.com/)"),
        "byte for byte what OIBus 3.8.8 sends, never the agent's own version"
    );
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(
        *calls.lock().unwrap(),
        vec![("status".to_owned(), "GET", "200".to_owned())]
    );
}

#[actix_rt::test]
async fn bearer_token_is_sent_with_a_single_prefix() {
    let server = TestServer::start(|_| Reply::json(json!({"ok": true}))).await;
    let token = token();
    let _: Pong = client(settings(&server.url()))
        .get_json(routes::COMMANDS_PENDING, Auth::Bearer(&token))
        .await
        .expect("call");
    assert_eq!(
        server.only_request().header("authorization"),
        Some("Bearer tok-123")
    );
}

#[actix_rt::test]
async fn error_status_reads_as_status_dash_body() {
    let server = TestServer::start(|_| Reply::new(404, "not here")).await;
    let err = client(settings(&server.url()))
        .get_json::<Pong>(routes::COMMANDS_PENDING, Auth::None)
        .await
        .expect_err("404");
    assert_eq!(err.to_string(), "404 - not here");
    assert!(err.is_not_found());
}

#[actix_rt::test]
async fn malformed_json_is_a_decode_error_naming_the_route() {
    let server = TestServer::start(|_| Reply::new(200, "{\"ok\": tru")).await;
    let err = client(settings(&server.url()))
        .get_json::<Pong>(routes::COMMANDS_PENDING, Auth::None)
        .await
        .expect_err("malformed");
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("commands/pending"), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

#[actix_rt::test]
async fn answer_over_the_size_limit_is_rejected() {
    let big = format!("[{}0]", "0,".repeat(600));
    // Chunked: the limit must hold while streaming, not only on the header.
    let server = TestServer::start(move |_| Reply::new(200, big.clone()).chunked()).await;
    let mut s = settings(&server.url());
    s.max_body_bytes = 1000;
    let err = client(s)
        .get_json::<Vec<u32>>(routes::COMMANDS_PENDING, Auth::None)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, ClientError::BodyTooLarge { limit: 1000, .. }),
        "{err:?}"
    );
}

#[actix_rt::test]
async fn redirect_is_an_error_and_is_not_followed() {
    let server = TestServer::start(|seen| {
        if seen.target == "/elsewhere" {
            Reply::json(json!({"ok": true}))
        } else {
            Reply::new(302, "").header("location", "/elsewhere")
        }
    })
    .await;
    let err = ping(&client(settings(&server.url())))
        .await
        .expect_err("redirect");
    assert!(
        matches!(err, ClientError::Redirect { status: 302, ref location, .. } if location == "/elsewhere"),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 1, "the redirect was not followed");
}

#[actix_rt::test]
async fn silent_server_times_out_within_the_deadline() {
    let server = TestServer::start(|_| Reply {
        silent: true,
        ..Reply::new(200, "")
    })
    .await;
    let mut s = settings(&server.url());
    s.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = ping(&client(s)).await.expect_err("timeout");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert_eq!(err.label(), "timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[actix_rt::test]
async fn refused_connection_is_a_connect_error() {
    // Bind then drop, so the port is very likely closed.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = client(settings(&format!("http://{addr}")))
        .get_status(routes::STATUS, Auth::None)
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.is_network());
}

#[actix_rt::test]
async fn gateway_prefix_and_header_are_on_every_call() {
    let server = TestServer::start(|_| Reply::json(json!({"ok": true}))).await;
    let mut s = settings(&format!("{}/ignored/path", server.url()));
    s.gateway = Some(GatewaySettings {
        base_endpoint: "/gw".to_owned(),
        header_key: "x-gw".to_owned(),
        header_value: Secret::new("gw-secret".to_owned()),
    });
    let c = client(s);
    let token = token();
    let _: Pong = c
        .get_json(routes::STATUS, Auth::Bearer(&token))
        .await
        .unwrap();
    let _: Pong = c
        .post_json_reply(routes::REGISTRATION, &json!({"a": 1}), Auth::None)
        .await
        .unwrap();
    let _: Pong = c
        .get_url_json("/api/oianalytics/oibus/check-registration?id=7", Auth::None)
        .await
        .unwrap();
    let absolute = format!("{}/direct/check?id=8", server.url());
    let _: Pong = c.get_url_json(&absolute, Auth::None).await.unwrap();

    let seen = server.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/gw/api/oianalytics/oibus/status",
            "/gw/api/oianalytics/oibus/registration",
            "/gw/api/oianalytics/oibus/check-registration?id=7",
            "/direct/check?id=8",
        ]
    );
    assert!(seen.iter().all(|s| s.header("x-gw") == Some("gw-secret")));
    let content_types: Vec<Option<&str>> = seen.iter().map(|s| s.header("content-type")).collect();
    assert_eq!(
        content_types,
        [
            None,
            Some("application/json"),
            Some("application/json"),
            Some("application/json")
        ],
        "E2 is a GET with Content-Type: application/json, as OIBus sends it"
    );
}

#[actix_rt::test]
async fn the_user_agent_names_the_configured_oibus_version() {
    let server = TestServer::start(|_| Reply::json(json!({"ok": true}))).await;
    let mut s = settings(&server.url());
    s.oibus_version = "3.9.1".to_owned();
    let _ = ping(&client(s)).await.unwrap();
    assert_eq!(
        server.only_request().header("user-agent"),
        Some("OIBus/3.9.1 (https://oibus.optimistik.com/)")
    );
}

#[actix_rt::test]
async fn query_arrays_are_sent_as_repeated_keys() {
    let server = TestServer::start(|_| Reply::json(json!([]))).await;
    let token = token();
    let ids: Vec<serde_json::Value> = client(settings(&server.url()))
        .get_json_query(
            routes::COMMANDS_LIST_BY_IDS,
            &[("ids", "a"), ("ids", "b c")],
            Auth::Bearer(&token),
        )
        .await
        .unwrap();
    assert!(ids.is_empty());
    assert_eq!(
        server.only_request().target,
        "/api/oianalytics/oibus/commands/list-by-ids?ids=a&ids=b%20c"
    );
}

#[actix_rt::test]
async fn put_and_post_send_json_and_return_the_status() {
    let server = TestServer::start(|seen| match seen.method.as_str() {
        "PUT" => Reply::new(200, "ignored"),
        _ => Reply::new(204, ""),
    })
    .await;
    let c = client(settings(&server.url()));
    let token = token();
    let body = json!([{"id": "c1", "status": "RETRIEVED"}]);
    assert_eq!(
        c.put_json(routes::COMMANDS_STATUS, &body, Auth::Bearer(&token))
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        c.post_json_bytes(routes::LOGS, body.to_string().into(), Auth::Bearer(&token))
            .await
            .unwrap(),
        204
    );
    assert_eq!(
        c.get_status(routes::STATUS, Auth::Bearer(&token))
            .await
            .unwrap(),
        204
    );
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[0].body).unwrap(),
        body
    );
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[2].header("content-type"), None);
}

// ---------------------------------------------------------------------------------------------
// Proxy.

fn via_proxy(host: &str, proxy: &TestProxy, user: Option<&str>, pass: Option<&str>) -> OiaClient {
    let mut s = settings(host);
    s.proxy = Some(ProxySettings {
        url: proxy.url(),
        username: user.map(str::to_owned),
        password: pass.map(|p| Secret::new(p.to_owned())),
    });
    client(s)
}

#[actix_rt::test]
async fn http_target_goes_through_a_connect_tunnel_with_basic_auth() {
    let server = TestServer::start(|_| Reply::json(json!({"ok": true}))).await;
    let proxy = TestProxy::start(Some("ops:s3cret")).await;
    let c = via_proxy(&server.url(), &proxy, Some("ops"), Some("s3cret"));
    let pong = ping(&c).await.expect("call");
    assert_eq!(pong, Pong { ok: true });

    let heads = proxy.heads();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].0, format!("CONNECT {} HTTP/1.1", server.addr));
    assert_eq!(server.only_request().target, routes::STATUS);
}

#[actix_rt::test]
async fn proxy_without_auth_tunnels_without_credentials() {
    let server = TestServer::start(|_| Reply::json(json!({"ok": true}))).await;
    let proxy = TestProxy::start(None).await;
    let c = via_proxy(&server.url(), &proxy, None, None);
    let _ = ping(&c).await.expect("call");
    let heads = proxy.heads();
    assert!(heads[0]
        .1
        .iter()
        .all(|(n, _)| !n.eq_ignore_ascii_case("proxy-authorization")));
}

#[actix_rt::test]
async fn wrong_proxy_credentials_are_a_clear_proxy_auth_error() {
    let server = TestServer::start(|_| Reply::json(json!({"ok": true}))).await;
    let proxy = TestProxy::start(Some("ops:s3cret")).await;
    let c = via_proxy(&server.url(), &proxy, Some("ops"), Some("wrong"));
    let err = ping(&c).await.expect_err("407");
    assert!(matches!(err, ClientError::ProxyAuth { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "proxy {} refused the credentials (407 Proxy Authentication Required); check \
             oianalytics.proxy.username/password_file",
            proxy.url()
        )
    );
    assert!(server.seen().is_empty());
}

#[actix_rt::test]
async fn https_target_goes_through_a_connect_tunnel() {
    let server = TestServer::start_tls(|_| Reply::json(json!({"ok": true}))).await;
    let proxy = TestProxy::start(None).await;
    let mut s = settings(&format!("https://{}", server.addr));
    s.accept_unauthorized = true;
    s.proxy = Some(ProxySettings {
        url: proxy.url(),
        username: None,
        password: None,
    });
    let pong = ping(&client(s)).await.expect("call through the tunnel");
    assert_eq!(pong, Pong { ok: true });
    assert_eq!(
        proxy.heads()[0].0,
        format!("CONNECT {} HTTP/1.1", server.addr)
    );
}

// ---------------------------------------------------------------------------------------------
// TLS.

#[actix_rt::test]
async fn self_signed_server_is_rejected_when_verifying() {
    let server = TestServer::start_tls(|_| Reply::json(json!({"ok": true}))).await;
    let err = ping(&client(settings(&format!("https://{}", server.addr))))
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("accept_unauthorized"), "{err}");
    assert!(server.seen().is_empty());
}

#[actix_rt::test]
async fn self_signed_server_is_accepted_with_accept_unauthorized() {
    let server = TestServer::start_tls(|_| Reply::json(json!({"ok": true}))).await;
    let mut s = settings(&format!("https://{}", server.addr));
    s.accept_unauthorized = true;
    let pong = ping(&client(s)).await.expect("accepted");
    assert_eq!(pong, Pong { ok: true });
}

// ---------------------------------------------------------------------------------------------
// Download.

fn asset(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[actix_rt::test]
async fn download_streams_the_answer_into_the_file() {
    let server = TestServer::start(|_| Reply::new(200, asset(300_000)).chunked()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("asset.zip");
    let token = token();
    let path = with_query(routes::UPGRADE_ASSET, &[("assetId", "a1")]);
    let written = client(settings(&server.url()))
        .download_to_file(&path, Auth::Bearer(&token), &dest, 1_000_000)
        .await
        .expect("download");
    assert_eq!(written, 300_000);
    assert_eq!(std::fs::read(&dest).unwrap(), asset(300_000));
    assert_eq!(
        server.only_request().target,
        "/api/oianalytics/oibus/upgrade/asset?assetId=a1"
    );
}

/// A download of at most `limit` bytes from a server that answers `reply`: the error, and
/// whether a file was left behind.
async fn failed_download(reply: Reply, limit: u64) -> (ClientError, bool) {
    let server = TestServer::start(move |_| reply.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("asset.zip");
    let err = client(settings(&server.url()))
        .download_to_file(routes::UPGRADE_ASSET, Auth::None, &dest, limit)
        .await
        .expect_err("a failed download");
    (err, dest.exists())
}

#[actix_rt::test]
async fn download_over_the_limit_is_rejected_and_removed() {
    let (err, left) = failed_download(Reply::new(200, asset(100_000)).chunked(), 50_000).await;
    assert!(
        matches!(err, ClientError::BodyTooLarge { limit: 50_000, .. }),
        "{err:?}"
    );
    assert!(!left, "a failed download leaves no file");
}

#[actix_rt::test]
async fn download_declared_over_the_limit_is_rejected_before_writing() {
    let (err, left) = failed_download(Reply::new(200, asset(100_000)), 50_000).await;
    assert!(matches!(err, ClientError::BodyTooLarge { .. }), "{err:?}");
    assert!(!left);
}

#[actix_rt::test]
async fn download_error_status_leaves_no_file() {
    let (err, left) = failed_download(Reply::new(404, "no such asset"), 50_000).await;
    assert_eq!(err.to_string(), "404 - no such asset");
    assert!(!left);
}
