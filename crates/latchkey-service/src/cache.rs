//! In-memory caches of what every request reads (clients, users, the CORS origin set), and
//! the listener that drops them when another node or the CLI changes the database.
//!
//! Bound: PostgreSQL delivers a change notification at commit (well under a second); SQLite
//! is polled every `database.change_poll_interval` (1 s by default). Every cache is also
//! rebuilt from scratch every `FULL_REFRESH` in case a notification was lost.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::ServiceError;
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use latchkey_core::domain::{ApiKeyId, ClientId, SubjectId, TenantId};
use latchkey_core::records::{ApiKey, Change, Client, ResourceServer, ScopeDefinition, User, UserAccess};
use latchkey_store::Store;

use crate::keys::KeyService;

pub const FULL_REFRESH: Duration = Duration::from_secs(60);

/// Client ids remembered as unknown. Anyone can send a random `client_id`; remembering each
/// spares the database a lookup for one that is tried again, but without a bound every
/// random id stayed in memory until the next full refresh. Known clients are bounded by
/// the registered ones.
pub const MAX_UNKNOWN_CLIENTS: usize = 1_024;

pub struct Caches {
    store: Arc<dyn Store>,
    tenant: TenantId,
    clients: RwLock<HashMap<ClientId, Arc<Client>>>,
    /// At most `MAX_UNKNOWN_CLIENTS`; emptied when full, so the newest are kept.
    unknown_clients: RwLock<HashSet<ClientId>>,
    users: RwLock<HashMap<SubjectId, Option<Arc<User>>>>,
    /// Counts the drops of `users`: a load that began before one is not kept (a lookup
    /// racing a lock must not put the unlocked user back).
    users_generation: AtomicU64,
    /// What each user holds (roles, groups). Any change to roles or groups drops all of it.
    access: RwLock<HashMap<SubjectId, Arc<UserAccess>>>,
    /// Counts the drops of `access`: a load that began before a drop is not kept, so a
    /// lookup racing a change cannot put the old answer back.
    access_generation: AtomicU64,
    /// API keys by id (`None`: no such key), at most `MAX_UNKNOWN_CLIENTS` unknown ids; and
    /// the generation of their drops, as for `access`.
    api_keys: RwLock<HashMap<ApiKeyId, Option<Arc<ApiKey>>>>,
    unknown_api_keys: std::sync::atomic::AtomicUsize,
    api_key_generation: AtomicU64,
    /// When this node last wrote each key's `last_used_at`.
    api_key_uses: std::sync::Mutex<HashMap<ApiKeyId, i64>>,
    web_origins: ArcSwap<BTreeSet<String>>,
    /// The scope definitions (discovery, every authorization request, the consent page).
    scopes: ArcSwapOption<Vec<ScopeDefinition>>,
    /// The registered resource servers (every API-key and resource-token introspection).
    resources: ArcSwapOption<Vec<ResourceServer>>,
    /// The serialised discovery document and the scope list it was built from (the rest of
    /// it is configuration): rebuilt only when the scope list is.
    discovery: ArcSwapOption<(Arc<Vec<ScopeDefinition>>, Bytes)>,
}

