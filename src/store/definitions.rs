//! Durable definitions: vhosts and their limits, exchanges, queues and
//! bindings, users and their permissions, all of which survive restarts.
//! Users and permissions are stored in the shape of RabbitMQ's definitions
//! export, so that they move between the two brokers unchanged.
//!
//! The whole set is small and changes rarely, so it is kept as one JSON file
//! rewritten atomically (write a temporary file, fsync, rename, fsync the
//! directory) on every change to a durable object. A crash leaves either the
//! old or the new file, never a mix.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::protocol::FieldTable;
use crate::store::record::QueueId;

/// A durable exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDefinition {
    /// Name.
    pub name: String,
    /// Type name.
    pub kind: String,
    /// Auto-delete flag.
    pub auto_delete: bool,
    /// Internal flag.
    pub internal: bool,
    /// Arguments.
    pub arguments: FieldTable,
}

/// A durable queue with its store identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDefinition {
    /// Name.
    pub name: String,
    /// Identity of its messages in the message store.
    pub id: QueueId,
    /// Auto-delete flag.
    pub auto_delete: bool,
    /// Arguments.
    pub arguments: FieldTable,
}

/// A binding between durable objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingDefinition {
    /// Source exchange.
    pub source: String,
    /// Destination name.
    pub destination: String,
    /// True when the destination is an exchange, false for a queue.
    pub to_exchange: bool,
    /// Binding key.
    pub routing_key: String,
    /// Arguments.
    pub arguments: FieldTable,
}

/// A vhost's limits (RabbitMQ's `vhost-limits` parameter); absent means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VHostLimits {
    /// Most client connections open to the vhost at once.
    #[serde(
        rename = "max-connections",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connections: Option<u32>,
    /// Most queues in the vhost.
    #[serde(
        rename = "max-queues",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_queues: Option<u32>,
}

impl VHostLimits {
    /// Whether no limit is set.
    pub fn is_unlimited(&self) -> bool {
        *self == VHostLimits::default()
    }
}

/// A user, as in RabbitMQ's definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDefinition {
    /// Login name.
    pub name: String,
    /// Salt and digest, base64-encoded.
    pub password_hash: String,
    /// RabbitMQ's name of the hashing module, e.g. `rabbit_password_hashing_sha256`.
    pub hashing_algorithm: String,
    /// Tags such as `administrator` or `monitoring`.
    #[serde(deserialize_with = "tags_from_list_or_text")]
    pub tags: Vec<String>,
}

/// One user's permissions in one vhost, as in RabbitMQ's definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionDefinition {
    /// User name.
    pub user: String,
    /// Vhost name.
    pub vhost: String,
    /// Pattern of the resources the user may declare and delete.
    pub configure: String,
    /// Pattern of the resources the user may publish to and bind to.
    pub write: String,
    /// Pattern of the resources the user may consume from and bind from.
    pub read: String,
}

/// Tags as a list (RabbitMQ 3.9 and later) or a comma-separated text (before).
fn tags_from_list_or_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Tags::deserialize(deserializer)? {
        Tags::List(list) => list,
        Tags::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// One vhost's durable definitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VHostDefinitions {
    /// Limits set on the vhost.
    #[serde(default, skip_serializing_if = "VHostLimits::is_unlimited")]
    pub limits: VHostLimits,
    /// Durable exchanges other than the predeclared `amq.*` ones.
    pub exchanges: Vec<ExchangeDefinition>,
    /// Durable queues.
    pub queues: Vec<QueueDefinition>,
    /// Bindings whose both ends are durable.
    pub bindings: Vec<BindingDefinition>,
}

/// Everything in the definitions file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Snapshot {
    next_queue_id: QueueId,
    /// Every vhost, with its definitions.
    vhosts: BTreeMap<String, VHostDefinitions>,
    /// `None` until users are first stored (a fresh broker, or a file
    /// written before Warren stored users): the default user is created then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    users: Option<Vec<UserDefinition>>,
    #[serde(default)]
    permissions: Vec<PermissionDefinition>,
}

