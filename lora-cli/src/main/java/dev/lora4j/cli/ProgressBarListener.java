package dev.lora4j.cli;

import dev.lora4j.train.TrainerListener;
import java.io.PrintStream;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarConsumer;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * A terminal progress bar over optimizer steps (me.tongfei:progressbar), with the last step's
 * loss, learning rate and throughput as its message and the ETA from the average step time
 * ({@link TrainerListener.StepMetrics#etaSeconds()}). The bar is created at the first step, when
 * the number of steps is known, and closed (rendered a last time) by {@link #onEnd} or
 * {@link #close()}.
 *
 * <pre>{@code
 * try (ProgressBarListener bar = ProgressBarListener.toStderr("finetune")) {
 *     Trainer.builder(model).listener(bar)...build().fit(data);
 * }
 * }</pre>
 */
public final class ProgressBarListener implements TrainerListener, AutoCloseable {
    private final String taskName;
    private final ProgressBarConsumer consumer;
    private ProgressBar bar;
    private volatile StepMetrics last;

    /**
     * @param consumer where the rendered bar goes (a ConsoleProgressBarConsumer for a terminal, a
     *     DelegatingProgressBarConsumer to capture it)
     */
    public ProgressBarListener(String taskName, ProgressBarConsumer consumer) {
        this.taskName = taskName;
        this.consumer = consumer;
    }

    /** A bar on standard error (standard output stays for results). */
    public static ProgressBarListener toStderr(String taskName) {
        return toStream(taskName, System.err);
    }

    /**
     * A bar on this stream: as wide as the terminal, or {@value #LOG_WIDTH} characters when the
     * output is not a terminal (a log file), where a guessed width would cut the message off.
     */
    public static ProgressBarListener toStream(String taskName, PrintStream stream) {
        return new ProgressBarListener(taskName, System.console() != null ? new ConsoleProgressBarConsumer(stream)
                : new ConsoleProgressBarConsumer(stream, LOG_WIDTH));
    }

    /** Characters per rendered line when standard error is not a terminal. */
    static final int LOG_WIDTH = 120;

    @Override
    public synchronized void onStep(StepMetrics m) {
        last = m;
        if (bar == null) {
            bar = new ProgressBarBuilder()
                    .setTaskName(taskName)
                    .setInitialMax(m.totalSteps())
                    .setStyle(ProgressBarStyle.ASCII)
                    .setConsumer(consumer)
                    .setUpdateIntervalMillis(500)
                    .setEtaFunction(state -> eta())
                    .build();
        }
        bar.maxHint(m.totalSteps());
        bar.stepTo(m.step());
        bar.setExtraMessage(message(m));
    }

    @Override
    public void onEnd(TrainingResult result) {
        close();
    }

    /** Renders the bar a last time and stops its refresh thread; idempotent. */
    @Override
    public synchronized void close() {
        if (bar != null) {
            bar.close();
            bar = null;
        }
    }

    /** The message shown after the bar, e.g. {@code loss 2.3046 lr 3.00e-04 1,234 tok/s}. */
    static String message(StepMetrics m) {
        return String.format(Locale.ROOT, "loss %.4f lr %.2e %,.0f tok/s", m.loss(), m.learningRate(), m.tokensPerSecond());
    }

    private Optional<Duration> eta() {
        StepMetrics m = last;
        if (m == null || !Double.isFinite(m.etaSeconds())) {
            return Optional.empty();
        }
        return Optional.of(Duration.ofMillis(Math.round(m.etaSeconds() * 1000)));
    }
}
