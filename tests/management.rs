//! The management HTTP API as RabbitMQ's clients use it: basic
//! authentication and tag rules, RabbitMQ's JSON shapes and status codes for
//! every resource family, and the effects of API calls on AMQP clients.
//! Shapes, codes and texts were checked against RabbitMQ 3.10.8's
//! management plugin.

mod common;

use std::time::Duration;

use common::lapin::{Inbox, amqp_error, ok, publish, wait_until};
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use warren::ctl::client::{Client, Response, segment};
use warren::testing::InProcessServer;

fn api(server: &InProcessServer, user: &str, password: &str) -> Client {
    Client {
        addr: server.management_addr(),
        user: user.into(),
        password: password.into(),
    }
}

/// A fresh broker and an API client logged in as `guest`.
fn started() -> (InProcessServer, Client) {
    let server = InProcessServer::start();
    let client = guest(&server);
    (server, client)
}

/// `PUT path` with a JSON body.
fn put(client: &Client, path: &str, body: Value) -> Response {
    call(client, "PUT", path, Some(body))
}

fn guest(server: &InProcessServer) -> Client {
    api(server, "guest", "guest")
}

fn call(client: &Client, method: &str, path: &str, body: Option<Value>) -> Response {
    client
        .send(method, path, body.as_ref(), &[])
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The status of a request without a body.
fn status(client: &Client, method: &str, path: &str) -> u16 {
    call(client, method, path, None).status
}

/// Sends each bodiless request in turn, expecting its status.
fn expect_statuses(client: &Client, steps: &[(&str, &str, u16)]) {
    for (method, path, expected) in steps {
        assert_eq!(status(client, method, path), *expected, "{method} {path}");
    }
}

/// `GET path`, expecting 200, as JSON.
fn get(client: &Client, path: &str) -> Value {
    let response = call(client, "GET", path, None);
    assert_eq!(response.status, 200, "GET {path}: {:?}", response.json());
    response.json()
}

fn amqp_url(server: &InProcessServer, user: &str, password: &str, vhost: &str) -> String {
    format!(
        "amqp://{user}:{password}@{}/{}",
        server.addr(),
        segment(vhost)
    )
}

async fn connect(server: &InProcessServer) -> Connection {
    let url = amqp_url(server, "guest", "guest", "/");
    ok(Connection::connect(&url, ConnectionProperties::default())).await
}

/// The AMQP errors the connection reports, as (reply code, reply text).
fn errors_of(conn: &Connection) -> tokio::sync::mpsc::UnboundedReceiver<(u16, String)> {
    use futures_lite::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut events = Box::pin(conn.events_listener());
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let lapin::Event::Error(err) = event {
                let _ = tx.send(amqp_error(&err));
            }
        }
    });
    rx
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn credentials_and_tags_decide_access_with_rabbitmq_errors() {
    let server = InProcessServer::start();
    let broker = server.broker();
    broker.add_user("nobody", "pw", &[]).unwrap();
    broker.add_user("viewer", "pw", &["management"]).unwrap();
    broker.add_user("watcher", "pw", &["monitoring"]).unwrap();

    let wrong = call(
        &api(&server, "guest", "wrong"),
        "GET",
        "/api/overview",
        None,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        json!({"error": "not_authorized", "reason": "Login failed"})
    );
    assert!(wrong.header("www-authenticate").is_some());

    let untagged = call(&api(&server, "nobody", "pw"), "GET", "/api/overview", None);
    assert_eq!(untagged.status, 401);
    assert_eq!(
        untagged.json(),
        json!({"error": "not_authorised", "reason": "Not management user"})
    );

    let viewer = api(&server, "viewer", "pw");
    assert_eq!(
        get(&viewer, "/api/whoami"),
        json!({"name": "viewer", "tags": ["management"]})
    );
    let users = call(&viewer, "GET", "/api/users", None);
    assert_eq!(users.status, 401);
    assert_eq!(users.json()["reason"], "Not administrator user");
    // Without permissions in `/`, a management user sees none of its objects.
    assert_eq!(get(&viewer, "/api/vhosts"), json!([]));
    let queues = call(&viewer, "GET", "/api/queues/%2F", None);
    assert_eq!(queues.status, 401);
    assert_eq!(
        queues.json()["reason"],
        "User not authorised to access virtual host"
    );
    let alarms = call(&viewer, "GET", "/api/health/checks/alarms", None);
    assert_eq!(alarms.json()["reason"], "Not monitor user");

    let watcher = api(&server, "watcher", "pw");
    assert_eq!(names(&get(&watcher, "/api/vhosts")), ["/"]);
    assert_eq!(
        get(&watcher, "/api/health/checks/alarms"),
        json!({"status": "ok"})
    );
    assert_eq!(status(&watcher, "PUT", "/api/vhosts/x"), 401);
}

