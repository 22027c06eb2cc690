package dev.lora4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** trainer_state.json edited into every wrong shape: each gives an error naming the file and the field. */
class TrainerStateHostileTest {

    @TempDir
    Path dir;

    private Path written() throws IOException {
        Path file = dir.resolve("trainer_state.json");
        new TrainerState(2, 10, 4, 8, "abc", 42, 1e-3, 100, 1.5, Map.of("rank", 8), List.of("w"),
                new double[] {2.5, 2.25}, List.of(new TrainerListener.ValidationMetrics(2, 2.0, Math.exp(2.0), 50)))
                .write(file);
        return file;
    }

    private IllegalArgumentException edited(String from, String to) throws IOException {
        Path file = written();
        String text = Files.readString(file);
        assertTrue(text.contains(from), text);
        Files.writeString(file, text.replace(from, to));
        return assertThrows(IllegalArgumentException.class, () -> TrainerState.read(file));
    }

    @Test
    void roundTrip() throws IOException {
        TrainerState back = TrainerState.read(written());
        assertEquals(2, back.step());
        assertArrayEquals(new double[] {2.5, 2.25}, back.lossHistory());
        assertEquals(1, back.validations().size());
    }

    @Test
    void lossHistoryAsAnObjectIsNamed() throws IOException {
        IllegalArgumentException e = edited("\"loss_history\": [", "\"loss_history\": {\"a\": 1}, \"x\": [");
        assertEquals(dir.resolve("trainer_state.json") + ": \"loss_history\" must be a JSON array but is {\"a\":1};"
                + " the file was edited or damaged", e.getMessage());
    }

    @Test
    void wrongTypesAndRangesAreNamed() throws IOException {
        assertTrue(edited("\"step\": 2", "\"step\": -2").getMessage().contains("\"step\" must be an integer in [0, "));
        assertTrue(edited("\"step\": 2", "\"step\": \"2\"").getMessage().contains("\"step\" must be a JSON number but is \"2\""));
        assertTrue(edited("\"dataset_size\": 8", "\"dataset_size\": 0").getMessage()
                .contains("\"dataset_size\" must be an integer in [1, 2147483647] but is 0"));
        assertTrue(edited("\"validation_history\": [", "\"validation_history\": [7, ").getMessage()
                .contains("\"validation_history[0]\" must be an object"));
        assertTrue(edited("2.25", "\"x\"").getMessage().contains("\"loss_history[1]\" must be a number but is \"x\""));
        assertTrue(edited("\"trainable_tensors\": [", "\"trainable_tensors\": [{}, ").getMessage()
                .contains("\"trainable_tensors[0]\" must be a tensor name"));
        assertTrue(edited("\"step\": 2", "\"step\": 5").getMessage().contains("loss_history has 2 entries but step is 5"));
    }

    @Test
    void malformedAndHostileJsonIsAnIoErrorNamingTheFile() throws IOException {
        Path file = dir.resolve("trainer_state.json");
        Files.writeString(file, "{\"format\": " + "[".repeat(5000));
        IOException e = assertThrows(IOException.class, () -> TrainerState.read(file));
        assertTrue(e.getMessage().startsWith(file + ": not valid JSON") && e.getMessage().contains("nesting depth"), e.getMessage());
        Files.writeString(file, "{\"format\": " + "9".repeat(2000) + "}");
        e = assertThrows(IOException.class, () -> TrainerState.read(file));
        assertTrue(e.getMessage().contains("Number value length"), e.getMessage());
    }
}
