//! The same linked components, unmodified, on other runtimes: the wasmtime CLI (`run` and
//! `serve`) and jco on Node (`transpile` + node, and `serve`), each against a real
//! reference server on loopback.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kvplug_compose::{artifacts, plug, seal};
use kvplug_tests::process::{
    JsOut, Running, free_port, http, http_with_headers, jco, output, transpile_command,
};
use kvplug_tests::reference_server;

/// `app` plugged with `plugs` (in order: the first is plugged into the app, the rest into
/// the result), written to `dir`.
fn link(dir: &Path, name: &str, app: &Path, plugs: Vec<Vec<u8>>) -> PathBuf {
    kvplug_tests::artifacts();
    let mut bytes = std::fs::read(app).unwrap();
    for plug_bytes in plugs {
        bytes = plug::plug_bytes(bytes, vec![plug_bytes]).unwrap();
    }
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn adapter() -> Vec<u8> {
    kvplug_tests::artifacts();
    std::fs::read(artifacts::adapter_path("http")).unwrap()
}

fn sealed_adapter(url: &str) -> Vec<u8> {
    let config = std::fs::read(artifacts::config_path("kvplug-config-static")).unwrap();
    let request = seal::Request {
        settings: vec![("url".into(), url.into())],
        layered: false,
    };
    seal::seal(&adapter(), &config, &request).unwrap().adapter
}

/// The adapter with the env-config component plugged in: settings from `KVPLUG_*`.
fn env_configured_adapter() -> Vec<u8> {
    let env = std::fs::read(artifacts::config_path("kvplug-config-env")).unwrap();
    plug::plug_bytes(adapter(), vec![env]).unwrap()
}

fn wasmtime() -> Command {
    Command::new("wasmtime")
}

fn assert_guestbook(run: &std::process::Output, visit: u32) {
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("this is visit #{visit}")),
        "{stdout}"
    );
    assert!(stdout.contains("read in one batch"), "{stdout}");
}

#[test]
fn wasmtime_run_with_runtime_config_and_sealed() {
    let (_data, server) = reference_server();
    let dir = tempfile::tempdir().unwrap();
    let app = artifacts::fixture_path("example-app");

    let linked = link(dir.path(), "unsealed", &app, vec![adapter()]);
    let mut command = wasmtime();
    command
        .args(["run", "-S", "http", "-S", "config", "-S"])
        .arg(format!("config-var=url={}", server.url()))
        .arg(&linked);
    assert_guestbook(&output(command), 1);

    // Sealed: the runtime needs nothing but wasi:http.
    let linked = link(
        dir.path(),
        "sealed",
        &app,
        vec![sealed_adapter(&server.url())],
    );
    let mut command = wasmtime();
    command.args(["run", "-S", "http"]).arg(&linked);
    assert_guestbook(&output(command), 2);

    // Settings from the environment, through the env-config component.
    let linked = link(dir.path(), "env", &app, vec![env_configured_adapter()]);
    let mut command = wasmtime();
    command
        .args(["run", "-S", "http", "--env"])
        .arg(format!("KVPLUG_URL={}", server.url()))
        .arg(&linked);
    assert_guestbook(&output(command), 3);

    // An allow-list on the command line: `-S` splits at commas, so the list is spaced.
    let linked = link(dir.path(), "allow", &app, vec![adapter()]);
    let allowing = |list: &str| {
        let mut command = wasmtime();
        command
            .args(["run", "-S", "http", "-S", "config", "-S"])
            .arg(format!("config-var=url={}", server.url()))
            .arg("-S")
            .arg(format!("config-var=buckets={list}"))
            .arg(&linked);
        output(command)
    };
    assert_guestbook(&allowing("notes guestbook"), 4);
    let refused = allowing("notes other");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("access denied"), "{stderr}");
}

