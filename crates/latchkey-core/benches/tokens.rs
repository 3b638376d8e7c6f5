//! Micro-benchmarks of access-token minting and verification, one per signing algorithm.
//!
//! Run with `cargo bench -p latchkey-core --bench tokens`. Minting uses the same path as the
//! token endpoint (`SigningKeyPair::sign_jwt` on a key parsed once); verifying uses an
//! independent library (`jsonwebtoken`) on the published public JWK, as a resource server
//! would. No timing is asserted anywhere: these numbers go to docs/performance.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use latchkey_core::crypto::SigningKeyPair;
use latchkey_core::domain::SigningAlg;

/// Claims shaped like a client-credentials access token (RFC 9068).
fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "client_0123456789abcdef",
        "aud": "http://127.0.0.1:8080",
        "client_id": "client_0123456789abcdef",
        "scope": "api:read api:write",
        "iat": 1_900_000_000u64,
        "exp": 1_900_000_300u64,
        "jti": "2b0c4b1e6f8a4d0e9c3a7b5d1f2e4a6c",
    })
}

fn pair(alg: SigningAlg) -> SigningKeyPair {
    match SigningKeyPair::generate(alg, 2048) {
        Ok((pair, _der)) => pair,
        Err(e) => panic!("cannot generate a {alg} key: {e}"),
    }
}

fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
    }
}

fn mint(c: &mut Criterion) {
    let claims = claims();
    let mut group = c.benchmark_group("mint_access_token");
    for alg in SigningAlg::ALL {
        let pair = pair(*alg);
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| match pair.sign_jwt("at+jwt", black_box(&claims)) {
                Ok(token) => token,
                Err(e) => panic!("signing failed: {e}"),
            })
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let claims = claims();
    let mut group = c.benchmark_group("verify_access_token");
    for alg in SigningAlg::ALL {
        let pair = pair(*alg);
        let token = match pair.sign_jwt("at+jwt", &claims) {
            Ok(token) => token,
            Err(e) => panic!("signing failed: {e}"),
        };
        let jwk: Jwk = match serde_json::to_value(pair.public_jwk()).and_then(serde_json::from_value) {
            Ok(jwk) => jwk,
            Err(e) => panic!("the public JWK does not parse: {e}"),
        };
        let key = match DecodingKey::from_jwk(&jwk) {
            Ok(key) => key,
            Err(e) => panic!("no decoding key from the JWK: {e}"),
        };
        let mut validation = Validation::new(jwt_alg(*alg));
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| match jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation) {
                Ok(data) => data.claims,
                Err(e) => panic!("verification failed: {e}"),
            })
        });
    }
    group.finish();
}

criterion_group!(benches, mint, verify);
criterion_main!(benches);
