package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.GetResponse;
import java.util.Map;

/** Dead lettering of rejected and nacked messages (x-dead-letter-exchange, x-dead-letter-routing-key). */
final class DeadLetterTests {
    private DeadLetterTests() {}

    @Test
    static void rejectedMessageIsDeadLetteredUnderTheConfiguredRoutingKey(Broker broker) throws Exception {
        Channel channel = broker.channel();
        DeadLetters.Target target = DeadLetters.declareTarget(broker, channel);
        Map<String, Object> arguments = target.queueArguments();
        arguments.put("x-dead-letter-routing-key", "dead");
        String queue = broker.declareQueue(channel, arguments);
        String exchange = broker.declareExchange(channel, "direct");
        channel.queueBind(queue, exchange, "work");
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .correlationId("c-1").headers(Map.of("app", "test")).build();
        Broker.publishConfirmed(channel, exchange, "work", props, "job");

        GetResponse job = channel.basicGet(queue, false);
        channel.basicReject(job.getEnvelope().getDeliveryTag(), false);

        Delivery dead = Inbox.consume(channel, target.queue(), true).next("the dead-lettered message");
        Check.equal("job", Inbox.text(dead), "dead letter body");
        Check.equal(target.exchange(), dead.getEnvelope().getExchange(), "exchange a dead letter is delivered from");
        Check.equal("dead", dead.getEnvelope().getRoutingKey(), "routing key of the dead letter");
        Check.equal(false, dead.getEnvelope().isRedeliver(), "redelivered flag of the dead letter");
        Check.equal("c-1", dead.getProperties().getCorrelationId(), "correlation id kept by dead lettering");
        Check.equal("test", dead.getProperties().getHeaders().get("app"), "publisher's header kept by dead lettering");
        DeadLetters.checkDiedOnce(dead, "rejected", queue, exchange, "work");
        Check.equal(null, channel.basicGet(queue, false), "basic.get of the source queue after the reject");
    }

    @Test
    static void nackedMessagesAreDeadLetteredUnderTheirOwnRoutingKey(Broker broker) throws Exception {
        Channel channel = broker.channel();
        DeadLetters.Target target = DeadLetters.declareTarget(broker, channel);
        String queue = broker.declareQueue(channel, target.queueArguments());
        Broker.publishConfirmed(channel, "", queue, "m1");
        Broker.publishConfirmed(channel, "", queue, "m2");

        Inbox source = Inbox.consume(channel, queue, false);
        var deliveries = source.next(2, "the two messages");
        channel.basicNack(deliveries.get(1).getEnvelope().getDeliveryTag(), true, false);

        Inbox deadLetters = Inbox.consume(channel, target.queue(), true);
        for (String body : new String[] {"m1", "m2"}) {
            Delivery dead = deadLetters.next("dead letter " + body);
            Check.equal(body, Inbox.text(dead), "dead letters in nack order");
            // Without x-dead-letter-routing-key the message keeps the key it was published with.
            Check.equal(queue, dead.getEnvelope().getRoutingKey(), "routing key of dead letter " + body);
            DeadLetters.checkDiedOnce(dead, "rejected", queue, "", queue);
        }
    }
}
