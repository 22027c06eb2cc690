package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class QuantizedStorageTest {

    private static QuantizedStorage quantize(float[] values, int[] shape, QuantConfig config) {
        return QuantizedStorage.quantize("test", Tensor.of(values, values.length).storage(), 0, shape, config, DType.F32);
    }

    private static float[] decodeAll(QuantizedStorage q) {
        float[] out = new float[(int) q.size()];
        q.decode(0, out.length, out, 0);
        return out;
    }

    @Test
    void nf4CodesAreNearestByMidpointsWithTiesDown() {
        float[] code = QuantMaps.nf4();
        for (int i = 0; i < 16; i++) {
            assertEquals(i, QuantType.NF4.encode(code[i]), "exact code value " + code[i]);
        }
        for (int i = 0; i < 15; i++) {
            float mid = (float) (((double) code[i] + code[i + 1]) / 2);
            assertEquals(i, QuantType.NF4.encode(mid), "on the midpoint " + mid + " the lower code wins");
            assertEquals(i + 1, QuantType.NF4.encode(Math.nextUp(mid)), "just above the midpoint " + mid);
        }
        // bitsandbytes' kernel thresholds, e.g. 0.03979014977812767 between 0 and 0.0795...
        assertEquals(7, QuantType.NF4.encode(0.03979014977812767f));
        assertEquals(8, QuantType.NF4.encode(0.0398f));
        assertEquals(0, QuantType.NF4.encode(Float.NaN), "NaN (an all-zero block) codes to 0");
        assertEquals(15, QuantType.NF4.encode(1.5f));
        assertEquals(0, QuantType.NF4.encode(-1.5f));
    }

    @Test
    void fp4CodesCarryTheSignInBitThree() {
        assertEquals(0b0011, QuantType.FP4.encode(1f));
        assertEquals(0b1011, QuantType.FP4.encode(-1f));
        assertEquals(0b0010, QuantType.FP4.encode(8f / 12f));
        assertEquals(0b0111, QuantType.FP4.encode(0.25f));
        assertEquals(0b0001, QuantType.FP4.encode(0.0625f / 12f));
        assertEquals(0b0000, QuantType.FP4.encode(0.002f));
        assertEquals(0b1000, QuantType.FP4.encode(-0.002f), "tiny negatives keep their sign, as in bitsandbytes' kernel");
        // bitsandbytes' threshold between 6/12 and 8/12 is 0.583333, a little below 7/12
        assertEquals(0b0010, QuantType.FP4.encode(0.5833331f));
        assertEquals(0b0101, QuantType.FP4.encode(0.583333f));
        float[] code = QuantMaps.fp4();
        for (int i = 0; i < 16; i++) {
            if (i != 8) {
                assertEquals(i, QuantType.FP4.encode(code[i]), "exact code value " + code[i]);
            }
        }
    }

    @Test
    void packsElementTwoKIntoTheHighNibble() {
        // one block of 64: absmax 1; elements 0..3 = -1, 1, 0, 0.5626..., rest 0
        float[] x = new float[64];
        x[0] = -1f;
        x[1] = 1f;
        x[3] = 0.5626170039176941f;
        QuantizedStorage q = quantize(x, new int[] {1, 64}, QuantConfig.NF4);
        byte[] packed = q.packed();
        assertEquals(32, packed.length);
        assertEquals((byte) 0x0F, packed[0], "code 0 (-1) high, code 15 (+1) low");
        assertEquals((byte) 0x7D, packed[1], "code 7 (0) high, code 13 (0.5626) low");
        for (int i = 2; i < 32; i++) {
            assertEquals((byte) 0x77, packed[i]);
        }
        assertArrayEquals(new float[] {1f}, q.absmax());
        assertArrayEquals(x, decodeAll(q));
    }

    @Test
    void oddCountPadsTheLastLowNibbleWithTheCodeOfZero() {
        float[] x = {0.5f, -2f, 1f};
        QuantizedStorage q = quantize(x, new int[] {3}, QuantConfig.NF4);
        assertEquals(2, q.packed().length);
        assertEquals(7, q.packed()[1] & 0xF);
        float[] back = decodeAll(q);
        assertEquals(-2f, back[1]);
        assertEquals(2f * QuantMaps.nf4()[10], back[0], "0.5 / absmax 2 = 0.25 is nearest to code 10 (0.2461)");
        assertEquals(2f * QuantMaps.nf4()[12], back[2], "1 / 2 = 0.5 is below the midpoint 0.5017 of codes 12 and 13");
    }

    @Test
    void decodingAnyRangeEqualsTheMatchingPartOfAFullDecode() {
        SplittableRandom rng = new SplittableRandom(7);
        int rows = 5;
        int cols = 173; // rows start mid-block and on odd elements
        float[] x = Tensor.normal(rng.split(), 0f, 1f, rows * cols).data();
        for (QuantConfig config : new QuantConfig[] {QuantConfig.NF4, QuantConfig.FP4_DQ.withBlocksize(32)}) {
            QuantizedStorage q = quantize(x, new int[] {rows, cols}, config);
            float[] all = decodeAll(q);
            for (int trial = 0; trial < 500; trial++) {
                int start = rng.nextInt(all.length);
                int count = rng.nextInt(all.length - start + 1);
                float[] part = new float[count + 3];
                q.decode(start, count, part, 3);
                for (int i = 0; i < count; i++) {
                    assertEquals(Float.floatToIntBits(all[start + i]), Float.floatToIntBits(part[3 + i]),
                            config + ": element " + (start + i) + " decoded from " + start);
                }
            }
            assertEquals(all[all.length - 1], q.getFloat(all.length - 1));
        }
    }

    @Test
    void everyElementDecodesToItsCodeTimesItsBlockAbsmax() {
        float[] x = Tensor.normal(new SplittableRandom(3), 0f, 0.02f, 200).data();
        QuantizedStorage q = quantize(x, new int[] {200}, QuantConfig.NF4.withBlocksize(64));
        float[] back = decodeAll(q);
        float[] code = QuantMaps.nf4();
        for (int i = 0; i < 200; i++) {
            int block = i / 64;
            float absmax = 0;
            for (int j = block * 64; j < Math.min(200, block * 64 + 64); j++) {
                absmax = Math.max(absmax, Math.abs(x[j]));
            }
            int c = (q.packed()[i / 2] >> (i % 2 == 0 ? 4 : 0)) & 0xF;
            assertEquals(QuantType.NF4.encode(x[i] * (1f / absmax)), c, "code of element " + i);
            assertEquals(code[c] * absmax, back[i], "element " + i);
        }
        assertEquals(4, q.blockCount(), "three full blocks and a partial one");
    }

    @Test
    void doubleQuantizationStoresAbsmaxAsEightBitCodesAroundTheirMean() {
        float[] x = Tensor.normal(new SplittableRandom(11), 0f, 1f, 64 * 600).data();
        QuantizedStorage plain = quantize(x, new int[] {600, 64}, QuantConfig.NF4);
        QuantizedStorage dq = quantize(x, new int[] {600, 64}, QuantConfig.NF4_DQ);
        QuantizedStorage.NestedAbsmax n = dq.nested();
        assertEquals(600, n.codes().length);
        assertEquals(3, n.absmax().length, "600 absmax values in blocks of 256");
        assertArrayEquals(plain.packed(), dq.packed(), "the 4-bit codes do not depend on how absmax is stored");
        double mean = 0;
        for (float a : plain.absmax()) {
            mean += a;
        }
        mean /= 600;
        assertEquals((float) mean, (float) n.offset());
        float[] map = QuantMaps.dynamicSigned();
        double worst = 0;
        for (int b = 0; b < 600; b++) {
            float expected = map[n.codes()[b] & 0xFF] * n.absmax()[b / 256] + (float) n.offset();
            assertEquals(expected, dq.blockScale(b));
            worst = Math.max(worst, Math.abs(dq.blockScale(b) - plain.absmax()[b]) / plain.absmax()[b]);
        }
        assertTrue(worst < 0.01, "8-bit absmax within 1% of the exact absmax, worst " + worst);
        assertEquals(64 * 600 / 2 + 600 + 3 * 4 + 4, dq.byteSize(), "packed codes, 8-bit absmax, nested absmax, offset");
        assertEquals(QuantConfig.NF4_DQ.bytesFor(64 * 600), dq.byteSize());
        assertEquals(QuantConfig.NF4.bytesFor(64 * 600), plain.byteSize());
    }

    @Test
    void nestedCodesFollowBitsandbytesBinarySearch() {
        float[] map = QuantMaps.dynamicSigned();
        for (int i = 0; i < 256; i++) {
            assertEquals(i, Blockwise.nearest8(map, map[i]), "exact map value " + map[i]);
        }
        SplittableRandom rng = new SplittableRandom(5);
        for (int t = 0; t < 10_000; t++) {
            float x = (float) (rng.nextDouble() * 2 - 1);
            int q = Blockwise.nearest8(map, x);
            double d = Math.abs(map[q] - x);
            for (int j = 0; j < 256; j++) {
                assertTrue(Math.abs(map[j] - x) >= d - 1e-7, "code " + q + " for " + x + " is not the nearest; " + j + " is");
            }
        }
    }

    @Test
    void allZeroBlocksDecodeToZero() {
        float[] x = new float[128];
        x[100] = 3f;
        QuantizedStorage q = quantize(x, new int[] {2, 64}, QuantConfig.FP4);
        float[] back = decodeAll(q);
        for (int i = 0; i < 128; i++) {
            assertEquals(i == 100 ? 3f : 0f, back[i], 0f, "element " + i);
        }
    }

    @Test
    void nonFiniteWeightsAreRejectedWithTheirIndex() {
        float[] x = new float[64];
        x[9] = Float.NaN;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> quantize(x, new int[] {64}, QuantConfig.NF4));
        assertTrue(e.getMessage().contains("element 9 is NaN"), e.getMessage());
    }

    @Test
    void configParsesTheNamesOfTheIssue() {
        assertEquals(QuantConfig.NF4, QuantConfig.parse("nf4"));
        assertEquals(QuantConfig.NF4_DQ, QuantConfig.parse("nf4-dq"));
        assertEquals(QuantConfig.FP4, QuantConfig.parse("FP4"));
        assertEquals(QuantConfig.FP4_DQ, QuantConfig.parse("fp4_dq"));
        assertEquals(QuantConfig.NF4_DQ.withBlocksize(128), QuantConfig.parse("nf4-dq@128"));
        assertEquals("nf4-dq@128", QuantConfig.parse("nf4-dq@128").toString());
        assertEquals(QuantType.FP4, QuantType.parse("fp4"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> QuantConfig.parse("int4")).getMessage()
                .contains("nf4, nf4-dq, fp4, fp4-dq"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> QuantConfig.parse("nf4@48")).getMessage()
                .contains("blocksize 48 is not supported"));
        assertThrows(IllegalArgumentException.class, () -> QuantConfig.parse("nf4@8192"));
        assertThrows(IllegalArgumentException.class, () -> QuantConfig.parse("nf4@16"));
    }

    @Test
    void doubleQuantizationCostsAbout4point127BitsPerParameter() {
        assertEquals(4.127, QuantConfig.NF4_DQ.bitsPerParameter(), 5e-4);
        assertEquals(4.5, QuantConfig.NF4.bitsPerParameter(), 0);
        long n = 4096L * 4096;
        assertEquals(n / 2 + n / 64 + 4 * (n / 64 / 256) + 4, QuantConfig.NF4_DQ.bytesFor(n));
        assertEquals(4.127, 8.0 * QuantConfig.NF4_DQ.bytesFor(n) / n, 5e-4);
    }
}
