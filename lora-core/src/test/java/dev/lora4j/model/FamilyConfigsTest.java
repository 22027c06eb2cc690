package dev.lora4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.testing.Fixtures;
import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The per-family config.json readers: what they read, what they refuse, and that configs round-trip. */
class FamilyConfigsTest {

    private static LlamaConfig golden(String family) throws Exception {
        return LlamaConfig.read(Fixtures.require("golden-" + family).resolve("model/config.json"));
    }

    private static String goldenText(String family) throws Exception {
        return Files.readString(Fixtures.require("golden-" + family).resolve("model/config.json"));
    }

    /** The family's config.json with {@code key} set to the JSON text {@code value}. */
    private static String edited(String family, String key, String value) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = (ObjectNode) json.readTree(goldenText(family));
        root.set(key, json.readTree(value));
        return json.writeValueAsString(root);
    }

    private static String without(String family, String key) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = (ObjectNode) json.readTree(goldenText(family));
        root.remove(key);
        return json.writeValueAsString(root);
    }

    private static void assertRefused(String json, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaConfig.parse(json, "config.json"));
        assertTrue(e.getMessage().contains(message), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "phi3", "mistral-swa", "phi-1_5", "falcon", "gemma2", "gemma3"})
    void configJsonRoundTrips(String family) throws Exception {
        LlamaConfig c = golden(family);
        assertEquals(c, LlamaConfig.parse(c.toJson(), "written"));
        assertEquals(c, LlamaConfig.parse(c.toBuilder().tieWordEmbeddings(!c.tieWordEmbeddings()).build()
                .toBuilder().tieWordEmbeddings(c.tieWordEmbeddings()).build().toJson(), "rewritten"));
    }

    @Test
    void familiesReadTheirParts() throws Exception {
        LlamaConfig phi = golden("phi-1_5");
        assertEquals(Architecture.Norm.LAYER_NORM, phi.architecture().norm());
        assertTrue(phi.architecture().parallel());
        assertEquals(8, phi.rotaryDim());
        assertEquals(Architecture.Activation.GELU_TANH, phi.architecture().activation());
        assertEquals(4, phi.numKeyValueHeads(), "num_key_value_heads null means one per query head");

        LlamaConfig falcon = golden("falcon");
        assertEquals(1, falcon.numKeyValueHeads(), "multi_query uses one key/value head whatever num_kv_heads says");
        assertEquals(256, falcon.intermediateSize());
        assertEquals(Architecture.Activation.GELU_ERF, falcon.architecture().activation());
        assertTrue(falcon.tieWordEmbeddings());

        LlamaConfig gemma2 = golden("gemma2");
        assertEquals(List.of(true, false), gemma2.architecture().slidingLayers());
        assertEquals(6, gemma2.windowOf(0));
        assertEquals(0, gemma2.windowOf(1));
        assertEquals(50.0, gemma2.architecture().attnSoftCap());
        assertEquals(30.0, gemma2.architecture().finalSoftCap());
        assertEquals(32, gemma2.headDim());

        LlamaConfig gemma3 = golden("gemma3");
        assertEquals(List.of(true, true, false, true), gemma3.architecture().slidingLayers());
        assertEquals(0.0, gemma3.architecture().attnSoftCap());
        assertEquals(10000.0, gemma3.architecture().localRopeTheta());
        assertTrue(gemma3.architecture().qkNorm());

        LlamaConfig mistral = golden("mistral-swa");
        assertEquals(5, mistral.windowOf(0));
        assertEquals(5, mistral.windowOf(1));
        assertFalse(golden("qwen3").architecture().slidingLayers().contains(true));
    }

    @Test
    void layerTypesFollowTheFamilyRuleWhenAbsent() throws Exception {
        String noList = without("gemma3", "layer_types");
        assertEquals(List.of(true, true, false, true),
                LlamaConfig.parse(noList, "config.json").architecture().slidingLayers());
        String gemma2 = without("gemma2", "layer_types");
        assertEquals(List.of(true, false), LlamaConfig.parse(gemma2, "config.json").architecture().slidingLayers());
    }

    @Test
    void qwen2WindowsStartAtMaxWindowLayers() throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = (ObjectNode) json.readTree(goldenText("tiny-llama"));
        root.put("model_type", "qwen2").put("use_sliding_window", true).put("sliding_window", 4);
        root.putNull("architectures");
        // transformers' default max_window_layers 28 leaves both layers of this model unwindowed
        LlamaConfig byDefault = LlamaConfig.parse(json.writeValueAsString(root), "config.json");
        assertEquals(List.of(false, false), byDefault.architecture().slidingLayers());
        assertEquals(byDefault, LlamaConfig.parse(byDefault.toJson(), "round trip"));
        root.put("max_window_layers", 1);
        LlamaConfig fromOne = LlamaConfig.parse(json.writeValueAsString(root), "config.json");
        assertEquals(0, fromOne.windowOf(0));
        assertEquals(4, fromOne.windowOf(1));
        assertEquals(fromOne, LlamaConfig.parse(fromOne.toJson(), "round trip"));
    }

    @Test
    void unsupportedOptionsAreRefusedByName() throws Exception {
        String falcon = goldenText("falcon");
        assertRefused(falcon.replace("\"new_decoder_architecture\": false", "\"new_decoder_architecture\": true"),
                "config.json: new_decoder_architecture is true");
        assertRefused(falcon.replace("\"alibi\": false", "\"alibi\": true"), "config.json: alibi is true");
        assertRefused(falcon.replace("\"multi_query\": true", "\"multi_query\": false"), "config.json: multi_query is false");
        assertRefused(falcon.replace("\"parallel_attn\": true", "\"parallel_attn\": false"), "config.json: parallel_attn is false");
        assertRefused(goldenText("phi-1_5").replace("\"qk_layernorm\": false", "\"qk_layernorm\": true"),
                "config.json: qk_layernorm is true");
        assertRefused(goldenText("phi3").replace("\"rope_scaling\": null",
                "\"rope_scaling\": {\"type\": \"longrope\", \"short_factor\": [1], \"long_factor\": [1]}"),
                "config.json: rope_scaling type 'longrope' is not supported");
        assertRefused(edited("gemma2", "layer_types", "[\"sliding_attention\"]"),
                "config.json: layer_types lists 1 layers but num_hidden_layers is 2");
        assertRefused(edited("gemma2", "layer_types", "[\"sliding_attention\", \"chunked_attention\"]"),
                "layer_types entry 'chunked_attention' is not supported");
        assertRefused(goldenText("qwen3").replace("\"model_type\": \"qwen3\"", "\"model_type\": \"qwen3_moe\""),
                "model_type 'qwen3_moe' is not supported; supported: llama, mistral, qwen2, phi, falcon, phi3, gemma2,"
                        + " gemma3_text, qwen3");
        assertRefused(goldenText("phi-1_5").replace("\"gelu_new\"", "\"relu\""), "config.json: hidden_act 'relu' is not supported");
    }
}
