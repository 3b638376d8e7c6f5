//! WebAuthn for Latchkey: the relying party, built once from the config, and the two
//! ceremonies — registering a passkey and signing in with one.
//!
//! Every passkey is created as a discoverable credential (resident key *required*), so it
//! signs in without a username; user verification is always required. The WebAuthn user
//! handle is a random UUID per user that says nothing about them. Ceremony state lives in
//! the database (the server keeps it as a ceremony through `Factors::put_ceremony`), so any node finishes what another began.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::records::{NewPasskey, StoredPasskey};
use serde_json::Value;
use webauthn_rs::prelude::*;

use latchkey_config::Config;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("passkeys are not available: {0}")]
    Unavailable(String),
    #[error("the browser's answer is not a WebAuthn credential: {0}")]
    Malformed(String),
    /// The ceremony failed verification (wrong origin, challenge, signature, no UV, ...).
    #[error("the passkey was not accepted: {0}")]
    Rejected(String),
    /// The signature counter did not grow: the authenticator may have been cloned.
    #[error("the passkey's signature counter went backwards")]
    PossibleClone,
    #[error("cannot keep the passkey: {0}")]
    Stored(String),
}

/// The relying party. `None` inside when the issuer's host cannot be a WebAuthn RP id (an
/// IP address): the server runs, and passkey pages say why they cannot work.
pub struct Passkeys {
    webauthn: Result<Webauthn, String>,
    pub rp_id: String,
}

impl Passkeys {
    pub fn new(config: &Config, issuer: &str) -> Self {
        let origin = Url::parse(issuer).ok();
        let rp_id = config
            .passkeys
            .rp_id
            .clone()
            .or_else(|| origin.as_ref().and_then(|u| u.host_str().map(str::to_owned)))
            .unwrap_or_default();
        let webauthn = (|| {
            let origin = origin.as_ref().ok_or("the issuer is not a URL")?;
            if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') {
                return Err(format!(
                    "the RP id `{rp_id}` is an IP address; WebAuthn needs a domain name (use `localhost` or set server.public_url / passkeys.rp_id)"
                ));
            }
            let mut builder = WebauthnBuilder::new(&rp_id, origin)
                .map_err(|e| format!("RP id `{rp_id}` does not fit `{origin}`: {e}"))?
                .rp_name(&config.passkeys.rp_name)
                .timeout(config.passkeys.challenge_lifetime);
            for extra in &config.passkeys.extra_origins {
                builder = builder.append_allowed_origin(extra);
            }
            builder.build().map_err(|e| e.to_string())
        })();
        if let Err(reason) = &webauthn {
            tracing::warn!(%reason, "passkeys are unavailable");
        }
        Self { webauthn, rp_id }
    }

    fn rp(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_ref().map_err(|e| PasskeyError::Unavailable(e.clone()))
    }

    pub fn available(&self) -> bool {
        self.webauthn.is_ok()
    }

    /// Options for `navigator.credentials.create`, and the state to keep until the answer.
    /// `exclude` lists the user's passkeys, so an authenticator that holds one says so.
    pub fn start_registration(
        &self,
        user_handle: Uuid,
        username: &str,
        display_name: &str,
        exclude: &[StoredPasskey],
    ) -> Result<(Value, PasskeyRegistration), PasskeyError> {
        let exclude: Vec<CredentialID> =
            exclude.iter().filter_map(|p| URL_SAFE_NO_PAD.decode(&p.credential_id).ok()).collect();
        let (options, state) = self
            .rp()?
            .start_passkey_registration(user_handle, username, display_name, Some(exclude))
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let mut json = serde_json::to_value(options).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        // webauthn-rs asks for `residentKey: "discouraged"`; a passkey must be discoverable.
        if let Some(selection) = json.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut) {
            selection.insert("residentKey".into(), Value::from("required"));
            selection.insert("requireResidentKey".into(), Value::from(true));
        }
        Ok((json, state))
    }

    /// Verifies the browser's answer to a registration and returns the passkey to store.
    pub fn finish_registration(
        &self,
        response: &str,
        state: &PasskeyRegistration,
        name: &str,
    ) -> Result<NewPasskey, PasskeyError> {
        let response: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let passkey = self
            .rp()?
            .finish_passkey_registration(&response, state)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let credential = serde_json::to_value(&passkey).map_err(|e| PasskeyError::Stored(e.to_string()))?;
        let flag = |name: &str| credential.pointer(&format!("/cred/{name}")).and_then(Value::as_bool).unwrap_or(false);
        let counter = credential.pointer("/cred/counter").and_then(Value::as_u64).unwrap_or(0);
        Ok(NewPasskey {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            name: name.to_owned(),
            sign_count: u32::try_from(counter).unwrap_or(u32::MAX),
            backup_eligible: flag("backup_eligible"),
            backup_state: flag("backup_state"),
            credential: credential.to_string(),
        })
    }

    /// Options for `navigator.credentials.get`. An empty `allow` lets the browser offer
    /// every passkey it has for this site (usernameless); `conditional` is for autofill.
    pub fn start_sign_in(
        &self,
        allow: &[String],
        conditional: bool,
    ) -> Result<(Value, DiscoverableAuthentication), PasskeyError> {
        let (options, state) =
            self.rp()?.start_discoverable_authentication().map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let mut json = serde_json::to_value(options).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        if let Some(object) = json.as_object_mut() {
            if conditional {
                object.insert("mediation".into(), Value::from("conditional"));
            } else {
                object.remove("mediation");
            }
        }
        if !allow.is_empty()
            && let Some(public_key) = json.pointer_mut("/publicKey").and_then(Value::as_object_mut)
        {
            let list: Vec<Value> =
                allow.iter().map(|id| serde_json::json!({ "type": "public-key", "id": id })).collect();
            public_key.insert("allowCredentials".into(), Value::from(list));
        }
        Ok((json, state))
    }

    /// The credential id (base64url) and user handle of a sign-in answer, to find the passkey.
    pub fn identify(response: &str) -> Result<(PublicKeyCredential, String, Option<Vec<u8>>), PasskeyError> {
        let credential: PublicKeyCredential =
            serde_json::from_str(response).map_err(|e| PasskeyError::Malformed(e.to_string()))?;
        let id = URL_SAFE_NO_PAD.encode(credential.get_credential_id());
        let handle = credential.get_user_unique_id().map(<[u8]>::to_vec);
        Ok((credential, id, handle))
    }

    /// Verifies a sign-in answer against the stored passkey. Returns the updated credential
    /// record and the verification result.
    pub fn finish_sign_in(
        &self,
        response: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        stored: &StoredPasskey,
    ) -> Result<(String, AuthenticationResult), PasskeyError> {
        let mut passkey: Passkey =
            serde_json::from_str(&stored.credential).map_err(|e| PasskeyError::Stored(e.to_string()))?;
        let result =
            self.rp()?.finish_discoverable_authentication_v2(response, state, &passkey).map_err(|e| match e {
                WebauthnError::CredentialPossibleCompromise => PasskeyError::PossibleClone,
                other => PasskeyError::Rejected(other.to_string()),
            })?;
        passkey.update_credential(&result);
        let updated = serde_json::to_string(&passkey).map_err(|e| PasskeyError::Stored(e.to_string()))?;
        Ok((updated, result))
    }
}

/// A user handle for a user who has none yet.
pub fn new_user_handle() -> Uuid {
    Uuid::from_bytes(latchkey_core::crypto::random::bytes::<16>())
}

/// The ceremony states the pages keep between the two halves of a ceremony.
pub use webauthn_rs::prelude::{DiscoverableAuthentication, PasskeyRegistration, Uuid};
