package interop;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * Runs the {@link Test} methods of every *Tests class in this package against the
 * broker named by AMQP_URL, one at a time, each with a fresh {@link Broker}.
 *
 * <p>Arguments are name filters: a test runs when "Class.method" contains one of
 * them, ignoring case. Prints one line per test and the failures with their
 * reasons; exits 1 when a test failed and 2 when nothing could be run.
 */
public final class Runner {
    /** Bound on one whole test, so that a hung broker cannot stall the suite. */
    private static final Duration TEST_TIMEOUT = Duration.ofSeconds(30);

    private Runner() {}

    public static void main(String[] args) throws Exception {
        String url = System.getenv("AMQP_URL");
        if (url == null || url.isEmpty()) {
            System.err.println("AMQP_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/%2F)");
            System.exit(2);
        }
        List<Method> tests = discover().stream().filter(test -> selected(test, args)).toList();
        if (tests.isEmpty()) {
            System.err.println("no test matches " + Arrays.toString(args));
            System.exit(2);
        }

        // Daemon threads: a test that ignores its interruption must not keep the JVM alive.
        ExecutorService pool = Executors.newCachedThreadPool(task -> {
            Thread thread = new Thread(task);
            thread.setDaemon(true);
            return thread;
        });
        List<String> failures = new ArrayList<>();
        long suiteStart = System.nanoTime();
        for (Method test : tests) {
            long start = System.nanoTime();
            Throwable failure = run(pool, test, url);
            String timing = " (" + millisSince(start) + " ms)";
            if (failure == null) {
                System.out.println("PASS " + name(test) + timing);
            } else {
                String report = name(test) + ": " + describe(failure);
                failures.add(report);
                System.out.println("FAIL " + report + timing);
                System.out.print(location(failure));
            }
            System.out.flush();
        }

        System.out.println();
        System.out.printf("%d passed, %d failed in %.1f s%n",
                tests.size() - failures.size(), failures.size(), millisSince(suiteStart) / 1000.0);
        failures.forEach(failure -> System.out.println("  FAILED " + failure));
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    /** The @Test methods of the *Tests classes compiled beside this one, sorted by name. */
    private static List<Method> discover() throws Exception {
        Path classes = Path.of(Runner.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path pkg = classes.resolve(Runner.class.getPackageName());
        List<Method> tests = new ArrayList<>();
        try (Stream<Path> files = Files.list(pkg)) {
            for (Path file : files.toList()) {
                String fileName = file.getFileName().toString();
                if (!fileName.endsWith("Tests.class")) {
                    continue;
                }
                Class<?> type = Class.forName(Runner.class.getPackageName() + "." + fileName.replace(".class", ""));
                for (Method method : type.getDeclaredMethods()) {
                    if (method.isAnnotationPresent(Test.class)) {
                        checkSignature(method);
                        tests.add(method);
                    }
                }
            }
        }
        tests.sort(Comparator.comparing(Runner::name));
        return tests;
    }

    private static void checkSignature(Method method) {
        boolean takesBroker = Arrays.equals(method.getParameterTypes(), new Class<?>[] {Broker.class});
        if (!Modifier.isStatic(method.getModifiers()) || !takesBroker) {
            throw new IllegalStateException(name(method) + ": a @Test must be static and take one Broker");
        }
        method.setAccessible(true);
    }

    private static boolean selected(Method test, String[] filters) {
        String name = name(test).toLowerCase(Locale.ROOT);
        return filters.length == 0 || Arrays.stream(filters).anyMatch(f -> name.contains(f.toLowerCase(Locale.ROOT)));
    }

    /** Runs one test with its own Broker (cleaned up afterwards); returns why it failed, or null. */
    private static Throwable run(ExecutorService pool, Method test, String url) throws InterruptedException {
        Future<?> outcome = pool.submit(() -> {
            try (Broker broker = new Broker(url)) {
                test.invoke(null, broker);
            }
            return null;
        });
        try {
            outcome.get(TEST_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            return null;
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            return cause instanceof InvocationTargetException invocation ? invocation.getCause() : cause;
        } catch (TimeoutException e) {
            outcome.cancel(true);
            return new AssertionError("did not finish within " + TEST_TIMEOUT.toSeconds() + " s");
        }
    }

    private static String name(Method test) {
        return test.getDeclaringClass().getSimpleName() + "." + test.getName();
    }

    /** An assertion's message as is; any other exception with its type and causes. */
    private static String describe(Throwable failure) {
        StringBuilder text = new StringBuilder(failure instanceof AssertionError && failure.getMessage() != null
                ? failure.getMessage()
                : failure.toString());
        String previous = failure.toString();
        for (Throwable cause = failure.getCause(); cause != null; cause = cause.getCause()) {
            // The client chains a shutdown signal to a copy of itself: say it once.
            if (!cause.toString().equals(previous)) {
                text.append("\n    caused by ").append(cause);
            }
            previous = cause.toString();
        }
        for (Throwable suppressed : failure.getSuppressed()) {
            text.append("\n    and then ").append(suppressed);
        }
        return text.toString();
    }

    /** The failure's stack frames in test code (this package, minus the runner), where to look first. */
    private static String location(Throwable failure) {
        StringBuilder frames = new StringBuilder();
        for (StackTraceElement frame : failure.getStackTrace()) {
            boolean testCode = frame.getClassName().startsWith(Runner.class.getPackageName() + ".")
                    && !frame.getClassName().startsWith(Runner.class.getName());
            if (testCode) {
                frames.append("    at ").append(frame).append('\n');
            }
        }
        return frames.toString();
    }

    private static long millisSince(long startNanos) {
        return (System.nanoTime() - startNanos) / 1_000_000;
    }
}
