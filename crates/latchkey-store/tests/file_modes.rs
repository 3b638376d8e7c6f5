//! The SQLite database holds password hashes, sealed keys and personal data: its files are
//! readable by their owner only, like the master key.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use latchkey_core::domain::{ScopeName, TenantId};
use latchkey_core::records::Actor;
use latchkey_core::{Clock, UnixTime};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn mode(path: &Path) -> u32 {
    ok(std::fs::metadata(path), &path.display().to_string()).permissions().mode() & 0o777
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", db.display()))
}

async fn open_and_write(db: &Path) -> std::sync::Arc<dyn latchkey_store::Store> {
    let store = ok(
        latchkey_store::open(&format!("sqlite:{}", db.display()), 2, Clock::frozen(UnixTime::from_secs(1_700_000_000)))
            .await,
        "open",
    );
    ok(store.migrate().await, "migrate");
    let master = latchkey_core::crypto::MasterKey::generate();
    store.use_audit_keys(std::sync::Arc::new(latchkey_core::crypto::AuditKeys::derive(&master)));
    let scope = ok(ScopeName::parse("files"), "scope");
    ok(store.put_scope(&TenantId::default_tenant(), &scope, "a write", &Actor::Cli).await, "write");
    store
}

#[tokio::test]
async fn a_new_database_and_its_wal_and_shm_files_are_readable_by_their_owner_only() {
    let dir = ok(tempfile::tempdir(), "tempdir");
    let db = dir.path().join("latchkey.db");
    let store = open_and_write(&db).await;
    for file in [db.clone(), sibling(&db, "-wal"), sibling(&db, "-shm")] {
        assert!(file.exists(), "{} exists while the store is open", file.display());
        assert_eq!(format!("{:o}", mode(&file)), "600", "{}", file.display());
    }
    store.close().await;
}

#[tokio::test]
async fn an_existing_database_readable_by_others_is_tightened_when_opened() {
    let dir = ok(tempfile::tempdir(), "tempdir");
    let db = dir.path().join("latchkey.db");
    // As an older version left it: the database and its WAL files world-readable.
    let store = open_and_write(&db).await;
    for file in [db.clone(), sibling(&db, "-wal"), sibling(&db, "-shm")] {
        ok(std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)), "chmod");
    }
    store.close().await;
    ok(std::fs::write(sibling(&db, "-wal"), b""), "a WAL file left behind");
    ok(std::fs::set_permissions(sibling(&db, "-wal"), std::fs::Permissions::from_mode(0o644)), "chmod wal");
    assert_eq!(format!("{:o}", mode(&db)), "644");

    let store = open_and_write(&db).await;
    for file in [db.clone(), sibling(&db, "-wal"), sibling(&db, "-shm")] {
        assert_eq!(format!("{:o}", mode(&file)), "600", "{}", file.display());
    }
    store.close().await;
}
