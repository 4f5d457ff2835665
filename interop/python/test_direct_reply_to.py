"""Direct reply-to: RPC replies without a reply queue.

The requester consumes from the pseudo-queue amq.rabbitmq.reply-to with
auto-ack, then publishes requests on the same channel with
reply_to='amq.rabbitmq.reply-to'. The broker rewrites that to
'amq.rabbitmq.reply-to.<token>', a name that leads back to this consumer;
the responder publishes its reply to the default exchange with that name as
routing key. Replies to a token whose consumer is gone are dropped.
"""

import pika
import pytest

import support
from support import VHOST, channel_error, wait_until

PSEUDO_QUEUE = "amq.rabbitmq.reply-to"


class Requester:
    """A channel consuming its direct replies, recording them."""

    def __init__(self, connection):
        self.connection = connection
        self.channel = connection.channel()
        self.replies = []
        self.tag = self.channel.basic_consume(
            PSEUDO_QUEUE, lambda _ch, *message: self.replies.append(message), auto_ack=True
        )

    def request(self, server_queue, body, **properties):
        self.channel.basic_publish("", server_queue, body, pika.BasicProperties(reply_to=PSEUDO_QUEUE, **properties))

    def wait_for_replies(self, count):
        wait_until(self.connection, lambda: len(self.replies) >= count, f"{count} replies")
        return self.replies


@pytest.fixture
def server_queue(channel):
    channel.confirm_delivery()
    return channel.queue_declare("", exclusive=True).method.queue


def take_request(channel, server_queue):
    """The next request in server_queue (basic.get sees it: the request channel used confirms)."""
    method, properties, body = channel.basic_get(server_queue, auto_ack=True)
    assert method is not None, "no request arrived"
    return properties, body


def test_round_trip(connection, channel, server_queue):
    requester = Requester(connection)
    requester.channel.confirm_delivery()
    requester.request(server_queue, b"request", correlation_id="c1")
    properties, body = take_request(channel, server_queue)
    reply_to = properties.reply_to
    assert body == b"request" and properties.correlation_id == "c1"
    assert reply_to.startswith(PSEUDO_QUEUE + ".") and len(reply_to) > len(PSEUDO_QUEUE) + 1
    channel.basic_publish("", reply_to, b"reply", pika.BasicProperties(correlation_id="c1"))
    [(method, reply_properties, reply)] = requester.wait_for_replies(1)
    assert (method.consumer_tag, method.exchange, method.routing_key, method.redelivered) == (
        requester.tag,
        "",
        reply_to,
        False,
    )
    assert (reply, reply_properties.correlation_id) == (b"reply", "c1")
    # Every request from this channel names the same reply address.
    requester.request(server_queue, b"again")
    assert take_request(channel, server_queue)[0].reply_to == reply_to


def test_reply_address_declares_like_a_queue_with_one_consumer(connection, channel, server_queue):
    requester = Requester(connection)
    requester.channel.confirm_delivery()
    requester.request(server_queue, b"request")
    reply_to = take_request(channel, server_queue)[0].reply_to
    ok = channel.queue_declare(reply_to, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (reply_to, 0, 1)
    # The pseudo-queue itself always declares so, passive or not.
    for passive in (True, False):
        ok = channel.queue_declare(PSEUDO_QUEUE, passive=passive).method
        assert (ok.queue, ok.message_count, ok.consumer_count) == (PSEUDO_QUEUE, 0, 1)


def test_unknown_reply_address_is_404(channel):
    name = PSEUDO_QUEUE + ".no-such-token"
    with channel_error(404, f"NOT_FOUND - no queue '{name}' in vhost '{VHOST}'"):
        channel.queue_declare(name, passive=True)


def test_reply_consumer_must_use_auto_ack(channel):
    with channel_error(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"):
        channel.basic_consume(PSEUDO_QUEUE, lambda *_: None)


def test_one_reply_consumer_per_channel(channel):
    channel.basic_consume(PSEUDO_QUEUE, lambda *_: None, auto_ack=True)
    with channel_error(406, "PRECONDITION_FAILED - reply consumer already set"):
        channel.basic_consume(PSEUDO_QUEUE, lambda *_: None, auto_ack=True)


@pytest.mark.parametrize("consumer_elsewhere", [False, True], ids=["no-consumer", "consumer-on-another-channel"])
def test_request_needs_a_reply_consumer_on_its_channel(connection, server_queue, consumer_elsewhere):
    if consumer_elsewhere:
        Requester(connection)
    channel = connection.channel()
    channel.basic_publish("", server_queue, b"request", pika.BasicProperties(reply_to=PSEUDO_QUEUE))
    with channel_error(406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        # basic.publish has no reply: the next synchronous method sees the channel close.
        channel.queue_declare("", exclusive=True)


@pytest.mark.parametrize("leave", ["cancel", "close"])
def test_reply_after_the_requester_left_is_dropped(connection, channel, server_queue, leave):
    requester = Requester(connection)
    requester.channel.confirm_delivery()
    requester.request(server_queue, b"request")
    reply_to = take_request(channel, server_queue)[0].reply_to
    if leave == "cancel":
        requester.channel.basic_cancel(requester.tag)
    else:
        requester.channel.close()
    with channel_error(404, f"NOT_FOUND - no queue '{reply_to}' in vhost '{VHOST}'"):
        connection.channel().queue_declare(reply_to, passive=True)
    # Neither an error for the responder nor a late delivery to the requester.
    channel.basic_publish("", reply_to, b"too late")
    connection.process_data_events(time_limit=support.QUIET_PERIOD)
    assert requester.replies == []


def test_mandatory_reply(connection, channel, server_queue):
    requester = Requester(connection)
    requester.channel.confirm_delivery()
    requester.request(server_queue, b"request")
    reply_to = take_request(channel, server_queue)[0].reply_to
    try:
        channel.basic_publish("", reply_to, b"reply", mandatory=True)
        returned = []
    except pika.exceptions.UnroutableError as error:
        returned = [(message.method.reply_code, message.body) for message in error.messages]
    assert [body for _, _, body in requester.wait_for_replies(1)] == [b"reply"]
    if support.is_rabbitmq_before(connection, (4, 2)):
        # Up to 4.1, RabbitMQ delivers the reply but also returns it as unroutable.
        assert returned == [(312, b"reply")]
    else:
        # Since 4.2 a reply address counts as a queue for routing: delivered, not returned.
        assert returned == []


def test_mandatory_reply_to_a_malformed_address_is_returned(channel):
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        channel.basic_publish("", PSEUDO_QUEUE + ".not-a-token", b"reply", mandatory=True)
    [returned] = info.value.messages
    assert (returned.method.reply_code, returned.method.reply_text, returned.body) == (312, "NO_ROUTE", b"reply")