/// The definitions file and its in-memory copy.
#[derive(Debug)]
pub struct DefinitionStore {
    path: PathBuf,
    snapshot: Mutex<Snapshot>,
    loaded: bool,
}

impl DefinitionStore {
    /// Loads `definitions.json` from `dir`. An absent file means a fresh
    /// broker; a corrupt one is moved aside to `definitions.json.corrupt` with
    /// an error log, and the broker starts without definitions (see [`Self::loaded`]).
    pub fn open(dir: &Path) -> io::Result<DefinitionStore> {
        let path = dir.join("definitions.json");
        let (snapshot, loaded) = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(snapshot) => (snapshot, true),
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    tracing::error!(
                        path = %path.display(),
                        moved_to = %aside.display(),
                        error = %e,
                        "definitions file is corrupt: starting without definitions; stored \
                         messages are kept until the file is restored"
                    );
                    std::fs::rename(&path, &aside)?;
                    (Snapshot::default(), false)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Snapshot::default(), false),
            Err(e) => return Err(e),
        };
        Ok(DefinitionStore {
            path,
            snapshot: Mutex::new(snapshot),
            loaded,
        })
    }

    /// Whether definitions were read from an intact file (not a fresh or damaged start).
    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Makes sure new queue identities stay above `used` (ids found in the message store),
    /// so a queue declared after a damaged start never inherits old messages.
    pub fn reserve_queue_ids(&self, used: QueueId) {
        let mut snapshot = self.snapshot.lock();
        snapshot.next_queue_id = snapshot.next_queue_id.max(used);
    }

    /// The stored vhosts and their definitions.
    pub fn vhosts(&self) -> BTreeMap<String, VHostDefinitions> {
        self.snapshot.lock().vhosts.clone()
    }

    /// A fresh durable queue identity (persisted with the next save).
    pub fn next_queue_id(&self) -> QueueId {
        let mut snapshot = self.snapshot.lock();
        snapshot.next_queue_id += 1;
        snapshot.next_queue_id
    }

    /// Replaces a vhost's definitions and writes the file. A vhost deleted
    /// meanwhile stays deleted.
    pub fn save(&self, vhost: &str, definitions: VHostDefinitions) {
        let mut snapshot = self.snapshot.lock();
        match snapshot.vhosts.get_mut(vhost) {
            Some(saved) if *saved != definitions => *saved = definitions,
            _ => return,
        }
        self.write(&snapshot);
    }

    /// Records a new, empty vhost (nothing changes if it is already there).
    pub fn add_vhost(&self, vhost: &str) {
        let mut snapshot = self.snapshot.lock();
        if snapshot.vhosts.contains_key(vhost) {
            return;
        }
        snapshot
            .vhosts
            .insert(vhost.to_string(), VHostDefinitions::default());
        self.write(&snapshot);
    }

    /// Forgets a vhost with everything in it.
    pub fn remove_vhost(&self, vhost: &str) {
        let mut snapshot = self.snapshot.lock();
        if snapshot.vhosts.remove(vhost).is_some() {
            self.write(&snapshot);
        }
    }

    /// The stored users (`None` if users were never stored) and permissions.
    pub fn access(&self) -> (Option<Vec<UserDefinition>>, Vec<PermissionDefinition>) {
        let snapshot = self.snapshot.lock();
        (snapshot.users.clone(), snapshot.permissions.clone())
    }

    /// Replaces the users and permissions and writes the file.
    pub fn save_access(&self, users: Vec<UserDefinition>, permissions: Vec<PermissionDefinition>) {
        let mut snapshot = self.snapshot.lock();
        snapshot.users = Some(users);
        snapshot.permissions = permissions;
        self.write(&snapshot);
    }

    fn write(&self, snapshot: &Snapshot) {
        if let Err(e) = write_atomically(&self.path, snapshot) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot save definitions");
        }
    }
}

fn write_atomically(path: &Path, snapshot: &Snapshot) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(snapshot).map_err(io::Error::other)?;
    let temporary = path.with_extension("json.tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
