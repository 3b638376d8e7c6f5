//! Recovery codes: ten single-use codes a user keeps on paper. Each carries 50 random bits
//! in ten characters of an alphabet without look-alikes, shown as `xxxxx-xxxxx`; only keyed
//! hashes are stored (see `TokenHasher`), under the purpose [`PURPOSE`].

use super::random;

pub const COUNT: usize = 10;
pub const PURPOSE: &str = "recovery_code";
/// Crockford's base32 without the letters people confuse (no i, l, o, u).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A fresh set of codes, formatted for people.
pub fn generate() -> Vec<String> {
    (0..COUNT).map(|_| one()).collect()
}

fn one() -> String {
    let bytes = random::bytes::<10>();
    let chars: String = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// What a person typed, in the form the codes were hashed in: lower case, look-alikes
/// mapped (o→0, i/l→1), spaces and dashes dropped, then the dash put back. `None` when it
/// cannot be a recovery code.
pub fn normalize(typed: &str) -> Option<String> {
    let mut chars = String::with_capacity(10);
    for c in typed.chars() {
        let c = match c.to_ascii_lowercase() {
            ' ' | '-' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        chars.push(c);
    }
    (chars.len() == 10).then(|| format!("{}-{}", &chars[..5], &chars[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_normalize_to_themselves() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        for c in &codes {
            assert_eq!(c.len(), 11);
            assert_eq!(normalize(c).as_deref(), Some(c.as_str()));
            assert_eq!(normalize(&c.to_uppercase().replace('-', " ")).as_deref(), Some(c.as_str()));
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
    }

    #[test]
    fn look_alikes_are_forgiven_and_junk_is_refused() {
        assert_eq!(normalize("O1IL0-abcde").as_deref(), Some("01110-abcde"));
        assert_eq!(normalize("abc"), None);
        assert_eq!(normalize("abcde-fghju"), None, "u is not in the alphabet");
        assert_eq!(normalize("abcdé-fghjk"), None);
    }
}
