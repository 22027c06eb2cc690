package dev.lora4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LlamaConfigTest {

    @TempDir
    Path tmp;

    private static Path fixtures() {
        Path dir = Path.of(System.getProperty("lora4j.fixtures", "../../shared/fixtures"));
        assumeTrue(Files.isDirectory(dir), "fixtures folder " + dir + " absent; skipping");
        return dir;
    }

    /** A complete Llama config.json as a template for the error cases. */
    private static final String TINY = """
            {
              "architectures": ["LlamaForCausalLM"],
              "model_type": "llama",
              "hidden_act": "silu",
              "vocab_size": 96,
              "hidden_size": 64,
              "intermediate_size": 160,
              "num_hidden_layers": 2,
              "num_attention_heads": 4,
              "num_key_value_heads": 2,
              "rms_norm_eps": 1e-05,
              "max_position_embeddings": 256,
              "bos_token_id": 1,
              "eos_token_id": 2
            }
            """;

    @Test
    void goldenTinyLlamaConfig() throws IOException {
        LlamaConfig c = LlamaConfig.read(fixtures().resolve("golden-tiny-llama/model/config.json"));
        assertEquals("llama", c.modelType());
        assertEquals(List.of("LlamaForCausalLM"), c.architectures());
        assertEquals(96, c.vocabSize());
        assertEquals(64, c.hiddenSize());
        assertEquals(160, c.intermediateSize());
        assertEquals(2, c.numHiddenLayers());
        assertEquals(4, c.numAttentionHeads());
        assertEquals(2, c.numKeyValueHeads());
        assertEquals(16, c.headDim());
        assertEquals(256, c.maxPositionEmbeddings());
        assertEquals(1e-5, c.rmsNormEps());
        assertEquals(10000.0, c.ropeTheta());
        assertNull(c.ropeScaling());
        assertFalse(c.tieWordEmbeddings());
        assertFalse(c.attentionBias());
        assertFalse(c.mlpBias());
        assertEquals("silu", c.hiddenAct());
        assertEquals("float32", c.torchDtype());
        assertEquals(1, c.bosTokenId());
        assertEquals(List.of(2), c.eosTokenIds());
        assertNull(c.padTokenId());
        assertNull(c.slidingWindow());
        assertEquals(2, c.numKeyValueGroups());
        assertEquals(64, c.queryDim());
        assertEquals(32, c.keyValueDim());
        assertEquals(c, LlamaConfig.parse(c.toJson(), "round trip"));
    }

    @Test
    void stories260KConfig() throws IOException {
        LlamaConfig c = LlamaConfig.read(fixtures().resolve("stories260K/hf/config.json"));
        assertEquals(512, c.vocabSize());
        assertEquals(64, c.hiddenSize());
        assertEquals(172, c.intermediateSize());
        assertEquals(5, c.numHiddenLayers());
        assertEquals(8, c.numAttentionHeads());
        assertEquals(4, c.numKeyValueHeads());
        assertEquals(8, c.headDim());
        assertEquals(512, c.maxPositionEmbeddings());
        assertEquals(1e-5, c.rmsNormEps());
        assertEquals(10000.0, c.ropeTheta());
        assertTrue(c.tieWordEmbeddings());
        assertEquals(1, c.bosTokenId());
        assertEquals(List.of(2), c.eosTokenIds());
        assertEquals(c, LlamaConfig.parse(c.toJson(), "round trip"));
    }

    @Test
    void defaultsFollowTransformers() {
        LlamaConfig c = LlamaConfig.parse("""
                {"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
                 "num_hidden_layers": 32, "num_attention_heads": 32, "max_position_embeddings": 4096,
                 "rms_norm_eps": 1e-5, "num_key_value_heads": null, "rope_scaling": null}
                """, "config.json");
        assertEquals(32, c.numKeyValueHeads());
        assertEquals(128, c.headDim());
        assertEquals(10000.0, c.ropeTheta());
        assertFalse(c.tieWordEmbeddings());
        assertEquals("silu", c.hiddenAct());
        assertEquals(List.of("LlamaForCausalLM"), c.architectures());
        assertEquals(List.of(), c.eosTokenIds());
        assertNull(c.torchDtype());
        LlamaConfig preset = LlamaConfig.llama2_7b();
        assertEquals(preset.toBuilder().torchDtype(null).bosTokenId(null).eosTokenIds(null).build(), c);
    }

    @Test
    void llama2Preset() {
        LlamaConfig c = LlamaConfig.llama2_7b();
        assertEquals(32000, c.vocabSize());
        assertEquals(4096, c.hiddenSize());
        assertEquals(11008, c.intermediateSize());
        assertEquals(32, c.numHiddenLayers());
        assertEquals(32, c.numAttentionHeads());
        assertEquals(32, c.numKeyValueHeads());
        assertEquals(128, c.headDim());
        assertEquals(4096, c.maxPositionEmbeddings());
        assertEquals(1e-5, c.rmsNormEps());
        assertFalse(c.tieWordEmbeddings());
        assertEquals(c, LlamaConfig.parse(c.toJson(), "round trip"));
    }

    @Test
    void llama3RopeScalingAndEosList() {
        LlamaConfig c = LlamaConfig.parse("""
                {"model_type": "llama", "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                 "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                 "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                 "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                  "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                 "tie_word_embeddings": true, "torch_dtype": "bfloat16",
                 "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}
                """, "config.json");
        assertEquals(LlamaConfig.RopeScaling.llama3(32, 1, 4, 8192), c.ropeScaling());
        assertEquals(500000.0, c.ropeTheta());
        assertEquals(List.of(128001, 128008, 128009), c.eosTokenIds());
        assertEquals(c, LlamaConfig.parse(c.toJson(), "round trip"));

        LlamaConfig linear = LlamaConfig.parse(TINY.replace("\"bos_token_id\"",
                "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}, \"bos_token_id\""), "config.json");
        assertEquals(LlamaConfig.RopeScaling.linear(2), linear.ropeScaling());
        assertEquals(linear, LlamaConfig.parse(linear.toJson(), "round trip"));
    }

    @Test
    void transformers5RopeParameters() {
        LlamaConfig c = LlamaConfig.parse(TINY.replace("\"bos_token_id\"",
                "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}, \"dtype\": \"bfloat16\","
                        + " \"bos_token_id\""), "config.json");
        assertEquals(1000000.0, c.ropeTheta());
        assertNull(c.ropeScaling());
        assertEquals("bfloat16", c.torchDtype());
    }

    @Test
    void mistralAndQwen2() {
        LlamaConfig mistral = LlamaConfig.parse(TINY.replace("\"llama\"", "\"mistral\"")
                .replace("\"bos_token_id\"", "\"sliding_window\": 4096, \"bos_token_id\"")
                .replace("\"LlamaForCausalLM\"", "\"MistralForCausalLM\""), "config.json");
        assertEquals(4096, mistral.slidingWindow());
        assertFalse(mistral.qkvBias());
        assertEquals(mistral, LlamaConfig.parse(mistral.toJson(), "round trip"));

        String qwenJson = TINY.replace("\"llama\"", "\"qwen2\"").replace("[\"LlamaForCausalLM\"]", "null")
                .replace("\"bos_token_id\"", "\"sliding_window\": 32768, \"use_sliding_window\": false,"
                        + " \"tie_word_embeddings\": true, \"bos_token_id\"");
        LlamaConfig qwen = LlamaConfig.parse(qwenJson, "config.json");
        assertEquals(List.of("Qwen2ForCausalLM"), qwen.architectures());
        assertNull(qwen.slidingWindow(), "use_sliding_window false disables the window");
        assertTrue(qwen.qkvBias());
        assertFalse(qwen.outputProjBias());
        assertEquals(qwen, LlamaConfig.parse(qwen.toJson(), "round trip"));
        LlamaConfig windowed = LlamaConfig.parse(qwenJson.replace("false", "true"), "config.json");
        assertEquals(32768, windowed.slidingWindow());
        assertEquals(windowed, LlamaConfig.parse(windowed.toJson(), "round trip"));

        LlamaConfig biased = LlamaConfig.parse(TINY.replace("\"bos_token_id\"",
                "\"attention_bias\": true, \"mlp_bias\": true, \"bos_token_id\""), "config.json");
        assertTrue(biased.qkvBias());
        assertTrue(biased.outputProjBias());
        assertTrue(biased.mlpBias());
        assertEquals(biased, LlamaConfig.parse(biased.toJson(), "round trip"));
    }

    @Test
    void toJsonIsHuggingFaceStyle() throws IOException {
        String json = LlamaConfig.parse(TINY, "config.json").toJson();
        assertTrue(json.startsWith("{\n  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n  \"attention_bias\": false,\n"),
                json);
        assertTrue(json.contains("\n  \"head_dim\": 16,\n"), json);
        assertTrue(json.endsWith("\n}\n"), json);
        Path file = tmp.resolve("config.json");
        LlamaConfig.parse(TINY, "config.json").write(file);
        assertEquals(LlamaConfig.parse(TINY, "x"), LlamaConfig.read(file));
    }

    @Test
    void toBuilderRederivesDefaults() {
        LlamaConfig c = LlamaConfig.parse(TINY.replace("\"num_key_value_heads\": 2,", ""), "config.json");
        LlamaConfig wider = c.toBuilder().hiddenSize(128).numAttentionHeads(8).build();
        assertEquals(16, wider.headDim());
        assertEquals(8, wider.numKeyValueHeads());
        assertEquals(c, c.toBuilder().build());
        assertTrue(c.toString().contains("num_key_value_heads=4, head_dim=16"), c.toString());
    }

    @Test
    void validationErrors() {
        assertInvalid(TINY.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
                "config.json: num_attention_heads (4) must be divisible by num_key_value_heads (3)");
        assertInvalid(TINY.replace("\"hidden_size\": 64", "\"hidden_size\": 66"),
                "config.json: hidden_size (66) must be divisible by num_attention_heads (4) when head_dim is absent");
        assertInvalid(TINY.replace("\"hidden_size\": 64", "\"hidden_size\": 0"),
                "config.json: hidden_size must be a positive integer, found 0");
        assertInvalid(TINY.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": -1"),
                "config.json: num_hidden_layers must be a positive integer, found -1");
        assertInvalid(TINY.replace("\"vocab_size\": 96,", ""), "config.json: vocab_size is missing");
        assertInvalid(TINY.replace("\"vocab_size\": 96", "\"vocab_size\": 96.5"),
                "config.json: vocab_size must be an integer, found 96.5");
        assertInvalid(TINY.replace("1e-05", "0"), "config.json: rms_norm_eps must be a finite number > 0, found 0.0");
        assertInvalid(TINY.replace("\"silu\"", "\"gelu\""), "config.json: hidden_act 'gelu' is not supported");
        assertInvalid(TINY.replace("\"llama\"", "\"gpt2\""),
                "config.json: model_type 'gpt2' is not supported; supported: llama, mistral, qwen2");
        assertInvalid(TINY.replace("\"model_type\": \"llama\",", ""), "config.json: model_type is missing");
        assertInvalid(TINY.replace("\"bos_token_id\"", "\"head_dim\": 15, \"bos_token_id\""),
                "config.json: head_dim (15) must be even");
        assertInvalid(TINY.replace("\"bos_token_id\"", "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0},"
                + " \"bos_token_id\""), "config.json: rope_scaling type 'yarn' is not supported; supported: llama3, linear");
        assertInvalid(TINY.replace("\"bos_token_id\"", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0},"
                + " \"bos_token_id\""), "config.json: rope_scaling: low_freq_factor is missing");
        assertInvalid(TINY.replace("\"bos_token_id\"", "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 0.5},"
                + " \"bos_token_id\""), "config.json: rope_scaling factor must be a finite number >= 1, found 0.5");
        assertInvalid(TINY.replace("\"llama\"", "\"mistral\"").replace("\"bos_token_id\"", "\"sliding_window\": 0,"
                + " \"bos_token_id\""), "config.json: sliding_window must be a positive integer, found 0");
        assertInvalid(TINY.replace("\"eos_token_id\": 2", "\"eos_token_id\": \"2\""),
                "config.json: eos_token_id must be an integer, found \"2\"");
        assertInvalid("{\"model_type\": ", "config.json: not valid JSON");
        assertInvalid("[]", "config.json: expected a JSON object");

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LlamaConfig.llama2_7b().toBuilder().modelType("qwen2").attentionBias(true).build());
        assertTrue(e.getMessage().startsWith("LlamaConfig: attention_bias is true but only model_type llama has that"
                + " option"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> LlamaConfig.builder().build());
        assertEquals("LlamaConfig: vocab_size must be a positive integer, found 0", e.getMessage());
    }

    @Test
    void readNamesTheFile() throws IOException {
        Path file = Files.writeString(tmp.resolve("config.json"), TINY.replace("\"silu\"", "\"relu\""));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaConfig.read(file));
        assertTrue(e.getMessage().startsWith(file + ": hidden_act 'relu'"), e.getMessage());
    }

    private static void assertInvalid(String json, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaConfig.parse(json, "config.json"));
        assertTrue(e.getMessage().startsWith(expected), "expected '" + expected + "' at the start of: " + e.getMessage());
    }
}
