package interop;

import com.rabbitmq.client.Channel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Events that client callbacks record as text, in the order the client ran them,
 * for the test thread to await with a bound. One log shared by several listeners
 * shows the order in which the broker sent their frames.
 */
final class EventLog {
    private final BlockingQueue<String> events = new LinkedBlockingQueue<>();

    void add(String event) {
        events.add(event);
    }

    /** Records channel's publisher confirms as "ack 3", "nack 4", "ack 7 multiple". */
    EventLog recordConfirms(Channel channel) {
        channel.addConfirmListener(
                (tag, multiple) -> add("ack " + tag + (multiple ? " multiple" : "")),
                (tag, multiple) -> add("nack " + tag + (multiple ? " multiple" : "")));
        return this;
    }

    /** The next event, failing after {@link Broker#TIMEOUT}; what names it in the failure. */
    String next(String what) throws InterruptedException {
        String event = events.poll(Broker.TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        if (event == null) {
            throw Check.fail("timed out after " + Broker.TIMEOUT.toSeconds() + " s waiting for " + what);
        }
        return event;
    }

    /** The events recorded so far and not yet taken. */
    List<String> pending() {
        List<String> taken = new ArrayList<>();
        events.drainTo(taken);
        return taken;
    }
}
