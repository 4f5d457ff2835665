// Queue length limits: x-max-length and x-max-length-bytes with the default
// x-overflow drop-head (oldest dropped, dead-lettered with reason 'maxlen') and
// with reject-publish (newest refused with a publisher nack).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertDeathHeaders, assertSingleDeath, deadLetterTopology } from './dead_lettering.js';
import { Broker, consume, drain, publishConfirmed } from './support.js';

test('x-max-length drops the oldest message and dead-letters it with reason maxlen', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const { ingress, work, dlx, deadQueue } = await deadLetterTopology(broker, channel, {
    // drop-head is the default overflow behaviour; naming it checks the argument is accepted.
    workArguments: { 'x-max-length': 2, 'x-overflow': 'drop-head' },
  });
  const deadInbox = await consume(channel, deadQueue, { noAck: true });
  for (const body of ['m1', 'm2', 'm3']) await publishConfirmed(channel, ingress, 'work', body);
  const dead = await deadInbox.next('the dropped head');
  assert.equal(dead.content.toString(), 'm1');
  assert.deepEqual([dead.fields.exchange, dead.fields.routingKey], [dlx, 'work']);
  assertSingleDeath(dead, { count: 1, reason: 'maxlen', queue: work, exchange: ingress, 'routing-keys': ['work'] });
  assertDeathHeaders(dead, await broker.connection(), { reason: 'maxlen', queue: work, exchange: ingress });
  assert.deepEqual(await drain(channel, work), ['m2', 'm3']);
});

test('x-max-length without a dead-letter exchange simply discards the oldest', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { maxLength: 3 });
  for (const body of ['m1', 'm2', 'm3', 'm4', 'm5']) await publishConfirmed(channel, '', queue, body);
  assert.equal((await channel.checkQueue(queue)).messageCount, 3);
  assert.deepEqual(await drain(channel, queue), ['m3', 'm4', 'm5']);
});

test('x-overflow reject-publish nacks publishes beyond x-max-length and keeps the oldest', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const { ingress, work, deadQueue } = await deadLetterTopology(broker, channel, {
    workArguments: { 'x-max-length': 2, 'x-overflow': 'reject-publish' },
  });
  await publishConfirmed(channel, ingress, 'work', 'm1');
  await publishConfirmed(channel, ingress, 'work', 'm2');
  await assert.rejects(publishConfirmed(channel, ingress, 'work', 'm3'), { message: 'message nacked' });
  assert.deepEqual(await drain(channel, work), ['m1', 'm2']);
  // Refused messages are not dead-lettered (that is reject-publish-dlx).
  assert.equal((await channel.checkQueue(deadQueue)).messageCount, 0);
  // With room again, publishes are accepted.
  await publishConfirmed(channel, ingress, 'work', 'm4');
  assert.deepEqual(await drain(channel, work), ['m4']);
});

test('x-max-length-bytes counts body bytes and drops from the head', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { arguments: { 'x-max-length-bytes': 10 } });
  await publishConfirmed(channel, '', queue, 'aaaaaa'); // 6 bytes
  await publishConfirmed(channel, '', queue, 'bbbbbb'); // 12 bytes in all: 'aaaaaa' goes
  await publishConfirmed(channel, '', queue, 'cc'); // 8 bytes in all: both stay
  assert.deepEqual(await drain(channel, queue), ['bbbbbb', 'cc']);
});

test('x-max-length-bytes with reject-publish nacks a message that does not fit', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { arguments: { 'x-max-length-bytes': 10, 'x-overflow': 'reject-publish' } });
  await publishConfirmed(channel, '', queue, 'aaaaaa');
  await publishConfirmed(channel, '', queue, 'bbbb'); // exactly 10 bytes: still fits
  await assert.rejects(publishConfirmed(channel, '', queue, 'c'), { message: 'message nacked' });
  assert.deepEqual(await drain(channel, queue), ['aaaaaa', 'bbbb']);
});
