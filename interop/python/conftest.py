"""Fixtures for the interop suite: connections to the broker named by AMQP_URL,
and unique names for queues and exchanges that are deleted after each test."""

import pika
import pytest

# support.py asserts on behalf of the tests (assert_death and friends): have pytest
# rewrite those asserts too, so that failures show the compared values.
pytest.register_assert_rewrite("support")

import support  # noqa: E402  (must come after the rewrite registration)


class Names:
    """Hands out unique queue and exchange names and deletes those entities afterwards,
    since the broker (RabbitMQ in particular) is shared between tests and runs."""

    def __init__(self):
        self.queues = []
        self.exchanges = []

    def queue(self):
        self.queues.append(support.unique("q"))
        return self.queues[-1]

    def exchange(self):
        self.exchanges.append(support.unique("x"))
        return self.exchanges[-1]

    def delete_all(self):
        if not (self.queues or self.exchanges):
            return
        # A fresh connection: the test's own may be closed, and its exclusive queues are gone with it.
        with pika.BlockingConnection(support.parameters()) as connection:
            channel = connection.channel()
            # Deleting a missing queue or exchange succeeds in RabbitMQ, so no existence check is needed.
            for queue in self.queues:
                channel.queue_delete(queue)
            for exchange in self.exchanges:
                channel.exchange_delete(exchange)


@pytest.fixture
def names():
    registry = Names()
    yield registry
    registry.delete_all()


@pytest.fixture
def connect(names):
    """Opens BlockingConnections (to AMQP_URL unless told otherwise) and closes them after the test.

    Depends on names so that the test's connections close before its queues are
    deleted: an exclusive queue cannot be deleted while its owner is connected.
    """
    opened = []

    def open_connection(url=None):
        connection = pika.BlockingConnection(support.parameters(url))
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        if connection.is_open:
            connection.close()


@pytest.fixture
def connection(connect):
    return connect()


@pytest.fixture
def channel(connection):
    return connection.channel()
