"""Publisher confirms and transactions (tx.select / commit / rollback)."""

import pytest

import support
from support import channel_error, drain, ready_count, wait_until


def own_queue(channel):
    return channel.queue_declare("", exclusive=True).method.queue


def test_confirm_select_replies_select_ok(channel):
    # pika's confirm_delivery waits for confirm.select-ok before returning.
    channel.confirm_delivery()
    queue = own_queue(channel)
    channel.basic_publish("", queue, b"confirmed")
    assert drain(channel, queue) == [b"confirmed"]


def test_unroutable_publish_is_still_acked(channel):
    channel.confirm_delivery()
    channel.basic_publish("amq.direct", "no-binding", b"dropped")


def test_publish_to_missing_exchange_in_confirm_mode_closes_channel(channel):
    x = support.unique("x")
    channel.confirm_delivery()
    with channel_error(404, f"NOT_FOUND - no exchange '{x}' in vhost '{support.VHOST}'"):
        channel.basic_publish(x, "k", b"lost")


def test_cannot_mix_confirm_and_tx(connection):
    confirming = connection.channel()
    confirming.confirm_delivery()
    with channel_error(406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"):
        confirming.tx_select()
    transactional = connection.channel()
    transactional.tx_select()
    with channel_error(406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"):
        transactional.confirm_delivery()


@pytest.mark.parametrize("operation", ["tx_commit", "tx_rollback"])
def test_commit_or_rollback_needs_tx_select(channel, operation):
    with channel_error(406, "PRECONDITION_FAILED - channel is not transactional"):
        getattr(channel, operation)()


def test_tx_publish_is_visible_only_after_commit(connection, channel):
    queue = own_queue(channel)
    observer = connection.channel()
    channel.tx_select()
    channel.basic_publish("", queue, b"a")
    channel.basic_publish("", queue, b"b")
    assert ready_count(observer, queue) == 0
    channel.tx_commit()
    assert drain(observer, queue) == [b"a", b"b"]


def test_tx_rollback_discards_publishes(channel):
    queue = own_queue(channel)
    channel.tx_select()
    channel.basic_publish("", queue, b"discarded")
    channel.tx_rollback()
    channel.basic_publish("", queue, b"kept")
    channel.tx_commit()
    assert drain(channel, queue) == [b"kept"]


def test_tx_acks_apply_at_commit(connection, channel):
    queue = own_queue(channel)
    channel.basic_publish("", queue, b"m")
    channel.tx_select()
    method, _, _ = channel.basic_get(queue)
    channel.basic_ack(method.delivery_tag)
    channel.tx_commit()
    channel.close()
    assert ready_count(connection.channel(), queue) == 0


def test_tx_rollback_leaves_acked_messages_unacked_not_requeued(connection, channel):
    queue = own_queue(channel)
    channel.basic_publish("", queue, b"m")
    channel.tx_select()
    method, _, _ = channel.basic_get(queue)
    channel.basic_ack(method.delivery_tag)
    channel.tx_rollback()
    # The rolled-back ack is forgotten: the message is neither gone nor back in the queue...
    assert ready_count(channel, queue) == 0
    channel.close()
    # ...until the channel closes and it is requeued like any unacked message.
    method, _, body = connection.channel().basic_get(queue, auto_ack=True)
    assert (body, method.redelivered) == (b"m", True)


def test_tx_mandatory_return_is_sent_at_commit(connection, channel):
    returned = []
    channel.add_on_return_callback(lambda _ch, method, _p, body: returned.append((method.reply_code, body)))
    queue = own_queue(channel)
    channel.tx_select()
    channel.basic_publish("", support.unique("nowhere"), b"bounce", mandatory=True)
    # Frames on a channel stay in order: a return sent at publish time would precede this reply.
    channel.queue_declare(queue, passive=True)
    connection.process_data_events(time_limit=0)
    assert returned == []
    channel.tx_commit()
    wait_until(connection, lambda: returned, "basic.return after commit")
    assert returned == [(312, b"bounce")]
