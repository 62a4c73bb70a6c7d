//! Faults and bad input on the cloud backends (`dynamodb`, `azure-table`): wrong
//! credentials against services that really check signatures (moto, Azurite), a missing
//! table, keys beyond the services' limits, and, from the fault server, the throttling and
//! echoed secrets a local emulator will not produce. Every one is a `wasi:keyvalue` error,
//! never a trap, and never a secret.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::fault_server::{Action, FaultServer, response};
use kvplug_tests::services::{self, Azurite, Dynalite, Moto, Secrets, Service};
use kvplug_tests::{Kv, KvError, adapter, other_message};

/// A valid-looking base64 account key that is not Azurite's.
const OTHER_ACCOUNT_KEY: &str =
    "c2VjcmV0LWtleS10aGF0LWlzLW5vdC1henVyaXRlcy1vd24tYW5kLWxvbmctZW5vdWdoLTY0Ynl0ZXM=";

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_aws_secret_is_access_denied_by_a_service_that_checks_signatures() {
    // moto recomputes every signature (botocore) for its IAM user's key.
    let moto = Moto::start();
    let mut kv = Kv::connect(&moto).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "k", b"kept").await.unwrap();

    let mut wrong = Kv::with_adapter(
        adapter("dynamodb"),
        moto.settings_with_secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    )
    .await;
    let wb = wrong.open("b").await.unwrap();
    assert_eq!(wrong.get(wb, "k").await, Err(KvError::AccessDenied));
    assert_eq!(
        wrong.set(wb, "k", b"lost").await,
        Err(KvError::AccessDenied)
    );
    assert_eq!(
        wrong.increment(wb, "n", 1).await,
        Err(KvError::AccessDenied)
    );
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"kept".to_vec())));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_azure_key_is_access_denied_by_azurite() {
    let azurite = Azurite::start();
    let mut kv = Kv::connect(&azurite).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "k", b"kept").await.unwrap();

    let mut wrong = Kv::with_adapter(
        adapter("azure-table"),
        azurite.settings_with_key(OTHER_ACCOUNT_KEY),
    )
    .await;
    let wb = wrong.open("b").await.unwrap();
    assert_eq!(wrong.get(wb, "k").await, Err(KvError::AccessDenied));
    assert_eq!(
        wrong.set(wb, "k", b"lost").await,
        Err(KvError::AccessDenied)
    );
    assert_eq!(
        wrong.set_many(wb, &[("k", b"lost")]).await,
        Err(KvError::AccessDenied)
    );
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"kept".to_vec())));
}

