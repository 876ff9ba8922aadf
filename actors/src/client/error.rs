//! [`ClientError`]: what went wrong with an OIAnalytics call, keeping the HTTP semantics callers
//! decide on (the `404 - ` prefix, the `Bad Request` body text) and saying what to do.

use std::{borrow::Cow, io, path::PathBuf, time::Duration};

use awc::error::{ConnectError, PayloadError, SendRequestError};

use super::proxy::ProxyFailure;

/// Longest response body kept in a [`ClientError::Status`]. Long enough for any OIA error
/// payload (callers look for `Bad Request` in it), short enough for a log line.
pub const MAX_ERROR_BODY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A non-2xx, non-3xx answer. Displays exactly as `"<status> - <body text>"`, the string the
    /// protocol's callers test.
    #[error("{status} - {body}")]
    Status { status: u16, body: String },

    #[error(
        "{method} {url} got no complete answer within {after:?}; OIAnalytics or the network is \
         slow or unreachable, the call will be retried"
    )]
    Timeout {
        method: &'static str,
        url: String,
        after: Duration,
    },

    #[error(
        "cannot connect to {url}: {reason}; check oianalytics.host, DNS, firewall rules and \
         whether a proxy (oianalytics.proxy) is needed"
    )]
    Connect { url: String, reason: String },

    #[error(
        "TLS handshake with {url} failed: {reason}; if the server certificate is issued by a \
         private CA, add that CA to the system trust store, or set \
         oianalytics.accept_unauthorized: true (test servers only)"
    )]
    Tls { url: String, reason: String },

    #[error(
        "proxy {proxy} {}; check oianalytics.proxy.username/password_file",
        if *.sent_credentials {
            "refused the credentials (407 Proxy Authentication Required)"
        } else {
            "requires credentials (407 Proxy Authentication Required) and none are configured"
        }
    )]
    ProxyAuth {
        proxy: String,
        sent_credentials: bool,
    },

    #[error(
        "{reason} (calling {url}); check oianalytics.proxy.url and that the proxy allows CONNECT \
         to this host and port"
    )]
    Proxy { url: String, reason: String },

    #[error(
        "the answer of {route} is not the expected JSON: {error}; OIAnalytics may run an \
         incompatible version, or something else (a gateway, a captive portal) answered"
    )]
    Decode { route: String, error: String },

    #[error("cannot serialise the body for {route}: {error}; this is a bug in oibus-agent")]
    Encode { route: String, error: String },

    #[error("the answer of {route} exceeds the {limit}-byte limit; {advice}")]
    BodyTooLarge {
        route: String,
        limit: u64,
        /// What to do: answers and release downloads have different limits.
        advice: &'static str,
    },

    #[error(
        "{url} answered {status} redirecting to '{location}'; redirects are not followed: set \
         oianalytics.host (or the gateway base endpoint) to the final address"
    )]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },

    #[error(
        "the connection to {url} broke during the exchange: {reason}; the call will be retried"
    )]
    Transfer { url: String, reason: String },

    #[error("cannot call '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("invalid OIAnalytics client settings: {0}")]
    Settings(String),

    #[error(
        "cannot write the download to {}: {source}; check free space and permissions there",
        path.display()
    )]
    File { path: PathBuf, source: io::Error },
}

