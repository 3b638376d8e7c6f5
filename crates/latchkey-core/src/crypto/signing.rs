//! Signing keys and JWS compact signing, through aws-lc-rs (constant-time RSA; no `rsa`
//! crate, RUSTSEC-2023-0071).
//!
//! JWS compact serialization is written here rather than taken from `jsonwebtoken`, whose
//! `EncodingKey` re-parses the private key on every signature: a key pair parsed once and
//! held in memory keeps token minting at the cost of the signature itself.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::domain::SigningAlg;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("could not generate a {0} key")]
    Generate(SigningAlg),
    #[error("the stored {0} private key is not a valid PKCS#8 key of that algorithm")]
    BadPrivateKey(SigningAlg),
    #[error("RSA keys must be 2048, 3072 or 4096 bits, not {0}")]
    RsaSize(u32),
    #[error("signing failed")]
    Sign,
}

/// A public key in JWK form (RFC 7517), as the JWKS endpoint publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key, parsed once, with its public JWK and key id.
pub struct SigningKeyPair {
    alg: SigningAlg,
    inner: Inner,
    jwk: PublicJwk,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKeyPair {
    /// Generates a new key pair; returns it with its PKCS#8 DER encoding for storage.
    pub fn generate(alg: SigningAlg, rsa_bits: u32) -> Result<(Self, Vec<u8>), KeyError> {
        let der = match alg {
            SigningAlg::Rs256 => {
                let size = match rsa_bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    other => return Err(KeyError::RsaSize(other)),
                };
                let kp = RsaKeyPair::generate(size).map_err(|_| KeyError::Generate(alg))?;
                let der = kp.as_der().map_err(|_| KeyError::Generate(alg))?;
                der.as_ref().to_vec()
            }
            SigningAlg::Es256 => {
                let kp =
                    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| KeyError::Generate(alg))?;
                kp.to_pkcs8v1().map_err(|_| KeyError::Generate(alg))?.as_ref().to_vec()
            }
            SigningAlg::EdDsa => {
                let kp = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate(alg))?;
                kp.to_pkcs8v1().map_err(|_| KeyError::Generate(alg))?.as_ref().to_vec()
            }
        };
        let pair = Self::from_pkcs8(alg, &der)?;
        Ok((pair, der))
    }

    /// Loads a key pair from PKCS#8 DER (as stored, after decryption).
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, KeyError> {
        let bad = |_| KeyError::BadPrivateKey(alg);
        let (inner, mut jwk) = match alg {
            SigningAlg::Rs256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(bad)?;
                let public = kp.public_key();
                let jwk = PublicJwk {
                    kty: "RSA".into(),
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    kid: String::new(),
                    crv: None,
                    n: Some(b64(public.modulus().big_endian_without_leading_zero())),
                    e: Some(b64(public.exponent().big_endian_without_leading_zero())),
                    x: None,
                    y: None,
                };
                (Inner::Rsa(kp), jwk)
            }
            SigningAlg::Es256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(bad)?;
                // Uncompressed SEC1 point: 0x04 || x (32) || y (32).
                let point = kp.public_key().as_ref();
                if point.len() != 65 {
                    return Err(KeyError::BadPrivateKey(alg));
                }
                let jwk = PublicJwk {
                    kty: "EC".into(),
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    kid: String::new(),
                    crv: Some("P-256".into()),
                    n: None,
                    e: None,
                    x: Some(b64(&point[1..33])),
                    y: Some(b64(&point[33..65])),
                };
                (Inner::Ec(kp), jwk)
            }
            SigningAlg::EdDsa => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(bad)?;
                let jwk = PublicJwk {
                    kty: "OKP".into(),
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    kid: String::new(),
                    crv: Some("Ed25519".into()),
                    n: None,
                    e: None,
                    x: Some(b64(kp.public_key().as_ref())),
                    y: None,
                };
                (Inner::Ed(kp), jwk)
            }
        };
        jwk.kid = thumbprint(&jwk);
        Ok(Self { alg, inner, jwk })
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id: the RFC 7638 JWK thumbprint, so it is derived from the key itself.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Signs raw bytes with this key's algorithm (JWS signature input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Inner::Ec(kp) => {
                kp.sign(&SystemRandom::new(), message).map(|s| s.as_ref().to_vec()).map_err(|_| KeyError::Sign)
            }
            Inner::Ed(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }

    /// Produces a JWS in compact serialization (RFC 7515 §7.1) over `claims`, with a header
    /// naming `alg`, `kid` and `typ`.
    pub fn sign_jwt<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
            typ: &'a str,
        }
        let header = Header { alg: self.alg.as_str(), kid: self.kid(), typ };
        let header_json = serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?;
        let claims_json = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut out = String::with_capacity(64 + claims_json.len() * 4 / 3 + 360);
        URL_SAFE_NO_PAD.encode_string(header_json, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut out);
        let signature = self.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Ok(out)
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(jwk: &PublicJwk) -> String {
    let canonical = match jwk.kty.as_str() {
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk.e.as_deref().unwrap_or_default(),
            jwk.n.as_deref().unwrap_or_default()
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default(),
            jwk.y.as_deref().unwrap_or_default()
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default()
        ),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

impl fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyPair").field("alg", &self.alg).field("kid", &self.kid()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};

    fn verify_with_jsonwebtoken(pair: &SigningKeyPair, token: &str) -> serde_json::Value {
        let jwk: Jwk = serde_json::from_value(serde_json::to_value(pair.public_jwk()).unwrap_or_default())
            .unwrap_or_else(|e| panic!("JWK does not parse: {e}"));
        let key = DecodingKey::from_jwk(&jwk).unwrap_or_else(|e| panic!("{e}"));
        let alg = match pair.alg() {
            SigningAlg::Rs256 => Algorithm::RS256,
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
        };
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .unwrap_or_else(|e| panic!("{alg:?} token does not verify: {e}"))
            .claims
    }

    #[test]
    fn every_algorithm_signs_tokens_an_independent_library_verifies() {
        for alg in SigningAlg::ALL {
            let (pair, der) = SigningKeyPair::generate(*alg, 2048).unwrap_or_else(|e| panic!("{e}"));
            let token = pair.sign_jwt("JWT", &serde_json::json!({"sub": "abc"})).unwrap_or_default();
            assert_eq!(verify_with_jsonwebtoken(&pair, &token)["sub"], "abc");
            let header = jsonwebtoken::decode_header(&token).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(header.kid.as_deref(), Some(pair.kid()));

            let reloaded = SigningKeyPair::from_pkcs8(*alg, &der).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reloaded.public_jwk(), pair.public_jwk(), "reloading keeps the key");
        }
    }

    #[test]
    fn a_key_of_one_algorithm_does_not_load_as_another() {
        let (_, der) = SigningKeyPair::generate(SigningAlg::Es256, 2048).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            SigningKeyPair::from_pkcs8(SigningAlg::EdDsa, &der).err(),
            Some(KeyError::BadPrivateKey(SigningAlg::EdDsa))
        );
        assert_eq!(SigningKeyPair::generate(SigningAlg::Rs256, 1024).err(), Some(KeyError::RsaSize(1024)));
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 example key and its thumbprint.
        let jwk = PublicJwk {
            kty: "RSA".into(),
            use_: "sig".into(),
            alg: "RS256".into(),
            kid: String::new(),
            crv: None,
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            x: None,
            y: None,
        };
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
