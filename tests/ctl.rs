//! `warren ctl` end to end: the binary against a running broker's
//! management API, each command checked by its effect on the broker or on
//! a connected client.

mod common;

use std::process::{Command, Output};

use common::lapin::{amqp_error, ok, wait_until};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use warren::testing::InProcessServer;

/// Runs `warren ctl` with `args` against the server's management API.
fn ctl(server: &InProcessServer, args: &[&str]) -> Output {
    let addr = server.management_addr().to_string();
    Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["ctl", "--addr", &addr])
        .args(args)
        .output()
        .expect("run warren ctl")
}

/// Runs it and expects success; returns what it printed.
fn ctl_ok(server: &InProcessServer, args: &[&str]) -> String {
    let output = ctl(server, args);
    assert!(
        output.status.success(),
        "warren ctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

fn json_list(server: &InProcessServer, what: &str) -> Value {
    serde_json::from_str(&ctl_ok(server, &["--format", "json", "list", what])).expect("JSON")
}

#[test]
fn users_vhosts_and_permissions_are_managed_from_the_command_line() {
    let server = InProcessServer::start();
    ctl_ok(&server, &["add-vhost", "team"]);
    ctl_ok(
        &server,
        &["add-user", "dana", "pw", "--tags", "management,monitoring"],
    );
    ctl_ok(
        &server,
        &[
            "set-permissions",
            "--vhost",
            "team",
            "dana",
            ".*",
            ".*",
            "^r",
        ],
    );
    let broker = server.broker();
    assert!(broker.access_control().may_open("dana", "team"));
    let permissions = broker.permissions();
    let dana = permissions.iter().find(|p| p.user == "dana").expect("set");
    assert_eq!((dana.vhost.as_str(), dana.read.as_str()), ("team", "^r"));

    let users = json_list(&server, "users");
    let dana = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "dana")
        .expect("listed");
    assert_eq!(
        dana["tags"],
        serde_json::json!(["management", "monitoring"])
    );
    assert_eq!(
        ctl_ok(&server, &["list", "vhosts"]),
        "name  messages\n/     0\nteam  0\n"
    );

    ctl_ok(&server, &["delete-user", "dana"]);
    assert!(!broker.users().iter().any(|u| u.name == "dana"));
    ctl_ok(&server, &["delete-vhost", "team"]);
    assert_eq!(broker.vhost_names(), ["/"]);

    let refused = ctl(&server, &["delete-vhost", "team"]);
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "warren ctl: 404 Not Found\n"
    );
    let wrong = ctl(&server, &["--password", "nope", "list", "queues"]);
    assert_eq!(
        String::from_utf8_lossy(&wrong.stderr),
        "warren ctl: 401 Login failed\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_what_clients_made_and_a_connection_can_be_closed() {
    let server = InProcessServer::start();
    let url = format!("amqp://guest:guest@{}/%2f", server.addr());
    let conn = ok(Connection::connect(&url, ConnectionProperties::default())).await;
    let ch = ok(conn.create_channel()).await;
    ok(ch.queue_declare(
        "jobs".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    ok(ch.queue_bind(
        "jobs".into(),
        "amq.direct".into(),
        "work".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    // Kept alive: lapin cancels a consumer it drops.
    let _consumer = ok(ch.basic_consume(
        "jobs".into(),
        "c1".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;

    let queues = ctl_ok(&server, &["list", "queues", "--vhost", "/"]);
    assert_eq!(
        queues,
        "vhost  name  messages  messages_ready  messages_unacknowledged  consumers\n\
         /      jobs  0         0               0                        1\n"
    );
    let bindings = ctl_ok(&server, &["list", "bindings"]);
    assert!(
        bindings.contains("/      amq.direct  jobs         queue             work"),
        "{bindings}"
    );
    assert!(ctl_ok(&server, &["list", "exchanges"]).contains("amq.topic"));
    let consumers = json_list(&server, "consumers");
    assert_eq!(consumers[0]["consumer_tag"], "c1");

    wait_until("the connection is listed", || {
        let connections = json_list(&server, "connections");
        async move { connections.as_array().is_some_and(|c| c.len() == 1) }
    })
    .await;
    let name = json_list(&server, "connections")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ctl_ok(&server, &["list", "connections"]).contains(&name));

    let mut events = Box::pin(conn.events_listener());
    ctl_ok(
        &server,
        &["close-connection", &name, "--reason", "rotating"],
    );
    let error = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        use futures_lite::StreamExt;
        loop {
            if let Some(lapin::Event::Error(err)) = events.next().await {
                return amqp_error(&err);
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(error, (320, "CONNECTION_FORCED - rotating".to_string()));
}

#[test]
fn definitions_export_to_a_file_and_import_from_it() {
    let source = InProcessServer::start();
    ctl_ok(&source, &["add-vhost", "shop"]);
    ctl_ok(
        &source,
        &["add-user", "erin", "pw", "--tags", "administrator"],
    );
    ctl_ok(
        &source,
        &[
            "set-permissions",
            "--vhost",
            "shop",
            "erin",
            ".*",
            ".*",
            ".*",
        ],
    );
    let file = source.data_dir().with_extension("definitions.json");
    ctl_ok(&source, &["export-definitions", file.to_str().unwrap()]);
    let exported: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        exported["vhosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "shop")
    );

    let target = InProcessServer::start();
    ctl_ok(&target, &["import-definitions", file.to_str().unwrap()]);
    assert!(target.broker().vhost("shop").is_some());
    assert!(target.broker().access_control().may_open("erin", "shop"));
    std::fs::remove_file(&file).unwrap();
}
