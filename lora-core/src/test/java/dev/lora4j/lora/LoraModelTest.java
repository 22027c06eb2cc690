package dev.lora4j.lora;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.Fixtures;
import dev.lora4j.testing.TinyModels;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoraModel on tiny random models and the PEFT fixture: fresh adapters, PEFT file round trips,
 * multi-adapter switching and weighted combination, merge/unmerge, rank/alpha patterns, rsLoRA,
 * and the errors a bad adapter folder gives.
 */
class LoraModelTest {
    private static final String Q0 = "model.layers.0.self_attn.q_proj";
    private static final String V1 = "model.layers.1.self_attn.v_proj";
    private static final int[] TOKENS = TinyModels.tokens(2 * 7, 48, 99);

    @TempDir
    Path tmp;

    /** Gives every adapter of {@code name} a random B (a fresh B is zero, which would hide any delta). */
    private static void randomizeB(LoraModel lora, String name, long seed) {
        long s = seed;
        for (Map.Entry<String, Tensor> e : lora.peftTensors(name, t -> t).entrySet()) {
            if (e.getKey().contains("lora_B")) {
                TinyModels.randomize(e.getValue(), 0.05f, s++);
            }
        }
    }

    private static LoraLinear loraLinear(LoraModel lora, String module) {
        return (LoraLinear) lora.model().linears().get(module);
    }

