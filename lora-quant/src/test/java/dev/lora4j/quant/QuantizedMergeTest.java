package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.io.Checkpoint;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Merging the golden PEFT adapter into a 4-bit copy of its base model. */
class QuantizedMergeTest {

    /** The 4-bit base with the fixture's adapter, and the exact F32 merge of every adapted layer. */
    private record Setup(LoraModel lora, Map<String, float[]> exact, Map<String, QuantizedStorage> bases) {
    }

    private static Setup setup() {
        Path dir = TestFixtures.require("golden-tiny-llama");
        LlamaModel model = LlamaModel.load(dir.resolve("model"));
        Quantizer.quantize(model, QuantConfig.NF4_DQ);
        LoraModel lora = LoraModel.load(model, dir.resolve("adapter"));
        Map<String, float[]> exact = new LinkedHashMap<>();
        Map<String, QuantizedStorage> bases = new LinkedHashMap<>();
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll) {
                float[] w = ll.weight().toFloatArray();
                float[] d = ll.delta(LoraModel.DEFAULT_ADAPTER);
                for (int i = 0; i < w.length; i++) {
                    w[i] += d[i];
                }
                exact.put(ll.name(), w);
                if (ll.weight().storage() instanceof QuantizedStorage q) {
                    bases.put(ll.name(), q);
                }
            }
        }
        return new Setup(lora, exact, bases);
    }

    @Test
    void addedDeltaIsThePeftMergeDelta() throws Exception {
        Path dir = TestFixtures.require("golden-tiny-llama");
        Setup s = setup();
        try (Checkpoint base = Checkpoint.open(dir.resolve("model"));
             Checkpoint merged = Checkpoint.open(dir.resolve("expected/merged_weights.safetensors"))) {
            for (Map.Entry<String, QuantizedStorage> e : s.bases().entrySet()) {
                String key = e.getKey() + ".weight";
                float[] w = base.f32(key).data();
                float[] expectedMerge = merged.f32(key).data();
                float[] dequantized = new float[w.length];
                e.getValue().decode(0, w.length, dequantized, 0);
                float[] ours = s.exact().get(e.getKey());
                for (int i = 0; i < w.length; i++) {
                    float expectedDelta = expectedMerge[i] - w[i];
                    assertEquals(expectedDelta, ours[i] - dequantized[i], 1e-5 + 1e-4 * Math.abs(expectedDelta),
                            key + " element " + i);
                }
            }
        }
        assertEquals(14, s.bases().size(), "every projection of both layers is 4-bit and adapted");
    }

    @Test
    void mergeToBf16RoundsTheExactMergeAndReportsTheRounding() {
        Setup s = setup();
        QuantizedMerge.Result r = QuantizedMerge.merge(s.lora(), QuantizedMerge.Target.BF16);
        double max = 0;
        double sum = 0;
        long count = 0;
        for (Map.Entry<String, float[]> e : s.exact().entrySet()) {
            Linear lin = r.model().linears().get(e.getKey());
            assertTrue(!(lin instanceof LoraLinear), e.getKey() + " is a plain layer after merging");
            BufferStorage stored = assertInstanceOf(BufferStorage.class, lin.weight().storage(), e.getKey());
            assertEquals(DType.BF16, stored.dtype());
            float[] exact = e.getValue();
            float[] got = lin.weight().toFloatArray();
            for (int i = 0; i < exact.length; i++) {
                assertEquals(DType.bf16ToFloat(DType.floatToBf16(exact[i])), got[i], 0f, e.getKey() + " element " + i);
                double d = Math.abs((double) got[i] - exact[i]);
                max = Math.max(max, d);
                sum += d;
            }
            count += exact.length;
        }
        assertEquals(max, r.overall().max(), 0);
        assertEquals(sum / count, r.overall().mean(), 1e-12);
        assertEquals(count, r.overall().count());
        assertEquals(15, r.perLayer().size(), "14 projections and lm_head");
    }

    @Test
    void requantizedMergeUsesTheBaseFormatAndReportsItsError() {
        Setup s = setup();
        QuantizedMerge.Result r = QuantizedMerge.merge(s.lora(), QuantizedMerge.Target.REQUANTIZE);
        for (Map.Entry<String, QuantizedStorage> e : s.bases().entrySet()) {
            Tensor w = r.model().linears().get(e.getKey()).weight();
            QuantizedStorage q = assertInstanceOf(QuantizedStorage.class, w.storage(), e.getKey());
            assertEquals(e.getValue().config(), q.config());
            float[] exact = s.exact().get(e.getKey());
            QuantizedStorage fresh = (QuantizedStorage) Quantizer.quantize(e.getKey(), exact.clone(), w.shape(),
                    QuantConfig.NF4_DQ, DType.F32).storage();
            assertArrayEquals(fresh.packed(), q.packed(), e.getKey());
            float[] got = w.toFloatArray();
            double max = 0;
            double sum = 0;
            for (int i = 0; i < exact.length; i++) {
                double d = Math.abs((double) got[i] - exact[i]);
                max = Math.max(max, d);
                sum += d;
            }
            QuantizedMerge.RoundingError err = r.perLayer().get(e.getKey());
            assertEquals(max, err.max(), 0);
            assertEquals(sum / exact.length, err.mean(), 1e-12);
            assertTrue(err.mean() > 0, "4-bit rounding is never exact on these weights");
        }
        assertInstanceOf(BufferStorage.class, r.model().linears().get("lm_head").weight().storage(),
                "an adapted lm_head is stored as BF16, never quantized");
        assertTrue(r.overall().max() >= r.perLayer().values().stream().mapToDouble(QuantizedMerge.RoundingError::max).max()
                .orElseThrow());
    }
}
