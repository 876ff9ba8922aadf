//! HTTP CONNECT tunnelling through a forward proxy.
//!
//! awc has no proxy support, so this is a custom TCP connector for `awc::Connector`: for every new
//! connection it dials the proxy, asks for a tunnel to the target with `CONNECT host:port`, and
//! hands the tunnel to awc as if it were the TCP stream to the target. awc then runs its rustls
//! layer over it for `https` targets, so TLS stays end to end. Plain `http` targets go through
//! CONNECT too, as the reference client does.
//!
//! A proxy failure travels through awc as an `io::Error` wrapping [`ProxyFailure`], which
//! `error.rs` recovers by downcasting.

use std::{fmt, io, rc::Rc};

use actix_rt::net::TcpStream;
use actix_service::Service;
use actix_tls::connect::{ConnectError as TcpConnectError, ConnectInfo, Connection};
use awc::http::Uri;
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::{ClientError, ProxySettings};
use crate::Secret;

/// Longest proxy answer head we accept before giving up on it.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A validated proxy: where to dial and what to authenticate with.
#[derive(Clone)]
pub(crate) struct ProxyTarget {
    /// `host:port`, as dialled.
    address: String,
    /// The configured URL, for messages.
    url: String,
    /// The full `Proxy-Authorization` value, when credentials are configured.
    authorization: Option<Secret<String>>,
}

impl fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyTarget")
            .field("url", &self.url)
            .field("authorization", &self.authorization)
            .finish()
    }
}

impl ProxyTarget {
    /// Checks the proxy settings: only `http://host[:port]` proxies are supported (port 80 by
    /// default), and credentials go in `username`/`password`, not in the URL.
    pub(crate) fn from_settings(settings: &ProxySettings) -> Result<Self, ClientError> {
        let invalid = |problem: &str| {
            ClientError::Settings(format!(
                "oianalytics.proxy.url '{}' {problem}",
                settings.url
            ))
        };
        let url = settings.url.trim();
        if url.is_empty() {
            return Err(ClientError::Settings(
                "oianalytics.proxy.url is empty; set it to http://host:port or remove the proxy \
                 section"
                    .to_owned(),
            ));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| invalid(&format!("is not a URL ({e}); expected http://host:port")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(invalid(&format!(
                    "uses scheme '{other}'; only http:// proxies are supported (HTTPS targets \
                     are still encrypted end to end through the tunnel)"
                )))
            }
            None => return Err(invalid("has no scheme; expected http://host:port")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("has no host; expected http://host:port"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "contains credentials; put them in oianalytics.proxy.username and password_file",
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("has a path; expected http://host:port"));
        }
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let authorization = settings.username.as_deref().map(|user| {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose().as_str())
                .unwrap_or("");
            Secret::new(format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{password}"))
            ))
        });
        Ok(ProxyTarget {
            address,
            url: url.to_owned(),
            authorization,
        })
    }
}

/// Why the proxy did not give us a tunnel. Carried inside an `io::Error` through awc.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyFailure {
    #[error("proxy {proxy} answered 407 Proxy Authentication Required")]
    AuthRequired {
        proxy: String,
        sent_credentials: bool,
    },
    #[error("proxy {proxy} refused the tunnel to {target}: {status_line}")]
    Refused {
        proxy: String,
        target: String,
        status_line: String,
    },
    #[error("cannot connect to proxy {proxy}: {source}")]
    Unreachable { proxy: String, source: io::Error },
    #[error("proxy {proxy} broke the tunnel request to {target}: {problem}")]
    Protocol {
        proxy: String,
        target: String,
        problem: String,
    },
}

