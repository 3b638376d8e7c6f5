//! Opening what a server or a CLI command needs: the store (migrated) and the master key.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey_core::Clock;
use latchkey_core::crypto::{AuditKeys, MasterKey, PersonalDataKeys, TokenHasher};
use latchkey_store::{Store, StoreError};

use latchkey_config::{Config, ConfigError, DatabaseLocation};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Service(#[from] crate::ServiceError),
    #[error("{0}")]
    MasterKey(String),
    #[error("signing keys: {0}")]
    Keys(String),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("error pages: {0}")]
    ErrorPages(String),
}

impl From<StoreError> for StartupError {
    fn from(e: StoreError) -> Self {
        StartupError::Service(e.into())
    }
}

/// The store and secrets every part of Latchkey works with.
pub struct Foundation {
    pub config: Arc<Config>,
    pub(crate) store: Arc<dyn Store>,
    pub master_key: MasterKey,
    pub token_hasher: TokenHasher,
    /// The audit log's keys, derived from the master key (the store holds them too).
    pub audit_keys: Arc<AuditKeys>,
    pub clock: Clock,
    /// Set when this start created the master key file (zero-config path).
    pub created_master_key_file: Option<PathBuf>,
}

const MASTER_KEY_CHECK: &str = "master_key_check";
const MASTER_KEY_CHECK_PLAINTEXT: &[u8] = b"latchkey master key check v1";

impl Foundation {
    /// Opens and migrates the database and loads (or, on the zero-config path, creates) the
    /// master key, refusing to continue with a key that does not open existing data.
    pub async fn open(config: Config, clock: Clock) -> Result<Self, StartupError> {
        let location = config.database()?;
        if let DatabaseLocation::Sqlite(path) = &location
            && let Some(dir) = path.parent()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Invalid(format!("cannot create the database directory {}: {e}", dir.display()))
            })?;
        }
        let store = latchkey_store::open(&location.store_url(), config.database.max_connections, clock.clone()).await?;
        store.migrate().await?;
        let (master_key, created) = load_master_key(&config, &location, store.as_ref()).await?;
        verify_master_key(store.as_ref(), &master_key).await?;
        let token_hasher = TokenHasher::new(&master_key.derive("latchkey token hashing v1"));
        let audit_keys = Arc::new(AuditKeys::derive(&master_key));
        store.use_audit_keys(audit_keys.clone());
        store.use_personal_data_keys(Arc::new(PersonalDataKeys::derive(&master_key)));
        store.load_data_key_generation().await?;
        Ok(Self {
            config: Arc::new(config),
            store,
            master_key,
            token_hasher,
            audit_keys,
            clock,
            created_master_key_file: created,
        })
    }
}

async fn load_master_key(
    config: &Config,
    location: &DatabaseLocation,
    store: &dyn Store,
) -> Result<(MasterKey, Option<PathBuf>), StartupError> {
    if let Some(reference) = &config.secrets.master_key {
        let secret = reference
            .resolve(config.base_dir())
            .map_err(|e| StartupError::MasterKey(format!("secrets.master_key: {e}")))?;
        let key = MasterKey::parse(secret.expose())
            .map_err(|e| StartupError::MasterKey(format!("secrets.master_key: {e}")))?;
        return Ok((key, None));
    }
    let DatabaseLocation::Sqlite(db_path) = location else {
        return Err(StartupError::MasterKey(
            "secrets.master_key is required with PostgreSQL: every node must use the same key (e.g. master_key = \"env:LK_MASTER_KEY\"; LATCHKEY_* names are config overrides)".into(),
        ));
    };
    let path = default_master_key_path(db_path);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = MasterKey::parse(&text)
                .map_err(|e| StartupError::MasterKey(format!("master key file {}: {e}", path.display())))?;
            Ok((key, None))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if store.holds_sealed_data().await? {
                return Err(StartupError::MasterKey(format!(
                    "the master key file {} is missing, but the database holds data encrypted under a master key; \
                     restore the file (or set secrets.master_key). Refusing to create a new key over old data.",
                    path.display()
                )));
            }
            let key = MasterKey::generate();
            write_private_file(&path, &key.to_hex()).map_err(|e| {
                StartupError::MasterKey(format!("cannot create master key file {}: {e}", path.display()))
            })?;
            Ok((key, Some(path)))
        }
        Err(e) => Err(StartupError::MasterKey(format!("cannot read master key file {}: {e}", path.display()))),
    }
}

/// The zero-config master key file: beside the SQLite database.
pub fn default_master_key_path(db_path: &Path) -> PathBuf {
    db_path.parent().unwrap_or_else(|| Path::new(".")).join("latchkey.master-key")
}

/// Creates `path` readable by its owner only (0600), failing if it exists.
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// The first start stores a value sealed under the master key; every later start must be
/// able to open it, so a wrong key is refused before it can seal anything.
async fn verify_master_key(store: &dyn Store, key: &MasterKey) -> Result<(), StartupError> {
    let fresh = hex::encode(key.seal(MASTER_KEY_CHECK_PLAINTEXT, MASTER_KEY_CHECK.as_bytes()));
    let stored = store.put_meta_if_absent(MASTER_KEY_CHECK, &fresh).await?;
    let opens = hex::decode(&stored)
        .ok()
        .and_then(|sealed| key.open(&sealed, MASTER_KEY_CHECK.as_bytes()).ok())
        .is_some_and(|plain| plain == MASTER_KEY_CHECK_PLAINTEXT);
    if !opens {
        return Err(StartupError::MasterKey(
            "the master key does not match the one this database was created with; refusing to start".into(),
        ));
    }
    Ok(())
}
