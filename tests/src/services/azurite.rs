//! Azurite's Table service, in memory, on a free loopback port, with the table `kvplug`
//! created: what `kvplug-azure-table.wasm` talks to in the tests.
//!
//! Azurite checks Shared Key signatures, so the table is created with a request signed
//! here, by code independent of the adapter's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use kvplug_runner::Settings;
use sha2::Sha256;

use super::{Service, log_file, node_tool};
use crate::process::{Running, free_port};

/// Azurite's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its published key (not a secret: every Azurite has it).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The table the adapter uses unless its `table` setting says otherwise.
pub const TABLE: &str = "kvplug";

/// `azurite-table` with its data in memory.
pub struct Azurite {
    process: Option<Running>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Azurite {
    /// Starts the Table service and creates the table `kvplug`.
    pub fn start() -> Azurite {
        let mut azurite = Azurite {
            process: None,
            dir: tempfile::tempdir().expect("temporary directory"),
            port: free_port(),
        };
        azurite.resume();
        azurite
    }

    /// The `url` setting: the path-style endpoint of the development account.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The settings with `account-key` replaced, for tests of wrong credentials.
    pub fn settings_with_key(&self, key: &str) -> Settings {
        let mut settings = crate::settings(&self.url());
        settings.push(("account-name".to_owned(), ACCOUNT.to_owned()));
        settings.push(("account-key".to_owned(), key.to_owned()));
        settings.push(("table".to_owned(), TABLE.to_owned()));
        settings
    }

    /// Kills Azurite; its data is lost (it runs in memory).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts Azurite again on the same port, with an empty `kvplug` table.
    pub fn resume(&mut self) {
        let mut command = Command::new(node_tool("azurite-table"));
        command
            .args(["--tableHost", "127.0.0.1", "--tablePort"])
            .arg(self.port.to_string())
            .args(["--inMemoryPersistence", "--disableTelemetry", "--silent"])
            .current_dir(self.dir.path())
            .stdout(log_file(self.dir.path(), "azurite.log"))
            .stderr(log_file(self.dir.path(), "azurite.err"));
        let mut running = Running::start(command);
        running.wait_for_port(self.port, Duration::from_secs(30));
        self.process = Some(running);
        self.create_table(TABLE);
    }

    /// Creates table `name` (an existing one is fine).
    pub fn create_table(&self, name: &str) {
        let body = format!("{{\"TableName\":\"{name}\"}}");
        let (status, answer) = self.signed(
            "POST",
            &format!("/{ACCOUNT}/Tables"),
            Some(("application/json", body.as_bytes())),
        );
        assert!(
            matches!(status, 201 | 204 | 409),
            "creating table {name} in Azurite: HTTP {status}: {answer}"
        );
    }

    /// Deletes table `name`, for tests of a missing table.
    pub fn delete_table(&self, name: &str) {
        let (status, answer) = self.signed("DELETE", &format!("/{ACCOUNT}/Tables('{name}')"), None);
        assert!(
            matches!(status, 204 | 404),
            "deleting table {name} in Azurite: HTTP {status}: {answer}"
        );
    }

    /// One request signed with the development key; `path` is sent as it is, and signed as
    /// it is (with no `comp` query).
    fn signed(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
        let date = http_date(SystemTime::now());
        let content_type = body.map_or("", |(content_type, _)| content_type);
        let to_sign = format!("{method}\n\n{content_type}\n{date}\n/{ACCOUNT}{path}");
        let key = base64_decode(KEY);
        let mut mac = <Hmac<Sha256>>::new_from_slice(&key).expect("any key length");
        mac.update(to_sign.as_bytes());
        let signature = base64_encode(&mac.finalize().into_bytes());
        let payload = body.map_or(&[][..], |(_, bytes)| bytes);
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: 2019-02-02\r\n\
             accept: application/json;odata=nometadata\r\ndataserviceversion: 3.0\r\n\
             authorization: SharedKey {ACCOUNT}:{signature}\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.port,
            payload.len()
        );
        if !content_type.is_empty() {
            head.push_str(&format!("content-type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        let exchange = || -> std::io::Result<Vec<u8>> {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            stream.write_all(head.as_bytes())?;
            stream.write_all(payload)?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw)?;
            Ok(raw)
        };
        let raw = exchange().unwrap_or_else(|e| panic!("{method} {path} on Azurite: {e}"));
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, answer) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path} on Azurite: not HTTP: {text}"));
        (status, answer.to_owned())
    }
}

impl Service for Azurite {
    fn backend(&self) -> &'static str {
        "azure-table"
    }
    fn settings(&self) -> Settings {
        self.settings_with_key(KEY)
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    // Walk the years, then the months: slow, but this runs once per table.
    let mut year = 1970;
    let mut rest = days;
    loop {
        let length = if is_leap(year) { 366 } else { 365 };
        if rest < length {
            break;
        }
        rest -= length;
        year += 1;
    }
    let mut month = 0;
    loop {
        let length = match month {
            1 if is_leap(year) => 29,
            1 => 28,
            3 | 5 | 8 | 10 => 30,
            _ => 31,
        };
        if rest < length {
            break;
        }
        rest -= length;
        month += 1;
    }
    format!(
        "{}, {:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        rest + 1,
        MONTHS[month],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bits = 0u32;
    let mut count = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = ALPHABET.iter().position(|a| *a == c).expect("a base64 key") as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_base64_match_known_values() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(at(1_440_938_160)),
            "Sun, 30 Aug 2015 12:36:00 GMT"
        );
        assert_eq!(base64_encode(b"kvplug!"), "a3ZwbHVnIQ==");
        assert_eq!(base64_decode("a3ZwbHVnIQ=="), b"kvplug!");
        assert_eq!(base64_encode(&base64_decode(KEY)), KEY);
    }
}