impl Caches {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            tenant: TenantId::default_tenant(),
            clients: RwLock::new(HashMap::new()),
            unknown_clients: RwLock::new(HashSet::new()),
            users: RwLock::new(HashMap::new()),
            users_generation: AtomicU64::new(0),
            access: RwLock::new(HashMap::new()),
            access_generation: AtomicU64::new(0),
            api_keys: RwLock::new(HashMap::new()),
            unknown_api_keys: std::sync::atomic::AtomicUsize::new(0),
            api_key_generation: AtomicU64::new(0),
            api_key_uses: std::sync::Mutex::new(HashMap::new()),
            web_origins: ArcSwap::from_pointee(BTreeSet::new()),
            scopes: ArcSwapOption::empty(),
            resources: ArcSwapOption::empty(),
            discovery: ArcSwapOption::empty(),
        }
    }

    /// A client by id, from the cache when present (unknown ids are cached too, up to
    /// `MAX_UNKNOWN_CLIENTS`).
    pub async fn client(&self, id: &ClientId) -> Result<Option<Arc<Client>>, ServiceError> {
        if let Some(hit) = self.clients.read().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(Some(hit));
        }
        if self.unknown_clients.read().is_ok_and(|s| s.contains(id)) {
            return Ok(None);
        }
        let loaded = self.store.client(&self.tenant, id).await?.map(Arc::new);
        match &loaded {
            Some(client) => {
                if let Ok(mut m) = self.clients.write() {
                    m.insert(id.clone(), client.clone());
                }
            }
            None => {
                if let Ok(mut s) = self.unknown_clients.write() {
                    if s.len() >= MAX_UNKNOWN_CLIENTS {
                        s.clear();
                    }
                    s.insert(id.clone());
                }
            }
        }
        Ok(loaded)
    }

    /// How many client ids are remembered as unknown.
    pub fn unknown_clients_cached(&self) -> usize {
        self.unknown_clients.read().map_or(0, |s| s.len())
    }

    /// A user by subject id, from the cache when present.
    pub async fn user(&self, sub: &SubjectId) -> Result<Option<Arc<User>>, ServiceError> {
        if let Some(hit) = self.users.read().ok().and_then(|m| m.get(sub).cloned()) {
            return Ok(hit);
        }
        let generation = self.users_generation.load(Ordering::SeqCst);
        let loaded = self.store.user_by_sub(&self.tenant, sub).await?.map(Arc::new);
        if let Ok(mut m) = self.users.write()
            && self.users_generation.load(Ordering::SeqCst) == generation
        {
            m.insert(sub.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    /// What a user holds, from the cache when present.
    pub async fn access(&self, sub: &SubjectId) -> Result<Arc<UserAccess>, ServiceError> {
        if let Some(hit) = self.access.read().ok().and_then(|m| m.get(sub).cloned()) {
            return Ok(hit);
        }
        let generation = self.access_generation.load(Ordering::SeqCst);
        let loaded = Arc::new(self.store.user_access(&self.tenant, sub).await?);
        if let Ok(mut m) = self.access.write()
            && self.access_generation.load(Ordering::SeqCst) == generation
        {
            m.insert(sub.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    /// An API key by id, from the cache when present. Unknown ids are remembered too (a
    /// checksum-valid key can still be made up), up to `MAX_UNKNOWN_CLIENTS` of them.
    pub async fn api_key(&self, id: &ApiKeyId) -> Result<Option<Arc<ApiKey>>, ServiceError> {
        if let Some(hit) = self.api_keys.read().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(hit);
        }
        let generation = self.api_key_generation.load(Ordering::SeqCst);
        let loaded = self.store.api_key(&self.tenant, id).await?.map(Arc::new);
        if let Ok(mut m) = self.api_keys.write()
            && self.api_key_generation.load(Ordering::SeqCst) == generation
        {
            if loaded.is_none() {
                if self.unknown_api_keys.load(Ordering::SeqCst) >= MAX_UNKNOWN_CLIENTS {
                    m.retain(|_, k| k.is_some());
                    self.unknown_api_keys.store(0, Ordering::SeqCst);
                }
                self.unknown_api_keys.fetch_add(1, Ordering::SeqCst);
            }
            m.insert(id.clone(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Whether this use of a key is the one to record: its last recorded use on this node is
    /// `every` seconds old. Claims it, so concurrent uses record once.
    pub fn claim_api_key_use(&self, id: &ApiKeyId, now: i64, every: i64) -> bool {
        let Ok(mut uses) = self.api_key_uses.lock() else { return false };
        if uses.get(id).is_some_and(|last| now - last < every) {
            return false;
        }
        // Bounded by the live keys; forgotten wholesale if revoked ones pile up.
        if uses.len() >= 100_000 {
            uses.clear();
        }
        uses.insert(id.clone(), now);
        true
    }

    /// Drops a client this node changed, before other nodes hear of it: the change is in
    /// force here at once (a rotated secret, narrowed scopes).
    pub fn forget_client(&self, id: &ClientId) {
        if let Ok(mut m) = self.clients.write() {
            m.remove(id);
        }
        if let Ok(mut s) = self.unknown_clients.write() {
            s.remove(id);
        }
    }

    /// Drops one key (after it was created, rotated or revoked).
    pub fn forget_api_key(&self, id: &ApiKeyId) {
        if let Ok(mut m) = self.api_keys.write() {
            self.api_key_generation.fetch_add(1, Ordering::SeqCst);
            if let Some(None) = m.remove(id) {
                self.unknown_api_keys.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn forget_api_keys(&self) {
        if let Ok(mut m) = self.api_keys.write() {
            self.api_key_generation.fetch_add(1, Ordering::SeqCst);
            self.unknown_api_keys.store(0, Ordering::SeqCst);
            m.clear();
        }
    }

    /// Drops what every user holds (after a change to roles or groups).
    pub fn forget_access(&self) {
        if let Ok(mut m) = self.access.write() {
            self.access_generation.fetch_add(1, Ordering::SeqCst);
            m.clear();
        }
    }

    /// Drops one user and what they hold (after a change made on this node).
    pub fn forget_user(&self, sub: &SubjectId) {
        if let Ok(mut m) = self.users.write() {
            self.users_generation.fetch_add(1, Ordering::SeqCst);
            m.remove(sub);
        }
        if let Ok(mut m) = self.access.write() {
            self.access_generation.fetch_add(1, Ordering::SeqCst);
            m.remove(sub);
        }
    }

    /// Every registered resource server of `tenant`, from the cache when present (the
    /// cache holds this node's tenant; another is read from the database).
    pub async fn resources(&self, tenant: &TenantId) -> Result<Arc<Vec<ResourceServer>>, ServiceError> {
        if tenant != &self.tenant {
            return Ok(Arc::new(self.store.list_resource_servers(tenant).await?));
        }
        if let Some(hit) = self.resources.load_full() {
            return Ok(hit);
        }
        let loaded = Arc::new(self.store.list_resource_servers(&self.tenant).await?);
        self.resources.store(Some(loaded.clone()));
        Ok(loaded)
    }

    pub fn forget_resources(&self) {
        self.resources.store(None);
    }

    /// Every scope definition, from the cache when present.
    pub async fn scopes(&self) -> Result<Arc<Vec<ScopeDefinition>>, ServiceError> {
        if let Some(hit) = self.scopes.load_full() {
            return Ok(hit);
        }
        let loaded = Arc::new(self.store.list_scopes(&self.tenant).await?);
        self.scopes.store(Some(loaded.clone()));
        Ok(loaded)
    }

    /// The discovery document for this scope list: the one already built from the same list
    /// (the same `Arc`, held here, so it cannot be freed and its address reused), else
    /// `render`'s, kept for the next request.
    pub fn discovery_document<E>(
        &self,
        scopes: &Arc<Vec<ScopeDefinition>>,
        render: impl FnOnce(&[ScopeDefinition]) -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        if let Some(hit) = self.discovery.load().as_ref().filter(|hit| Arc::ptr_eq(&hit.0, scopes)) {
            return Ok(hit.1.clone());
        }
        let body = render(scopes)?;
        self.discovery.store(Some(Arc::new((scopes.clone(), body.clone()))));
        Ok(body)
    }

    /// The web origins of every registered client's redirect URIs: the browser apps that
    /// may call Latchkey's CORS endpoints.
    pub fn web_origins(&self) -> Arc<BTreeSet<String>> {
        self.web_origins.load_full()
    }

    pub async fn rebuild_web_origins(&self) -> Result<(), ServiceError> {
        let clients = self.store.list_clients(&self.tenant).await?;
        let origins = clients.iter().flat_map(|c| c.redirect_uris.iter().filter_map(|u| u.web_origin())).collect();
        self.web_origins.store(Arc::new(origins));
        Ok(())
    }

    fn forget_all(&self) {
        if let Ok(mut m) = self.clients.write() {
            m.clear();
        }
        if let Ok(mut s) = self.unknown_clients.write() {
            s.clear();
        }
        if let Ok(mut m) = self.users.write() {
            self.users_generation.fetch_add(1, Ordering::SeqCst);
            m.clear();
        }
        self.forget_access();
        self.forget_api_keys();
        self.scopes.store(None);
        self.resources.store(None);
    }

    /// Applies one change: drops what it invalidates and rebuilds what is derived from it.
    pub async fn apply(&self, change: &Change, keys: &KeyService) -> Result<(), String> {
        match change {
            Change::Client { client_id, .. } => {
                if let Ok(id) = ClientId::parse(client_id) {
                    self.forget_client(&id);
                }
                self.rebuild_web_origins().await.map_err(|e| e.to_string())?;
            }
            Change::User { sub, .. } => {
                // A deleted user's links went with the user.
                if let Ok(sub) = SubjectId::parse(sub) {
                    self.forget_user(&sub);
                }
            }
            Change::SigningKeys { .. } => keys.reload().await.map_err(|e| e.to_string())?,
            Change::Scopes { .. } => self.scopes.store(None),
            Change::Access { .. } => self.forget_access(),
            Change::Resources { .. } => self.forget_resources(),
            Change::ApiKey { key_id, .. } => {
                if let Ok(id) = ApiKeyId::parse(key_id) {
                    self.forget_api_key(&id);
                }
            }
            Change::Unknown => {
                self.forget_all();
                self.rebuild_web_origins().await.map_err(|e| e.to_string())?;
                keys.reload().await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// Listens for changes and applies them until the store's stream ends; also refreshes
/// everything every `FULL_REFRESH`.
pub fn spawn_change_listener(
    caches: Arc<Caches>,
    keys: Arc<KeyService>,
    mut changes: tokio::sync::mpsc::Receiver<Change>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut refresh = tokio::time::interval(FULL_REFRESH);
        refresh.tick().await;
        loop {
            let change = tokio::select! {
                c = changes.recv() => match c { Some(c) => c, None => return },
                _ = refresh.tick() => Change::Unknown,
            };
            tracing::debug!(%change, "applying change from the database");
            if let Err(e) = caches.apply(&change, &keys).await {
                tracing::error!(error = %e, %change, "could not refresh caches after a change");
            }
        }
    })
}
