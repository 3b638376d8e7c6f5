//! The retention of accounts, run by a job every five minutes (on one node) and by
//! `latchkey retention`:
//!
//! - `[retention] inactive_accounts`: an account nobody used for that long (no sign-in, no
//!   session of its used, no token of its refreshed, no API key of its used; sign-ins are
//!   kept to the hour) gets a notice by email, to its verified address; if it stays unused
//!   `inactive_accounts_grace` longer, it is disabled (locked) or deleted (erased), as
//!   `inactive_accounts_action` says — deleted only if the notice could be emailed, else
//!   disabled. Any use meanwhile cancels the notice. Service accounts and locked accounts
//!   are left alone.
//! - `[retention] unverified_sign_ups`: an account created by sign-up whose address is still
//!   unverified that long after, and that nobody used for as long, is erased.
//!
//! Each step re-checks its rule in its own transaction with the person's row held, so a
//! sign-in or a verification at the same moment wins. A step the admin rules refuse (it
//! would remove the last administrator) is left and counted; one that fails (a row that
//! does not open, a template that does not render) is logged and counted, and the others go
//! on.

use std::time::Duration;

use latchkey_config::InactiveAccountAction;
use latchkey_core::UnixTime;
use latchkey_core::records::Actor;
use latchkey_store::{AccountRetention as Rule, InactiveAccount, UnverifiedSignUp};
use minijinja::context;

use crate::{Latchkey, ServiceError, ServiceResult};

/// Accounts read per page.
const PAGE: u32 = 200;

/// What a run did to accounts (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AccountsReport {
    /// Owners told their unused account will be disabled or deleted.
    pub noticed: u64,
    /// Unused accounts disabled after their grace.
    pub disabled: u64,
    /// Unused accounts deleted after their grace.
    pub deleted: u64,
    /// Sign-ups deleted, unused and with their address never verified.
    pub unverified_deleted: u64,
    /// Steps the admin rules refused (the last administrator): the accounts stay as they are.
    pub refused: u64,
    /// Accounts a step failed for (logged): left for the next run, the others go on.
    pub failed: u64,
}

/// One step done (or, dry, due) on one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Noticed,
    Disabled,
    Deleted,
    UnverifiedDeleted,
    Refused,
}

impl AccountsReport {
    fn add(&mut self, done: Done) {
        match done {
            Done::Noticed => self.noticed += 1,
            Done::Disabled => self.disabled += 1,
            Done::Deleted => self.deleted += 1,
            Done::UnverifiedDeleted => self.unverified_deleted += 1,
            Done::Refused => self.refused += 1,
        }
    }
}

pub struct AccountRetention<'a>(pub(crate) &'a Latchkey);

/// What is due for an account the inactivity rule found.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    /// Used after all (a session, a token, an API key): its inactivity starts again from
    /// that use.
    Used(UnixTime),
    Notice,
    Wait,
    Act {
        notice_at: UnixTime,
    },
}

fn due(account: &InactiveAccount, cutoff: UnixTime, now: UnixTime, grace: Duration) -> Due {
    match account.notice_at {
        Some(at) if account.last_use >= at => Due::Used(account.last_use),
        Some(at) if now >= at.plus(grace) => Due::Act { notice_at: at },
        Some(_) => Due::Wait,
        None if account.last_use >= cutoff => Due::Used(account.last_use),
        None => Due::Notice,
    }
}

const INACTIVE: &str = "inactive_accounts";
const UNVERIFIED: &str = "unverified_sign_ups";

