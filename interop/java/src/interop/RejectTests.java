package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.GetResponse;
import java.util.ArrayList;
import java.util.List;

/** basic.nack and basic.reject, with and without requeue (no dead lettering configured). */
final class RejectTests {
    private RejectTests() {}

    /** Publishes m1..m{count} to queue and takes them all, unacked, with basic.get. */
    private static List<GetResponse> publishAndGet(Channel channel, String queue, int count) throws Exception {
        List<GetResponse> responses = new ArrayList<>();
        for (int i = 1; i <= count; i++) {
            Broker.publishConfirmed(channel, "", queue, "m" + i);
        }
        for (int i = 1; i <= count; i++) {
            GetResponse response = channel.basicGet(queue, false);
            Check.isTrue(response != null, "message m" + i + " is missing");
            responses.add(response);
        }
        return responses;
    }

    @Test
    static void requeuedMessagesComeBackRedeliveredInOriginalOrder(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.declareQueue(channel, null);
        List<GetResponse> got = publishAndGet(channel, queue, 4);
        // Settle out of order: m3 by reject, then m1, m2 and m4 with one multiple nack.
        channel.basicReject(got.get(2).getEnvelope().getDeliveryTag(), true);
        channel.basicNack(got.get(3).getEnvelope().getDeliveryTag(), true, true);

        Inbox inbox = Inbox.consume(channel, queue, true);
        for (int i = 1; i <= 4; i++) {
            var delivery = inbox.next("requeued message " + i);
            Check.equal("m" + i, Inbox.text(delivery), "body of redelivery " + i);
            Check.equal(true, delivery.getEnvelope().isRedeliver(), "redelivered flag of m" + i);
        }
    }

    @Test
    static void rejectedAndNackedMessagesWithoutRequeueAreDropped(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.declareQueue(channel, null);
        List<GetResponse> got = publishAndGet(channel, queue, 3);
        channel.basicReject(got.get(0).getEnvelope().getDeliveryTag(), false);
        channel.basicNack(got.get(2).getEnvelope().getDeliveryTag(), true, false);
        // basic.get queues up behind the reject and nack on this channel.
        Check.equal(null, channel.basicGet(queue, false), "basic.get after rejecting everything without requeue");
        // Nor are they still unacked: closing the channel would requeue those ahead of m4.
        Broker.publishConfirmed(channel, "", queue, "m4");
        channel.close();
        var first = Inbox.consume(broker.channel(), queue, true).next("m4");
        Check.equal("m4", Inbox.text(first), "first message after the channel closed");
        Check.equal(false, first.getEnvelope().isRedeliver(), "redelivered flag of m4");
    }
}
