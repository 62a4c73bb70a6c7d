//! What only the older draft (`wasi:keyvalue@0.2.0-draft`) needs from the same artifact:
//! numeric cursors that page through any number of keys with bounded memory, and an
//! unsigned increment sharing draft2's stored encoding.

use kvplug_tests::draft::KeyvalueProviderDraft;
use kvplug_tests::draft::exports::wasi::keyvalue0_2_0_draft::store::Error as DraftError;
use kvplug_tests::{Kv, http_adapter, reference_server, runtime, settings};

#[tokio::test(flavor = "multi_thread")]
async fn numeric_cursors_page_through_many_keys_and_expire_clearly() {
    let (_dir, server) = reference_server();
    let mut s = settings(&server.url());
    s.push(("page-size".into(), "10".into()));
    // Fill the bucket through draft2 (batches of 1000), then list it through draft.
    let mut kv2 = Kv::new(s.clone()).await;
    let b2 = kv2.open("big").await.unwrap();
    let keys: Vec<String> = (0..2000).map(|i| format!("key-{i:05}")).collect();
    let pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b""[..])).collect();
    kv2.set_many(b2, &pairs).await.unwrap();

    let mut store = runtime().store(&s, &[]);
    let kv =
        KeyvalueProviderDraft::instantiate_async(&mut store, http_adapter(), runtime().linker())
            .await
            .unwrap();
    let api = kv.wasi_keyvalue0_2_0_draft_store();
    let bucket = api.call_open(&mut store, "big").await.unwrap().unwrap();
    let mut listed = Vec::new();
    let mut cursor = None;
    let mut cursors = Vec::new();
    loop {
        let page = api
            .bucket()
            .call_list_keys(&mut store, bucket, cursor)
            .await
            .unwrap()
            .unwrap();
        listed.extend(page.keys);
        match page.cursor {
            Some(next) => {
                cursors.push(next);
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(cursors.len(), 199, "2000 keys in pages of 10");
    listed.sort();
    assert_eq!(listed, keys, "every key exactly once");

    // The adapter keeps only the newest cursors: an old one is a clear error, not a restart.
    let stale = api
        .bucket()
        .call_list_keys(&mut store, bucket, Some(cursors[0]))
        .await
        .unwrap();
    let Err(DraftError::Other(message)) = stale else {
        panic!("an expired cursor must be an error, got {stale:?}");
    };
    assert!(message.contains("unknown or expired"), "{message}");
    let recent = cursors[cursors.len() - 2];
    let page = api
        .bucket()
        .call_list_keys(&mut store, bucket, Some(recent))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.keys.first().map(String::as_str), Some("key-01980"));
}

#[tokio::test(flavor = "multi_thread")]
async fn both_drafts_share_one_counter_encoding() {
    let (_dir, server) = reference_server();
    let s = settings(&server.url());
    let mut kv2 = Kv::new(s.clone()).await;
    let b2 = kv2.open("counters").await.unwrap();
    assert_eq!(kv2.increment(b2, "n", 10).await, Ok(10));

    let mut store = runtime().store(&s, &[]);
    let kv =
        KeyvalueProviderDraft::instantiate_async(&mut store, http_adapter(), runtime().linker())
            .await
            .unwrap();
    let bucket = kv
        .wasi_keyvalue0_2_0_draft_store()
        .call_open(&mut store, "counters")
        .await
        .unwrap()
        .unwrap();
    let atomics = kv.wasi_keyvalue0_2_0_draft_atomics();
    assert_eq!(
        atomics
            .call_increment(&mut store, bucket, "n", 5)
            .await
            .unwrap(),
        Ok(15)
    );
    assert_eq!(kv2.increment(b2, "n", -20).await, Ok(-5));
    assert_eq!(kv2.get(b2, "n").await, Ok(Some(b"-5".to_vec())));

    // Draft's unsigned result cannot carry -5 + 1; the error says so and that it applied.
    let Err(DraftError::Other(message)) = atomics
        .call_increment(&mut store, bucket, "n", 1)
        .await
        .unwrap()
    else {
        panic!("a negative result must be an error in the unsigned draft");
    };
    assert!(
        message.contains("now holds -4") && message.contains("was applied"),
        "{message}"
    );
    // A delta beyond the signed range is refused before anything is sent.
    let before = server.requests();
    let Err(DraftError::Other(message)) = atomics
        .call_increment(&mut store, bucket, "m", u64::MAX)
        .await
        .unwrap()
    else {
        panic!("a delta above i64::MAX must be an error");
    };
    assert!(message.contains("above the stored range"), "{message}");
    assert_eq!(server.requests(), before);
}
