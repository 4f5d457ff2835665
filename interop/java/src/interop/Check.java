package interop;

import com.rabbitmq.client.LongString;
import java.util.Objects;

/** Assertions that say what was checked, what was expected and what was seen. */
final class Check {
    private Check() {}

    /**
     * Fails unless expected equals actual. The client hands AMQP strings over as
     * LongString, which never equals a String, so those are compared as text.
     */
    static void equal(Object expected, Object actual, String what) {
        Object seen = actual instanceof LongString ? actual.toString() : actual;
        if (!Objects.equals(expected, seen)) {
            throw new AssertionError(what + ": expected <" + expected + "> but was <" + seen + ">");
        }
    }

    static void isTrue(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    static AssertionError fail(String message) {
        return new AssertionError(message);
    }
}
