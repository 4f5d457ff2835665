package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.ShutdownSignalException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeoutException;

/**
 * One test's view of the broker named by AMQP_URL: opens connections, hands out
 * unique queue and exchange names, and deletes those entities when the test ends,
 * since the broker (a shared RabbitMQ in particular) outlives the test.
 */
final class Broker implements AutoCloseable {
    /** Upper bound for any single broker event a test waits for. */
    static final Duration TIMEOUT = Duration.ofSeconds(5);

    /** Something done against the broker that may throw any checked exception. */
    @FunctionalInterface
    interface Action {
        void run() throws Exception;
    }

    private final String url;
    /** Made up front so that cleanup never fails on the URL. */
    private final ConnectionFactory cleanupFactory;
    private final List<Connection> connections = new ArrayList<>();
    private final List<String> queues = new ArrayList<>();
    private final List<String> exchanges = new ArrayList<>();
    private Connection connection;

    Broker(String url) throws Exception {
        this.url = url;
        this.cleanupFactory = factory();
    }

    /** A factory for AMQP_URL, ready for a test to adjust before {@link #connect}. */
    ConnectionFactory factory() throws Exception {
        ConnectionFactory factory = new ConnectionFactory();
        factory.setUri(url);
        // A test sees every failure as it happens instead of the client reconnecting behind its back.
        factory.setAutomaticRecoveryEnabled(false);
        int timeoutMillis = (int) TIMEOUT.toMillis();
        factory.setConnectionTimeout(timeoutMillis);
        factory.setHandshakeTimeout(timeoutMillis);
        // A broker that never answers a synchronous method fails the test instead of hanging it.
        factory.setChannelRpcTimeout(timeoutMillis);
        return factory;
    }

    String virtualHost() {
        return cleanupFactory.getVirtualHost();
    }

    /** A new connection from factory, closed when the test ends. */
    Connection connect(ConnectionFactory factory) throws Exception {
        Connection opened = factory.newConnection();
        connections.add(opened);
        return opened;
    }

    /** The test's default connection, opened on first use. */
    Connection connection() throws Exception {
        if (connection == null) {
            connection = connect(factory());
        }
        return connection;
    }

    Channel channel() throws Exception {
        return connection().createChannel();
    }

    /** A name no other test, run or user of a shared broker has; the queue is deleted afterwards. */
    String queueName() {
        queues.add(unique("q"));
        return queues.get(queues.size() - 1);
    }

    /** A name for an exchange; the exchange is deleted afterwards. */
    String exchangeName() {
        exchanges.add(unique("x"));
        return exchanges.get(exchanges.size() - 1);
    }

    static String unique(String kind) {
        return "interop.java." + kind + "." + UUID.randomUUID().toString().substring(0, 12);
    }

    /** Declares a non-durable, non-exclusive queue with these arguments (may be null). */
    String declareQueue(Channel channel, Map<String, Object> arguments) throws IOException {
        return channel.queueDeclare(queueName(), false, false, false, arguments).getQueue();
    }

    /** Declares a non-durable exchange of this type (direct, fanout, topic, headers). */
    String declareExchange(Channel channel, String type) throws IOException {
        String exchange = exchangeName();
        channel.exchangeDeclare(exchange, type);
        return exchange;
    }

    /**
     * Publishes and waits for the broker's confirm, so that the message has been
     * routed (and enqueued) before the test looks at queues. Puts the channel
     * into confirm mode on first use.
     */
    static void publishConfirmed(Channel channel, String exchange, String routingKey, AMQP.BasicProperties props, String body)
            throws Exception {
        // The client numbers publishes only once confirm.select has been sent.
        if (channel.getNextPublishSeqNo() == 0) {
            channel.confirmSelect();
        }
        channel.basicPublish(exchange, routingKey, props, utf8(body));
        channel.waitForConfirmsOrDie(TIMEOUT.toMillis());
    }

    static void publishConfirmed(Channel channel, String exchange, String routingKey, String body) throws Exception {
        publishConfirmed(channel, exchange, routingKey, null, body);
    }

