use std::fmt;

/// A change another node (or the CLI) made that may invalidate this node's caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    SigningKeys {
        tenant: String,
    },
    Client {
        tenant: String,
        client_id: String,
    },
    User {
        tenant: String,
        sub: String,
    },
    Scopes {
        tenant: String,
    },
    /// A resource server (RFC 8707 audience) was saved or deleted.
    Resources {
        tenant: String,
    },
    /// Roles, groups or who holds them: what any user holds may have changed.
    Access {
        tenant: String,
    },
    /// An API key was created, rotated or revoked.
    ApiKey {
        tenant: String,
        key_id: String,
    },
    /// Something changed but the store cannot say what (SQLite): drop every cache.
    Unknown,
}

impl Change {
    /// The notification payload (PostgreSQL `NOTIFY latchkey_changes, '<payload>'`).
    pub fn to_payload(&self) -> String {
        self.to_string()
    }

    pub fn from_payload(payload: &str) -> Change {
        let mut parts = payload.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("keys"), Some(t), None) => Change::SigningKeys { tenant: t.into() },
            (Some("scopes"), Some(t), None) => Change::Scopes { tenant: t.into() },
            (Some("access"), Some(t), None) => Change::Access { tenant: t.into() },
            (Some("resources"), Some(t), None) => Change::Resources { tenant: t.into() },
            (Some("api_key"), Some(t), Some(id)) => Change::ApiKey { tenant: t.into(), key_id: id.into() },
            (Some("client"), Some(t), Some(id)) => Change::Client { tenant: t.into(), client_id: id.into() },
            (Some("user"), Some(t), Some(sub)) => Change::User { tenant: t.into(), sub: sub.into() },
            _ => Change::Unknown,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::SigningKeys { tenant } => write!(f, "keys:{tenant}"),
            Change::Scopes { tenant } => write!(f, "scopes:{tenant}"),
            Change::Access { tenant } => write!(f, "access:{tenant}"),
            Change::Resources { tenant } => write!(f, "resources:{tenant}"),
            Change::ApiKey { tenant, key_id } => write!(f, "api_key:{tenant}:{key_id}"),
            Change::Client { tenant, client_id } => write!(f, "client:{tenant}:{client_id}"),
            Change::User { tenant, sub } => write!(f, "user:{tenant}:{sub}"),
            Change::Unknown => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for c in [
            Change::SigningKeys { tenant: "default".into() },
            Change::Client { tenant: "default".into(), client_id: "a:b".into() },
            Change::User { tenant: "t".into(), sub: "abc".into() },
            Change::Scopes { tenant: "t".into() },
            Change::Access { tenant: "t".into() },
            Change::Resources { tenant: "t".into() },
            Change::ApiKey { tenant: "t".into(), key_id: "abc".into() },
        ] {
            assert_eq!(Change::from_payload(&c.to_payload()), c);
        }
        assert_eq!(Change::from_payload("nonsense"), Change::Unknown);
    }
}