/// Exercises the notes service on `port`: the way a person would use it.
fn use_notes_service(port: u16) {
    assert_eq!(
        http(port, "PUT", "/notes/shopping", b"milk, eggs"),
        (204, String::new())
    );
    assert_eq!(
        http(port, "PUT", "/notes/ideas", b"write a blog post"),
        (204, String::new())
    );
    assert_eq!(
        http(port, "GET", "/notes/shopping", b""),
        (200, "milk, eggs".into())
    );
    let (status, list) = http(port, "GET", "/notes", b"");
    assert_eq!(status, 200);
    let mut names: Vec<&str> = list.lines().collect();
    names.sort();
    assert_eq!(names, ["ideas", "shopping"]);
    assert_eq!(http(port, "POST", "/visits", b""), (200, "1\n".into()));
    assert_eq!(http(port, "POST", "/visits", b""), (200, "2\n".into()));
    assert_eq!(
        http(port, "DELETE", "/notes/ideas", b""),
        (204, String::new())
    );
    assert_eq!(http(port, "GET", "/notes/ideas", b"").0, 404);
    use_sessions(port);
}

/// Sessions that expire (kvplug's extension through the app): a session lives for its
/// time-to-live, is replaced only at the generation last read, and is gone once it expires.
fn use_sessions(port: u16) {
    let (status, id) = http(port, "POST", "/sessions?ttl=2", b"ada");
    assert_eq!(status, 201, "{id}");
    let path = format!("/sessions/{}", id.trim());
    let (status, head, body) = http_with_headers(port, "GET", &path, &[], b"");
    assert_eq!((status, body.as_str()), (200, "ada"));
    let etag = head
        .iter()
        .find(|(name, _)| name == "etag")
        .map(|(_, value)| value.clone())
        .unwrap();
    // Renewed at the generation read: a new ETag, and a second write at the old one loses.
    let (status, head, _) = http_with_headers(
        port,
        "PUT",
        &format!("{path}?ttl=2"),
        &[("if-match", &etag)],
        b"ada, admin",
    );
    assert_eq!(status, 204);
    assert!(
        head.iter()
            .any(|(name, value)| name == "etag" && *value != etag),
        "{head:?}"
    );
    let (status, _, _) = http_with_headers(
        port,
        "PUT",
        &format!("{path}?ttl=2"),
        &[("if-match", &etag)],
        b"stale",
    );
    assert_eq!(status, 412);
    assert_eq!(http(port, "GET", &path, b""), (200, "ada, admin".into()));
    assert_eq!(http(port, "POST", "/sessions?ttl=0", b"x").0, 400);
    // Gone after its lifetime, and so is a session ended early.
    let (_, other) = http(port, "POST", "/sessions", b"grace");
    let other = format!("/sessions/{}", other.trim());
    assert_eq!(http(port, "DELETE", &other, b"").0, 204);
    assert_eq!(http(port, "DELETE", &other, b"").0, 404);
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(http(port, "GET", &path, b"").0, 404);
}

#[test]
fn wasmtime_serve_runs_the_http_app() {
    let (_data, server) = reference_server();
    let dir = tempfile::tempdir().unwrap();
    let linked = link(
        dir.path(),
        "http-app",
        &artifacts::fixture_path("http-app"),
        vec![adapter()],
    );
    let port = free_port();
    let mut command = wasmtime();
    command
        .args(["serve", "-S", "cli", "-S", "config", "-S"])
        .arg(format!("config-var=url={}", server.url()))
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg(&linked);
    let mut serving = Running::start(command);
    serving.wait_for_port(port, Duration::from_secs(60));
    use_notes_service(port);
}

#[test]
fn jco_on_node_runs_the_sealed_and_the_env_configured_app() {
    let (_data, server) = reference_server();
    let app = artifacts::fixture_path("example-app");

    let dir = JsOut::new("sealed");
    let linked = link(&dir, "app", &app, vec![sealed_adapter(&server.url())]);
    transpile_command(&linked, &dir);
    let mut node = Command::new("node");
    node.arg(dir.join("run.mjs"));
    assert_guestbook(&output(node), 1);

    let dir = JsOut::new("env");
    let linked = link(&dir, "app", &app, vec![env_configured_adapter()]);
    transpile_command(&linked, &dir);
    let mut node = Command::new("node");
    node.arg(dir.join("run.mjs"))
        .env("KVPLUG_URL", server.url());
    assert_guestbook(&output(node), 2);
}

#[test]
fn jco_serve_runs_the_http_app() {
    let (_data, server) = reference_server();
    let dir = JsOut::new("serve");
    let linked = link(
        &dir,
        "http-app",
        &artifacts::fixture_path("http-app"),
        vec![sealed_adapter(&server.url())],
    );
    let port = free_port();
    let mut command = jco();
    command
        .arg("serve")
        .arg("--host")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string())
        .arg("--jco-dir")
        .arg(dir.join("served"))
        .arg(&linked);
    let mut serving = Running::start(command);
    serving.wait_for_port(port, Duration::from_secs(60));
    use_notes_service(port);
}

