"""pika over TLS (amqps), verifying the broker's certificate against a CA.

interop/run starts Warren with the test certificate of tests/fixtures/tls on an
amqps port of its own and exports AMQPS_URL (that port) and AMQPS_CA_FILE (the
CA that signed it). A broker given by AMQP_URL or --rabbitmq has no known amqps
listener, so these tests skip there unless both variables are set by hand.
"""

import os
import ssl

import pika
import pytest

import support
from support import drain, receive

AMQPS_URL = os.environ.get("AMQPS_URL")
CA_FILE = os.environ.get("AMQPS_CA_FILE")

pytestmark = pytest.mark.skipif(
    not (AMQPS_URL and CA_FILE),
    reason="no amqps listener to test: AMQPS_URL and AMQPS_CA_FILE are not set "
    "(interop/run sets them for the Warren it starts)",
)

# The name the test certificate is issued to, whatever address AMQPS_URL uses.
SERVER_NAME = "localhost"


def tls_parameters(context: ssl.SSLContext) -> pika.URLParameters:
    params = support.parameters(AMQPS_URL)
    params.ssl_options = pika.SSLOptions(context, server_hostname=SERVER_NAME)
    return params


def trusting_test_ca() -> ssl.SSLContext:
    """Verifies the broker's certificate and name against the test CA only."""
    return ssl.create_default_context(cafile=CA_FILE)


@pytest.fixture
def tls_connection():
    connection = pika.BlockingConnection(tls_parameters(trusting_test_ca()))
    yield connection
    if connection.is_open:
        connection.close()


def test_publish_confirm_and_consume_over_tls(tls_connection, names):
    channel = tls_connection.channel()
    channel.confirm_delivery()
    queue = names.queue()
    channel.queue_declare(queue)
    properties = pika.BasicProperties(content_type="text/plain", headers={"over": "tls"})
    for i in range(3):
        # With confirms, pika raises unless the broker acks the publish.
        channel.basic_publish("", queue, b"secret %d" % i, properties, mandatory=True)
    received = receive(tls_connection, channel, queue, 3)
    assert [body for _, _, body in received] == [b"secret 0", b"secret 1", b"secret 2"]
    _, delivered, _ = received[0]
    assert delivered.content_type == "text/plain"
    assert delivered.headers == {"over": "tls"}


def test_message_larger_than_a_tls_record_round_trips(tls_connection, names):
    # 1 MiB: many 16 KiB TLS records and several AMQP body frames each way.
    channel = tls_connection.channel()
    channel.confirm_delivery()
    queue = names.queue()
    channel.queue_declare(queue)
    body = bytes(range(256)) * 4096
    channel.basic_publish("", queue, body)
    assert drain(channel, queue) == [body]


def test_tls_and_plain_clients_share_the_broker(tls_connection, channel, names):
    tls_channel = tls_connection.channel()
    tls_channel.confirm_delivery()
    queue = names.queue()
    channel.queue_declare(queue)
    tls_channel.basic_publish("", queue, b"from amqps")
    assert drain(channel, queue) == [b"from amqps"]


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_connection):
    # The system's CAs did not sign the test certificate; pika re-raises the ssl error.
    with pytest.raises(ssl.SSLCertVerificationError):
        pika.BlockingConnection(tls_parameters(ssl.create_default_context()))
    # The listener goes on serving: the connection opened before still works,
    # and a client that trusts the CA still gets in.
    tls_connection.channel().close()
    with pika.BlockingConnection(tls_parameters(trusting_test_ca())) as again:
        again.channel().close()
