//! A software passkey authenticator, playing both the browser and a platform authenticator
//! (Touch ID, Windows Hello) so tests can sign up and sign in with passkeys over plain HTTP.
//!
//! It speaks the JSON a page hands to and gets back from the WebAuthn browser API, and knows
//! nothing of the server's WebAuthn library, so it checks the server the way a browser would:
//!
//! - [`SoftAuthenticator::new`]`(`[`Flags`]`)` — an empty authenticator. `Flags::default()` is a
//!   device-bound authenticator that verifies its user: UP and UV set, BE and BS clear;
//!   `Flags::synced()` adds BE and BS, as iCloud Keychain or Google Password Manager report.
//! - [`SoftAuthenticator::set_flags`] — the flags every later ceremony reports (for instance
//!   to turn user verification off, or to become a synced passkey with BE/BS).
//! - [`SoftAuthenticator::register`]`(options, origin)` — `navigator.credentials.create()`:
//!   `options` is the creation options JSON (`{"publicKey": {...}}`), the answer is the
//!   credential's `toJSON()`, with attestation "none" and an ES256 (COSE -7) P-256 key. Fails
//!   with `InvalidStateError` when one of its credentials is in `excludeCredentials`.
//! - [`SoftAuthenticator::authenticate`]`(options, origin)` — `navigator.credentials.get()`:
//!   `options` is the request options JSON (`{"publicKey": {...}, "mediation": ...}`). Uses
//!   the newest of its credentials for the rp id that `allowCredentials` names, or, when that
//!   is empty, the newest discoverable one. Fails with `NotAllowedError` when none fits.
//! - [`SoftAuthenticator::authenticate_with`] — the same with the credential chosen by id, as
//!   a user picks one account from the browser's list.
//! - [`SoftAuthenticator::credential_ids`] — the ids (base64url, unpadded), oldest first.
//! - [`SoftAuthenticator::sign_count`] / [`SoftAuthenticator::set_sign_count`] — a
//!   credential's stored counter. An assertion increments it first, so after
//!   `set_sign_count(id, n)` the next assertion reports `n + 1`: setting it below what the
//!   server stored simulates a cloned authenticator.
//! - [`SoftAuthenticator::keep_counter_at_zero`] — report counter 0 and never increment it,
//!   as synced passkeys do.
//!
//! Like a browser it refuses an rp id that is not the origin's host or a parent domain of it
//! (`SecurityError`), plain `http` anywhere but on localhost, and options whose
//! `pubKeyCredParams` lack ES256 (`NotSupportedError`). Like a CTAP2 authenticator it makes a
//! discoverable credential only when `residentKey` is "required" or "preferred" (or
//! `requireResidentKey` is true): webauthn-rs's `start_passkey_registration` asks for
//! "discouraged", and a server that forgets to change that gets credentials that cannot sign
//! in without a user name. A newly made discoverable credential replaces an earlier one for the
//! same rp id and user handle. Extensions in the options are ignored and
//! `clientExtensionResults` is always `{}`.
#![allow(dead_code)]

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value as Cbor;
use serde::Deserialize;
use serde_json::{Value, json};

/// COSE algorithm ES256: ECDSA over P-256 with SHA-256.
const ES256: i64 = -7;

/// The authenticator data flags of WebAuthn §6.1 that an assertion or attestation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// UP: the user touched or otherwise confirmed presence.
    pub user_present: bool,
    /// UV: the user was verified (biometric, PIN).
    pub user_verified: bool,
    /// BE: the credential may be synced or backed up (a "multi-device" passkey).
    pub backup_eligible: bool,
    /// BS: the credential is currently synced or backed up.
    pub backup_state: bool,
}

impl Default for Flags {
    /// A device-bound platform authenticator that verifies its user.
    fn default() -> Self {
        Self { user_present: true, user_verified: true, backup_eligible: false, backup_state: false }
    }
}

impl Flags {
    /// A synced passkey (iCloud Keychain, Google Password Manager): backup eligible and backed up.
    pub fn synced() -> Self {
        Self { backup_eligible: true, backup_state: true, ..Self::default() }
    }

    fn byte(self) -> u8 {
        let mut byte = 0;
        for (set, bit) in [
            (self.user_present, 0x01),
            (self.user_verified, 0x04),
            (self.backup_eligible, 0x08),
            (self.backup_state, 0x10),
        ] {
            if set {
                byte |= bit;
            }
        }
        byte
    }
}

