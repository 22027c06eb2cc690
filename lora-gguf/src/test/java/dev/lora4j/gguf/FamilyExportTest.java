package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Family rules of the GGUF exporter that need no llama.cpp: metadata, stored values, refusals. */
class FamilyExportTest {
    @TempDir
    Path tmp;

    private static LlamaModel random(String configJson) {
        LlamaConfig config = LlamaConfig.parse(configJson, "test config.json");
        SplittableRandom rng = new SplittableRandom(3);
        return LlamaModel.assemble(config, (name, shape) -> Tensor.normal(rng.split(), 0f, 0.1f, shape).name(name));
    }

    private static final String GEMMA2 = "{\"model_type\": \"gemma2\", \"vocab_size\": 64, \"hidden_size\": 32, "
            + "\"intermediate_size\": 48, \"num_hidden_layers\": 3, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
            + "\"head_dim\": 16, \"query_pre_attn_scalar\": 16, \"sliding_window\": 8%s}";

    @Test
    void gemmaMetadataAndNormsFollowTheConverter() throws Exception {
        LlamaModel model = random(String.format(GEMMA2, ""));
        Path out = tmp.resolve("g.gguf");
        GgufExport.model(model, GgufTesting.characterTokenizer(tmp.resolve("tok"), 64), GgmlType.F32, out);
        try (GgufFile f = GgufFile.open(out)) {
            assertEquals("gemma2", f.string("general.architecture"));
            assertEquals(50.0, f.number("gemma2.attn_logit_softcapping"), 1e-6);
            assertEquals(30.0, f.number("gemma2.final_logit_softcapping"), 1e-6);
            assertEquals(8, f.integer("gemma2.attention.sliding_window"));
            assertEquals(2, f.integer("gemma2.attention.sliding_window_pattern"));
            assertEquals(16, f.integer("gemma2.attention.key_length"));
            float[] stored = f.floats("blk.1.post_ffw_norm.weight");
            float[] w = model.allTensors().get("model.layers.1.post_feedforward_layernorm.weight").toFloatArray();
            for (int i = 0; i < w.length; i++) {
                assertEquals(w[i] + 1f, stored[i], 1e-6f, "norm weights are stored as 1 + w");
            }
        }
    }

    @Test
    void slidingLayersWithoutALlamaCppPatternAreRefused() {
        LlamaModel model = random(String.format(GEMMA2, ", \"layer_types\": [\"full_attention\", \"sliding_attention\", "
                + "\"full_attention\"]"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GgufExport.model(model,
                GgufTesting.characterTokenizer(tmp.resolve("tok"), 64), GgmlType.F32, tmp.resolve("x.gguf")));
        assertTrue(e.getMessage().contains("sliding_window_pattern"), e.getMessage());
    }

    @Test
    void falconWithBiasesIsRefused() {
        LlamaModel model = random("{\"model_type\": \"falcon\", \"vocab_size\": 64, \"hidden_size\": 32, "
                + "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"bias\": true}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GgufExport.model(model,
                GgufTesting.characterTokenizer(tmp.resolve("tok"), 64), GgmlType.F32, tmp.resolve("x.gguf")));
        assertTrue(e.getMessage().contains("no biases"), e.getMessage());
    }

    @Test
    void gemma2WithoutSoftCapsIsRefused() {
        LlamaModel model = random(String.format(GEMMA2, ", \"attn_logit_softcapping\": null"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GgufExport.model(model,
                GgufTesting.characterTokenizer(tmp.resolve("tok"), 64), GgmlType.F32, tmp.resolve("x.gguf")));
        assertTrue(e.getMessage().contains("always applies both soft-caps"), e.getMessage());
    }

    @Test
    void gemmaGgufMetadataLoadsBackIntoTheSameConfig() throws Exception {
        LlamaModel model = random(String.format(GEMMA2, ""));
        Path out = tmp.resolve("g.gguf");
        GgufExport.model(model, GgufTesting.characterTokenizer(tmp.resolve("tok"), 64), GgmlType.F32, out);
        LlamaConfig c = GgufModel.readConfig(out);
        assertEquals(50.0, c.architecture().attnSoftCap(), 1e-6);
        assertEquals(30.0, c.architecture().finalSoftCap(), 1e-6);
        assertEquals(java.util.List.of(true, false, true), c.architecture().slidingLayers());
        assertEquals(8, c.slidingWindow());
        assertEquals(16.0, c.architecture().queryPreAttnScalar(), 1e-9);
    }
}
