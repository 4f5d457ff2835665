//! The administrative API: users, permissions, vhosts and their limits, as
//! `rabbitmqctl` and RabbitMQ's management API change them. Every change is
//! saved to the definitions file before it returns.

use std::sync::Arc;

use crate::auth::AdminError;
use crate::broker::Broker;
use crate::broker::vhost::VHost;
use crate::store::definitions::{PermissionDefinition, UserDefinition, VHostLimits};

impl Broker {
    /// Creates a user with a password and tags (e.g. `administrator`,
    /// `monitoring`, `management`, `policymaker`). Like RabbitMQ's, the new
    /// user has no permissions anywhere, so cannot open a connection yet.
    pub fn add_user(&self, name: &str, password: &str, tags: &[&str]) -> Result<(), AdminError> {
        self.access.add_user(name, password, tags)
    }

    /// Creates or replaces a user from its definition, keeping its password
    /// hash as it is (to import users exported by RabbitMQ).
    pub fn put_user(&self, definition: &UserDefinition) -> Result<(), AdminError> {
        self.access.put_user(definition)
    }

    /// Sets a user's password; open connections stay open.
    pub fn change_password(&self, name: &str, password: &str) -> Result<(), AdminError> {
        self.access.change_password(name, password)
    }

    /// Replaces a user's tags.
    pub fn set_user_tags(&self, name: &str, tags: &[&str]) -> Result<(), AdminError> {
        self.access.set_tags(name, tags)
    }

    /// Deletes a user and their permissions, and closes their connections
    /// with 320 CONNECTION_FORCED, as RabbitMQ does.
    pub fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        self.access.delete_user(name)?;
        self.connections
            .close_of_user(name, &format!("user '{name}' is deleted"));
        Ok(())
    }

    /// Every user, in the shape of RabbitMQ's definitions.
    pub fn users(&self) -> Vec<UserDefinition> {
        self.access.users()
    }

    /// Sets what `user` may configure, write and read in `vhost`: three
    /// regular expressions matched against queue and exchange names (the
    /// default exchange is called `amq.default` here). Applies at once, to
    /// open channels too.
    pub fn set_permissions(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), AdminError> {
        self.existing_vhost(vhost)?;
        self.access
            .set_permissions(user, vhost, configure, write, read)
    }

    /// Removes `user`'s permissions in `vhost`: they can no longer open
    /// connections to it, and their open channels there are refused
    /// everything from then on.
    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        self.existing_vhost(vhost)?;
        self.access.clear_permissions(user, vhost)
    }

    /// Every user's permissions, in the shape of RabbitMQ's definitions.
    pub fn permissions(&self) -> Vec<PermissionDefinition> {
        self.access.permissions()
    }

    /// Creates an empty vhost (with the standard `amq.*` exchanges). Nobody
    /// has permissions in it yet.
    pub fn add_vhost(&self, name: &str) -> Result<(), AdminError> {
        let mut vhosts = self.vhosts.write();
        if vhosts.contains_key(name) {
            return Err(AdminError::VHostExists(name.to_string()));
        }
        self.durability.saved.add_vhost(name);
        vhosts.insert(name.to_string(), VHost::new(name, self.durability.clone()));
        Ok(())
    }

    /// Deletes a vhost as RabbitMQ does: its queues (with their messages)
    /// and exchanges go, everyone's permissions there go, and its
    /// connections are closed with 320 CONNECTION_FORCED.
    pub fn delete_vhost(&self, name: &str) -> Result<(), AdminError> {
        let vhost = self
            .vhosts
            .write()
            .remove(name)
            .ok_or_else(|| AdminError::NoSuchVHost(name.to_string()))?;
        // Forgotten on disk first, so that nothing the deletion saves brings it back.
        self.durability.saved.remove_vhost(name);
        self.access.forget_vhost(name);
        vhost.delete_everything();
        self.connections
            .close_in_vhost(name, &format!("vhost '{name}' is deleted"));
        Ok(())
    }

    /// The names of every vhost, sorted.
    pub fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vhosts.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Sets a vhost's limits (`max-connections`, `max-queues`); `None` lifts one.
    pub fn set_vhost_limits(&self, vhost: &str, limits: VHostLimits) -> Result<(), AdminError> {
        self.existing_vhost(vhost)?.set_limits(limits);
        Ok(())
    }

    /// A vhost's limits.
    pub fn vhost_limits(&self, vhost: &str) -> Result<VHostLimits, AdminError> {
        Ok(self.existing_vhost(vhost)?.limits())
    }

    fn existing_vhost(&self, name: &str) -> Result<Arc<VHost>, AdminError> {
        self.vhost(name)
            .ok_or_else(|| AdminError::NoSuchVHost(name.to_string()))
    }
}
