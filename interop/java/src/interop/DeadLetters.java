package interop;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Delivery;
import com.rabbitmq.client.LongString;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** RabbitMQ's dead lettering: somewhere to dead-letter to, and checks of the headers it adds. */
final class DeadLetters {
    private DeadLetters() {}

    /** A fanout exchange to dead-letter to and the queue bound to it, where dead letters end up. */
    record Target(String exchange, String queue) {
        /** Queue arguments that dead-letter to this target, to add to as needed. */
        Map<String, Object> queueArguments() {
            Map<String, Object> arguments = new HashMap<>();
            arguments.put("x-dead-letter-exchange", exchange);
            return arguments;
        }
    }

    static Target declareTarget(Broker broker, Channel channel) throws IOException {
        Target target = new Target(broker.declareExchange(channel, "fanout"), broker.declareQueue(channel, null));
        channel.queueBind(target.queue(), target.exchange(), "");
        return target;
    }

    /**
     * Checks that delivery died once, for reason, in queue, having been published to
     * exchange with routingKey: the single x-death entry and the x-first-death-* headers.
     * Returns the x-death entry for further checks.
     */
    static Map<String, Object> checkDiedOnce(Delivery delivery, String reason, String queue, String exchange,
            String routingKey) {
        Map<String, Object> headers = delivery.getProperties().getHeaders();
        Check.isTrue(headers != null && headers.get("x-death") instanceof List, "dead letter has no x-death list: " + headers);
        List<?> deaths = (List<?>) headers.get("x-death");
        Check.equal(1, deaths.size(), "x-death entries");
        @SuppressWarnings("unchecked")
        Map<String, Object> death = (Map<String, Object>) deaths.get(0);
        Check.equal(1L, death.get("count"), "x-death count");
        Check.equal(reason, death.get("reason"), "x-death reason");
        Check.equal(queue, death.get("queue"), "x-death queue");
        Check.equal(exchange, death.get("exchange"), "x-death exchange");
        Check.equal(List.of(routingKey), texts(death.get("routing-keys")), "x-death routing-keys");
        Check.isTrue(death.get("time") instanceof Date, "x-death time is not a timestamp: " + death.get("time"));
        // AMQP timestamps have whole seconds; the broker runs on a clock close to ours.
        Duration age = Duration.between(((Date) death.get("time")).toInstant(), Instant.now());
        Check.isTrue(!age.isNegative() || age.abs().getSeconds() < 2, "x-death time is in the future: " + death.get("time"));
        Check.isTrue(age.getSeconds() < 60, "x-death time is long past: " + death.get("time"));

        Check.equal(reason, headers.get("x-first-death-reason"), "x-first-death-reason");
        Check.equal(queue, headers.get("x-first-death-queue"), "x-first-death-queue");
        Check.equal(exchange, headers.get("x-first-death-exchange"), "x-first-death-exchange");
        return death;
    }

    private static List<String> texts(Object array) {
        Check.isTrue(array instanceof List, "expected an array, got " + array);
        return ((List<?>) array).stream().map(item -> item instanceof LongString ? item.toString() : String.valueOf(item)).toList();
    }
}
