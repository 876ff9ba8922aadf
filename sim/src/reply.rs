//! Responses before they become `HttpResponse`s, so faults can reshape their bodies.
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::stream::{self, LocalBoxStream, StreamExt, TryStreamExt};
use serde_json::{json, Value};

pub enum Body {
    Bytes(Bytes),
    /// `len` is sent as `Content-Length` when known, otherwise the body is chunked.
    Stream {
        len: Option<u64>,
        stream: LocalBoxStream<'static, std::io::Result<Bytes>>,
    },
}

pub struct Reply {
    pub status: StatusCode,
    content_type: Option<&'static str>,
    body: Body,
}

impl Reply {
    pub fn empty(status: StatusCode) -> Reply {
        Reply {
            status,
            content_type: None,
            body: Body::Bytes(Bytes::new()),
        }
    }

    pub fn json(status: StatusCode, value: &Value) -> Reply {
        Reply {
            status,
            content_type: Some("application/json"),
            body: Body::Bytes(Bytes::from(value.to_string())),
        }
    }

    pub fn text(status: StatusCode, text: String) -> Reply {
        Reply {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            body: Body::Bytes(Bytes::from(text)),
        }
    }

    pub fn stream(
        len: u64,
        content_type: &'static str,
        stream: LocalBoxStream<'static, std::io::Result<Bytes>>,
    ) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type: Some(content_type),
            body: Body::Stream {
                len: Some(len),
                stream,
            },
        }
    }

    /// An error as Spring Boot (OIA's stack) writes it: the reason phrase is in `error`, so a 400
    /// body contains `Bad Request`, which OIBus looks for (§6.1).
    pub fn error(status: StatusCode, message: &str, path: &str) -> Reply {
        let body = json!({
            "timestamp": chrono::Utc::now(),
            "status": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
            "path": path,
        });
        Reply::json(status, &body)
    }

    /// The `close` fault: the body fails before anything is flushed, so actix-web drops the
    /// connection without sending the status line; the client sees a reset or an early EOF.
    pub fn cut() -> Reply {
        let failure = stream::once(async {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection cut by a `close` fault (intended)",
            ))
        });
        Reply {
            status: StatusCode::OK,
            content_type: Some("application/json"),
            body: Body::Stream {
                len: None,
                stream: failure.boxed_local(),
            },
        }
    }

    /// The `slow_body` fault: headers at once, then the body in `chunk`-byte pieces, each sent
    /// after `delay`. An empty body ends after one `delay` (as a chunked 200, since a 204 has no
    /// body to slow down).
    pub fn slowed(self, delay: Duration, chunk: usize) -> Reply {
        let chunk = chunk.max(1);
        let (len, pieces) = match self.body {
            Body::Bytes(bytes) if bytes.is_empty() => {
                let wait = stream::once(tokio::time::sleep(delay))
                    .filter_map(|()| async { None::<std::io::Result<Bytes>> });
                let status = if self.status == StatusCode::NO_CONTENT {
                    StatusCode::OK
                } else {
                    self.status
                };
                return Reply {
                    status,
                    content_type: self.content_type,
                    body: Body::Stream {
                        len: None,
                        stream: wait.boxed_local(),
                    },
                };
            }
            Body::Bytes(bytes) => (
                Some(bytes.len() as u64),
                stream::iter(split(bytes, chunk).map(Ok::<_, std::io::Error>)).boxed_local(),
            ),
            Body::Stream { len, stream } => (
                len,
                stream
                    .map_ok(move |bytes| {
                        stream::iter(split(bytes, chunk).map(Ok::<_, std::io::Error>))
                    })
                    .try_flatten()
                    .boxed_local(),
            ),
        };
        let delayed = pieces.then(move |piece| async move {
            tokio::time::sleep(delay).await;
            piece
        });
        Reply {
            status: self.status,
            content_type: self.content_type,
            body: Body::Stream {
                len,
                stream: delayed.boxed_local(),
            },
        }
    }

    pub fn into_response(self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        if let Some(content_type) = self.content_type {
            builder.content_type(content_type);
        }
        match self.body {
            Body::Bytes(bytes) => builder.body(bytes),
            Body::Stream { len, stream } => {
                if let Some(len) = len {
                    builder.no_chunking(len);
                }
                builder.streaming(stream)
            }
        }
    }
}

fn split(bytes: Bytes, chunk: usize) -> impl Iterator<Item = Bytes> {
    (0..bytes.len())
        .step_by(chunk)
        .map(move |start| bytes.slice(start..bytes.len().min(start + chunk)))
}
