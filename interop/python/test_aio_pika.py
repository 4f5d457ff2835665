"""aio-pika, the asyncio client on aiormq: negotiation, routing with acks, prefetch,
publisher confirms, mandatory returns, requeue, dead lettering, TTL and request/reply.

Each test body is a coroutine run to completion in its own event loop (see
asyncio_test); queues and exchanges come from the names fixture, so they are
deleted after the test even when it fails half way.
"""

import asyncio
import datetime
import functools

import aio_pika
import aiormq
import pytest
from aio_pika.patterns import RPC

import support
from support import TIMEOUT, VHOST

# Bound for a whole scenario, below pytest-timeout's 30 s so that a hang fails with the asyncio trace.
SCENARIO_TIMEOUT = 20.0


def asyncio_test(scenario):
    """Turns an async test into a plain one, so the suite needs no asyncio plugin for pytest."""

    @functools.wraps(scenario)
    def test(*args, **kwargs):
        asyncio.run(asyncio.wait_for(scenario(*args, **kwargs), SCENARIO_TIMEOUT))

    return test


async def connect() -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(support.amqp_url(), timeout=TIMEOUT)


async def next_message(messages) -> aio_pika.abc.AbstractIncomingMessage:
    """The next delivery from a queue iterator, failing after TIMEOUT."""
    return await asyncio.wait_for(anext(messages), TIMEOUT)


async def message_count(channel, queue_name: str) -> int:
    """Ready messages, from a passive declare (see support.ready_count for when it is exact)."""
    queue = await channel.declare_queue(queue_name, passive=True)
    return queue.declaration_result.message_count


async def dead_letter_target(channel, names):
    """A fanout exchange to dead-letter into, and the queue that collects what reaches it."""
    exchange = await channel.declare_exchange(names.exchange(), aio_pika.ExchangeType.FANOUT)
    queue = await channel.declare_queue(names.queue())
    await queue.bind(exchange)
    return exchange, queue


def sets_last_death_headers(connection) -> bool:
    """RabbitMQ 3.13 added x-last-death-* beside x-first-death-*; Warren sets both, as current RabbitMQ does."""
    props = connection.transport.connection.server_properties
    if props.get("product") != "RabbitMQ":
        return True
    return tuple(int(part) for part in props["version"].split(".")[:2]) >= (3, 13)


def assert_dead_lettered_once(connection, message, reason: str, queue: str, original_expiration: str | None = None):
    """message was dead-lettered once, from queue (published there through the default exchange), for reason."""
    [death] = message.headers["x-death"]
    assert isinstance(death.pop("time"), datetime.datetime)
    entry = {"count": 1, "reason": reason, "queue": queue, "exchange": "", "routing-keys": [queue]}
    if original_expiration is not None:
        entry["original-expiration"] = original_expiration
    assert death == entry
    expected = {"x-first-death-reason": reason, "x-first-death-queue": queue, "x-first-death-exchange": ""}
    if sets_last_death_headers(connection):
        expected |= {"x-last-death-reason": reason, "x-last-death-queue": queue, "x-last-death-exchange": ""}
    assert {name: value for name, value in message.headers.items() if name != "x-death"} == expected


@asyncio_test
async def test_connection_negotiates_the_extensions_aiormq_uses():
    async with await connect() as connection:
        amqp = connection.transport.connection
        # The capability flags aiormq reads from connection.start's server properties.
        assert amqp.publisher_confirms and amqp.basic_nack and amqp.consumer_cancel_notify
        assert amqp.exchange_exchange_bindings
        channel = await connection.channel()
        assert not channel.is_closed


@asyncio_test
async def test_topic_routing_and_acks(names):
    async with await connect() as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(names.exchange(), aio_pika.ExchangeType.TOPIC)
        queue = await channel.declare_queue(names.queue())
        await queue.bind(exchange, "orders.*")
        for key in ("orders.created", "invoices.created", "orders.paid"):
            await exchange.publish(aio_pika.Message(key.encode()), key)
        async with queue.iterator() as messages:
            received = [await next_message(messages) for _ in range(2)]
            for message in received:
                await message.ack()
        assert [(m.body, m.routing_key, m.exchange, m.delivery_tag, m.redelivered) for m in received] == [
            (b"orders.created", "orders.created", exchange.name, 1, False),
            (b"orders.paid", "orders.paid", exchange.name, 2, False),
        ]
        # Acked messages are gone rather than requeued when the consumer is cancelled.
        assert await queue.get(fail=False) is None


