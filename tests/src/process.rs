//! Running other programs in tests: the wasmtime CLI, node, jco. Each is started on
//! loopback only, and killed with its whole process group when the guard drops.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process (and everything it started), killed on drop.
pub struct Running {
    child: Child,
}

impl Running {
    /// Starts `command` in a process group of its own.
    pub fn start(mut command: Command) -> Running {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"));
        Running { child }
    }

    /// Waits until `port` on loopback accepts connections; fails the test after `limit`.
    pub fn wait_for_port(&mut self, port: u16, limit: Duration) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited before listening: {status}");
            }
            assert!(
                started.elapsed() < limit,
                "nothing listened on port {port} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The negative pid addresses the whole group (jco serve runs workers).
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    try_http(port, method, path, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// Like [`http`], with failures returned rather than failing the test (for polling).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    try_http_with(port, method, path, &[], body)
}

/// Like [`try_http`], with further request headers.
pub fn try_http_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    exchange(port, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// An HTTP answer: the status, each header (name in lower case, value), the body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// One request with `headers`; returns the status, the value of each response header
/// (names in lower case) and the body.
pub fn http_with_headers(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    exchange(port, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let incomplete = || std::io::Error::other("not a complete HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(incomplete)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(incomplete)?;
    // Chunked bodies (jco serve) arrive framed; these tests send small bodies, one chunk.
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        body.split("\r\n")
            .skip(1)
            .step_by(2)
            .collect::<Vec<_>>()
            .concat()
    } else {
        body.to_owned()
    };
    let fields = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok((status, fields, body))
}

/// Runs `command` to completion, failing the test with its output if it cannot start.
pub fn output(mut command: Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("failed to run {command:?}: {e}"))
}

/// `tests/js`, where jco and the WASI shims are installed (`npm ci`).
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// The jco command.
pub fn jco() -> Command {
    let jco = js_dir().join("node_modules/.bin/jco");
    assert!(
        jco.exists(),
        "jco is not installed: run `npm ci` in tests/js (scripts/test does)"
    );
    Command::new(jco)
}

/// `jco transpile` of the command `component` into `dir/gen`, and `dir/run.mjs`, which runs
/// it: returns the script's path, for `node`. `dir` is a [`JsOut`], where the shims resolve.
pub fn transpile_command(component: &Path, dir: &Path) -> PathBuf {
    let mut command = jco();
    command
        .arg("transpile")
        .arg(component)
        .arg("-o")
        .arg(dir.join("gen"))
        .arg("--quiet");
    let out = output(command);
    assert!(
        out.status.success(),
        "jco transpile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stem = component
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let script = dir.join("run.mjs");
    std::fs::write(
        &script,
        format!("import {{ run }} from './gen/{stem}.js';\nrun.run();\n"),
    )
    .unwrap();
    script
}

/// A fresh directory under `tests/js/out`, inside the npm package so that transpiled code
/// resolves `@bytecodealliance/preview2-shim`; removed when dropped.
pub struct JsOut {
    path: PathBuf,
}

impl JsOut {
    pub fn new(name: &str) -> JsOut {
        let path = js_dir()
            .join("out")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        JsOut { path }
    }
}

impl std::ops::Deref for JsOut {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for JsOut {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
