package dev.lora4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.train.TrainerListener;
import java.awt.BasicStroke;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A PNG plot of training loss per optimizer step (a line) and validation loss (points), drawn
 * with XChart. Collects training losses and validation points as a {@link TrainerListener} (or
 * through {@link #addTraining} and {@link #addValidation}); {@link #fromJsonl} rebuilds a plot from a metrics.jsonl written by
 * {@link MetricsJsonlWriter}. {@link #writePng} replaces the file atomically (temporary file and
 * rename), so a viewer never sees half a PNG while training rewrites it.
 */
public final class LossPlot implements TrainerListener {
    private static final Logger LOG = LoggerFactory.getLogger(LossPlot.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String title;
    private final List<double[]> training = new ArrayList<>();
    private final List<double[]> validation = new ArrayList<>();

    public LossPlot(String title) {
        this.title = title;
    }

    /**
     * Reads a metrics.jsonl: records with "loss" are training points, records with "val_loss"
     * validation points (records with a null loss are skipped, and counted in the log).
     *
     * @throws IllegalArgumentException naming the file and line of a record that is not JSON or has no step
     */
    public static LossPlot fromJsonl(Path metricsJsonl, String title) {
        LossPlot plot = new LossPlot(title);
        int skipped = 0;
        try (BufferedReader reader = Files.newBufferedReader(metricsJsonl, StandardCharsets.UTF_8)) {
            String line;
            int lineNumber = 0;
            while ((line = reader.readLine()) != null) {
                lineNumber++;
                if (line.isBlank()) {
                    continue;
                }
                JsonNode o;
                try {
                    o = JSON.readTree(line);
                } catch (IOException e) {
                    throw new IllegalArgumentException(metricsJsonl + " line " + lineNumber + ": not a JSON object ("
                            + e.getMessage().lines().findFirst().orElse("") + ")");
                }
                if (!o.path("step").isNumber()) {
                    throw new IllegalArgumentException(metricsJsonl + " line " + lineNumber + ": no numeric \"step\" in "
                            + line + "; expected a record written by MetricsJsonlWriter");
                }
                long step = o.get("step").asLong();
                if (o.has("loss")) {
                    if (o.get("loss").isNumber()) {
                        plot.addTraining(step, o.get("loss").asDouble());
                    } else {
                        skipped++;
                    }
                } else if (o.has("val_loss")) {
                    if (o.get("val_loss").isNumber()) {
                        plot.addValidation(step, o.get("val_loss").asDouble());
                    } else {
                        skipped++;
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + metricsJsonl + ": " + e.getMessage(), e);
        }
        if (skipped > 0) {
            LOG.warn("{}: {} record(s) without a finite loss were left out of the plot", metricsJsonl, skipped);
        }
        return plot;
    }

    @Override
    public synchronized void onStep(StepMetrics m) {
        if (Double.isFinite(m.loss())) {
            addTraining(m.step(), m.loss());
        }
    }

    /** Adds the validation point of a {@link dev.lora4j.train.Trainer.Builder#validation} pass. */
    @Override
    public void onValidation(ValidationMetrics m) {
        if (Double.isFinite(m.loss())) {
            addValidation(m.step(), m.loss());
        }
    }

    public synchronized void addTraining(long step, double loss) {
        training.add(new double[] {step, loss});
    }

    public synchronized void addValidation(long step, double loss) {
        validation.add(new double[] {step, loss});
    }

    /** Number of training and validation points. */
    public synchronized int size() {
        return training.size() + validation.size();
    }

    /** The chart as XChart builds it (for other formats or sizes). */
    public synchronized XYChart chart(int width, int height) {
        if (training.isEmpty() && validation.isEmpty()) {
            throw new IllegalStateException("the loss plot has no points yet; write it after the first step");
        }
        XYChart chart = new XYChartBuilder().width(width).height(height).title(title).xAxisTitle("step")
                .yAxisTitle("loss").build();
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.InsideNE);
        chart.getStyler().setChartBackgroundColor(java.awt.Color.WHITE);
        if (!training.isEmpty()) {
            XYSeries s = chart.addSeries("training loss", column(training, 0), column(training, 1));
            s.setMarker(SeriesMarkers.NONE);
            s.setLineWidth(1.5f);
            s.setLineColor(new java.awt.Color(31, 119, 180));
        }
        if (!validation.isEmpty()) {
            XYSeries s = chart.addSeries("validation loss", column(validation, 0), column(validation, 1));
            s.setMarker(SeriesMarkers.CIRCLE);
            s.setMarkerColor(new java.awt.Color(214, 39, 40));
            s.setLineColor(new java.awt.Color(214, 39, 40));
            // a dashed line through the validation points keeps them readable when there are few
            s.setLineStyle(new BasicStroke(1f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {4f, 4f}, 0f));
        }
        return chart;
    }

    /** Writes an 800×500 PNG, replacing {@code file} atomically. */
    public void writePng(Path file) {
        writePng(file, 800, 500);
    }

    /** Writes a PNG of this size, replacing {@code file} atomically. */
    public void writePng(Path file, int width, int height) {
        XYChart chart = chart(width, height);
        Path absolute = file.toAbsolutePath();
        try {
            Files.createDirectories(absolute.getParent());
            Path tmp = Files.createTempFile(absolute.getParent(), "." + absolute.getFileName(), ".tmp");
            try {
                try (OutputStream out = Files.newOutputStream(tmp)) {
                    BitmapEncoder.saveBitmap(chart, out, BitmapEncoder.BitmapFormat.PNG);
                }
                try {
                    Files.move(tmp, absolute, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, absolute, StandardCopyOption.REPLACE_EXISTING);
                }
            } finally {
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("writing loss plot " + file + ": " + e.getMessage(), e);
        }
    }

    private static double[] column(List<double[]> points, int index) {
        double[] out = new double[points.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = points.get(i)[index];
        }
        return out;
    }
}
