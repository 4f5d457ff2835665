//! What one connection's user may do in its vhost, checked per method as
//! RabbitMQ checks it, with the per-channel cache that keeps the publish path
//! free of pattern matching.

use std::sync::Arc;

use crate::auth::{AccessControl, Permission, ResourceKind};
use crate::error::{AmqpError, AmqpResult};

/// The name permissions see for the default exchange (whose real name is empty).
const DEFAULT_EXCHANGE: &str = "amq.default";

/// Granted checks a channel remembers, as many as RabbitMQ's channels do.
const CACHE_SIZE: usize = 12;

/// A user acting in a vhost: what a connection checks its methods against.
#[derive(Debug, Clone)]
pub struct Access {
    control: Arc<AccessControl>,
    user: Arc<str>,
    vhost: Arc<str>,
}

impl Access {
    /// `user` acting in `vhost`.
    pub fn new(control: Arc<AccessControl>, user: &str, vhost: &str) -> Access {
        Access {
            control,
            user: Arc::from(user),
            vhost: Arc::from(vhost),
        }
    }

    /// The authenticated user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks `permission` on a resource, failing with RabbitMQ's 403.
    pub fn check(&self, kind: ResourceKind, name: &str, permission: Permission) -> AmqpResult<()> {
        let name = match (kind, name) {
            (ResourceKind::Exchange, "") => DEFAULT_EXCHANGE,
            _ => name,
        };
        if self
            .control
            .allows(&self.user, &self.vhost, permission, name)
        {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to {kind} '{name}' in vhost '{}' refused for user '{}'",
            self.vhost, self.user
        )))
    }
}

/// Something that decides whether the acting party may exercise a
/// permission; the vhost asks it at the points where RabbitMQ checks.
pub trait Authorize {
    /// Fails with 403 ACCESS_REFUSED if `permission` on the resource is not granted.
    fn authorize(
        &mut self,
        kind: ResourceKind,
        name: &str,
        permission: Permission,
    ) -> AmqpResult<()>;
}

/// The checks a channel passed, so that repeated ones (every publish to the
/// same exchange) cost a short list scan instead of a pattern match. Any
/// change to users or permissions empties it, so a revoked permission takes
/// effect on open channels too.
#[derive(Debug, Default)]
pub struct PermissionCache {
    generation: u64,
    /// Most recent first.
    granted: Vec<(ResourceKind, Permission, Box<str>)>,
}

impl PermissionCache {
    /// Checks `permission` on a resource for `access`, remembering a grant.
    pub fn check(
        &mut self,
        access: &Access,
        kind: ResourceKind,
        name: &str,
        permission: Permission,
    ) -> AmqpResult<()> {
        let generation = access.control.generation();
        if generation != self.generation {
            self.granted.clear();
            self.generation = generation;
        }
        let cached = self
            .granted
            .iter()
            .any(|(k, p, n)| *k == kind && *p == permission && **n == *name);
        if cached {
            return Ok(());
        }
        access.check(kind, name, permission)?;
        self.granted.truncate(CACHE_SIZE - 1);
        self.granted.insert(0, (kind, permission, Box::from(name)));
        Ok(())
    }

    /// This cache checking for `access`, in the form the vhost asks through.
    pub fn for_access<'a>(&'a mut self, access: &'a Access) -> CachedAccess<'a> {
        CachedAccess {
            cache: self,
            access,
        }
    }
}

/// A [`PermissionCache`] checking for one [`Access`].
pub struct CachedAccess<'a> {
    cache: &'a mut PermissionCache,
    access: &'a Access,
}

impl Authorize for CachedAccess<'_> {
    fn authorize(
        &mut self,
        kind: ResourceKind,
        name: &str,
        permission: Permission,
    ) -> AmqpResult<()> {
        self.cache.check(self.access, kind, name, permission)
    }
}
