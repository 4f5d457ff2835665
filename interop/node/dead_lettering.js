// Shared setup and assertions for the dead-lettering tests (rejects, TTL
// expiry, length limits).

import assert from 'node:assert/strict';
import { isRabbitMQBefore } from './support.js';

/**
 * Declares a work queue that dead-letters into a dead-letter exchange with a
 * queue bound to it:
 *
 *   publish --> ingress (direct) --'work'--> work queue --dead letters--> dlx --> deadQueue
 *
 * deadLetterRoutingKey becomes the work queue's x-dead-letter-routing-key (and
 * deadQueue's binding key); without it, dead letters keep the routing key
 * 'work'. workArguments adds queue arguments (x-message-ttl, x-max-length, ...).
 * Returns the four names; all are deleted after the test.
 */
export async function deadLetterTopology(broker, channel, options = {}) {
  const { dlxType = 'direct', deadLetterRoutingKey, workArguments = {} } = options;
  const [ingress, dlx] = [broker.exchange(), broker.exchange()];
  const [work, deadQueue] = [broker.queue(), broker.queue()];
  await channel.assertExchange(ingress, 'direct', { durable: false });
  await channel.assertExchange(dlx, dlxType, { durable: false });
  await channel.assertQueue(deadQueue);
  await channel.bindQueue(deadQueue, dlx, deadLetterRoutingKey ?? 'work');
  const deadLettering = { 'x-dead-letter-exchange': dlx };
  if (deadLetterRoutingKey !== undefined) deadLettering['x-dead-letter-routing-key'] = deadLetterRoutingKey;
  await channel.assertQueue(work, { arguments: { ...deadLettering, ...workArguments } });
  await channel.bindQueue(work, ingress, 'work');
  return { ingress, work, dlx, deadQueue };
}

/** The x-death entries of a dead-lettered message (most recent first); [] when it has none. */
function xDeath(message) {
  return message.properties.headers?.['x-death'] ?? [];
}

/** Asserts that message died exactly once, with an x-death entry of exactly these fields plus a current time. */
export function assertSingleDeath(message, expected) {
  const deaths = xDeath(message);
  assert.equal(deaths.length, 1, `expected one x-death entry, got ${JSON.stringify(deaths)}`);
  const { time, ...fields } = deaths[0];
  assert.deepEqual(fields, expected);
  // amqplib decodes an AMQP timestamp (seconds) as { '!': 'timestamp', value }.
  assert.equal(time?.['!'], 'timestamp', `x-death time ${JSON.stringify(time)} is not a timestamp`);
  const now = Date.now() / 1000;
  assert.ok(Math.abs(time.value - now) <= 60, `x-death time ${time.value} is not about now (${now})`);
}

/**
 * Asserts the x-first-death-* headers (and, on current RabbitMQ and Warren,
 * x-last-death-*) of a message dead-lettered once, or always for the same reason
 * from the same queue and exchange.
 */
export function assertDeathHeaders(message, connection, { reason, queue, exchange }) {
  const headers = message.properties.headers;
  const expected = { reason, queue, exchange };
  const actual = (prefix) => ({
    reason: headers[`${prefix}-reason`],
    queue: headers[`${prefix}-queue`],
    exchange: headers[`${prefix}-exchange`],
  });
  assert.deepEqual(actual('x-first-death'), expected);
  // RabbitMQ 3.13 added x-last-death-*; 3.10 only sets x-first-death-*. Warren follows current RabbitMQ.
  if (!isRabbitMQBefore(connection, '3.13')) assert.deepEqual(actual('x-last-death'), expected);
}
