package dev.lora4j.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.io.PythonJson;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The contents of a checkpoint's {@code trainer_state.json}: where the run is (step, data
 * position), what it has seen (losses, tokens, validations) and how it was configured (settings
 * and data fingerprint, compared when resuming). Random streams need no saved state: the data
 * order of an epoch and the dropout masks of a step are seeded from (seed, epoch) and
 * (seed, step, layer), so the step number is enough to continue them exactly.
 */
record TrainerState(long step, long totalSteps, long examplesSeen, int datasetSize, String datasetHash, long seed,
                    double learningRate, long tokensSeen, double elapsedSeconds, Map<String, Object> settings,
                    List<String> trainableTensors, double[] lossHistory,
                    List<TrainerListener.ValidationMetrics> validations) {

    static final String FORMAT = "lora4j-trainer-state";
    static final int VERSION = 1;
    static final String RNG_SCHEME = "data order: one permutation per epoch seeded from (seed, epoch); dropout: every "
            + "LoRA layer reseeded before each optimizer step from (seed, step, layer name)";
    private static final ObjectMapper JSON = new ObjectMapper();

    void write(Path file) throws IOException {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("format", FORMAT);
        out.put("version", VERSION);
        out.put("step", step);
        out.put("total_steps", totalSteps);
        out.put("epoch", examplesSeen / datasetSize);
        out.put("position_in_epoch", examplesSeen % datasetSize);
        out.put("examples_seen", examplesSeen);
        out.put("dataset_size", datasetSize);
        out.put("dataset_hash", datasetHash);
        out.put("seed", seed);
        out.put("rng", RNG_SCHEME);
        out.put("learning_rate", learningRate);
        out.put("tokens_seen", tokensSeen);
        out.put("elapsed_seconds", elapsedSeconds);
        out.put("settings", settings);
        out.put("trainable_tensors", trainableTensors);
        List<Object> losses = new ArrayList<>();
        for (double l : lossHistory) {
            losses.add(l); // written as the shortest text that reads back as the same double
        }
        out.put("loss_history", losses);
        List<Object> vals = new ArrayList<>();
        for (TrainerListener.ValidationMetrics v : validations) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("step", v.step());
            m.put("loss", v.loss());
            m.put("perplexity", v.perplexity());
            m.put("tokens", v.tokens());
            vals.add(m);
        }
        out.put("validation_history", vals);
        Files.writeString(file, PythonJson.dumps(out, 2, false) + "\n", StandardCharsets.UTF_8);
    }

    static TrainerState read(Path file) throws IOException {
        JsonNode root = JSON.readTree(Files.readString(file, StandardCharsets.UTF_8));
        if (root == null || !FORMAT.equals(root.path("format").asText())) {
            throw new IllegalArgumentException(file + ": not a trainer state (\"format\" should be \"" + FORMAT + "\")");
        }
        if (root.path("version").asInt() != VERSION) {
            throw new IllegalArgumentException(file + ": trainer state version " + root.path("version")
                    + " is not supported (this lora4j reads version " + VERSION + ")");
        }
        Map<String, Object> settings = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = require(file, root, "settings").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            settings.put(e.getKey(), e.getValue());
        }
        List<String> names = new ArrayList<>();
        require(file, root, "trainable_tensors").forEach(n -> names.add(n.asText()));
        JsonNode lossNode = require(file, root, "loss_history");
        double[] losses = new double[lossNode.size()];
        for (int i = 0; i < losses.length; i++) {
            losses[i] = lossNode.get(i).doubleValue();
        }
        List<TrainerListener.ValidationMetrics> vals = new ArrayList<>();
        for (JsonNode v : require(file, root, "validation_history")) {
            vals.add(new TrainerListener.ValidationMetrics(v.path("step").asLong(), v.path("loss").doubleValue(),
                    v.path("perplexity").doubleValue(), v.path("tokens").asLong()));
        }
        long step = require(file, root, "step").asLong();
        if (losses.length != step) {
            throw new IllegalArgumentException(file + ": loss_history has " + losses.length + " entries but step is " + step
                    + "; the file was edited or damaged");
        }
        return new TrainerState(step, require(file, root, "total_steps").asLong(),
                require(file, root, "examples_seen").asLong(), require(file, root, "dataset_size").asInt(),
                require(file, root, "dataset_hash").asText(), require(file, root, "seed").asLong(),
                require(file, root, "learning_rate").doubleValue(), require(file, root, "tokens_seen").asLong(),
                require(file, root, "elapsed_seconds").doubleValue(), settings, names, losses, vals);
    }

    private static JsonNode require(Path file, JsonNode root, String key) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            throw new IllegalArgumentException(file + ": \"" + key + "\" is missing; the file was edited or damaged");
        }
        return n;
    }

    /** Whether a setting read back from JSON equals the value this trainer has. */
    static boolean sameSetting(Object current, Object saved) {
        if (!(saved instanceof JsonNode node)) {
            return current.equals(saved);
        }
        if (current instanceof Double d) {
            return node.isNumber() && Double.compare(node.doubleValue(), d) == 0;
        }
        if (current instanceof Long || current instanceof Integer) {
            return node.isIntegralNumber() && node.asLong() == ((Number) current).longValue();
        }
        if (current instanceof Boolean b) {
            return node.isBoolean() && node.booleanValue() == b;
        }
        return node.isTextual() && node.asText().equals(current.toString());
    }
}