#[test]
fn missing_objects_bad_json_and_unknown_paths_answer_as_rabbitmq() {
    let (_server, client) = started();
    let missing = call(&client, "GET", "/api/queues/%2F/nope", None);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    assert_eq!(status(&client, "GET", "/api/vhosts/nope"), 404);
    assert_eq!(status(&client, "GET", "/api/nothing-here"), 404);
    // A JSON text where an object is expected.
    let response = put(&client, "/api/queues/%2F/q", json!("not an object"));
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"], "bad_request");
}

#[test]
fn vhosts_users_and_permissions_are_managed_over_http() {
    let (server, client) = started();
    assert_eq!(status(&client, "PUT", "/api/vhosts/team%2Fa"), 201);
    assert_eq!(status(&client, "PUT", "/api/vhosts/team%2Fa"), 204);
    assert_eq!(names(&get(&client, "/api/vhosts")), ["/", "team/a"]);
    let vhost = get(&client, "/api/vhosts/team%2Fa");
    assert_eq!(vhost["name"], "team/a");
    assert_eq!(vhost["messages"], 0);

    let created = put(
        &client,
        "/api/users/alice",
        json!({"password": "secret", "tags": "management,monitoring"}),
    );
    assert_eq!(created.status, 201);
    let alice = get(&client, "/api/users/alice");
    assert_eq!(alice["tags"], json!(["management", "monitoring"]));
    assert_eq!(alice["hashing_algorithm"], "rabbit_password_hashing_sha256");
    // The hash moves to another user as it is: the same password logs in.
    let copied = put(
        &client,
        "/api/users/alice2",
        json!({"password_hash": alice["password_hash"], "tags": ["management"]}),
    );
    assert_eq!(copied.status, 201);
    assert_eq!(
        get(&api(&server, "alice2", "secret"), "/api/whoami")["name"],
        "alice2"
    );

    let put = put(
        &client,
        "/api/permissions/team%2Fa/alice",
        json!({"configure": "^a", "write": ".*", "read": ".*"}),
    );
    assert_eq!(put.status, 201);
    assert_eq!(
        get(&client, "/api/permissions/team%2Fa/alice"),
        json!({"user": "alice", "vhost": "team/a", "configure": "^a", "write": ".*", "read": ".*"})
    );
    assert_eq!(
        get(&client, "/api/users/alice/permissions")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(server.broker().access_control().may_open("alice", "team/a"));
    assert_eq!(
        status(&client, "DELETE", "/api/permissions/team%2Fa/alice"),
        204
    );
    assert!(!server.broker().access_control().may_open("alice", "team/a"));
    expect_statuses(
        &client,
        &[
            ("DELETE", "/api/users/alice", 204),
            ("GET", "/api/users/alice", 404),
            ("DELETE", "/api/vhosts/team%2Fa", 204),
            ("DELETE", "/api/vhosts/team%2Fa", 404),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_show_counts_and_counters_as_clients_use_them() {
    let (server, client) = started();
    let declared = put(
        &client,
        "/api/queues/%2F/work",
        json!({"durable": true, "auto_delete": false, "arguments": {"x-max-length": 100}}),
    );
    assert_eq!(declared.status, 201);
    let inequivalent = put(&client, "/api/queues/%2F/work", json!({"durable": false}));
    assert_eq!(inequivalent.status, 400);
    assert_eq!(
        inequivalent.json()["reason"],
        "inequivalent arg 'durable' for queue 'work' in vhost '/': received 'false' but current is 'true'"
    );

    let conn = connect(&server).await;
    let ch = ok(conn.create_channel()).await;
    for i in 0..3 {
        publish(&ch, "work", format!("m{i}")).await;
    }
    let consumer_ch = ok(conn.create_channel()).await;
    ok(consumer_ch.basic_qos(1, BasicQosOptions::default())).await;
    let consumer = ok(consumer_ch.basic_consume(
        "work".into(),
        "c1".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await;
    let mut inbox = Inbox::new(consumer);
    inbox.next().await;
    wait_until("one unacknowledged delivery", || {
        let queue = get(&client, "/api/queues/%2F/work");
        async move { queue["messages_unacknowledged"] == 1 }
    })
    .await;
    let queue = get(&client, "/api/queues/%2F/work");
    assert_eq!(queue["name"], "work");
    assert_eq!(queue["vhost"], "/");
    assert_eq!(queue["durable"], true);
    assert_eq!(queue["arguments"], json!({"x-max-length": 100}));
    assert_eq!(queue["messages"], 3);
    assert_eq!(queue["messages_ready"], 2);
    assert_eq!(queue["consumers"], 1);
    assert_eq!(queue["message_stats"]["publish"], 3);
    assert_eq!(queue["message_stats"]["deliver_get"], 1);
    assert!(queue["message_stats"]["publish_details"]["rate"].is_number());
    let consumers = get(&client, "/api/consumers/%2F");
    assert_eq!(consumers[0]["consumer_tag"], "c1");
    assert_eq!(consumers[0]["queue"], json!({"name": "work", "vhost": "/"}));
    assert_eq!(consumers[0]["channel_details"]["number"], 2);
    ok(consumer_ch.close(200, "done".into())).await;

    // Peek: the messages come back, marked redelivered where they were delivered.
    let peeked = call(
        &client,
        "POST",
        "/api/queues/%2F/work/get",
        Some(json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto"})),
    );
    assert_eq!(peeked.status, 200);
    let peeked = peeked.json();
    assert_eq!(peeked.as_array().unwrap().len(), 2);
    assert_eq!(peeked[0]["payload"], "m0");
    assert_eq!(peeked[0]["payload_encoding"], "string");
    assert_eq!(peeked[0]["routing_key"], "work");
    assert_eq!(peeked[1]["message_count"], 1);
    let taken = call(
        &client,
        "POST",
        "/api/queues/%2F/work/get",
        Some(json!({"count": "1", "ackmode": "ack_requeue_false", "encoding": "base64", "truncate": 1})),
    )
    .json();
    assert_eq!(taken[0]["payload"], "bQ==");
    assert_eq!(taken[0]["payload_bytes"], 2);
    assert_eq!(get(&client, "/api/queues/%2F/work")["messages"], 2);

    assert_eq!(
        status(&client, "DELETE", "/api/queues/%2F/work/contents"),
        204
    );
    assert_eq!(get(&client, "/api/queues/%2F/work")["messages"], 0);
    assert_eq!(names(&get(&client, "/api/queues")), ["work"]);
    expect_statuses(
        &client,
        &[
            ("DELETE", "/api/queues/%2F/work", 204),
            ("GET", "/api/queues/%2F/work", 404),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_bindings_and_publish_route_like_amqp() {
    let (server, client) = started();
    let declared = put(
        &client,
        "/api/exchanges/%2F/orders",
        json!({"type": "topic", "durable": "true"}),
    );
    assert_eq!(declared.status, 201);
    let exchange = get(&client, "/api/exchanges/%2F/orders");
    assert_eq!(exchange["type"], "topic");
    assert_eq!(exchange["durable"], true);
    let all = names(&get(&client, "/api/exchanges/%2F"));
    assert!(all.contains(&String::new()) && all.contains(&"amq.topic".to_string()));
    assert_eq!(get(&client, "/api/exchanges/%2F/amq.default")["name"], "");

    put(&client, "/api/queues/%2F/eu", json!({}));
    let bound = call(
        &client,
        "POST",
        "/api/bindings/%2F/e/orders/q/eu",
        Some(json!({"routing_key": "eu.#"})),
    );
    assert_eq!(bound.status, 201);
    let between = get(&client, "/api/bindings/%2F/e/orders/q/eu");
    assert_eq!(
        between,
        json!([{"source": "orders", "vhost": "/", "destination": "eu", "destination_type": "queue",
                "routing_key": "eu.#", "arguments": {}, "properties_key": "eu.#"}])
    );
    // The default exchange's implicit binding is listed too, as RabbitMQ lists it.
    let of_queue = get(&client, "/api/queues/%2F/eu/bindings");
    assert_eq!(of_queue.as_array().unwrap().len(), 2);
    assert_eq!(of_queue[0]["source"], "");

    let publish = |key: &str| {
        call(
            &client,
            "POST",
            "/api/exchanges/%2F/orders/publish",
            Some(
                json!({"routing_key": key, "payload": "hi", "payload_encoding": "string",
                        "properties": {"delivery_mode": 2, "headers": {"a": 1}}}),
            ),
        )
    };
    assert_eq!(publish("eu.fr").json(), json!({"routed": true}));
    assert_eq!(publish("us.ny").json(), json!({"routed": false}));
    let conn = connect(&server).await;
    let ch = ok(conn.create_channel()).await;
    let got = ok(ch.basic_get("eu".into(), Default::default()))
        .await
        .expect("a message");
    assert_eq!(got.delivery.data, b"hi");
    assert_eq!(got.delivery.properties.delivery_mode(), &Some(2));

    let unbound = call(
        &client,
        "DELETE",
        "/api/bindings/%2F/e/orders/q/eu/eu.%23",
        None,
    );
    assert_eq!(unbound.status, 204);
    assert_eq!(get(&client, "/api/bindings/%2F/e/orders/q/eu"), json!([]));
    assert_eq!(status(&client, "DELETE", "/api/exchanges/%2F/orders"), 204);
    assert_eq!(status(&client, "GET", "/api/exchanges/%2F/orders"), 404);
    assert_eq!(
        status(&client, "DELETE", "/api/exchanges/%2F/amq.direct"),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_connection_sends_connection_forced_with_the_reason() {
    let (server, client) = started();
    let conn = connect(&server).await;
    let _ch = ok(conn.create_channel()).await;
    let mut closed = errors_of(&conn);
    wait_until("the connection is listed with its channel", || {
        let list = get(&client, "/api/connections");
        async move { list[0]["channels"] == 1 }
    })
    .await;
    let listed = get(&client, "/api/connections");
    let name = listed[0]["name"].as_str().unwrap().to_string();
    let local = server.addr();
    assert!(
        name.ends_with(&format!(" -> {local}")) && name.starts_with("127.0.0.1:"),
        "RabbitMQ's name: peer -> local, got {name}"
    );
    assert_eq!(listed[0]["user"], "guest");
    assert_eq!(listed[0]["vhost"], "/");
    assert_eq!(listed[0]["protocol"], "AMQP 0-9-1");
    assert_eq!(listed[0]["client_properties"]["product"], "lapin");
    let channels = get(&client, "/api/channels");
    assert_eq!(channels[0]["name"], format!("{name} (1)"));
    assert_eq!(channels[0]["connection_details"]["name"], name);

    let path = format!("/api/connections/{}", segment(&name));
    assert_eq!(get(&client, &path)["name"], name);
    let response = client
        .send("DELETE", &path, None, &[("X-Reason", "maintenance window")])
        .unwrap();
    assert_eq!(response.status, 204);
    let error = tokio::time::timeout(Duration::from_secs(10), closed.recv())
        .await
        .expect("connection closed in time")
        .expect("an error");
    assert_eq!(
        error,
        (320, "CONNECTION_FORCED - maintenance window".to_string())
    );
    wait_until("the connection leaves the list", || {
        let list = get(&client, "/api/connections");
        async move { list == json!([]) }
    })
    .await;
    assert_eq!(status(&client, "DELETE", &path), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_close_reason_is_rabbitmqs() {
    let (server, client) = started();
    let conn = connect(&server).await;
    let mut closed = errors_of(&conn);
    let name = get(&client, "/api/connections")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/connections/{}", segment(&name));
    assert_eq!(status(&client, "DELETE", &path), 204);
    let error = tokio::time::timeout(Duration::from_secs(10), closed.recv())
        .await
        .expect("connection closed in time")
        .expect("an error");
    assert_eq!(
        error,
        (
            320,
            "CONNECTION_FORCED - Closed via management plugin".to_string()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_export_and_import_round_trip() {
    let source = InProcessServer::start();
    let client = guest(&source);
    call(&client, "PUT", "/api/vhosts/shop", None);
    // As in RabbitMQ, creating a vhost grants nobody permissions in it.
    put(
        &client,
        "/api/permissions/shop/guest",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    );
    put(
        &client,
        "/api/users/carol",
        json!({"password": "pw", "tags": "management"}),
    );
    put(
        &client,
        "/api/permissions/shop/carol",
        json!({"configure": ".*", "write": ".*", "read": "^orders"}),
    );
    put(
        &client,
        "/api/exchanges/shop/events",
        json!({"type": "fanout"}),
    );
    put(
        &client,
        "/api/queues/shop/orders",
        json!({"durable": true, "arguments": {"x-message-ttl": 60000}}),
    );
    put(
        &client,
        "/api/queues/shop/scratch",
        json!({"durable": false}),
    );
    call(
        &client,
        "POST",
        "/api/bindings/shop/e/events/q/orders",
        Some(json!({"routing_key": "k"})),
    );
    let exported = get(&client, "/api/definitions");
    assert_eq!(
        exported["queues"],
        json!([{"name": "orders", "vhost": "shop", "durable": true, "auto_delete": false,
                "arguments": {"x-message-ttl": 60000}}]),
        "only durable queues are exported"
    );
    assert_eq!(
        exported["exchanges"],
        json!([{"name": "events", "vhost": "shop", "type": "fanout", "durable": true,
                "auto_delete": false, "internal": false, "arguments": {}}])
    );
    assert_eq!(exported["bindings"][0]["destination"], "orders");

    let target = InProcessServer::start();
    let imported = call(
        &guest(&target),
        "POST",
        "/api/definitions",
        Some(exported.clone()),
    );
    assert_eq!(imported.status, 204, "{:?}", imported.json());
    let again = get(&guest(&target), "/api/definitions");
    for part in [
        "users",
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert_eq!(again[part], exported[part], "{part} survive the round trip");
    }
    // The imported user logs in with the password it had.
    assert_eq!(
        get(&api(&target, "carol", "pw"), "/api/whoami")["name"],
        "carol"
    );
}

#[test]
fn overview_health_checks_and_aliveness() {
    let (server, client) = started();
    let overview = get(&client, "/api/overview");
    assert_eq!(overview["object_totals"]["queues"], 0);
    assert_eq!(overview["queue_totals"]["messages"], 0);
    assert!(overview["message_stats"]["publish_details"]["rate"].is_number());
    let ports: Vec<u64> = overview["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["port"].as_u64().unwrap())
        .collect();
    assert!(ports.contains(&u64::from(server.addr().port())));

    let amqp_port = server.addr().port();
    assert_eq!(
        get(
            &client,
            &format!("/api/health/checks/port-listener/{amqp_port}")
        ),
        json!({"status": "ok", "port": amqp_port})
    );
    let closed = call(&client, "GET", "/api/health/checks/port-listener/1", None);
    assert_eq!(closed.status, 503);
    assert_eq!(closed.json()["status"], "failed");
    assert_eq!(
        get(&client, "/api/aliveness-test/%2F"),
        json!({"status": "ok"})
    );
    assert_eq!(
        get(&client, "/api/queues/%2F/aliveness-test")["messages"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_many_requests() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let server = InProcessServer::start();
    let stream = tokio::net::TcpStream::connect(server.management_addr())
        .await
        .unwrap();
    let mut stream = BufReader::new(stream);
    for _ in 0..3 {
        stream
            .get_mut()
            .write_all(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n")
            .await
            .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["name"], "guest");
    }
}

#[test]
fn the_web_ui_page_is_served_without_credentials() {
    let server = InProcessServer::start();
    // The page itself asks for credentials and sends them to the API.
    let page = call(&api(&server, "nobody", "wrong"), "GET", "/", None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("<title>Warren</title>"));
    for path in [
        "/overview",
        "/queues",
        "/exchanges",
        "/bindings",
        "/connections",
        "/contents",
    ] {
        assert!(html.contains(path), "the page uses {path}");
    }
}

/// An export of RabbitMQ 3.10.8 (`GET /api/definitions`, narrowed to one
/// vhost and user): quorum and classic queues with arguments, an exchange
/// with an alternate exchange, queue, exchange-to-exchange and headers
/// bindings, and a user whose password is `pw`.
const RABBITMQ_EXPORT: &str = include_str!("fixtures/rabbitmq-3.10.8-definitions.json");

#[test]
fn a_rabbitmq_export_imports_and_exports_the_same() {
    let (server, client) = started();
    let exported: Value = serde_json::from_str(RABBITMQ_EXPORT).unwrap();
    let imported = call(&client, "POST", "/api/definitions", Some(exported.clone()));
    assert_eq!(imported.status, 204, "{:?}", imported.json());
    assert_eq!(
        get(&api(&server, "fixture-user", "pw"), "/api/whoami")["name"],
        "fixture-user"
    );
    let again = get(&client, "/api/definitions");
    let sorted = |list: &Value, vhost: Option<&str>| {
        let mut items: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| vhost.is_none_or(|v| item["vhost"] == v))
            .map(Value::to_string)
            .collect();
        items.sort();
        items
    };
    for part in ["queues", "exchanges", "bindings", "permissions"] {
        assert_eq!(
            sorted(&again[part], Some("fixture-shop")),
            sorted(&exported[part], None),
            "{part} come back as RabbitMQ exported them"
        );
    }
    let user = again["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "fixture-user")
        .unwrap();
    for field in ["password_hash", "hashing_algorithm", "tags"] {
        assert_eq!(user[field], exported["users"][0][field]);
    }
}
