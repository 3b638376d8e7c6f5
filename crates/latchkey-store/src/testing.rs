//! Test databases: every test gets its own, so tests run in parallel without seeing each
//! other's rows. PostgreSQL joins the set when `LATCHKEY_TEST_POSTGRES_URL` names a
//! database whose role may create databases; then a PostgreSQL that does not answer is a
//! test failure, never a skip.

use std::path::PathBuf;

use sqlx::Connection as _;

/// The environment variable that turns on the PostgreSQL half of every store test.
pub const POSTGRES_URL_VAR: &str = "LATCHKEY_TEST_POSTGRES_URL";

/// One database for one test. Dropping it deletes the database.
pub struct TestDatabase {
    pub backend: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

impl TestDatabase {
    /// Opens the store over this database with audit and personal data keys from a fresh
    /// master key (the server derives them from its own; every audited write and every
    /// user needs them).
    pub async fn open_store(
        &self,
        max_connections: u32,
        clock: latchkey_core::Clock,
    ) -> crate::StoreResult<std::sync::Arc<dyn crate::Store>> {
        let store = crate::open(&self.url, max_connections, clock).await?;
        let master = latchkey_core::crypto::MasterKey::generate();
        store.use_audit_keys(std::sync::Arc::new(latchkey_core::crypto::AuditKeys::derive(&master)));
        store.use_personal_data_keys(std::sync::Arc::new(latchkey_core::crypto::PersonalDataKeys::derive(&master)));
        Ok(store)
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let path: PathBuf = dir.path().join("latchkey.db");
        Self { backend: "sqlite", url: format!("sqlite:{}", path.display()), _dir: Some(dir), pg_admin: None }
    }

    /// A fresh PostgreSQL database, or `None` when the variable is unset.
    pub async fn postgres() -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty())?;
        let name = format!("lk_t_{}", hex_id());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL does not answer: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let url = replace_database(&admin_url, &name);
        Some(Self { backend: "postgres", url, _dir: None, pg_admin: Some((admin_url, name)) })
    }

    /// A fresh PostgreSQL database for a PostgreSQL-only test. Such a test is marked
    /// `#[cfg_attr(not(postgres_tests), ignore = "…")]` (see `crates/postgres_tests_cfg.rs`),
    /// so it runs only in builds made with the variable set; run without it, it fails.
    pub async fn postgres_only() -> Self {
        Self::postgres()
            .await
            .unwrap_or_else(|| panic!("this PostgreSQL-only test needs {POSTGRES_URL_VAR} at run time too"))
    }

    /// SQLite always, and PostgreSQL when configured.
    pub async fn all() -> Vec<Self> {
        let mut dbs = vec![Self::sqlite().await];
        dbs.extend(Self::postgres().await);
        dbs
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg_admin.take() else {
            return;
        };
        // Drop runs outside async code; use a small runtime on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await;
                    }
                });
            }
        })
        .join();
    }
}