/// The authenticator data flag saying attested credential data follows (registration only).
const ATTESTED_CREDENTIAL_DATA: u8 = 0x40;

struct Credential {
    id: Vec<u8>,
    key: EcdsaKeyPair,
    rp_id: String,
    user_handle: Vec<u8>,
    discoverable: bool,
    sign_count: u32,
}

/// A software WebAuthn authenticator holding its credentials in memory. See the module docs.
pub struct SoftAuthenticator {
    flags: Flags,
    counter_at_zero: bool,
    /// Oldest first.
    credentials: Vec<Credential>,
    rng: SystemRandom,
}

impl SoftAuthenticator {
    pub fn new(flags: Flags) -> Self {
        Self { flags, counter_at_zero: false, credentials: Vec::new(), rng: SystemRandom::new() }
    }

    /// The flags every later registration and assertion reports.
    pub fn set_flags(&mut self, flags: Flags) {
        self.flags = flags;
    }

    /// `navigator.credentials.create({publicKey})` followed by `PublicKeyCredential.toJSON()`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        let CreationOptions { public_key: options } = serde_json::from_value(options.clone())
            .map_err(|e| format!("TypeError: the creation options are not valid: {e}"))?;
        let rp_id = match options.rp.id {
            Some(id) => id,
            None => origin_host(origin)?,
        };
        check_rp_id(&rp_id, origin)?;
        if !options.pub_key_cred_params.iter().any(|p| p.type_ == "public-key" && p.alg == ES256) {
            return Err("NotSupportedError: pubKeyCredParams do not include ES256 (-7)".to_owned());
        }
        let challenge = decode("challenge", &options.challenge)?;
        let user_handle = decode("user.id", &options.user.id)?;
        // WebAuthn §6.3.2 step 3: an authenticator that already holds an excluded credential
        // for this rp refuses, and the browser reports InvalidStateError.
        for excluded in options.exclude_credentials.unwrap_or_default() {
            let id = decode("excludeCredentials[].id", &excluded.id)?;
            if self.credentials.iter().any(|c| c.rp_id == rp_id && c.id == id) {
                return Err("InvalidStateError: the authenticator already holds an excluded credential".to_owned());
            }
        }
        let discoverable = options.authenticator_selection.is_some_and(|s| {
            s.require_resident_key || matches!(s.resident_key.as_deref(), Some("required" | "preferred"))
        });

        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| "UnknownError: could not generate a P-256 key".to_owned())?;
        let mut id = vec![0; 32];
        self.rng.fill(&mut id).map_err(|_| "UnknownError: no randomness for the credential id".to_owned())?;

        let point = key.public_key().as_ref();
        // An uncompressed SEC1 point: 0x04 || x || y.
        let (x, y) = point[1..].split_at(32);
        let cose_key = cbor(&Cbor::Map(vec![
            (Cbor::from(1), Cbor::from(2)),     // kty: EC2
            (Cbor::from(3), Cbor::from(ES256)), // alg
            (Cbor::from(-1), Cbor::from(1)),    // crv: P-256
            (Cbor::from(-2), Cbor::Bytes(x.to_vec())),
            (Cbor::from(-3), Cbor::Bytes(y.to_vec())),
        ]))?;
        let sign_count = 0;
        let mut auth_data = authenticator_data(&rp_id, self.flags.byte() | ATTESTED_CREDENTIAL_DATA, sign_count);
        auth_data.extend_from_slice(&[0; 16]); // AAGUID: none, as with attestation "none"
        let id_len = u16::try_from(id.len()).map_err(|_| "UnknownError: credential id too long".to_owned())?;
        auth_data.extend_from_slice(&id_len.to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key);
        let attestation_object = cbor(&Cbor::Map(vec![
            (Cbor::from("fmt"), Cbor::from("none")),
            (Cbor::from("attStmt"), Cbor::Map(Vec::new())),
            (Cbor::from("authData"), Cbor::Bytes(auth_data.clone())),
        ]))?;
        let client_data = client_data_json("webauthn.create", &challenge, origin);
        // The SubjectPublicKeyInfo DER header of an id-ecPublicKey on prime256v1, for the
        // `publicKey` member browsers add to the JSON.
        let mut spki = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.extend_from_slice(point);

        let response = json!({
            "id": URL_SAFE_NO_PAD.encode(&id),
            "rawId": URL_SAFE_NO_PAD.encode(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data.as_bytes()),
                "attestationObject": URL_SAFE_NO_PAD.encode(&attestation_object),
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
                "publicKey": URL_SAFE_NO_PAD.encode(&spki),
                "publicKeyAlgorithm": ES256,
                "transports": ["internal"],
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        });

        // CTAP2 authenticatorMakeCredential: a new discoverable credential overwrites the one
        // held for the same rp id and user handle.
        if discoverable {
            self.credentials.retain(|c| !(c.discoverable && c.rp_id == rp_id && c.user_handle == user_handle));
        }
        self.credentials.push(Credential { id, key, rp_id, user_handle, discoverable, sign_count });
        Ok(response)
    }

    /// `navigator.credentials.get(options)` followed by `PublicKeyCredential.toJSON()`, with the
    /// newest usable credential.
    pub fn authenticate(&mut self, options: &Value, origin: &str) -> Result<Value, String> {
        self.assert(options, origin, None)
    }

    /// [`Self::authenticate`] with the credential `credential_id` (base64url), as when the user
    /// picks one of several accounts; fails if the options do not allow it.
    pub fn authenticate_with(&mut self, options: &Value, origin: &str, credential_id: &str) -> Result<Value, String> {
        let id = decode("credential_id", credential_id)?;
        self.assert(options, origin, Some(&id))
    }

    /// The ids of its credentials, base64url without padding, oldest first.
    pub fn credential_ids(&self) -> Vec<String> {
        self.credentials.iter().map(|c| URL_SAFE_NO_PAD.encode(&c.id)).collect()
    }

    /// The stored counter of a credential; the next assertion reports one more (unless the
    /// counter is kept at zero).
    pub fn sign_count(&self, credential_id: &str) -> Option<u32> {
        self.find(credential_id).map(|i| self.credentials[i].sign_count)
    }

    /// Sets the stored counter of a credential: the next assertion reports `count + 1`.
    /// Panics if the authenticator does not hold `credential_id`.
    pub fn set_sign_count(&mut self, credential_id: &str, count: u32) {
        let Some(i) = self.find(credential_id) else {
            panic!("the software authenticator holds no credential {credential_id}");
        };
        self.credentials[i].sign_count = count;
    }

    /// While set, assertions report counter 0 and leave the stored counter alone, as synced
    /// passkeys do (WebAuthn §6.1.1: a counter of 0 means the authenticator has none).
    pub fn keep_counter_at_zero(&mut self, yes: bool) {
        self.counter_at_zero = yes;
    }

    fn find(&self, credential_id: &str) -> Option<usize> {
        let id = URL_SAFE_NO_PAD.decode(credential_id.trim_end_matches('=')).ok()?;
        self.credentials.iter().position(|c| c.id == id)
    }

    fn assert(&mut self, options: &Value, origin: &str, chosen: Option<&[u8]>) -> Result<Value, String> {
        let RequestOptions { public_key: options } = serde_json::from_value(options.clone())
            .map_err(|e| format!("TypeError: the request options are not valid: {e}"))?;
        let rp_id = match options.rp_id {
            Some(id) => id,
            None => origin_host(origin)?,
        };
        check_rp_id(&rp_id, origin)?;
        let challenge = decode("challenge", &options.challenge)?;
        let allowed = options
            .allow_credentials
            .unwrap_or_default()
            .iter()
            .map(|c| decode("allowCredentials[].id", &c.id))
            .collect::<Result<Vec<_>, _>>()?;

        let usable = |c: &Credential| {
            c.rp_id == rp_id
                && if allowed.is_empty() { c.discoverable } else { allowed.contains(&c.id) }
                && chosen.is_none_or(|id| id == c.id.as_slice())
        };
        let Some(credential) = self.credentials.iter_mut().rev().find(|c| usable(c)) else {
            return Err(format!("NotAllowedError: no credential for rp id {rp_id} fits the request"));
        };

        let sign_count = if self.counter_at_zero {
            0
        } else {
            credential.sign_count = credential.sign_count.saturating_add(1);
            credential.sign_count
        };
        let auth_data = authenticator_data(&rp_id, self.flags.byte(), sign_count);
        let client_data = client_data_json("webauthn.get", &challenge, origin);
        // WebAuthn §6.3.3 step 11: the signature covers authenticatorData || SHA-256(clientDataJSON).
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, client_data.as_bytes()).as_ref());
        let signature = credential
            .key
            .sign(&self.rng, &signed)
            .map_err(|_| "UnknownError: could not sign the assertion".to_owned())?;
        // A CTAP2 authenticator returns the user handle only for discoverable credentials.
        let user_handle = credential.discoverable.then(|| URL_SAFE_NO_PAD.encode(&credential.user_handle));

        Ok(json!({
            "id": URL_SAFE_NO_PAD.encode(&credential.id),
            "rawId": URL_SAFE_NO_PAD.encode(&credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(client_data.as_bytes()),
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
                "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
                "userHandle": user_handle,
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        }))
    }
}

