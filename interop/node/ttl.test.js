// Message TTL: per-queue x-message-ttl and per-message expiration, and the
// dead lettering of expired messages with reason 'expired'.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { assertDeathHeaders, assertSingleDeath, deadLetterTopology } from './dead_lettering.js';
import { Broker, consume, eventually, publishConfirmed } from './support.js';

test('x-message-ttl expires messages into the dead-letter exchange with reason expired', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const ttl = 200;
  const { ingress, work, dlx, deadQueue } = await deadLetterTopology(broker, channel, {
    workArguments: { 'x-message-ttl': ttl },
  });
  const deadInbox = await consume(channel, deadQueue, { noAck: true });
  const publishedAt = performance.now();
  await publishConfirmed(channel, ingress, 'work', 'stale', { messageId: 'm-1' });
  const dead = await deadInbox.next('the expired message');
  assert.ok(performance.now() - publishedAt >= ttl, 'dead-lettered before its TTL elapsed');
  assert.equal(dead.content.toString(), 'stale');
  assert.deepEqual([dead.fields.exchange, dead.fields.routingKey], [dlx, 'work']);
  assert.equal(dead.properties.messageId, 'm-1');
  assertSingleDeath(dead, { count: 1, reason: 'expired', queue: work, exchange: ingress, 'routing-keys': ['work'] });
  assertDeathHeaders(dead, await broker.connection(), { reason: 'expired', queue: work, exchange: ingress });
  assert.equal((await channel.checkQueue(work)).messageCount, 0);
});

test('per-message expiration dead-letters with original-expiration and drops the property', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const { ingress, work, deadQueue } = await deadLetterTopology(broker, channel);
  const deadInbox = await consume(channel, deadQueue, { noAck: true });
  const publishedAt = performance.now();
  await publishConfirmed(channel, ingress, 'work', 'short-lived', { expiration: '150' });
  const dead = await deadInbox.next('the expired message');
  assert.ok(performance.now() - publishedAt >= 150, 'dead-lettered before its expiration');
  assert.equal(dead.content.toString(), 'short-lived');
  // Without the property, the dead letter cannot expire again in the queues it reaches.
  assert.equal(dead.properties.expiration, undefined);
  assertSingleDeath(dead, {
    count: 1,
    reason: 'expired',
    queue: work,
    exchange: ingress,
    'routing-keys': ['work'],
    'original-expiration': '150',
  });
});

test('the shorter of x-message-ttl and expiration applies', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  // Either TTL alone outlives the test's deadline, so each message must expire by the shorter one.
  const cases = [
    { queueTtl: 100, expiration: '600000' },
    { queueTtl: 600000, expiration: '100' },
  ];
  for (const { queueTtl, expiration } of cases) {
    const { ingress, deadQueue } = await deadLetterTopology(broker, channel, {
      workArguments: { 'x-message-ttl': queueTtl },
    });
    const deadInbox = await consume(channel, deadQueue, { noAck: true });
    const body = `x-message-ttl ${queueTtl}, expiration ${expiration}`;
    await publishConfirmed(channel, ingress, 'work', body, { expiration });
    assert.equal((await deadInbox.next(`the expiry of "${body}"`)).content.toString(), body);
  }
});

test('x-message-ttl 0 drops a message that no consumer can take at once', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { messageTtl: 0 });
  await publishConfirmed(channel, '', queue, 'gone');
  assert.equal(await channel.get(queue), false);
});

test('expiration 0 drops a message that no consumer can take at once', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue);
  await publishConfirmed(channel, '', queue, 'gone', { expiration: '0' });
  await publishConfirmed(channel, '', queue, 'kept');
  const survivor = await channel.get(queue, { noAck: true });
  assert.equal(survivor.content.toString(), 'kept');
  assert.equal(survivor.fields.messageCount, 0);
});

test('a message leaves the queue once its expiration passes', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue);
  await publishConfirmed(channel, '', queue, 'short-lived', { expiration: '100' });
  // Without a dead-letter exchange nothing announces the expiry, so poll the queue's count.
  await eventually(async () => (await channel.checkQueue(queue)).messageCount === 0, 'the message to expire');
  assert.equal(await channel.get(queue), false);
});

test('an unexpired message is delivered with its expiration property', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { messageTtl: 60000 });
  await publishConfirmed(channel, '', queue, 'fresh', { expiration: '60000' });
  const message = await channel.get(queue, { noAck: true });
  assert.equal(message.content.toString(), 'fresh');
  assert.equal(message.properties.expiration, '60000');
});
