use serde_json::Value;

/// Who made a change, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The `latchkey` command line, run by an operator on the host.
    Cli,
    /// The server itself (scheduled jobs, bootstrap).
    System,
    /// A signed-in user, by subject id.
    User(String),
    /// An OAuth client acting for itself (revoking a token it holds), by client id.
    Client(String),
    /// A caller of the admin API: the client whose token it presented and, for a token
    /// from a person's grant, the person (by subject id). The audit log names both.
    AdminApi { client_id: String, sub: Option<String> },
}

impl Actor {
    pub fn as_string(&self) -> String {
        match self {
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
            Actor::User(sub) => format!("user:{sub}"),
            Actor::Client(id) => format!("client:{id}"),
            Actor::AdminApi { client_id, sub: None } => format!("admin-api:{client_id}"),
            Actor::AdminApi { client_id, sub: Some(sub) } => format!("admin-api:{client_id}:user:{sub}"),
        }
    }
}

/// One recorded state change. `details` never holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub at: crate::UnixTime,
    /// Its position in the tenant's chain; `None` until the chain's writer has numbered it
    /// (a second or so after it was written).
    pub seq: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: Value,
    /// Its subject was erased: `actor` and `target` are the stored pseudonyms and the
    /// details are gone.
    pub erased: bool,
}

#[cfg(test)]
mod tests {
    use super::Actor;

    #[test]
    fn every_actor_is_named_apart_in_the_audit_log() {
        let named = [
            Actor::Cli,
            Actor::System,
            Actor::User("u1".into()),
            Actor::Client("c1".into()),
            Actor::AdminApi { client_id: "c1".into(), sub: None },
            Actor::AdminApi { client_id: "c1".into(), sub: Some("u1".into()) },
        ]
        .map(|a| a.as_string());
        assert_eq!(
            named,
            ["cli", "system", "user:u1", "client:c1", "admin-api:c1", "admin-api:c1:user:u1"].map(String::from)
        );
    }
}
