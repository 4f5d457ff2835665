//! Durable definitions: exchanges, queues and bindings that survive restarts.
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

/// One vhost's durable definitions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VHostDefinitions {
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
    vhosts: BTreeMap<String, VHostDefinitions>,
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

    /// Replaces a vhost's definitions and writes the file.
    pub fn save(&self, vhost: &str, definitions: VHostDefinitions) {
        let mut snapshot = self.snapshot.lock();
        if snapshot.vhosts.get(vhost) == Some(&definitions) {
            return;
        }
        snapshot.vhosts.insert(vhost.to_string(), definitions);
        if let Err(e) = write_atomically(&self.path, &snapshot) {
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
