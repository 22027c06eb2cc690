package dev.lora4j.quant;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.lora4j.io.Checkpoint;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Fuzzes the bitsandbytes 4-bit quantization state: a checkpoint holding a real NF4/FP4 weight
 * of shape [8, 16] (first input byte: bit 0 double quantization, bit 1 FP4 instead of NF4, bits
 * 2-3 the blocksize 32/64/128/256) whose quant_state JSON is the rest of the input. Reading it must
 * give a storage that decodes, or fail with an {@link IllegalArgumentException} or
 * {@link IOException}. Seeds: {@code QuantStateFuzzTestInputs/quantState/}.
 */
class QuantStateFuzzTest {
    private static final int[] SHAPE = {8, 16};

    @FuzzTest(maxDuration = "3m")
    void quantState(byte[] data) throws IOException {
        if (data.length == 0) {
            return;
        }
        int flags = data[0];
        QuantConfig config = ((flags & 2) != 0 ? QuantConfig.FP4 : QuantConfig.NF4).withBlocksize(32 << ((flags >> 2) & 3));
        if ((flags & 1) != 0) {
            config = config.withDoubleQuant(true);
        }
        float[] values = new float[SHAPE[0] * SHAPE[1]];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i * 0.37) * (1 + i % 5);
        }
        QuantizedStorage q = QuantizedStorage.quantize("w", Tensor.of(values, values.length).storage(), 0, SHAPE, config,
                DType.F32);
        byte[] json = Arrays.copyOfRange(data, 1, data.length);
        QuantizedStorage fuzzed = new QuantizedStorage(q.type(), q.blocksize(), q.shape(), q.sourceDType(), q.packed(),
                q.absmax(), q.nested(), null, json);
        Path dir = Files.createTempDirectory("fuzz-quant");
        Path file = dir.resolve("model.safetensors");
        try {
            SafetensorsWriter writer = new SafetensorsWriter();
            BnbFormat.write(writer, "w", fuzzed);
            writer.write(file);
            try (Checkpoint checkpoint = Checkpoint.open(file)) {
                String key = BnbFormat.quantStateKey(checkpoint, "w");
                QuantizedStorage read = BnbFormat.read(checkpoint, "w", key, SHAPE);
                float[] out = new float[values.length];
                read.decode(0, out.length, out, 0);
            } catch (IllegalArgumentException | IOException expected) {
                // a named refusal
            }
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(dir);
        }
    }
}
