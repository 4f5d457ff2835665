// Connection negotiation as amqplib sees it: server properties, tuning through
// URL parameters, heartbeats, frame splitting and refused logins.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import amqp from 'amqplib';
import { Broker, closeCleanly, consume, publishConfirmed, unique, urlAs, urlWith, within } from './support.js';

// Every capability RabbitMQ 3.10 (and current RabbitMQ) advertises in connection.start.
const CAPABILITIES = [
  'publisher_confirms',
  'exchange_exchange_bindings',
  'basic.nack',
  'consumer_cancel_notify',
  'connection.blocked',
  'consumer_priorities',
  'authentication_failure_close',
  'per_consumer_qos',
  'direct_reply_to',
];

/** The values connection.tune-ok settled on, as amqplib recorded them. */
function tuning(connection) {
  const { frameMax, channelMax, heartbeat } = connection.connection;
  return { frameMax, channelMax, heartbeat };
}

test('server properties name the product and advertise every capability', async (t) => {
  const connection = await Broker.for(t).connect();
  const props = connection.connection.serverProperties;
  for (const key of ['product', 'version', 'platform', 'copyright', 'information']) {
    assert.equal(typeof props[key], 'string', key);
    assert.notEqual(props[key], '', key);
  }
  for (const capability of CAPABILITIES) {
    assert.equal(props.capabilities[capability], true, capability);
  }
});

test("without URL parameters the client takes the server's tuning", async (t) => {
  const connection = await Broker.for(t).connect();
  // RabbitMQ's connection.tune defaults (unchanged in 4.x); amqplib asks for frameMax 131072 itself.
  assert.deepEqual(tuning(connection), { frameMax: 131072, channelMax: 2047, heartbeat: 60 });
});

test('URL parameters below the server limits are what gets negotiated', async (t) => {
  const connection = await Broker.for(t).connect(urlWith({ heartbeat: 7, frameMax: 8192, channelMax: 16 }));
  assert.deepEqual(tuning(connection), { frameMax: 8192, channelMax: 16, heartbeat: 7 });
});

test('URL parameters above the server limits are lowered to them', async (t) => {
  const connection = await Broker.for(t).connect(urlWith({ heartbeat: 600, frameMax: 1048576, channelMax: 4096 }));
  assert.deepEqual(tuning(connection), { frameMax: 131072, channelMax: 2047, heartbeat: 60 });
});

test('heartbeat=0 disables heartbeats', async (t) => {
  const connection = await Broker.for(t).connect(urlWith({ heartbeat: 0 }));
  assert.equal(connection.connection.heartbeat, 0);
});

test('the server sends heartbeats on an idle connection', async (t) => {
  const connection = await Broker.for(t).connect(urlWith({ heartbeat: 1 }));
  // Nothing else is due from the broker after connection.open-ok, so the next
  // bytes on the socket can only be a heartbeat frame (sent within 1-2 s).
  await within(once(connection.connection.stream, 'readable'), 'a heartbeat from the server', 3000);
  // amqplib treats two silent intervals as a dead server; the connection must still be usable.
  const channel = await connection.createChannel();
  await channel.close();
});

test('messages larger than frameMax are split into body frames and reassembled', async (t) => {
  const broker = Broker.for(t);
  const connection = await broker.connect(urlWith({ frameMax: 4096 }));
  const channel = await broker.confirmChannel(connection);
  const { queue } = await channel.assertQueue('', { exclusive: true });
  // Spans several 4 KiB frames, with a distinct byte at each position to catch reordering.
  const body = Buffer.from(Array.from({ length: 20000 }, (_, i) => i % 251));
  await publishConfirmed(channel, '', queue, body);
  const inbox = await consume(channel, queue, { noAck: true });
  const message = await inbox.next();
  assert.equal(message.content.length, body.length);
  assert.ok(message.content.equals(body));
});

test('a wrong password is refused with 403 ACCESS_REFUSED', async () => {
  // RabbitMQ answers with connection.close (authentication_failure_close) instead of just dropping the socket.
  await assert.rejects(within(amqp.connect(urlAs('guest', 'wrong-password')), 'the login to be refused'), {
    message:
      'Handshake terminated by server: 403 (ACCESS-REFUSED) with message ' +
      '"ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."',
  });
});

test('an unknown virtual host is refused with connection.close', async () => {
  // amqplib reports the close frame without its text (530 NOT_ALLOWED - vhost ... not found).
  await assert.rejects(within(amqp.connect(urlAs('guest', 'guest', unique('vhost'))), 'the vhost to be refused'), {
    message: 'Expected ConnectionOpenOk; got <ConnectionClose channel:0>',
  });
});

test('closing the connection right after acks completes the close handshake', async (t) => {
  const broker = Broker.for(t);
  const connection = await broker.connect();
  const channel = await broker.confirmChannel(connection);
  const { queue } = await channel.assertQueue('', { exclusive: true });
  const count = 50; // enough acks still queued in the client to make a premature socket close show
  for (let i = 0; i < count; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
  await within(channel.waitForConfirms(), 'the confirms');
  const messages = await (await consume(channel, queue)).take(count);
  for (const message of messages) channel.ack(message);
  // amqplib writes connection.close ahead of the acks still queued for the
  // channel. RabbitMQ answers close-ok and then discards whatever else arrives
  // until the client hangs up, so the close completes; a broker that drops the
  // socket right after close-ok makes the client's next write fail (EPIPE)
  // and amqplib's close() never settle.
  await closeCleanly(connection);
});
