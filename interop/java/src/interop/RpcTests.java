package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.RpcClient;
import com.rabbitmq.client.StringRpcServer;
import java.io.IOException;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Request/reply: a server-named reply queue, direct reply-to, and the client's RpcClient and RpcServer. */
final class RpcTests {
    private RpcTests() {}

    private static final String DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";

    /**
     * Answers requests on its queue with the body upper-cased, sent to the request's
     * reply-to with its correlation id, and records each reply-to it saw.
     */
    private static final class Responder extends DefaultConsumer {
        final EventLog replyTos = new EventLog();
        final String queue;

        private Responder(Channel channel, String queue) {
            super(channel);
            this.queue = queue;
        }

        /** A new request queue with a responder on a channel of its own. */
        static Responder start(Broker broker) throws Exception {
            Channel channel = broker.channel();
            Responder responder = new Responder(channel, broker.declareQueue(channel, null));
            channel.basicConsume(responder.queue, true, responder);
            return responder;
        }

        @Override
        public void handleDelivery(String tag, Envelope envelope, AMQP.BasicProperties request, byte[] body)
                throws IOException {
            replyTos.add(request.getReplyTo());
            AMQP.BasicProperties reply = new AMQP.BasicProperties.Builder().correlationId(request.getCorrelationId()).build();
            getChannel().basicPublish("", request.getReplyTo(), reply, Broker.utf8(Broker.text(body).toUpperCase(Locale.ROOT)));
        }
    }

    private static AMQP.BasicProperties request(String replyTo, String correlationId) {
        return new AMQP.BasicProperties.Builder().replyTo(replyTo).correlationId(correlationId).build();
    }

    @Test
    static void replyComesBackOnServerNamedExclusiveQueue(Broker broker) throws Exception {
        Responder responder = Responder.start(broker);
        Channel channel = broker.channel();
        // Server-named, exclusive and auto-delete: it goes away with this connection.
        String replyQueue = channel.queueDeclare().getQueue();
        Check.isTrue(replyQueue.startsWith("amq.gen-"), "server-generated queue name " + replyQueue);
        Inbox replies = Inbox.consume(channel, replyQueue, true);

        channel.basicPublish("", responder.queue, request(replyQueue, "call-1"), Broker.utf8("ping"));
        Delivery reply = replies.next("the reply");
        Check.equal(replyQueue, responder.replyTos.next("the request"), "reply-to seen by the server");
        Check.equal("PING", Inbox.text(reply), "reply body");
        Check.equal("call-1", reply.getProperties().getCorrelationId(), "reply correlation id");
    }

    @Test
    static void replyComesBackOnDirectReplyTo(Broker broker) throws Exception {
        Responder responder = Responder.start(broker);
        Channel channel = broker.channel();
        // The pseudo-queue must be consumed, with auto-ack, before publishing with it as reply-to.
        Inbox replies = Inbox.consume(channel, DIRECT_REPLY_TO, true);

        for (String call : new String[] {"call-1", "call-2"}) {
            channel.basicPublish("", responder.queue, request(DIRECT_REPLY_TO, call), Broker.utf8("ping " + call));
            Delivery reply = replies.next("the reply to " + call);
            // The broker hands the server a routable name for this channel's reply consumer.
            String replyTo = responder.replyTos.next("the request " + call);
            Check.isTrue(replyTo.startsWith(DIRECT_REPLY_TO + "."), "reply-to seen by the server: " + replyTo);
            Check.equal("PING " + call.toUpperCase(Locale.ROOT), Inbox.text(reply), "reply body");
            Check.equal(call, reply.getProperties().getCorrelationId(), "reply correlation id");
            Check.equal(replyTo, reply.getEnvelope().getRoutingKey(), "routing key of the reply");
        }
    }

    @Test
    static void directReplyToMustBeConsumedWithAutoAck(Broker broker) throws Exception {
        Channel channel = broker.channel();
        Broker.expectChannelClose(406, "PRECONDITION_FAILED - reply consumer cannot acknowledge",
                () -> Inbox.consume(channel, DIRECT_REPLY_TO, false));
    }

    @Test
    static void directReplyToNeedsAConsumerBeforeThePublish(Broker broker) throws Exception {
        String requests = broker.declareQueue(broker.channel(), null);
        Channel channel = broker.channel();
        Broker.expectChannelClose(406, "PRECONDITION_FAILED - fast reply consumer does not exist", () -> {
            channel.basicPublish("", requests, request(DIRECT_REPLY_TO, "call-1"), Broker.utf8("ping"));
            // basic.publish has no reply: a synchronous method makes the channel error surface here.
            channel.basicQos(1);
        });
    }

    /**
     * The client's StringRpcServer answering upper-cased, on a request queue and channel
     * of its own. If a test fails before {@link #stop}, closing the test's connection stops it.
     */
    private static final class UpperCaseServer {
        final String queue;
        private final Channel channel;
        private final CompletableFuture<Void> serving;

        UpperCaseServer(Broker broker) throws Exception {
            channel = broker.channel();
            queue = broker.declareQueue(channel, null);
            StringRpcServer server = new StringRpcServer(channel, queue) {
                @Override
                public String handleStringCall(String request) {
                    return request.toUpperCase(Locale.ROOT);
                }
            };
            // mainloop serves requests until its channel closes.
            serving = CompletableFuture.runAsync(() -> {
                try {
                    server.mainloop();
                } catch (IOException e) {
                    throw new IllegalStateException("RpcServer mainloop failed", e);
                }
            });
        }

        void stop() throws Exception {
            channel.close();
            serving.get(Broker.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    @Test
    static void rpcClientCallsOverDirectReplyTo(Broker broker) throws Exception {
        UpperCaseServer server = new UpperCaseServer(broker);
        // RpcClient replies over direct reply-to unless given a reply queue.
        RpcClient client = new RpcClient(broker.channel(), "", server.queue, (int) Broker.TIMEOUT.toMillis());
        Check.equal("HELLO", client.stringCall("hello"), "RpcClient reply via direct reply-to");
        Check.equal("AGAIN", client.stringCall("again"), "second RpcClient reply via direct reply-to");
        client.close();
        server.stop();
    }

    @Test
    static void rpcClientCallsOverServerNamedQueue(Broker broker) throws Exception {
        UpperCaseServer server = new UpperCaseServer(broker);
        Channel channel = broker.channel();
        String replyQueue = channel.queueDeclare().getQueue();
        RpcClient client = new RpcClient(channel, "", server.queue, replyQueue, (int) Broker.TIMEOUT.toMillis());
        Check.equal("HELLO", client.stringCall("hello"), "RpcClient reply via a server-named queue");
        Check.equal("AGAIN", client.stringCall("again"), "second RpcClient reply via a server-named queue");
        client.close();
        server.stop();
    }
}
