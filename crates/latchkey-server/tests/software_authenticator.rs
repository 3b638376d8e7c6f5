//! The software authenticator the passkey tests sign in with, checked against webauthn-rs
//! itself: if these pass, a failure in a server test is the server's, not the authenticator's.
// Clippy counts only `#[test]` functions of an integration test as tests, not their helpers.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

#[path = "support/authenticator.rs"]
mod authenticator;

use authenticator::{Flags, SoftAuthenticator};
use serde_json::{Value, json};
use webauthn_rs::prelude::{
    AuthenticationResult, Passkey, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder, WebauthnError,
};

const ORIGIN: &str = "http://localhost:8080";

fn webauthn() -> Webauthn {
    let origin = Url::parse(ORIGIN).expect("origin");
    WebauthnBuilder::new("localhost", &origin).expect("builder").rp_name("Latchkey").build().expect("webauthn")
}

/// A passkey sign-up as the server will do it: a discoverable credential, so the user can
/// later sign in without typing a name.
fn sign_up(
    webauthn: &Webauthn,
    authenticator: &mut SoftAuthenticator,
    user: Uuid,
    exclude: Option<Vec<Passkey>>,
) -> Result<Passkey, String> {
    let exclude = exclude.map(|keys| keys.iter().map(|k| k.cred_id().clone()).collect());
    let (mut ccr, state) = webauthn.start_passkey_registration(user, "claire", "Claire", exclude).expect("start");
    let selection = ccr.public_key.authenticator_selection.as_mut().expect("authenticator selection");
    selection.require_resident_key = true;
    // webauthn-rs's prelude does not export ResidentKeyRequirement; serde names it for us.
    selection.resident_key = Some(serde_json::from_value(json!("required")).expect("resident key requirement"));

    let options = serde_json::to_value(&ccr).expect("options JSON");
    let response = authenticator.register(&options, ORIGIN)?;
    let response: RegisterPublicKeyCredential = serde_json::from_value(response).expect("registration response");
    webauthn.finish_passkey_registration(&response, &state).map_err(|e| format!("finish registration: {e:?}"))
}

/// What the server stores for a passkey: webauthn-rs keeps `Credential` (counter, flags)
/// behind its `danger-credential-internals` feature, so read the serialised form.
fn stored(passkey: &Passkey) -> Value {
    serde_json::to_value(passkey).expect("passkey JSON")["cred"].take()
}

/// A conditional-UI sign-in: no user name; the user handle says who it is.
fn sign_in(
    webauthn: &Webauthn,
    authenticator: &mut SoftAuthenticator,
    passkey: &Passkey,
) -> Result<(Uuid, AuthenticationResult), WebauthnError> {
    let (rcr, state) = webauthn.start_discoverable_authentication().expect("start");
    let options = serde_json::to_value(&rcr).expect("options JSON");
    let response = authenticator.authenticate(&options, ORIGIN).expect("assertion");
    let response: PublicKeyCredential = serde_json::from_value(response).expect("assertion response");
    let (user, cred_id) = webauthn.identify_discoverable_authentication(&response)?;
    assert_eq!(cred_id, passkey.cred_id().as_slice(), "the assertion names the registered credential");
    let result = webauthn.finish_discoverable_authentication_v2(&response, state, passkey)?;
    Ok((user, result))
}

#[test]
fn a_passkey_signs_up_and_then_signs_in_without_a_user_name() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::default());
    let user = Uuid::new_v4();

    let mut passkey = sign_up(&webauthn, &mut authenticator, user, None).expect("sign-up");
    assert_eq!(authenticator.credential_ids().len(), 1);
    let credential = stored(&passkey);
    assert_eq!(credential["user_verified"], true);
    assert_eq!(credential["backup_eligible"], false, "device-bound by default");
    assert_eq!(credential["backup_state"], false);
    assert_eq!(credential["counter"], 0);

    for expected_counter in 1..=3 {
        let (who, result) = sign_in(&webauthn, &mut authenticator, &passkey).expect("sign-in");
        assert_eq!(who, user, "the user handle is the id given at sign-up");
        assert!(result.user_verified());
        assert!(!result.backup_eligible() && !result.backup_state());
        assert_eq!(result.counter(), expected_counter);
        assert!(result.needs_update(), "a rising counter must be stored");
        assert_eq!(passkey.update_credential(&result), Some(true));
    }
    let id = &authenticator.credential_ids()[0];
    assert_eq!(authenticator.sign_count(id), Some(3));
}