/// `host:port` for a CONNECT request line; IPv6 literals keep or gain their brackets.
fn connect_authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Asks for a tunnel to `target` (`host:port`) on an open connection to the proxy. On success
/// the stream is positioned at the first byte of the tunnel.
pub(crate) async fn open_tunnel<S>(
    stream: &mut S,
    proxy: &ProxyTarget,
    target: &str,
) -> Result<(), ProxyFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let protocol = |problem: String| ProxyFailure::Protocol {
        proxy: proxy.url.clone(),
        target: target.to_owned(),
        problem,
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth.expose());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| protocol(format!("sending CONNECT failed: {e}")))?;
    stream
        .flush()
        .await
        .map_err(|e| protocol(format!("sending CONNECT failed: {e}")))?;

    // Read the answer head line by line. The proxy sends nothing after the head until we speak,
    // so anything left in the buffer afterwards is a protocol error, not tunnel data to keep.
    let mut reader = BufReader::new(&mut *stream);
    let mut status_line = String::new();
    let mut head_len = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| protocol(format!("reading its answer failed: {e}")))?;
        if read == 0 {
            return Err(protocol(
                "it closed the connection before answering".to_owned(),
            ));
        }
        head_len += read;
        if head_len > MAX_RESPONSE_HEAD {
            return Err(protocol(format!(
                "its answer head exceeds {MAX_RESPONSE_HEAD} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if status_line.is_empty() {
            if text.is_empty() {
                continue; // tolerate a stray blank line before the status line
            }
            status_line = text.to_owned();
        } else if text.is_empty() {
            break;
        }
    }
    if !reader.buffer().is_empty() {
        return Err(protocol(
            "it sent data after its answer before the tunnel was used".to_owned(),
        ));
    }

    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    match code {
        _ if !version.starts_with("HTTP/1.") => Err(protocol(format!(
            "its answer is not HTTP/1.x: '{status_line}'"
        ))),
        Some(200..=299) => Ok(()),
        Some(407) => Err(ProxyFailure::AuthRequired {
            proxy: proxy.url.clone(),
            sent_credentials: proxy.authorization.is_some(),
        }),
        Some(_) => Err(ProxyFailure::Refused {
            proxy: proxy.url.clone(),
            target: target.to_owned(),
            status_line,
        }),
        None => Err(protocol(format!("unreadable status line '{status_line}'"))),
    }
}

/// The awc TCP connector that dials the proxy and opens a tunnel to the requested target.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    proxy: Rc<ProxyTarget>,
}

impl ProxyConnector {
    pub(crate) fn new(proxy: ProxyTarget) -> Self {
        ProxyConnector {
            proxy: Rc::new(proxy),
        }
    }
}