/// The call's deadline holds on Node and the wasmtime CLI too, not only on embedded
/// wasmtime: a service that trickles its answer (one byte every 200 ms, after a valid
/// head) ends the app's first call at `timeout-ms` with an error, instead of hanging it.
#[test]
fn a_trickling_service_cannot_hang_the_app_on_jco_or_the_wasmtime_cli() {
    use kvplug_tests::fault_server::{Action, FaultServer};
    let fault = FaultServer::start(|_| Action::Trickle {
        head: b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nkvplug-protocol: 1\r\n\r\n".to_vec(),
        body: vec![b'7'; 1000],
        gap: Duration::from_millis(200),
    });
    cannot_hang_the_app(&fault, "trickle");
}

/// The same for a service that sends a valid head and then nothing: on jco a body `read`
/// blocks until a byte arrives, so only the host's between-bytes timeout, which the adapter
/// sets to what is left of the call, can end it.
#[test]
fn a_service_silent_after_its_headers_cannot_hang_the_app_on_jco_or_the_wasmtime_cli() {
    use kvplug_tests::fault_server::{Action, FaultServer};
    let fault = FaultServer::start(|_| Action::Silent {
        head: b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nkvplug-protocol: 1\r\n\r\n".to_vec(),
    });
    cannot_hang_the_app(&fault, "silent");
}

fn cannot_hang_the_app(fault: &kvplug_tests::fault_server::FaultServer, name: &str) {
    let app = artifacts::fixture_path("example-app");
    let dir = JsOut::new(name);
    let linked = link(&dir, "app", &app, vec![env_configured_adapter()]);
    let check = |run: std::process::Output, took: Duration, runtime: &str| {
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{runtime}: {stderr}");
        assert!(
            stderr.contains("timed out") && stderr.contains("`timeout-ms` = 1000 ms"),
            "{runtime}: {stderr}"
        );
        assert!(took < Duration::from_secs(8), "{runtime}: took {took:?}");
    };

    transpile_command(&linked, &dir);
    let mut node = Command::new("node");
    node.arg(dir.join("run.mjs"))
        .env("KVPLUG_URL", fault.url())
        .env("KVPLUG_TIMEOUT_MS", "1000");
    let started = std::time::Instant::now();
    let run = output(node);
    check(run, started.elapsed(), "jco");

    let mut cli = wasmtime();
    cli.args(["run", "-S", "http"])
        .arg("--env")
        .arg(format!("KVPLUG_URL={}", fault.url()))
        .args(["--env", "KVPLUG_TIMEOUT_MS=1000"])
        .arg(&linked);
    let started = std::time::Instant::now();
    let run = output(cli);
    check(run, started.elapsed(), "wasmtime run");
}

/// Why there is no adapter on `wasi:http@0.3.0` yet, pinned: on wasmtime 48 with its WASI 0.3
/// support on, the same P3 GET runs from an `async func` export but traps in a synchronous one,
/// and every `wasi:keyvalue` function is synchronous. If a wasmtime release lifts this, this
/// test fails, and the README's "WASI 0.3" paragraph needs revisiting.
#[test]
fn a_p3_http_call_runs_from_an_async_export_but_traps_in_a_synchronous_one() {
    let body = vec![7u8; 1 << 20];
    let fault = kvplug_tests::fault_server::FaultServer::start(move |_| {
        kvplug_tests::fault_server::response(200, &[], &body)
    });
    let probe = artifacts::fixture_path("p3-probe");
    let authority = fault.url().trim_start_matches("http://").to_owned();
    let invoke = |export: &str| {
        let mut command = wasmtime();
        command
            .args(["run", "-S", "p3", "-S", "http", "--invoke"])
            .arg(format!("{export}(\"{authority}\")"))
            .arg(&probe);
        output(command)
    };
    let run = invoke("fetch");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("ok(1048576)"),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run = invoke("fetch-blocking");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success()
            && stderr.contains("cannot block a synchronous task before returning"),
        "{stderr}"
    );
}
