package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.GetResponse;
import java.util.List;

/** Consuming with manual acks, prefetch, basic.get, multiple acks and the redelivered flag. */
final class ConsumeTests {
    private ConsumeTests() {}

    /** A new queue holding these messages, in order. */
    private static String queueHolding(Broker broker, Channel channel, List<String> bodies) throws Exception {
        String queue = broker.declareQueue(channel, null);
        for (String body : bodies) {
            Broker.publishConfirmed(channel, "", queue, body);
        }
        return queue;
    }

    @Test
    static void manualAckConsumerGetsMessagesInOrder(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = queueHolding(broker, channel, List.of("m1", "m2", "m3"));
        Inbox inbox = Inbox.consume(channel, queue, false);
        List<Delivery> deliveries = inbox.next(3, "the three messages");
        for (int i = 0; i < 3; i++) {
            Delivery delivery = deliveries.get(i);
            Check.equal("m" + (i + 1), Inbox.text(delivery), "body of delivery " + (i + 1));
            Check.equal((long) i + 1, delivery.getEnvelope().getDeliveryTag(), "delivery tag of delivery " + (i + 1));
            Check.equal(false, delivery.getEnvelope().isRedeliver(), "redelivered flag of a first delivery");
            Check.equal(queue, delivery.getEnvelope().getRoutingKey(), "routing key");
            channel.basicAck(delivery.getEnvelope().getDeliveryTag(), false);
        }
    }

    @Test
    static void prefetchLimitsUnackedDeliveries(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = queueHolding(broker, channel, List.of("m1", "m2", "m3", "m4", "m5"));
        channel.basicQos(2);
        Inbox inbox = Inbox.consume(channel, queue, false);
        List<Delivery> firstTwo = inbox.next(2, "the first two messages");
        // Nothing beyond the prefetch left the queue (the count excludes delivered messages).
        Check.equal(3, Broker.readyCount(broker.channel(), queue), "messages still ready with 2 unacked");

        channel.basicAck(firstTwo.get(0).getEnvelope().getDeliveryTag(), false);
        Check.equal("m3", Inbox.text(inbox.next("the delivery freed by one ack")), "body after one ack");
        Check.equal(2, Broker.readyCount(broker.channel(), queue), "messages still ready after one ack");
    }

    @Test
    static void basicGetReportsRemainingMessages(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = queueHolding(broker, channel, List.of("m1", "m2"));
        GetResponse first = channel.basicGet(queue, false);
        Check.equal("m1", Broker.text(first.getBody()), "first basic.get");
        Check.equal(1, first.getMessageCount(), "message_count after the first basic.get");
        Check.equal(false, first.getEnvelope().isRedeliver(), "redelivered flag of the first basic.get");
        GetResponse second = channel.basicGet(queue, false);
        Check.equal("m2", Broker.text(second.getBody()), "second basic.get");
        Check.equal(0, second.getMessageCount(), "message_count after the second basic.get");
        Check.equal(null, channel.basicGet(queue, false), "basic.get of an empty queue (get-empty)");
        channel.basicAck(second.getEnvelope().getDeliveryTag(), true);
    }

    @Test
    static void ackMultipleSettlesEarlierDeliveriesOnly(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = queueHolding(broker, channel, List.of("m1", "m2", "m3"));
        Inbox inbox = Inbox.consume(channel, queue, false);
        List<Delivery> deliveries = inbox.next(3, "the three messages");
        channel.basicAck(deliveries.get(1).getEnvelope().getDeliveryTag(), true);
        // Closing the channel requeues what is still unacked, in queue order and flagged
        // as redelivered: so m3 coming first shows that m1 and m2 were settled.
        channel.close();
        Delivery left = Inbox.consume(broker.channel(), queue, true).next("the requeued message");
        Check.equal("m3", Inbox.text(left), "first message consumed after acking m2 with multiple");
        Check.equal(true, left.getEnvelope().isRedeliver(), "redelivered flag of the requeued message");
    }
}
