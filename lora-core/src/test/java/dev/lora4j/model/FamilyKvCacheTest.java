package dev.lora4j.model;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.nn.KvCache;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.Fixtures;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * KV-cache generation of every family equals recomputing the whole sequence, over sequences
 * longer than the sliding windows of golden-mistral-swa (5), golden-gemma2 (6) and golden-gemma3
 * (5), so that windows are crossed both in the prefill and in decode steps.
 */
class FamilyKvCacheTest {

    private static final int[] SEQUENCE = {5, 17, 3, 42, 8, 23, 11, 60, 2, 31, 7, 19, 44, 9, 26, 13};

    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama", "qwen3", "phi3", "mistral-swa", "phi-1_5", "falcon", "gemma2", "gemma3"})
    void cachedDecodingEqualsFullRecomputation(String family) {
        LlamaModel model = LlamaModel.load(Fixtures.require("golden-" + family).resolve("model"));
        int v = model.config().vocabSize();
        int n = SEQUENCE.length;
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            float[] full = model.forward(SEQUENCE, 1).toFloatArray();
            KvCache cache = model.newCache(1, n);
            int prefill = 7;
            float[] cached = new float[n * v];
            System.arraycopy(model.forward(Arrays.copyOf(SEQUENCE, prefill), 1, cache).toFloatArray(), 0, cached, 0,
                    prefill * v);
            for (int i = prefill; i < n; i++) {
                Tensor step = model.forward(new int[] {SEQUENCE[i]}, 1, cache);
                System.arraycopy(step.toFloatArray(), 0, cached, i * v, v);
            }
            assertClose(family + " cached vs full logits", full, cached, 1e-4, 1e-5);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"mistral-swa", "gemma3"})
    void greedyGenerationEqualsArgmaxOfRecomputation(String family) {
        LlamaModel model = LlamaModel.load(Fixtures.require("golden-" + family).resolve("model"));
        int[] prompt = {5, 17, 3};
        int[] generated = new Generator(model).temperature(0).maxNewTokens(10).generate(prompt);
        int[] sequence = Arrays.copyOf(prompt, prompt.length);
        int[] expected = new int[generated.length];
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            for (int i = 0; i < generated.length; i++) {
                float[] logits = model.forward(sequence, 1).toFloatArray();
                int v = model.config().vocabSize();
                int best = 0;
                for (int j = 1; j < v; j++) {
                    if (logits[(sequence.length - 1) * v + j] > logits[(sequence.length - 1) * v + best]) {
                        best = j;
                    }
                }
                expected[i] = best;
                sequence = Arrays.copyOf(sequence, sequence.length + 1);
                sequence[sequence.length - 1] = best;
            }
        }
        assertArrayEquals(expected, generated, family + ": greedy tokens with the cache vs recomputed");
    }

    @ParameterizedTest
    @ValueSource(strings = {"gemma2", "phi-1_5"})
    void rightPaddedBatchWithAttentionMask(String family) {
        LlamaModel model = LlamaModel.load(Fixtures.require("golden-" + family).resolve("model"));
        int v = model.config().vocabSize();
        int n = SEQUENCE.length;
        int real = 9;
        int[] tokens = new int[2 * n];
        int[] mask = new int[2 * n];
        for (int i = 0; i < n; i++) {
            tokens[i] = SEQUENCE[i];
            mask[i] = 1;
            tokens[n + i] = i < real ? SEQUENCE[n - 1 - i] : 0;
            mask[n + i] = i < real ? 1 : 0;
        }
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            float[] padded = model.forwardPadded(tokens, 2, mask).toFloatArray();
            float[] unmasked = model.forward(tokens, 2).toFloatArray();
            float[] alone = model.forward(Arrays.copyOfRange(tokens, n, n + real), 1).toFloatArray();
            // the real tokens of the padded row: as if run alone
            assertClose(family + " real rows", alone, Arrays.copyOfRange(padded, n * v, (n + real) * v), 1e-5, 1e-5);
            // the full row: untouched by the mask
            assertClose(family + " full row", Arrays.copyOf(unmasked, n * v), Arrays.copyOf(padded, n * v), 0, 0);
            // the padding rows attend to the real tokens only, so they differ from the unmasked run
            float[] padRowsMasked = Arrays.copyOfRange(padded, (n + real) * v, 2 * n * v);
            float[] padRowsUnmasked = Arrays.copyOfRange(unmasked, (n + real) * v, 2 * n * v);
            double diff = 0;
            for (int i = 0; i < padRowsMasked.length; i++) {
                diff = Math.max(diff, Math.abs(padRowsMasked[i] - padRowsUnmasked[i]));
            }
            org.junit.jupiter.api.Assertions.assertTrue(diff > 1e-3, family + ": the mask changed no padding row");
        }
    }
}