@asyncio_test
async def test_prefetch_limits_unacked_deliveries(names):
    async with await connect() as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(names.queue())
        for i in range(5):
            await channel.default_exchange.publish(aio_pika.Message(b"m%d" % i), queue.name)
        await channel.set_qos(prefetch_count=2)
        async with queue.iterator() as messages:
            first, _second = [await next_message(messages) for _ in range(2)]
            # The ready count shows nothing more was sent, without waiting for an absence.
            assert await message_count(channel, queue.name) == 3
            await first.ack()
            third = await next_message(messages)
            assert third.body == b"m2"
            assert await message_count(channel, queue.name) == 2
            await third.ack(multiple=True)


@asyncio_test
async def test_publisher_confirms_ack_every_publish(names):
    async with await connect() as connection:
        channel = await connection.channel()  # aio-pika channels select confirms by default
        queue = await channel.declare_queue(names.queue())
        sequential = [await channel.default_exchange.publish(aio_pika.Message(b"s"), queue.name) for _ in range(3)]
        concurrent = await asyncio.gather(
            *(channel.default_exchange.publish(aio_pika.Message(b"c"), queue.name) for _ in range(20))
        )
        assert all(isinstance(confirm, aiormq.spec.Basic.Ack) for confirm in sequential + concurrent)
        # One publish in flight at a time: each ack names its own delivery tag. Concurrent
        # publishes may be settled by one ack with multiple set, so their tags are not checked.
        assert [confirm.delivery_tag for confirm in sequential] == [1, 2, 3]
        # A confirm means the message is enqueued: the count needs no waiting.
        assert await message_count(channel, queue.name) == 23


@asyncio_test
async def test_publish_refused_by_a_full_queue_raises_delivery_error(names):
    async with await connect() as connection:
        channel = await connection.channel()
        arguments = {"x-max-length": 1, "x-overflow": "reject-publish"}
        queue = await channel.declare_queue(names.queue(), arguments=arguments)
        await channel.default_exchange.publish(aio_pika.Message(b"fits"), queue.name)
        with pytest.raises(aio_pika.exceptions.DeliveryError) as info:
            await channel.default_exchange.publish(aio_pika.Message(b"overflows"), queue.name)
        assert isinstance(info.value.frame, aiormq.spec.Basic.Nack)
        assert [(await queue.get(no_ack=True)).body, await queue.get(fail=False)] == [b"fits", None]


@asyncio_test
async def test_unroutable_mandatory_publish_raises_when_channel_asks(names):
    async with await connect() as connection:
        channel = await connection.channel(on_return_raises=True)
        exchange = await channel.declare_exchange(names.exchange())
        with pytest.raises(aio_pika.exceptions.PublishError) as info:
            await exchange.publish(aio_pika.Message(b"lost"), "nowhere")
        returned = info.value.message
        assert (returned.delivery.reply_code, returned.delivery.reply_text) == (312, "NO_ROUTE")
        assert (returned.exchange, returned.routing_key, returned.body) == (exchange.name, "nowhere", b"lost")


@asyncio_test
async def test_unroutable_mandatory_publish_reaches_return_callbacks(names):
    async with await connect() as connection:
        channel = await connection.channel()
        returned = asyncio.get_running_loop().create_future()
        channel.return_callbacks.add(lambda _channel, message: returned.set_result(message))
        exchange = await channel.declare_exchange(names.exchange())
        await exchange.publish(aio_pika.Message(b"lost", headers={"k": "v"}), "nowhere")
        message = await asyncio.wait_for(returned, TIMEOUT)
        assert (message.exchange, message.routing_key, message.body, message.headers) == (
            exchange.name,
            "nowhere",
            b"lost",
            {"k": "v"},
        )
        # Without mandatory the broker drops it and still confirms it.
        dropped = await exchange.publish(aio_pika.Message(b"dropped"), "nowhere", mandatory=False)
        assert isinstance(dropped, aiormq.spec.Basic.Ack)


@asyncio_test
async def test_nack_with_requeue_redelivers_and_reject_drops(names):
    async with await connect() as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(names.queue())
        await channel.default_exchange.publish(aio_pika.Message(b"again"), queue.name)
        async with queue.iterator() as messages:
            first = await next_message(messages)
            await first.nack(requeue=True)
            second = await next_message(messages)
            await second.reject(requeue=False)
        assert [(m.body, m.redelivered) for m in (first, second)] == [(b"again", False), (b"again", True)]
        assert await queue.get(fail=False) is None


