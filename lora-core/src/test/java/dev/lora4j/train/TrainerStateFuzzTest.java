package dev.lora4j.train;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fuzzes trainer_state.json reading: any file must read or fail with an
 * {@link IllegalArgumentException} or {@link IOException}; a state that reads must write back and
 * read again unchanged. Seeds: {@code TrainerStateFuzzTestInputs/trainerState/}.
 */
class TrainerStateFuzzTest {

    @FuzzTest(maxDuration = "3m")
    void trainerState(byte[] data) throws IOException {
        Path dir = Files.createTempDirectory("fuzz-state");
        Path file = dir.resolve("trainer_state.json");
        try {
            Files.write(file, data);
            TrainerState state;
            try {
                state = TrainerState.read(file);
            } catch (IllegalArgumentException | IOException expected) {
                return;
            }
            state.write(file);
            TrainerState back = TrainerState.read(file);
            if (back.step() != state.step() || back.lossHistory().length != state.lossHistory().length
                    || back.datasetSize() != state.datasetSize()) {
                throw new AssertionError("trainer_state.json round trip changed the state");
            }
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(dir);
        }
    }
}
