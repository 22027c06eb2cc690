package dev.lora4j.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsFileTest {

    @TempDir
    Path tmp;

    static Path fixtures() {
        Path dir = Path.of(System.getProperty("lora4j.fixtures", "../../shared/fixtures"));
        assumeTrue(Files.isDirectory(dir), "fixtures folder " + dir + " absent; skipping");
        return dir;
    }

    // ---------------------------------------------------------------- fixtures (values from numpy)

    @Test
    void readsGoldenTinyLlamaModel() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(fixtures().resolve("golden-tiny-llama/model/model.safetensors"))) {
            assertEquals(21, f.size());
            assertEquals(List.of("lm_head.weight", "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight"),
                    f.names().stream().limit(3).toList());
            assertEquals(Map.of("format", "pt"), f.metadata());
            TensorInfo k = f.info("model.layers.1.self_attn.k_proj.weight");
            assertEquals(DType.F32, k.dtype());
            assertArrayEquals(new int[] {32, 64}, k.shape());
            assertEquals(32 * 64 * 4, k.byteLength());

            Tensor lmHead = f.tensor("lm_head.weight");
            assertTrue(lmHead.storage() instanceof BufferStorage, "tensor() must not copy");
            assertArrayEquals(new int[] {96, 64}, lmHead.shape());
            assertEquals(0.0929664894938469f, lmHead.get(3, 5));
            assertEquals(0.03352867439389229f, f.f32("model.layers.1.self_attn.k_proj.weight").get(31, 63));
            assertEquals(-0.7993309488902014, sum(f.f32("model.embed_tokens.weight").data()), 1e-9);
        }
    }

    @Test
    void readsStories260K() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(fixtures().resolve("stories260K/hf/model.safetensors"))) {
            assertEquals(47, f.size());
            assertFalse(f.contains("lm_head.weight"), "stories260K ties its embeddings");
            assertEquals(2.4583089351654053f, f.tensor("model.norm.weight").get(0));
            assertEquals(0.11132434010505676f, f.tensor("model.layers.4.mlp.down_proj.weight").get(10, 100));
            assertEquals(-752.3677446640068, sum(f.tensor("model.embed_tokens.weight").toFloatArray()), 1e-6);
        }
    }

    @Test
    void readsIntegerTensors() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(fixtures().resolve("golden-tiny-llama/expected/forward.safetensors"))) {
            assertEquals(DType.I64, f.info("input_ids").dtype());
            long[] ids = f.longs("input_ids");
            assertEquals(18, ids.length);
            assertArrayEquals(new long[] {43, 34, 66, 15, 35, 71, 35, 54, 89}, Arrays.copyOf(ids, 9));
            assertArrayEquals(new long[] {-100, -100, -100, -100, -100, 78, 38, 8, 35},
                    Arrays.copyOfRange(f.longs("labels"), 9, 18));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f.tensor("labels"));
            assertTrue(e.getMessage().contains("tensor 'labels' is I64"), e.getMessage());
        }
    }

    @Test
    void missingTensorNamesTheFileAndTheClosestNames() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(fixtures().resolve("golden-tiny-llama/adapter/adapter_model.safetensors"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> f.tensor("model.layers.0.self_attn.q_proj.lora_A.weight"));
            assertTrue(e.getMessage().contains("adapter_model.safetensors: no tensor named"
                    + " 'model.layers.0.self_attn.q_proj.lora_A.weight' (it has 30 tensors, e.g."
                    + " base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight, "), e.getMessage());
        }
    }

    @Test
    void bytesAreReadOnlyLittleEndianAndIndependent() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(fixtures().resolve("golden-tiny-llama/model/model.safetensors"))) {
            ByteBuffer a = f.bytes("model.norm.weight");
            ByteBuffer b = f.bytes("model.norm.weight");
            assertTrue(a.isReadOnly());
            assertEquals(ByteOrder.LITTLE_ENDIAN, a.order());
            assertEquals(256, a.remaining());
            a.getFloat();
            assertEquals(0, b.position(), "each call returns its own position");
            assertEquals(f.f32("model.norm.weight").get(1), a.getFloat());
        }
    }

    @Test
    void closedFileRefusesNewReadsButHandedOutTensorsStayValid() throws IOException {
        SafetensorsFile f = SafetensorsFile.open(fixtures().resolve("golden-tiny-llama/model/model.safetensors"));
        Tensor norm = f.tensor("model.norm.weight");
        float first = norm.get(0);
        f.close();
        assertEquals(first, norm.get(0));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> f.bytes("lm_head.weight"));
        assertTrue(e.getMessage().endsWith("model.safetensors is closed"), e.getMessage());
    }

    // ---------------------------------------------------------------- half precision

    @Test
    void halfPrecisionIsMappedAndWidened() throws IOException {
        float[] values = {1f, -2.5f, 0.1f, 65504f, 1e-7f, Float.NEGATIVE_INFINITY};
        Path file = tmp.resolve("half.safetensors");
        new SafetensorsWriter()
                .add("bf", Tensor.of(values, 2, 3), DType.BF16)
                .add("f16", Tensor.of(values, 3, 2), DType.F16)
                .write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Tensor bf = f.tensor("bf");
            Tensor f16 = f.tensor("f16");
            assertEquals(DType.BF16, bf.dtype());
            assertEquals(DType.F16, f16.dtype());
            assertArrayEquals(new int[] {3, 2}, f16.shape());
            for (int i = 0; i < values.length; i++) {
                assertEquals(DType.bf16ToFloat(DType.floatToBf16(values[i])), bf.storage().getFloat(i));
                assertEquals(DType.f16ToFloat(DType.floatToF16(values[i])), f16.storage().getFloat(i));
            }
            assertArrayEquals(bf.toFloatArray(), f.f32("bf").data());
            assertArrayEquals(f16.toFloatArray(), f.f32("f16").data());
            assertEquals(0.0999755859375f, f.f32("f16").data()[2], "0.1 in F16 is 0x2E66");
            assertEquals(0.10009765625f, f.f32("bf").data()[2], "0.1 in BF16 is 0x3DCD");
        }
    }

    // ---------------------------------------------------------------- corrupted headers

    @Test
    void fileShorterThanTheLengthPrefix() throws IOException {
        assertOpenFails(write(new byte[5]), "file is 5 bytes, shorter than the 8-byte header length");
    }

    @Test
    void headerLengthAboveTheLimit() throws IOException {
        byte[] bytes = file("{}", 0);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40);
        assertOpenFails(write(bytes), "header length 1099511627776 exceeds the safetensors limit of 100000000 bytes");
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, -1L);
        assertOpenFails(write(bytes), "header length 18446744073709551615 exceeds");
    }

    @Test
    void headerLengthPastTheEndOfTheFile() throws IOException {
        byte[] bytes = file("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
        assertOpenFails(write(Arrays.copyOf(bytes, 30)), "header length 53 runs past the end of the file (30 bytes);"
                + " the file is truncated");
    }

    @Test
    void truncatedDataSection() throws IOException {
        byte[] bytes = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
        assertOpenFails(write(Arrays.copyOf(bytes, bytes.length - 3)),
                "tensor 'a' ends at data byte 24 but the data section holds only 21 bytes; the file is truncated");
    }

    @Test
    void truncatedFixture() throws IOException {
        byte[] real = Files.readAllBytes(fixtures().resolve("stories260K/hf/model.safetensors"));
        assertOpenFails(write(Arrays.copyOf(real, real.length / 2)),
                "tensor 'model.norm.weight' ends at data byte 1040128 but the data section holds only");
    }

    @Test
    void overlappingOffsets() throws IOException {
        String header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        assertOpenFails(write(file(header, 12)),
                "tensor 'b' [4, 12) overlaps tensor 'a' [0, 8); data_offsets must not overlap");
    }

    @Test
    void gapBetweenTensors() throws IOException {
        String header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}";
        assertOpenFails(write(file(header, 16)),
                "data section bytes [8, 12) belong to no tensor (gap before 'b'); tensors must be contiguous");
    }

    @Test
    void trailingBytesAfterTheLastTensor() throws IOException {
        String header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        assertOpenFails(write(file(header, 10)), "the data section holds 10 bytes but the tensors cover 8; 2 trailing bytes");
    }

    @Test
    void wrongByteLength() throws IOException {
        String header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}";
        assertOpenFails(write(file(header, 20)),
                "tensor 'w': data_offsets [0,20] span 20 bytes but F32 [2,3] needs 6 x 4 = 24");
    }

    @Test
    void beginAfterEnd() throws IOException {
        String header = "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}";
        assertOpenFails(write(file(header, 4)), "tensor 'w': data_offsets [4,0] has begin > end");
    }

    @Test
    void unknownDtype() throws IOException {
        assertOpenFails(write(file("{\"w\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4)),
                "tensor 'w' has unknown dtype 'F33'; supported: [F32, F16, BF16");
        assertOpenFails(write(file("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1)),
                "tensor 'w' has dtype 'F8_E4M3', which lora4j does not read");
    }

    @Test
    void missingAndMistypedFields() throws IOException {
        assertOpenFails(write(file("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4)),
                "tensor 'w' has no \"shape\" (each entry needs dtype, shape and data_offsets)");
        assertOpenFails(write(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4)),
                "tensor 'w': shape [-1] must hold integers in [0, 2147483647]");
        assertOpenFails(write(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4)),
                "tensor 'w': data_offsets must be [begin, end], found [0]");
        assertOpenFails(write(file("{\"w\":[1,2]}", 0)), "tensor 'w' must map to {dtype, shape, data_offsets}, found ARRAY");
        assertOpenFails(write(file("{\"__metadata__\":{\"format\":1}}", 0)),
                "__metadata__ value of 'format' must be a string, found NUMBER 1");
    }

    @Test
    void malformedJson() throws IOException {
        assertOpenFails(write(file("{\"w\":", 0)), "header is not valid JSON");
        assertOpenFails(write(file("[1, 2]", 0)), "header does not start with '{' (found '[1, 2]')");
        assertOpenFails(write(file("{} {}", 0)), "header is not valid JSON");
        String dup = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                + "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
        assertOpenFails(write(file(dup, 1)), "Duplicate field 'a'");
        byte[] bytes = file("{\"\u00e9\":{}}", 0);
        bytes[10] = (byte) 0xff;
        assertOpenFails(write(bytes), "header is not valid UTF-8");
    }

    @Test
    void acceptsEmptyFilesZeroSizedTensorsAndPaddedHeaders() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(write(file("{}      ", 0)))) {
            assertEquals(0, f.size());
            assertTrue(f.metadata().isEmpty());
        }
        String header = "{\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
                + "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}   ";
        byte[] bytes = file(header, 4);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putFloat(bytes.length - 4, 7.5f);
        try (SafetensorsFile f = SafetensorsFile.open(write(bytes))) {
            assertEquals(0, f.tensor("empty").numel());
            assertEquals(7.5f, f.tensor("s").get());
        }
    }

    @Test
    void missingFile() {
        NoSuchFileException e = assertThrows(NoSuchFileException.class,
                () -> SafetensorsFile.open(tmp.resolve("nope.safetensors")));
        assertTrue(e.getMessage().contains("nope.safetensors"), e.getMessage());
    }

    // ---------------------------------------------------------------- helpers

    static byte[] file(String header, int dataBytes) {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(8 + json.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN)
                .putLong(json.length).put(json).array();
    }

    private Path write(byte[] bytes) throws IOException {
        return Files.write(Files.createTempFile(tmp, "case", ".safetensors"), bytes);
    }

    private static void assertOpenFails(Path file, String expected) {
        IOException e = assertThrows(IOException.class, () -> SafetensorsFile.open(file).close());
        assertTrue(e.getMessage().startsWith(file.toString() + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
    }

    private static double sum(float[] values) {
        double s = 0;
        for (float v : values) {
            s += v;
        }
        return s;
    }
}
