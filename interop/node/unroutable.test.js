// What happens to messages no binding matches: mandatory returns (312 NO_ROUTE)
// and alternate exchanges.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { Broker, drain, publishConfirmed, within } from './support.js';

/** Publishes on a ConfirmChannel and records 'return' and 'ack' in the order amqplib saw them. */
async function publishAndRecord(channel, exchange, routingKey, body, options) {
  const events = [];
  const returned = [];
  const onReturn = (message) => {
    events.push('return');
    returned.push(message);
  };
  channel.on('return', onReturn);
  try {
    await publishConfirmed(channel, exchange, routingKey, body, options);
    events.push('ack');
  } finally {
    channel.off('return', onReturn);
  }
  return { events, returned };
}

test('a mandatory unroutable message comes back as basic.return 312 NO_ROUTE before its ack', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const exchange = broker.exchange();
  await channel.assertExchange(exchange, 'direct', { durable: false });
  const { events, returned } = await publishAndRecord(channel, exchange, 'nobody-bound', 'bounce', {
    mandatory: true,
    messageId: 'm-1',
    headers: { kept: 'yes' },
  });
  assert.deepEqual(events, ['return', 'ack']);
  const [message] = returned;
  assert.deepEqual(message.fields, {
    replyCode: 312,
    replyText: 'NO_ROUTE',
    exchange,
    routingKey: 'nobody-bound',
  });
  assert.equal(message.content.toString(), 'bounce');
  assert.equal(message.properties.messageId, 'm-1');
  assert.deepEqual(message.properties.headers, { kept: 'yes' });
});

test('the default exchange returns a mandatory message for a missing queue', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.channel();
  const queue = broker.queue(); // never declared
  const returned = once(channel, 'return');
  channel.sendToQueue(queue, Buffer.from('nowhere'), { mandatory: true });
  const [message] = await within(returned, 'the basic.return');
  assert.deepEqual(message.fields, { replyCode: 312, replyText: 'NO_ROUTE', exchange: '', routingKey: queue });
});

test('routable or non-mandatory messages are not returned', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue);
  const routed = await publishAndRecord(channel, '', queue, 'delivered', { mandatory: true });
  assert.deepEqual(routed.events, ['ack']);
  // Returns precede acks, so none can still be on its way once the ack is in.
  const dropped = await publishAndRecord(channel, '', broker.queue(), 'dropped', { mandatory: false });
  assert.deepEqual(dropped.events, ['ack']);
  assert.deepEqual(await drain(channel, queue), ['delivered']);
});

test('an alternate exchange takes messages its exchange cannot route, with no return', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const [main, alternate] = [broker.exchange(), broker.exchange()];
  await channel.assertExchange(alternate, 'fanout', { durable: false });
  await channel.assertExchange(main, 'direct', { durable: false, alternateExchange: alternate });
  const [routedQueue, fallbackQueue] = [broker.queue(), broker.queue()];
  await channel.assertQueue(routedQueue);
  await channel.bindQueue(routedQueue, main, 'known');
  await channel.assertQueue(fallbackQueue);
  await channel.bindQueue(fallbackQueue, alternate, '');

  const known = await publishAndRecord(channel, main, 'known', 'routed', { mandatory: true });
  // Mandatory is satisfied by the alternate exchange's queue.
  const unknown = await publishAndRecord(channel, main, 'unknown', 'fallback', { mandatory: true });
  assert.deepEqual([known.events, unknown.events], [['ack'], ['ack']]);
  assert.deepEqual(await drain(channel, routedQueue), ['routed']);
  const fallback = await channel.get(fallbackQueue, { noAck: true });
  assert.equal(fallback.content.toString(), 'fallback');
  // The message keeps the exchange and routing key it was published with.
  assert.deepEqual([fallback.fields.exchange, fallback.fields.routingKey], [main, 'unknown']);
});

test('a message neither exchange can route is returned from the original exchange', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const [main, alternate] = [broker.exchange(), broker.exchange()];
  await channel.assertExchange(alternate, 'direct', { durable: false }); // nothing bound
  await channel.assertExchange(main, 'direct', { durable: false, alternateExchange: alternate });
  const { events, returned } = await publishAndRecord(channel, main, 'unknown', 'lost', { mandatory: true });
  assert.deepEqual(events, ['return', 'ack']);
  assert.deepEqual(returned[0].fields, {
    replyCode: 312,
    replyText: 'NO_ROUTE',
    exchange: main,
    routingKey: 'unknown',
  });
});