fn hex_id() -> String {
    let bytes = latchkey_core::crypto::random::bytes::<8>();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `postgres://u@h:p/db?x` with `db` replaced by `name`.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A user with only a username (no email, name or password), for tests that need someone.
///
/// # Panics
/// When `username` is not a valid username.
pub fn sample_user(username: &str) -> latchkey_core::records::NewUser {
    latchkey_core::records::NewUser {
        sub: latchkey_core::domain::SubjectId::generate(),
        username: latchkey_core::domain::Username::parse(username)
            .unwrap_or_else(|e| panic!("username `{username}`: {e}")),
        email: None,
        email_verified: false,
        name: None,
        profile: latchkey_core::domain::ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    }
}

/// A client for tests: `{id} app`, one redirect URI, the code and refresh grants, the
/// `openid` scope, the kind's default authentication (with a fixed secret hash when
/// confidential), no session settings. Change fields with struct update syntax.
///
/// # Panics
/// On an invalid id or redirect URI: a test's own constant is wrong.
pub fn sample_client(
    id: &str,
    kind: latchkey_core::domain::ClientKind,
    redirect_uri: &str,
) -> latchkey_core::records::NewClient {
    use latchkey_core::domain::{ClientId, ClientKind, GrantType, RedirectUri, ScopeName, SigningAlg};
    let valid = |what: &str, e: &dyn std::fmt::Display| -> ! { panic!("sample client {what}: {e}") };
    latchkey_core::records::NewClient {
        client_id: ClientId::parse(id).unwrap_or_else(|e| valid("id", &e)),
        name: format!("{id} app"),
        kind,
        secret_hash: (kind == ClientKind::Confidential)
            .then(|| latchkey_core::crypto::TokenHasher::new(b"k").hash("client_secret", "s1")),
        redirect_uris: vec![
            RedirectUri::parse_for_registration(redirect_uri, kind).unwrap_or_else(|e| valid("redirect uri", &e)),
        ],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        allowed_scopes: vec![ScopeName::parse("openid").unwrap_or_else(|e| valid("scope", &e))],
        token_endpoint_auth_method: kind.default_auth_method(),
        id_token_signed_response_alg: SigningAlg::Rs256,
        first_party: false,
        jwks: None,
        jwks_uri: None,
        allow_insecure_no_pkce: false,
        allow_legacy_assertion_audience: false,
        access_token_lifetime: None,
        session_policy: Default::default(),
        access_policy: Default::default(),
        allow_insecure_redirect_uris: false,
        refresh_reuse_grace: None,
        admin_client: false,
    }
}

/// Deletes every expired row of `kinds` as the cleanup job does, with the backend's pace;
/// returns how many rows of those kinds went.
///
/// # Panics
/// When the store fails.
pub async fn clean(
    store: &dyn crate::Store,
    kinds: &[crate::cleanup::Expired],
    now: latchkey_core::UnixTime,
    session_idle: std::time::Duration,
    keep_finished_deliveries_until: latchkey_core::UnixTime,
) -> u64 {
    use crate::cleanup::{Cutoffs, Pace, delete_expired};
    let cutoffs = Cutoffs { now, session_idle, keep_finished_deliveries_until };
    delete_expired(store, &cutoffs, kinds, Pace::for_backend(store.backend()))
        .await
        .unwrap_or_else(|e| panic!("cleanup on {}: {e}", store.backend()))
        .rows()
}

/// Writes a user row straight into the database, past every check the store makes: how a
/// test builds data an older version may have left behind (a user whose `sub` equals a
/// client id, which creation now refuses).
///
/// # Panics
/// When the database cannot be reached or the row cannot be written.
pub async fn insert_user_row_unchecked(db: &TestDatabase, sub: &str, username: &str) {
    const SQL: &str =
        "INSERT INTO users (tenant_id, sub, username, created_at, updated_at) VALUES ('default', $1, $2, 0, 0)";
    let fail = |e: sqlx::Error| -> ! { panic!("cannot write the user row to {}: {e}", db.backend) };
    if db.backend == "postgres" {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap_or_else(|e| fail(e));
        sqlx::query(SQL).bind(sub).bind(username).execute(&mut conn).await.unwrap_or_else(|e| fail(e));
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap_or_else(|e| fail(e));
        sqlx::query(SQL).bind(sub).bind(username).execute(&mut conn).await.unwrap_or_else(|e| fail(e));
    }
}

/// Runs one statement straight on the database, past every check the store makes: how a
/// test damages a row on purpose.
///
/// # Panics
/// When the database cannot be reached or the statement fails.
pub async fn execute_unchecked(db: &TestDatabase, sql: &str) {
    let fail = |e: sqlx::Error| -> ! { panic!("cannot run `{sql}` on {}: {e}", db.backend) };
    if db.backend == "postgres" {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap_or_else(|e| fail(e));
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.unwrap_or_else(|e| fail(e));
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap_or_else(|e| fail(e));
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.unwrap_or_else(|e| fail(e));
    }
}
