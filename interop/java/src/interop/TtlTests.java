package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Delivery;
import java.util.Map;

/** Message TTL: per queue (x-message-ttl) and per message (expiration), with and without dead lettering. */
final class TtlTests {
    private TtlTests() {}

    @Test
    static void queueMessageTtlDeadLettersExpiredMessages(Broker broker) throws Exception {
        Channel channel = broker.channel();
        DeadLetters.Target target = DeadLetters.declareTarget(broker, channel);
        Map<String, Object> arguments = target.queueArguments();
        arguments.put("x-message-ttl", 100);
        String queue = broker.declareQueue(channel, arguments);
        Inbox deadLetters = Inbox.consume(channel, target.queue(), true);
        Broker.publishConfirmed(channel, "", queue, "short-lived");

        Delivery dead = deadLetters.next("the expired message");
        Check.equal("short-lived", Inbox.text(dead), "expired message body");
        Map<String, Object> death = DeadLetters.checkDiedOnce(dead, "expired", queue, "", queue);
        Check.equal(null, death.get("original-expiration"), "original-expiration of a message without expiration");
        Check.equal(null, channel.basicGet(queue, true), "basic.get of the queue after the message expired");
    }

    @Test
    static void perMessageExpirationDeadLettersExpiredMessages(Broker broker) throws Exception {
        Channel channel = broker.channel();
        DeadLetters.Target target = DeadLetters.declareTarget(broker, channel);
        String queue = broker.declareQueue(channel, target.queueArguments());
        Inbox deadLetters = Inbox.consume(channel, target.queue(), true);
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().expiration("100").build();
        Broker.publishConfirmed(channel, "", queue, props, "short-lived");

        Delivery dead = deadLetters.next("the expired message");
        Check.equal("short-lived", Inbox.text(dead), "expired message body");
        Map<String, Object> death = DeadLetters.checkDiedOnce(dead, "expired", queue, "", queue);
        // Dead lettering moves the expiration into x-death, so the dead letter itself does not expire.
        Check.equal("100", death.get("original-expiration"), "x-death original-expiration");
        Check.equal(null, dead.getProperties().getExpiration(), "expiration property of the dead letter");
    }

    /**
     * Publishes body with these properties and waits for the queue to drop it once expired
     * (RabbitMQ removes expired messages from the head of a queue on a timer).
     * The TTLs used are long enough for the count to see the message before it expires.
     */
    private static void expectDropped(Channel channel, String queue, AMQP.BasicProperties props) throws Exception {
        Broker.publishConfirmed(channel, "", queue, props, "short-lived");
        Check.equal(1, Broker.readyCount(channel, queue), "messages before the message expires");
        Broker.waitUntil("the queue to drop the expired message", () -> Broker.readyCount(channel, queue) == 0);
    }

    @Test
    static void expiredMessageWithoutDeadLetterExchangeIsDropped(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.declareQueue(channel, null);
        expectDropped(channel, queue, new AMQP.BasicProperties.Builder().expiration("300").build());
    }

    @Test
    static void queueTtlCapsALongerMessageExpiration(Broker broker) throws Exception {
        Channel channel = broker.channel();
        // The lower of the queue's and the message's TTL applies.
        String queue = broker.declareQueue(channel, Map.of("x-message-ttl", 300));
        expectDropped(channel, queue, new AMQP.BasicProperties.Builder().expiration("60000").build());
    }
}
