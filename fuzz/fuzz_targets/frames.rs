//! `kvplug_protocol::frames::Reader`: the kvplug REST protocol's batch and list bodies, read by
//! the `http` backend from kvplug-server's answers (and by the server from requests).
//!
//! Input: one byte `k`, then `k % 16` operation bytes (each `% 3`: 0 a frame, 1 a key frame,
//! 2 an optional frame), then the body. The operations are applied in a cycle until the body
//! is read or a read fails. What was read, written back with `put`/`put_optional`, must be
//! exactly the part of the body read so far (all of it when the reader is empty).
//!
//! Budget: none at all (the reader borrows from the body; no read may allocate).
#![no_main]

use kvplug_fuzz::budget::Budget;
use kvplug_protocol::frames::{self, Reader};
use libfuzzer_sys::fuzz_target;

enum Read<'a> {
    Frame(&'a [u8]),
    Optional(Option<&'a [u8]>),
}

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let (ops, body) = rest.split_at(usize::from(count % 16).min(rest.len()));
    let mut ops: Vec<u8> = ops.iter().map(|op| op % 3).collect();
    if ops.is_empty() {
        ops.push(0);
    }
    let mut reads = Vec::with_capacity(body.len() + 1);
    let mut reader = Reader::new(body);
    let mut failed = false;
    for op in ops.iter().cycle() {
        if reader.is_empty() {
            break;
        }
        let read = Budget::NONE.run(body.len(), || match op {
            0 => reader.frame().map(Read::Frame),
            1 => reader.key().map(|key| Read::Frame(key.as_bytes())),
            _ => reader.optional().map(Read::Optional),
        });
        match read {
            Ok(read) => reads.push(read),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    let mut written = Vec::new();
    for read in &reads {
        match read {
            Read::Frame(frame) => frames::put(&mut written, frame),
            Read::Optional(frame) => frames::put_optional(&mut written, *frame),
        }
        .expect("a frame read from a body fits a frame");
    }
    if failed {
        assert!(body.starts_with(&written), "what was read is not the start of the body");
    } else {
        assert!(reader.is_empty());
        assert_eq!(written, body, "what was read is not the body");
    }
});
