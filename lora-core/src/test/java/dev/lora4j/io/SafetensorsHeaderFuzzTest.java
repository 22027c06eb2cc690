package dev.lora4j.io;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fuzzes {@link SafetensorsFile#open} (and {@link Checkpoint#open} over the same file): any input
 * must open or fail with an {@link IOException}; every tensor of a file that opens must read.
 * Regression mode (every build) replays {@code SafetensorsHeaderFuzzTestInputs/header/}; see the
 * README for the fuzzing command.
 */
class SafetensorsHeaderFuzzTest {

    @FuzzTest(maxDuration = "3m")
    void header(byte[] data) throws IOException {
        Path dir = Files.createTempDirectory("fuzz-safetensors");
        Path file = dir.resolve("model.safetensors");
        try {
            Files.write(file, data);
            try (SafetensorsFile f = SafetensorsFile.open(file)) {
                for (TensorInfo info : f.infos()) {
                    ByteBuffer bytes = f.bytes(info.name());
                    if (bytes.remaining() != info.byteLength()) {
                        throw new AssertionError(info.name() + ": " + bytes.remaining() + " bytes for " + info);
                    }
                }
            } catch (IOException | IllegalArgumentException expected) {
                // a named refusal
            }
            try (Checkpoint c = Checkpoint.open(dir)) {
                c.names().forEach(c::info);
            } catch (IOException | IllegalArgumentException expected) {
                // a named refusal
            }
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(dir);
        }
    }
}
