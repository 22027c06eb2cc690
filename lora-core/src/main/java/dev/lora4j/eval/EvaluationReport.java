package dev.lora4j.eval;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Evaluation results as JSON in lm-evaluation-harness's shape:
 *
 * <pre>
 * {
 *   "results" : {
 *     "arithmetic_2da" : { "acc" : 0.41, "acc_stderr" : 0.011, "exact_match" : 0.40, "exact_match_stderr" : 0.011, "n" : 2000 },
 *     "truthfulqa_mc2" : { "acc" : 0.38, "acc_stderr" : 0.014, "n" : 817 },
 *     "validation" : { "examples" : 50, "loss" : 1.23, "perplexity" : 3.42, "tokens" : 4096 }
 *   },
 *   "config" : { "adapter" : "out/final", "model" : "meta-llama/Llama-2-7b-hf", "arithmetic" : { ... }, ... }
 * }
 * </pre>
 *
 * Keys are sorted at every level (results, then config, at the top), so the same results always
 * give the same bytes. Result metrics are numbers; config values are strings, numbers, booleans or
 * objects of those. A standard error that is undefined (fewer than two samples) is left out, since
 * JSON has no NaN. Integral numbers read back as {@code Long}, others as {@code Double}, so a
 * written report reads back {@link #equals equal}.
 *
 * <p>Immutable: each {@code with}-style method returns a new report.
 */
public final class EvaluationReport {
    /** Every map below the root is a TreeMap, so keys come out sorted; the root keeps results before config. */
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Map<String, Map<String, Object>> results;
    private final Map<String, Object> config;

    private EvaluationReport(Map<String, Map<String, Object>> results, Map<String, Object> config) {
        this.results = results;
        this.config = config;
    }

    /** A report with no results and no config. */
    public static EvaluationReport empty() {
        return new EvaluationReport(Collections.emptyMap(), Collections.emptyMap());
    }

    /** The base model's identifier (a Hugging Face id or a folder), under config "model". */
    public EvaluationReport model(String id) {
        return config("model", Objects.requireNonNull(id, "model"));
    }

    /** The adapter's identifier (a folder or a name), under config "adapter". */
    public EvaluationReport adapter(String id) {
        return config("adapter", Objects.requireNonNull(id, "adapter"));
    }

    /** Sets config {@code key}: a string, number, boolean, or a map of those (nested settings). */
    public EvaluationReport config(String key, Object value) {
        requireKey("config", key);
        Map<String, Object> next = new TreeMap<>(config);
        next.put(key, normalize("config." + key, value));
        return new EvaluationReport(results, Collections.unmodifiableMap(next));
    }

    /** Adds (or replaces) the task {@code name} with numeric {@code metrics}; NaN metrics are left out. */
    public EvaluationReport task(String name, Map<String, ? extends Number> metrics) {
        requireKey("task", name);
        Map<String, Object> m = new TreeMap<>();
        for (Map.Entry<String, ? extends Number> e : metrics.entrySet()) {
            requireKey("metric of " + name, e.getKey());
            Number v = Objects.requireNonNull(e.getValue(), () -> "metric " + name + "." + e.getKey() + " is null");
            double d = v.doubleValue();
            if (Double.isNaN(d)) {
                continue; // undefined, e.g. a standard error of one sample; JSON cannot carry NaN
            }
            if (Double.isInfinite(d)) {
                throw new IllegalArgumentException("metric " + name + "." + e.getKey() + " is " + d + "; JSON has no infinity");
            }
            m.put(e.getKey(), normalize(name + "." + e.getKey(), v));
        }
        Map<String, Map<String, Object>> next = new TreeMap<>(results);
        next.put(name, Collections.unmodifiableMap(m));
        return new EvaluationReport(Collections.unmodifiableMap(next), config);
    }

    /** "validation": loss, perplexity, supervised tokens and examples. */
    public EvaluationReport validation(LossEvaluator.LossResult r) {
        Map<String, Number> m = new LinkedHashMap<>();
        m.put("loss", r.loss());
        m.put("perplexity", r.perplexity());
        m.put("tokens", r.tokens());
        m.put("examples", r.examples());
        return task("validation", m);
    }

    /** One entry per arithmetic task (acc, exact_match, their standard errors, n) and config "arithmetic". */
    public EvaluationReport arithmetic(ArithmeticEvaluation.Result r) {
        EvaluationReport out = this;
        for (ArithmeticEvaluation.TaskResult t : r.tasks()) {
            Map<String, Number> m = new LinkedHashMap<>();
            m.put("acc", t.acc());
            m.put("acc_stderr", t.accStderr());
            m.put("exact_match", t.exactMatch());
            m.put("exact_match_stderr", t.exactMatchStderr());
            m.put("n", t.n());
            out = out.task(t.task().taskName(), m);
        }
        return out.config("arithmetic", r.settings());
    }

    /** {@code task}: exact_match, exact_match_stderr and n of greedy answers to instruction records. */
    public EvaluationReport responses(String task, ResponseEvaluation.Result r) {
        Map<String, Number> m = new LinkedHashMap<>();
        m.put("exact_match", r.exactMatch());
        m.put("exact_match_stderr", r.exactMatchStderr());
        m.put("n", r.n());
        return task(task, m);
    }

    /** "truthfulqa_mc1" and "truthfulqa_mc2" (acc, acc_stderr, n), those present, and config "multiple_choice". */
    public EvaluationReport multipleChoice(MultipleChoiceEvaluation.Result r) {
        EvaluationReport out = this;
        for (MultipleChoiceEvaluation.TaskScore s : new MultipleChoiceEvaluation.TaskScore[] {r.mc1(), r.mc2()}) {
            if (s != null) {
                Map<String, Number> m = new LinkedHashMap<>();
                m.put("acc", s.acc());
                m.put("acc_stderr", s.accStderr());
                m.put("n", s.n());
                out = out.task(s.task(), m);
            }
        }
        return out.config("multiple_choice", r.settings());
    }

    /** Task → metric → value (Long or Double), sorted. */
    public Map<String, Map<String, Object>> results() {
        return results;
    }

    /** Config key → value (String, Long, Double, Boolean or a map of those), sorted. */
    public Map<String, Object> config() {
        return config;
    }

    /** The metric {@code metric} of {@code task}, as a double; throws naming what is there when absent. */
    public double metric(String task, String metric) {
        Map<String, Object> m = results.get(task);
        if (m == null || !m.containsKey(metric)) {
            throw new IllegalArgumentException("the report has no " + task + "." + metric + "; it has " + results.keySet()
                    + (m == null ? "" : " and " + task + " has " + m.keySet()));
        }
        return ((Number) m.get(metric)).doubleValue();
    }

    // ---------------------------------------------------------------- JSON

    /** Pretty-printed JSON with sorted keys, "results" before "config". */
    public String toJson() {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("results", results);
        root.put("config", config);
        try {
            return JSON.writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes {@link #toJson()} to {@code file} (UTF-8), creating its folder if needed. */
    public void write(Path file) throws IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        Files.writeString(file, toJson(), StandardCharsets.UTF_8);
    }

    /** Reads a report written by {@link #write(Path)}; errors name the file. */
    public static EvaluationReport read(Path file) throws IOException {
        return fromJson(Files.readString(file, StandardCharsets.UTF_8), file.toString());
    }

    /** Parses a report written by {@link #toJson()}; {@code source} names it in errors. */
    public static EvaluationReport fromJson(String json, String source) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(source + ": not valid JSON " + dev.lora4j.io.JsonLimits.describe(e)
                    + "; expected an evaluation report "
                    + "{\"results\": {...}, \"config\": {...}}", e);
        }
        if (root == null || !root.isObject() || !root.path("results").isObject()) {
            throw new IllegalArgumentException(source + ": not an evaluation report; expected a JSON object with a "
                    + "\"results\" object (and a \"config\" object)");
        }
        EvaluationReport report = empty();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.get("results").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> task = it.next();
            if (!task.getValue().isObject()) {
                throw new IllegalArgumentException(source + ": results." + task.getKey() + " is not an object of metrics");
            }
            Map<String, Number> metrics = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> m = task.getValue().fields(); m.hasNext(); ) {
                Map.Entry<String, JsonNode> metric = m.next();
                if (!metric.getValue().isNumber()) {
                    throw new IllegalArgumentException(source + ": results." + task.getKey() + "." + metric.getKey() + " is "
                            + metric.getValue() + ", not a number");
                }
                metrics.put(metric.getKey(), (Number) fromNode(metric.getValue()));
            }
            report = report.task(task.getKey(), metrics);
        }
        JsonNode config = root.path("config");
        if (!config.isMissingNode()) {
            if (!config.isObject()) {
                throw new IllegalArgumentException(source + ": config is not an object");
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = config.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                report = report.config(e.getKey(), fromNode(e.getValue()));
            }
        }
        return report;
    }

    private static Object fromNode(JsonNode node) {
        if (node.isIntegralNumber()) {
            return node.asLong();
        }
        if (node.isNumber()) {
            return node.asDouble();
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isBoolean()) {
            return node.asBoolean();
        }
        if (node.isObject()) {
            Map<String, Object> m = new TreeMap<>();
            node.fields().forEachRemaining(e -> m.put(e.getKey(), fromNode(e.getValue())));
            return m;
        }
        throw new IllegalArgumentException("unsupported JSON value " + node + " in an evaluation report (arrays and null are "
                + "not used)");
    }

    /** Long for integral numbers, Double for the rest, sorted unmodifiable maps; rejects other types. */
    private static Object normalize(String where, Object value) {
        Objects.requireNonNull(value, () -> where + " is null");
        if (value instanceof Integer || value instanceof Long || value instanceof Short || value instanceof Byte) {
            return ((Number) value).longValue();
        }
        if (value instanceof Double || value instanceof Float) {
            double d = ((Number) value).doubleValue();
            if (!Double.isFinite(d)) {
                throw new IllegalArgumentException(where + " is " + d + "; JSON holds only finite numbers");
            }
            return d;
        }
        if (value instanceof String || value instanceof Boolean) {
            return value;
        }
        if (value instanceof Map<?, ?> map) {
            Map<String, Object> out = new TreeMap<>();
            for (Map.Entry<?, ?> e : map.entrySet()) {
                if (!(e.getKey() instanceof String k)) {
                    throw new IllegalArgumentException(where + " has the non-string key " + e.getKey());
                }
                out.put(k, normalize(where + "." + k, e.getValue()));
            }
            return Collections.unmodifiableMap(out);
        }
        throw new IllegalArgumentException(where + " is a " + value.getClass().getSimpleName() + "; use a string, number, "
                + "boolean or a map of those");
    }

    private static void requireKey(String what, String key) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("the " + what + " name is null or empty");
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof EvaluationReport r && results.equals(r.results) && config.equals(r.config);
    }

    @Override
    public int hashCode() {
        return 31 * results.hashCode() + config.hashCode();
    }

    @Override
    public String toString() {
        return "EvaluationReport{results=" + results + ", config=" + config + "}";
    }
}
