//! A small real HTTP CONNECT proxy on loopback (threads, std only), with optional Basic auth,
//! counting the tunnels it opened. A server, so no HTTP client crate stands in for it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Proxy {
    pub url: String,
    tunnels: Arc<AtomicUsize>,
}

impl Proxy {
    /// Start a proxy; with `credentials`, CONNECT without the right Basic auth gets 407.
    pub fn start(credentials: Option<(&str, &str)>) -> Proxy {
        use base64::Engine as _;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let expected = credentials.map(|(u, p)| {
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let tunnels = Arc::new(AtomicUsize::new(0));
        let count = tunnels.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let expected = expected.clone();
                let count = count.clone();
                std::thread::spawn(move || serve(client, expected, count));
            }
        });
        Proxy { url, tunnels }
    }

    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

fn serve(mut client: TcpStream, expected: Option<String>, count: Arc<AtomicUsize>) {
    let mut reader = BufReader::new(client.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut auth = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("proxy-authorization") {
                auth = Some(value.trim().to_ascii_lowercase());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if let Some(expected) = expected {
        if auth.as_deref() != Some(expected.to_ascii_lowercase().as_str()) {
            let _ = client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            );
            return;
        }
    }
    // The CONNECT tunnel: bytes both ways, so a raw TcpStream and not an HTTP client.
    let Ok(upstream) = TcpStream::connect(target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    count.fetch_add(1, Ordering::SeqCst);
    let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let mut reader_rest = reader;
    let mut upstream_w = upstream;
    let up = std::thread::spawn(move || {
        // Bytes the BufReader already holds belong to the tunnel too.
        let buffered = reader_rest.buffer().to_vec();
        let _ = upstream_w.write_all(&buffered);
        let _ = std::io::copy(reader_rest.get_mut(), &mut upstream_w);
        let _ = upstream_w.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut u2, &mut c2);
    let _ = c2.shutdown(Shutdown::Write);
    let _ = up.join();
}
