//! The protected-path rules in force on this node: read from `forward_auth.rules` at
//! start-up (a bad file stops the start), checked against the roles and groups that exist,
//! and read again when the file changes. A changed file that does not hold up is logged
//! and counted (`latchkey_forward_auth_rules_reloads_total{outcome="refused"}`); the rules
//! in force stay.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use latchkey_core::access_rules::AccessRules;
use latchkey_core::domain::{GroupName, RoleName, TenantId};

use crate::{Latchkey, ServiceError, ServiceResult};

/// How often the file's modification time is looked at.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct RulesInForce {
    rules: RwLock<Arc<AccessRules>>,
    /// The modification time and length of the file the rules came from.
    seen: RwLock<Option<(SystemTime, u64)>>,
}

impl RulesInForce {
    pub fn current(&self) -> Arc<AccessRules> {
        self.rules.read().map(|r| r.clone()).unwrap_or_default()
    }

    fn set(&self, rules: AccessRules, seen: Option<(SystemTime, u64)>) {
        if let Ok(mut r) = self.rules.write() {
            *r = Arc::new(rules);
        }
        if let Ok(mut s) = self.seen.write() {
            *s = seen;
        }
    }

    fn seen(&self) -> Option<(SystemTime, u64)> {
        self.seen.read().ok().and_then(|s| *s)
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl Latchkey {
    /// Reads and checks the rules file: every mistake, and every role or group that does
    /// not exist, named with the file and line.
    pub async fn read_access_rules(&self, path: &Path) -> ServiceResult<AccessRules> {
        let named =
            |line: usize, message: String| ServiceError::Invalid(format!("{} line {line}: {message}", path.display()));
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| ServiceError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let rules = AccessRules::parse(&text).map_err(|e| named(e.line, e.message))?;
        let tenant = TenantId::default_tenant();
        let (roles, groups) = rules.named_roles();
        if !roles.is_empty() {
            let known = self.access().roles(&tenant).await?;
            if let Some((line, role)) =
                roles.iter().find(|(_, r)| !known.iter().any(|k| k.application.is_none() && &k.name == *r))
            {
                return Err(named(*line, format!("role `{role}` does not exist (or belongs to one application)")));
            }
        }
        if !groups.is_empty() {
            let known = self.access().groups(&tenant).await?;
            if let Some((line, group)) = groups.iter().find(|(_, g)| !known.iter().any(|k| &k.name == *g)) {
                return Err(named(*line, format!("group `{group}` does not exist")));
            }
        }
        Ok(rules)
    }

    /// The line of the first rule in `forward_auth.rules` that names `role` (or `group`):
    /// read from the file, as the CLI has no rules in force. A file that cannot be read
    /// names nothing (start-up and check-config report it).
    pub(crate) async fn rule_naming(&self, role: Option<&RoleName>, group: Option<&GroupName>) -> Option<usize> {
        let path = self.config.forward_auth.rules.as_ref()?;
        let text = tokio::fs::read_to_string(path).await.ok()?;
        let rules = AccessRules::parse(&text).ok()?;
        let (roles, groups) = rules.named_roles();
        let by_role = role.and_then(|r| roles.iter().find(|(_, n)| *n == r).map(|(l, _)| *l));
        by_role.or_else(|| group.and_then(|g| groups.iter().find(|(_, n)| *n == g).map(|(l, _)| *l)))
    }

    /// Loads `forward_auth.rules` (if configured) into force; an error stops the start.
    pub async fn load_access_rules(&self) -> ServiceResult<()> {
        let Some(path) = self.config.forward_auth.rules.clone() else { return Ok(()) };
        let seen = stamp(&path);
        let rules = self.read_access_rules(&path).await?;
        tracing::info!(path = %path.display(), rules = rules.rules.len(), "forward-auth rules loaded");
        self.forward_auth_rules.set(rules, seen);
        Ok(())
    }

    /// Reads the rules again if the file changed since they were loaded. A file still being
    /// written (its stamp changed while it was read) is read at the next tick; a check that
    /// failed for want of the database is tried again at the next tick too.
    pub async fn reload_access_rules_if_changed(&self, path: &Path) {
        let now = stamp(path);
        if now.is_none() || now == self.forward_auth_rules.seen() {
            return;
        }
        let read = self.read_access_rules(path).await;
        if stamp(path) != now {
            return;
        }
        match read {
            Ok(rules) => {
                tracing::info!(path = %path.display(), rules = rules.rules.len(), "forward-auth rules reloaded");
                metrics::counter!("latchkey_forward_auth_rules_reloads_total", "outcome" => "loaded").increment(1);
                self.forward_auth_rules.set(rules, now);
            }
            Err(e @ ServiceError::Unavailable(_)) => {
                tracing::warn!(error = %e, "forward-auth rules changed; cannot check them now, will try again");
            }
            Err(e) => {
                tracing::error!(error = %e, "forward-auth rules changed but cannot be used; the previous rules stay");
                metrics::counter!("latchkey_forward_auth_rules_reloads_total", "outcome" => "refused").increment(1);
                // Not again until the file changes again.
                if let Ok(mut s) = self.forward_auth_rules.seen.write() {
                    *s = now;
                }
            }
        }
    }
}

/// Watches the rules file while the server runs.
pub fn spawn_watcher(services: Arc<Latchkey>) -> Option<tokio::task::JoinHandle<()>> {
    let path = services.config.forward_auth.rules.clone()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            services.reload_access_rules_if_changed(&path).await;
        }
    }))
}