    /**
     * Messages ready in queue, from queue.declare-ok. RabbitMQ answers that ahead of
     * acks, rejects and nacks still on their way to the queue, so use it after
     * confirmed publishes only; basic.get has no such shortcut.
     */
    static int readyCount(Channel channel, String queue) throws IOException {
        return channel.queueDeclarePassive(queue).getMessageCount();
    }

    /** Bodies of all ready messages in queue, removed with basic.get and auto-ack. */
    static List<String> drain(Channel channel, String queue) throws IOException {
        List<String> bodies = new ArrayList<>();
        for (var response = channel.basicGet(queue, true); response != null; response = channel.basicGet(queue, true)) {
            bodies.add(text(response.getBody()));
        }
        return bodies;
    }

    /** Whether queue exists, probed with a passive declare on a channel of its own (a 404 closes it). */
    boolean queueExists(String queue) throws Exception {
        Channel probe = channel();
        try {
            probe.queueDeclarePassive(queue);
        } catch (IOException e) {
            checkChannelClose(e, 404, "NOT_FOUND - no queue '" + queue + "' in vhost '" + virtualHost() + "'");
            return false;
        }
        probe.close();
        return true;
    }

    /** Polls condition until it holds, failing after {@link #TIMEOUT}; for state no event announces. */
    static void waitUntil(String what, Callable<Boolean> condition) throws Exception {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!condition.call()) {
            if (System.nanoTime() > deadline) {
                throw Check.fail("timed out after " + TIMEOUT.toSeconds() + " s waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    /** Runs action, expecting the broker to close its channel with exactly this code and text. */
    static ShutdownSignalException expectChannelClose(int code, String text, Action action) throws Exception {
        try {
            action.run();
        } catch (IOException | ShutdownSignalException e) {
            return checkChannelClose(e, code, text);
        }
        throw Check.fail("expected the broker to close the channel with " + code + " " + text + ", but it did not");
    }

    private static ShutdownSignalException checkChannelClose(Exception e, int code, String text) {
        ShutdownSignalException signal = shutdownSignal(e);
        Check.isTrue(!signal.isHardError(), "expected a channel close but the connection was closed: " + signal.getReason());
        AMQP.Channel.Close close = (AMQP.Channel.Close) signal.getReason();
        Check.equal(code + " " + text, close.getReplyCode() + " " + close.getReplyText(), "channel.close");
        return signal;
    }

    /** The broker's close behind e: the client wraps it in an IOException for synchronous methods. */
    static ShutdownSignalException shutdownSignal(Exception e) {
        if (e instanceof ShutdownSignalException signal) {
            return signal;
        }
        if (e.getCause() instanceof ShutdownSignalException signal) {
            return signal;
        }
        throw new AssertionError("expected the broker to close the channel or connection, got " + e, e);
    }

    static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    static String text(byte[] body) {
        return new String(body, StandardCharsets.UTF_8);
    }

    /**
     * Closes the test's connections, then deletes what the test declared on a fresh
     * connection (the test's own may have been closed by an error, and a queue that is
     * exclusive to one of them cannot be deleted from elsewhere while it is open).
     */
    @Override
    public void close() throws IOException, TimeoutException {
        try {
            for (Connection opened : connections) {
                // The broker may have closed it already, answering an error.
                if (opened.isOpen()) {
                    opened.close((int) TIMEOUT.toMillis());
                }
            }
        } finally {
            deleteDeclared();
        }
    }

    private void deleteDeclared() throws IOException, TimeoutException {
        if (queues.isEmpty() && exchanges.isEmpty()) {
            return;
        }
        try (Connection cleanup = cleanupFactory.newConnection()) {
            Channel channel = cleanup.createChannel();
            // Deleting a missing queue or exchange succeeds in RabbitMQ: no existence check needed.
            for (String queue : queues) {
                channel.queueDelete(queue);
            }
            for (String exchange : exchanges) {
                channel.exchangeDelete(exchange);
            }
        }
    }
}