@asyncio_test
async def test_rejected_message_is_dead_lettered_with_x_death(names):
    async with await connect() as connection:
        channel = await connection.channel()
        dead_exchange, dead_queue = await dead_letter_target(channel, names)
        queue = await channel.declare_queue(names.queue(), arguments={"x-dead-letter-exchange": dead_exchange.name})
        await channel.default_exchange.publish(aio_pika.Message(b"poison"), queue.name)
        async with queue.iterator() as messages:
            await (await next_message(messages)).reject(requeue=False)
        async with dead_queue.iterator() as messages:
            dead = await next_message(messages)
            await dead.ack()
        # Without x-dead-letter-routing-key the message keeps its original routing key.
        assert (dead.body, dead.exchange, dead.routing_key) == (b"poison", dead_exchange.name, queue.name)
        assert_dead_lettered_once(connection, dead, "rejected", queue.name)


@asyncio_test
async def test_queue_ttl_dead_letters_as_expired(names):
    async with await connect() as connection:
        channel = await connection.channel()
        dead_exchange, dead_queue = await dead_letter_target(channel, names)
        arguments = {"x-dead-letter-exchange": dead_exchange.name, "x-message-ttl": 50}
        queue = await channel.declare_queue(names.queue(), arguments=arguments)
        await channel.default_exchange.publish(aio_pika.Message(b"stale"), queue.name)
        async with dead_queue.iterator() as messages:
            dead = await next_message(messages)
            await dead.ack()
        assert dead.body == b"stale"
        assert_dead_lettered_once(connection, dead, "expired", queue.name)


@asyncio_test
async def test_message_expiration_dead_letters_as_expired(names):
    async with await connect() as connection:
        channel = await connection.channel()
        dead_exchange, dead_queue = await dead_letter_target(channel, names)
        queue = await channel.declare_queue(names.queue(), arguments={"x-dead-letter-exchange": dead_exchange.name})
        await channel.default_exchange.publish(aio_pika.Message(b"stale", expiration=0.05), queue.name)
        async with dead_queue.iterator() as messages:
            dead = await next_message(messages)
            await dead.ack()
        # The broker moves the expiration into x-death so the dead copy does not expire again.
        assert (dead.body, dead.expiration) == (b"stale", None)
        assert_dead_lettered_once(connection, dead, "expired", queue.name, original_expiration="50")


@asyncio_test
async def test_rpc_pattern_calls_a_registered_function(names):
    # aio-pika's RPC: a method queue dead-lettering into a headers exchange, an
    # auto-delete result queue bound to it by a "From" header, pickled payloads.
    async with await connect() as connection:
        server = await RPC.create(await connection.channel())
        client = await RPC.create(await connection.channel())
        method = names.queue()

        async def divide(*, a, b):
            return a / b

        await server.register(method, divide)
        assert await asyncio.wait_for(client.call(method, {"a": 6, "b": 3}), TIMEOUT) == 2
        # The remote exception comes back and is raised by the caller.
        with pytest.raises(ZeroDivisionError):
            await asyncio.wait_for(client.call(method, {"a": 1, "b": 0}), TIMEOUT)
        # With no consumer left, the call's expiration dead-letters it back to
        # the caller's result queue, which aio-pika reports as a timeout.
        await server.unregister(divide)
        with pytest.raises(asyncio.TimeoutError) as info:
            await asyncio.wait_for(client.call(method, {"a": 1, "b": 1}, expiration=0.05), TIMEOUT)
        # Not wait_for's own timeout: the dead-lettered call came back.
        assert info.value.args[:1] == ("Message timed-out",)
        await client.close()
        await server.close()


@asyncio_test
async def test_direct_reply_to(names):
    async with await connect() as connection:
        assert connection.transport.connection.server_capabilities.get("direct_reply_to") is True
        server_channel = await connection.channel()
        requests = await server_channel.declare_queue(names.queue())

        async def serve(request):
            async with request.process():
                reply = aio_pika.Message(request.body.upper(), correlation_id=request.correlation_id)
                await server_channel.default_exchange.publish(reply, request.reply_to)

        await requests.consume(serve)
        client_channel = await connection.channel()
        # The pseudo-queue amq.rabbitmq.reply-to needs no declaration, and only no-ack consumers.
        replies = await client_channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
        async with replies.iterator(no_ack=True) as messages:
            request = aio_pika.Message(b"ping", correlation_id="c-1", reply_to="amq.rabbitmq.reply-to")
            await client_channel.default_exchange.publish(request, requests.name)
            reply = await next_message(messages)
        assert (reply.body, reply.correlation_id) == (b"PING", "c-1")
        # Replies arrive through the default exchange, addressed to the generated reply-to name.
        assert reply.exchange == "" and reply.routing_key.startswith("amq.rabbitmq.reply-to.")


@asyncio_test
async def test_missing_queue_raises_not_found(names):
    async with await connect() as connection:
        channel = await connection.channel()
        queue = names.queue()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity) as info:
            await channel.get_queue(queue)  # a passive declare
        assert info.value.args[0] == f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"
