package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tensor.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The GGUF container: round trips of every value type and tensor type, and refusals of malformed files. */
class GgufFileTest {
    @TempDir
    Path tmp;

    private static float[] random(int n, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rng.nextGaussian() * 0.5);
        }
        return v;
    }

    @Test
    void roundTripsEveryValueTypeAndTensorType() throws IOException {
        GgufWriter w = new GgufWriter();
        w.put("u8", new GgufValue(GgufValueType.UINT8, null, 200L));
        w.put("i8", new GgufValue(GgufValueType.INT8, null, -5L));
        w.put("u16", new GgufValue(GgufValueType.UINT16, null, 65535L));
        w.put("i16", new GgufValue(GgufValueType.INT16, null, -300L));
        w.putU32("u32", 4_000_000_000L);
        w.put("i32", GgufValue.i32(-7));
        w.putF32("f32", 1.5);
        w.putBool("bool", true);
        w.putString("string", "héllo ▁");
        w.put("u64", GgufValue.u64(1L << 40));
        w.put("i64", new GgufValue(GgufValueType.INT64, null, -(1L << 40)));
        w.put("f64", new GgufValue(GgufValueType.FLOAT64, null, Math.PI));
        w.put("strings", GgufValue.strings("a", "", "ü"));
        w.put("floats", GgufValue.floats(1f, -2f));
        w.put("ints", GgufValue.ints(1, 2, 6));
        w.put("bools", new GgufValue(GgufValueType.ARRAY, GgufValueType.BOOL, new boolean[] {true, false}));
        w.putU32("general.alignment", 64);
        float[] a = random(3 * 172, 1);
        float[] b = random(64 * 32, 2);
        w.add("a", new int[] {3, 172}, GgmlType.F32, a);
        w.add("b16", new int[] {64, 32}, GgmlType.F16, b);
        w.add("bbf", new int[] {64, 32}, GgmlType.BF16, b);
        w.add("q8", new int[] {64, 32}, GgmlType.Q8_0, b);
        w.add("v", new int[] {5}, GgmlType.F32, new float[] {1, 2, 3, 4, 5});
        Path file = tmp.resolve("all.gguf");
        w.write(file);
        try (GgufFile f = GgufFile.open(file)) {
            assertEquals(3, f.version());
            assertEquals(64, f.alignment());
            assertEquals(w.metadata(), f.metadata());
            assertEquals(4_000_000_000L, f.integer("u32"));
            assertEquals("héllo ▁", f.string("string"));
            assertArrayEquals(new long[] {1, 2, 6}, f.array("ints", long[].class));
            assertArrayEquals(new int[] {3, 172}, f.info("a").shape());
            assertArrayEquals(new long[] {172, 3}, f.info("a").ne());
            long offset = 0;
            for (String name : f.tensorNames()) {
                GgufTensorInfo info = f.info(name);
                assertEquals(offset, info.offset(), "offsets are sequential in tensor-info order: " + name);
                offset = GgufFile.align(offset + info.byteSize(), 64);
            }
            assertArrayEquals(a, f.floats("a"));
            float[] half = f.floats("b16");
            float[] bf = f.floats("bbf");
            float[] q8 = f.floats("q8");
            for (int i = 0; i < b.length; i++) {
                assertEquals(DType.f16ToFloat(DType.floatToF16(b[i])), half[i]);
                assertEquals(DType.bf16ToFloat(DType.floatToBf16(b[i])), bf[i]);
                int block = i / 32;
                float amax = 0;
                for (int j = block * 32; j < block * 32 + 32; j++) {
                    amax = Math.max(amax, Math.abs(b[j]));
                }
                assertEquals(b[i], q8[i], amax / 127 * 0.5 + 1e-3 * amax, "Q8_0 within half a step at " + i);
            }
        }
    }

    @Test
    void q8RoundsHalfwayAwayFromZeroLikeC() {
        assertEquals(3, GgmlQuants.roundAwayFromZero(2.5f));
        assertEquals(-3, GgmlQuants.roundAwayFromZero(-2.5f));
        assertEquals(0, GgmlQuants.roundAwayFromZero(0.49999997f));
        // a block whose maximum is 127 steps: d = amax / 127 and the extremes hit ±127 exactly
        float[] x = new float[32];
        x[0] = 1.27f;
        x[1] = -1.27f;
        x[2] = 0.005f;
        ByteBuffer q = GgmlQuants.encode(GgmlType.Q8_0, x);
        assertEquals(34, q.remaining());
        assertEquals(127, q.get(2));
        assertEquals(-127, q.get(3));
        assertEquals(1, q.get(4), "0.005 / 0.01 = 0.5 rounds away from zero");
    }

    @Test
    void permutationIsInvertedExactly() {
        float[] w = random(8 * 3 * 2, 3);
        float[] p = GgufArchitecture.permuteRows(w, 16, 3, 2, false);
        assertArrayEquals(w, GgufArchitecture.permuteRows(p, 16, 3, 2, true));
        // head 0, head_dim 8: GGUF row 1 (i = 0, j = 1) is HF row 4 (j·hd/2 + i)
        assertEquals(w[4 * 3], p[3]);
    }

    // ---------------------------------------------------------------- malformed files

    private Path bytes(String name, ByteBuffer b) throws IOException {
        Path p = tmp.resolve(name);
        byte[] arr = new byte[b.position()];
        b.flip();
        b.get(arr);
        Files.write(p, arr);
        return p;
    }

    private static ByteBuffer header(long tensors, long kvs) {
        ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(GgufFile.MAGIC).putInt(3).putLong(tensors).putLong(kvs);
        return b;
    }

    private static void putString(ByteBuffer b, String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        b.putLong(bytes.length).put(bytes);
    }

    private void assertRefused(Path p, String fragment) {
        String msg = refusal(p);
        assertTrue(msg.contains(fragment), "expected \"" + fragment + "\" in: " + msg);
    }

    private String refusal(Path p) {
        return assertThrows(IOException.class, () -> GgufFile.open(p).close()).getMessage();
    }

    @Test
    void refusesMalformedHeadersWithoutAllocating() throws IOException {
        ByteBuffer notGguf = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        notGguf.put("PK\3\4 this is a zip file ..........".getBytes(StandardCharsets.US_ASCII));
        assertTrue(refusal(bytes("zip.gguf", notGguf)).contains("instead of \"GGUF\""));

        ByteBuffer v1 = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        v1.putInt(GgufFile.MAGIC).putInt(1).putLong(0).putLong(0);
        assertRefused(bytes("v1.gguf", v1), "version 1");

        assertRefused(bytes("tensors.gguf", header(Long.MAX_VALUE, 0)), "tensor count");
        assertRefused(bytes("kvs.gguf", header(0, 1L << 40)), "metadata count");

        ByteBuffer longKey = header(0, 1);
        longKey.putLong(1L << 50).putLong(0).putLong(0);
        assertRefused(bytes("key.gguf", longKey), "has length");

        ByteBuffer hugeArray = header(0, 1);
        putString(hugeArray, "tokenizer.ggml.tokens");
        hugeArray.putInt(GgufValueType.ARRAY.id()).putInt(GgufValueType.STRING.id()).putLong(1L << 40);
        assertRefused(bytes("array.gguf", hugeArray), "array length of tokenizer.ggml.tokens");

        ByteBuffer badType = header(0, 1);
        putString(badType, "x");
        badType.putInt(99).putInt(0);
        assertRefused(bytes("type.gguf", badType), "value type 99");

        ByteBuffer badBool = header(0, 1);
        putString(badBool, "x");
        badBool.putInt(GgufValueType.BOOL.id()).put((byte) 2).putLong(0);
        assertRefused(bytes("bool.gguf", badBool), "0 or 1");
    }

    private static ByteBuffer oneTensor(long[] ne, int type, long offset, int dataBytes) {
        ByteBuffer b = header(1, 0);
        putString(b, "w");
        b.putInt(ne.length);
        for (long n : ne) {
            b.putLong(n);
        }
        b.putInt(type).putLong(offset);
        while (b.position() % 32 != 0) {
            b.put((byte) 0);
        }
        for (int i = 0; i < dataBytes; i++) {
            b.put((byte) 0);
        }
        return b;
    }

    @Test
    void refusesBadTensorInfos() throws IOException {
        assertRefused(bytes("ok-but-short.gguf", oneTensor(new long[] {8, 2}, 0, 0, 32)), "truncated");
        assertRefused(bytes("dims.gguf", oneTensor(new long[] {1, 1, 1, 1, 1}, 0, 0, 4)), "5 dimensions");
        assertRefused(bytes("zero.gguf", oneTensor(new long[] {0}, 0, 0, 0)), "ne[0] = 0");
        assertRefused(bytes("unknown.gguf", oneTensor(new long[] {4}, 77, 0, 16)), "ggml type 77");
        assertRefused(bytes("block.gguf", oneTensor(new long[] {33}, 8, 0, 64)), "block size 32");
        assertRefused(bytes("align.gguf", oneTensor(new long[] {4}, 0, 4, 32)), "alignment");
        assertRefused(bytes("huge.gguf", oneTensor(new long[] {1L << 20, 1L << 20}, 0, 0, 32)), "outside the data section");
        // a valid one for contrast
        try (GgufFile f = GgufFile.open(bytes("valid.gguf", oneTensor(new long[] {8, 2}, 0, 0, 64)))) {
            assertArrayEquals(new int[] {2, 8}, f.info("w").shape());
        }
    }

    @Test
    void refusesUndecodableTypesByName() throws IOException {
        Path p = bytes("q2k.gguf", oneTensor(new long[] {256}, GgmlType.Q2_K.id(), 0, 96));
        try (GgufFile f = GgufFile.open(p)) {
            String msg = assertThrows(IllegalArgumentException.class, () -> f.storage("w")).getMessage();
            assertTrue(msg.contains("Q2_K") && msg.contains("Q4_K"), msg);
        }
    }
}
