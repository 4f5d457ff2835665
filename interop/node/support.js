// Helpers shared by the amqplib interop tests: the broker's address, per-test
// connections and entity names with cleanup, and bounded waits on broker events.
//
// Every wait has a deadline, so a broker that never answers makes a test fail
// instead of hang.

import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import amqp from 'amqplib';

// Upper bound, in milliseconds, for any single broker event a test waits for.
export const TIMEOUT_MS = 5000;

if (!process.env.AMQP_URL) {
  throw new Error('AMQP_URL is not set; run the suite through interop/node/run or interop/run');
}
export const AMQP_URL = process.env.AMQP_URL;

// The virtual host AMQP_URL names, as it appears in the broker's error texts.
export const VHOST = decodeURIComponent(new URL(AMQP_URL).pathname.slice(1)) || '/';

/** AMQP_URL with these query parameters (amqplib reads heartbeat, frameMax, channelMax). */
export function urlWith(params) {
  const url = new URL(AMQP_URL);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, String(value));
  return url.toString();
}

/** AMQP_URL with other credentials and, optionally, another virtual host. */
export function urlAs(user, password, vhost = VHOST) {
  const url = new URL(AMQP_URL);
  url.username = encodeURIComponent(user);
  url.password = encodeURIComponent(password);
  url.pathname = `/${encodeURIComponent(vhost)}`;
  return url.toString();
}

/** A name that no other test, and no earlier run on a shared broker, uses. */
export function unique(kind) {
  return `interop.node.${kind}.${randomUUID().slice(0, 12)}`;
}

/** Resolves like promise, or rejects once ms have passed, naming what was awaited. */
export async function within(promise, what, ms = TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls check (an async predicate) until it holds, failing after ms. Only for
 * outcomes the broker announces with no event the client could await.
 */
export async function eventually(check, what, ms = TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The reply code and text of a broker's channel.close or connection.close, from
 * the error amqplib raises for it. amqplib keeps the code in error.code and puts
 * the text only into the message: `... with message "<reply-text>"`.
 */
export function closeReason(error) {
  const match = /with message "(.*)"$/s.exec(error.message);
  return { code: error.code, text: match ? match[1] : error.message };
}

/** Expects promise (a channel operation) to fail because the broker closed the channel with code and text. */
export async function expectChannelError(promise, code, text) {
  let error;
  try {
    await within(promise, `channel error ${code}`);
  } catch (caught) {
    error = caught;
  }
  if (!error) throw new Error(`expected channel error ${code} "${text}", but the operation succeeded`);
  const reason = closeReason(error);
  if (reason.code !== code || reason.text !== text) {
    throw new Error(`expected channel error ${code} "${text}", got ${reason.code} "${reason.text}"`);
  }
}

// The first error each channel saw, and a promise of its closure, recorded from
// the moment it opens: an asynchronous channel.close (e.g. after a publish) can
// arrive before the test starts waiting for it.
const closures = new WeakMap();

function watch(channel) {
  let firstError = null;
  // amqplib emits 'error' before 'close' for a broker-initiated close; with no
  // listener, an 'error' event would crash the test process.
  channel.on('error', (error) => {
    firstError ??= error;
  });
  closures.set(
    channel,
    new Promise((resolve) => channel.once('close', () => resolve(firstError && closeReason(firstError)))),
  );
  return channel;
}

/** Waits for channel to close and returns the broker's reason ({code, text}), or null for a clean close. */
export function channelClosure(channel) {
  return within(closures.get(channel), 'the channel to close');
}

/** Collects a consumer's deliveries so a test can await them with a deadline. */
export class Inbox {
  #messages = [];
  #arrived = () => {};

  // The consumer callback; amqplib calls it with null when the broker cancels the consumer.
  push = (message) => {
    this.#messages.push(message);
    this.#arrived();
  };

  /** Messages received and not yet taken. */
  get pending() {
    return this.#messages.length;
  }

  /** Removes and returns the next count deliveries, waiting at most timeout ms for them. */
  async take(count, what = `${count} deliveries`, timeout = TIMEOUT_MS) {
    const deadline = Date.now() + timeout;
    while (this.#messages.length < count) {
      const arrival = new Promise((resolve) => {
        this.#arrived = resolve;
      });
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`timed out after ${timeout} ms waiting for ${what} (got ${this.#messages.length})`);
      }
      await within(arrival, `${what} (got ${this.#messages.length})`, remaining);
    }
    return this.#messages.splice(0, count);
  }

  /** The next delivery. */
  async next(what = 'a delivery', timeout = TIMEOUT_MS) {
    const [message] = await this.take(1, what, timeout);
    return message;
  }
}

/** Starts a consumer on queue whose deliveries collect in the returned Inbox (consumerTag set on it). */
export async function consume(channel, queue, options = {}) {
  const inbox = new Inbox();
  const { consumerTag } = await channel.consume(queue, inbox.push, options);
  inbox.consumerTag = consumerTag;
  return inbox;
}

