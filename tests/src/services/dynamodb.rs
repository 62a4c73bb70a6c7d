//! The DynamoDB emulators the `dynamodb` backend is tested against, both on loopback with
//! the table `kvplug` created: dynalite (Node, LevelDB in memory) and moto's server (Python).
//!
//! dynalite needs a signature to be present but does not check it. moto checks it: it is
//! set up like an AWS account, with an IAM user whose access key the adapter signs with,
//! and then told to authenticate every request (it recomputes each signature with
//! botocore). So every test on moto also checks the adapter's SigV4 signing for real.

use std::process::{Command, Stdio};
use std::time::Duration;

use kvplug_runner::Settings;

use super::{
    BackendTests, Fewest, NameLimits, OversizedBatch, Secrets, Service, TestService, ValueLimit,
    log_file, longer, node_tool, venv_tool, wide,
};
use crate::fault_server::{Action, response};
use crate::process::{Running, free_port, try_http_with};

/// The header by which the adapter recognises a DynamoDB answer, as the fault server sends it.
pub const MARK: &str = "x-amzn-requestid: fault-server";

/// What the tests expect of `kvplug-dynamodb.wasm`.
pub struct Backend;

impl BackendTests for Backend {
    const NAME: &'static str = "dynamodb";
    // A 400 KB item holds the value and the other attributes. moto counts sizes a
    // little differently and refuses from 404,993 value bytes.
    const VALUE_LIMIT: Option<ValueLimit> = Some(ValueLimit {
        stored: 400_000,
        refused: 400 * 1024 + 1,
    });
    // Buckets are partitions of one table; `UpdateItem ADD` adds. BatchGetItem takes 100
    // keys, BatchWriteItem 25 items.
    const FEWEST: Fewest = Fewest {
        open: 0,
        increment: 1,
        increment_new: 1,
        batch_read: 100,
        batch_write: 25,
        batch_delete: 25,
    };
    const MARK: Option<&'static str> = Some(MARK);
    const SIGNS: bool = true;
    const TAKES_TOKEN: bool = false;
    const TAKES_PREFIX: bool = true;
    const EXACT_PAGES: bool = true;
    const CAS_COMPARES_VALUES: bool = false;

    fn name_limits() -> NameLimits {
        // The sort key (`/` + key) holds 1024 bytes; the partition key 2048, and percent
        // encoding makes each `é` of the bucket name six.
        NameLimits::new(
            longer(&wide(1022)),
            "1024 bytes",
            "é".repeat(341),
            Some(("é".repeat(342), "at most 2048 bytes")),
        )
    }

    fn fault_settings(url: &str, secrets: &Secrets) -> Settings {
        let mut s = crate::settings(url);
        s.push(("region".into(), "us-east-1".into()));
        s.push(("access-key-id".into(), "AKIDEXAMPLE".into()));
        s.push(("secret-access-key".into(), secrets.aws_secret.into()));
        if let Some(token) = secrets.session_token {
            s.push(("session-token".into(), token.into()));
        }
        s
    }

    fn configured_secrets(secrets: &Secrets) -> Vec<&'static str> {
        [Some(secrets.aws_secret), secrets.session_token]
            .into_iter()
            .flatten()
            .collect()
    }

    fn error_body(message: &str) -> String {
        // Escaped once more, as JSON would (the adapter unescapes it).
        let json_safe = message.replace('\\', "\\\\");
        format!(r#"{{"__type":"x#ValidationException","message":"{json_safe}"}}"#)
    }

    fn absent() -> Action {
        response(200, &["x-amzn-requestid: r"], b"{}")
    }

    fn requests() -> [&'static str; 11] {
        [
            "POST / (PutItem):",
            "POST / (GetItem):",
            "POST / (DeleteItem):",
            "POST / (GetItem):",
            "POST / (Query):",
            "POST / (UpdateItem):",
            "POST / (GetItem):",
            "POST / (PutItem):",
            "POST / (BatchGetItem):",
            "POST / (BatchWriteItem):",
            "POST / (BatchWriteItem):",
        ]
    }

    fn oversized_batch() -> OversizedBatch {
        OversizedBatch {
            service: Box::new(Dynalite::start()),
            size: 400 * 1024 + 1,
            limit: "at most 400 KB",
        }
    }
}

/// The `CreateTable` the README shows: partition key `b`, sort key `k`, both strings.
pub const CREATE_TABLE: &str = r#"{"TableName":"kvplug","AttributeDefinitions":[{"AttributeName":"b","AttributeType":"S"},{"AttributeName":"k","AttributeType":"S"}],"KeySchema":[{"AttributeName":"b","KeyType":"HASH"},{"AttributeName":"k","KeyType":"RANGE"}],"BillingMode":"PAY_PER_REQUEST"}"#;

