//! Users, their passwords and tags, and their permissions in each vhost.
//!
//! As in RabbitMQ, a user may open a connection to a vhost only if they have
//! permissions there (any, even empty ones), and `guest` may only log in from
//! loopback. Every change is saved to the definitions file at once, in
//! RabbitMQ's definitions shape.

mod access;
mod password;
mod permissions;

pub use access::{Access, Authorize, CachedAccess, PermissionCache};
pub use password::{HashingAlgorithm, PasswordHash};
pub use permissions::{PatternError, Permission, Permissions, ResourceKind};

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::store::definitions::{DefinitionStore, PermissionDefinition, UserDefinition};

/// The user RabbitMQ only lets in from loopback.
const LOOPBACK_ONLY_USER: &str = "guest";

/// The user created on a broker's first start.
#[derive(Debug, Clone)]
pub struct DefaultUser {
    /// Login name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// Why a login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password.
    BadCredentials,
    /// The user may only connect from loopback.
    LoopbackOnly,
}

/// Why a change to users, vhosts or permissions was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// A user by that name exists already.
    UserExists(String),
    /// No user by that name.
    NoSuchUser(String),
    /// A vhost by that name exists already.
    VHostExists(String),
    /// No vhost by that name.
    NoSuchVHost(String),
    /// A permission pattern that does not compile.
    InvalidPattern(PatternError),
    /// A stored password hash Warren cannot use.
    InvalidPasswordHash(String),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::UserExists(name) => write!(f, "user '{name}' already exists"),
            AdminError::NoSuchUser(name) => write!(f, "user '{name}' does not exist"),
            AdminError::VHostExists(name) => write!(f, "vhost '{name}' already exists"),
            AdminError::NoSuchVHost(name) => write!(f, "vhost '{name}' does not exist"),
            AdminError::InvalidPattern(e) => e.fmt(f),
            AdminError::InvalidPasswordHash(reason) => write!(f, "invalid password hash: {reason}"),
        }
    }
}

impl std::error::Error for AdminError {}

#[derive(Debug, Clone)]
struct User {
    password_hash: PasswordHash,
    tags: Vec<String>,
}

#[derive(Debug, Default)]
struct UserDatabase {
    users: BTreeMap<String, User>,
    /// By user, then by vhost.
    permissions: BTreeMap<String, BTreeMap<String, Permissions>>,
}

impl UserDatabase {
    fn user_definitions(&self) -> Vec<UserDefinition> {
        self.users
            .iter()
            .map(|(name, user)| UserDefinition {
                name: name.clone(),
                password_hash: user.password_hash.to_base64(),
                hashing_algorithm: user.password_hash.algorithm().name().to_string(),
                tags: user.tags.clone(),
            })
            .collect()
    }

    fn permission_definitions(&self) -> Vec<PermissionDefinition> {
        self.permissions
            .iter()
            .flat_map(|(user, vhosts)| {
                vhosts.iter().map(|(vhost, p)| PermissionDefinition {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    configure: p.configure().to_string(),
                    write: p.write().to_string(),
                    read: p.read().to_string(),
                })
            })
            .collect()
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, AdminError> {
        self.users
            .get_mut(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.to_string()))
    }
}

/// The user database, shared by the broker and every connection.
#[derive(Debug)]
pub struct AccessControl {
    database: RwLock<UserDatabase>,
    /// Bumped on every change, so that channels drop permission checks they cached.
    generation: AtomicU64,
    saved: Arc<DefinitionStore>,
}

impl AccessControl {
    /// Loads users and permissions from the definitions file. `default_user`
    /// (given on a broker's first start) is created with the `administrator`
    /// tag and full permissions on `/`, as RabbitMQ creates its default user.
    pub fn restore(
        saved: Arc<DefinitionStore>,
        default_user: Option<&DefaultUser>,
    ) -> AccessControl {
        let (users, permissions) = saved.access();
        let mut database = UserDatabase::default();
        for user in users.unwrap_or_default() {
            match PasswordHash::from_definition(&user.hashing_algorithm, &user.password_hash) {
                Ok(password_hash) => {
                    let tags = user.tags;
                    database.users.insert(
                        user.name,
                        User {
                            password_hash,
                            tags,
                        },
                    );
                }
                Err(reason) => {
                    tracing::error!(
                        user = user.name,
                        reason,
                        "saved user cannot be used; skipped"
                    )
                }
            }
        }
        for p in permissions {
            match Permissions::new(&p.configure, &p.write, &p.read) {
                Ok(permissions) => {
                    let vhosts = database.permissions.entry(p.user).or_default();
                    vhosts.insert(p.vhost, permissions);
                }
                Err(e) => tracing::error!(user = p.user, vhost = p.vhost, error = %e,
                    "saved permissions cannot be used; skipped"),
            }
        }
        let control = AccessControl {
            database: RwLock::new(database),
            generation: AtomicU64::new(1),
            saved,
        };
        if let Some(default) = default_user {
            tracing::info!(user = default.name, "creating the default user");
            let created = control.change(|db| {
                let user = User {
                    password_hash: PasswordHash::new(&default.password),
                    tags: vec!["administrator".to_string()],
                };
                db.users.insert(default.name.clone(), user);
                let vhosts = db.permissions.entry(default.name.clone()).or_default();
                vhosts.insert("/".to_string(), Permissions::full());
                Ok(())
            });
            created.expect("creating a user cannot fail");
        }
        control
    }

