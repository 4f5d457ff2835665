// Declaring and binding exchanges and queues: routing through each exchange
// type, passive declares, and the exact errors for missing or inequivalent entities.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker, VHOST, channelClosure, consume, drain, expectChannelError, publishConfirmed } from './support.js';

/** Declares count fresh queues bound to exchange with the given binding keys (or header arguments). */
async function boundQueues(broker, channel, exchange, bindings) {
  const queues = [];
  for (const { key = '', args } of bindings) {
    const queue = broker.queue();
    await channel.assertQueue(queue);
    await channel.bindQueue(queue, exchange, key, args);
    queues.push(queue);
  }
  return queues;
}

/** Publishes each [routingKey, body, options] with confirms; confirmed messages have been routed. */
async function publishAll(channel, exchange, messages) {
  for (const [routingKey, body, options] of messages) {
    await publishConfirmed(channel, exchange, routingKey, body, options);
  }
}

async function contents(channel, queues) {
  const result = [];
  for (const queue of queues) result.push(await drain(channel, queue));
  return result;
}

test('a direct exchange routes by exact routing key', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const exchange = broker.exchange();
  await channel.assertExchange(exchange, 'direct', { durable: false });
  const queues = await boundQueues(broker, channel, exchange, [{ key: 'black' }, { key: 'green' }]);
  await publishAll(channel, exchange, [
    ['black', 'b1'],
    ['green', 'g1'],
    ['orange', 'dropped'],
    ['black', 'b2'],
  ]);
  assert.deepEqual(await contents(channel, queues), [['b1', 'b2'], ['g1']]);
});

test('a fanout exchange copies every message to every bound queue, ignoring keys', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const exchange = broker.exchange();
  await channel.assertExchange(exchange, 'fanout', { durable: false });
  const queues = await boundQueues(broker, channel, exchange, [{ key: 'a' }, { key: 'b' }]);
  await publishAll(channel, exchange, [
    ['x', 'one'],
    ['', 'two'],
  ]);
  assert.deepEqual(await contents(channel, queues), [
    ['one', 'two'],
    ['one', 'two'],
  ]);
});

test('a topic exchange matches * to one word and # to zero or more', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const exchange = broker.exchange();
  await channel.assertExchange(exchange, 'topic', { durable: false });
  const queues = await boundQueues(broker, channel, exchange, [
    { key: '*.orange.*' },
    { key: '*.*.rabbit' },
    { key: 'lazy.#' },
  ]);
  await publishAll(channel, exchange, [
    ['quick.orange.rabbit', 'quick.orange.rabbit'],
    ['lazy.orange.elephant', 'lazy.orange.elephant'],
    ['quick.orange.fox', 'quick.orange.fox'],
    ['lazy.brown.fox', 'lazy.brown.fox'],
    ['lazy', 'lazy'],
    ['quick.brown.fox', 'nobody'],
    ['orange', 'nobody'],
    ['quick.orange.male.rabbit', 'nobody'],
  ]);
  assert.deepEqual(await contents(channel, queues), [
    ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox'],
    ['quick.orange.rabbit'],
    ['lazy.orange.elephant', 'lazy.brown.fox', 'lazy'],
  ]);
});

test('a headers exchange matches x-match all and any, ignoring the routing key', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const exchange = broker.exchange();
  await channel.assertExchange(exchange, 'headers', { durable: false });
  const queues = await boundQueues(broker, channel, exchange, [
    { args: { 'x-match': 'all', format: 'pdf', type: 'report' } },
    { args: { 'x-match': 'any', format: 'pdf', type: 'log' } },
  ]);
  await publishAll(channel, exchange, [
    ['ignored', 'pdf report', { headers: { format: 'pdf', type: 'report' } }],
    ['ignored', 'pdf only', { headers: { format: 'pdf' } }],
    ['ignored', 'zip log', { headers: { format: 'zip', type: 'log' } }],
    ['ignored', 'nothing', { headers: { format: 'zip' } }],
  ]);
  assert.deepEqual(await contents(channel, queues), [['pdf report'], ['pdf report', 'pdf only', 'zip log']]);
});

