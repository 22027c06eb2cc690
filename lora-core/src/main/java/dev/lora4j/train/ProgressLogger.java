package dev.lora4j.train;

import java.util.Locale;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The progress a {@link Trainer} logs by default, one INFO line through SLF4J (logger
 * {@code dev.lora4j.train.ProgressLogger}) after the first step, then at most every
 * {@link #DEFAULT_INTERVAL_SECONDS} seconds (or every N steps), and after the last step:
 *
 * <pre>
 * step 120/450 (27%): loss 0.8123, lr 2.87e-03, 3,412 tokens/s, elapsed 7s, ETA 19s
 * </pre>
 *
 * Replace it with {@link Trainer.Builder#progressLogging(ProgressLogger)} (e.g.
 * {@code ProgressLogger.everySteps(50)}), turn it off with {@code progressLogging(false)} (a
 * command line with its own progress bar does), or silence the logger in the SLF4J binding's
 * configuration. Not thread-safe; one instance per trainer.
 */
public final class ProgressLogger implements TrainerListener {
    /** The default time between two lines. */
    public static final double DEFAULT_INTERVAL_SECONDS = 10;
    private static final Logger LOG = LoggerFactory.getLogger(ProgressLogger.class);

    private final long everySteps;
    private final double everySeconds;
    private final Consumer<String> sink;
    private double lastLoggedAt = Double.NEGATIVE_INFINITY;

    private ProgressLogger(long everySteps, double everySeconds, Consumer<String> sink) {
        this.everySteps = everySteps;
        this.everySeconds = everySeconds;
        this.sink = sink;
    }

    /** The default: first step, then at most every {@link #DEFAULT_INTERVAL_SECONDS} s, last step. */
    public static ProgressLogger defaults() {
        return everySeconds(DEFAULT_INTERVAL_SECONDS);
    }

    /** First step, then whenever {@code seconds} have passed since the previous line, last step. */
    public static ProgressLogger everySeconds(double seconds) {
        if (!(seconds >= 0) || Double.isInfinite(seconds)) {
            throw new IllegalArgumentException("ProgressLogger.everySeconds: seconds must be finite and >= 0, was " + seconds);
        }
        return new ProgressLogger(0, seconds, LOG::info);
    }

    /** First step, every {@code steps}-th step, last step (deterministic: for logs that are compared). */
    public static ProgressLogger everySteps(long steps) {
        Checks.atLeast("ProgressLogger.everySteps", steps, 1);
        return new ProgressLogger(steps, 0, LOG::info);
    }

    /** This logger writing its lines to {@code sink} instead of SLF4J (e.g. {@code System.out::println}). */
    public ProgressLogger to(Consumer<String> value) {
        return new ProgressLogger(everySteps, everySeconds, java.util.Objects.requireNonNull(value, "sink"));
    }

    /** The same settings with no lines logged yet (each trainer gets its own). */
    ProgressLogger fresh() {
        return new ProgressLogger(everySteps, everySeconds, sink);
    }

    @Override
    public void onStep(StepMetrics m) {
        boolean due = m.step() == 1 || m.step() == m.totalSteps()
                || (everySteps > 0 ? m.step() % everySteps == 0 : m.elapsedSeconds() - lastLoggedAt >= everySeconds);
        if (due) {
            lastLoggedAt = m.elapsedSeconds();
            sink.accept(format(m));
        }
    }

    /** One progress line: step, percent, loss, learning rate, tokens/s, elapsed time and ETA. */
    public static String format(StepMetrics m) {
        return String.format(Locale.ROOT, "step %d/%d (%.0f%%): loss %.4f, lr %.2e, %,.0f tokens/s, elapsed %s, ETA %s",
                m.step(), m.totalSteps(), 100.0 * m.step() / Math.max(1, m.totalSteps()), m.loss(), m.learningRate(),
                m.tokensPerSecond(), duration(m.elapsedSeconds()), duration(m.etaSeconds()));
    }

    /** 7s, 3m 05s, 2h 01m. */
    static String duration(double seconds) {
        if (Double.isNaN(seconds) || seconds < 0) {
            return "?";
        }
        long s = Math.round(seconds);
        if (s < 60) {
            return s + "s";
        }
        if (s < 3600) {
            return String.format(Locale.ROOT, "%dm %02ds", s / 60, s % 60);
        }
        return String.format(Locale.ROOT, "%dh %02dm", s / 3600, (s % 3600) / 60);
    }
}