#[test]
fn an_authenticator_refuses_to_register_again_for_an_account_it_already_serves() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::default());
    let user = Uuid::new_v4();
    let passkey = sign_up(&webauthn, &mut authenticator, user, None).expect("sign-up");

    let error = sign_up(&webauthn, &mut authenticator, user, Some(vec![passkey.clone()])).expect_err("excluded");
    assert!(error.starts_with("InvalidStateError"), "{error}");
    assert_eq!(authenticator.credential_ids().len(), 1, "nothing was created");

    // Another authenticator of the same user has no excluded credential and may register.
    let mut second = SoftAuthenticator::new(Flags::default());
    sign_up(&webauthn, &mut second, user, Some(vec![passkey])).expect("a second device");
}

#[test]
fn a_counter_that_goes_backwards_is_reported_as_a_possible_clone() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::default());
    let mut passkey = sign_up(&webauthn, &mut authenticator, Uuid::new_v4(), None).expect("sign-up");
    for _ in 0..5 {
        let (_, result) = sign_in(&webauthn, &mut authenticator, &passkey).expect("sign-in");
        passkey.update_credential(&result);
    }
    assert_eq!(stored(&passkey)["counter"], 5);

    // A clone that has signed twice: its next assertion carries counter 3, below the stored 5.
    let id = authenticator.credential_ids()[0].clone();
    authenticator.set_sign_count(&id, 2);
    let error = sign_in(&webauthn, &mut authenticator, &passkey).expect_err("a clone");
    assert!(matches!(error, WebauthnError::CredentialPossibleCompromise), "{error:?}");

    // Equal to the stored counter is as suspicious as lower.
    authenticator.set_sign_count(&id, 4);
    let error = sign_in(&webauthn, &mut authenticator, &passkey).expect_err("a repeated counter");
    assert!(matches!(error, WebauthnError::CredentialPossibleCompromise), "{error:?}");

    authenticator.set_sign_count(&id, 5);
    let (_, result) = sign_in(&webauthn, &mut authenticator, &passkey).expect("counter 6");
    assert_eq!(result.counter(), 6);
}

#[test]
fn a_synced_passkey_without_a_counter_signs_in_again_and_again() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::synced());
    authenticator.keep_counter_at_zero(true);
    let mut passkey = sign_up(&webauthn, &mut authenticator, Uuid::new_v4(), None).expect("sign-up");

    for _ in 0..3 {
        let (_, result) = sign_in(&webauthn, &mut authenticator, &passkey).expect("sign-in");
        assert_eq!(result.counter(), 0);
        assert!(!result.needs_update(), "nothing changed");
        assert_eq!(passkey.update_credential(&result), Some(false));
    }
    let id = &authenticator.credential_ids()[0];
    assert_eq!(authenticator.sign_count(id), Some(0));
}

#[test]
fn backup_flags_reach_the_server() {
    let webauthn = webauthn();
    let mut authenticator =
        SoftAuthenticator::new(Flags { backup_eligible: true, backup_state: false, ..Flags::default() });
    let mut passkey = sign_up(&webauthn, &mut authenticator, Uuid::new_v4(), None).expect("sign-up");
    let credential = stored(&passkey);
    assert_eq!((&credential["backup_eligible"], &credential["backup_state"]), (&json!(true), &json!(false)));

    // The passkey gets synced after sign-up: BS turns on and the server learns it.
    authenticator.set_flags(Flags::synced());
    let (_, result) = sign_in(&webauthn, &mut authenticator, &passkey).expect("sign-in");
    assert!(result.backup_eligible() && result.backup_state());
    assert!(result.needs_update());
    passkey.update_credential(&result);
    assert_eq!(stored(&passkey)["backup_state"], true);

    // A credential cannot stop being backup eligible (WebAuthn §6.1.3).
    authenticator.set_flags(Flags::default());
    let error = sign_in(&webauthn, &mut authenticator, &passkey).expect_err("BE dropped");
    assert!(matches!(error, WebauthnError::CredentialBackupEligibilityInconsistent), "{error:?}");
}

#[test]
fn an_authenticator_that_cannot_verify_its_user_is_refused_a_passkey() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags { user_verified: false, ..Flags::default() });
    let error = sign_up(&webauthn, &mut authenticator, Uuid::new_v4(), None).expect_err("no UV");
    assert!(error.contains("UserNotVerified"), "{error}");
}

