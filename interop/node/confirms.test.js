// Publisher confirms through amqplib's ConfirmChannel.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker, VHOST, channelClosure, drain, publishConfirmed, within } from './support.js';

test('every publish on a ConfirmChannel is acked and waitForConfirms resolves', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { durable: true });
  const acked = [];
  channel.on('ack', ({ deliveryTag, multiple }) => acked.push({ deliveryTag, multiple }));
  const outcomes = [];
  for (let i = 1; i <= 50; i++) {
    channel.sendToQueue(queue, Buffer.from(`m${i}`), { persistent: true }, (error) => outcomes.push(error));
  }
  await within(channel.waitForConfirms(), 'all 50 confirms');
  assert.equal(outcomes.length, 50);
  assert.ok(outcomes.every((error) => error === null));
  // The broker may confirm several at once (multiple=true), but must cover tags 1..50 in order.
  assert.equal(acked.at(-1).deliveryTag, 50);
  assert.deepEqual(
    acked.map(({ deliveryTag }) => deliveryTag),
    [...acked.map(({ deliveryTag }) => deliveryTag)].sort((a, b) => a - b),
  );
  assert.equal((await channel.checkQueue(queue)).messageCount, 50);
});

test('unroutable messages are still acked', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const exchange = broker.exchange();
  await channel.assertExchange(exchange, 'direct', { durable: false });
  const outcomes = [];
  channel.publish(exchange, 'nobody-bound', Buffer.from('lost'), {}, (error) => outcomes.push(error));
  await within(channel.waitForConfirms(), 'the confirm');
  assert.deepEqual(outcomes, [null]);
});

test('publishing to a missing exchange closes the channel with 404 and fails its confirm', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const exchange = broker.exchange();
  const outcome = new Promise((resolve) => {
    channel.publish(exchange, 'key', Buffer.from('nowhere'), {}, resolve);
  });
  assert.deepEqual(await channelClosure(channel), {
    code: 404,
    text: `NOT_FOUND - no exchange '${exchange}' in vhost '${VHOST}'`,
  });
  assert.equal((await within(outcome, 'the publish callback')).message, 'channel closed');
  await assert.rejects(channel.waitForConfirms(), { message: 'channel closed' });
});

test('a confirm is sent only once the message is enqueued', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue);
  await publishConfirmed(channel, '', queue, 'enqueued');
  // Read from another connection: the ack already implies the message is there.
  assert.deepEqual(await drain(await broker.channel(await broker.connect()), queue), ['enqueued']);
});
