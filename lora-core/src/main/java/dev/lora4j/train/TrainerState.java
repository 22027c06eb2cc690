package dev.lora4j.train;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeType;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.io.JsonLimits;
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
    /** NaN is allowed: a step skipped for a non-finite loss ({@link OnNonFinite#SKIP}) records it as Python's json does. */
    private static final ObjectMapper JSON = JsonLimits.mapperBuilder()
            .enable(com.fasterxml.jackson.core.json.JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();

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

    /** Largest trainer_state.json read: ~40 bytes per step, so room for some ten million steps. */
    static final long MAX_FILE_BYTES = 512L << 20;

    /**
     * Reads and validates a trainer_state.json written by {@link #write}.
     *
     * @throws IOException if the file cannot be read, is larger than {@link #MAX_FILE_BYTES} or
     *     is not JSON (the message names the file and the place)
     * @throws IllegalArgumentException if a field is missing, of the wrong type or out of range
     *     (the message names the file, the field, the rule and the value found)
     */
    static TrainerState read(Path file) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(JsonLimits.readSmallFile(file, MAX_FILE_BYTES, "trainer state"));
        } catch (JsonProcessingException e) {
            throw new IOException(file + ": not valid JSON " + JsonLimits.describe(e) + "; the file was edited or damaged", e);
        }
        if (root == null || !root.isObject() || !FORMAT.equals(root.path("format").asText())) {
            throw new IllegalArgumentException(file + ": not a trainer state (\"format\" should be \"" + FORMAT + "\")");
        }
        if (root.path("version").asInt() != VERSION) {
            throw new IllegalArgumentException(file + ": trainer state version " + root.path("version")
                    + " is not supported (this lora4j reads version " + VERSION + ")");
        }
        Map<String, Object> settings = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = require(file, root, "settings", JsonNodeType.OBJECT).fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            settings.put(e.getKey(), e.getValue());
        }
        List<String> names = new ArrayList<>();
        JsonNode tensors = require(file, root, "trainable_tensors", JsonNodeType.ARRAY);
        for (int i = 0; i < tensors.size(); i++) {
            if (!tensors.get(i).isTextual()) {
                throw wrong(file, "trainable_tensors[" + i + "]", "a tensor name (string)", tensors.get(i));
            }
            names.add(tensors.get(i).textValue());
        }
        long step = count(file, root, "step");
        JsonNode lossNode = require(file, root, "loss_history", JsonNodeType.ARRAY);
        if (lossNode.size() != step) {
            throw new IllegalArgumentException(file + ": loss_history has " + lossNode.size() + " entries but step is " + step
                    + "; the file was edited or damaged");
        }
        double[] losses = new double[lossNode.size()];
        for (int i = 0; i < losses.length; i++) {
            JsonNode loss = lossNode.get(i);
            if (!loss.isNumber()) {
                throw wrong(file, "loss_history[" + i + "]", "a number", loss);
            }
            losses[i] = loss.doubleValue();
        }
        List<TrainerListener.ValidationMetrics> vals = new ArrayList<>();
        JsonNode validations = require(file, root, "validation_history", JsonNodeType.ARRAY);
        for (int i = 0; i < validations.size(); i++) {
            JsonNode v = validations.get(i);
            if (!v.isObject()) {
                throw wrong(file, "validation_history[" + i + "]", "an object {step, loss, perplexity, tokens}", v);
            }
            vals.add(new TrainerListener.ValidationMetrics(v.path("step").asLong(), v.path("loss").doubleValue(),
                    v.path("perplexity").doubleValue(), v.path("tokens").asLong()));
        }
        long datasetSize = count(file, root, "dataset_size");
        if (datasetSize < 1 || datasetSize > Integer.MAX_VALUE) {
            throw wrong(file, "dataset_size", "an integer in [1, " + Integer.MAX_VALUE + "]", root.get("dataset_size"));
        }
        return new TrainerState(step, count(file, root, "total_steps"), count(file, root, "examples_seen"),
                (int) datasetSize, require(file, root, "dataset_hash", JsonNodeType.STRING).asText(),
                require(file, root, "seed", JsonNodeType.NUMBER).asLong(),
                require(file, root, "learning_rate", JsonNodeType.NUMBER).doubleValue(), count(file, root, "tokens_seen"),
                require(file, root, "elapsed_seconds", JsonNodeType.NUMBER).doubleValue(), settings, names, losses, vals);
    }

    private static JsonNode require(Path file, JsonNode root, String key, JsonNodeType type) {
        JsonNode n = root.get(key);
        if (n == null || n.isNull()) {
            throw new IllegalArgumentException(file + ": \"" + key + "\" is missing; the file was edited or damaged");
        }
        if (n.getNodeType() != type) {
            throw wrong(file, key, "a JSON " + type.name().toLowerCase(java.util.Locale.ROOT), n);
        }
        return n;
    }

    /** A non-negative integer field that fits in a long. */
    private static long count(Path file, JsonNode root, String key) {
        JsonNode n = require(file, root, key, JsonNodeType.NUMBER);
        if (!n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() < 0) {
            throw wrong(file, key, "an integer in [0, " + Long.MAX_VALUE + "]", n);
        }
        return n.asLong();
    }

    private static IllegalArgumentException wrong(Path file, String field, String expected, JsonNode found) {
        String shown = found.toString();
        shown = shown.length() > 80 ? shown.substring(0, 80) + "..." : shown;
        return new IllegalArgumentException(file + ": \"" + field + "\" must be " + expected + " but is " + shown
                + "; the file was edited or damaged");
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
