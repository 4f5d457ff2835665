"""Prometheus metrics, read with the reference Python client's text-format parser.

interop/run starts Warren with its metrics listener on a free port and exports
PROMETHEUS_URL (the listener's base URL); with --rabbitmq it names port 15692,
where RabbitMQ's rabbitmq_prometheus plugin listens once enabled. The tests skip
when PROMETHEUS_URL is unset or nothing answers there.
"""

import os
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import support

BASE_URL = os.environ.get("PROMETHEUS_URL")

pytestmark = pytest.mark.skipif(
    not BASE_URL, reason="PROMETHEUS_URL is not set (interop/run sets it for the Warren it starts)"
)

# Names RabbitMQ's Grafana dashboards query; Warren must expose them under these names.
RABBITMQ_METRICS = [
    "rabbitmq_connections",
    "rabbitmq_channels",
    "rabbitmq_queues",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_messages",
    "rabbitmq_queue_consumers",
    "rabbitmq_global_messages_received_total",
]


def scrape(path: str) -> dict[str, list]:
    """Sample name -> samples of the exposition at path, parsed by prometheus_client."""
    try:
        with urllib.request.urlopen(BASE_URL + path, timeout=support.TIMEOUT) as response:
            text = response.read().decode()
    except OSError as error:
        pytest.skip(f"no Prometheus endpoint at {BASE_URL}: {error}")
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def test_the_exposition_parses_and_carries_rabbitmqs_metric_names():
    samples = scrape("/metrics")
    missing = [name for name in RABBITMQ_METRICS if name not in samples]
    assert not missing, f"metrics missing: {missing}"


def test_a_queues_ready_messages_show_in_the_per_object_metrics(channel, names):
    queue = names.queue()
    channel.queue_declare(queue)
    support.publish_numbered(channel, queue, 3)

    def ready_in_metrics():
        per_queue = scrape("/metrics/per-object").get("rabbitmq_queue_messages_ready", [])
        return [s.value for s in per_queue if s.labels.get("queue") == queue]

    # RabbitMQ refreshes its metrics every few seconds; Warren reads them live.
    support.poll_until(lambda: ready_in_metrics() == [3.0], f"3 ready messages of {queue} in the metrics", timeout=15.0, interval=0.2)