/// Settings of `service` with `table` in place of its own.
fn with_table(service: &dyn Service, table: &str) -> kvplug_runner::Settings {
    let mut s = service.settings();
    s.retain(|(name, _)| name != "table");
    s.push(("table".into(), table.into()));
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_is_no_such_store() {
    let services: [Box<dyn Service>; 3] = [
        Box::new(Dynalite::start()),
        Box::new(Moto::start()),
        Box::new(Azurite::start()),
    ];
    for service in &services {
        let backend = service.backend();
        let mut kv = Kv::with_adapter(adapter(backend), with_table(&**service, "absent")).await;
        // Buckets are partitions: opening sends nothing, the first call finds the table.
        let b = kv.open("b").await.unwrap();
        assert_eq!(kv.get(b, "k").await, Err(KvError::NoSuchStore), "{backend}");
        assert_eq!(
            kv.set(b, "k", b"v").await,
            Err(KvError::NoSuchStore),
            "{backend}"
        );
        assert_eq!(
            kv.list_keys(b, None).await.map(drop),
            Err(KvError::NoSuchStore),
            "{backend}"
        );
        assert_eq!(
            kv.get_many(b, &["a", "b"]).await.map(drop),
            Err(KvError::NoSuchStore),
            "{backend}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_beyond_the_services_limits_are_refused_before_sending() {
    let dynalite = Dynalite::start();
    let azurite = Azurite::start();
    for (service, longest, message) in [
        (&dynalite as &dyn Service, 1023, "1024 bytes"),
        (&azurite as &dyn Service, 512, "1 KiB"),
    ] {
        let backend = service.backend();
        let mut settings = service.settings();
        let proxy = CountingProxy::in_front_of(&mut settings);
        let mut kv = Kv::with_adapter(adapter(backend), settings).await;
        let b = kv.open("b").await.unwrap();
        // The longest key stores; one more byte is refused with the limit named.
        let key = "k".repeat(longest);
        kv.set(b, &key, b"v").await.unwrap();
        assert_eq!(kv.get(b, &key).await, Ok(Some(b"v".to_vec())), "{backend}");
        let before = proxy.requests();
        let too_long = "k".repeat(longest + 1);
        for result in [
            kv.set(b, &too_long, b"v").await,
            kv.get(b, &too_long).await.map(drop),
            kv.set_many(b, &[("ok", b"v"), (too_long.as_str(), b"v")])
                .await,
        ] {
            let error = other_message(result.unwrap_err());
            assert!(error.contains(message), "{backend}: {error}");
        }
        assert_eq!(
            proxy.requests(),
            before,
            "{backend}: a refused key was sent"
        );
        assert_eq!(
            kv.get(b, "ok").await,
            Ok(None),
            "{backend}: half a batch was written"
        );
    }
}

/// The header by which the adapters recognise DynamoDB's answers.
const AWS: &str = "x-amzn-requestid: fault-server";
/// The header by which the adapters recognise the Table service's answers.
const AZURE: &str = "x-ms-request-id: fault-server";

/// The body of a DynamoDB error answer.
fn dynamodb_error(kind: &str, message: &str) -> Vec<u8> {
    format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#)
        .into_bytes()
}

/// A fault server that answers the first `failures` requests with `failure`, then `ok`;
/// and the number of requests it saw.
fn flaky(
    failures: usize,
    failure: impl Fn() -> Action + Send + Sync + 'static,
    ok: impl Fn() -> Action + Send + Sync + 'static,
) -> (FaultServer, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let server = FaultServer::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < failures {
            failure()
        } else {
            ok()
        }
    });
    (server, seen)
}

const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FQoGZXIvYXdzEBYaDkiOGi-session-token";

/// The credentials of the fault-server tests below.
const SECRETS: Secrets = Secrets {
    token: None,
    aws_secret: AWS_SECRET,
    session_token: Some(SESSION_TOKEN),
    account_key: OTHER_ACCOUNT_KEY,
};

fn cloud_settings(backend: &str, url: &str) -> kvplug_runner::Settings {
    (services::expectations(backend).fault_settings)(url, &SECRETS)
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_with_backoff_then_given_up_with_a_clear_error() {
    let throttled = || {
        response(
            400,
            &[AWS],
            &dynamodb_error("ThrottlingException", "Rate exceeded"),
        )
    };
    let item = || {
        response(
            200,
            &[AWS],
            br#"{"Item":{"v":{"B":"aGk="},"ver":{"S":"t"}}}"#,
        )
    };
    // DynamoDB: three refusals, then the answer.
    let (server, seen) = flaky(3, throttled, item);
    let mut kv = Kv::with_adapter(
        adapter("dynamodb"),
        cloud_settings("dynamodb", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"hi".to_vec())));
    assert_eq!(seen.load(Ordering::SeqCst), 4);
    // A throttled increment was refused, so it is retried too.
    let (server, seen) = flaky(2, throttled, || {
        response(200, &[AWS], br#"{"Attributes":{"n":{"N":"5"}}}"#)
    });
    let mut kv = Kv::with_adapter(
        adapter("dynamodb"),
        cloud_settings("dynamodb", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    assert_eq!(kv.increment(b, "n", 5).await, Ok(5));
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    // Throttled for good: a bounded number of tries, then an error naming it.
    let (server, seen) = flaky(usize::MAX, throttled, item);
    let mut kv = Kv::with_adapter(
        adapter("dynamodb"),
        cloud_settings("dynamodb", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    let started = std::time::Instant::now();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("POST /")
            && message.contains("GetItem")
            && message.contains("HTTP 400")
            && message.contains("ThrottlingException")
            && message.contains("retries"),
        "{message}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 7, "one try and six retries");
    // Backoff, not a busy loop (25 ms doubling, at least half of each wait).
    assert!(started.elapsed() >= std::time::Duration::from_millis(700));

    // Azure: 503 ServerBusy twice, then the entity.
    let busy = || {
        response(
            503,
            &["content-type: application/json", AZURE],
            br#"{"odata.error":{"code":"ServerBusy","message":{"value":"The server is busy."}}}"#,
        )
    };
    let entity = || response(200, &["etag: W/\"1\"", AZURE], br#"{"v0":"aGk="}"#);
    let (server, seen) = flaky(2, busy, entity);
    let mut kv = Kv::with_adapter(
        adapter("azure-table"),
        cloud_settings("azure-table", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"hi".to_vec())));
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    let (server, _) = flaky(usize::MAX, busy, entity);
    let mut kv = Kv::with_adapter(
        adapter("azure-table"),
        cloud_settings("azure-table", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("GET /kvplug(")
            && message.contains("503")
            && message.contains("ServerBusy"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_outcome_is_unknown_is_not_repeated() {
    // A 500 may come after the write was applied: a conditional write or an increment
    // sent again could apply twice, so it is reported instead.
    let (server, seen) = flaky(
        usize::MAX,
        || {
            response(
                500,
                &[AWS],
                &dynamodb_error("InternalServerError", "Internal error"),
            )
        },
        || Action::Hang,
    );
    let mut kv = Kv::with_adapter(
        adapter("dynamodb"),
        cloud_settings("dynamodb", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.increment(b, "n", 1).await.unwrap_err());
    assert!(
        message.contains("HTTP 500") && message.contains("UpdateItem"),
        "{message}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn echoed_cloud_credentials_are_redacted() {
    // A server that quotes the request's credentials back in its error, and the secrets
    // themselves as a misconfigured proxy might.
    let fault = FaultServer::start(|request| {
        let echoed = format!(
            "denied: {AWS_SECRET} {OTHER_ACCOUNT_KEY} {} {}",
            request.header("x-amz-security-token"),
            request.header("authorization"),
        );
        // Both services' marks: each adapter takes it for its own service's answer.
        response(
            400,
            &[AWS, AZURE],
            &dynamodb_error("ValidationException", &echoed),
        )
    });
    // The backends that sign their requests, each with the secrets it signs with.
    for expected in services::backends().iter().filter(|b| b.signs) {
        let (backend, secrets) = (expected.name, (expected.configured_secrets)(&SECRETS));
        let mut kv =
            Kv::with_adapter(adapter(backend), cloud_settings(backend, &fault.url())).await;
        let b = kv.open("b").await.unwrap();
        let message = other_message(kv.get(b, "k").await.unwrap_err());
        assert!(
            message.contains("HTTP 400") && message.contains("<redacted>"),
            "{backend}: {message}"
        );
        for secret in secrets {
            assert!(!message.contains(secret), "{backend}: {message}");
        }
    }
}

/// A DynamoDB item of kvplug's shape: key `key`, value `value` (base64 `value_b64`).
fn dynamodb_item(key: &str, value_b64: &str) -> String {
    format!(
        r#"{{"b":{{"S":"x"}},"k":{{"S":"/{key}"}},"v":{{"B":"{value_b64}"}},"ver":{{"S":"t"}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_resends_what_a_batch_left_unprocessed_and_gives_up_when_nothing_moves() {
    // get-many: the first answer leaves `b` unprocessed; the resend asks for `b` alone.
    let asked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&asked);
    let server = FaultServer::start(move |request| {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let first = log.lock().unwrap().is_empty();
        log.lock().unwrap().push(body);
        let answer = if first {
            format!(
                r#"{{"Responses":{{"t":[{}]}},"UnprocessedKeys":{{"t":{{"Keys":[{{"b":{{"S":"x"}},"k":{{"S":"/b"}}}}]}}}}}}"#,
                dynamodb_item("a", "YQ==")
            )
        } else {
            format!(
                r#"{{"Responses":{{"t":[{}]}},"UnprocessedKeys":{{}}}}"#,
                dynamodb_item("b", "Yg==")
            )
        };
        response(200, &[AWS], answer.as_bytes())
    });
    let mut kv = Kv::with_adapter(
        adapter("dynamodb"),
        cloud_settings("dynamodb", &server.url()),
    )
    .await;
    let bucket = kv.open("x").await.unwrap();
    assert_eq!(
        kv.get_many(bucket, &["a", "b"]).await,
        Ok(vec![
            Some(("a".to_owned(), b"a".to_vec())),
            Some(("b".to_owned(), b"b".to_vec()))
        ])
    );
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked[0].contains(r#""/a""#) && asked[0].contains(r#""/b""#));
    assert!(
        !asked[1].contains(r#""/a""#) && asked[1].contains(r#""/b""#),
        "only the unprocessed key is resent: {}",
        asked[1]
    );

    // set-many: `b`'s put is left unprocessed once, then done.
    let asked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&asked);
    let server = FaultServer::start(move |request| {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let first = log.lock().unwrap().is_empty();
        log.lock().unwrap().push(body);
        let answer = if first {
            format!(
                r#"{{"UnprocessedItems":{{"t":[{{"PutRequest":{{"Item":{}}}}}]}}}}"#,
                dynamodb_item("b", "Yg==")
            )
        } else {
            String::from(r#"{"UnprocessedItems":{}}"#)
        };
        response(200, &[AWS], answer.as_bytes())
    });
    let mut kv = Kv::with_adapter(
        adapter("dynamodb"),
        cloud_settings("dynamodb", &server.url()),
    )
    .await;
    let bucket = kv.open("x").await.unwrap();
    assert_eq!(
        kv.set_many(bucket, &[("a", b"a"), ("b", b"b")]).await,
        Ok(())
    );
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(!asked[1].contains(r#""/a""#) && asked[1].contains(r#""/b""#));

    // Nothing ever processed: a bounded number of rounds, then an error saying so.
    let (server, seen) = flaky(
        usize::MAX,
        || {
            response(
                200,
                &[AWS],
                br#"{"UnprocessedItems":{"t":[{"DeleteRequest":{"Key":{"b":{"S":"x"},"k":{"S":"/a"}}}}]}}"#,
            )
        },
        || Action::Hang,
    );
    let mut kv = Kv::with_adapter(
        adapter("dynamodb"),
        cloud_settings("dynamodb", &server.url()),
    )
    .await;
    let bucket = kv.open("x").await.unwrap();
    let message = other_message(kv.delete_many(bucket, &["a"]).await.unwrap_err());
    assert!(
        message.contains("POST /") && message.contains("unprocessed 8 times in a row"),
        "{message}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        8,
        "eight rounds, as the README says"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_operation_timed_out_is_retried_for_reads_but_not_for_conditional_writes() {
    let timed_out = || {
        response(
            500,
            &["content-type: application/json", AZURE],
            br#"{"odata.error":{"code":"OperationTimedOut","message":{"value":"Operation could not be completed within the specified time."}}}"#,
        )
    };
    let entity = || response(200, &["etag: W/\"1\"", AZURE], br#"{"v0":"aGk="}"#);
    let (server, seen) = flaky(2, timed_out, entity);
    let mut kv = Kv::with_adapter(
        adapter("azure-table"),
        cloud_settings("azure-table", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"hi".to_vec())));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "two retries, then the entity"
    );

    // An increment's conditional write that timed out may have been applied: reported,
    // never sent again. (Its first request, the read, is answered.)
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let server = FaultServer::start(move |request| {
        counter.fetch_add(1, Ordering::SeqCst);
        if request.method == "GET" {
            response(200, &["etag: W/\"1\"", AZURE], br#"{"v0":"MQ=="}"#)
        } else {
            timed_out()
        }
    });
    let mut kv = Kv::with_adapter(
        adapter("azure-table"),
        cloud_settings("azure-table", &server.url()),
    )
    .await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.increment(b, "n", 1).await.unwrap_err());
    assert!(
        message.contains("PUT /")
            && message.contains("500")
            && message.contains("OperationTimedOut"),
        "{message}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "one read, one write, no repeat"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_delete_many_with_several_absent_rows_deletes_the_rest() {
    // Azurite, like the service, fails a whole change set on the first delete that finds no
    // row; the adapter drops each absent row it names and sends the rest again.
    let azurite = Azurite::start();
    let mut settings = azurite.settings();
    let proxy = CountingProxy::in_front_of(&mut settings);
    let mut kv = Kv::with_adapter(adapter("azure-table"), settings).await;
    let b = kv.open("b").await.unwrap();
    kv.set_many(b, &[("a", b"1"), ("c", b"3"), ("e", b"5")])
        .await
        .unwrap();
    let before = proxy.requests();
    assert_eq!(
        kv.delete_many(b, &["x", "a", "y", "c", "z", "e"]).await,
        Ok(())
    );
    let sent = proxy.requests() - before;
    for key in ["a", "c", "e", "x"] {
        assert_eq!(kv.exists(b, key).await, Ok(false), "{key}");
    }
    // One change set, then one more for each absent row it names.
    assert_eq!(sent, 4, "one batch, three resends");
    // A batch of only absent rows is done too.
    assert_eq!(kv.delete_many(b, &["p", "q"]).await, Ok(()));
}
