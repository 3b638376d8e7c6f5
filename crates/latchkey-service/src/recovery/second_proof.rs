//! The second proof a recovery asks of an account that has more than its address: the
//! authenticator app's code, or a code texted to its phone (its sign-in second step).

use std::net::IpAddr;

use latchkey_core::domain::TenantId;

use super::{Proof, Recovery, RecoveryRefusal, RecoverySession};
use crate::ServiceError;
use crate::sign_in::{Account, Admission, Guess};

impl Recovery<'_> {
    /// The authenticator app's code, as the second proof (counted like a sign-in's).
    pub async fn give_app_code(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        code: &str,
        ip: IpAddr,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        self.give(tenant, session, ip, Proof::AppCodeNeeded, self.0.factors().check_totp(tenant, &session.sub, code))
            .await
    }

    /// Counts the attempt like a sign-in's second step, then takes `right`'s answer: the
    /// session with the second proof given, if it asked for `needed`.
    async fn give(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        ip: IpAddr,
        needed: Proof,
        right: impl std::future::Future<Output = bool>,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        self.live(session)?;
        if session.proof != needed {
            return Err(RecoveryRefusal::NotNow);
        }
        let sign_in = self.0.sign_in();
        let attempt = match sign_in.reserve(tenant, Guess::SecondFactor, Account::Known(&session.sub), ip).await {
            Admission::Allowed(a) => a,
            Admission::Refused => return Err(RecoveryRefusal::TooMany),
            Admission::Unavailable => return Err(RecoveryRefusal::Unavailable("the attempt counters".into())),
        };
        if !right.await {
            attempt.failed();
            return Err(RecoveryRefusal::WrongCode);
        }
        sign_in.succeeded(tenant, attempt).await;
        Ok(RecoverySession { proof: Proof::Given, ..session.clone() })
    }

    /// Texts the account's sign-in code, for [`Proof::TextCodeNeeded`].
    pub async fn send_text_code(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        ip: IpAddr,
    ) -> Result<(), RecoveryRefusal> {
        self.live(session)?;
        if session.proof != Proof::TextCodeNeeded {
            return Err(RecoveryRefusal::NotNow);
        }
        let step = crate::sms_second_factor::Step::Recovery;
        match self.0.sms_second_factor().send(tenant, &session.sub, ip, step).await {
            Ok(_) => Ok(()),
            Err(ServiceError::Invalid(m)) if m.contains("too many") => Err(RecoveryRefusal::TooMany),
            Err(ServiceError::Invalid(_)) => Err(RecoveryRefusal::NotNow),
            Err(e) => Err(e.into()),
        }
    }

    /// The texted code, as the second proof (counted like a sign-in's).
    pub async fn give_text_code(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        code: &str,
        ip: IpAddr,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        let texted = self.0.sms_second_factor();
        self.give(tenant, session, ip, Proof::TextCodeNeeded, texted.check(tenant, &session.sub, code)).await
    }
}
