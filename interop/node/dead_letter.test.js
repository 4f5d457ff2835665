// Dead lettering of rejected and nacked messages (x-dead-letter-exchange,
// x-dead-letter-routing-key) and the x-death / x-first-death-* headers RabbitMQ adds.
// Expiry and length limits dead-letter too: see ttl.test.js and limits.test.js.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertDeathHeaders, assertSingleDeath, deadLetterTopology } from './dead_lettering.js';
import { Broker, consume, publishConfirmed } from './support.js';

test('a message rejected without requeue is dead-lettered with x-death and x-first-death headers', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const { ingress, work, dlx, deadQueue } = await deadLetterTopology(broker, channel, {
    deadLetterRoutingKey: 'dead',
  });
  await publishConfirmed(channel, ingress, 'work', 'doomed', {
    messageId: 'm-1',
    contentType: 'text/plain',
    headers: { tenant: 'acme' },
  });
  const consumer = await broker.channel();
  consumer.reject(await (await consume(consumer, work)).next(), false);
  const dead = await (await consume(consumer, deadQueue, { noAck: true })).next('the dead-lettered message');

  assert.equal(dead.content.toString(), 'doomed');
  // Re-published to the dead-letter exchange with x-dead-letter-routing-key.
  assert.deepEqual([dead.fields.exchange, dead.fields.routingKey, dead.fields.redelivered], [dlx, 'dead', false]);
  assert.equal(dead.properties.messageId, 'm-1');
  assert.equal(dead.properties.contentType, 'text/plain');
  assert.equal(dead.properties.headers.tenant, 'acme');
  // exchange and routing-keys are those the message was originally published with.
  assertSingleDeath(dead, { count: 1, reason: 'rejected', queue: work, exchange: ingress, 'routing-keys': ['work'] });
  assertDeathHeaders(dead, await broker.connection(), { reason: 'rejected', queue: work, exchange: ingress });
});

test('nacked messages keep their routing key when no dead-letter routing key is set', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const { ingress, work, dlx, deadQueue } = await deadLetterTopology(broker, channel, { dlxType: 'fanout' });
  await publishConfirmed(channel, ingress, 'work', 'm1');
  await publishConfirmed(channel, ingress, 'work', 'm2');
  const consumer = await broker.channel();
  const [, second] = await (await consume(consumer, work)).take(2);
  consumer.nack(second, true, false);
  const dead = await (await consume(consumer, deadQueue, { noAck: true })).take(2, 'both dead-lettered messages');
  assert.deepEqual(
    dead.map((message) => [message.content.toString(), message.fields.exchange, message.fields.routingKey]),
    [
      ['m1', dlx, 'work'],
      ['m2', dlx, 'work'],
    ],
  );
  for (const message of dead) {
    assertSingleDeath(message, {
      count: 1,
      reason: 'rejected',
      queue: work,
      exchange: ingress,
      'routing-keys': ['work'],
    });
  }
});

test('requeued rejections are not dead-lettered', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const { ingress, work, deadQueue } = await deadLetterTopology(broker, channel);
  await publishConfirmed(channel, ingress, 'work', 'kept');
  const consumer = await broker.channel();
  consumer.reject(await consumer.get(work), true);
  const again = await consumer.get(work, { noAck: true });
  assert.equal(again.content.toString(), 'kept');
  assert.equal(again.fields.redelivered, true);
  assert.equal((await channel.checkQueue(deadQueue)).messageCount, 0);
});

test('dead-lettering the same message from the same queue again increments its x-death count', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  // Rejected messages go back into the same queue through the default exchange.
  await channel.assertQueue(queue, { deadLetterExchange: '', deadLetterRoutingKey: queue });
  await publishConfirmed(channel, '', queue, 'boomerang');
  const consumer = await broker.channel();
  const inbox = await consume(consumer, queue);
  consumer.reject(await inbox.next(), false);
  const once = await inbox.next('the first dead-lettered copy');
  assertSingleDeath(once, { count: 1, reason: 'rejected', queue, exchange: '', 'routing-keys': [queue] });
  consumer.reject(once, false);
  const twice = await inbox.next('the second dead-lettered copy');
  assert.equal(twice.content.toString(), 'boomerang');
  // One entry per (queue, reason), whose count goes up.
  assertSingleDeath(twice, { count: 2, reason: 'rejected', queue, exchange: '', 'routing-keys': [queue] });
  assertDeathHeaders(twice, await broker.connection(), { reason: 'rejected', queue, exchange: '' });
});