/** Publishes on a ConfirmChannel and resolves when the broker acks, rejecting on a nack. */
export function publishConfirmed(channel, exchange, routingKey, body, options = {}) {
  return within(
    new Promise((resolve, reject) => {
      channel.publish(exchange, routingKey, Buffer.from(body), options, (error) => (error ? reject(error) : resolve()));
    }),
    `the confirm of "${body}"`,
  );
}

/** A fresh queue (deleted after the test) holding these bodies, published with confirms. */
export async function queueWith(broker, ...contents) {
  const channel = await broker.confirmChannel();
  const queue = broker.queue();
  await channel.assertQueue(queue);
  for (const body of contents) await publishConfirmed(channel, '', queue, body);
  await channel.close();
  return queue;
}

/** The bodies of all ready messages in queue, removed with basic.get and auto-ack. */
export async function drain(channel, queue) {
  const contents = [];
  for (;;) {
    const message = await channel.get(queue, { noAck: true });
    if (!message) return contents;
    contents.push(message.content.toString());
  }
}

/** The bodies of messages, as strings. */
export function bodies(messages) {
  return messages.map((message) => message.content.toString());
}

/**
 * True when the broker is RabbitMQ older than version ("major.minor"). Warren
 * follows current RabbitMQ; a few tests accept the older variant only so that
 * the suite still proves its expectations against the 3.10 reference.
 */
export function isRabbitMQBefore(connection, version) {
  const props = connection.connection.serverProperties;
  if (props.product !== 'RabbitMQ') return false;
  const [major, minor] = String(props.version).split('.').map(Number);
  const [wantMajor, wantMinor] = version.split('.').map(Number);
  return major < wantMajor || (major === wantMajor && minor < wantMinor);
}

/**
 * One test's access to the broker: opens connections and channels, hands out
 * unique queue and exchange names, and after the test closes the connections
 * and deletes those entities (the broker may be shared between tests and runs).
 */
export class Broker {
  #connections = [];
  #closed = new WeakSet();
  #queues = [];
  #exchanges = [];
  #main = null;

  /** A Broker whose cleanup runs after the test t. */
  static for(t) {
    const broker = new Broker();
    t.after(() => broker.cleanup());
    return broker;
  }

  /** Opens a connection (to AMQP_URL unless told otherwise) that is closed after the test. */
  async connect(url = AMQP_URL) {
    const connection = await openConnection(url);
    connection.once('close', () => this.#closed.add(connection));
    this.#connections.push(connection);
    return connection;
  }

  /** The test's main connection, opened on first use. */
  async connection() {
    this.#main ??= await this.connect();
    return this.#main;
  }

  /** A new channel, on the main connection unless told otherwise. */
  async channel(connection) {
    return watch(await (connection ?? (await this.connection())).createChannel());
  }

  /** A new channel in confirm mode, on the main connection unless told otherwise. */
  async confirmChannel(connection) {
    return watch(await (connection ?? (await this.connection())).createConfirmChannel());
  }

  /** A unique queue name, deleted after the test. */
  queue() {
    this.#queues.push(unique('q'));
    return this.#queues.at(-1);
  }

  /** A unique exchange name, deleted after the test. */
  exchange() {
    this.#exchanges.push(unique('x'));
    return this.#exchanges.at(-1);
  }

  async cleanup() {
    // Close the test's connections first: an exclusive queue cannot be deleted
    // by another connection while its owner is connected.
    const failures = [];
    for (const connection of this.#connections) {
      if (!this.#closed.has(connection)) await closeCleanly(connection).catch((error) => failures.push(error));
    }
    await this.#deleteEntities();
    if (failures.length > 0) throw failures[0];
  }

  async #deleteEntities() {
    if (this.#queues.length + this.#exchanges.length === 0) return;
    const connection = await openConnection(AMQP_URL);
    try {
      const channel = watch(await connection.createChannel());
      // Deleting a missing queue or exchange succeeds, so no existence check is needed.
      for (const queue of this.#queues) await channel.deleteQueue(queue);
      for (const exchange of this.#exchanges) await channel.deleteExchange(exchange);
    } finally {
      await closeCleanly(connection);
    }
  }
}

async function openConnection(url) {
  const connection = await within(amqp.connect(url), 'the connection to open');
  // A broker's connection.close surfaces as 'error' (crashing the process if
  // nobody listens); tests that expect one listen themselves.
  connection.on('error', () => {});
  return connection;
}

/**
 * Closes connection with the connection.close / close-ok handshake. amqplib's
 * close() never settles if the socket fails first, so this waits for the
 * connection's 'close' event, which carries the error in that case.
 */
export async function closeCleanly(connection) {
  const closed = once(connection, 'close');
  connection.close().catch(() => {}); // its outcome shows in the 'close' event
  let error;
  try {
    [error] = await within(closed, 'connection.close-ok');
  } catch (caught) {
    error = caught;
  }
  if (error) throw new Error(`the connection did not close cleanly: ${error.message}`);
}
