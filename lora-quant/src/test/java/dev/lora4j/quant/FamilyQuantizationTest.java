package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.autograd.Losses;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * 4-bit quantization of every family beyond Llama
 * (../shared/fixtures/golden-FAMILY: fused modules, biases, a biased and a tied head, q/k norms): the projections, fused
 * ones included, become NF4 with double quantization, the folder written in the bitsandbytes
 * layout loads back to the same model, its logits stay near the 16-bit ones, and the golden
 * adapter trains on top of it (QLoRA).
 */
class FamilyQuantizationTest {
    private static final int[] TOKENS = {5, 17, 3, 42, 8, 23, 11, 60, 2, 31, 7, 19};

    private static float[] logits(LlamaModel model) {
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            return model.forward(TOKENS, 2).toFloatArray();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"phi3", "phi-1_5", "falcon", "gemma2", "gemma3", "qwen3", "mistral-swa"})
    void quantizedFolderLoadsBackAndTrainsWithTheGoldenAdapter(String family, @TempDir Path tmp) throws Exception {
        Path root = TestFixtures.require("golden-" + family);
        float[] full = logits(LlamaModel.load(root.resolve("model")));
        QuantizedCheckpoint.Loaded written = QuantizedCheckpoint.quantizeFolder(root.resolve("model"), tmp, QuantConfig.NF4_DQ);
        LlamaModel loaded = QuantizedCheckpoint.load(tmp);
        for (Map.Entry<String, Linear> e : loaded.linears().entrySet()) {
            if (!e.getKey().equals("lm_head")) {
                assertInstanceOf(QuantizedStorage.class, e.getValue().weight().storage(), family + " " + e.getKey());
            }
        }
        float[] quantized = logits(loaded);
        assertArrayEquals(logits(written.model()), quantized, 0f, family + ": the written folder loads back to the same model");
        double err = 0;
        double norm = 0;
        for (int i = 0; i < full.length; i++) {
            err += (quantized[i] - full[i]) * (double) (quantized[i] - full[i]);
            norm += full[i] * (double) full[i];
        }
        // NF4 keeps about 3 bits of each weight: the logits move, but stay close to the 16-bit ones
        double relative = Math.sqrt(err / norm);
        assertTrue(relative > 0 && relative < 0.5, family + ": relative logit error " + relative);

        LoraModel qlora = LoraModel.load(loaded, root.resolve("adapter"));
        int v = loaded.config().vocabSize();
        int[] labels = new int[TOKENS.length];
        for (int i = 0; i < TOKENS.length; i++) {
            labels[i] = i % 6 == 5 ? Losses.IGNORE_INDEX : TOKENS[i + 1];
        }
        Tensor loss = Losses.crossEntropy(qlora.model().forward(TOKENS, 2).reshape(TOKENS.length, v), labels);
        loss.backward();
        qlora.peftTensors("default", t -> t.grad()).forEach((k, g) -> {
            for (float x : g.toFloatArray()) {
                assertTrue(Float.isFinite(x), family + " " + k);
            }
        });
    }
}
