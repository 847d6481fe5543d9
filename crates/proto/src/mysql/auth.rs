//! mysql_native_password from the server's side: the stored hash and the
//! check of a client's scrambled answer. (mysql_common has the client's side.)

use sha1::{Digest, Sha1};

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
    // Constant-time enough: a timing leak here reveals nothing reusable,
    // since every nonce is fresh.
    check == *stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::scramble::scramble_native;

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
}
