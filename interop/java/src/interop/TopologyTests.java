package interop;

import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import java.util.List;
import java.util.Map;

/** Declaring and binding exchanges and queues, routing by each exchange type, and declare errors. */
final class TopologyTests {
    private TopologyTests() {}

    @Test
    static void directExchangeRoutesByExactKey(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String exchange = broker.declareExchange(channel, "direct");
        String red = broker.declareQueue(channel, null);
        String redAndGreen = broker.declareQueue(channel, null);
        channel.queueBind(red, exchange, "red");
        channel.queueBind(redAndGreen, exchange, "red");
        channel.queueBind(redAndGreen, exchange, "green");

        for (String key : List.of("red", "green", "blue", "Red")) {
            Broker.publishConfirmed(channel, exchange, key, key);
        }
        Check.equal(List.of("red"), Broker.drain(channel, red), "messages in the queue bound to red");
        Check.equal(List.of("red", "green"), Broker.drain(channel, redAndGreen), "messages in the queue bound to red and green");
    }

    @Test
    static void fanoutExchangeIgnoresRoutingKey(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String exchange = broker.declareExchange(channel, "fanout");
        String first = broker.declareQueue(channel, null);
        String second = broker.declareQueue(channel, null);
        channel.queueBind(first, exchange, "");
        channel.queueBind(second, exchange, "some-key");

        Broker.publishConfirmed(channel, exchange, "any", "one");
        Broker.publishConfirmed(channel, exchange, "", "two");
        Check.equal(List.of("one", "two"), Broker.drain(channel, first), "messages in the first queue");
        Check.equal(List.of("one", "two"), Broker.drain(channel, second), "messages in the second queue");
    }

    @Test
    static void topicExchangeMatchesWordPatterns(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String exchange = broker.declareExchange(channel, "topic");
        String orange = broker.declareQueue(channel, null);
        String rabbitOrLazy = broker.declareQueue(channel, null);
        channel.queueBind(orange, exchange, "*.orange.*");
        channel.queueBind(rabbitOrLazy, exchange, "*.*.rabbit");
        channel.queueBind(rabbitOrLazy, exchange, "lazy.#");

        List<String> keys = List.of("quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox",
                "lazy.pink.rabbit", "quick.brown.fox", "lazy", "quick.orange.male.rabbit", "orange");
        for (String key : keys) {
            Broker.publishConfirmed(channel, exchange, key, key);
        }
        Check.equal(List.of("quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"),
                Broker.drain(channel, orange), "messages matching *.orange.*");
        // lazy.pink.rabbit matches both bindings of the queue but is enqueued once; # matches zero words too.
        Check.equal(List.of("quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox", "lazy.pink.rabbit", "lazy"),
                Broker.drain(channel, rabbitOrLazy), "messages matching *.*.rabbit or lazy.#");
    }

    @Test
    static void headersExchangeMatchesAllOrAny(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String exchange = broker.declareExchange(channel, "headers");
        String all = broker.declareQueue(channel, null);
        String any = broker.declareQueue(channel, null);
        String allByDefault = broker.declareQueue(channel, null);
        channel.queueBind(all, exchange, "", Map.of("x-match", "all", "format", "pdf", "type", "report"));
        channel.queueBind(any, exchange, "", Map.of("x-match", "any", "format", "pdf", "type", "report"));
        channel.queueBind(allByDefault, exchange, "", Map.of("format", "pdf", "type", "report"));

        publishWithHeaders(channel, exchange, "pdf report", Map.of("format", "pdf", "type", "report"));
        publishWithHeaders(channel, exchange, "pdf only", Map.of("format", "pdf"));
        publishWithHeaders(channel, exchange, "zip log", Map.of("format", "zip", "type", "log"));
        publishWithHeaders(channel, exchange, "no headers", Map.of());
        Check.equal(List.of("pdf report"), Broker.drain(channel, all), "messages matching x-match=all");
        Check.equal(List.of("pdf report", "pdf only"), Broker.drain(channel, any), "messages matching x-match=any");
        Check.equal(List.of("pdf report"), Broker.drain(channel, allByDefault), "messages matching without x-match");
    }

    private static void publishWithHeaders(Channel channel, String exchange, String body, Map<String, Object> headers)
            throws Exception {
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().headers(headers).build();
        Broker.publishConfirmed(channel, exchange, "ignored", props, body);
    }

    @Test
    static void passiveDeclareOfMissingQueueIs404(Broker broker) throws Exception {
        Channel channel = broker.channel();
        String queue = broker.queueName();
        Broker.expectChannelClose(404, "NOT_FOUND - no queue '" + queue + "' in vhost '" + broker.virtualHost() + "'",
                () -> channel.queueDeclarePassive(queue));
        Check.isTrue(!channel.isOpen(), "the channel is still open after the 404");
        Check.isTrue(broker.connection().isOpen(), "the 404 closed the connection too");
    }

    @Test
    static void inequivalentQueueRedeclareIs406(Broker broker) throws Exception {
        String queue = broker.declareQueue(broker.channel(), null);
        Channel channel = broker.channel();
        Broker.expectChannelClose(406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '" + queue
                        + "' in vhost '" + broker.virtualHost() + "': received 'true' but current is 'false'",
                () -> channel.queueDeclare(queue, true, false, false, null));
    }

    @Test
    static void inequivalentExchangeRedeclareIs406(Broker broker) throws Exception {
        String exchange = broker.declareExchange(broker.channel(), "direct");
        Channel channel = broker.channel();
        Broker.expectChannelClose(406, "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '" + exchange
                        + "' in vhost '" + broker.virtualHost() + "': received 'fanout' but current is 'direct'",
                () -> channel.exchangeDeclare(exchange, "fanout"));
    }
}
