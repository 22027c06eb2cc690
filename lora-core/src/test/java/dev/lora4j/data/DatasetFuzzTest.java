package dev.lora4j.data;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Fuzzes the dataset readers: the first byte picks the format ('j' .json, 'l' .jsonl, 'c' .csv,
 * anything else .jsonl), the rest is the file. Any file must load or fail with a
 * {@link DatasetException} or {@link IOException}. Seeds: {@code DatasetFuzzTestInputs/dataset/}.
 */
class DatasetFuzzTest {

    @FuzzTest(maxDuration = "3m")
    void dataset(byte[] data) throws IOException {
        if (data.length == 0) {
            return;
        }
        String extension = switch (data[0]) {
            case 'j' -> ".json";
            case 'c' -> ".csv";
            default -> ".jsonl";
        };
        Path dir = Files.createTempDirectory("fuzz-dataset");
        Path file = dir.resolve("data" + extension);
        try {
            Files.write(file, Arrays.copyOfRange(data, 1, data.length));
            for (InstructionDatasets.Conversations c : InstructionDatasets.Conversations.values()) {
                try {
                    InstructionDatasets.load(file, c);
                } catch (DatasetException | IOException expected) {
                    return;
                }
            }
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(dir);
        }
    }
}
