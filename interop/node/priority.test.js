// Priority queues (x-max-priority): higher-priority messages are delivered
// first, FIFO within one priority.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker, bodies, consume, drain, publishConfirmed } from './support.js';

/** Publishes [body, priority] pairs with confirms; a priority of undefined sends none. */
async function publishWithPriorities(channel, queue, messages) {
  for (const [body, priority] of messages) {
    await publishConfirmed(channel, '', queue, body, priority === undefined ? {} : { priority });
  }
}

test('messages are delivered by priority, first in first out within a priority', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { maxPriority: 10 });
  await publishWithPriorities(channel, queue, [
    ['p1', 1],
    ['p5-a', 5],
    ['none', undefined], // no priority counts as 0
    ['p9', 9],
    ['p0', 0],
    ['p5-b', 5],
  ]);
  assert.deepEqual(await drain(channel, queue), ['p9', 'p5-a', 'p5-b', 'p1', 'none', 'p0']);
});

test('priorities above x-max-priority count as the maximum', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { maxPriority: 3 });
  await publishWithPriorities(channel, queue, [
    ['p3', 3],
    ['p200', 200],
    ['p2', 2],
    ['p4', 4],
  ]);
  assert.deepEqual(await drain(channel, queue), ['p3', 'p200', 'p4', 'p2']);
});

test('a consumer sees waiting messages in priority order, with their priority property', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { maxPriority: 5 });
  await publishWithPriorities(channel, queue, [
    ['low', 1],
    ['high', 5],
    ['mid', 3],
  ]);
  const messages = await (await consume(channel, queue, { noAck: true })).take(3);
  assert.deepEqual(bodies(messages), ['high', 'mid', 'low']);
  assert.deepEqual(
    messages.map((message) => message.properties.priority),
    [5, 3, 1],
  );
});

test('a queue without x-max-priority ignores message priorities', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue);
  await publishWithPriorities(channel, queue, [
    ['first', 1],
    ['second', 9],
  ]);
  assert.deepEqual(await drain(channel, queue), ['first', 'second']);
});
