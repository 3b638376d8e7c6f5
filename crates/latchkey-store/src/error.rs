#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique rule would be broken (username, email or client id taken).
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The request breaks a rule the store enforces (e.g. deleting a built-in scope).
    #[error("{0}")]
    Invalid(String),
    /// The row changed since the caller read it (an `If-Match` that no longer matches).
    #[error("{0}")]
    Stale(String),
    /// A stored value no longer parses: the database was edited by hand or is damaged.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict` with a message for people.
    pub(crate) fn from_write(e: sqlx::Error, conflict: impl FnOnce(&str) -> String) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict(conflict(db.message()));
        }
        StoreError::Database(e)
    }
}
