"""Connection negotiation: server properties, tuning, authentication and vhost access."""

import pika
import pytest

import support
from support import AsyncScenario, with_netloc, with_vhost

# The capabilities stock clients look for before using the matching extension.
REQUIRED_CAPABILITIES = [
    "publisher_confirms",
    "basic.nack",
    "consumer_cancel_notify",
    "per_consumer_qos",
    "authentication_failure_close",
    "exchange_exchange_bindings",
]


def test_server_properties_and_tuning():
    # SelectConnection is the public way to see connection.start's server-properties.
    def on_channel(scenario, _channel):
        connection = scenario.connection
        scenario.events.append((connection.server_properties, connection.params))
        scenario.finish()

    scenario = AsyncScenario(on_channel).run()
    [(props, params)] = scenario.events
    for key in ("product", "version", "platform", "copyright", "information"):
        assert isinstance(props[key], str) and props[key], key
    for capability in REQUIRED_CAPABILITIES:
        assert props["capabilities"].get(capability) is True, capability
    # RabbitMQ's connection.tune defaults (unchanged in 4.x); pika accepts what the server proposes.
    assert (params.frame_max, params.channel_max, params.heartbeat) == (131072, 2047, 60)


def test_blocking_connection_sees_capabilities(connection):
    assert connection.publisher_confirms_supported
    assert connection.basic_nack_supported
    assert connection.consumer_cancel_notify_supported
    assert connection.exchange_exchange_bindings_supported


@pytest.mark.parametrize("user, password", [("guest", "wrong-password"), ("no-such-user", "guest")])
def test_bad_credentials_are_refused(user, password):
    # RabbitMQ sends connection.close 403 (authentication_failure_close) instead of just dropping the socket.
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(support.parameters(with_netloc(support.amqp_url(), user, password)))
    assert (
        "(403) 'ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
        "For details see the broker logfile.'"
    ) in str(info.value)


def test_unknown_vhost_is_refused():
    vhost = support.unique("vhost")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(support.parameters(with_vhost(support.amqp_url(), vhost)))
    assert f"(530) 'NOT_ALLOWED - vhost {vhost} not found'" in str(info.value)


def test_channel_error_leaves_connection_and_other_channels_usable(connection):
    survivor = connection.channel()
    doomed = connection.channel()
    missing = support.unique("q")
    with support.channel_error(404, f"NOT_FOUND - no queue '{missing}' in vhost '{support.VHOST}'"):
        doomed.queue_declare(missing, passive=True)
    assert doomed.is_closed and connection.is_open
    assert survivor.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
    assert connection.channel().is_open


def test_connection_error_closes_every_channel(connection):
    bystander = connection.channel()
    # A non-zero prefetch_size is a hard (connection-level) error in RabbitMQ.
    with support.connection_error(540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)"):
        connection.channel().basic_qos(prefetch_size=10)
    assert connection.is_closed and bystander.is_closed


def test_closed_channel_numbers_are_reused(connection):
    channels = [connection.channel() for _ in range(50)]
    for channel in channels:
        channel.close()
    # pika hands out the lowest free number again; the broker must accept it.
    reopened = connection.channel()
    assert reopened.channel_number == 1
    assert reopened.queue_declare("", exclusive=True).method.queue
