package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.Envelope;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A consumer that hands its deliveries, and a broker-sent cancel, over to the
 * test thread, which waits for them with a bound.
 */
final class Inbox extends DefaultConsumer {
    private final BlockingQueue<Delivery> deliveries = new LinkedBlockingQueue<>();
    /** The tag basic.consume-ok gave (DefaultConsumer only learns it later, on the dispatch thread). */
    private String tag;
    /** Completed with the consumer tag when the broker cancels this consumer (basic.cancel from the server). */
    final CompletableFuture<String> cancelledByBroker = new CompletableFuture<>();

    private Inbox(Channel channel) {
        super(channel);
    }

    /** Starts consuming queue on channel. */
    static Inbox consume(Channel channel, String queue, boolean autoAck) throws IOException {
        Inbox inbox = new Inbox(channel);
        inbox.tag = channel.basicConsume(queue, autoAck, inbox);
        return inbox;
    }

    String tag() {
        return tag;
    }

    @Override
    public void handleDelivery(String consumerTag, Envelope envelope, AMQP.BasicProperties properties, byte[] body) {
        deliveries.add(new Delivery(envelope, properties, body));
    }

    @Override
    public void handleCancel(String consumerTag) {
        cancelledByBroker.complete(consumerTag);
    }

    /** The next delivery, failing after {@link Broker#TIMEOUT}; what names it in the failure. */
    Delivery next(String what) throws InterruptedException {
        Delivery delivery = deliveries.poll(Broker.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        if (delivery == null) {
            throw Check.fail("timed out after " + Broker.TIMEOUT.toSeconds() + " s waiting for " + what);
        }
        return delivery;
    }

    /** The next count deliveries, in the order the broker sent them. */
    List<Delivery> next(int count, String what) throws InterruptedException {
        List<Delivery> received = new ArrayList<>();
        while (received.size() < count) {
            received.add(next(what + " (" + received.size() + " of " + count + " received)"));
        }
        return received;
    }

    static String text(Delivery delivery) {
        return Broker.text(delivery.getBody());
    }
}
