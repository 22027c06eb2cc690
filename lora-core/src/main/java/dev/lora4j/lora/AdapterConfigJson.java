package dev.lora4j.lora;

import dev.lora4j.io.JsonLimits;
import dev.lora4j.io.PythonJson;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.UnaryOperator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * PEFT's {@code adapter_config.json} for a LoRA adapter: the {@link LoraConfig} plus the fields
 * that describe the adapter file itself.
 *
 * <p><b>Writing</b> reproduces {@code PeftModel.save_pretrained} of PEFT {@value #PEFT_VERSION}:
 * {@code json.dumps(LoraConfig.to_dict(), indent=2, sort_keys=True)} with no trailing newline, all
 * 40 keys of that version's LoRA config (runtime_config excluded, as
 * {@code to_dict} drops it), features lora4j does not implement at their off values, and
 * {@code inference_mode} true as save_pretrained sets it. Differences that cannot be avoided:
 * <ul>
 * <li>{@code target_modules} is written sorted (PEFT writes its Python set in hash order, which
 *     changes from run to run);</li>
 * <li>{@code lora_alpha} and alpha_pattern values are floats ({@code 16.0}) because alpha is a
 *     double here; PEFT echoes whatever type the user passed;</li>
 * <li>{@code rank_pattern} and {@code alpha_pattern} come out with sorted keys, as in PEFT, so a
 *     reloaded config tries its keys in sorted order (PEFT has the same effect).</li>
 * </ul>
 *
 * <p><b>Reading</b> accepts any PEFT version's LoRA file: unknown keys are ignored (as PEFT does
 * for keys from newer versions); missing keys take PEFT's defaults (r 8, lora_alpha 8,
 * lora_dropout 0); {@code target_modules} may be a list (names or suffixes), a regex string, or
 * {@code "all-linear"} (the linear layers of the blocks). A feature that changes what the adapter
 * computes and that lora4j does not implement (DoRA, bias training, fan_in_fan_out, lora_bias,
 * modules_to_save, exclude_modules, QALoRA, aLoRA, layer replication, trainable tokens,
 * target_parameters, BD-LoRA, Arrow, MonteCLoRA) fails with the key named. Every
 * {@code init_lora_weights} value is accepted, since initialization matters only for a new
 * adapter: {@code "gaussian"} maps to {@link LoraInit#GAUSSIAN}, anything else to
 * {@link LoraInit#KAIMING_UNIFORM}, and the original value is kept for writing back. The
 * {@link LoraConfig#seed()} is not part of the file; read configs get the default seed.
 *
 * @param lora                the LoRA settings
 * @param baseModelNameOrPath {@code base_model_name_or_path}, or null
 * @param revision            the base model's revision, or null
 * @param taskType            {@code task_type}, {@value #CAUSAL_LM} for language models, or null
 * @param inferenceMode       {@code inference_mode}; PEFT always saves true
 * @param initLoraWeights     {@code init_lora_weights} as written: {@code "true"} or {@code "false"}
 *                            for the JSON booleans, otherwise the method name ({@code "gaussian"},
 *                            {@code "pissa"}, ...); null means the value for {@code lora.init()}
 * @param peftVersion         {@code peft_version} as read, or null (written as {@value #PEFT_VERSION})
 */
public record AdapterConfigJson(LoraConfig lora, String baseModelNameOrPath, String revision, String taskType,
        boolean inferenceMode, String initLoraWeights, String peftVersion) {

    public static final String FILE_NAME = "adapter_config.json";
    /** The PEFT release whose adapter_config.json layout {@link #toJson()} reproduces. */
    public static final String PEFT_VERSION = "0.20.0";
    public static final String CAUSAL_LM = "CAUSAL_LM";
    static final int KEY_COUNT = 40;

    private static final Logger LOG = LoggerFactory.getLogger(AdapterConfigJson.class);
    /** Largest adapter_config.json read (PEFT's are about 1 kB; a long rank_pattern might be a few MB). */
    public static final long MAX_FILE_BYTES = 16L << 20;
    private static final JsonMapper MAPPER = JsonLimits.mapperBuilder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS) // Python's json.dumps writes NaN and Infinity
            .build();

    public AdapterConfigJson {
        Objects.requireNonNull(lora, "lora");
        if (initLoraWeights == null) {
            initLoraWeights = lora.init().peftName();
        } else if (initOf(initLoraWeights) != lora.init()) {
            throw new IllegalArgumentException("initLoraWeights '" + initLoraWeights + "' means "
                    + initOf(initLoraWeights) + " but lora.init() is " + lora.init()
                    + "; pass null to derive it from the config");
        }
    }

    /** A file for a new adapter: task CAUSAL_LM, inference mode, no base model recorded. */
    public static AdapterConfigJson of(LoraConfig lora) {
        return new AdapterConfigJson(lora, null, null, CAUSAL_LM, true, null, PEFT_VERSION);
    }

    /** With other LoRA settings; init_lora_weights follows the new config's init when it changes. */
    public AdapterConfigJson withLora(LoraConfig lora) {
        String init = initOf(initLoraWeights) == lora.init() ? initLoraWeights : null;
        return new AdapterConfigJson(lora, baseModelNameOrPath, revision, taskType, inferenceMode, init, peftVersion);
    }

    public AdapterConfigJson withBaseModel(String baseModelNameOrPath) {
        return new AdapterConfigJson(lora, baseModelNameOrPath, revision, taskType, inferenceMode, initLoraWeights,
                peftVersion);
    }

    public AdapterConfigJson withRevision(String revision) {
        return new AdapterConfigJson(lora, baseModelNameOrPath, revision, taskType, inferenceMode, initLoraWeights,
                peftVersion);
    }

    public AdapterConfigJson withTaskType(String taskType) {
        return new AdapterConfigJson(lora, baseModelNameOrPath, revision, taskType, inferenceMode, initLoraWeights,
                peftVersion);
    }

    public AdapterConfigJson withInferenceMode(boolean inferenceMode) {
        return new AdapterConfigJson(lora, baseModelNameOrPath, revision, taskType, inferenceMode, initLoraWeights,
                peftVersion);
    }

    /** The file's text, exactly as PEFT {@value #PEFT_VERSION} would write it (see the class notes). */
    public String toJson() {
        return PythonJson.dumps(toDict(), 2, true);
    }

    /**
     * Writes {@value #FILE_NAME} into this directory (created if needed), as PEFT's
     * {@code save_pretrained} does, and returns the file's path.
     */
    public Path writeTo(Path directory) throws IOException {
        Files.createDirectories(directory);
        Path file = directory.resolve(FILE_NAME);
        Files.writeString(file, toJson(), StandardCharsets.UTF_8);
        return file;
    }

    /** Reads an adapter_config.json, given as the file or the adapter directory that holds it. */
    public static AdapterConfigJson read(Path fileOrDirectory) throws IOException {
        Path file = Files.isDirectory(fileOrDirectory) ? fileOrDirectory.resolve(FILE_NAME) : fileOrDirectory;
        if (!Files.isRegularFile(file)) {
            throw new IOException(file + ": no such file; a PEFT adapter directory holds " + FILE_NAME
                    + " next to adapter_model.safetensors");
        }
        return parse(JsonLimits.readSmallFile(file, MAX_FILE_BYTES, FILE_NAME), file.toString());
    }

    /** Parses adapter_config.json text; {@code source} names it in error messages. */
    public static AdapterConfigJson parse(String json, String source) {
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            String where = e.getLocation() == null ? ""
                    : " at line " + e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr();
            throw new IllegalArgumentException(source + ": not valid JSON (" + e.getOriginalMessage() + where
                    + "); PEFT writes adapter_config.json with json.dumps", e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(source + ": must hold a JSON object, was "
                    + (root == null ? "empty" : root.getNodeType()) + "; is this an adapter_config.json?");
        }
        return new Reader(root, source).read();
    }

    /** The keys and values {@link #toJson()} writes, in no particular order. */
    Map<String, Object> toDict() {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("alora_invocation_tokens", null);
        d.put("alpha_pattern", patternDict(lora.alphaPattern(), "alphaPattern"));
        d.put("arrow_config", null);
        d.put("auto_mapping", null);
        d.put("base_model_name_or_path", baseModelNameOrPath);
        d.put("bias", "none");
        d.put("corda_config", null);
        d.put("ensure_weight_tying", false);
        d.put("eva_config", null);
        d.put("exclude_modules", null);
        d.put("fan_in_fan_out", false);
        d.put("inference_mode", inferenceMode);
        d.put("init_lora_weights", "true".equals(initLoraWeights) ? Boolean.TRUE
                : "false".equals(initLoraWeights) ? (Object) Boolean.FALSE : initLoraWeights);
        d.put("layer_replication", null);
        d.put("layers_pattern", lora.layersPattern().isEmpty() ? null : lora.layersPattern());
        d.put("layers_to_transform", lora.layersToTransform().isEmpty() ? null : lora.layersToTransform());
        d.put("loftq_config", Map.of());
        d.put("lora_alpha", lora.alpha());
        d.put("lora_bias", false);
        d.put("lora_dropout", lora.dropout());
        d.put("lora_ga_config", null);
        d.put("megatron_config", null);
        d.put("megatron_core", "megatron.core");
        d.put("modules_to_save", null);
        d.put("monteclora_config", null);
        d.put("peft_type", "LORA");
        d.put("peft_version", peftVersion != null ? peftVersion : PEFT_VERSION);
        d.put("qalora_group_size", 16);
        d.put("r", lora.rank());
        d.put("rank_pattern", patternDict(lora.rankPattern(), "rankPattern"));
        d.put("revision", revision);
        d.put("target_modules", lora.targetPattern().isPresent() ? lora.targetPattern().get() : lora.targetModules());
        d.put("target_parameters", null);
        d.put("task_type", taskType);
        d.put("trainable_token_indices", null);
        d.put("use_bdlora", null);
        d.put("use_dora", false);
        d.put("use_qalora", false);
        d.put("use_rslora", lora.useRslora());
        d.put("velora_config", null);
        return d;
    }

    private static Map<String, ?> patternDict(Map<String, ?> pattern, String parameter) {
        TreeMap<String, Object> sorted = new TreeMap<>(PythonJson::compareCodePoints);
        sorted.putAll(pattern);
        if (!new ArrayList<>(sorted.keySet()).equals(new ArrayList<>(pattern.keySet()))) {
            LOG.warn("{} keys {} are written in sorted order {}, as PEFT writes them; a config read back tries "
                    + "them in that order, which matters only when several keys match the same module",
                    parameter, pattern.keySet(), sorted.keySet());
        }
        return sorted;
    }

    private static LoraInit initOf(String initLoraWeights) {
        return "gaussian".equalsIgnoreCase(initLoraWeights) ? LoraInit.GAUSSIAN : LoraInit.KAIMING_UNIFORM;
    }

    /** One parse: keeps the source name for messages. */
    private static final class Reader {
        private final JsonNode root;
        private final String source;

        Reader(JsonNode root, String source) {
            this.root = root;
            this.source = source;
        }

        AdapterConfigJson read() {
            String peftType = text("peft_type");
            if (peftType == null) {
                throw fail("peft_type", "is missing; every PEFT adapter_config.json names its method (\"LORA\")");
            }
            if (!peftType.equals("LORA")) {
                throw fail("peft_type", "is '" + peftType + "', but only 'LORA' adapters are supported");
            }
            rejectIfSet("use_dora", "DoRA (weight-decomposed LoRA) is not supported; use an adapter trained with use_dora=False");
            String bias = text("bias");
            if (bias != null && !bias.equals("none")) {
                throw fail("bias", "is '" + bias + "', but trained bias vectors are not supported; only 'none' is");
            }
            rejectIfSet("fan_in_fan_out", "is for GPT-2 style Conv1D weights stored [in, out]; Llama's linear layers need false");
            rejectIfSet("lora_bias", "adds a trained bias to B, which is not supported");
            rejectIfSet("modules_to_save", "lists fully trained module copies, which are not supported");
            rejectIfSet("exclude_modules", "is not supported; name the adapted modules in target_modules instead");
            rejectIfSet("use_qalora", "(quantization-aware LoRA) is not supported");
            rejectIfSet("alora_invocation_tokens", "(activated LoRA) is not supported");
            rejectIfSet("layer_replication", "(replicated decoder layers) is not supported");
            rejectIfSet("trainable_token_indices", "(trainable token embeddings) is not supported");
            rejectIfSet("target_parameters", "(LoRA on raw parameters) is not supported; target modules instead");
            rejectIfSet("use_bdlora", "(block-diagonal LoRA) is not supported");
            rejectIfSet("arrow_config", "(Arrow routing) is not supported");
            rejectIfSet("monteclora_config", "(Monte Carlo LoRA) is not supported");

            int r = integer("r", LoraConfig.DEFAULT_RANK);
            double alpha = number("lora_alpha", 8.0);
            double dropout = number("lora_dropout", 0.0);
            String initLoraWeights = initLoraWeights();

            LoraConfig lora = apply("r", LoraConfig.defaults(), c -> c.withRank(r));
            lora = apply("lora_alpha", lora, c -> c.alpha(alpha));
            lora = apply("lora_dropout", lora, c -> c.dropout(dropout));
            lora = apply("target_modules", lora, targets());
            List<String> layersPattern = stringOrStrings("layers_pattern");
            lora = apply("layers_pattern", lora, c -> c.layersPattern(layersPattern.toArray(String[]::new)));
            int[] layers = layersToTransform();
            lora = apply("layers_to_transform", lora, c -> c.layersToTransform(layers));
            Map<String, Integer> rankPattern = new LinkedHashMap<>();
            object("rank_pattern").forEach((key, value) -> rankPattern.put(key, asInteger("rank_pattern." + key, value)));
            lora = apply("rank_pattern", lora, c -> c.rankPattern(rankPattern));
            Map<String, Double> alphaPattern = new LinkedHashMap<>();
            object("alpha_pattern").forEach((key, value) -> alphaPattern.put(key, asNumber("alpha_pattern." + key, value)));
            lora = apply("alpha_pattern", lora, c -> c.alphaPattern(alphaPattern));
            boolean rslora = bool("use_rslora", false);
            lora = apply("use_rslora", lora, c -> c.useRslora(rslora));
            LoraInit init = initOf(initLoraWeights);
            lora = apply("init_lora_weights", lora, c -> c.init(init));

            return new AdapterConfigJson(lora, text("base_model_name_or_path"), text("revision"), text("task_type"),
                    bool("inference_mode", false), initLoraWeights, text("peft_version"));
        }

        /** The config step for target_modules, after checking the JSON shape outside the step. */
        private UnaryOperator<LoraConfig> targets() {
            JsonNode node = root.get("target_modules");
            if (node == null || node.isNull()) {
                throw fail("target_modules", "is missing; the adapted module names are needed (PEFT writes them "
                        + "when it saves an adapter)");
            }
            if (node.isTextual()) {
                String text = node.asText();
                return text.equalsIgnoreCase("all-linear")
                        ? c -> c.targets(LoraConfig.DEFAULT_TARGETS.toArray(Target[]::new))
                        : c -> c.targetPattern(text);
            }
            if (!node.isArray()) {
                throw fail("target_modules", "must be a list of module names or a regex string, was " + node);
            }
            List<String> names = new ArrayList<>();
            for (JsonNode item : node) {
                if (!item.isTextual()) {
                    throw fail("target_modules", "must hold module names (strings), found " + item);
                }
                names.add(item.asText());
            }
            return c -> c.targetModules(names);
        }

        private String initLoraWeights() {
            JsonNode node = root.get("init_lora_weights");
            if (node == null || node.isNull()) {
                return LoraInit.KAIMING_UNIFORM.peftName();
            }
            if (node.isBoolean()) {
                return node.asBoolean() ? "true" : "false";
            }
            if (node.isTextual()) {
                return node.asText();
            }
            throw fail("init_lora_weights", "must be true, false or a method name such as \"gaussian\", was " + node);
        }

        private int[] layersToTransform() {
            JsonNode node = root.get("layers_to_transform");
            if (node == null || node.isNull()) {
                return new int[0];
            }
            if (node.isArray()) {
                int[] layers = new int[node.size()];
                for (int i = 0; i < layers.length; i++) {
                    layers[i] = asInteger("layers_to_transform[" + i + "]", node.get(i));
                }
                return layers;
            }
            return new int[] {asInteger("layers_to_transform", node)};
        }

        private LoraConfig apply(String key, LoraConfig config, UnaryOperator<LoraConfig> step) {
            try {
                return step.apply(config);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(source + ": " + key + ": " + e.getMessage(), e);
            }
        }

        private void rejectIfSet(String key, String why) {
            JsonNode node = root.get(key);
            boolean set = node != null && !node.isNull()
                    && !(node.isBoolean() && !node.asBoolean())
                    && !(node.isContainerNode() && node.isEmpty())
                    && !(node.isTextual() && node.asText().isEmpty());
            if (set) {
                throw fail(key, "is " + node + ": " + why);
            }
        }

        private String text(String key) {
            JsonNode node = root.get(key);
            if (node == null || node.isNull()) {
                return null;
            }
            if (!node.isTextual()) {
                throw fail(key, "must be a string or null, was " + node);
            }
            return node.asText();
        }

        private boolean bool(String key, boolean absent) {
            JsonNode node = root.get(key);
            if (node == null || node.isNull()) {
                return absent;
            }
            if (!node.isBoolean()) {
                throw fail(key, "must be true or false, was " + node);
            }
            return node.asBoolean();
        }

        private int integer(String key, int absent) {
            JsonNode node = root.get(key);
            return node == null || node.isNull() ? absent : asInteger(key, node);
        }

        private double number(String key, double absent) {
            JsonNode node = root.get(key);
            return node == null || node.isNull() ? absent : asNumber(key, node);
        }

        private int asInteger(String key, JsonNode node) {
            if (node == null || !node.isIntegralNumber() || !node.canConvertToInt()) {
                throw fail(key, "must be an integer, was " + node);
            }
            return node.intValue();
        }

        private double asNumber(String key, JsonNode node) {
            if (node == null || !node.isNumber()) {
                throw fail(key, "must be a number, was " + node);
            }
            return node.doubleValue();
        }

        private List<String> stringOrStrings(String key) {
            JsonNode node = root.get(key);
            List<String> values = new ArrayList<>();
            if (node == null || node.isNull()) {
                return values;
            }
            if (node.isTextual()) {
                if (!node.asText().isEmpty()) {
                    values.add(node.asText());
                }
                return values;
            }
            if (!node.isArray()) {
                throw fail(key, "must be a string, a list of strings or null, was " + node);
            }
            for (JsonNode item : node) {
                if (!item.isTextual()) {
                    throw fail(key, "must hold strings, found " + item);
                }
                values.add(item.asText());
            }
            return values;
        }

        private Map<String, JsonNode> object(String key) {
            JsonNode node = root.get(key);
            Map<String, JsonNode> entries = new LinkedHashMap<>();
            if (node == null || node.isNull()) {
                return entries;
            }
            if (!node.isObject()) {
                throw fail(key, "must be an object mapping module patterns to values, was " + node);
            }
            for (Map.Entry<String, JsonNode> e : node.properties()) {
                entries.put(e.getKey(), e.getValue());
            }
            return entries;
        }

        private IllegalArgumentException fail(String key, String problem) {
            return new IllegalArgumentException(source + ": " + key + " " + problem);
        }
    }
}
