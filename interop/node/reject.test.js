// basic.reject and basic.nack, with and without requeue (no dead-letter exchange:
// see dead_letter.test.js for that).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker, bodies, consume, drain, queueWith } from './support.js';

/** The next count messages of queue, fetched one by one with basic.get. */
async function getEach(channel, queue, count, options) {
  const messages = [];
  for (let i = 0; i < count; i++) messages.push(await channel.get(queue, options));
  return messages;
}

function redeliveredFlags(messages) {
  return messages.map((message) => message.fields.redelivered);
}

test('nack with allUpTo and requeue redelivers every message in its original order', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2', 'm3');
  const channel = await broker.channel();
  const inbox = await consume(channel, queue);
  const first = await inbox.take(3);
  assert.deepEqual(redeliveredFlags(first), [false, false, false]);
  channel.nack(first[2], true, true);
  const again = await inbox.take(3, 'the three redeliveries');
  assert.deepEqual(bodies(again), ['m1', 'm2', 'm3']);
  assert.deepEqual(redeliveredFlags(again), [true, true, true]);
});

test('single nacks with requeue return messages to their original positions', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2', 'm3', 'm4');
  const channel = await broker.channel();
  // basic.get rather than a consumer, which would be sent each requeued message at once.
  const [m1, m2, m3, m4] = await getEach(channel, queue, 4);
  channel.nack(m4, false, true);
  channel.ack(m1);
  channel.nack(m2, false, true);
  channel.ack(m3);
  const again = await getEach(channel, queue, 2, { noAck: true });
  assert.deepEqual(bodies(again), ['m2', 'm4']);
  assert.deepEqual(redeliveredFlags(again), [true, true]);
});

test('reject with requeue puts the message back at the head of the queue', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2');
  const channel = await broker.channel();
  const first = await channel.get(queue);
  assert.equal(first.fields.redelivered, false);
  channel.reject(first, true);
  const again = await channel.get(queue, { noAck: true });
  assert.equal(again.content.toString(), 'm1');
  assert.equal(again.fields.redelivered, true);
  assert.equal(again.fields.messageCount, 1);
});

test('reject without requeue discards the message', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2');
  const channel = await broker.channel();
  channel.reject(await channel.get(queue), false);
  // Closing the channel would requeue m1 if the reject had not removed it.
  await channel.close();
  const rest = await broker.channel();
  const next = await rest.get(queue, { noAck: true });
  assert.equal(next.content.toString(), 'm2');
  assert.equal(next.fields.redelivered, false);
  assert.deepEqual(await drain(rest, queue), []);
});

test('nack with allUpTo and without requeue discards every earlier delivery', async (t) => {
  const broker = Broker.for(t);
  const queue = await queueWith(broker, 'm1', 'm2', 'm3', 'm4');
  const channel = await broker.channel();
  const messages = await (await consume(channel, queue)).take(4);
  channel.nack(messages[2], true, false); // m1..m3
  await channel.close(); // returns m4, which is still unacknowledged
  const rest = await broker.channel();
  const remaining = await rest.get(queue, { noAck: true });
  assert.equal(remaining.content.toString(), 'm4');
  assert.equal(remaining.fields.redelivered, true);
  assert.deepEqual(await drain(rest, queue), []);
});