    /// Applies a change and saves the result, under one lock so that saves
    /// happen in the order of the changes.
    fn change<T>(
        &self,
        apply: impl FnOnce(&mut UserDatabase) -> Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        let mut database = self.database.write();
        let result = apply(&mut database)?;
        self.generation.fetch_add(1, Ordering::Release);
        self.saved.save_access(
            database.user_definitions(),
            database.permission_definitions(),
        );
        Ok(result)
    }

    /// Checks credentials presented from `peer`.
    pub fn authenticate(&self, name: &str, password: &str, peer: IpAddr) -> Result<(), LoginError> {
        let database = self.database.read();
        let user = database.users.get(name).ok_or(LoginError::BadCredentials)?;
        if !user.password_hash.verify(password) {
            return Err(LoginError::BadCredentials);
        }
        if name == LOOPBACK_ONLY_USER && !peer.is_loopback() {
            return Err(LoginError::LoopbackOnly);
        }
        Ok(())
    }

    /// Whether `user` has permissions (of any kind) in `vhost`, which opening a connection to it requires.
    pub fn may_open(&self, user: &str, vhost: &str) -> bool {
        let database = self.database.read();
        database
            .permissions
            .get(user)
            .is_some_and(|vhosts| vhosts.contains_key(vhost))
    }

    /// Whether `user` may exercise `permission` on the resource `name` in `vhost`.
    pub fn allows(&self, user: &str, vhost: &str, permission: Permission, name: &str) -> bool {
        let database = self.database.read();
        database
            .permissions
            .get(user)
            .and_then(|vhosts| vhosts.get(vhost))
            .is_some_and(|p| p.allows(permission, name))
    }

    /// Changes with every change to users or permissions.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Creates a user; fails if one by that name exists.
    pub fn add_user(&self, name: &str, password: &str, tags: &[&str]) -> Result<(), AdminError> {
        self.change(|db| {
            if db.users.contains_key(name) {
                return Err(AdminError::UserExists(name.to_string()));
            }
            let user = User {
                password_hash: PasswordHash::new(password),
                tags: tags.iter().map(|t| t.to_string()).collect(),
            };
            db.users.insert(name.to_string(), user);
            Ok(())
        })
    }

    /// Creates or replaces a user from its definition (an existing password
    /// hash, e.g. exported by RabbitMQ); permissions are kept.
    pub fn put_user(&self, definition: &UserDefinition) -> Result<(), AdminError> {
        let password_hash =
            PasswordHash::from_definition(&definition.hashing_algorithm, &definition.password_hash)
                .map_err(AdminError::InvalidPasswordHash)?;
        self.change(|db| {
            let user = User {
                password_hash,
                tags: definition.tags.clone(),
            };
            db.users.insert(definition.name.clone(), user);
            Ok(())
        })
    }

    /// Sets a new password.
    pub fn change_password(&self, name: &str, password: &str) -> Result<(), AdminError> {
        self.change(|db| {
            db.user_mut(name)?.password_hash = PasswordHash::new(password);
            Ok(())
        })
    }

    /// Replaces a user's tags.
    pub fn set_tags(&self, name: &str, tags: &[&str]) -> Result<(), AdminError> {
        self.change(|db| {
            db.user_mut(name)?.tags = tags.iter().map(|t| t.to_string()).collect();
            Ok(())
        })
    }

    /// Deletes a user with all their permissions.
    pub fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        self.change(|db| {
            db.users
                .remove(name)
                .ok_or_else(|| AdminError::NoSuchUser(name.to_string()))?;
            db.permissions.remove(name);
            Ok(())
        })
    }

    /// Sets a user's permissions in a vhost (the caller checks the vhost exists).
    pub fn set_permissions(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), AdminError> {
        let permissions =
            Permissions::new(configure, write, read).map_err(AdminError::InvalidPattern)?;
        self.change(|db| {
            db.user_mut(user)?;
            let vhosts = db.permissions.entry(user.to_string()).or_default();
            vhosts.insert(vhost.to_string(), permissions);
            Ok(())
        })
    }

    /// Removes a user's permissions in a vhost (nothing happens if there were none).
    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        self.change(|db| {
            db.user_mut(user)?;
            if let Some(vhosts) = db.permissions.get_mut(user) {
                vhosts.remove(vhost);
            }
            Ok(())
        })
    }

    /// Removes everyone's permissions in a deleted vhost.
    pub fn forget_vhost(&self, vhost: &str) {
        let forgotten = self.change(|db| {
            for vhosts in db.permissions.values_mut() {
                vhosts.remove(vhost);
            }
            Ok(())
        });
        forgotten.expect("forgetting a vhost cannot fail");
    }

    /// Every user, as in RabbitMQ's definitions.
    pub fn users(&self) -> Vec<UserDefinition> {
        self.database.read().user_definitions()
    }

    /// Every user's permissions in every vhost, as in RabbitMQ's definitions.
    pub fn permissions(&self) -> Vec<PermissionDefinition> {
        self.database.read().permission_definitions()
    }
}
