//! Request targets: the URL of an entity and of a query, percent-encoded, and the
//! continuation cursor of `list-keys`, which travels in the query string as it is.

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::TableBackend;
use crate::client::Response;

impl TableBackend {
    pub(super) fn entity_path(&self, row: &str) -> String {
        let mut path = String::with_capacity(self.inner.table.len() + row.len() * 3 + 64);
        path.push('/');
        path.push_str(&self.inner.table);
        path.push_str("(PartitionKey='");
        percent_encode_into(&mut path, &self.inner.partition);
        path.push_str("',RowKey='");
        percent_encode_into(&mut path, row);
        path.push_str("')");
        path
    }

    /// A query of the bucket's partition; `rows` narrows it to those rows.
    pub(super) fn query_path(
        &self,
        rows: &[&str],
        select: Option<&str>,
        top: Option<u32>,
    ) -> String {
        let mut filter = String::from("PartitionKey eq '");
        filter.push_str(&self.inner.partition);
        filter.push('\'');
        for (i, row) in rows.iter().enumerate() {
            filter.push_str(if i == 0 { " and (" } else { " or " });
            filter.push_str("RowKey eq '");
            filter.push_str(row);
            filter.push('\'');
        }
        if !rows.is_empty() {
            filter.push(')');
        }
        let mut path = format!("/{}()?$filter=", self.inner.table);
        percent_encode_into(&mut path, &filter);
        if let Some(select) = select {
            path.push_str("&$select=");
            path.push_str(select);
        }
        if let Some(top) = top {
            let _ = write!(path, "&$top={top}");
        }
        path
    }
}

/// The cursor for the page after `response`: the continuation headers as the query
/// parameters that resume it, percent-encoded.
pub fn next_cursor(response: &Response) -> Option<String> {
    let partition = response.header("x-ms-continuation-nextpartitionkey")?;
    // A continuation without a row starts a new partition: this one is done.
    let row = response.header("x-ms-continuation-nextrowkey")?;
    let mut cursor = String::from("NextPartitionKey=");
    percent_encode_into(&mut cursor, partition);
    cursor.push_str("&NextRowKey=");
    percent_encode_into(&mut cursor, row);
    Some(cursor)
}

/// Whether `cursor` has the shape `next_cursor` gives, so it can go into a URL as it is.
pub fn valid_cursor(cursor: &str) -> bool {
    cursor
        .strip_prefix("NextPartitionKey=")
        .and_then(|rest| rest.split_once("&NextRowKey="))
        .is_some_and(|(partition, row)| percent_encoded(partition) && percent_encoded(row))
}

/// Whether `text` is non-empty and made only of unreserved bytes and `%XX` escapes.
fn percent_encoded(text: &str) -> bool {
    let mut bytes = text.bytes();
    let mut any = false;
    while let Some(b) = bytes.next() {
        any = true;
        let ok = if b == b'%' {
            bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
                && bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
        } else {
            unreserved(b)
        };
        if !ok {
            return false;
        }
    }
    any
}

/// The complement of [`URL_UNRESERVED`] (a test checks).
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// What the adapter escapes in the request target: every byte but URL-unreserved ones.
const URL_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn percent_encode_into(out: &mut String, text: &str) {
    out.extend(utf8_percent_encode(text, URL_UNRESERVED));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::azure_table::keys::encode_key;
    use crate::backend::azure_table::tests::backend;

    #[test]
    fn the_cursor_check_takes_plain_exactly_what_the_encoder_leaves_plain() {
        for byte in 0..=0x7f_u8 {
            let text = String::from(char::from(byte));
            let mut encoded = String::new();
            percent_encode_into(&mut encoded, &text);
            assert_eq!(encoded == text, unreserved(byte), "{byte:#x}");
        }
    }

    #[test]
    fn paths_quote_fields_for_the_url() {
        let b = backend("my bucket");
        assert_eq!(
            b.entity_path(&encode_key("a/b c")),
            "/kvplug(PartitionKey='%21my%20bucket',RowKey='a~2Fb%20c')"
        );
        assert_eq!(
            b.query_path(&["x", "~"], Some("RowKey"), Some(7)),
            "/kvplug()?$filter=PartitionKey%20eq%20%27%21my%20bucket%27%20and%20%28RowKey%20eq%20%27x%27%20or%20RowKey%20eq%20%27~%27%29&$select=RowKey&$top=7"
        );
        assert_eq!(backend("").inner.partition, "!~");
    }

    #[test]
    fn cursors_are_the_continuation_query() {
        assert!(valid_cursor("NextPartitionKey=cA%3D%3D&NextRowKey=cjI%3D"));
        assert!(valid_cursor(
            "NextPartitionKey=1%218%21cA--&NextRowKey=1%2112%21cjI-"
        ));
        for foreign in [
            "not a cursor?&limit=1",
            "",
            "NextPartitionKey=&NextRowKey=x",
            "NextPartitionKey=a&NextRowKey=b&$top=1000",
            "NextPartitionKey=a%2&NextRowKey=b",
            "NextPartitionKey=a&NextRowKey=b c",
        ] {
            assert!(!valid_cursor(foreign), "{foreign:?}");
        }
    }
}