/// [`CREATE_TABLE`] with a stream of new images, which the watch driver reads.
pub const CREATE_TABLE_WITH_STREAM: &str = r#"{"TableName":"kvplug","AttributeDefinitions":[{"AttributeName":"b","AttributeType":"S"},{"AttributeName":"k","AttributeType":"S"}],"KeySchema":[{"AttributeName":"b","KeyType":"HASH"},{"AttributeName":"k","KeyType":"RANGE"}],"BillingMode":"PAY_PER_REQUEST","StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_IMAGE"}}"#;

/// One DynamoDB call with a well-formed but unchecked signature; returns status and body.
pub fn call(port: u16, operation: &str, body: &str) -> (u16, String) {
    let target = format!("DynamoDB_20120810.{operation}");
    let headers = [
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amz-target", target.as_str()),
        ("x-amz-date", "20260101T000000Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=0",
        ),
    ];
    try_http_with(port, "POST", "/", &headers, body.as_bytes())
        .unwrap_or_else(|e| panic!("{operation} on port {port}: {e}"))
}

/// A running emulator, its port and the credentials it accepts.
struct Emulator {
    _process: Running,
    _dir: tempfile::TempDir,
    port: u16,
    access_key_id: String,
    secret_access_key: String,
}

impl Emulator {
    fn start(name: &str, create_table: &str, command: impl FnOnce(u16) -> Command) -> Emulator {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let mut command = command(port);
        command
            .stdout(log_file(dir.path(), &format!("{name}.log")))
            .stderr(Stdio::null());
        let mut process = Running::start(command);
        process.wait_for_port(port, Duration::from_secs(30));
        let (status, body) = call(port, "CreateTable", create_table);
        assert_eq!(status, 200, "{name}: CreateTable: {body}");
        Emulator {
            _process: process,
            _dir: dir,
            port,
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn settings_with_secret(&self, secret: &str) -> Settings {
        let mut settings = crate::settings(&self.url());
        for (name, value) in [
            ("region", "us-east-1"),
            ("table", "kvplug"),
            ("access-key-id", &self.access_key_id),
            ("secret-access-key", secret),
        ] {
            settings.push((name.to_owned(), value.to_owned()));
        }
        settings
    }

    fn settings(&self) -> Settings {
        self.settings_with_secret(&self.secret_access_key)
    }
}

/// One IAM query-protocol call to moto (before it authenticates); returns the body.
fn iam(port: u16, action: &str, parameters: &str) -> String {
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-amz-date", "20260101T000000Z"),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host;x-amz-date, Signature=0",
        ),
    ];
    let body = format!("Action={action}&Version=2010-05-08&{parameters}");
    let (status, body) = try_http_with(port, "POST", "/", &headers, body.as_bytes())
        .unwrap_or_else(|e| panic!("IAM {action} on moto: {e}"));
    assert_eq!(status, 200, "IAM {action} on moto: {body}");
    body
}

/// The text of the first `<tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    xml.split_once(&open)
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(text, _)| text)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
}

/// Makes moto check signatures after `count` more unsigned actions ("0": from now on).
fn reset_auth(port: u16, count: &str) {
    let (status, body) = try_http_with(
        port,
        "POST",
        "/moto-api/reset-auth",
        &[("content-type", "text/plain")],
        count.as_bytes(),
    )
    .expect("moto reset-auth");
    assert_eq!(status, 200, "moto reset-auth: {body}");
}

/// dynalite 4.0.0, in memory.
pub struct Dynalite(Emulator);

impl Dynalite {
    pub fn start() -> Dynalite {
        Dynalite(Emulator::start("dynalite", CREATE_TABLE, |port| {
            let mut command = Command::new(node_tool("dynalite"));
            command.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
            // Tables become ACTIVE at once rather than after the default 500 ms.
            command.args([
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ]);
            command
        }))
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }
}

impl Service for Dynalite {
    fn backend(&self) -> &'static str {
        <Backend as BackendTests>::NAME
    }
    fn settings(&self) -> Settings {
        self.0.settings()
    }
}

/// moto's server as `moto_server` runs it, on one thread unless the last argument is
/// `threaded`: moto's tables take no locks, so on threads two concurrent `UpdateItem ADD`s
/// can both read the old number and one increment is lost (seen here: 4 × 25 increments
/// summing to less than 100). DynamoDB applies each write atomically; one thread gives moto
/// that property. The threaded server is kept for the test that shows what kvplug still
/// promises over a service that loses writes.
const MOTO_SERVER: &str = "
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app),
           threaded=sys.argv[3] == 'threaded', request_handler=MotoRequestHandler)