/// `{"publicKey": PublicKeyCredentialCreationOptionsJSON}`: only the members it acts on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreationOptions {
    public_key: CreationPublicKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreationPublicKey {
    challenge: String,
    rp: RelyingParty,
    user: User,
    pub_key_cred_params: Vec<CredentialParameters>,
    #[serde(default)]
    exclude_credentials: Option<Vec<CredentialDescriptor>>,
    #[serde(default)]
    authenticator_selection: Option<AuthenticatorSelection>,
}

#[derive(Deserialize)]
struct RelyingParty {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

#[derive(Deserialize)]
struct CredentialParameters {
    #[serde(rename = "type")]
    type_: String,
    alg: i64,
}

#[derive(Deserialize)]
struct CredentialDescriptor {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthenticatorSelection {
    #[serde(default)]
    resident_key: Option<String>,
    #[serde(default)]
    require_resident_key: bool,
}

/// `{"publicKey": PublicKeyCredentialRequestOptionsJSON, "mediation": ...}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestOptions {
    public_key: RequestPublicKey,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestPublicKey {
    challenge: String,
    #[serde(default)]
    rp_id: Option<String>,
    #[serde(default)]
    allow_credentials: Option<Vec<CredentialDescriptor>>,
}

fn decode(what: &str, b64url: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(b64url.trim_end_matches('=')).map_err(|e| format!("TypeError: {what} is not base64url: {e}"))
}

fn cbor(value: &Cbor) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|e| format!("UnknownError: CBOR encoding failed: {e}"))?;
    Ok(out)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// rpIdHash || flags || signCount (WebAuthn §6.1), without attested credential data.
fn authenticator_data(rp_id: &str, flags: u8, sign_count: u32) -> Vec<u8> {
    let mut data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
    data.push(flags);
    data.extend_from_slice(&sign_count.to_be_bytes());
    data
}

/// The client data a browser serialises (WebAuthn §5.8.1.1), members in the browser's order.
fn client_data_json(type_: &str, challenge: &[u8], origin: &str) -> String {
    format!(
        r#"{{"type":{},"challenge":{},"origin":{},"crossOrigin":false}}"#,
        Value::from(type_),
        Value::from(URL_SAFE_NO_PAD.encode(challenge)),
        Value::from(origin),
    )
}

fn origin_host(origin: &str) -> Result<String, String> {
    let url = url::Url::parse(origin).map_err(|e| format!("SecurityError: origin {origin} is not a URL: {e}"))?;
    url.host_str().map(str::to_owned).ok_or_else(|| format!("SecurityError: origin {origin} has no host"))
}

/// What a browser checks before it lets a page use an rp id (WebAuthn §5.1.3 step 7/8 and
/// §5.1.4.1): a secure context, and an rp id that is the origin's host or a parent domain.
fn check_rp_id(rp_id: &str, origin: &str) -> Result<(), String> {
    let url = url::Url::parse(origin).map_err(|e| format!("SecurityError: origin {origin} is not a URL: {e}"))?;
    let host = origin_host(origin)?;
    if !matches!(url.host(), Some(url::Host::Domain(_))) {
        return Err(format!("SecurityError: origin {origin} has an IP address, which cannot carry an rp id"));
    }
    let localhost = host == "localhost" || host.ends_with(".localhost");
    if url.scheme() != "https" && !(url.scheme() == "http" && localhost) {
        return Err(format!("SecurityError: {origin} is not a secure context"));
    }
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        return Err(format!("SecurityError: rp id {rp_id} is not {host} or a parent domain of it"));
    }
    Ok(())
}
