//! Users, vhosts and limits as RabbitMQ manages them: who may open which
//! vhost, the connection and queue limits with RabbitMQ's texts, deleting a
//! vhost or a user (their connections are closed with 320), and all of it
//! surviving a restart.
//!
//! Users, vhosts and limits are set through the broker's API, so these tests
//! drive the in-process broker only. The refusal and close texts were
//! checked against RabbitMQ 3.10.8 (`rabbitmqctl add_user`, `set_permissions`,
//! `set_vhost_limits`, `delete_vhost`, `delete_user`), except the
//! broker-wide connection limit, which 3.10 enforces silently (see its test).

mod common;

use common::eventually;
use common::lapin::{expect_error, ok};
use common::raw::{Login, RawClient, bounded};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use warren::store::definitions::VHostLimits;
use warren::testing::InProcessServer;

const USER: &str = "bob";
const PASSWORD: &str = "bob-secret";
const VHOST: &str = "team";

/// A broker with vhost `team` where bob has full permissions.
fn broker_with_team() -> InProcessServer {
    let server = InProcessServer::start();
    let broker = server.broker();
    broker.add_vhost(VHOST).unwrap();
    broker.add_user(USER, PASSWORD, &["management"]).unwrap();
    broker
        .set_permissions(USER, VHOST, ".*", ".*", ".*")
        .unwrap();
    server
}

fn login(user: &str, password: &str, vhost: &str) -> Login {
    Login {
        user: user.to_string(),
        password: password.to_string(),
        vhost: vhost.to_string(),
    }
}

async fn connect(server: &InProcessServer, user: &str, password: &str, vhost: &str) -> Connection {
    let url = format!("amqp://{user}:{password}@{}/{vhost}", server.addr());
    ok(Connection::connect(&url, ConnectionProperties::default())).await
}

/// Runs the handshake up to connection.open and expects RabbitMQ's 530 with `text`.
async fn expect_open_refused(server: &InProcessServer, login: &Login, text: &str) {
    let mut client = RawClient::connect_to(server.addr()).await;
    client.expect_start().await;
    client
        .send(&common::raw::connection_start_ok(
            &login.user,
            &login.password,
        ))
        .await;
    let tune = client.expect_tune().await;
    client
        .send(&common::raw::connection_tune_ok(
            tune.channel_max,
            tune.frame_max,
            0,
        ))
        .await;
    client
        .send(&common::raw::connection_open(&login.vhost))
        .await;
    let close = client.expect_connection_close(530, text, (10, 40)).await;
    assert_eq!(close.text, text);
    client.finish_close().await;
}

/// Waits until the broker counts `n` open connections.
async fn wait_for_connections(server: &InProcessServer, n: usize) {
    let connections = server.broker().connections();
    let counted = eventually(std::time::Duration::from_secs(5), || {
        connections.count() == n
    })
    .await;
    assert!(
        counted,
        "expected {n} open connections, have {}",
        connections.count()
    );
}

/// An open connection (raw, so that the broker's close can be read) to `vhost`.
async fn open_raw(server: &InProcessServer, login: &Login) -> RawClient {
    let mut client = RawClient::connect_to(server.addr()).await;
    client.handshake(login).await;
    client.open_channel(1).await;
    client
}

#[tokio::test]
async fn a_vhost_without_permissions_is_refused_with_530() {
    bounded(async {
        let server = broker_with_team();
        // guest has permissions on `/` only.
        expect_open_refused(
            &server,
            &login("guest", "guest", VHOST),
            "NOT_ALLOWED - access to vhost 'team' refused for user 'guest'",
        )
        .await;
        expect_open_refused(
            &server,
            &login(USER, PASSWORD, "/"),
            "NOT_ALLOWED - access to vhost '/' refused for user 'bob'",
        )
        .await;
        let mut client = open_raw(&server, &login(USER, PASSWORD, VHOST)).await;
        client.close().await;
    })
    .await;
}

