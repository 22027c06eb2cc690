package dev.lora4j.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.train.TrainerListener;
import java.io.BufferedWriter;
import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes training metrics as JSON Lines, one object per line, flushed at once so the file can be
 * followed ({@code tail -f}) and survives a crash:
 * <pre>
 * {"step":1,"loss":2.31,"lr":3.0E-6,"grad_norm":1.7,"tokens":412,"tokens_per_sec":950.2,"elapsed_s":0.43}
 * {"step":100,"val_loss":1.92,"val_ppl":6.82}
 * </pre>
 * Training records come from {@link #onStep}; validation records from {@link #onValidation} or
 * {@link #validation}. A value
 * that is not finite (a NaN loss) is written as null, since JSON has no NaN.
 */
public final class MetricsJsonlWriter implements TrainerListener, Closeable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path file;
    private final BufferedWriter writer;

    private MetricsJsonlWriter(Path file, boolean append) {
        this.file = file;
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            this.writer = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE, append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("opening metrics file " + file + ": " + e.getMessage(), e);
        }
    }

    /** A new (truncated) metrics file. */
    public static MetricsJsonlWriter create(Path file) {
        return new MetricsJsonlWriter(file, false);
    }

    /** Appends to an existing metrics file (a resumed run). */
    public static MetricsJsonlWriter append(Path file) {
        return new MetricsJsonlWriter(file, true);
    }

    public Path file() {
        return file;
    }

    @Override
    public void onStep(StepMetrics m) {
        ObjectNode o = JSON.createObjectNode();
        o.put("step", m.step());
        put(o, "loss", m.loss());
        put(o, "lr", m.learningRate());
        put(o, "grad_norm", m.gradNorm());
        o.put("tokens", m.tokensSeen());
        put(o, "tokens_per_sec", m.tokensPerSecond());
        put(o, "elapsed_s", m.elapsedSeconds());
        write(o);
    }

    /** A validation record after optimizer step {@code step}: val_loss and its perplexity exp(val_loss). */
    public void validation(long step, double validationLoss) {
        ObjectNode o = JSON.createObjectNode();
        o.put("step", step);
        put(o, "val_loss", validationLoss);
        put(o, "val_ppl", Math.exp(validationLoss));
        write(o);
    }

    /** Writes the validation record of a {@link dev.lora4j.train.Trainer.Builder#validation} pass. */
    @Override
    public void onValidation(ValidationMetrics m) {
        validation(m.step(), m.loss());
    }

    @Override
    public void onEnd(TrainingResult result) {
        flush();
    }

    @Override
    public void close() {
        try {
            writer.close();
        } catch (IOException e) {
            throw new UncheckedIOException("closing metrics file " + file + ": " + e.getMessage(), e);
        }
    }

    private static void put(ObjectNode o, String key, double value) {
        if (Double.isFinite(value)) {
            o.put(key, value);
        } else {
            o.putNull(key);
        }
    }

    private synchronized void write(ObjectNode o) {
        try {
            writer.write(JSON.writeValueAsString(o));
            writer.write('\n');
            writer.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("writing metrics file " + file + ": " + e.getMessage(), e);
        }
    }

    private void flush() {
        try {
            writer.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("writing metrics file " + file + ": " + e.getMessage(), e);
        }
    }
}
