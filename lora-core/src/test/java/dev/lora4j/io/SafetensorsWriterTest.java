package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Device;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsWriterTest {

    @TempDir
    Path tmp;

    // ---------------------------------------------------------------- byte compatibility

    /** The single-tensor vector of the reference crate's own serialization test. */
    @Test
    void referenceSerializationVector() {
        byte[] data = floats(0f, 1f, 2f, 3f, 4f, 5f);
        byte[] out = new SafetensorsWriter().add("attn.0", DType.F32, new int[] {1, 2, 3}, data).toBytes();
        String header = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
        assertEquals(64, header.length(), "already a multiple of 8: no padding");
        assertArrayEquals(concat(le64(64), ascii(header), data), out);
    }

    @Test
    void headerIsPaddedWithSpacesToEightBytes() {
        byte[] data = floats(0f, 1f, 2f, 3f, 4f, 5f);
        byte[] out = new SafetensorsWriter().add("attn0", DType.F32, new int[] {1, 1, 2, 3}, data).toBytes();
        String header = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}";
        assertEquals(65, header.length());
        assertArrayEquals(concat(le64(72), ascii(header + "       "), data), out);
    }

    @Test
    void emptyFileAndMetadataOnly() {
        assertArrayEquals(concat(le64(8), ascii("{}      ")), new SafetensorsWriter().toBytes());
        String header = "{\"__metadata__\":{\"framework\":\"pt\"}}";
        assertArrayEquals(concat(le64(40), ascii(header + "     ")),
                new SafetensorsWriter().metadata("framework", "pt").toBytes());
    }

    @Test
    void ordersByDtypeAlignmentDescendingThenName() throws IOException {
        SafetensorsWriter w = new SafetensorsWriter()
                .add("b_u8", DType.U8, new int[] {3}, new byte[] {1, 2, 3})
                .add("z_f16", DType.F16, new int[] {1}, new byte[] {4, 5})
                .add("a_f32", DType.F32, new int[] {1}, floats(6f))
                .add("c_bool", DType.BOOL, new int[] {1}, new byte[] {1})
                .add("y_bf16", DType.BF16, new int[] {1}, new byte[] {7, 8})
                .addLongs("x_i64", DType.I64, new int[] {1}, new long[] {9})
                .add("a_bf16", DType.BF16, new int[] {1}, new byte[] {10, 11})
                .add("m_f64", DType.F64, new int[] {1}, new byte[8])
                .addLongs("q_i32", DType.I32, new int[] {1}, new long[] {12})
                .addLongs("a_u8", DType.U8, new int[] {1}, new long[] {13})
                .metadata("format", "pt");
        Path file = tmp.resolve("order.safetensors");
        w.write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(List.of("x_i64", "m_f64", "a_f32", "q_i32", "a_bf16", "y_bf16", "z_f16", "a_u8", "b_u8",
                    "c_bool"), List.copyOf(f.names()));
            long expectedBegin = 0;
            for (TensorInfo info : f.infos()) {
                assertEquals(expectedBegin, info.begin(), info.name() + " follows its predecessor in the data section");
                expectedBegin = info.end();
            }
            String header = new String(Files.readAllBytes(file), 8, 64, StandardCharsets.UTF_8);
            assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\"},\"x_i64\":{"), header);
        }
    }

    @Test
    void namesSortByUtf8BytesAndAreWrittenUnescaped() throws IOException {
        // U+FF21 sorts before U+1F600 in UTF-8 (and code points) but after it in UTF-16 units
        List<String> names = List.of("\uD83D\uDE00", "\uFF21", "a\"q\\", "tab\t", "Z", "unit\u001f");
        SafetensorsWriter w = new SafetensorsWriter();
        for (String n : names) {
            w.add(n, DType.U8, new int[] {1}, new byte[] {1});
        }
        byte[] out = w.toBytes();
        String header = new String(out, 8, (int) ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).getLong(0),
                StandardCharsets.UTF_8);
        assertTrue(header.contains("\"a\\\"q\\\\\""), header);
        assertTrue(header.contains("\"tab\\t\""), header);
        assertTrue(header.contains("\"unit\\u001f\""), "lower-case hex as serde_json writes: " + header);
        assertTrue(header.contains("\"\uFF21\""), header);
        Path file = Files.write(tmp.resolve("names.safetensors"), out);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(List.of("Z", "a\"q\\", "tab\t", "unit\u001f", "\uFF21", "\uD83D\uDE00"), List.copyOf(f.names()));
        }
    }

    /**
     * Every fixture, read and written back, gives the original bytes. The fixtures were written by
     * Python; golden-tiny-llama/model/model.safetensors has its "__metadata__" key last, where the
     * reference writer puts it first, so for that file the expected bytes are the original with
     * that one key moved to the front.
     */
    @Test
    void fixturesRoundTripByteForByte() throws IOException {
        Path dir = SafetensorsFileTest.fixtures();
        List<Path> files;
        try (Stream<Path> walk = Files.walk(dir.resolve("golden-tiny-llama"))) {
            files = walk.filter(p -> p.toString().endsWith(".safetensors")).sorted().toList();
        }
        files = Stream.concat(files.stream(), Stream.of(dir.resolve("stories260K/hf/model.safetensors"))).toList();
        assertEquals(7, files.size(), files.toString());
        for (Path path : files) {
            byte[] original = Files.readAllBytes(path);
            byte[] expected = original;
            String metadataLast = ",\"__metadata__\":{\"format\":\"pt\"}}";
            int headerLength = (int) ByteBuffer.wrap(original).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            String header = new String(original, 8, headerLength, StandardCharsets.UTF_8);
            if (header.endsWith(metadataLast)) {
                String canonical = "{\"__metadata__\":{\"format\":\"pt\"},"
                        + header.substring(1, header.length() - metadataLast.length()) + "}";
                expected = original.clone();
                System.arraycopy(ascii(canonical), 0, expected, 8, headerLength);
            }
            try (SafetensorsFile f = SafetensorsFile.open(path)) {
                byte[] written = new SafetensorsWriter().addAll(f).toBytes();
                assertArrayEquals(expected, written, "rewriting " + path);
                Path copy = tmp.resolve(path.getFileName());
                new SafetensorsWriter().addAll(f).write(copy);
                assertArrayEquals(expected, Files.readAllBytes(copy), "write(Path) of " + path);
            }
        }
    }

    @Test
    void fixtureRewrittenFromTensorsMatchesToo() throws IOException {
        Path path = SafetensorsFileTest.fixtures().resolve("stories260K/hf/model.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(path)) {
            SafetensorsWriter w = new SafetensorsWriter().metadata(f.metadata());
            for (String name : f.names()) {
                w.add(name, f.f32(name), DType.F32);
            }
            assertArrayEquals(Files.readAllBytes(path), w.toBytes());
        }
    }

    // ---------------------------------------------------------------- round trips

    @Test
    void roundTripsEveryDtype() throws IOException {
        SplittableRandom rng = new SplittableRandom(7);
        float[] values = new float[37];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (rng.nextGaussian() * 3);
        }
        long[] i64 = {Long.MIN_VALUE, -1, 0, 1, Long.MAX_VALUE, 1L << 40};
        long[] u8 = {0, 1, 127, 128, 255, 42};
        long[] i32 = {Integer.MIN_VALUE, -7, 0, Integer.MAX_VALUE};
        Path file = tmp.resolve("all.safetensors");
        new SafetensorsWriter()
                .add("bf16", Tensor.of(values.clone(), 37), DType.BF16)
                .add("f16", Tensor.of(values.clone(), 37), DType.F16)
                .add("f32", Tensor.of(values.clone(), 37, 1))
                .addLongs("i64", DType.I64, new int[] {2, 3}, i64)
                .addLongs("u8", DType.U8, new int[] {6}, u8)
                .addLongs("i32", DType.I32, new int[] {4}, i32)
                .addLongs("mask", DType.BOOL, new int[] {3}, new long[] {1, 0, 1})
                .metadata("format", "pt")
                .metadata("note", "é ünïcödé")
                .write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(Map.of("format", "pt", "note", "é ünïcödé"), f.metadata());
            float[] bf = f.f32("bf16").data();
            float[] half = f.f32("f16").data();
            for (int i = 0; i < values.length; i++) {
                assertEquals(DType.floatToBf16(values[i]), f.bytes("bf16").getShort(2 * i));
                assertEquals(DType.floatToF16(values[i]), f.bytes("f16").getShort(2 * i));
                assertEquals(values[i], bf[i], Math.abs(values[i]) / 256, "bf16 keeps 8 significant bits");
                assertEquals(values[i], half[i], Math.abs(values[i]) / 2048 + 1e-7, "f16 keeps 11 significant bits");
            }
            assertArrayEquals(values, f.f32("f32").data());
            assertArrayEquals(new int[] {37, 1}, f.info("f32").shape());
            assertArrayEquals(i64, f.longs("i64"));
            assertArrayEquals(new int[] {2, 3}, f.info("i64").shape());
            assertArrayEquals(u8, f.longs("u8"));
            assertArrayEquals(i32, f.longs("i32"));
            assertArrayEquals(new long[] {1, 0, 1}, f.longs("mask"));

            // reading the mapped half-precision tensors and writing them again copies the bits
            byte[] again = new SafetensorsWriter().add("bf16", f.tensor("bf16"), DType.BF16)
                    .add("f16", f.tensor("f16"), DType.F16).toBytes();
            try (SafetensorsFile g = SafetensorsFile.open(Files.write(tmp.resolve("again.safetensors"), again))) {
                assertEquals(f.bytes("bf16"), g.bytes("bf16"));
                assertEquals(f.bytes("f16"), g.bytes("f16"));
            }
        }
    }

    @Test
    void nonContiguousTensorsAreWrittenRowMajor() throws IOException {
        Tensor m = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        Tensor t = m.transpose(0, 1);
        Tensor column = m.slice(1, 1, 2);
        Path file = tmp.resolve("views.safetensors");
        new SafetensorsWriter().add("t", t).add("col", column, DType.BF16).write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertArrayEquals(new int[] {3, 2}, f.info("t").shape());
            assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, f.f32("t").data());
            assertArrayEquals(new float[] {2, 5}, f.f32("col").data());
        }
    }

    @Test
    void largeTensorsAreEncodedInChunks() throws IOException {
        float[] values = new float[200_003];
        for (int i = 0; i < values.length; i++) {
            values[i] = i * 0.5f;
        }
        Tensor row = Tensor.of(values, 1, values.length).slice(1, 3, values.length);
        Path file = tmp.resolve("big.safetensors");
        new SafetensorsWriter().add("x", row, DType.F32).write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertArrayEquals(Arrays.copyOfRange(values, 3, values.length), f.f32("x").data());
        }
    }

    // ---------------------------------------------------------------- atomic write and errors

    @Test
    void failedWriteLeavesThePreviousFileIntact() throws IOException {
        Path file = tmp.resolve("adapter_model.safetensors");
        new SafetensorsWriter().add("a", Tensor.of(new float[] {1, 2}, 2)).write(file);
        byte[] before = Files.readAllBytes(file);

        Tensor broken = new Tensor(new FailingStorage(100_000), 100_000);
        SafetensorsWriter w = new SafetensorsWriter().add("a", Tensor.of(new float[] {3, 4}, 2)).add("b", broken);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> w.write(file));
        assertEquals("device lost", e.getMessage());
        assertArrayEquals(before, Files.readAllBytes(file));
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(List.of(file), left.toList(), "no temporary file is left behind");
        }

        new SafetensorsWriter().add("a", Tensor.of(new float[] {3, 4}, 2)).write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertArrayEquals(new float[] {3, 4}, f.f32("a").data(), "a successful write replaces the file");
        }
    }

    @Test
    void writeCreatesMissingFolders() throws IOException {
        Path file = tmp.resolve("out/adapter/adapter_model.safetensors");
        new SafetensorsWriter().addLongs("n", DType.I64, new int[] {1}, new long[] {5}).write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertArrayEquals(new long[] {5}, f.longs("n"));
        }
    }

    @Test
    void rejectsInvalidInput() {
        SafetensorsWriter w = new SafetensorsWriter().add("a", DType.U8, new int[] {1}, new byte[1]);
        assertMessage(() -> w.add("a", DType.U8, new int[] {1}, new byte[1]),
                "tensor 'a' was already added; names must be unique");
        assertMessage(() -> w.add("__metadata__", DType.U8, new int[] {1}, new byte[1]),
                "'__metadata__' is reserved for the metadata map");
        assertMessage(() -> w.add("b", DType.F32, new int[] {2, 3}, new byte[20]),
                "tensor 'b': F32 [2, 3] needs 24 bytes but 20 were given");
        assertMessage(() -> w.addLongs("c", DType.U8, new int[] {2}, new long[] {1, 256}),
                "tensor 'c': value 256 at index 1 does not fit U8 [0, 255]");
        assertMessage(() -> w.addLongs("d", DType.I32, new int[] {3}, new long[] {1, 2}),
                "tensor 'd': shape [3] has 3 elements but 2 values were given");
        assertMessage(() -> w.add("e", Tensor.zeros(2), DType.I64), "tensors are written as F32, BF16 or F16, not I64");
        assertMessage(() -> w.add("f", DType.U8, new int[] {-1}, new byte[0]), "negative dimension in shape [-1]");
    }

    // ---------------------------------------------------------------- helpers

    private static void assertMessage(Runnable r, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
    }

    private static byte[] floats(float... values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        return b.array();
    }

    private static byte[] le64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        ByteBuffer b = ByteBuffer.allocate(n);
        for (byte[] p : parts) {
            b.put(p);
        }
        return b.array();
    }

    /** A storage whose bytes become unreadable halfway, as when a device fails mid-export. */
    private record FailingStorage(long size) implements Storage {
        @Override
        public DType dtype() {
            return DType.F32;
        }

        @Override
        public Device device() {
            return Device.CPU;
        }

        @Override
        public void decode(long start, int count, float[] dst, int dstOffset) {
            if (start + count > size / 2) {
                throw new IllegalStateException("device lost");
            }
            Arrays.fill(dst, dstOffset, dstOffset + count, 1f);
        }

        @Override
        public long byteSize() {
            return 4 * size;
        }
    }
}