#[test]
fn a_credential_made_without_a_resident_key_needs_the_server_to_name_it() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::default());
    // webauthn-rs's own default asks for residentKey "discouraged".
    let (ccr, state) = webauthn.start_passkey_registration(Uuid::new_v4(), "claire", "Claire", None).expect("start");
    let options = serde_json::to_value(&ccr).expect("options JSON");
    let response = authenticator.register(&options, ORIGIN).expect("registration");
    let response: RegisterPublicKeyCredential = serde_json::from_value(response).expect("registration response");
    let passkey = webauthn.finish_passkey_registration(&response, &state).expect("finish registration");

    let (rcr, _) = webauthn.start_discoverable_authentication().expect("start");
    let options = serde_json::to_value(&rcr).expect("options JSON");
    let error = authenticator.authenticate(&options, ORIGIN).expect_err("not discoverable");
    assert!(error.starts_with("NotAllowedError"), "{error}");

    let (rcr, state) = webauthn.start_passkey_authentication(std::slice::from_ref(&passkey)).expect("start");
    let options = serde_json::to_value(&rcr).expect("options JSON");
    let response = authenticator.authenticate(&options, ORIGIN).expect("assertion");
    assert!(response["response"]["userHandle"].is_null(), "no user handle for a server-side credential");
    let response: PublicKeyCredential = serde_json::from_value(response).expect("assertion response");
    let result = webauthn.finish_passkey_authentication(&response, &state).expect("sign-in");
    assert_eq!(result.counter(), 1);
}

#[test]
fn a_browser_keeps_credentials_to_the_site_that_made_them() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::default());
    let (ccr, _) = webauthn.start_passkey_registration(Uuid::new_v4(), "claire", "Claire", None).expect("start");
    let options = serde_json::to_value(&ccr).expect("options JSON");
    for origin in ["https://evil.example", "http://127.0.0.1:8080", "http://example.localhost.evil:8080"] {
        let error = authenticator.register(&options, origin).expect_err(origin);
        assert!(error.starts_with("SecurityError"), "{origin}: {error}");
    }
    assert!(authenticator.credential_ids().is_empty());

    let passkey = sign_up(&webauthn, &mut authenticator, Uuid::new_v4(), None).expect("sign-up");
    let (rcr, state) = webauthn.start_discoverable_authentication().expect("start");
    let options = serde_json::to_value(&rcr).expect("options JSON");
    let error = authenticator.authenticate(&options, "https://evil.example").expect_err("phished");
    assert!(error.starts_with("SecurityError"), "{error}");

    // A browser on a subdomain may use the parent's rp id, and the server decides whether it
    // accepts that origin.
    let response = authenticator.authenticate(&options, "http://app.localhost:8080").expect("subdomain");
    let response: PublicKeyCredential = serde_json::from_value(response).expect("assertion response");
    let error = webauthn.finish_discoverable_authentication_v2(&response, state, &passkey).expect_err("origin");
    assert!(matches!(error, WebauthnError::InvalidRPOrigin), "{error:?}");
}

#[test]
fn a_user_with_two_accounts_picks_one() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::default());
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let alice_key = sign_up(&webauthn, &mut authenticator, alice, None).expect("alice");
    let bob_key = sign_up(&webauthn, &mut authenticator, bob, None).expect("bob");

    let (_, result) = sign_in(&webauthn, &mut authenticator, &bob_key).expect("the newest is the default");
    assert_eq!(result.cred_id(), bob_key.cred_id());

    let (rcr, state) = webauthn.start_discoverable_authentication().expect("start");
    let options = serde_json::to_value(&rcr).expect("options JSON");
    let alice_id = authenticator.credential_ids()[0].clone();
    let response = authenticator.authenticate_with(&options, ORIGIN, &alice_id).expect("alice's account");
    let response: PublicKeyCredential = serde_json::from_value(response).expect("assertion response");
    let (who, _) = webauthn.identify_discoverable_authentication(&response).expect("identify");
    assert_eq!(who, alice);
    webauthn.finish_discoverable_authentication_v2(&response, state, &alice_key).expect("sign-in");
}

#[test]
fn an_assertion_altered_on_the_way_is_refused() {
    let webauthn = webauthn();
    let mut authenticator = SoftAuthenticator::new(Flags::default());
    let passkey = sign_up(&webauthn, &mut authenticator, Uuid::new_v4(), None).expect("sign-up");

    let (rcr, state) = webauthn.start_discoverable_authentication().expect("start");
    let options = serde_json::to_value(&rcr).expect("options JSON");
    let mut response: PublicKeyCredential =
        serde_json::from_value(authenticator.authenticate(&options, ORIGIN).expect("assertion")).expect("response");
    // A clone raising its counter to look fresh: bytes 33..37 are the signed sign count.
    response.response.authenticator_data[33] = 0x7f;
    let error = webauthn.finish_discoverable_authentication_v2(&response, state, &passkey).expect_err("tampered");
    assert!(matches!(error, WebauthnError::AuthenticationFailure), "{error:?}");
}
