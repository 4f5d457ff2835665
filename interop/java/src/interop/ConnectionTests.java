package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.AuthenticationFailureException;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.GetResponse;
import com.rabbitmq.client.ShutdownSignalException;
import java.io.IOException;
import java.util.List;
import java.util.Map;

/** Connection negotiation: server properties, tuning, authentication and vhost access. */
final class ConnectionTests {
    private ConnectionTests() {}

    /** The capabilities RabbitMQ advertises in connection.start; clients enable features by them. */
    private static final List<String> CAPABILITIES = List.of(
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "consumer_priorities",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to");

    @Test
    static void serverPropertiesAdvertiseCapabilities(Broker broker) throws Exception {
        Map<String, Object> properties = broker.connection().getServerProperties();
        for (String key : List.of("product", "version", "platform", "copyright", "information")) {
            Object value = properties.get(key);
            Check.isTrue(value != null && !value.toString().isEmpty(), "server property " + key + " is missing or empty");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> capabilities = (Map<String, Object>) properties.get("capabilities");
        Check.isTrue(capabilities != null, "server properties have no capabilities table");
        List<String> missing = CAPABILITIES.stream().filter(name -> !Boolean.TRUE.equals(capabilities.get(name))).toList();
        Check.equal(List.of(), missing, "capabilities not advertised as true");
    }

    @Test
    static void defaultTuningIsRabbitMqs(Broker broker) throws Exception {
        // The client asks for heartbeat 60, channel_max 2047 and no frame_max limit, and
        // takes the lower of each pair: so these are RabbitMQ's connection.tune defaults.
        Connection connection = broker.connection();
        Check.equal(131072, connection.getFrameMax(), "frame_max");
        Check.equal(2047, connection.getChannelMax(), "channel_max");
        Check.equal(60, connection.getHeartbeat(), "heartbeat");
    }

    @Test
    static void requestedTuningIsNegotiatedAndHonoured(Broker broker) throws Exception {
        ConnectionFactory factory = broker.factory();
        factory.setRequestedHeartbeat(7);
        factory.setRequestedFrameMax(8192);
        factory.setRequestedChannelMax(10);
        Connection connection = broker.connect(factory);
        Check.equal(8192, connection.getFrameMax(), "frame_max");
        Check.equal(10, connection.getChannelMax(), "channel_max");
        Check.equal(7, connection.getHeartbeat(), "heartbeat");

        // The highest channel number allowed still works, and a body of several
        // frames of the negotiated size arrives whole in both directions.
        Channel channel = connection.createChannel(10);
        String queue = broker.declareQueue(channel, null);
        String body = "x".repeat(50_000);
        Broker.publishConfirmed(channel, "", queue, body);
        GetResponse response = channel.basicGet(queue, true);
        Check.isTrue(response != null, "the 50 kB message was not enqueued");
        Check.equal(body, Broker.text(response.getBody()), "50 kB body after the round trip");
    }

    @Test
    static void wrongPasswordIsRefused(Broker broker) throws Exception {
        ConnectionFactory factory = broker.factory();
        factory.setPassword("wrong-password");
        expectLoginRefused(broker, factory);
    }

    @Test
    static void unknownUserIsRefused(Broker broker) throws Exception {
        ConnectionFactory factory = broker.factory();
        factory.setUsername(Broker.unique("user"));
        expectLoginRefused(broker, factory);
    }

    /** RabbitMQ closes with 403 (authentication_failure_close) rather than dropping the socket. */
    private static void expectLoginRefused(Broker broker, ConnectionFactory factory) throws Exception {
        try {
            broker.connect(factory);
        } catch (AuthenticationFailureException e) {
            Check.equal("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                    + "For details see the broker logfile.", e.getMessage(), "authentication failure");
            return;
        }
        throw Check.fail("the broker accepted bad credentials");
    }

    @Test
    static void unknownVirtualHostIsRefused(Broker broker) throws Exception {
        ConnectionFactory factory = broker.factory();
        String vhost = Broker.unique("vhost");
        factory.setVirtualHost(vhost);
        try {
            broker.connect(factory);
        } catch (IOException e) {
            ShutdownSignalException signal = Broker.shutdownSignal(e);
            Check.isTrue(signal.isHardError(), "expected a connection close, got " + signal.getReason());
            AMQP.Connection.Close close = (AMQP.Connection.Close) signal.getReason();
            Check.equal("530 NOT_ALLOWED - vhost " + vhost + " not found",
                    close.getReplyCode() + " " + close.getReplyText(), "connection.close");
            return;
        }
        throw Check.fail("the broker opened unknown vhost " + vhost);
    }
}
