//! Randomness from the operating system's CSPRNG (through aws-lc-rs).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `N` random bytes. Aborts the process if the OS random source fails: no secret may ever
/// be generated from a broken source, and there is nothing sensible to continue with.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if aws_lc_rs::rand::fill(&mut out).is_err() {
        // A failing CSPRNG is not a request error; continuing would mint guessable secrets.
        std::process::abort();
    }
    out
}

/// A URL-safe token carrying `N` random bytes (`N = 32` gives the 256 bits every Latchkey
/// secret uses).
pub fn token_string<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<N>())
}

/// A random identifier that people read, copy and type into commands: `N` random bytes as
/// lowercase hex. Unlike [`token_string`], it never begins with `-`, which a command line
/// would take for an option (an invitation id `-bCfdklQ` made `latchkey invite revoke` fail).
pub fn identifier<const N: usize>() -> String {
    hex::encode(bytes::<N>())
}

/// Digits, uppercase and lowercase letters: what base62 writes with.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` characters drawn uniformly from [`BASE62`] (a byte is kept only below 248 = 4 × 62,
/// so no character is likelier than another): each carries log2(62) ≈ 5.95 bits, and 43 of
/// them carry 256.
pub fn base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in bytes::<64>() {
            if b < 248 && out.len() < n {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base62_strings_use_every_character_and_nothing_else() {
        let s = super::base62(20_000);
        assert_eq!(s.len(), 20_000);
        assert!(s.bytes().all(|b| super::BASE62.contains(&b)));
        for c in super::BASE62 {
            assert!(s.as_bytes().contains(c), "{}", char::from(*c));
        }
        assert_ne!(super::base62(43), super::base62(43));
    }

    #[test]
    fn identifiers_are_lowercase_hex_of_the_asked_size() {
        for _ in 0..2_000 {
            let id = super::identifier::<6>();
            assert_eq!(id.len(), 12);
            assert!(id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{id}");
        }
    }

    #[test]
    fn tokens_are_distinct_and_url_safe() {
        let a = super::token_string::<32>();
        let b = super::token_string::<32>();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
