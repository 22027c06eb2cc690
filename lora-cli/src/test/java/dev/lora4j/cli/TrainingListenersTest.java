package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.train.TrainerListener.StepMetrics;
import dev.lora4j.train.TrainerListener.TrainingResult;
import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import me.tongfei.progressbar.DelegatingProgressBarConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainingListenersTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static StepMetrics step(long step, double loss) {
        return new StepMetrics(step, 10, loss, 3e-4 * step / 10, 0.5 + step, 100 * step, 250.0, 0.4 * step);
    }

    @Test
    void metricsJsonlHasOneParsableRecordPerStepAndValidation(@TempDir Path tmp) throws Exception {
        Path file = tmp.resolve("out/metrics.jsonl");
        try (MetricsJsonlWriter writer = MetricsJsonlWriter.create(file)) {
            writer.onStep(step(1, 2.5));
            // each line is on disk as soon as it is written
            assertEquals(1, Files.readAllLines(file).size());
            writer.onStep(step(2, Double.NaN));
            writer.validation(2, Math.log(6.0));
            writer.onEnd(new TrainingResult(2, 2.0, 200, 0.8, new double[] {2.5, Double.NaN}, 2));
        }
        List<String> lines = Files.readAllLines(file);
        assertEquals(3, lines.size());
        JsonNode first = JSON.readTree(lines.get(0));
        assertEquals(1, first.get("step").asLong());
        assertEquals(2.5, first.get("loss").asDouble());
        assertEquals(3e-5, first.get("lr").asDouble(), 1e-15);
        assertEquals(1.5, first.get("grad_norm").asDouble());
        assertEquals(100, first.get("tokens").asLong());
        assertEquals(250.0, first.get("tokens_per_sec").asDouble());
        assertEquals(0.4, first.get("elapsed_s").asDouble(), 1e-12);
        assertTrue(JSON.readTree(lines.get(1)).get("loss").isNull(), lines.get(1));
        JsonNode val = JSON.readTree(lines.get(2));
        assertEquals(2, val.get("step").asLong());
        assertEquals(6.0, val.get("val_ppl").asDouble(), 1e-12);

        try (MetricsJsonlWriter more = MetricsJsonlWriter.append(file)) {
            more.onStep(step(3, 1.5));
        }
        assertEquals(4, Files.readAllLines(file).size());
    }

    @Test
    void lossPlotWritesAPngAndRebuildsFromJsonl(@TempDir Path tmp) throws Exception {
        Path metrics = tmp.resolve("metrics.jsonl");
        LossPlot live = new LossPlot("arith-tiny LoRA");
        try (MetricsJsonlWriter writer = MetricsJsonlWriter.create(metrics)) {
            for (int s = 1; s <= 10; s++) {
                StepMetrics m = step(s, 3.0 / s);
                writer.onStep(m);
                live.onStep(m);
                if (s % 5 == 0) {
                    writer.validation(s, 3.5 / s);
                    live.addValidation(s, 3.5 / s);
                }
            }
        }
        Path png = tmp.resolve("plots/loss.png");
        live.writePng(png);
        byte[] bytes = Files.readAllBytes(png);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, java.util.Arrays.copyOf(bytes, 8));
        BufferedImage image = ImageIO.read(png.toFile());
        assertEquals(800, image.getWidth());
        assertEquals(500, image.getHeight());
        try (var files = Files.list(png.getParent())) {
            assertEquals(List.of(png), files.toList(), "the temporary file is gone");
        }

        LossPlot rebuilt = LossPlot.fromJsonl(metrics, "again");
        assertEquals(live.size(), rebuilt.size());
        assertEquals(12, rebuilt.size());
        Path png2 = tmp.resolve("loss2.png");
        rebuilt.writePng(png2, 640, 400);
        assertEquals(640, ImageIO.read(png2.toFile()).getWidth());

        assertThrows(IllegalStateException.class, () -> new LossPlot("empty").writePng(tmp.resolve("empty.png")));
        Path broken = tmp.resolve("broken.jsonl");
        Files.writeString(broken, "{\"step\":1,\"loss\":2.0}\n{\"loss\":1.0}\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LossPlot.fromJsonl(broken, "x"));
        assertTrue(e.getMessage().contains("line 2") && e.getMessage().contains("step"), e.getMessage());
    }

    /**
     * Waits for the bar's refresh thread to render its first frame, so that the steps after it
     * are rendered by close(): the case in which progressbar renders the final state twice.
     */
    private static void awaitFirstFrame(java.util.function.BooleanSupplier rendered) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!rendered.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "the progress bar rendered nothing within 10 s");
            Thread.sleep(5);
        }
    }

    @Test
    void progressBarShowsStepsLossLearningRateAndThroughput() throws Exception {
        List<String> frames = new java.util.concurrent.CopyOnWriteArrayList<>();
        ProgressBarListener bar = new ProgressBarListener("finetune", new DelegatingProgressBarConsumer(frames::add, 160));
        bar.onStep(step(1, 1.0));
        awaitFirstFrame(() -> !frames.isEmpty());
        for (int s = 2; s <= 10; s++) {
            bar.onStep(step(s, 1.0 / s));
        }
        bar.onEnd(new TrainingResult(10, 0.1, 1000, 4.0, new double[10], 10));
        bar.close();
        String last = frames.get(frames.size() - 1);
        assertTrue(last.contains("finetune") && last.contains("10/10"), last);
        assertTrue(last.contains("loss 0.1000") && last.contains("lr 3.0e-04") && last.contains("250 tok/s"), last);
        // progressbar's close() renders the final state twice (a refresh, then the closing frame); it is shown once
        assertEquals(1, frames.stream().filter(last::equals).count(), frames::toString);
    }

    @Test
    void progressBarOnAWriterEndsWithItsFinalFrameOnceAndANewline() throws Exception {
        StringWriter text = new StringWriter();
        ProgressBarListener bar = ProgressBarListener.toWriter("finetune", new PrintWriter(text));
        bar.onStep(step(1, 2.0));
        awaitFirstFrame(() -> text.getBuffer().length() > 0);
        for (int s = 2; s <= 10; s++) {
            bar.onStep(step(s, 2.0 / s));
        }
        bar.onEnd(new TrainingResult(10, 0.2, 1000, 4.0, new double[10], 10));
        bar.close();
        String out = text.toString();
        assertTrue(out.startsWith("\r") && out.endsWith("\n") && out.indexOf('\n') == out.length() - 1, out);
        String[] frames = out.substring(1, out.length() - 1).split("\r");
        String last = frames[frames.length - 1];
        assertTrue(last.startsWith("finetune") && last.contains("10/10") && last.contains("loss 0.2000")
                && last.contains("lr 3.0e-04") && last.contains("250 tok/s"), last);
        assertTrue(last.length() <= ProgressBarListener.LOG_WIDTH, last);
        assertEquals(1, java.util.Arrays.stream(frames).filter(last::equals).count(), out);

        // a bar closed right after its first step still renders that step and ends its line
        StringWriter shortText = new StringWriter();
        ProgressBarListener shortBar = ProgressBarListener.toWriter("finetune", new PrintWriter(shortText));
        shortBar.onStep(step(1, 3.0));
        shortBar.close();
        String shortOut = shortText.toString();
        assertTrue(shortOut.endsWith("\n") && shortOut.contains("1/10") && shortOut.contains("loss 3.0000"), shortOut);
    }

    @Test
    void atEightyColumnsTheBarStillShowsTheThroughput() throws Exception {
        List<String> frames = new java.util.concurrent.CopyOnWriteArrayList<>();
        ProgressBarListener bar = new ProgressBarListener("finetune", new DelegatingProgressBarConsumer(frames::add, 80));
        for (int s = 1; s <= 428; s += 61) {
            bar.onStep(new StepMetrics(s, 428, 1.2345, 2.95e-3, 1.0, 40L * s, 12_345.0, s * 0.07));
        }
        bar.close();
        String last = frames.get(frames.size() - 1);
        assertTrue(last.length() <= 80, last);
        assertTrue(last.contains("12,345 tok/s"), last);
    }

    @Test
    void logLinesPrintAboveTheBarInsteadOfTearingIt() {
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        ConsoleLines.BarAwareStream err = ConsoleLines.BarAwareStream.over(bytes, "finetune 50% [==  ] 5/10");
        err.print("[main] WARN Trainer - something\n");
        String out = bytes.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertEquals("\r" + " ".repeat("finetune 50% [==  ] 5/10".length()) + "\r[main] WARN Trainer - something\nfinetune 50% [==  ] 5/10", out);
    }
}
