package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Delivery;
import java.util.HashMap;
import java.util.Map;

/** Quorum queues: declaration rules, publish/consume/ack, and the delivery limit. */
final class QuorumQueueTests {
    private QuorumQueueTests() {}

    private static Map<String, Object> quorum() {
        Map<String, Object> arguments = new HashMap<>();
        arguments.put("x-queue-type", "quorum");
        return arguments;
    }

    /** Declares a durable quorum queue (deleted after the test) with these arguments added. */
    private static String declareQuorum(Broker broker, Channel channel, Map<String, Object> extra) throws Exception {
        Map<String, Object> arguments = quorum();
        arguments.putAll(extra);
        return channel.queueDeclare(broker.queueName(), true, false, false, arguments).getQueue();
    }

    /** A declaration with this durable/exclusive/auto-delete combination must fail with the property named. */
    private static void expectInvalidProperty(Broker broker, String property, boolean durable, boolean exclusive,
            boolean autoDelete) throws Exception {
        String queue = broker.queueName();
        Channel channel = broker.channel();
        Broker.expectChannelClose(406, "PRECONDITION_FAILED - invalid property '" + property + "' for queue '" + queue
                        + "' in vhost '" + broker.virtualHost() + "'",
                () -> channel.queueDeclare(queue, durable, exclusive, autoDelete, quorum()));
    }

    @Test
    static void quorumQueueMustBeDurable(Broker broker) throws Exception {
        expectInvalidProperty(broker, "non-durable", false, false, false);
    }

    @Test
    static void quorumQueueCannotBeExclusive(Broker broker) throws Exception {
        expectInvalidProperty(broker, "exclusive-owner", true, true, false);
    }

    @Test
    static void quorumQueueCannotBeAutoDelete(Broker broker) throws Exception {
        expectInvalidProperty(broker, "auto-delete", true, false, true);
    }

    @Test
    static void durableQuorumQueueDeliversAndHonoursAcks(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = declareQuorum(broker, channel, Map.of());
        Broker.publishConfirmed(channel, "", queue, "m1");
        Broker.publishConfirmed(channel, "", queue, "m2");

        Inbox inbox = Inbox.consume(channel, queue, false);
        var deliveries = inbox.next(2, "both messages");
        Check.equal("m1", Inbox.text(deliveries.get(0)), "first delivery");
        Check.equal("m2", Inbox.text(deliveries.get(1)), "second delivery");
        channel.basicAck(deliveries.get(0).getEnvelope().getDeliveryTag(), false);
        // Closing the channel returns the unacked m2 only.
        channel.close();

        Delivery left = Inbox.consume(broker.channel(), queue, true).next("the returned message");
        Check.equal("m2", Inbox.text(left), "message left after acking m1");
        Check.equal(true, left.getEnvelope().isRedeliver(), "redelivered flag of the returned message");
    }

    @Test
    static void messageRedeliveredBeyondTheDeliveryLimitIsDeadLettered(Broker broker) throws Exception {
        Channel channel = broker.channel();
        DeadLetters.Target target = DeadLetters.declareTarget(broker, channel);
        Map<String, Object> arguments = target.queueArguments();
        arguments.put("x-delivery-limit", 1);
        String queue = declareQuorum(broker, channel, arguments);
        Broker.publishConfirmed(channel, "", queue, "poison");
        Inbox deadLetters = Inbox.consume(broker.channel(), target.queue(), true);

        Inbox inbox = Inbox.consume(channel, queue, false);
        Delivery first = inbox.next("the first delivery");
        Check.equal(null, header(first, "x-delivery-count"), "x-delivery-count of the first delivery");
        channel.basicNack(first.getEnvelope().getDeliveryTag(), false, true);

        Delivery second = inbox.next("the redelivery");
        Check.equal(true, second.getEnvelope().isRedeliver(), "redelivered flag of the redelivery");
        Check.equal(1L, header(second, "x-delivery-count"), "x-delivery-count of the redelivery");
        // A second return exceeds the limit of 1: the message is dead-lettered instead of redelivered.
        channel.basicNack(second.getEnvelope().getDeliveryTag(), false, true);

        Delivery dead = deadLetters.next("the dead-lettered message");
        Check.equal("poison", Inbox.text(dead), "body of the dead-lettered message");
        DeadLetters.checkDiedOnce(dead, "delivery_limit", queue, "", queue);
    }

    private static Object header(Delivery delivery, String name) {
        Map<String, Object> headers = delivery.getProperties().getHeaders();
        Object value = headers == null ? null : headers.get(name);
        // The broker may encode the count as any integer type.
        return value instanceof Number number ? (Object) number.longValue() : value;
    }
}
