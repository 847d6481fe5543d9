//! Client authentication from the server's side: mysql_native_password (the
//! stored hash and the check of a client's scrambled answer) and
//! caching_sha2_password (its fast-path scramble, its full-path cleartext
//! answer, and the one-byte codes of its AuthMoreData packets).
//! (mysql_common has the client's side.)

use mysql_common::scramble::scramble_sha256;
use sha1::{Digest, Sha1};

/// caching_sha2_password's AuthMoreData payloads (0x01 + a status byte).
pub const FAST_AUTH_SUCCESS: [u8; 2] = [0x01, 0x03];
pub const PERFORM_FULL_AUTHENTICATION: [u8; 2] = [0x01, 0x04];

/// SHA1(SHA1(password)): what the server stores (`*` + hex in mysql.user).
pub type NativeHash = [u8; 20];

/// The stored form of `password`.
pub fn native_hash(password: &[u8]) -> NativeHash {
    Sha1::digest(Sha1::digest(password)).into()
}

/// Parses `*` followed by 40 hex digits, as `PASSWORD()` prints it.
pub fn parse_native_hash(s: &str) -> Option<NativeHash> {
    let hex = s.strip_prefix('*')?;
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether `answer` (the client's auth response) proves knowledge of the
/// password behind `stored` for this `nonce` (the 20-byte scramble).
///
/// The client sends SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))); XOR with
/// SHA1(nonce + stored) gives SHA1(pw) back, whose SHA1 must be `stored`.
/// An empty answer matches only an empty password.
pub fn verify_native(nonce: &[u8], answer: &[u8], stored: &NativeHash) -> bool {
    if answer.is_empty() {
        return *stored == native_hash(b"");
    }
    if answer.len() != 20 {
        return false;
    }
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(stored);
    let mask: [u8; 20] = h.finalize().into();
    let mut candidate = [0u8; 20];
    for i in 0..20 {
        candidate[i] = answer[i] ^ mask[i];
    }
    let check: [u8; 20] = Sha1::digest(candidate).into();
    constant_time_eq(&check, stored)
}

/// Whether `answer` means "no password": caching_sha2_password clients send
/// either nothing (PyMySQL) or a single NUL (libmysqlclient).
pub fn is_empty_answer(answer: &[u8]) -> bool {
    matches!(answer, [] | [0])
}

/// caching_sha2_password's fast path: whether `answer` is the 32-byte
/// scramble SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce) a client that
/// knows `password` sends for this `nonce`. An empty answer matches only an
/// empty password.
///
/// A real server checks it against a cache of SHA256(SHA256(pw)) filled by
/// an earlier full login; holding the password itself, sqlproxyd's cache is
/// always warm, so a mismatch is a wrong password, not a cache miss.
pub fn verify_sha2_fast(nonce: &[u8], answer: &[u8], password: &[u8]) -> bool {
    if is_empty_answer(answer) {
        return password.is_empty();
    }
    // scramble_sha256 has no answer for an empty password: only an empty
    // answer (above) stands for it.
    scramble_sha256(nonce, password).is_some_and(|expected| constant_time_eq(&expected, answer))
}

/// caching_sha2_password's full path over TLS: whether `answer`, the
/// password in clear and NUL-terminated, is the one behind `stored`.
pub fn verify_clear(answer: &[u8], stored: &NativeHash) -> bool {
    let password = answer.strip_suffix(&[0]).unwrap_or(answer);
    constant_time_eq(&native_hash(password), stored)
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::scramble::scramble_native;

    /// From an implementation independent of mysql_common (Python's hashlib):
    /// password "app", nonce 0x01..=0x14.
    const SHA2_VECTOR: &str = "589cc07410973684546efd93ae82848ddc37b9eb72956fe2ff78156d25251073";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn vector_nonce() -> Vec<u8> {
        (1..=20).collect()
    }

    #[test]
    fn the_client_scramble_verifies_against_the_stored_hash() {
        let nonce = b"01234567890123456789";
        let answer = scramble_native(nonce, b"app").unwrap();
        assert!(verify_native(nonce, &answer, &native_hash(b"app")));
        assert!(!verify_native(nonce, &answer, &native_hash(b"App")));
        assert!(!verify_native(
            b"x1234567890123456789",
            &answer,
            &native_hash(b"app")
        ));
        assert!(!verify_native(nonce, &answer[..19], &native_hash(b"app")));
    }

    #[test]
    fn empty_answers_mean_empty_passwords() {
        assert!(verify_native(b"n", b"", &native_hash(b"")));
        assert!(!verify_native(b"n", b"", &native_hash(b"x")));
    }

    #[test]
    fn hash_text_form() {
        // SELECT PASSWORD('reader') on MariaDB.
        let h = parse_native_hash("*FC69E042CE30D92E2952335F690CF2345C812E36").unwrap();
        assert_eq!(h, native_hash(b"reader"));
        assert_eq!(parse_native_hash("FC69"), None);
        assert_eq!(
            parse_native_hash("*ZZ69E042CE30D92E2952335F690CF2345C812E36"),
            None
        );
    }

    #[test]
    fn the_sha2_scramble_matches_a_known_vector() {
        let nonce = vector_nonce();
        let answer = scramble_sha256(&nonce, b"app").unwrap();
        assert_eq!(hex(&answer), SHA2_VECTOR);
        assert!(verify_sha2_fast(&nonce, &answer, b"app"));
    }

    #[test]
    fn a_sha2_scramble_needs_the_right_password_nonce_and_length() {
        let nonce = vector_nonce();
        let answer = scramble_sha256(&nonce, b"app").unwrap();
        assert!(!verify_sha2_fast(&nonce, &answer, b"App"));
        assert!(!verify_sha2_fast(b"x1234567890123456789", &answer, b"app"));
        assert!(!verify_sha2_fast(&nonce, &answer[..31], b"app"));
        let mut longer = answer.to_vec();
        longer.push(0);
        assert!(!verify_sha2_fast(&nonce, &longer, b"app"));
        let mut flipped = answer;
        flipped[31] ^= 1;
        assert!(!verify_sha2_fast(&nonce, &flipped, b"app"));
        // A native scramble is 20 bytes: never taken for a sha2 one.
        let native = scramble_native(&nonce, b"app").unwrap();
        assert!(!verify_sha2_fast(&nonce, &native, b"app"));
    }

    #[test]
    fn empty_sha2_answers_mean_empty_passwords() {
        assert!(verify_sha2_fast(b"n", b"", b""));
        assert!(verify_sha2_fast(b"n", b"\0", b""));
        assert!(!verify_sha2_fast(b"n", b"", b"app"));
        assert!(!verify_sha2_fast(b"n", b"\0", b"app"));
        // Whatever a client sends for an empty password, it is not a scramble.
        assert!(!verify_sha2_fast(b"n", &[7; 32], b""));
    }

    #[test]
    fn full_path_cleartext_checks_against_the_native_hash() {
        let stored = native_hash(b"reader");
        assert!(verify_clear(b"reader\0", &stored));
        assert!(verify_clear(b"reader", &stored));
        assert!(!verify_clear(b"reader\0\0", &stored));
        assert!(!verify_clear(b"Reader\0", &stored));
        assert!(!verify_clear(b"\0", &stored));
        assert!(verify_clear(b"\0", &native_hash(b"")));
    }
}
