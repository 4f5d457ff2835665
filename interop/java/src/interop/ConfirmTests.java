package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import java.util.List;

/** Publisher confirms (waitForConfirms and ConfirmListener) and mandatory returns. */
final class ConfirmTests {
    private ConfirmTests() {}

    @Test
    static void waitForConfirmsOrDieReturnsOnceAllAreConfirmed(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.declareQueue(channel, null);
        Check.equal(0L, channel.getNextPublishSeqNo(), "sequence number before confirm.select");
        channel.confirmSelect();
        for (int i = 1; i <= 20; i++) {
            Check.equal((long) i, channel.getNextPublishSeqNo(), "sequence number of publish " + i);
            channel.basicPublish("", queue, null, Broker.utf8("m" + i));
        }
        channel.waitForConfirmsOrDie(Broker.TIMEOUT.toMillis());
        Check.equal(20, Broker.readyCount(channel, queue), "messages in the queue once confirmed");
    }

    @Test
    static void confirmListenerIsToldOfEveryPublish(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.declareQueue(channel, null);
        EventLog confirms = new EventLog().recordConfirms(channel);
        channel.confirmSelect();
        for (int i = 1; i <= 50; i++) {
            channel.basicPublish("", queue, null, Broker.utf8("m" + i));
        }
        // The broker may fold several acks into one with multiple set; each tag is covered once, in order.
        long covered = 0;
        while (covered < 50) {
            String event = confirms.next("confirms beyond tag " + covered);
            String[] parts = event.split(" ");
            Check.equal("ack", parts[0], "confirm after tag " + covered + " (" + event + ")");
            long tag = Long.parseLong(parts[1]);
            boolean multiple = parts.length == 3;
            Check.isTrue(multiple ? tag > covered : tag == covered + 1, "confirm '" + event + "' after tag " + covered);
            covered = tag;
        }
        Check.equal(List.of(), confirms.pending(), "confirms after tag 50");
    }

    @Test
    static void unroutableMandatoryMessageIsReturnedBeforeItsAck(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String exchange = broker.declareExchange(channel, "direct");
        EventLog events = new EventLog().recordConfirms(channel);
        channel.addReturnListener(returned -> events.add(String.join(" | ", "return",
                returned.getReplyCode() + " " + returned.getReplyText(), returned.getExchange(),
                returned.getRoutingKey(), returned.getProperties().getCorrelationId(), Broker.text(returned.getBody()))));
        channel.confirmSelect();

        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().correlationId("c-1").build();
        channel.basicPublish(exchange, "nowhere", true, props, Broker.utf8("lost"));
        Check.equal(String.join(" | ", "return", "312 NO_ROUTE", exchange, "nowhere", "c-1", "lost"),
                events.next("the return"), "first event after publishing an unroutable mandatory message");
        // An unroutable message is still confirmed (acked), after its return.
        Check.equal("ack 1", events.next("the confirm"), "second event after publishing an unroutable mandatory message");

        // Without mandatory the broker drops it silently: an ack and no return.
        channel.basicPublish(exchange, "nowhere", false, props, Broker.utf8("dropped"));
        Check.equal("ack 2", events.next("the confirm"), "event after publishing an unroutable non-mandatory message");
        Check.equal(List.of(), events.pending(), "events after that ack");
    }
}
