package interop;

import com.rabbitmq.client.Channel;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Consumer cancel notification: the broker sends basic.cancel when a consumer's queue goes away. */
final class ConsumerCancelTests {
    private ConsumerCancelTests() {}

    @Test
    static void deletingTheQueueCancelsItsConsumer(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.declareQueue(channel, null);
        Inbox inbox = Inbox.consume(channel, queue, false);
        String consumerTag = inbox.tag();

        broker.channel().queueDelete(queue);
        try {
            String cancelled = inbox.cancelledByBroker.get(Broker.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            Check.equal(consumerTag, cancelled, "consumer tag of the broker's basic.cancel");
        } catch (TimeoutException e) {
            throw Check.fail("no basic.cancel within " + Broker.TIMEOUT.toSeconds() + " s of deleting the queue");
        }
        // Losing a consumer is not an error: the channel stays open and usable.
        Check.isTrue(channel.isOpen(), "the consumer's channel closed");
        broker.declareQueue(channel, null);
    }
}
