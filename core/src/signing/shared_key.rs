//! Azure Storage Shared Key authorization (`SharedKey`, not `SharedKeyLite`) as the Table
//! service defines it:
//!
//! ```text
//! StringToSign = VERB \n Content-MD5 \n Content-Type \n Date \n CanonicalizedResource
//! CanonicalizedResource = "/" account <encoded URL path> ["?comp=" <value>]
//! Authorization: SharedKey <account>:<base64(HMAC-SHA256(base64decode(key), StringToSign))>
//! ```
//!
//! `Date` is the `x-ms-date` header's value (the Table service signs it in the `Date`
//! position); Content-MD5 is never sent, so it is always empty. The path is signed as it goes
//! on the wire, percent-encoding included, and with an emulator's path-style URL it holds
//! the account name again (`/devstoreaccount1/devstoreaccount1/table(...)`).

use alloc::string::String;
use alloc::vec::Vec;

use kvplug_codec::base64;

use super::hmac_sha256;
use crate::error::Error;

/// An account and its decoded key.
pub struct SharedKey {
    account: String,
    key: Vec<u8>,
}

// Hand-written so that the key can never reach a log line through `{:?}`.
impl core::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedKey")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// One request, as it is sent.
pub struct Request<'a> {
    pub verb: &'a str,
    /// The `content-type` header, or empty when there is none.
    pub content_type: &'a str,
    /// The `x-ms-date` header.
    pub date: &'a str,
    /// The URL path as sent (percent-encoded), without the query.
    pub path: &'a str,
    /// The query string without `?`, or empty.
    pub query: &'a str,
}

impl SharedKey {
    /// `key` is the account key as the portal shows it (base64). The error never repeats it.
    pub fn new(account: &str, key: &str) -> Result<SharedKey, Error> {
        let key = base64::decode(key.trim()).map_err(|_| {
            Error::Settings(String::from(
                "`account-key` is not valid base64 (give the storage account's key as the Azure portal shows it)",
            ))
        })?;
        if key.is_empty() {
            return Err(Error::Settings(String::from("`account-key` is empty")));
        }
        Ok(SharedKey {
            account: String::from(account),
            key,
        })
    }

    /// The `Authorization` header value for `request`.
    pub fn authorization(&self, request: &Request<'_>) -> String {
        let to_sign = self.string_to_sign(request);
        let signature = hmac_sha256(&self.key, &[to_sign.as_bytes()]);
        let mut out = String::with_capacity(self.account.len() + 56);
        out.push_str("SharedKey ");
        out.push_str(&self.account);
        out.push(':');
        base64::encode_into(&mut out, &signature);
        out
    }

    fn string_to_sign(&self, request: &Request<'_>) -> String {
        let mut out = String::with_capacity(
            request.verb.len() + request.content_type.len() + request.date.len() + 96,
        );
        out.push_str(request.verb);
        // Content-MD5 is never sent: an empty line.
        out.push_str("\n\n");
        out.push_str(request.content_type);
        out.push('\n');
        out.push_str(request.date);
        out.push('\n');
        out.push('/');
        out.push_str(&self.account);
        out.push_str(if request.path.is_empty() {
            "/"
        } else {
            request.path
        });
        // Of the query, the Table service signs only `comp`.
        let comp = request
            .query
            .split('&')
            .find_map(|pair| pair.strip_prefix("comp="));
        if let Some(value) = comp {
            out.push_str("?comp=");
            out.push_str(value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! The expected signatures were computed independently with Python's `hmac`, `hashlib`
    //! and `base64` from the string to sign spelled out in each case, and re-typed here.
    //! The key is Azurite's published development key.

    use super::*;

    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    const DATE: &str = "Sun, 30 Aug 2015 12:36:00 GMT";

    fn dev() -> SharedKey {
        SharedKey::new("devstoreaccount1", DEV_KEY).unwrap()
    }

    #[test]
    fn signs_known_requests() {
        let get = Request {
            verb: "GET",
            content_type: "",
            date: DATE,
            path: "/devstoreaccount1/kvplug(PartitionKey='p',RowKey='k%20~7E')",
            query: "",
        };
        assert_eq!(
            dev().string_to_sign(&get),
            "GET\n\n\nSun, 30 Aug 2015 12:36:00 GMT\n/devstoreaccount1/devstoreaccount1/kvplug(PartitionKey='p',RowKey='k%20~7E')"
        );
        assert_eq!(
            dev().authorization(&get),
            "SharedKey devstoreaccount1:vA2TGV70TilXDwy+ZkL0W07XaAlx828EAdN8O5MkNqw="
        );
        let put = Request {
            verb: "PUT",
            content_type: "application/json",
            date: DATE,
            path: "/devstoreaccount1/kvplug(PartitionKey='p',RowKey='k')",
            query: "",
        };
        assert_eq!(
            dev().authorization(&put),
            "SharedKey devstoreaccount1:Igoghekpi9Y4gFfPKvgzWEsDFsFaOlT2K4e3nXuVC1c="
        );
    }

    #[test]
    fn of_the_query_only_comp_is_signed() {
        let request = Request {
            verb: "GET",
            content_type: "",
            date: DATE,
            path: "/devstoreaccount1/",
            query: "restype=service&comp=properties",
        };
        assert!(
            dev()
                .string_to_sign(&request)
                .ends_with("\n/devstoreaccount1/devstoreaccount1/?comp=properties")
        );
        assert_eq!(
            dev().authorization(&request),
            "SharedKey devstoreaccount1:rs2Dvkq9AQbm8NlddH36AsRxdMvW3VjsSug3arWffmY="
        );
        let filtered = Request {
            query: "$filter=PartitionKey%20eq%20'p'&$top=5",
            ..request
        };
        assert!(
            dev()
                .string_to_sign(&filtered)
                .ends_with("/devstoreaccount1/")
        );
    }

    #[test]
    fn a_bad_key_is_a_settings_error_that_does_not_repeat_it() {
        for key in ["not base64!", "a", ""] {
            let Err(Error::Settings(message)) = SharedKey::new("acct", key) else {
                panic!("`{key}` must be refused");
            };
            assert!(message.contains("account-key"), "{message}");
            assert!(key.len() < 4 || !message.contains(key), "{message}");
        }
        let debug = alloc::format!("{:?}", dev());
        assert!(
            !debug.contains("Eby8") && debug.contains("devstoreaccount1"),
            "{debug}"
        );
    }
}