test('exchange-to-exchange bindings forward matching messages', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const [source, destination] = [broker.exchange(), broker.exchange()];
  await channel.assertExchange(source, 'topic', { durable: false });
  await channel.assertExchange(destination, 'fanout', { durable: false });
  await channel.bindExchange(destination, source, 'audit.#');
  const [queue] = await boundQueues(broker, channel, destination, [{}]);
  await publishAll(channel, source, [
    ['audit.login', 'kept'],
    ['metrics.cpu', 'dropped'],
  ]);
  assert.deepEqual(await drain(channel, queue), ['kept']);
  await channel.unbindExchange(destination, source, 'audit.#');
  await publishAll(channel, source, [['audit.logout', 'after unbind']]);
  assert.deepEqual(await drain(channel, queue), []);
});

test('assertQueue and checkQueue report message and consumer counts', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  assert.deepEqual(await channel.assertQueue(queue), { queue, messageCount: 0, consumerCount: 0 });
  await publishConfirmed(channel, '', queue, 'one');
  await publishConfirmed(channel, '', queue, 'two');
  assert.deepEqual(await channel.checkQueue(queue), { queue, messageCount: 2, consumerCount: 0 });
  const consumer = await broker.channel();
  await consumer.prefetch(1);
  await (await consume(consumer, queue)).next();
  // The message held unacknowledged by the consumer no longer counts as ready.
  assert.deepEqual(await channel.checkQueue(queue), { queue, messageCount: 1, consumerCount: 1 });
});

test('a server-named queue gets a fresh amq.gen- name', async (t) => {
  const channel = await Broker.for(t).channel();
  const first = await channel.assertQueue('', { exclusive: true });
  const second = await channel.assertQueue('', { exclusive: true });
  assert.match(first.queue, /^amq\.gen-.+/);
  assert.notEqual(first.queue, second.queue);
});

test('passive declare of a missing queue closes the channel with 404', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.channel();
  const queue = broker.queue();
  await expectChannelError(channel.checkQueue(queue), 404, `NOT_FOUND - no queue '${queue}' in vhost '${VHOST}'`);
  assert.deepEqual(await channelClosure(channel), {
    code: 404,
    text: `NOT_FOUND - no queue '${queue}' in vhost '${VHOST}'`,
  });
  // A channel error leaves the connection and its other channels usable.
  const survivor = await broker.channel();
  assert.match((await survivor.assertQueue('', { exclusive: true })).queue, /^amq\.gen-/);
});

test('passive declare of a missing exchange closes the channel with 404', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.channel();
  const exchange = broker.exchange();
  await expectChannelError(
    channel.checkExchange(exchange),
    404,
    `NOT_FOUND - no exchange '${exchange}' in vhost '${VHOST}'`,
  );
});

test('passive declare of an existing queue succeeds whatever its flags', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.channel();
  const queue = broker.queue();
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 5 } });
  assert.deepEqual(await channel.checkQueue(queue), { queue, messageCount: 0, consumerCount: 0 });
});

test('redeclaring a queue with another durable flag is 406 PRECONDITION_FAILED', async (t) => {
  const broker = Broker.for(t);
  const queue = broker.queue();
  await (await broker.channel()).assertQueue(queue, { durable: false });
  await expectChannelError(
    (await broker.channel()).assertQueue(queue, { durable: true }),
    406,
    `PRECONDITION_FAILED - inequivalent arg 'durable' for queue '${queue}' in vhost '${VHOST}': ` +
      "received 'true' but current is 'false'",
  );
});

test('redeclaring a queue with another argument is 406 PRECONDITION_FAILED', async (t) => {
  const broker = Broker.for(t);
  const queue = broker.queue();
  await (await broker.channel()).assertQueue(queue, { messageTtl: 60000 });
  // amqplib encodes 30000 as a short and 60000 as a signedint. Integer types
  // count as one type class, so RabbitMQ reports the differing values without types.
  await expectChannelError(
    (await broker.channel()).assertQueue(queue, { messageTtl: 30000 }),
    406,
    `PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '${queue}' in vhost '${VHOST}': ` +
      "received '30000' but current is '60000'",
  );
});

test('redeclaring an exchange with another type is 406 PRECONDITION_FAILED', async (t) => {
  const broker = Broker.for(t);
  const exchange = broker.exchange();
  await (await broker.channel()).assertExchange(exchange, 'direct', { durable: false });
  await expectChannelError(
    (await broker.channel()).assertExchange(exchange, 'fanout', { durable: false }),
    406,
    `PRECONDITION_FAILED - inequivalent arg 'type' for exchange '${exchange}' in vhost '${VHOST}': ` +
      "received 'fanout' but current is 'direct'",
  );
});
