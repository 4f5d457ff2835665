// Request/reply (RPC) over AMQP: reply_to + correlation_id through an exclusive
// server-named reply queue, and through direct reply-to (amq.rabbitmq.reply-to).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Broker, consume, expectChannelError, channelClosure } from './support.js';

const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

/**
 * Starts an RPC server on its own connection: it answers each request on a
 * fresh queue with the upper-cased body, sent to the request's reply_to with its
 * correlation_id. Returns the request queue and the reply_to values it saw.
 */
async function startUpperCaseServer(broker) {
  const channel = await broker.channel(await broker.connect());
  const requests = broker.queue();
  await channel.assertQueue(requests);
  const seenReplyTo = [];
  await channel.consume(requests, (request) => {
    const { replyTo, correlationId } = request.properties;
    seenReplyTo.push(replyTo);
    channel.sendToQueue(replyTo, Buffer.from(request.content.toString().toUpperCase()), { correlationId });
    channel.ack(request);
  });
  return { requests, seenReplyTo };
}

/** Sends each body as a request and returns the replies, in the order they arrived. */
async function call(channel, inbox, requests, replyTo, bodies) {
  bodies.forEach((body, index) => {
    channel.sendToQueue(requests, Buffer.from(body), { replyTo, correlationId: `call-${index}` });
  });
  return inbox.take(bodies.length, `${bodies.length} replies`);
}

/** Reply bodies keyed by correlation id. */
function byCorrelationId(replies) {
  return Object.fromEntries(replies.map((reply) => [reply.properties.correlationId, reply.content.toString()]));
}

test('RPC through an exclusive server-named reply queue', async (t) => {
  const broker = Broker.for(t);
  const { requests, seenReplyTo } = await startUpperCaseServer(broker);
  const channel = await broker.channel();
  const { queue: replyQueue } = await channel.assertQueue('', { exclusive: true });
  const inbox = await consume(channel, replyQueue, { noAck: true });
  const replies = await call(channel, inbox, requests, replyQueue, ['one', 'two', 'three']);
  assert.deepEqual(byCorrelationId(replies), { 'call-0': 'ONE', 'call-1': 'TWO', 'call-2': 'THREE' });
  assert.deepEqual(seenReplyTo, [replyQueue, replyQueue, replyQueue]);
  for (const reply of replies) assert.deepEqual([reply.fields.exchange, reply.fields.routingKey], ['', replyQueue]);
});

test('RPC through direct reply-to', async (t) => {
  const broker = Broker.for(t);
  const { requests, seenReplyTo } = await startUpperCaseServer(broker);
  const channel = await broker.channel();
  const inbox = await consume(channel, DIRECT_REPLY_TO, { noAck: true, consumerTag: 'rpc-client' });
  const replies = await call(channel, inbox, requests, DIRECT_REPLY_TO, ['one', 'two']);
  assert.deepEqual(byCorrelationId(replies), { 'call-0': 'ONE', 'call-1': 'TWO' });
  // The broker rewrites reply_to to a per-channel name the server publishes to.
  const [replyTo] = seenReplyTo;
  assert.match(replyTo, /^amq\.rabbitmq\.reply-to\..+/);
  assert.deepEqual(seenReplyTo, [replyTo, replyTo]);
  for (const reply of replies) {
    assert.deepEqual(
      [reply.fields.consumerTag, reply.fields.exchange, reply.fields.routingKey],
      ['rpc-client', '', replyTo],
    );
  }
});

test('publishing with direct reply-to needs a reply consumer on the same channel', async (t) => {
  const broker = Broker.for(t);
  const channel = await broker.channel();
  const queue = broker.queue();
  await channel.assertQueue(queue);
  channel.sendToQueue(queue, Buffer.from('who answers?'), { replyTo: DIRECT_REPLY_TO });
  assert.deepEqual(await channelClosure(channel), {
    code: 406,
    text: 'PRECONDITION_FAILED - fast reply consumer does not exist',
  });
});

test('the direct reply-to consumer must not ask for acknowledgements', async (t) => {
  const channel = await Broker.for(t).channel();
  await expectChannelError(
    channel.consume(DIRECT_REPLY_TO, () => {}, { noAck: false }),
    406,
    'PRECONDITION_FAILED - reply consumer cannot acknowledge',
  );
});