#[tokio::test]
async fn the_vhost_connection_limit_refuses_with_530() {
    bounded(async {
        let server = broker_with_team();
        let limits = VHostLimits {
            max_connections: Some(1),
            max_queues: None,
        };
        server.broker().set_vhost_limits(VHOST, limits).unwrap();
        let bob = login(USER, PASSWORD, VHOST);
        let mut first = open_raw(&server, &bob).await;
        let text = "NOT_ALLOWED - access to vhost 'team' refused for user 'bob': \
                    connection limit (1) is reached";
        expect_open_refused(&server, &bob, text).await;
        // Other vhosts are not affected; a closed connection frees its place.
        let mut guest = open_raw(&server, &login("guest", "guest", "/")).await;
        guest.close().await;
        first.close().await;
        wait_for_connections(&server, 0).await;
        let mut again = open_raw(&server, &bob).await;
        again.close().await;
        let none = VHostLimits {
            max_connections: Some(0),
            max_queues: None,
        };
        server.broker().set_vhost_limits(VHOST, none).unwrap();
        let text = "NOT_ALLOWED - access to vhost 'team' refused for user 'bob': \
                    connection limit (0) is reached";
        expect_open_refused(&server, &bob, text).await;
    })
    .await;
}

/// RabbitMQ 3.12 and later refuse connections over `connection_max` at
/// connection.open with this text; 3.10 leaves them unaccepted instead.
#[tokio::test]
async fn the_broker_wide_connection_limit_refuses_with_530() {
    bounded(async {
        let server = InProcessServer::start_with(|config| config.connection_max = Some(1));
        let guest = login("guest", "guest", "/");
        let mut first = open_raw(&server, &guest).await;
        let text = "NOT_ALLOWED - connection refused: node connection limit (1) is reached";
        expect_open_refused(&server, &guest, text).await;
        first.close().await;
        wait_for_connections(&server, 0).await;
        let mut again = open_raw(&server, &guest).await;
        again.close().await;
    })
    .await;
}

#[tokio::test]
async fn the_vhost_queue_limit_refuses_new_queues_with_406() {
    let server = broker_with_team();
    let limits = VHostLimits {
        max_connections: None,
        max_queues: Some(2),
    };
    server.broker().set_vhost_limits(VHOST, limits).unwrap();
    let conn = connect(&server, USER, PASSWORD, VHOST).await;
    let declare = |name: &'static str| {
        let conn = &conn;
        async move {
            let ch = conn.create_channel().await?;
            ch.queue_declare(
                name.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
        }
    };
    ok(declare("q1")).await;
    ok(declare("q2")).await;
    assert_eq!(
        expect_error(declare("q3")).await,
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost 'team' (2) \
             is reached"
                .to_string()
        )
    );
    // Redeclaring an existing queue is no new queue.
    ok(declare("q1")).await;
}