    private static float[] layerOut(LoraLinear ll, Tensor x) {
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            return ll.forward(x).toFloatArray();
        }
    }

    private static float[] minus(float[] a, float[] b) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i] - b[i];
        }
        return out;
    }

    /** x·ΔWᵀ in double, with ΔW [out, in] row-major. */
    private static float[] applyDelta(float[] delta, Tensor x, int out) {
        float[] xs = x.toFloatArray();
        int in = x.dim(-1);
        int rows = xs.length / in;
        float[] y = new float[rows * out];
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double acc = 0;
                for (int i = 0; i < in; i++) {
                    acc += (double) xs[r * in + i] * delta[o * in + i];
                }
                y[r * out + o] = (float) acc;
            }
        }
        return y;
    }

    // ---------------------------------------------------------------- fresh adapter

    @Test
    void freshAdapterLeavesTheBaseOutputUnchanged() {
        LlamaModel base = TinyModels.model(3);
        float[] before = TinyModels.logits(base, TOKENS, 2);
        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(4).targets(Target.ALL));
        for (Map.Entry<String, Tensor> e : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).entrySet()) {
            float[] v = e.getValue().toFloatArray();
            boolean allZero = true;
            for (float f : v) {
                allZero &= f == 0f;
            }
            assertEquals(e.getKey().contains("lora_B"), allZero, e.getKey() + ": B starts at zero, A is random");
            assertTrue(e.getValue().requiresGrad(), e.getKey());
        }
        assertArrayEquals(before, TinyModels.logits(lora.model(), TOKENS, 2));
        for (Tensor t : lora.model().allTensors().values()) {
            assertFalse(t.requiresGrad(), t.name() + " must be frozen");
        }
    }

    // ---------------------------------------------------------------- PEFT files

    @Test
    void fixtureAdapterSavesBackToTheSameTensorBytes() throws IOException {
        Path root = Fixtures.require("golden-tiny-llama");
        LoraModel lora = LoraModel.load(LlamaModel.load(root.resolve("model")), root.resolve("adapter"));
        Path out = tmp.resolve("saved");
        lora.saveAdapter(out);
        byte[] fixture = Files.readAllBytes(root.resolve("adapter/adapter_model.safetensors"));
        byte[] ours = Files.readAllBytes(out.resolve("adapter_model.safetensors"));
        try (SafetensorsFile saved = SafetensorsFile.open(out.resolve("adapter_model.safetensors"))) {
            // PEFT's save_pretrained passes metadata={"format": "pt"} to safetensors' save_file
            assertEquals(Map.of("format", "pt"), saved.metadata());
            // The fixture was written without metadata; apart from that header entry the files are equal.
            SafetensorsWriter withoutMetadata = new SafetensorsWriter();
            for (TensorInfo info : saved.infos()) {
                withoutMetadata.add(info.name(), info.dtype(), info.shape(), saved.bytes(info.name()));
            }
            assertArrayEquals(fixture, withoutMetadata.toBytes());
        }
        // ...and the data sections (everything after the header) are identical byte for byte
        int fixtureData = 8 + (int) ByteBuffer.wrap(fixture, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        int ourData = 8 + (int) ByteBuffer.wrap(ours, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertArrayEquals(Arrays.copyOfRange(fixture, fixtureData, fixture.length),
                Arrays.copyOfRange(ours, ourData, ours.length));
    }

    @Test
    void savedFixtureAdapterLoadsBackIdentically() {
        Path root = Fixtures.require("golden-tiny-llama");
        LoraModel lora = LoraModel.load(LlamaModel.load(root.resolve("model")), root.resolve("adapter"));
        Path out = tmp.resolve("saved");
        lora.saveAdapter(out);
        LoraModel again = LoraModel.load(LlamaModel.load(root.resolve("model")), out);
        assertEquals(lora.config("default"), again.config("default"));
        assertTensorsEqual(lora.peftTensors("default", t -> t), again.peftTensors("default", t -> t));
        int[] ids = {1, 5, 9, 17, 33, 65, 2};
        assertArrayEquals(TinyModels.logits(lora.model(), ids, 1), TinyModels.logits(again.model(), ids, 1));
    }

    @Test
    void ourAdapterRoundTripsWithRankAndAlphaPatterns() {
        LoraConfig config = LoraConfig.rank(4).alpha(8).targets(Target.ALL)
                .rankPattern(new TreeMap<>(Map.of("lm_head", 3, "q_proj", 2))).alphaPattern(Map.of("v_proj", 3.0)).seed(7);
        LoraModel lora = LoraModel.wrap(TinyModels.model(5), config);
        randomizeB(lora, "default", 50);
        Path out = tmp.resolve("ours");
        lora.saveAdapter("default", out);
        LoraModel again = LoraModel.load(TinyModels.model(5), out);
        assertEquals(config.rankPattern(), again.config("default").rankPattern());
        assertEquals(config.alphaPattern(), again.config("default").alphaPattern());
        assertTensorsEqual(lora.peftTensors("default", t -> t), again.peftTensors("default", t -> t));
        assertEquals(2, loraLinear(again, Q0).adapter("default").rank());
        assertEquals(3, loraLinear(again, "lm_head").adapter("default").rank());
        assertArrayEquals(TinyModels.logits(lora.model(), TOKENS, 2), TinyModels.logits(again.model(), TOKENS, 2));
    }

    private static void assertTensorsEqual(Map<String, Tensor> expected, Map<String, Tensor> actual) {
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(actual.keySet()));
        for (String key : expected.keySet()) {
            assertArrayEquals(expected.get(key).shape(), actual.get(key).shape(), key);
            assertArrayEquals(expected.get(key).toFloatArray(), actual.get(key).toFloatArray(), key);
        }
    }

    // ---------------------------------------------------------------- several adapters

    private LoraModel twoAdapters() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(11), LoraConfig.rank(4).alpha(8).seed(1));
        lora.addAdapter("b", LoraConfig.rank(2).alpha(6).targets(Target.QUERY, Target.VALUE, Target.HEAD).seed(2));
        randomizeB(lora, "default", 100);
        randomizeB(lora, "b", 200);
        return lora;
    }

    @Test
    void activeAdaptersSwitchAndSum() {
        LoraModel lora = twoAdapters();
        assertEquals(List.of("default"), lora.active(), "the first adapter stays active when another is added");
        LoraLinear q = loraLinear(lora, Q0);
        Tensor x = Tensor.normal(new SplittableRandom(4), 0f, 1f, 3, 32);

        lora.disableAdapters();
        float[] base = layerOut(q, x);
        lora.enableAdapters();
        float[] onlyA = layerOut(q, x);
        lora.setActive("b");
        float[] onlyB = layerOut(q, x);
        lora.setActive("default", "b");
        float[] both = layerOut(q, x);

        assertClose("Δ of default", applyDelta(q.delta("default"), x, q.outFeatures()), minus(onlyA, base), 1e-4, 1e-6);
        assertClose("Δ of b", applyDelta(q.delta("b"), x, q.outFeatures()), minus(onlyB, base), 1e-4, 1e-6);
        float[] sum = new float[base.length];
        for (int i = 0; i < sum.length; i++) {
            sum[i] = base[i] + (onlyA[i] - base[i]) + (onlyB[i] - base[i]);
        }
        assertClose("both active = base + Δa + Δb", sum, both, 1e-5, 1e-6);
        assertTrue(TinyModels.maxAbsDiff(onlyA, onlyB) > 1e-3, "the adapters must differ for this test to mean anything");

        // whole model: "b" is absent from the MLP layers, which then run the base alone
        lora.setActive("b");
        float[] modelB = TinyModels.logits(lora.model(), TOKENS, 2);
        lora.disableAdapters();
        float[] modelBase = TinyModels.logits(lora.model(), TOKENS, 2);
        assertTrue(TinyModels.maxAbsDiff(modelB, modelBase) > 1e-4);
        lora.enableAdapters();
        assertArrayEquals(modelB, TinyModels.logits(lora.model(), TOKENS, 2));
    }

    @Test
    void disableGivesTheBaseOutputExactly() {
        LlamaModel base = TinyModels.model(11);
        float[] expected = TinyModels.logits(base, TOKENS, 2);
        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(4).alpha(8).seed(1));
        lora.addAdapter("b", LoraConfig.rank(2).alpha(6).targets(Target.QUERY, Target.VALUE, Target.HEAD).seed(2));
        randomizeB(lora, "default", 100);
        randomizeB(lora, "b", 200);
        lora.setActive("default", "b");
        assertTrue(TinyModels.maxAbsDiff(expected, TinyModels.logits(lora.model(), TOKENS, 2)) > 1e-4);
        lora.disableAdapters();
        assertArrayEquals(expected, TinyModels.logits(lora.model(), TOKENS, 2));
    }

    @Test
    void deleteAdapterRemovesItEverywhere() {
        LoraModel lora = twoAdapters();
        lora.setActive("default");
        float[] onlyDefault = TinyModels.logits(lora.model(), TOKENS, 2);
        lora.setActive("default", "b");
        lora.deleteAdapter("b");
        assertEquals(List.of("default"), List.copyOf(lora.adapterNames()));
        assertEquals(List.of("default"), lora.active());
        for (Linear lin : lora.model().linears().values()) {
            if (lin instanceof LoraLinear ll) {
                assertFalse(ll.adapters().containsKey("b"), lin.name());
            }
        }
        assertArrayEquals(onlyDefault, TinyModels.logits(lora.model(), TOKENS, 2));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> lora.setActive("b"));
        assertTrue(e.getMessage().contains("no adapter named 'b'") && e.getMessage().contains("default"), e.getMessage());
        // the name is free again
        lora.addAdapter("b", LoraConfig.rank(2).targets(Target.QUERY));
        assertEquals(List.of("default", "b"), List.copyOf(lora.adapterNames()));
    }

    @Test
    void weightedAdapterIsTheWeightedSumOfDeltas() {
        LoraModel lora = twoAdapters();
        Map<String, Double> weights = new LinkedHashMap<>();
        weights.put("default", 0.3);
        weights.put("b", 0.7);
        lora.addWeightedAdapter("mix", weights);
        int checked = 0;
        for (Linear lin : lora.model().linears().values()) {
            if (!(lin instanceof LoraLinear ll) || !ll.adapters().containsKey("mix")) {
                continue;
            }
            float[] expected = new float[ll.outFeatures() * ll.inFeatures()];
            int rank = 0;
            for (Map.Entry<String, Double> w : weights.entrySet()) {
                if (ll.adapters().containsKey(w.getKey())) {
                    float[] d = ll.delta(w.getKey());
                    for (int i = 0; i < d.length; i++) {
                        expected[i] += (float) (w.getValue() * d[i]);
                    }
                    rank += ll.adapter(w.getKey()).rank();
                }
            }
            assertEquals(rank, ll.adapter("mix").rank(), lin.name() + ": ranks are concatenated");
            assertEquals(1.0, ll.adapter("mix").scaling(), lin.name());
            assertClose(lin.name() + " ΔW", expected, ll.delta("mix"), 1e-5, 1e-7);
            checked++;
        }
        assertEquals(2 * 7 + 1, checked, "every module with either adapter (default: 7 per layer; b adds lm_head)");

        // outputs: the mix alone adds 0.3·Δa + 0.7·Δb
        LoraLinear q = loraLinear(lora, Q0);
        Tensor x = Tensor.normal(new SplittableRandom(8), 0f, 1f, 5, 32);
        lora.disableAdapters();
        float[] base = layerOut(q, x);
        lora.enableAdapters();
        lora.setActive("mix");
        float[] mix = layerOut(q, x);
        float[] da = applyDelta(q.delta("default"), x, q.outFeatures());
        float[] db = applyDelta(q.delta("b"), x, q.outFeatures());
        float[] expected = new float[base.length];
        for (int i = 0; i < base.length; i++) {
            expected[i] = base[i] + 0.3f * da[i] + 0.7f * db[i];
        }
        assertClose("mix output", expected, mix, 1e-4, 1e-6);
    }

    @Test
    void weightedAdapterSavesAndLoadsBack() {
        // the sources differ in targets (b adds lm_head, lacks the MLP), ranks and rsLoRA; the saved
        // folder must still describe every module's rank and scaling
        LoraModel lora = LoraModel.wrap(TinyModels.model(11), LoraConfig.rank(4).alpha(8).useRslora(true).seed(1));
        lora.addAdapter("b", LoraConfig.rank(2).alpha(6).targets(Target.QUERY, Target.VALUE, Target.HEAD)
                .rankPattern(Map.of("layers.1.self_attn.v_proj", 3)).seed(2));
        randomizeB(lora, "default", 100);
        randomizeB(lora, "b", 200);
        Map<String, Double> weights = new LinkedHashMap<>();
        weights.put("default", 0.3);
        weights.put("b", 0.7);
        lora.addWeightedAdapter("mix", weights);
        lora.setActive("mix");
        float[] expected = TinyModels.logits(lora.model(), TOKENS, 2);
        Path dir = tmp.resolve("mix");
        lora.saveAdapter("mix", dir);

        LoraModel again = LoraModel.load(TinyModels.model(11), dir);
        assertTensorsEqual(lora.peftTensors("mix", t -> t), again.peftTensors("default", t -> t));
        for (Linear lin : again.model().linears().values()) {
            LoraAdapter loaded = ((LoraLinear) lin).adapter("default");
            LoraAdapter built = loraLinear(lora, lin.name()).adapter("mix");
            assertEquals(built.rank(), loaded.rank(), lin.name());
            assertEquals(1.0, loaded.scaling(), 1e-15, lin.name());
        }
        assertEquals(6, loraLinear(again, Q0).adapter("default").rank());
        assertEquals(7, loraLinear(again, V1).adapter("default").rank());
        assertEquals(4, loraLinear(again, "model.layers.0.mlp.up_proj").adapter("default").rank());
        assertEquals(2, loraLinear(again, "lm_head").adapter("default").rank());
        assertArrayEquals(expected, TinyModels.logits(again.model(), TOKENS, 2));
    }

    // ---------------------------------------------------------------- merge

    @Test
    void mergeAndUnmergeOnHeapF32() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(21), LoraConfig.rank(4).targets(Target.ALL));
        randomizeB(lora, "default", 300);
        Map<String, float[]> original = new LinkedHashMap<>();
        lora.model().linears().forEach((name, lin) -> original.put(name, lin.weight().toFloatArray()));
        float[] adapterLogits = TinyModels.logits(lora.model(), TOKENS, 2);

        lora.merge();
        for (Linear lin : lora.model().linears().values()) {
            LoraLinear ll = (LoraLinear) lin;
            assertEquals(List.of("default"), List.copyOf(ll.merged()));
            float[] expected = original.get(lin.name()).clone();
            float[] d = ll.delta("default");
            for (int i = 0; i < d.length; i++) {
                expected[i] += d[i];
            }
            assertArrayEquals(expected, lin.weight().toFloatArray(), lin.name() + " = W + scaling·B·A");
        }
        assertClose("merged logits", adapterLogits, TinyModels.logits(lora.model(), TOKENS, 2), 1e-4, 2e-5);
        // merging again is a no-op at the model level (PEFT skips merged adapters); the layer itself refuses
        float[] mergedQ = loraLinear(lora, Q0).weight().toFloatArray();
        lora.merge("default");
        assertArrayEquals(mergedQ, loraLinear(lora, Q0).weight().toFloatArray());
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> loraLinear(lora, Q0).merge("default"));
        assertTrue(twice.getMessage().contains("merged already"), twice.getMessage());

        lora.unmerge();
        for (Linear lin : lora.model().linears().values()) {
            assertTrue(((LoraLinear) lin).merged().isEmpty());
            // (w + d) − d is w up to one rounding of w + d
            assertClose(lin.name() + " unmerged", original.get(lin.name()), lin.weight().toFloatArray(), 1e-6, 1e-8);
        }
        assertClose("unmerged logits", adapterLogits, TinyModels.logits(lora.model(), TOKENS, 2), 1e-5, 1e-6);
    }

    @Test
    void unmergeRestoresABf16BaseExactly() {
        Path dir = tmp.resolve("model");
        ModelLoader.save(TinyModels.model(22), dir, DType.F32);
        LlamaModel base = ModelLoader.load(dir, ModelLoader.Options.defaults().frozenDType(DType.BF16));
        Map<String, Tensor> originalTensors = new LinkedHashMap<>();
        Map<String, float[]> originalValues = new LinkedHashMap<>();
        base.linears().forEach((name, lin) -> {
            assertEquals(DType.BF16, lin.weight().dtype(), name);
            originalTensors.put(name, lin.weight());
            originalValues.put(name, lin.weight().toFloatArray());
        });
        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(4).targets(Target.ALL));
        lora.addAdapter("b", LoraConfig.rank(2).targets(Target.MLP).seed(3));
        randomizeB(lora, "default", 400);
        randomizeB(lora, "b", 500);
        lora.setActive("default", "b");
        float[] adapterLogits = TinyModels.logits(lora.model(), TOKENS, 2);

        lora.merge();
        LoraLinear up = loraLinear(lora, "model.layers.0.mlp.up_proj");
        assertEquals(DType.F32, up.weight().dtype(), "merging widens a BF16 weight instead of rounding the delta away");
        assertEquals(List.of("default", "b"), List.copyOf(up.merged()));
        assertClose("merged logits", adapterLogits, TinyModels.logits(lora.model(), TOKENS, 2), 1e-4, 2e-5);

        lora.unmerge();
        for (Linear lin : lora.model().linears().values()) {
            assertSame(originalTensors.get(lin.name()), lin.weight(), lin.name() + ": the BF16 weight itself comes back");
            assertArrayEquals(originalValues.get(lin.name()), lin.weight().toFloatArray(), lin.name());
        }
        assertArrayEquals(adapterLogits, TinyModels.logits(lora.model(), TOKENS, 2));
    }

    @Test
    void mergeAndUnloadGivesThePlainModelWithTheAdapterOutput() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(23), LoraConfig.rank(4).targets(Target.ALL));
        randomizeB(lora, "default", 600);
        float[] adapterLogits = TinyModels.logits(lora.model(), TOKENS, 2);
        LlamaModel merged = lora.mergeAndUnload();
        for (Linear lin : merged.linears().values()) {
            assertFalse(lin instanceof LoraLinear, lin.name() + " is a plain Linear again");
        }
        assertClose("merged model logits", adapterLogits, TinyModels.logits(merged, TOKENS, 2), 1e-4, 2e-5);
        // the merged model saves and reloads as an ordinary checkpoint
        Path dir = tmp.resolve("merged");
        ModelLoader.save(merged, dir, DType.F32);
        assertArrayEquals(TinyModels.logits(merged, TOKENS, 2), TinyModels.logits(LlamaModel.load(dir), TOKENS, 2));
    }

    @Test
    void mergeAndUnloadAfterAnExplicitMerge() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(24), LoraConfig.rank(4).targets(Target.ALL));
        randomizeB(lora, "default", 650);
        float[] adapterLogits = TinyModels.logits(lora.model(), TOKENS, 2);
        lora.merge();
        LlamaModel merged = lora.mergeAndUnload();
        assertClose("merged once, not twice", adapterLogits, TinyModels.logits(merged, TOKENS, 2), 1e-4, 2e-5);
    }

    // ---------------------------------------------------------------- scaling

    @Test
    void rankAndAlphaPatternsGivePerModuleRankAndScaling() {
        LoraConfig config = LoraConfig.rank(4).alpha(8).targets(Target.ALL)
                .rankPattern(Map.of("q_proj", 2, "model.layers.1.mlp.down_proj", 6))
                .alphaPattern(Map.of("v_proj", 3.0, "lm_head", 20));
        LoraModel lora = LoraModel.wrap(TinyModels.model(31), config);
        for (Linear lin : lora.model().linears().values()) {
            LoraAdapter ad = ((LoraLinear) lin).adapter("default");
            String n = lin.name();
            int rank = n.endsWith("q_proj") ? 2 : n.equals("model.layers.1.mlp.down_proj") ? 6 : 4;
            double alpha = n.endsWith("v_proj") ? 3.0 : n.equals("lm_head") ? 20 : 8;
            assertEquals(rank, ad.rank(), n);
            assertEquals(alpha, ad.alpha(), n);
            assertEquals(alpha / rank, ad.scaling(), 1e-15, n);
            assertArrayEquals(new int[] {rank, lin.inFeatures()}, ad.a().shape(), n);
            assertArrayEquals(new int[] {lin.outFeatures(), rank}, ad.b().shape(), n);
        }
        assertEquals(4, loraLinear(lora, "model.layers.0.mlp.down_proj").adapter("default").rank());
    }

    @Test
    void rsLoraScalesByAlphaOverSqrtRank() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(32),
                LoraConfig.rank(16).alpha(8).useRslora(true).targets(Target.QUERY).rankPattern(Map.of("layers.1.self_attn.q_proj", 4)));
        assertEquals(2.0, loraLinear(lora, Q0).adapter("default").scaling(), 1e-15);
        assertEquals(4.0, loraLinear(lora, "model.layers.1.self_attn.q_proj").adapter("default").scaling(), 1e-15);
        randomizeB(lora, "default", 700);
        // the layer computes base + scaling·(x·Aᵀ)·Bᵀ with that scaling
        LoraLinear q = loraLinear(lora, Q0);
        LoraAdapter ad = q.adapter("default");
        float[] a = ad.a().toFloatArray();
        float[] b = ad.b().toFloatArray();
        float[] delta = new float[q.outFeatures() * q.inFeatures()];
        for (int o = 0; o < q.outFeatures(); o++) {
            for (int i = 0; i < q.inFeatures(); i++) {
                double acc = 0;
                for (int r = 0; r < ad.rank(); r++) {
                    acc += (double) b[o * ad.rank() + r] * a[r * q.inFeatures() + i];
                }
                delta[o * q.inFeatures() + i] = (float) (2.0 * acc);
            }
        }
        assertClose("ΔW = alpha/√r · B·A", delta, q.delta("default"), 1e-5, 1e-8);
        Tensor x = Tensor.normal(new SplittableRandom(9), 0f, 1f, 4, 32);
        lora.disableAdapters();
        float[] base = layerOut(q, x);
        lora.enableAdapters();
        assertClose("layer output", applyDelta(delta, x, q.outFeatures()), minus(layerOut(q, x), base), 1e-4, 1e-6);
    }

    // ---------------------------------------------------------------- errors

    /** Saves a q/v adapter of the tiny model, then rewrites its safetensors file with {@code edit}. */
    private Path brokenAdapter(String folder, BiConsumer<SafetensorsFile, SafetensorsWriter> edit) throws IOException {
        LoraModel lora = LoraModel.wrap(TinyModels.model(41), LoraConfig.rank(4).targets(Target.QUERY, Target.VALUE));
        Path good = tmp.resolve(folder + "-good");
        lora.saveAdapter(good);
        Path bad = tmp.resolve(folder);
        Files.createDirectories(bad);
        Files.copy(good.resolve("adapter_config.json"), bad.resolve("adapter_config.json"));
        try (SafetensorsFile file = SafetensorsFile.open(good.resolve("adapter_model.safetensors"))) {
            SafetensorsWriter writer = new SafetensorsWriter();
            edit.accept(file, writer);
            writer.write(bad.resolve("adapter_model.safetensors"));
        }
        return bad;
    }

    private static void copyAllBut(SafetensorsFile file, SafetensorsWriter writer, String skipped) {
        for (TensorInfo info : file.infos()) {
            if (!info.name().equals(skipped)) {
                writer.add(info.name(), info.dtype(), info.shape(), file.bytes(info.name()));
            }
        }
    }

    private static String peft(String module, String which) {
        return "base_model.model." + module + "." + which + ".weight";
    }

    @Test
    void missingAdapterTensorIsNamed() throws IOException {
        String key = peft(V1, "lora_B");
        Path dir = brokenAdapter("missing", (file, writer) -> copyAllBut(file, writer, key));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoraModel.load(TinyModels.model(41), dir));
        assertTrue(e.getMessage().contains("adapter_model.safetensors") && e.getMessage().contains(key)
                && e.getMessage().contains("missing"), e.getMessage());
    }

    @Test
    void wrongShapeNamesBothShapes() throws IOException {
        String key = peft(Q0, "lora_A");
        Path dir = brokenAdapter("shape", (file, writer) -> {
            copyAllBut(file, writer, key);
            writer.add(key, Tensor.zeros(5, 32));
        });
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoraModel.load(TinyModels.model(41), dir));
        assertTrue(e.getMessage().contains(key) && e.getMessage().contains("[5, 32]") && e.getMessage().contains("[4, 32]"),
                e.getMessage());
    }

    @Test
    void extraTensorIsNamed() throws IOException {
        String extra = peft("model.layers.0.mlp.up_proj", "lora_A");
        Path dir = brokenAdapter("extra", (file, writer) -> {
            copyAllBut(file, writer, "");
            writer.add(extra, Tensor.zeros(4, 32));
        });
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoraModel.load(TinyModels.model(41), dir));
        assertTrue(e.getMessage().contains(extra) && e.getMessage().contains("match no module"), e.getMessage());
    }

    @Test
    void failedLoadLeavesTheModelUntouched() throws IOException {
        String key = peft(V1, "lora_A");
        Path dir = brokenAdapter("partial", (file, writer) -> {
            copyAllBut(file, writer, key);
            writer.add(key, Tensor.zeros(4, 33));
        });
        LoraModel lora = LoraModel.wrap(TinyModels.model(42), LoraConfig.rank(2).targets(Target.MLP));
        float[] before = TinyModels.logits(lora.model(), TOKENS, 2);
        assertThrows(IllegalArgumentException.class, () -> lora.loadAdapter("other", dir));
        assertEquals(List.of("default"), List.copyOf(lora.adapterNames()));
        assertFalse(lora.model().linears().get(Q0) instanceof LoraLinear, "no module was wrapped by the failed load");
        assertArrayEquals(before, TinyModels.logits(lora.model(), TOKENS, 2));
    }

    @Test
    void targetMatchingNoModuleIsReported() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoraModel.wrap(TinyModels.model(43), LoraConfig.rank(4).targetModules("q_proj", "c_attn")));
        assertTrue(e.getMessage().contains("'c_attn'") && e.getMessage().contains("q_proj"), e.getMessage());

        // the same from an adapter_config.json written for another architecture
        Path dir = tmp.resolve("gpt2-adapter");
        AdapterConfigJson.of(LoraConfig.rank(4).targetModules("c_attn")).writeTo(dir);
        new SafetensorsWriter().add(peft("transformer.h.0.attn.c_attn", "lora_A"), Tensor.zeros(4, 32))
                .write(dir.resolve("adapter_model.safetensors"));
        IllegalArgumentException fromFile = assertThrows(IllegalArgumentException.class,
                () -> LoraModel.load(TinyModels.model(43), dir));
        assertTrue(fromFile.getMessage().contains("'c_attn'"), fromFile.getMessage());
    }

    @Test
    void existingAdapterNameIsRejected() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(44), LoraConfig.rank(2).targets(Target.QUERY));
        Path dir = tmp.resolve("a");
        lora.saveAdapter(dir);
        IllegalArgumentException load = assertThrows(IllegalArgumentException.class,
                () -> lora.loadAdapter(LoraModel.DEFAULT_ADAPTER, dir));
        assertTrue(load.getMessage().contains("'default'") && load.getMessage().contains("exists already"), load.getMessage());
        IllegalArgumentException add = assertThrows(IllegalArgumentException.class,
                () -> lora.addAdapter("default", LoraConfig.rank(2)));
        assertTrue(add.getMessage().contains("exists already"), add.getMessage());
        IllegalArgumentException dotted = assertThrows(IllegalArgumentException.class,
                () -> lora.addAdapter("a.b", LoraConfig.rank(2)));
        assertTrue(dotted.getMessage().contains("'a.b'"), dotted.getMessage());
        // loading under a new name works and keeps the original active
        lora.loadAdapter("copy", dir);
        assertEquals(List.of("default"), lora.active());
        assertTensorsEqual(lora.peftTensors("default", t -> t), lora.peftTensors("copy", t -> t));
    }

    @Test
    void loadingAdaptersLeavesNoFileOpen() {
        LoraModel lora = LoraModel.wrap(TinyModels.model(46), LoraConfig.rank(2).targets(Target.QUERY));
        Path dir = tmp.resolve("a");
        lora.saveAdapter(dir);
        long before = TinyModels.openFileDescriptors();
        for (int i = 0; i < 16; i++) {
            lora.loadAdapter("copy" + i, dir);
        }
        // the tensors are heap copies; the adapter file must not stay open (one descriptor per load leaked before)
        assertTrue(TinyModels.openFileDescriptors() - before < 4, "open descriptors grew from " + before + " to "
                + TinyModels.openFileDescriptors());
    }

    @Test
    void missingAdapterFolderIsReported() {
        Path nowhere = tmp.resolve("does-not-exist");
        RuntimeException e = assertThrows(RuntimeException.class, () -> LoraModel.load(TinyModels.model(45), nowhere));
        assertTrue(e.getMessage().contains(nowhere.toString()), e.getMessage());
    }

    @Test
    void bf16AdapterFileLoadsWidened() throws IOException {
        // PEFT saves adapters in the dtype they were trained in; a BF16 adapter must load too
        Path dir = brokenAdapter("bf16", (file, writer) -> {
            for (TensorInfo info : file.infos()) {
                Tensor t = file.f32(info.name());
                writer.add(info.name(), new Tensor(BufferStorage.of(t.data(), DType.BF16), t.shape()), DType.BF16);
            }
        });
        LoraModel lora = LoraModel.load(TinyModels.model(41), dir);
        LoraModel good = LoraModel.load(TinyModels.model(41), tmp.resolve("bf16-good"));
        Map<String, Tensor> expected = good.peftTensors("default", t -> t);
        for (Map.Entry<String, Tensor> e : lora.peftTensors("default", t -> t).entrySet()) {
            assertInstanceOf(dev.lora4j.tensor.FloatStorage.class, e.getValue().storage(), e.getKey());
            assertTrue(e.getValue().requiresGrad(), e.getKey());
            float[] want = expected.get(e.getKey()).toFloatArray();
            for (int i = 0; i < want.length; i++) {
                want[i] = DType.bf16ToFloat(DType.floatToBf16(want[i]));
            }
            assertArrayEquals(want, e.getValue().toFloatArray(), e.getKey());
        }
    }
}
