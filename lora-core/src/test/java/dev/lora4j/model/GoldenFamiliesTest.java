package dev.lora4j.model;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.autograd.Losses;
import dev.lora4j.backend.Backends;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.Fixtures;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.Trainer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * PyTorch/PEFT golden values of the families beyond Llama (../shared/fixtures/golden-FAMILY, see
 * the fixtures README): logits, the causal-LM loss, adapter gradients, one AdamW step and merged
 * weights, with the tolerances the README gives. Runs on whichever backend is active
 * ({@code -Dlora4j.backend=scalar} or {@code vector}).
 */
class GoldenFamiliesTest {
    private static final Logger LOG = LoggerFactory.getLogger(GoldenFamiliesTest.class);

    /** A family's fixture, loaded with its adapter. */
    private record Golden(Path root, LoraModel lora, int[] inputIds, int[] shiftLabels, int batch, int vocab,
                          JsonNode expected) {

        static Golden load(String family) throws Exception {
            Path root = Fixtures.require("golden-" + family);
            LOG.info("golden-{} on the {} backend", family, Backends.get().name());
            LlamaModel base = LlamaModel.load(root.resolve("model"));
            LoraModel lora = LoraModel.load(base, root.resolve("adapter"));
            try (SafetensorsFile f = SafetensorsFile.open(root.resolve("expected/forward.safetensors"))) {
                int[] ids = Arrays.stream(f.longs("input_ids")).mapToInt(Math::toIntExact).toArray();
                int[] shift = Arrays.stream(f.longs("shift_labels")).mapToInt(Math::toIntExact).toArray();
                long[] mask = f.longs("attention_mask");
                assertEquals(mask.length, Arrays.stream(mask).filter(m -> m == 1).count(),
                        "these fixtures have no padding; a padded batch needs a key padding mask");
                int batch = f.info("input_ids").shape()[0];
                int vocab = f.info("logits").shape()[2];
                JsonNode expected = new ObjectMapper().readTree(root.resolve("expected/expected.json").toFile());
                return new Golden(root, lora, ids, shift, batch, vocab, expected);
            }
        }

        Tensor logits() {
            return lora.model().forward(inputIds, batch);
        }

        Tensor loss() {
            return Losses.crossEntropy(logits().reshape(inputIds.length, vocab), shiftLabels);
        }

        /** The Gemma-style README sections bound the AdamW result by 1e-4·max|e| per tensor. */
        boolean adamWNormwise() {
            return !Set.of("phi-1_5", "falcon", "phi3").contains(root.getFileName().toString().substring("golden-".length()));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "phi3", "mistral-swa", "phi-1_5", "falcon", "gemma2", "gemma3"})
    void logitsAndLossMatchPyTorch(String family) throws Exception {
        Golden g = Golden.load(family);
        try (SafetensorsFile f = SafetensorsFile.open(g.root().resolve("expected/forward.safetensors"))) {
            assertClose(family + " logits", f.f32("logits").data(), g.logits().toFloatArray(), 1e-5, 1e-5);
        }
        double want = g.expected().get("loss").asDouble();
        assertEquals(want, g.loss().toFloatArray()[0], 1e-5 * want, family + " loss");
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "phi3", "mistral-swa", "phi-1_5", "falcon", "gemma2", "gemma3"})
    void adapterGradientsMatchPyTorch(String family) throws Exception {
        Golden g = Golden.load(family);
        g.loss().backward();
        try (SafetensorsFile f = SafetensorsFile.open(g.root().resolve("expected/adapter_grads.safetensors"))) {
            Map<String, Tensor> ours = g.lora().peftTensors("default", t -> t.grad());
            assertEquals(new TreeSet<>(f.names()), new TreeSet<>(ours.keySet()), family + " adapter tensors");
            for (String key : f.names()) {
                assertClose(family + " " + key, f.f32(key).data(), ours.get(key).toFloatArray(), 1e-4, 1e-6);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "phi3", "mistral-swa", "phi-1_5", "falcon", "gemma2", "gemma3"})
    void oneAdamWStepMatchesPyTorch(String family) throws Exception {
        Golden g = Golden.load(family);
        List<Tensor> params = Trainer.trainableParameters(g.lora().model());
        g.loss().backward();
        JsonNode adamw = g.expected().get("adamw");
        new AdamW(params, adamw.get("lr").asDouble(), adamw.get("beta1").asDouble(), adamw.get("beta2").asDouble(),
                adamw.get("eps").asDouble(), adamw.get("weight_decay").asDouble()).step();
        try (SafetensorsFile f = SafetensorsFile.open(g.root().resolve("expected/adapter_after_adamw.safetensors"))) {
            Map<String, Tensor> ours = g.lora().peftTensors("default", t -> t);
            for (String key : f.names()) {
                float[] want = f.f32(key).data();
                if (g.adamWNormwise()) {
                    double max = 0;
                    for (float w : want) {
                        max = Math.max(max, Math.abs(w));
                    }
                    assertClose(family + " " + key, want, ours.get(key).toFloatArray(), 0, 1e-4 * max);
                } else {
                    assertClose(family + " " + key, want, ours.get(key).toFloatArray(), 1e-4, 1e-6);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"qwen3", "phi3", "mistral-swa", "phi-1_5", "falcon", "gemma2", "gemma3"})
    void mergedWeightsMatchPeftAndKeepTheLogits(String family) throws Exception {
        Golden g = Golden.load(family);
        float[] before = g.logits().toFloatArray();
        g.lora().merge();
        try (SafetensorsFile f = SafetensorsFile.open(g.root().resolve("expected/merged_weights.safetensors"))) {
            Map<String, Linear> linears = g.lora().model().linears();
            for (String key : f.names()) {
                Linear lin = linears.get(key.substring(0, key.length() - ".weight".length()));
                assertClose(family + " " + key, f.f32(key).data(), lin.weight().toFloatArray(), 1e-4, 1e-6);
            }
        }
        assertClose(family + " merged logits", before, g.logits().toFloatArray(), 1e-4, 1e-5);
    }
}