";

/// moto 5.2.5's server, in memory.
pub struct Moto(Emulator);

impl Moto {
    /// Starts moto, creates an IAM user allowed `dynamodb:*` with an access key, then turns
    /// authentication on: from here, a request with a wrong signature is refused.
    pub fn start() -> Moto {
        Moto::start_on("one-thread", CREATE_TABLE)
    }

    /// Like [`Moto::start`], with a stream on the table (`NEW_IMAGE`), for the watch driver.
    pub fn start_with_stream() -> Moto {
        Moto::start_on("one-thread", CREATE_TABLE_WITH_STREAM)
    }

    /// Like [`Moto::start`], but serving each request on a thread of its own, as
    /// `moto_server` does by default: concurrent writes to one item can be lost there.
    pub fn start_threaded() -> Moto {
        Moto::start_on("threaded", CREATE_TABLE)
    }

    fn start_on(threads: &str, create_table: &str) -> Moto {
        let mut emulator = Emulator::start("moto", create_table, |port| {
            let mut command = Command::new(venv_tool("python"));
            command.args(["-c", MOTO_SERVER, "127.0.0.1", &port.to_string(), threads]);
            command
        });
        let port = emulator.port;
        iam(port, "CreateUser", "UserName=kvplug");
        let key = iam(port, "CreateAccessKey", "UserName=kvplug");
        emulator.access_key_id = xml_text(&key, "AccessKeyId").to_owned();
        emulator.secret_access_key = xml_text(&key, "SecretAccessKey").to_owned();
        // {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:*","Resource":"*"}]}
        let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22dynamodb%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%5D%7D";
        iam(
            port,
            "PutUserPolicy",
            &format!("UserName=kvplug&PolicyName=kvplug&PolicyDocument={policy}"),
        );
        reset_auth(port, "0");
        Moto(emulator)
    }

    /// What restoring the table from a backup does to its stream: the table is deleted and
    /// created again with every item it held, and so with a new stream (a new label, its
    /// records only the restored items). Authentication is off meanwhile, so the calls need no
    /// signature; nothing else may call moto then.
    pub fn recreate_table_keeping_items(&self) {
        let port = self.0.port;
        reset_auth(port, "1e9");
        let (status, body) = call(port, "Scan", r#"{"TableName":"kvplug"}"#);
        assert_eq!(status, 200, "Scan: {body}");
        let scan: serde_json::Value = serde_json::from_str(&body).expect("Scan's JSON");
        assert!(scan.get("LastEvaluatedKey").is_none(), "more than one page");
        let items = scan["Items"].as_array().expect("Scan's Items").clone();
        let (status, body) = call(port, "DeleteTable", r#"{"TableName":"kvplug"}"#);
        assert_eq!(status, 200, "DeleteTable: {body}");
        let (status, body) = call(port, "CreateTable", CREATE_TABLE_WITH_STREAM);
        assert_eq!(status, 200, "CreateTable: {body}");
        for item in items {
            let put = serde_json::json!({"TableName": "kvplug", "Item": item}).to_string();
            let (status, body) = call(port, "PutItem", &put);
            assert_eq!(status, 200, "PutItem: {body}");
        }
        reset_auth(port, "0");
    }

    /// The settings with the right access key id and a wrong secret.
    pub fn settings_with_secret(&self, secret: &str) -> Settings {
        self.0.settings_with_secret(secret)
    }

    pub fn port(&self) -> u16 {
        self.0.port
    }
}

impl Service for Moto {
    fn backend(&self) -> &'static str {
        <Backend as BackendTests>::NAME
    }
    fn settings(&self) -> Settings {
        self.0.settings()
    }
}

impl TestService for Dynalite {
    type Backend = Backend;
    const NAME: &'static str = "dynalite";
    const IMPLEMENTATION: &'static str = "kvplug-dynamodb.wasm + dynalite 4.0.0";
    const LABEL: &'static str = "kvplug-dynamodb (dynalite)";
    fn start_default() -> Dynalite {
        Dynalite::start()
    }
}

impl TestService for Moto {
    type Backend = Backend;
    const NAME: &'static str = "moto";
    const IMPLEMENTATION: &'static str = "kvplug-dynamodb.wasm + moto 5.2.5 (server)";
    const LABEL: &'static str = "kvplug-dynamodb (moto)";
    fn start_default() -> Moto {
        Moto::start()
    }
}
