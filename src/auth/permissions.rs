//! Per-vhost permissions: three regular expressions saying which queues and
//! exchanges a user may configure, write to and read from.
//!
//! As in RabbitMQ, a pattern matches anywhere in the name unless anchored,
//! and an empty pattern matches only the empty name (it is read as `^$`).

use std::fmt;

use regex_lite::Regex;

/// The kinds of access RabbitMQ distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Create, delete or change a resource (declare, delete).
    Configure,
    /// Put messages in or bind to (publish, bind to a queue or exchange).
    Write,
    /// Take messages from or bind from (consume, get, purge, bind from an exchange).
    Read,
}

/// What a permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A queue.
    Queue,
    /// An exchange.
    Exchange,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Queue => "queue",
            ResourceKind::Exchange => "exchange",
        })
    }
}

/// A pattern as written, with its compiled form.
#[derive(Debug, Clone)]
struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    fn new(source: &str) -> Result<Pattern, PatternError> {
        let effective = if source.is_empty() { "^$" } else { source };
        let regex = Regex::new(effective).map_err(|e| PatternError {
            pattern: source.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }
}

/// A pattern that is not a regular expression Warren understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid permission pattern '{}': {}",
            self.pattern, self.reason
        )
    }
}

impl std::error::Error for PatternError {}

/// One user's permissions in one vhost.
#[derive(Debug, Clone)]
pub struct Permissions {
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

impl Permissions {
    /// Compiles the three patterns.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Permissions, PatternError> {
        Ok(Permissions {
            configure: Pattern::new(configure)?,
            write: Pattern::new(write)?,
            read: Pattern::new(read)?,
        })
    }

    /// Everything allowed (`.*` three times), what the default user gets on `/`.
    pub fn full() -> Permissions {
        Permissions::new(".*", ".*", ".*").expect("literal pattern")
    }

    /// Whether `permission` is granted on a resource called `name`.
    pub fn allows(&self, permission: Permission, name: &str) -> bool {
        let pattern = match permission {
            Permission::Configure => &self.configure,
            Permission::Write => &self.write,
            Permission::Read => &self.read,
        };
        pattern.regex.is_match(name)
    }

    /// The configure pattern as written.
    pub fn configure(&self) -> &str {
        &self.configure.source
    }

    /// The write pattern as written.
    pub fn write(&self) -> &str {
        &self.write.source
    }

    /// The read pattern as written.
    pub fn read(&self) -> &str {
        &self.read.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_anywhere_unless_anchored() {
        let p = Permissions::new("^app-", "log", "^(a|b)$").unwrap();
        assert!(p.allows(Permission::Configure, "app-1"));
        assert!(!p.allows(Permission::Configure, "my-app-1"));
        assert!(p.allows(Permission::Write, "my-logs"));
        assert!(p.allows(Permission::Read, "b"));
        assert!(!p.allows(Permission::Read, "ab"));
    }

    #[test]
    fn an_empty_pattern_matches_only_the_empty_name() {
        let p = Permissions::new("", "", "").unwrap();
        assert!(!p.allows(Permission::Configure, "q"));
        assert!(p.allows(Permission::Configure, ""));
    }

    #[test]
    fn invalid_patterns_are_refused_with_the_reason() {
        let error = Permissions::new(".*", "(", ".*").unwrap_err();
        assert_eq!(error.pattern, "(");
        assert!(
            error
                .to_string()
                .starts_with("invalid permission pattern '('")
        );
    }
}