impl ClientError {
    /// The HTTP status of a [`ClientError::Status`] or [`ClientError::Redirect`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } | ClientError::Redirect { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// OIA answered 404 (the `404 - ` prefix the protocol tests).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Status { status: 404, .. })
    }

    /// OIA answered non-2xx with `needle` in the body (the protocol's `Bad Request` test).
    pub fn body_contains(&self, needle: &str) -> bool {
        matches!(self, ClientError::Status { body, .. } if body.contains(needle))
    }

    /// True when the failure is on the way to OIA (network, proxy, TLS, timeout), not an answer.
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. }
                | ClientError::Connect { .. }
                | ClientError::Tls { .. }
                | ClientError::ProxyAuth { .. }
                | ClientError::Proxy { .. }
                | ClientError::Transfer { .. }
        )
    }

    /// A short stable label: the status code for an HTTP answer, else the kind of failure. Used
    /// as the `result` of [`super::ApiCall`].
    pub fn label(&self) -> Cow<'static, str> {
        let kind = match self {
            ClientError::Status { status, .. } => return Cow::Owned(status.to_string()),
            ClientError::Timeout { .. } => "timeout",
            ClientError::Connect { .. } => "connect",
            ClientError::Tls { .. } => "tls",
            ClientError::ProxyAuth { .. } => "proxy-auth",
            ClientError::Proxy { .. } => "proxy",
            ClientError::Decode { .. } => "decode",
            ClientError::Encode { .. } => "encode",
            ClientError::BodyTooLarge { .. } => "body-too-large",
            ClientError::Redirect { .. } => "redirect",
            ClientError::Transfer { .. } => "transfer",
            ClientError::InvalidUrl { .. } => "invalid-url",
            ClientError::Settings(_) => "settings",
            ClientError::File { .. } => "file",
        };
        Cow::Borrowed(kind)
    }

    /// The error for an answer with this status and (possibly long, possibly binary) body.
    pub(crate) fn from_status(status: u16, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let body = if text.len() > MAX_ERROR_BODY {
            let mut cut = MAX_ERROR_BODY;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}…", &text[..cut])
        } else {
            text.into_owned()
        };
        ClientError::Status { status, body }
    }

    /// Classifies an awc send failure for the call to `url`.
    pub(crate) fn from_send(
        err: SendRequestError,
        method: &'static str,
        url: &str,
        after: Duration,
    ) -> Self {
        let url = url.to_owned();
        match err {
            SendRequestError::Timeout => ClientError::Timeout { method, url, after },
            SendRequestError::Connect(ConnectError::Timeout) => {
                ClientError::Timeout { method, url, after }
            }
            SendRequestError::Connect(ConnectError::Io(io)) => Self::from_connect_io(io, url),
            SendRequestError::Connect(other) => ClientError::Connect {
                url,
                reason: other.to_string(),
            },
            SendRequestError::Url(e) => ClientError::InvalidUrl {
                url,
                reason: e.to_string(),
            },
            SendRequestError::Send(e) => ClientError::Transfer {
                url,
                reason: format!("sending the request failed: {e}"),
            },
            SendRequestError::Response(e) => ClientError::Transfer {
                url,
                reason: format!("the answer is not valid HTTP: {e}"),
            },
            other => ClientError::Transfer {
                url,
                reason: other.to_string(),
            },
        }
    }

    /// An I/O failure while connecting: a proxy refusal, a TLS failure or a plain connect error.
    fn from_connect_io(io: io::Error, url: String) -> Self {
        if let Some(failure) = io.get_ref().and_then(|e| e.downcast_ref::<ProxyFailure>()) {
            return match failure {
                ProxyFailure::AuthRequired {
                    proxy,
                    sent_credentials,
                } => ClientError::ProxyAuth {
                    proxy: proxy.clone(),
                    sent_credentials: *sent_credentials,
                },
                other => ClientError::Proxy {
                    url,
                    reason: other.to_string(),
                },
            };
        }
        if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            return ClientError::Tls {
                url,
                reason: tls.to_string(),
            };
        }
        if io.kind() == io::ErrorKind::InvalidInput {
            // actix-tls reports a host that cannot be a TLS server name this way.
            return ClientError::Tls {
                url,
                reason: io.to_string(),
            };
        }
        ClientError::Connect {
            url,
            reason: io.to_string(),
        }
    }

    /// A failure while reading an answer body.
    pub(crate) fn from_payload(err: PayloadError, url: &str) -> Self {
        ClientError::Transfer {
            url: url.to_owned(),
            reason: format!("reading the answer failed: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_displays_as_status_dash_body() {
        let err = ClientError::from_status(404, b"not here");
        assert_eq!(err.to_string(), "404 - not here");
        assert!(err.is_not_found());
        assert!(err.body_contains("here"));
        assert_eq!(err.label(), "404");
    }

    #[test]
    fn long_status_body_is_cut_on_a_char_boundary() {
        let body = "é".repeat(MAX_ERROR_BODY);
        let err = ClientError::from_status(400, body.as_bytes());
        let ClientError::Status { body, .. } = err else {
            panic!("status error expected");
        };
        assert!(body.len() <= MAX_ERROR_BODY + '…'.len_utf8());
        assert!(body.ends_with('…'));
    }

    #[test]
    fn bad_request_in_body_is_visible_to_callers() {
        let err = ClientError::from_status(400, b"{\"error\":\"Bad Request\"}");
        assert!(err.body_contains("Bad Request"));
        assert!(!err.is_not_found());
    }

    #[test]
    fn proxy_auth_message_names_the_proxy_and_the_settings_to_check() {
        let err = ClientError::ProxyAuth {
            proxy: "http://proxy:3128".to_owned(),
            sent_credentials: true,
        };
        assert_eq!(
            err.to_string(),
            "proxy http://proxy:3128 refused the credentials (407 Proxy Authentication \
             Required); check oianalytics.proxy.username/password_file"
        );
    }
}
