// Consuming with manual acknowledgements: delivery fields, prefetch, basic.get,
// multiple acks and redelivery of unacknowledged messages.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker, bodies, consume, drain, queueWith } from './support.js';

test('a consumer receives messages in order with their delivery fields and properties', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker);
  const channel = await broker.channel();
  const inbox = await consume(channel, queue, { noAck: false, consumerTag: 'interop-consumer' });
  assert.equal(inbox.consumerTag, 'interop-consumer');
  for (const body of ['m1', 'm2', 'm3']) {
    channel.sendToQueue(queue, Buffer.from(body), {
      contentType: 'text/plain',
      messageId: `id-${body}`,
      headers: { attempt: 1, origin: 'interop' },
    });
  }
  const messages = await inbox.take(3);
  assert.deepEqual(bodies(messages), ['m1', 'm2', 'm3']);
  messages.forEach((message, index) => {
    assert.deepEqual(message.fields, {
      consumerTag: 'interop-consumer',
      deliveryTag: index + 1,
      redelivered: false,
      exchange: '',
      routingKey: queue,
    });
    assert.equal(message.properties.contentType, 'text/plain');
    assert.equal(message.properties.messageId, `id-m${index + 1}`);
    assert.deepEqual(message.properties.headers, { attempt: 1, origin: 'interop' });
  });
  for (const message of messages) channel.ack(message);
  await channel.cancel(inbox.consumerTag);
  // Acks are asynchronous; closing the channel waits for them, and unacked messages would return.
  await channel.close();
  assert.deepEqual(await drain(await broker.channel(), queue), []);
});

test('prefetch limits unacknowledged deliveries and each ack releases the next', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2', 'm3', 'm4', 'm5');
  const channel = await broker.channel();
  await channel.prefetch(2);
  const inbox = await consume(channel, queue);
  const firstTwo = await inbox.take(2);
  assert.deepEqual(bodies(firstTwo), ['m1', 'm2']);
  // With two unacknowledged, the other three stay ready in the queue.
  const { messageCount, consumerCount } = await (await broker.channel()).checkQueue(queue);
  assert.deepEqual({ messageCount, consumerCount }, { messageCount: 3, consumerCount: 1 });
  assert.equal(inbox.pending, 0);
  channel.ack(firstTwo[0]);
  assert.deepEqual(bodies(await inbox.take(1)), ['m3']);
  channel.ack(firstTwo[1]);
  assert.deepEqual(bodies(await inbox.take(1)), ['m4']);
});

test('basic.get returns false on an empty queue and reports the remaining count', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'first', 'second');
  const channel = await broker.channel();
  const first = await channel.get(queue, { noAck: false });
  assert.equal(first.content.toString(), 'first');
  assert.deepEqual(first.fields, {
    deliveryTag: 1,
    redelivered: false,
    exchange: '',
    routingKey: queue,
    messageCount: 1,
  });
  channel.ack(first);
  const second = await channel.get(queue, { noAck: true });
  assert.equal(second.content.toString(), 'second');
  assert.equal(second.fields.messageCount, 0);
  assert.equal(await channel.get(queue), false);
});

test('ack with allUpTo acknowledges every earlier delivery as well', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2', 'm3', 'm4');
  const channel = await broker.channel();
  const inbox = await consume(channel, queue);
  const messages = await inbox.take(4);
  channel.ack(messages[2], true); // m1..m3
  // Closing the channel returns whatever is still unacknowledged: only m4.
  await channel.close();
  const redelivered = await (await broker.channel()).get(queue, { noAck: true });
  assert.equal(redelivered.content.toString(), 'm4');
  assert.equal(redelivered.fields.redelivered, true);
  assert.equal(redelivered.fields.messageCount, 0);
});

test('unacknowledged messages return with redelivered set when their channel closes', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2');
  const first = await broker.channel();
  const firstInbox = await consume(first, queue);
  assert.deepEqual(
    (await firstInbox.take(2)).map((message) => message.fields.redelivered),
    [false, false],
  );
  await first.close();
  const second = await broker.channel();
  const messages = await (await consume(second, queue)).take(2);
  assert.deepEqual(bodies(messages), ['m1', 'm2']);
  assert.deepEqual(
    messages.map((message) => message.fields.redelivered),
    [true, true],
  );
});

test('basic.recover requeues unacknowledged deliveries as redelivered', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1');
  const channel = await broker.channel();
  const inbox = await consume(channel, queue);
  assert.equal((await inbox.next()).fields.redelivered, false);
  await channel.recover();
  const again = await inbox.next('the redelivery after basic.recover');
  assert.equal(again.content.toString(), 'm1');
  assert.equal(again.fields.redelivered, true);
});

test('cancelling a consumer stops deliveries and leaves the rest queued', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2', 'm3');
  const channel = await broker.channel();
  await channel.prefetch(1);
  const inbox = await consume(channel, queue);
  const first = await inbox.next();
  assert.deepEqual(await channel.cancel(inbox.consumerTag), { consumerTag: inbox.consumerTag });
  channel.ack(first);
  await channel.close();
  assert.deepEqual(await drain(await broker.channel(), queue), ['m2', 'm3']);
});
