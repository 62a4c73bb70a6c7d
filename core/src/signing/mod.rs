//! Request signing for the cloud backends: AWS Signature Version 4 (`dynamodb`) and Azure
//! Storage Shared Key (`azure-table`). Both are HMAC-SHA256 over a canonical form of the
//! request; the hash and the MAC come from RustCrypto's `sha2` and `hmac` (no_std).

#[cfg(feature = "azure-table")]
pub mod shared_key;
#[cfg(feature = "dynamodb")]
pub mod sigv4;

use alloc::string::String;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// SHA-256's block size: HMAC pads (or first hashes) its key to this length.
const BLOCK: usize = 64;

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 of the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC itself zero-pads a short key to a block and hashes a long one first; doing that
    // here gives a key of exactly one block, which `Hmac::new` takes without a fallible
    // length check.
    let digest;
    let key = if key.len() > BLOCK {
        digest = sha256(key);
        digest.as_slice()
    } else {
        key
    };
    let mut block = [0u8; BLOCK];
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    let mut mac = <Hmac<Sha256>>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Lower-case hex, as SigV4 writes hashes and signatures.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        for nibble in [byte >> 4, byte & 0xf] {
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_hmac_match_published_vectors() {
        // FIPS 180-2 "abc", and RFC 4231 test cases 2 (short key) and 6 (key longer than a
        // block).
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
