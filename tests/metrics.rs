//! Prometheus metrics: the exposition parses under a strict reading of the
//! text format (0.0.4), and its values follow what clients do, under
//! RabbitMQ's metric names.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::lapin::{ok, publish, wait_until};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use warren::ctl::client::Client;
use warren::testing::InProcessServer;

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text format strictly: every sample belongs to the family
/// whose `# TYPE` came last, families are not repeated, names and labels
/// are well formed, and histogram buckets are cumulative up to `+Inf`,
/// which equals `_count`. Panics on the first violation.
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut samples = Vec::new();
    let mut families = HashSet::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap(), parts.next().expect("a name"));
            assert!(valid_name(name), "metric name {name:?}");
            match keyword {
                "HELP" => {}
                "TYPE" => {
                    let kind = parts.next().expect("a type");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "type {kind:?}"
                    );
                    assert!(families.insert(name.to_string()), "{name} declared twice");
                    current = Some((name.to_string(), kind.to_string()));
                }
                other => panic!("unknown comment keyword {other:?}"),
            }
            continue;
        }
        let (name, labels, value) = parse_sample(line);
        let (family, kind) = current.as_ref().expect("a TYPE line comes first");
        let belongs = match kind.as_str() {
            "histogram" => [
                family.clone(),
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name),
            _ => name == *family,
        };
        assert!(belongs, "{name} is not part of family {family}");
        samples.push((name, labels, value));
    }
    check_histograms(&samples);
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("a sample has a value");
    let name = &line[..name_end];
    assert!(valid_name(name), "metric name {name:?}");
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(inner) => parse_labels(inner),
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let value = rest.strip_prefix(' ').expect("one space before the value");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number
            .parse()
            .unwrap_or_else(|_| panic!("value {number:?}")),
    };
    (name.to_string(), labels, value)
}

/// `label="value",...}` up to the closing brace, and what follows it.
fn parse_labels(mut rest: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (label, quoted) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(
            valid_name(label) && !label.contains(':'),
            "label name {label:?}"
        );
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next().expect("label value is closed") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("an escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => panic!("bad escape \\{other}"),
                },
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(label.to_string(), value).is_none(),
            "label repeated"
        );
        rest = &quoted[end + 1..];
        match rest.strip_prefix(',') {
            Some(next) => rest = next,
            None => assert!(rest.starts_with('}'), "',' or '}}' after a label"),
        }
    }
}

/// Buckets of each histogram are cumulative and end at `+Inf` = `_count`.
fn check_histograms(samples: &[Sample]) {
    let mut last: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (name, labels, value) in samples {
        if let Some(family) = name.strip_suffix("_bucket") {
            let bound: f64 = match labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                le => le.parse().expect("le is a number"),
            };
            if let Some((previous_bound, previous)) = last.get(family) {
                assert!(bound > *previous_bound, "{family}: bounds increase");
                assert!(value >= previous, "{family}: buckets are cumulative");
            }
            last.insert(family, (bound, *value));
        } else if let Some(family) = name.strip_suffix("_count")
            && let Some((bound, top)) = last.get(family)
        {
            assert_eq!(*bound, f64::INFINITY, "{family} ends with +Inf");
            assert_eq!(top, value, "{family}: +Inf bucket equals _count");
        }
    }
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == wanted)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .2
}

fn scrape(server: &InProcessServer, path: &str) -> Vec<Sample> {
    let client = Client {
        addr: server.prometheus_addr(),
        user: String::new(),
        password: String::new(),
    };
    let response = client.get(path).expect("scrape");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&String::from_utf8(response.body).expect("UTF-8"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_follow_what_clients_do() {
    let server = InProcessServer::start();
    let before = scrape(&server, "/metrics");
    assert_eq!(value(&before, "rabbitmq_connections", &[]), 0.0);
    assert_eq!(
        value(&before, "warren_store_group_commit_size_count", &[]),
        0.0
    );

    let url = format!("amqp://guest:guest@{}/%2f", server.addr());
    let conn = ok(Connection::connect(&url, ConnectionProperties::default())).await;
    let ch = ok(conn.create_channel()).await;
    // A name that needs escaping in a label value.
    let queue = "jobs \"urgent\" \\ all";
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ok(ch.queue_declare(queue.into(), durable, FieldTable::default())).await;
    let persistent = BasicProperties::default().with_delivery_mode(2);
    for body in ["a", "b", "c"] {
        let confirm = ok(ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent.clone(),
        ))
        .await;
        drop(confirm);
    }
    publish(&ch, "nowhere", "unroutable").await;
    wait_until("the store synced the persistent messages", || {
        let samples = scrape(&server, "/metrics");
        async move { value(&samples, "rabbitmq_queue_messages_ready", &[]) == 3.0 }
    })
    .await;
    wait_until("a group commit was measured", || {
        let samples = scrape(&server, "/metrics");
        async move { value(&samples, "warren_store_group_commit_size_sum", &[]) == 3.0 }
    })
    .await;

    let after = scrape(&server, "/metrics");
    assert_eq!(value(&after, "rabbitmq_connections", &[]), 1.0);
    assert_eq!(value(&after, "rabbitmq_channels", &[]), 1.0);
    assert_eq!(value(&after, "rabbitmq_queues", &[]), 1.0);
    assert_eq!(value(&after, "rabbitmq_queue_messages", &[]), 3.0);
    assert_eq!(value(&after, "rabbitmq_queue_messages_unacked", &[]), 0.0);
    assert_eq!(
        value(
            &after,
            "rabbitmq_global_messages_received_total",
            &[("protocol", "amqp091")]
        ),
        4.0,
        "the unroutable publish is received too"
    );
    assert!(value(&after, "warren_store_fsync_seconds_count", &[]) >= 1.0);

    let per_object = scrape(&server, "/metrics/per-object");
    assert_eq!(
        value(
            &per_object,
            "rabbitmq_queue_messages_ready",
            &[("vhost", "/"), ("queue", queue)]
        ),
        3.0
    );
}

#[test]
fn unknown_paths_are_not_found() {
    let server = InProcessServer::start();
    let client = Client {
        addr: server.prometheus_addr(),
        user: String::new(),
        password: String::new(),
    };
    assert_eq!(client.get("/api/overview").unwrap().status, 404);
}
