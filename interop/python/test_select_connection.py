"""The same protocol seen through pika's asynchronous SelectConnection and ioloop callbacks."""

import functools

import pika

import support
from support import VHOST, AsyncScenario, with_netloc


def test_publish_confirm_consume_ack():
    bodies = [b"one", b"two", b"three"]

    def on_channel(scenario, channel):
        confirmed, received = set(), []

        def on_declared(frame):
            queue = frame.method.queue
            channel.confirm_delivery(functools.partial(on_confirm, queue), callback=lambda _frame: publish(queue))

        def publish(queue):
            for body in bodies:
                channel.basic_publish("", queue, body)

        def on_confirm(queue, frame):
            # One basic.ack may confirm several publishes at once (multiple=True).
            scenario.events.append(type(frame.method).__name__)
            tag = frame.method.delivery_tag
            confirmed.update(range(1, tag + 1) if frame.method.multiple else [tag])
            if confirmed == {1, 2, 3}:
                channel.basic_consume(queue, on_message)

        def on_message(_channel, method, _properties, body):
            received.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(received) == len(bodies):
                scenario.events.append(received)
                scenario.finish()

        channel.queue_declare("", exclusive=True, callback=on_declared)

    events = AsyncScenario(on_channel).run().events
    assert set(events[:-1]) == {"Ack"}
    assert events[-1] == bodies


def test_consumer_cancel_notification(names):
    queue = names.queue()

    def on_channel(scenario, channel):
        def on_cancel(frame):
            scenario.events.append(("cancelled", frame.method.consumer_tag))
            scenario.finish()

        def on_consume_ok(frame):
            scenario.events.append(("consuming", frame.method.consumer_tag))
            # Delete the queue from a second channel, as another application would.
            scenario.connection.channel(on_open_callback=lambda other: other.queue_delete(queue))

        channel.add_on_cancel_callback(on_cancel)
        channel.queue_declare(queue, callback=lambda _frame: channel.basic_consume(queue, lambda *_: None, callback=on_consume_ok))

    events = AsyncScenario(on_channel).run().events
    assert [kind for kind, _ in events] == ["consuming", "cancelled"]
    assert events[0][1] == events[1][1]


def test_channel_close_by_broker_is_reported_and_connection_survives(names):
    queue = names.queue()

    def on_channel(scenario, channel):
        def on_close(_channel, reason):
            scenario.events.append((type(reason), reason.reply_code, reason.reply_text))
            scenario.connection.channel(on_open_callback=on_second_channel)

        def on_second_channel(second):
            second.queue_declare("", exclusive=True, callback=lambda frame: finish(frame.method.queue))

        def finish(server_named):
            scenario.events.append(server_named.startswith("amq.gen-"))
            scenario.finish()

        channel.add_on_close_callback(on_close)
        channel.queue_declare(queue, passive=True)

    events = AsyncScenario(on_channel).run().events
    assert events == [
        (pika.exceptions.ChannelClosedByBroker, 404, f"NOT_FOUND - no queue '{queue}' in vhost '{VHOST}'"),
        True,
    ]


def test_authentication_failure_reaches_open_error_callback():
    def on_channel(scenario, _channel):
        scenario.events.append("opened")
        scenario.finish()

    url = with_netloc(support.amqp_url(), password="wrong-password")
    scenario = AsyncScenario(on_channel, url=url).run(expect_open_error=True)
    assert scenario.events == []
    assert isinstance(scenario.open_error, pika.exceptions.ProbableAuthenticationError)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in str(scenario.open_error)


def test_prefetch_one_with_callbacks(names):
    queue = names.queue()

    def on_channel(scenario, channel):
        def start(_frame):
            for i in range(4):
                channel.basic_publish("", queue, b"%d" % i)
            channel.basic_qos(prefetch_count=1, callback=lambda _f: channel.basic_consume(queue, on_message))

        def on_message(_channel, method, _properties, body):
            # Before acking, ask the queue how many messages it still holds back:
            # with prefetch 1 nothing beyond this delivery may have been sent.
            channel.queue_declare(queue, passive=True, callback=functools.partial(on_count, method.delivery_tag, body))

        def on_count(tag, body, frame):
            scenario.events.append((body, frame.method.message_count))
            channel.basic_ack(tag)
            if len(scenario.events) == 4:
                scenario.finish()

        channel.queue_declare(queue, callback=start)

    events = AsyncScenario(on_channel).run().events
    assert events == [(b"0", 3), (b"1", 2), (b"2", 1), (b"3", 0)]
