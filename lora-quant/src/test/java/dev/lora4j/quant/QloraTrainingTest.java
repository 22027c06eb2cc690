package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.autograd.Autograd;
import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.CausalLmLoss;
import dev.lora4j.train.Trainer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** LoRA on a 4-bit base: the 4-bit storage must behave exactly like its dequantized F32 copy. */
class QloraTrainingTest {

    private static LlamaConfig tinyConfig() {
        // intermediate 172 (as stories260K): rows of down_proj start mid-block
        return LlamaConfig.builder().vocabSize(96).hiddenSize(64).intermediateSize(172).numHiddenLayers(2)
                .numAttentionHeads(4).numKeyValueHeads(2).maxPositionEmbeddings(64).rmsNormEps(1e-5).build();
    }

    private static List<Backend> backends() {
        List<Backend> out = new ArrayList<>(List.of(Backends.scalar()));
        Backends.vector().ifPresent(out::add);
        return out;
    }

    @Test
    void gemmOnFourBitWeightsEqualsGemmOnTheirDequantizedCopy() {
        SplittableRandom rng = new SplittableRandom(1);
        int out = 70;
        int in = 173;
        Tensor w = Tensor.normal(rng.split(), 0f, 0.05f, out, in);
        for (QuantConfig config : new QuantConfig[] {QuantConfig.NF4_DQ, QuantConfig.FP4.withBlocksize(32)}) {
            Tensor q = Quantizer.quantize(w, config);
            Tensor dense = Tensor.of(q.toFloatArray(), out, in);
            for (Backend backend : backends()) {
                for (int m : new int[] {1, 9, 200}) {
                    // forward: y = x·Wᵀ, B = W stored [out, in] transposed
                    Tensor x = Tensor.normal(rng.split(), 0f, 1f, m, in);
                    float[] y4 = new float[m * out];
                    float[] y32 = new float[m * out];
                    backend.gemm(false, true, m, out, in, 1f, x.storage(), 0, in, q.storage(), 0, in, 0f,
                            new FloatStorage(y4), 0, out);
                    backend.gemm(false, true, m, out, in, 1f, x.storage(), 0, in, dense.storage(), 0, in, 0f,
                            new FloatStorage(y32), 0, out);
                    assertBitIdentical(backend + " " + config + " forward m=" + m, y32, y4);
                    // input gradient: dx = dy·W, B = W stored [out, in] as [k, n]
                    Tensor dy = Tensor.normal(rng.split(), 0f, 1f, m, out);
                    float[] dx4 = new float[m * in];
                    float[] dx32 = new float[m * in];
                    backend.gemm(false, false, m, in, out, 1f, dy.storage(), 0, out, q.storage(), 0, in, 0f,
                            new FloatStorage(dx4), 0, in);
                    backend.gemm(false, false, m, in, out, 1f, dy.storage(), 0, out, dense.storage(), 0, in, 0f,
                            new FloatStorage(dx32), 0, in);
                    assertBitIdentical(backend + " " + config + " input gradient m=" + m, dx32, dx4);
                }
            }
        }
    }

