//! `warren ctl`: operating a running Warren through its management API, as
//! `rabbitmqctl` and `rabbitmqadmin` operate RabbitMQ (and working against
//! RabbitMQ's management API too).

pub mod client;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::ctl::client::{Client, Response, segment};

/// `warren ctl` and its options.
#[derive(Debug, Args)]
pub struct Ctl {
    /// The management API's address.
    #[arg(long, default_value = "127.0.0.1:15672", value_name = "ADDR:PORT")]
    pub addr: SocketAddr,
    /// User to call the API as (needs the administrator tag to change anything).
    #[arg(long, default_value = "guest")]
    pub user: String,
    /// That user's password.
    #[arg(long, default_value = "guest")]
    pub password: String,
    /// Output of the list commands.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

/// How lists are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with a header.
    Table,
    /// The API's JSON, as returned.
    Json,
}

/// What `warren ctl` does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lists objects of one kind.
    List {
        /// What to list.
        #[arg(value_enum)]
        what: Listable,
        /// Only objects of this vhost (queues, exchanges, bindings, consumers).
        #[arg(long)]
        vhost: Option<String>,
    },
    /// Creates a user, or changes its password and tags.
    AddUser {
        name: String,
        password: String,
        /// Comma-separated tags, e.g. `administrator` or `management,monitoring`.
        #[arg(long, default_value = "")]
        tags: String,
    },
    /// Deletes a user (their connections are closed).
    DeleteUser { name: String },
    /// Sets a user's permissions in a vhost: configure, write and read patterns.
    SetPermissions {
        user: String,
        configure: String,
        write: String,
        read: String,
        #[arg(long, default_value = "/")]
        vhost: String,
    },
    /// Creates a vhost.
    AddVhost { name: String },
    /// Deletes a vhost with everything in it.
    DeleteVhost { name: String },
    /// Closes a client connection (by the name `list connections` shows).
    CloseConnection {
        name: String,
        /// The reason the client is given.
        #[arg(long, default_value = "Closed via management plugin")]
        reason: String,
    },
    /// Writes every definition (users, vhosts, permissions, durable objects) to a file.
    ExportDefinitions { file: PathBuf },
    /// Creates what a definitions file (from Warren or RabbitMQ) describes.
    ImportDefinitions { file: PathBuf },
}

/// What `list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Listable {
    Queues,
    Exchanges,
    Bindings,
    Connections,
    Consumers,
    Users,
    Vhosts,
}

impl Listable {
    /// The API path, and whether it narrows to one vhost.
    fn path(self) -> (&'static str, bool) {
        match self {
            Listable::Queues => ("queues", true),
            Listable::Exchanges => ("exchanges", true),
            Listable::Bindings => ("bindings", true),
            Listable::Connections => ("connections", false),
            Listable::Consumers => ("consumers", true),
            Listable::Users => ("users", false),
            Listable::Vhosts => ("vhosts", false),
        }
    }

    /// The columns of the table format (dotted paths into each object).
    fn columns(self) -> &'static [&'static str] {
        match self {
            Listable::Queues => &[
                "vhost",
                "name",
                "messages",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ],
            Listable::Exchanges => &["vhost", "name", "type", "durable"],
            Listable::Bindings => &[
                "vhost",
                "source",
                "destination",
                "destination_type",
                "routing_key",
            ],
            Listable::Connections => &["name", "user", "vhost", "channels"],
            Listable::Consumers => &[
                "queue.vhost",
                "queue.name",
                "consumer_tag",
                "channel_details.connection_name",
                "ack_required",
            ],
            Listable::Users => &["name", "tags"],
            Listable::Vhosts => &["name", "messages"],
        }
    }
}

/// Runs the command; what it prints goes to `out`. Errors are the API's
/// reasons (or why it could not be reached).
pub fn run(ctl: &Ctl, out: &mut impl std::io::Write) -> Result<(), String> {
    let client = Client {
        addr: ctl.addr,
        user: ctl.user.clone(),
        password: ctl.password.clone(),
    };
    let call = |method: &str, path: String, body: Option<Value>, headers: &[(&str, &str)]| {
        let response = client
            .send(method, &path, body.as_ref(), headers)
            .map_err(|e| format!("cannot reach the management API at {}: {e}", ctl.addr))?;
        succeeded(response)
    };
    let written = |result: std::io::Result<()>| result.map_err(|e| e.to_string());
    match &ctl.command {
        Command::List { what, vhost } => {
            let (family, by_vhost) = what.path();
            let path = match (vhost, by_vhost) {
                (Some(vhost), true) => format!("/api/{family}/{}", segment(vhost)),
                _ => format!("/api/{family}"),
            };
            let list = call("GET", path, None, &[])?.json();
            let text = match ctl.format {
                Format::Json => serde_json::to_string_pretty(&list).unwrap_or_default(),
                Format::Table => table::render(what.columns(), &list),
            };
            written(writeln!(out, "{text}"))
        }
        Command::AddUser {
            name,
            password,
            tags,
        } => {
            let body = json!({"password": password, "tags": tags});
            call(
                "PUT",
                format!("/api/users/{}", segment(name)),
                Some(body),
                &[],
            )
            .map(drop)
        }
        Command::DeleteUser { name } => {
            call("DELETE", format!("/api/users/{}", segment(name)), None, &[]).map(drop)
        }
        Command::SetPermissions {
            user,
            configure,
            write,
            read,
            vhost,
        } => {
            let body = json!({"configure": configure, "write": write, "read": read});
            let path = format!("/api/permissions/{}/{}", segment(vhost), segment(user));
            call("PUT", path, Some(body), &[]).map(drop)
        }
        Command::AddVhost { name } => {
            call("PUT", format!("/api/vhosts/{}", segment(name)), None, &[]).map(drop)
        }
        Command::DeleteVhost { name } => call(
            "DELETE",
            format!("/api/vhosts/{}", segment(name)),
            None,
            &[],
        )
        .map(drop),
        Command::CloseConnection { name, reason } => {
            let path = format!("/api/connections/{}", segment(name));
            call("DELETE", path, None, &[("X-Reason", reason)]).map(drop)
        }
        Command::ExportDefinitions { file } => {
            let definitions = call("GET", "/api/definitions".into(), None, &[])?.json();
            let text = serde_json::to_string_pretty(&definitions).unwrap_or_default();
            std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))
        }
        Command::ImportDefinitions { file } => {
            let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let definitions: Value = serde_json::from_slice(&text)
                .map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
            call("POST", "/api/definitions".into(), Some(definitions), &[]).map(drop)
        }
    }
}

/// The response if it is a success, else the API's reason.
fn succeeded(response: Response) -> Result<Response, String> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let body = response.json();
    let reason = body["reason"].as_str().map_or_else(
        || String::from_utf8_lossy(&response.body).into_owned(),
        String::from,
    );
    Err(format!("{} {reason}", response.status))
}
