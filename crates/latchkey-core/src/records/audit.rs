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
}

impl Actor {
    pub fn as_string(&self) -> String {
        match self {
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
            Actor::User(sub) => format!("user:{sub}"),
            Actor::Client(id) => format!("client:{id}"),
        }
    }
}

/// One recorded state change. `details` never holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub at: crate::UnixTime,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: Value,
}
