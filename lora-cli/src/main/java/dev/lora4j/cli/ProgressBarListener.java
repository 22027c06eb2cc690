package dev.lora4j.cli;

import dev.lora4j.train.TrainerListener;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import java.util.function.IntSupplier;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarConsumer;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * A terminal progress bar over optimizer steps (me.tongfei:progressbar), with the last step's
 * loss, learning rate and throughput as its message and the ETA from the average step time
 * ({@link TrainerListener.StepMetrics#etaSeconds()}). The bar is created at the first step, when
 * the number of steps is known, and closed (rendered a last time, once) by {@link #onEnd} or
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
    private final FinalFrameOnce consumer;
    private ProgressBar bar;
    private volatile StepMetrics last;

    /**
     * @param consumer where the rendered bar goes (a ConsoleProgressBarConsumer for a terminal, a
     *     DelegatingProgressBarConsumer to capture it)
     */
    public ProgressBarListener(String taskName, ProgressBarConsumer consumer) {
        this.taskName = taskName;
        this.consumer = new FinalFrameOnce(consumer);
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

    /**
     * A bar on this writer (a command line's error writer, so that whoever set it, such as a
     * test, sees the bar): each frame starts with a carriage return, as on a console, and the
     * last one ends the line. As wide as the terminal when there is one, else {@value #LOG_WIDTH}
     * characters.
     */
    public static ProgressBarListener toWriter(String taskName, PrintWriter writer) {
        IntSupplier width;
        if (System.console() != null) {
            // progressbar measures the terminal (through JLine) only inside its console consumer;
            // this one never prints, it is asked for the width at each frame (the window may be resized)
            ConsoleProgressBarConsumer terminal = new ConsoleProgressBarConsumer(System.err);
            width = terminal::getMaxRenderedLength;
        } else {
            width = () -> LOG_WIDTH;
        }
        return new ProgressBarListener(taskName, new WriterConsumer(writer, width));
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

    /** Renders the bar a last time (once) and stops its refresh thread; idempotent. */
    @Override
    public synchronized void close() {
        if (bar != null) {
            consumer.finishing();
            bar.close();
            bar = null;
            consumer.finish();
        }
    }

    /**
     * The message shown after the bar, e.g. {@code 1,234 tok/s loss 2.3046 lr 3.0e-04}: throughput
     * first, so that a line cut at 80 columns still shows it.
     */
    static String message(StepMetrics m) {
        return String.format(Locale.ROOT, "%,.0f tok/s loss %.4f lr %.1e", m.tokensPerSecond(), m.loss(), m.learningRate());
    }

    private Optional<Duration> eta() {
        StepMetrics m = last;
        if (m == null || !Double.isFinite(m.etaSeconds())) {
            return Optional.empty();
        }
        return Optional.of(Duration.ofMillis(Math.round(m.etaSeconds() * 1000)));
    }

    /**
     * Passes frames on, except that the last frame is printed once. progressbar 0.10.1's
     * {@code ProgressBar.close()} runs its update action a last time, and that action renders
     * twice when steps were made since the previous refresh: once as a regular refresh and once
     * more as the closing frame; on a log (no terminal to overwrite the line) the final frame
     * then appears twice. While closing, this keeps only the newest frame and prints it after the
     * bar has closed, unless the previous frame printed was the same text; then it ends the line
     * itself (the library skips that when the bar closes before its first refresh).
     */
    private static final class FinalFrameOnce implements ProgressBarConsumer {
        private final ProgressBarConsumer target;
        private boolean closing;
        private String pending;
        private String lastPrinted;

        FinalFrameOnce(ProgressBarConsumer target) {
            this.target = target;
        }

        @Override
        public int getMaxRenderedLength() {
            return target.getMaxRenderedLength();
        }

        @Override
        public synchronized void accept(String frame) {
            if (closing) {
                pending = frame;
            } else {
                target.accept(frame);
                lastPrinted = frame;
            }
        }

        /** From now on frames are held back until {@link #finish()}. */
        synchronized void finishing() {
            closing = true;
        }

        /** Prints the held-back final frame, unless just printed, and ends the bar. */
        synchronized void finish() {
            if (pending != null && !pending.equals(lastPrinted)) {
                target.accept(pending);
                lastPrinted = pending;
            }
            pending = null;
            target.close();
            closing = false;
        }

        @Override
        public void close() {
            // the bar's close; the target is closed by finish(), after the final frame
        }
    }

    /** Frames on a writer, each after a carriage return as a console shows them; close ends the line. */
    private static final class WriterConsumer implements ProgressBarConsumer {
        private final PrintWriter out;
        private final IntSupplier width;

        WriterConsumer(PrintWriter out, IntSupplier width) {
            this.out = out;
            this.width = width;
        }

        @Override
        public int getMaxRenderedLength() {
            return width.getAsInt();
        }

        @Override
        public void accept(String frame) {
            ConsoleLines.frame(frame, () -> {
                out.print('\r');
                out.print(frame);
                out.flush();
            });
        }

        @Override
        public void close() {
            ConsoleLines.frame("", () -> {
                out.println();
                out.flush();
            });
            ConsoleLines.barClosed();
        }
    }
}