#[tokio::test]
async fn deleting_a_vhost_closes_its_connections_and_deletes_its_queues() {
    bounded(async {
        let server = broker_with_team();
        let conn = connect(&server, USER, PASSWORD, VHOST).await;
        let ch = ok(conn.create_channel()).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ok(ch.queue_declare("kept?".into(), durable, FieldTable::default())).await;
        let mut raw = open_raw(&server, &login(USER, PASSWORD, VHOST)).await;
        let mut on_root = open_raw(&server, &login("guest", "guest", "/")).await;

        server.broker().delete_vhost(VHOST).unwrap();
        let text = "CONNECTION_FORCED - vhost 'team' is deleted";
        let close = raw.expect_connection_close(320, text, (0, 0)).await;
        assert_eq!(close.text, text);
        raw.finish_close().await;
        on_root.close().await;
        assert_eq!(server.broker().vhost_names(), ["/"]);

        // A vhost of the same name starts empty, with no permissions.
        server.broker().add_vhost(VHOST).unwrap();
        expect_open_refused(
            &server,
            &login(USER, PASSWORD, VHOST),
            "NOT_ALLOWED - access to vhost 'team' refused for user 'bob'",
        )
        .await;
        server
            .broker()
            .set_permissions(USER, VHOST, ".*", ".*", ".*")
            .unwrap();
        let conn = connect(&server, USER, PASSWORD, VHOST).await;
        let ch = ok(conn.create_channel()).await;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        assert_eq!(
            expect_error(ch.queue_declare("kept?".into(), passive, FieldTable::default())).await,
            (
                404,
                "NOT_FOUND - no queue 'kept?' in vhost 'team'".to_string()
            )
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_a_user_closes_their_connections() {
    bounded(async {
        let server = broker_with_team();
        let mut raw = open_raw(&server, &login(USER, PASSWORD, VHOST)).await;
        server.broker().delete_user(USER).unwrap();
        let text = "CONNECTION_FORCED - user 'bob' is deleted";
        let close = raw.expect_connection_close(320, text, (0, 0)).await;
        assert_eq!(close.text, text);
        raw.finish_close().await;
        let url = format!("amqp://{USER}:{PASSWORD}@{}/{VHOST}", server.addr());
        assert!(
            Connection::connect(&url, ConnectionProperties::default())
                .await
                .is_err(),
            "a deleted user cannot log in"
        );
    })
    .await;
}

#[tokio::test]
async fn the_default_user_is_an_administrator_with_full_permissions_on_the_default_vhost() {
    let server = InProcessServer::start();
    let broker = server.broker();
    let users = broker.users();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name, "guest");
    assert_eq!(users[0].tags, ["administrator"]);
    assert_eq!(users[0].hashing_algorithm, "rabbit_password_hashing_sha256");
    let permissions = broker.permissions();
    assert_eq!(permissions.len(), 1);
    let p = &permissions[0];
    assert_eq!(
        (&*p.user, &*p.vhost, &*p.configure, &*p.write, &*p.read),
        ("guest", "/", ".*", ".*", ".*")
    );
}

#[tokio::test]
async fn users_vhosts_permissions_and_limits_survive_a_restart() {
    let server = broker_with_team();
    let limits = VHostLimits {
        max_connections: Some(5),
        max_queues: Some(7),
    };
    server.broker().set_vhost_limits(VHOST, limits).unwrap();
    server.broker().delete_user("guest").unwrap();
    let server = server.restart();
    let broker = server.broker();
    assert_eq!(broker.vhost_names(), ["/", VHOST]);
    assert_eq!(broker.vhost_limits(VHOST).unwrap(), limits);
    let users = broker.users();
    assert_eq!(
        users.len(),
        1,
        "the deleted default user is not created again"
    );
    assert_eq!(
        (&*users[0].name, &users[0].tags[..]),
        (USER, &["management".to_string()][..])
    );
    // The stored hash still verifies the password: bob logs in to his vhost.
    let conn = connect(&server, USER, PASSWORD, VHOST).await;
    ok(conn.close(200, "bye".into())).await;
}

/// A data directory written before users were stored still loads: its
/// queues are kept, and the default user is created as on a first start.
#[tokio::test]
async fn definitions_from_before_users_were_stored_still_load() {
    let server = InProcessServer::start();
    let conn = connect(&server, "guest", "guest", "%2f").await;
    let ch = ok(conn.create_channel()).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ok(ch.queue_declare("old".into(), durable, FieldTable::default())).await;
    ok(conn.close(200, "bye".into())).await;
    let data_dir = server.data_dir().to_path_buf();
    server.broker().delete_user("guest").unwrap();
    let server = server.restart_with(|| {
        let path = data_dir.join("definitions.json");
        let mut file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let object = file.as_object_mut().unwrap();
        object.remove("users").expect("users are stored");
        object.remove("permissions");
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    });
    let conn = connect(&server, "guest", "guest", "%2f").await;
    let ch = ok(conn.create_channel()).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ok(ch.queue_declare("old".into(), passive, FieldTable::default())).await;
}