impl AccountRetention<'_> {
    /// Whether either rule is configured.
    pub fn enabled(&self) -> bool {
        let config = &self.0.config.retention;
        config.inactive_accounts().is_some() || config.unverified_sign_ups().is_some()
    }

    /// Carries out (or, with `dry_run`, counts) every step that is due. A step that fails
    /// for one account is logged and counted, and the run goes on with the others.
    pub async fn run(&self, dry_run: bool) -> ServiceResult<AccountsReport> {
        let config = &self.0.config.retention;
        let now = self.0.clock.now();
        let mut report = AccountsReport::default();
        if let Some(period) = config.inactive_accounts() {
            self.inactive(now, now.minus(period), dry_run, &mut report).await?;
        }
        if let Some(period) = config.unverified_sign_ups() {
            self.unverified(now.minus(period), dry_run, &mut report).await?;
        }
        if !dry_run {
            let mut removed = std::collections::BTreeMap::new();
            removed.insert(INACTIVE.to_owned(), report.deleted);
            removed.insert(UNVERIFIED.to_owned(), report.unverified_deleted);
            crate::retention::count(&removed);
        }
        Ok(report)
    }

    /// Adds a step's outcome to the report (and, when it was done, to the metrics).
    fn record(
        &self,
        rule: &'static str,
        sub: &latchkey_core::domain::SubjectId,
        outcome: ServiceResult<Option<Done>>,
        dry_run: bool,
        report: &mut AccountsReport,
    ) {
        let step = match outcome {
            Ok(None) => return,
            Ok(Some(done)) => {
                report.add(done);
                match done {
                    Done::Noticed => "noticed",
                    Done::Disabled => "disabled",
                    Done::Deleted | Done::UnverifiedDeleted => "deleted",
                    Done::Refused => "refused",
                }
            }
            Err(e) => {
                tracing::warn!(%sub, rule, error = %e, "account retention left an account: the step failed");
                report.failed += 1;
                "failed"
            }
        };
        if !dry_run {
            metrics::counter!("latchkey_account_retention_total", "rule" => rule, "step" => step).increment(1);
        }
    }

    async fn inactive(
        &self,
        now: UnixTime,
        cutoff: UnixTime,
        dry_run: bool,
        report: &mut AccountsReport,
    ) -> ServiceResult<()> {
        let store = self.0.store();
        let mut after: Option<InactiveAccount> = None;
        loop {
            let page = store.inactive_accounts(cutoff, after.as_ref(), PAGE).await?;
            for account in &page {
                let outcome = self.inactive_step(account, cutoff, now, dry_run).await;
                self.record(INACTIVE, &account.sub, outcome, dry_run, report);
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
            after = page.last().cloned();
        }
    }

    async fn inactive_step(
        &self,
        account: &InactiveAccount,
        cutoff: UnixTime,
        now: UnixTime,
        dry_run: bool,
    ) -> ServiceResult<Option<Done>> {
        let config = &self.0.config.retention;
        match due(account, cutoff, now, config.inactive_accounts_grace) {
            Due::Wait => Ok(None),
            Due::Used(_) if dry_run => Ok(None),
            Due::Used(at) => {
                self.0.store().record_account_use(&account.tenant, &account.sub, at).await?;
                Ok(None)
            }
            Due::Notice if dry_run => Ok(Some(Done::Noticed)),
            Due::Notice => Ok(self.notice(account, now).await?.then_some(Done::Noticed)),
            Due::Act { notice_at } => {
                // Deleted only if its owner could be told by email; otherwise disabled, so
                // that nothing is erased without a word.
                let action = match config.inactive_accounts_action {
                    InactiveAccountAction::Delete if self.emailable(account).await? => InactiveAccountAction::Delete,
                    _ => InactiveAccountAction::Disable,
                };
                let done = match action {
                    InactiveAccountAction::Disable => Done::Disabled,
                    InactiveAccountAction::Delete => Done::Deleted,
                };
                if dry_run {
                    return Ok(Some(done));
                }
                let (tenant, sub) = (&account.tenant, &account.sub);
                let rule = Some(Rule::Inactive { notice_at });
                let step = match action {
                    InactiveAccountAction::Disable => self
                        .0
                        .users()
                        .lock_if(tenant, sub, "user_locked", rule, &Actor::System)
                        .await
                        .map(|d| d.is_some()),
                    InactiveAccountAction::Delete => {
                        self.0.erasure().erase_if(tenant, sub, rule, &Actor::System).await.map(|r| r.is_some())
                    }
                };
                refused_or(step, done)
            }
        }
    }

    /// Whether the account has a verified address a notice could go to.
    async fn emailable(&self, account: &InactiveAccount) -> ServiceResult<bool> {
        let user = self.0.users().by_sub(&account.tenant, &account.sub).await?;
        Ok(self.0.outbox().mail_enabled() && user.is_some_and(|u| u.email.is_some() && u.email_verified))
    }

    /// Tells the owner (in the notice's transaction, through the outbox) and records it.
    /// False when someone signed in meanwhile or the account is gone.
    async fn notice(&self, account: &InactiveAccount, now: UnixTime) -> ServiceResult<bool> {
        let s = self.0;
        let config = &s.config.retention;
        let (tenant, sub) = (&account.tenant, &account.sub);
        let mut tx = s.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let user = match tx.user(tenant, sub).await {
            Ok(user) => user,
            Err(latchkey_store::StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let outbox = s.outbox();
        let to = user.email.as_ref().filter(|_| user.email_verified && outbox.mail_enabled());
        let on = now.plus(config.inactive_accounts_grace);
        // What will happen: an account nobody can be told about is disabled, never deleted.
        let action = match (config.inactive_accounts_action, to) {
            (InactiveAccountAction::Delete, Some(_)) => InactiveAccountAction::Delete,
            _ => InactiveAccountAction::Disable,
        };
        let details = serde_json::json!({"emailed": to.is_some(), "action": action.as_str(), "on": on.secs()});
        if !tx.record_inactivity_notice(tenant, sub, account.last_sign_in, now, details).await? {
            return Ok(false);
        }
        if let Some(to) = to {
            let values = context! {
                account => s.users().known_as(&user),
                since => day(account.last_use),
                unused_days => config.inactive_accounts.as_secs() / 86_400,
                action => match action {
                    InactiveAccountAction::Disable => "disabled",
                    InactiveAccountAction::Delete => "deleted",
                },
                on => day(on),
                link => format!("{}/account/security", s.issuer),
            };
            let email = outbox.render("inactive_account", to.as_str(), values)?;
            outbox.queue_email(tx.as_mut(), tenant, "inactive_account", &email, on, &Actor::System).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn unverified(&self, before: UnixTime, dry_run: bool, report: &mut AccountsReport) -> ServiceResult<()> {
        let store = self.0.store();
        let mut after: Option<UnverifiedSignUp> = None;
        loop {
            let page = store.unverified_sign_ups(before, after.as_ref(), PAGE).await?;
            for account in &page {
                let outcome = if dry_run {
                    Ok(Some(Done::UnverifiedDeleted))
                } else {
                    let rule = Some(Rule::UnverifiedSignUp { created_before: before });
                    let step = self.0.erasure().erase_if(&account.tenant, &account.sub, rule, &Actor::System).await;
                    refused_or(step.map(|r| r.is_some()), Done::UnverifiedDeleted)
                };
                self.record(UNVERIFIED, &account.sub, outcome, dry_run, report);
            }
            if page.len() < PAGE as usize {
                return Ok(());
            }
            after = page.last().cloned();
        }
    }
}

/// A step's outcome: `done` when it was carried out, nothing when its rule no longer held
/// or the account is gone, `Refused` when the admin rules refused it (the last
/// administrator), and any other failure as it is.
fn refused_or(step: ServiceResult<bool>, done: Done) -> ServiceResult<Option<Done>> {
    match step {
        Ok(true) => Ok(Some(done)),
        Ok(false) | Err(ServiceError::NotFound(_)) => Ok(None),
        Err(ServiceError::Conflict(reason)) => {
            tracing::warn!(%reason, "account retention left an account: the admin rules refuse the step");
            Ok(Some(Done::Refused))
        }
        Err(e) => Err(e),
    }
}

/// A day as people read it in a message: `2027-01-06`.
fn day(t: UnixTime) -> String {
    t.to_rfc3339().chars().take(10).collect()
}

pub fn describe_metrics() {
    metrics::describe_counter!(
        "latchkey_account_retention_total",
        "Steps of the accounts' retention rules, by rule (inactive_accounts, unverified_sign_ups) and step \
         (noticed, disabled, deleted; refused by the admin rules; failed)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::domain::{SubjectId, TenantId};

    fn account(last_use: i64, notice_at: Option<i64>) -> InactiveAccount {
        InactiveAccount {
            tenant: TenantId::default_tenant(),
            sub: SubjectId::parse("u1").unwrap_or_else(|e| panic!("{e}")),
            last_sign_in: UnixTime::from_secs(0),
            last_use: UnixTime::from_secs(last_use),
            notice_at: notice_at.map(UnixTime::from_secs),
        }
    }

    #[test]
    fn what_is_due_follows_the_last_use_and_the_notice() {
        let (cutoff, now, grace) = (UnixTime::from_secs(1_000), UnixTime::from_secs(2_000), Duration::from_secs(500));
        assert_eq!(due(&account(900, None), cutoff, now, grace), Due::Notice);
        assert_eq!(due(&account(1_000, None), cutoff, now, grace), Due::Used(UnixTime::from_secs(1_000)));
        assert_eq!(due(&account(900, Some(1_600)), cutoff, now, grace), Due::Wait);
        assert_eq!(
            due(&account(900, Some(1_500)), cutoff, now, grace),
            Due::Act { notice_at: UnixTime::from_secs(1_500) }
        );
        // Used after the notice: no action, however late.
        assert_eq!(due(&account(1_500, Some(1_500)), cutoff, now, grace), Due::Used(UnixTime::from_secs(1_500)));
    }
}
