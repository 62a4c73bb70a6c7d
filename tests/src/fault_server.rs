//! A loopback server that misbehaves on purpose: 5xx, malformed and truncated bodies,
//! silence. A real server won't do these on demand, so this is the one fake in the suite.
//!
//! It answers `HEAD` of a bucket as kvplug-server would, 204 (so `open` of the `http`
//! backend succeeds), unless started with [`FaultServer::start_answering_all`], and
//! everything else with what the test's responder returns, then closes the connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One received request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case), or empty.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// What to do with a request.
pub enum Action {
    /// Write these bytes (a whole or partial HTTP response) and close.
    Raw(Vec<u8>),
    /// Read the request and never answer (until the server is dropped).
    Hang,
    /// Write `head` (status line and headers, ending in a blank line), then `body` one byte
    /// every `gap`: each wait is short, the whole answer never ends in time.
    Trickle {
        head: Vec<u8>,
        body: Vec<u8>,
        gap: Duration,
    },
    /// Write `head` (status line and headers, ending in a blank line), then nothing more
    /// until the server is dropped: an answer whose body never starts.
    Silent { head: Vec<u8> },
    /// Write `head` (with `transfer-encoding: chunked`), then 64 KiB chunks for as long as the
    /// client reads them (until the server is dropped).
    Endless { head: Vec<u8> },
    /// Write `head` (with `transfer-encoding: chunked`), then a body of `start`, `piece`
    /// `times` over and `end`, in chunks, so that a body of hundreds of megabytes is never
    /// held by the server.
    Repeat {
        head: Vec<u8>,
        start: Vec<u8>,
        piece: Vec<u8>,
        times: usize,
        end: Vec<u8>,
    },
}

/// The head of a chunked answer with `status` and the given extra header lines.
pub fn chunked_head(status: u16, headers: &[&str]) -> Vec<u8> {
    let mut raw = format!("HTTP/1.1 {status} X\r\ntransfer-encoding: chunked\r\n");
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw.into_bytes()
}

/// A response with `status`, the given extra header lines and `body`.
pub fn response(status: u16, headers: &[&str], body: &[u8]) -> Action {
    Action::Raw(response_bytes(status, headers, body))
}

/// The bytes of [`response`].
pub fn response_bytes(status: u16, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for header in headers {
        raw.push_str(header);
        raw.push_str("\r\n");
    }
    raw.push_str("connection: close\r\n\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// The running server; dropping it stops it.
pub struct FaultServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FaultServer {
    /// Starts serving on a free loopback port; `HEAD` of a bucket is answered as
    /// kvplug-server would.
    pub fn start(responder: impl Fn(&Request) -> Action + Send + Sync + 'static) -> FaultServer {
        FaultServer::start_answering_all(move |request| {
            if request.method == "HEAD" && !request.path.contains("/keys/") {
                Action::Raw(
                    b"HTTP/1.1 204 No Content\r\nkvplug-protocol: 1\r\nconnection: close\r\n\r\n"
                        .to_vec(),
                )
            } else {
                responder(request)
            }
        })
    }

    /// Starts serving on a free loopback port, with `responder` answering every request.
    pub fn start_answering_all(
        responder: impl Fn(&Request) -> Action + Send + Sync + 'static,
    ) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let responder = Arc::new(responder);
        std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let responder = Arc::clone(&responder);
                        let stopping = Arc::clone(&stopping);
                        std::thread::spawn(move || serve(stream, &*responder, &stopping));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultServer { addr, stop }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn serve(mut stream: TcpStream, responder: &dyn Fn(&Request) -> Action, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let Some(request) = read_request(&stream) else {
        return;
    };
    match responder(&request) {
        Action::Raw(bytes) => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
        }
        Action::Silent { head } => {
            let _ = stream.write_all(&head);
            let _ = stream.flush();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Action::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Action::Trickle { head, body, gap } => {
            let _ = stream.write_all(&head);
            for byte in body {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[byte]).is_err() {
                    return;
                }
                let _ = stream.flush();
                std::thread::sleep(gap);
            }
        }
        Action::Repeat {
            head,
            start,
            piece,
            times,
            end,
        } => {
            let chunk = |stream: &mut TcpStream, data: &[u8]| {
                let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
                framed.extend_from_slice(data);
                framed.extend_from_slice(b"\r\n");
                stream.write_all(&framed).is_ok()
            };
            // About 64 KiB per chunk however small the piece.
            let per_chunk = ((64 << 10) / piece.len().max(1)).max(1);
            let block = piece.repeat(per_chunk);
            let _ = stream.write_all(&head);
            if !start.is_empty() && !chunk(&mut stream, &start) {
                return;
            }
            let mut left = times;
            while left > 0 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let n = left.min(per_chunk);
                let data = block.get(..n * piece.len()).unwrap_or(&block);
                if !chunk(&mut stream, data) {
                    return;
                }
                left -= n;
            }
            if !end.is_empty() && !chunk(&mut stream, &end) {
                return;
            }
            let _ = stream.write_all(b"0\r\n\r\n");
            let _ = stream.flush();
        }
        Action::Endless { head } => {
            let _ = stream.write_all(&head);
            let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
            chunk.extend(std::iter::repeat_n(b'0', 64 << 10));
            chunk.extend_from_slice(b"\r\n");
            while !stop.load(Ordering::SeqCst) {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
    }
}

/// `request` passed on to the real service at `upstream` (`http://host:port`), its whole
/// answer returned as it came: for a fault server that stands in front of a real service and
/// misbehaves on some requests only. `Authorization` is dropped unless it is an AWS
/// signature (the service checks those): a test's bearer token or password, which the
/// service behind was not configured with, only has to reach this server.
pub fn forward(upstream: &str, request: &Request) -> Action {
    let addr = upstream.trim_start_matches("http://").trim_end_matches('/');
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {upstream}: {e}"));
    // A service that ignores `connection: close` or streams must not hold the test up: its
    // answer is cut at a pause of 30 s, which the client then reports.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut raw = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in &request.headers {
        let dropped = name == "connection"
            || (name == "authorization" && !value.starts_with("AWS4-HMAC-SHA256"));
        if !dropped {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    raw.push_str("connection: close\r\n\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(&request.body);
    stream
        .write_all(&raw)
        .unwrap_or_else(|e| panic!("forward to {upstream}: {e}"));
    let mut answer = Vec::new();
    // A broken answer reaches the client as it is, which is what the client must handle.
    let _ = stream.read_to_end(&mut answer);
    Action::Raw(answer)
}
