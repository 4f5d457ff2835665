package interop;

import com.rabbitmq.client.Channel;
import java.util.Map;

/** Queue TTL (x-expires): an unused queue is deleted once the period has passed. */
final class QueueExpiryTests {
    private QueueExpiryTests() {}

    private static final int EXPIRES_MILLIS = 300;

    /**
     * Whether the default exchange still routes to queue: a mandatory publish comes
     * back before its confirm when it does not. Unlike a passive declare or basic.get,
     * publishing does not count as using the queue, so it does not renew the lease.
     */
    private static boolean routesTo(Channel channel, EventLog events, String queue) throws Exception {
        channel.basicPublish("", queue, true, null, Broker.utf8("probe"));
        String first = events.next("the confirm of a probe");
        if (first.startsWith("return")) {
            events.next("the confirm of a returned probe");
            return false;
        }
        return true;
    }

    /** Waits until queue is gone, and checks that it lasted its period after unusedSince (System.nanoTime()). */
    private static void waitForExpiry(Broker broker, String queue, long unusedSince, String what) throws Exception {
        Channel channel = broker.channel();
        EventLog events = new EventLog().recordConfirms(channel);
        channel.addReturnListener(returned -> events.add("return " + returned.getReplyText()));
        channel.confirmSelect();
        Broker.waitUntil(what, () -> !routesTo(channel, events, queue));
        long lastedMillis = (System.nanoTime() - unusedSince) / 1_000_000;
        Check.isTrue(lastedMillis >= EXPIRES_MILLIS, "the queue was gone " + lastedMillis + " ms after it became unused");
        Check.isTrue(!broker.queueExists(queue), "passive declare found the queue after publishes stopped routing to it");
    }

    @Test
    static void unusedQueueIsDeletedAfterItsExpiry(Broker broker) throws Exception {
        long declared = System.nanoTime();
        String queue = broker.declareQueue(broker.channel(), Map.of("x-expires", EXPIRES_MILLIS));
        waitForExpiry(broker, queue, declared, "the unused queue to expire");
    }

    @Test
    static void consumerKeepsQueueAliveUntilCancelled(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.declareQueue(channel, Map.of("x-expires", EXPIRES_MILLIS));
        Inbox.consume(channel, queue, true);
        // No event says "did not expire": wait out several periods, then look.
        Thread.sleep(3 * EXPIRES_MILLIS);
        Check.isTrue(broker.queueExists(queue), "the queue expired although it had a consumer");

        // Once unused again, the expiry period starts over.
        long unused = System.nanoTime();
        channel.close();
        waitForExpiry(broker, queue, unused, "the queue to expire after its consumer went away");
    }
}
