package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Delivery;
import java.util.List;
import java.util.Map;

/** Queue length limits with x-overflow=reject-publish-dlx: refuse the newest, nack and dead-letter it. */
final class OverflowTests {
    private OverflowTests() {}

    @Test
    static void rejectPublishDlxNacksAndDeadLettersTheOverflow(Broker broker) throws Exception {
        Channel channel = broker.channel();
        DeadLetters.Target target = DeadLetters.declareTarget(broker, channel);
        Map<String, Object> arguments = target.queueArguments();
        arguments.put("x-max-length", 1);
        arguments.put("x-overflow", "reject-publish-dlx");
        String queue = broker.declareQueue(channel, arguments);
        Inbox deadLetters = Inbox.consume(broker.channel(), target.queue(), true);

        EventLog confirms = new EventLog().recordConfirms(channel);
        channel.confirmSelect();
        channel.basicPublish("", queue, null, Broker.utf8("fits"));
        channel.basicPublish("", queue, null, Broker.utf8("overflows"));
        Check.equal("ack 1", confirms.next("the confirm of the first message"), "confirm of the message that fits");
        // With 1 already acked, a multiple nack of 2 says the same as a single one.
        String nack = confirms.next("the confirm of the second message");
        Check.isTrue(List.of("nack 2", "nack 2 multiple").contains(nack), "confirm of the message over the limit: " + nack);

        Delivery dead = deadLetters.next("the rejected message");
        Check.equal("overflows", Inbox.text(dead), "body of the dead-lettered message");
        DeadLetters.checkDiedOnce(dead, "maxlen", queue, "", queue);
        Check.equal(List.of("fits"), Broker.drain(channel, queue), "messages kept in the full queue");
    }
}