    private static void assertBitIdentical(String what, float[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i]);
            }
        }
    }

    @Test
    void quantizeReplacesOnlyTheDecoderProjections() {
        LlamaModel model = LlamaModel.initialize(tinyConfig(), 3);
        Map<String, Tensor> before = model.allTensors();
        List<String> done = Quantizer.quantize(model, QuantConfig.NF4_DQ);
        assertEquals(14, done.size(), "7 projections in each of 2 layers");
        long expectedBytes = 0;
        for (Map.Entry<String, Tensor> e : model.allTensors().entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            boolean projection = name.matches("model\\.layers\\.\\d+\\.(self_attn|mlp)\\.\\w+_proj\\.weight");
            if (projection) {
                QuantizedStorage q = assertInstanceOf(QuantizedStorage.class, t.storage(), name);
                assertEquals(QuantConfig.NF4_DQ, q.config());
                assertEquals(name, t.name());
                expectedBytes += QuantConfig.NF4_DQ.bytesFor(t.numel());
            } else {
                assertSame(before.get(name), t, name + " stays as it was");
                expectedBytes += t.storage().byteSize();
            }
        }
        assertEquals(expectedBytes, model.baseByteSize());
        assertThrows(IllegalStateException.class, () -> Quantizer.quantize(model, QuantConfig.NF4),
                "quantizing twice is refused");
    }

    @Test
    void loraOnFourBitBaseTrainsExactlyAsOnItsDequantizedCopy() {
        LlamaModel quantized = LlamaModel.initialize(tinyConfig(), 5);
        Quantizer.quantize(quantized, QuantConfig.NF4);
        LlamaModel dense = LlamaModel.initialize(tinyConfig(), 5);
        Map<String, Linear> denseLinears = dense.linears();
        quantized.linears().forEach((name, lin) -> {
            Tensor w = lin.weight();
            denseLinears.get(name).setWeight(Tensor.of(w.toFloatArray(), w.shape()).name(w.name()));
        });
        LoraConfig lora = LoraConfig.rank(4).alpha(8).seed(9);
        LlamaModel a = LoraModel.wrap(quantized, lora).model();
        LlamaModel b = LoraModel.wrap(dense, lora).model();
        List<Tensor> pa = Trainer.trainableParameters(a);
        List<Tensor> pb = Trainer.trainableParameters(b);
        AdamW oa = new AdamW(pa, 1e-2, 0.0);
        AdamW ob = new AdamW(pb, 1e-2, 0.0);
        CausalLmLoss.Batch batch = batch(96, 3, 17, 21);
        for (int step = 0; step < 3; step++) {
            Tensor la = CausalLmLoss.loss(a, batch);
            Tensor lb = CausalLmLoss.loss(b, batch);
            assertEquals(lb.toFloatArray()[0], la.toFloatArray()[0], 0f, "loss at step " + step);
            la.backward();
            lb.backward();
            for (int i = 0; i < pa.size(); i++) {
                assertBitIdentical("gradient of parameter " + i + " at step " + step, pb.get(i).grad().toFloatArray(),
                        pa.get(i).grad().toFloatArray());
            }
            oa.step();
            ob.step();
            oa.zeroGrad();
            ob.zeroGrad();
        }
        for (Linear lin : a.linears().values()) {
            if (!lin.name().equals("lm_head")) {
                assertInstanceOf(QuantizedStorage.class, lin.weight().storage(), lin.name() + " stays 4-bit while training");
            }
        }
    }

    @Test
    void qloraLowersTheLossOfAPretrainedModel() throws Exception {
        LlamaModel model = LlamaModel.load(TestFixtures.require("stories260K/hf"));
        Quantizer.quantize(model, QuantConfig.NF4_DQ);
        LlamaModel lora = LoraModel.wrap(model, LoraConfig.rank(8).alpha(16).seed(1)).model();
        CausalLmLoss.Batch batch = batch(512, 2, 24, 4);
        AdamW optimizer = new AdamW(Trainer.trainableParameters(lora), 1e-2, 0.0);
        double first = Double.NaN;
        double last = Double.NaN;
        for (int step = 0; step < 15; step++) {
            Tensor loss = CausalLmLoss.loss(lora, batch);
            last = loss.toFloatArray()[0];
            if (step == 0) {
                first = last;
            }
            loss.backward();
            optimizer.step();
            optimizer.zeroGrad();
        }
        double start = first;
        double end = last;
        assertTrue(end < 0.8 * start, () -> "loss went from " + start + " to " + end + " in 15 steps");
    }

    @Test
    void nf4StoriesModelKeepsItsPredictions() throws Exception {
        JsonNode golden = new ObjectMapper().readTree(
                TestFixtures.require("stories260K/golden.json").toFile()).path("derived_here").path("prompt_logits").path("mean_nll_first64_of_greedy");
        int[] ids = new int[golden.path("input_ids").size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = golden.path("input_ids").get(i).asInt();
        }
        LlamaModel model = LlamaModel.load(TestFixtures.require("stories260K/hf"));
        CausalLmLoss.Batch batch = CausalLmLoss.collate(List.of(Example.unmasked(ids)), 0);
        double f32 = meanNll(model, batch);
        assertEquals(golden.path("value").asDouble(), f32, 1e-3, "F32 reference");
        Quantizer.quantize(model, QuantConfig.NF4_DQ);
        double nf4 = meanNll(model, batch);
        assertTrue(nf4 > f32 && nf4 < f32 + 0.25, "NF4 mean NLL " + nf4 + " vs F32 " + f32);
    }

    private static double meanNll(LlamaModel model, CausalLmLoss.Batch batch) {
        Autograd.Scope scope = Autograd.noGrad();
        try {
            return CausalLmLoss.loss(model, batch).toFloatArray()[0];
        } finally {
            scope.close();
        }
    }

    private static CausalLmLoss.Batch batch(int vocab, int size, int length, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        List<Example> examples = new ArrayList<>();
        for (int b = 0; b < size; b++) {
            int[] ids = new int[length];
            for (int t = 0; t < length; t++) {
                ids[t] = rng.nextInt(vocab);
            }
            examples.add(Example.unmasked(ids));
        }
        return CausalLmLoss.collate(examples, 0);
    }
}