impl Service<ConnectInfo<Uri>> for ProxyConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = TcpConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let proxy = Rc::clone(&self.proxy);
        Box::pin(async move {
            // Only `Io` may be returned: awc panics on `InvalidInput`.
            let target = connect_authority(req.hostname(), req.port());
            let mut stream =
                TcpStream::connect(proxy.address.as_str())
                    .await
                    .map_err(|source| {
                        TcpConnectError::Io(io::Error::other(ProxyFailure::Unreachable {
                            proxy: proxy.url.clone(),
                            source,
                        }))
                    })?;
            // Tunnels carry small interactive requests; don't let Nagle delay them.
            let _ = stream.set_nodelay(true);
            open_tunnel(&mut stream, &proxy, &target)
                .await
                .map_err(|failure| TcpConnectError::Io(io::Error::other(failure)))?;
            Ok(Connection::new(req.request().clone(), stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(username: Option<&str>, password: Option<&str>) -> ProxyTarget {
        ProxyTarget::from_settings(&ProxySettings {
            url: "http://proxy.local:3128".to_owned(),
            username: username.map(str::to_owned),
            password: password.map(|p| Secret::new(p.to_owned())),
        })
        .expect("valid proxy settings")
    }

    /// Runs `open_tunnel` against a scripted proxy answer; returns the outcome and what was sent.
    async fn handshake(proxy: &ProxyTarget, answer: &[u8]) -> (Result<(), ProxyFailure>, String) {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let answer = answer.to_vec();
        let server_side = async move {
            use tokio::io::AsyncReadExt;
            let mut sent = Vec::new();
            let mut buf = [0u8; 1024];
            while !sent.ends_with(b"\r\n\r\n") {
                let n = server.read(&mut buf).await.expect("read CONNECT");
                if n == 0 {
                    break;
                }
                sent.extend_from_slice(&buf[..n]);
            }
            server.write_all(&answer).await.expect("write answer");
            (String::from_utf8_lossy(&sent).into_owned(), server)
        };
        let (result, (sent, _server)) = tokio::join!(
            open_tunnel(&mut client, proxy, "oia.example.com:443"),
            server_side
        );
        (result, sent)
    }

    #[actix_rt::test]
    async fn tunnel_request_carries_target_and_basic_credentials() {
        let p = proxy(Some("ops"), Some("s3cret"));
        let (result, sent) = handshake(&p, b"HTTP/1.1 200 Connection established\r\n\r\n").await;
        result.expect("tunnel opened");
        assert!(sent.starts_with("CONNECT oia.example.com:443 HTTP/1.1\r\n"));
        assert!(sent.contains("Host: oia.example.com:443\r\n"));
        // base64("ops:s3cret")
        assert!(sent.contains("Proxy-Authorization: Basic b3BzOnMzY3JldA==\r\n"));
    }

    #[actix_rt::test]
    async fn tunnel_request_without_username_sends_no_credentials() {
        let p = proxy(None, None);
        let (result, sent) = handshake(&p, b"HTTP/1.0 200 OK\r\nVia: x\r\n\r\n").await;
        result.expect("tunnel opened");
        assert!(!sent.contains("Proxy-Authorization"));
    }

    #[actix_rt::test]
    async fn proxy_answering_407_is_an_authentication_failure() {
        let p = proxy(Some("ops"), Some("wrong"));
        let answer =
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n";
        let (result, _) = handshake(&p, answer).await;
        assert!(matches!(
            result,
            Err(ProxyFailure::AuthRequired {
                sent_credentials: true,
                ..
            })
        ));
    }

    #[actix_rt::test]
    async fn proxy_refusal_keeps_its_status_line() {
        let p = proxy(None, None);
        let (result, _) = handshake(&p, b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        match result {
            Err(ProxyFailure::Refused { status_line, .. }) => {
                assert_eq!(status_line, "HTTP/1.1 403 Forbidden")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[actix_rt::test]
    async fn data_sent_before_the_tunnel_is_used_is_a_protocol_error() {
        let p = proxy(None, None);
        let (result, _) = handshake(&p, b"HTTP/1.1 200 OK\r\n\r\nsurprise").await;
        assert!(matches!(result, Err(ProxyFailure::Protocol { .. })));
    }

    #[actix_rt::test]
    async fn non_http_answer_is_a_protocol_error() {
        let p = proxy(None, None);
        let (result, _) = handshake(&p, b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(matches!(result, Err(ProxyFailure::Protocol { .. })));
    }

    #[test]
    fn proxy_url_must_be_plain_http_without_credentials_or_path() {
        let check = |url: &str| {
            ProxyTarget::from_settings(&ProxySettings {
                url: url.to_owned(),
                username: None,
                password: None,
            })
        };
        assert_eq!(check("http://proxy:3128").unwrap().address, "proxy:3128");
        assert_eq!(check("http://proxy").unwrap().address, "proxy:80");
        for bad in [
            "",
            "proxy:3128",
            "https://proxy:3128",
            "socks5://proxy:1080",
            "http://u:p@proxy:3128",
            "http://proxy:3128/path",
        ] {
            let err = check(bad).expect_err(bad);
            assert!(
                err.to_string().contains("oianalytics.proxy.url"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn ipv6_targets_are_bracketed_in_connect_lines() {
        assert_eq!(connect_authority("::1", 443), "[::1]:443");
        assert_eq!(connect_authority("[::1]", 443), "[::1]:443");
        assert_eq!(
            connect_authority("oia.example.com", 80),
            "oia.example.com:80"
        );
    }
}
