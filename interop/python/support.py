"""Helpers shared by the interop tests.

Everything waits on broker events with a bounded deadline, so a broker that
never answers makes a test fail instead of hang.
"""

import contextlib
import os
import time
import urllib.parse
import uuid

import pika
import pytest

# Upper bound, in seconds, for any single broker event a test waits for.
TIMEOUT = 5.0


def amqp_url() -> str:
    url = os.environ.get("AMQP_URL")
    if not url:
        pytest.exit("AMQP_URL is not set; run the suite through interop/run", returncode=4)
    return url


def parameters(url: str | None = None) -> pika.URLParameters:
    params = pika.URLParameters(url or amqp_url())
    # Fail fast on a broker that stops answering rather than waiting for pika's defaults.
    params.connection_attempts = 1
    params.socket_timeout = TIMEOUT
    params.stack_timeout = TIMEOUT
    params.blocked_connection_timeout = TIMEOUT
    return params


VHOST = parameters().virtual_host


def with_netloc(url: str, user: str | None = None, password: str | None = None) -> str:
    """url with its credentials replaced."""
    parts = urllib.parse.urlsplit(url)
    user = user or urllib.parse.unquote(parts.username or "guest")
    password = password or urllib.parse.unquote(parts.password or "guest")
    return parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5672}").geturl()


def with_vhost(url: str, vhost: str) -> str:
    """url naming another virtual host."""
    return urllib.parse.urlsplit(url)._replace(path="/" + urllib.parse.quote(vhost, safe="")).geturl()


def unique(kind: str) -> str:
    """A name no other test (or earlier run on a shared broker) uses."""
    return f"interop.{kind}.{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def channel_error(code: int, text: str):
    """Expects the broker to close the channel with exactly this code and text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        yield info
    assert (info.value.reply_code, info.value.reply_text) == (code, text)


@contextlib.contextmanager
def connection_error(code: int, text: str):
    """Expects the broker to close the whole connection with exactly this code and text."""
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        yield info
    assert (info.value.reply_code, info.value.reply_text) == (code, text)


def wait_until(connection: pika.BlockingConnection, predicate, what: str, timeout: float = TIMEOUT):
    """Dispatches broker events until predicate() holds, failing after timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        connection.process_data_events(time_limit=remaining)


def wait_for_queue_deletion(connection: pika.BlockingConnection, queue: str, timeout: float = TIMEOUT):
    """Polls with passive declares until queue is gone (404), failing after timeout.

    RabbitMQ deletes exclusive and auto-delete queues asynchronously, just after
    answering the close or cancel that triggered the deletion.
    """
    deadline = time.monotonic() + timeout
    while True:
        channel = connection.channel()
        try:
            channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            assert (error.reply_code, error.reply_text) == (404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'")
            return
        channel.close()
        if time.monotonic() > deadline:
            pytest.fail(f"queue {queue} still exists after {timeout}s")


def drain(channel, queue: str) -> list[bytes]:
    """Bodies of all ready messages in queue, removed with basic.get and auto-ack."""
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def ready_count(channel, queue: str) -> int:
    """Messages ready for delivery (RabbitMQ's count excludes unacked ones).

    RabbitMQ answers this (queue.declare-ok) ahead of acks, rejects and nacks
    still waiting in the queue's mailbox, so only use it once those have taken
    effect; a basic.get's message_count has no such shortcut.
    """
    return channel.queue_declare(queue, passive=True).method.message_count


def is_legacy_rabbitmq(connection) -> bool:
    """True for RabbitMQ before 4.0, whose behaviour differs from current RabbitMQ in places.

    Warren follows current RabbitMQ; a few tests check the 3.x variant only so
    that the suite still proves its expectations against the 3.x reference.
    """
    props = connection._impl.server_properties  # pika only exposes it on the impl
    return props.get("product") == "RabbitMQ" and not props.get("version", "").startswith(("4.", "5."))


class AsyncScenario:
    """Runs one SelectConnection callback-style scenario to its end.

    on_channel(scenario, channel) starts the scenario; its callbacks record what
    they see in scenario.events and call scenario.finish() when done. The
    scenario fails if the connection closes before finish() or if it has not
    finished after timeout seconds.
    """

    def __init__(self, on_channel, url: str | None = None, timeout: float = TIMEOUT):
        self.events: list = []
        self.open_error: BaseException | None = None
        self._failure: str | None = None
        self._finished = False
        self._on_channel = on_channel
        self._timeout = timeout
        self.connection = pika.SelectConnection(
            parameters(url),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
        )

    def run(self, expect_open_error: bool = False):
        ioloop = self.connection.ioloop
        ioloop.call_later(self._timeout, self._on_timeout)
        try:
            ioloop.start()
        finally:
            # An exception escaping the ioloop leaves the connection open: close it cleanly.
            if not self.connection.is_closed:
                if not self.connection.is_closing:
                    self.connection.close()
                ioloop.start()
        if self.open_error and not expect_open_error:
            pytest.fail(f"connection failed to open: {self.open_error!r}")
        if self._failure:
            pytest.fail(self._failure)
        return self

    def finish(self):
        self._finished = True
        if self.connection.is_open:
            self.connection.close()

    def _on_open(self, connection):
        connection.channel(on_open_callback=lambda channel: self._on_channel(self, channel))

    def _on_open_error(self, connection, error):
        self.open_error = error
        connection.ioloop.stop()

    def _on_close(self, connection, reason):
        # pika turns an exception raised in a callback into a closed connection, so this also reports those.
        if not self._finished and self._failure is None:
            self._failure = f"connection closed before the scenario finished: {reason!r}; events: {self.events}"
        connection.ioloop.stop()

    def _on_timeout(self):
        if self._finished:
            return
        self._failure = f"scenario did not finish within {self._timeout}s; events so far: {self.events}"
        if self.connection.is_open:
            self.connection.close()
        else:
            self.connection.ioloop.stop()
