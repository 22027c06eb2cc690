package dev.lora4j.lora;

import dev.lora4j.io.PythonJson;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdapterConfigJsonTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The keys PEFT 0.20.0 writes for LoRA that the hand-made fixture file leaves out. */
    private static final Set<String> KEYS_ABSENT_FROM_FIXTURE = Set.of("alora_invocation_tokens", "alpha_pattern",
            "arrow_config", "auto_mapping", "corda_config", "ensure_weight_tying", "eva_config", "exclude_modules",
            "init_lora_weights", "layer_replication", "layers_pattern", "layers_to_transform", "loftq_config",
            "lora_bias", "lora_ga_config", "megatron_config", "megatron_core", "monteclora_config", "peft_version",
            "qalora_group_size", "rank_pattern", "revision", "target_parameters", "trainable_token_indices",
            "use_bdlora", "use_qalora", "velora_config");

    private static Path goldenTinyLlama() {
        String root = System.getProperty("lora4j.fixtures");
        Path dir = root == null ? null : Path.of(root, "golden-tiny-llama");
        assumeTrue(dir != null && Files.isDirectory(dir), "fixtures golden-tiny-llama absent (" + dir + "); skipping");
        return dir;
    }

    /** Tensor name to shape, from a safetensors header (u64 little-endian length, then JSON). */
    private static Map<String, List<Integer>> safetensorsShapes(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            long length = ByteBuffer.wrap(in.readNBytes(8)).order(ByteOrder.LITTLE_ENDIAN).getLong();
            JsonNode header = JSON.readTree(new String(in.readNBytes((int) length), StandardCharsets.UTF_8));
            Map<String, List<Integer>> shapes = new TreeMap<>();
            header.properties().forEach(e -> {
                if (!e.getKey().equals("__metadata__")) {
                    List<Integer> shape = new ArrayList<>();
                    e.getValue().get("shape").forEach(d -> shape.add(d.intValue()));
                    shapes.put(e.getKey(), shape);
                }
            });
            return shapes;
        }
    }

    private static String message(org.junit.jupiter.api.function.Executable call) {
        return assertThrows(IllegalArgumentException.class, call).getMessage();
    }

    @Test
    void readsTheGoldenAdapterConfig() throws IOException {
        Path dir = goldenTinyLlama();
        AdapterConfigJson file = AdapterConfigJson.read(dir.resolve("adapter"));
        LoraConfig lora = file.lora();
        assertEquals(4, lora.rank());
        assertEquals(8.0, lora.alpha());
        assertEquals(2.0, lora.scaling(lora.rank(), lora.alpha()));
        assertEquals(0.0, lora.dropout());
        assertEquals(List.of("down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"),
                lora.targetModules());
        assertEquals(LoraConfig.defaults().targets(Target.ALL).withRank(4).alpha(8), lora);
        assertEquals(LoraInit.KAIMING_UNIFORM, lora.init());
        assertEquals("CAUSAL_LM", file.taskType());
        assertTrue(file.inferenceMode());
        assertNull(file.baseModelNameOrPath());
        assertNull(file.peftVersion());

        JsonNode expected = JSON.readTree(dir.resolve("expected/expected.json").toFile()).get("lora");
        assertEquals(expected.get("r").intValue(), lora.rank());
        assertEquals(expected.get("alpha").doubleValue(), lora.alpha());
        assertEquals(expected.get("scaling").doubleValue(), lora.scaling(lora.rank(), lora.alpha()));
    }

    @Test
    void resolvesEveryModuleOfTheGoldenCheckpointAsTheAdapterFileHasThem() throws IOException {
        Path dir = goldenTinyLlama();
        LoraConfig lora = AdapterConfigJson.read(dir.resolve("adapter/adapter_config.json")).lora();
        Map<String, List<Integer>> model = safetensorsShapes(dir.resolve("model/model.safetensors"));
        List<String> matrices = new ArrayList<>();
        model.forEach((name, shape) -> {
            if (name.endsWith(".weight") && shape.size() == 2 && !name.contains("embed_tokens")) {
                matrices.add(name.substring(0, name.length() - ".weight".length()));
            }
        });

        List<String> adapted = lora.validateAgainst(matrices);
        assertEquals(15, adapted.size(), "7 projections in each of 2 layers, and lm_head");

        Map<String, List<Integer>> adapter = safetensorsShapes(dir.resolve("adapter/adapter_model.safetensors"));
        Set<String> adapterModules = new TreeSet<>();
        adapter.keySet().forEach(k -> adapterModules.add(
                k.replaceFirst("^base_model\\.model\\.", "").replaceFirst("\\.lora_[AB]\\.weight$", "")));
        assertEquals(adapterModules, new TreeSet<>(adapted));

        for (String module : adapted) {
            ModuleLora m = lora.resolve(module).orElseThrow();
            assertEquals(new ModuleLora(4, 8.0, 2.0, 0.0), m);
            List<Integer> weight = model.get(module + ".weight");
            assertEquals(List.of(m.rank(), weight.get(1)), adapter.get("base_model.model." + module + ".lora_A.weight"));
            assertEquals(List.of(weight.get(0), m.rank()), adapter.get("base_model.model." + module + ".lora_B.weight"));
        }
        assertTrue(lora.resolve("model.embed_tokens").isEmpty());
    }

    @Test
    void writerOutputComparedWithTheFixtureDiffersOnlyInKeyOrderAndAddedKeys() throws IOException {
        Path file = goldenTinyLlama().resolve("adapter/adapter_config.json");
        String fixture = Files.readString(file, StandardCharsets.UTF_8);
        AdapterConfigJson read = AdapterConfigJson.read(file);
        String ours = read.toJson();

        assertNotEquals(fixture, ours, "not byte-identical: see the differences below");
        JsonNode fixtureTree = JSON.readTree(fixture);
        JsonNode ourTree = JSON.readTree(ours);
        List<String> fixtureKeys = new ArrayList<>();
        fixtureTree.fieldNames().forEachRemaining(fixtureKeys::add);
        List<String> ourKeys = new ArrayList<>();
        ourTree.fieldNames().forEachRemaining(ourKeys::add);

        // 1. The fixture's keys are not in json.dumps(sort_keys=True) order; ours are.
        assertNotEquals(new ArrayList<>(new TreeSet<>(fixtureKeys)), fixtureKeys);
        assertEquals(new ArrayList<>(new TreeSet<>(ourKeys)), ourKeys);
        // 2. We write the 40 keys of PEFT 0.20.0; the fixture has 13 of them.
        assertEquals(AdapterConfigJson.KEY_COUNT, ourKeys.size());
        Set<String> added = new TreeSet<>(ourKeys);
        added.removeAll(fixtureKeys);
        assertEquals(new TreeSet<>(KEYS_ABSENT_FROM_FIXTURE), added);
        assertTrue(ourKeys.containsAll(fixtureKeys));
        // 3. Every key the fixture has carries the same value, formatted byte for byte the same:
        //    the fixture's keys, in its order, rendered by our writer reproduce the file exactly.
        Map<String, Object> ourValues = read.toDict();
        Map<String, Object> inFixtureOrder = new LinkedHashMap<>();
        for (String key : fixtureKeys) {
            assertEquals(fixtureTree.get(key), ourTree.get(key), key);
            inFixtureOrder.put(key, ourValues.get(key));
        }
        assertEquals(fixture, PythonJson.dumps(inFixtureOrder, 2, false));
        assertFalse(fixture.endsWith("\n"));
        assertFalse(ours.endsWith("\n"));
    }

    @Test
    void writesPeftLayoutByteForByte() {
        LoraConfig lora = LoraConfig.rank(16).dropout(0.05).targets(Target.QUERY, Target.VALUE)
                .rankPattern(Map.of("layers.0.self_attn.q_proj", 32));
        String expected = """
                {
                  "alora_invocation_tokens": null,
                  "alpha_pattern": {},
                  "arrow_config": null,
                  "auto_mapping": null,
                  "base_model_name_or_path": "meta-llama/Llama-3.2-1B",
                  "bias": "none",
                  "corda_config": null,
                  "ensure_weight_tying": false,
                  "eva_config": null,
                  "exclude_modules": null,
                  "fan_in_fan_out": false,
                  "inference_mode": true,
                  "init_lora_weights": true,
                  "layer_replication": null,
                  "layers_pattern": null,
                  "layers_to_transform": null,
                  "loftq_config": {},
                  "lora_alpha": 32.0,
                  "lora_bias": false,
                  "lora_dropout": 0.05,
                  "lora_ga_config": null,
                  "megatron_config": null,
                  "megatron_core": "megatron.core",
                  "modules_to_save": null,
                  "monteclora_config": null,
                  "peft_type": "LORA",
                  "peft_version": "0.20.0",
                  "qalora_group_size": 16,
                  "r": 16,
                  "rank_pattern": {
                    "layers.0.self_attn.q_proj": 32
                  },
                  "revision": null,
                  "target_modules": [
                    "q_proj",
                    "v_proj"
                  ],
                  "target_parameters": null,
                  "task_type": "CAUSAL_LM",
                  "trainable_token_indices": null,
                  "use_bdlora": null,
                  "use_dora": false,
                  "use_qalora": false,
                  "use_rslora": false,
                  "velora_config": null
                }""";
        assertEquals(expected, AdapterConfigJson.of(lora).withBaseModel("meta-llama/Llama-3.2-1B").toJson());
    }

    @Test
    void writeThenReadRoundTripsEveryOption(@TempDir Path tmp) throws IOException {
        Map<String, Integer> ranks = new LinkedHashMap<>();
        ranks.put("layers.0.self_attn.q_proj", 32);
        ranks.put("q_proj", 4);
        LoraConfig lora = LoraConfig.rank(12).alpha(6.5).dropout(0.1).targets(Target.ALL).rankPattern(ranks)
                .alphaPattern(Map.of("lm_head", 1.5)).layersToTransform(0, 2).layersPattern("layers")
                .useRslora(true).init(LoraInit.GAUSSIAN);
        AdapterConfigJson original = AdapterConfigJson.of(lora).withBaseModel("/models/llama").withRevision("v1.0")
                .withInferenceMode(false);

        Path written = original.writeTo(tmp.resolve("adapter"));
        assertEquals(tmp.resolve("adapter").resolve(AdapterConfigJson.FILE_NAME), written);
        AdapterConfigJson back = AdapterConfigJson.read(tmp.resolve("adapter"));
        assertEquals(original, back);
        assertEquals(original.toJson(), back.toJson());
        assertEquals("gaussian", back.initLoraWeights());
        assertEquals(AdapterConfigJson.PEFT_VERSION, back.peftVersion());

        LoraConfig regex = LoraConfig.rank(4).targetPattern("model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj");
        AdapterConfigJson regexBack = AdapterConfigJson.parse(AdapterConfigJson.of(regex).toJson(), "regex");
        assertEquals(regex, regexBack.lora());
        assertTrue(AdapterConfigJson.of(regex).toJson().contains(
                "\"target_modules\": \"model\\\\.layers\\\\.\\\\d+\\\\.self_attn\\\\.(q|v)_proj\","));
    }

    @Test
    void patternKeysComeBackSortedAsPeftWritesThem() {
        Map<String, Integer> ranks = new LinkedHashMap<>();
        ranks.put("q_proj", 4);
        ranks.put("layers.0.self_attn.q_proj", 32);
        LoraConfig lora = LoraConfig.defaults().rankPattern(ranks);
        LoraConfig back = AdapterConfigJson.parse(AdapterConfigJson.of(lora).toJson(), "sorted").lora();
        assertEquals(List.of("layers.0.self_attn.q_proj", "q_proj"), new ArrayList<>(back.rankPattern().keySet()));
        assertEquals(4, lora.resolve("model.layers.0.self_attn.q_proj").orElseThrow().rank());
        assertEquals(32, back.resolve("model.layers.0.self_attn.q_proj").orElseThrow().rank());
    }

    @Test
    void readsTolerantlyWithPeftDefaults() {
        AdapterConfigJson minimal = AdapterConfigJson.parse(
                "{\"peft_type\": \"LORA\", \"target_modules\": [\"q_proj\"], \"from_the_future\": {\"x\": [1]},"
                        + " \"use_dora\": false, \"modules_to_save\": null, \"exclude_modules\": [],"
                        + " \"lora_dropout\": 0.1, \"runtime_config\": {\"ephemeral_gpu_offload\": false}}", "minimal");
        assertEquals(8, minimal.lora().rank());
        assertEquals(8.0, minimal.lora().alpha(), "PEFT's lora_alpha default, not 2 * rank");
        assertEquals(0.1, minimal.lora().dropout());
        assertEquals(List.of("q_proj"), minimal.lora().targetModules());
        assertFalse(minimal.inferenceMode());
        assertNull(minimal.taskType());

        LoraConfig allLinear = AdapterConfigJson.parse(
                "{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": \"all-linear\", \"layers_to_transform\": 3}",
                "shorthand").lora();
        assertEquals(LoraConfig.defaults().targetModules(), allLinear.targetModules());
        assertEquals(List.of(3), allLinear.layersToTransform());

        for (String init : List.of("\"pissa_niter_16\"", "\"olora\"", "\"loftq\"", "\"eva\"", "\"corda\"", "false")) {
            AdapterConfigJson f = AdapterConfigJson.parse(
                    "{\"peft_type\": \"LORA\", \"target_modules\": [\"q_proj\"], \"init_lora_weights\": " + init + "}", init);
            assertEquals(LoraInit.KAIMING_UNIFORM, f.lora().init());
            assertTrue(f.toJson().contains("\"init_lora_weights\": " + init + ","), "kept for writing back: " + init);
        }
        AdapterConfigJson gaussian = AdapterConfigJson.parse(
                "{\"peft_type\": \"LORA\", \"target_modules\": [\"q_proj\"], \"init_lora_weights\": \"Gaussian\"}", "g");
        assertEquals(LoraInit.GAUSSIAN, gaussian.lora().init());
        assertEquals("true", gaussian.withLora(gaussian.lora().init(LoraInit.KAIMING_UNIFORM)).initLoraWeights());
    }

    @Test
    void unsupportedFeaturesAndBadValuesFailNamingTheKey() {
        String base = "{\"peft_type\": \"LORA\", \"target_modules\": [\"q_proj\"], ";
        assertEquals("f: use_dora is true: DoRA (weight-decomposed LoRA) is not supported; use an adapter trained with "
                + "use_dora=False", message(() -> AdapterConfigJson.parse(base + "\"use_dora\": true}", "f")));
        assertEquals("f: bias is 'lora_only', but trained bias vectors are not supported; only 'none' is",
                message(() -> AdapterConfigJson.parse(base + "\"bias\": \"lora_only\"}", "f")));
        assertTrue(message(() -> AdapterConfigJson.parse(base + "\"fan_in_fan_out\": true}", "f"))
                .startsWith("f: fan_in_fan_out is true: is for GPT-2 style Conv1D"));
        assertEquals("f: modules_to_save is [\"embed_tokens\"]: lists fully trained module copies, which are not supported",
                message(() -> AdapterConfigJson.parse(base + "\"modules_to_save\": [\"embed_tokens\"]}", "f")));
        assertTrue(message(() -> AdapterConfigJson.parse(base + "\"lora_bias\": true}", "f")).startsWith("f: lora_bias is true"));
        assertEquals("f: peft_type is 'IA3', but only 'LORA' adapters are supported",
                message(() -> AdapterConfigJson.parse("{\"peft_type\": \"IA3\"}", "f")));
        assertTrue(message(() -> AdapterConfigJson.parse("{\"r\": 4}", "f")).startsWith("f: peft_type is missing"));
        assertTrue(message(() -> AdapterConfigJson.parse("{\"peft_type\": \"LORA\"}", "f"))
                .startsWith("f: target_modules is missing"));
        assertEquals("f: r must be an integer, was \"four\"",
                message(() -> AdapterConfigJson.parse(base + "\"r\": \"four\"}", "f")));
        assertEquals("f: r: rank must be >= 1, was 0; use a positive rank such as 8, 16 or 64",
                message(() -> AdapterConfigJson.parse(base + "\"r\": 0}", "f")));
        assertTrue(message(() -> AdapterConfigJson.parse(base + "\"lora_dropout\": NaN}", "f"))
                .startsWith("f: lora_dropout: dropout must be in [0, 1), was NaN"));
        assertTrue(message(() -> AdapterConfigJson.parse(
                "{\"peft_type\": \"LORA\", \"target_modules\": \".*q_proj\", \"layers_to_transform\": [0]}", "f"))
                .startsWith("f: layers_to_transform: layersToTransform cannot be combined with targetPattern"));
        assertTrue(message(() -> AdapterConfigJson.parse("{\"peft_type\": \"LORA\",", "f")).startsWith("f: not valid JSON"));
        assertTrue(message(() -> AdapterConfigJson.parse("[1]", "f")).startsWith("f: must hold a JSON object, was ARRAY"));
        assertThrows(IOException.class, () -> AdapterConfigJson.read(Path.of("/nonexistent/adapter")));
    }

    @Test
    void initLoraWeightsMustAgreeWithTheConfig() {
        LoraConfig gaussian = LoraConfig.defaults().init(LoraInit.GAUSSIAN);
        assertTrue(message(() -> new AdapterConfigJson(gaussian, null, null, "CAUSAL_LM", true, "true", null))
                .startsWith("initLoraWeights 'true' means KAIMING_UNIFORM but lora.init() is GAUSSIAN"));
        assertEquals("gaussian", new AdapterConfigJson(gaussian, null, null, null, true, null, null).initLoraWeights());
        assertEquals("true", AdapterConfigJson.of(gaussian).withLora(LoraConfig.defaults()).initLoraWeights());
    }
}
