package dev.lora4j.model;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.lora.LoraAdapter;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.Fixtures;
import dev.lora4j.train.AdamW;
import dev.lora4j.autograd.Losses;
import dev.lora4j.train.Trainer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * PyTorch/PEFT golden values for a GQA Llama with a LoRA adapter on every projection and lm_head
 * (../shared/fixtures/golden-tiny-llama): logits, masked loss, adapter gradients, one AdamW step,
 * merged weights.
 */
class GoldenTinyLlamaTest {
    private Path root;
    private LoraModel lora;
    private int[] inputIds;
    private int[] labels;

    @BeforeEach
    void load() throws Exception {
        root = Fixtures.require("golden-tiny-llama");
        LlamaModel base = LlamaModel.load(root.resolve("model"));
        lora = LoraModel.load(base, root.resolve("adapter"));
        try (SafetensorsFile f = SafetensorsFile.open(root.resolve("expected/forward.safetensors"))) {
            inputIds = Arrays.stream(f.longs("input_ids")).mapToInt(Math::toIntExact).toArray();
            labels = Arrays.stream(f.longs("labels")).mapToInt(Math::toIntExact).toArray();
        }
    }

    private Tensor logits() {
        return lora.model().forward(inputIds, 2);
    }

    /**
     * The fixture's labels are already aligned with the logits (label[t] is the target of position
     * t, i.e. input[t + 1]), so they are scored without the causal shift.
     */
    private Tensor fixtureLoss() {
        return Losses.crossEntropy(logits().reshape(18, 96), labels);
    }

    @Test
    void fixtureLabelsAreTheShiftedInputs() {
        for (int t = 0; t + 1 < labels.length; t++) {
            if (labels[t] != Losses.IGNORE_INDEX && (t + 1) % 9 != 0) {
                assertEquals(inputIds[t + 1], labels[t]);
            }
        }
    }

    @Test
    void logitsMatchPyTorch() throws Exception {
        try (SafetensorsFile f = SafetensorsFile.open(root.resolve("expected/forward.safetensors"))) {
            assertClose("logits", f.f32("logits").data(), logits().toFloatArray(), 1e-5, 1e-5);
        }
    }

    @Test
    void maskedLossMatchesPyTorch() throws Exception {
        JsonNode expected = new ObjectMapper().readTree(root.resolve("expected/expected.json").toFile());
        float loss = fixtureLoss().toFloatArray()[0];
        assertEquals(expected.get("loss").asDouble(), loss, 1e-5 * expected.get("loss").asDouble());
    }

    @Test
    void adapterGradientsMatchPyTorch() throws Exception {
        fixtureLoss().backward();
        try (SafetensorsFile f = SafetensorsFile.open(root.resolve("expected/adapter_grads.safetensors"))) {
            Map<String, Tensor> ours = lora.peftTensors("default", t -> t.grad());
            assertEquals(f.names(), ours.keySet().stream().filter(f::contains).collect(java.util.stream.Collectors.toSet()));
            assertEquals(f.size(), ours.size());
            for (String key : f.names()) {
                assertClose(key, f.f32(key).data(), ours.get(key).toFloatArray(), 1e-4, 1e-6);
            }
        }
    }

    @Test
    void oneAdamWStepMatchesPyTorch() throws Exception {
        List<Tensor> params = Trainer.trainableParameters(lora.model());
        fixtureLoss().backward();
        new AdamW(params, 1e-2, 0.9, 0.999, 1e-8, 0.01).step();
        try (SafetensorsFile f = SafetensorsFile.open(root.resolve("expected/adapter_after_adamw.safetensors"))) {
            Map<String, Tensor> ours = lora.peftTensors("default", t -> t);
            for (String key : f.names()) {
                assertClose(key, f.f32(key).data(), ours.get(key).toFloatArray(), 1e-4, 1e-6);
            }
        }
    }

    @Test
    void mergedWeightsMatchPeft() throws Exception {
        Tensor before = logits();
        lora.merge();
        try (SafetensorsFile f = SafetensorsFile.open(root.resolve("expected/merged_weights.safetensors"))) {
            Map<String, Linear> linears = lora.model().linears();
            assertEquals(2 * 7 + 1, f.size());
            for (String key : f.names()) {
                Linear lin = linears.get(key.substring(0, key.length() - ".weight".length()));
                assertClose(key, f.f32(key).data(), lin.weight().toFloatArray(), 1e-4, 1e-6);
            }
        }
        // merged model without adapter cost gives the same logits
        assertClose("merged logits", before.toFloatArray(), logits().toFloatArray(), 1e-4, 1e-5);
        lora.unmerge();
        for (Linear lin : lora.model().linears().values()) {
            LoraLinear ll = (LoraLinear) lin;
            assertEquals(0, ll.merged().size());
            LoraAdapter ad = ll.adapter("default");
            assertEquals(4, ad.rank());
        }
        assertClose("unmerged logits", before.toFloatArray(), logits().toFloatArray(), 1e-5, 1e-5);
    }
}
