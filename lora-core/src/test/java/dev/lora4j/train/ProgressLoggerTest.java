package dev.lora4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.testing.TinyModels;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The trainer's default progress lines: when they come and what they say. */
class ProgressLoggerTest {

    private static List<Example> data(int count) {
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            out.add(Example.unmasked(TinyModels.tokens(6, 48, 40 + i)));
        }
        return out;
    }

    @Test
    void everyNStepsLogsFirstEveryNthAndLastStep() {
        List<String> lines = new ArrayList<>();
        LoraModel lora = LoraModel.wrap(TinyModels.model(3), LoraConfig.rank(2));
        Trainer.builder(lora.model()).maxSteps(7).globalBatchSize(2).microBatchSize(2).warmupSteps(0)
                .progressLogging(ProgressLogger.everySteps(3).to(lines::add)).build().fit(data(8));
        assertEquals(4, lines.size(), lines.toString());
        assertTrue(lines.get(0).startsWith("step 1/7 (14%): loss "), lines.get(0));
        assertTrue(lines.get(1).startsWith("step 3/7 "), lines.get(1));
        assertTrue(lines.get(2).startsWith("step 6/7 "), lines.get(2));
        assertTrue(lines.get(3).matches("step 7/7 \\(100%\\): loss \\d+\\.\\d{4}, lr \\S+, [\\d,]+ tokens/s, elapsed \\S+, "
                + "ETA 0s"), lines.get(3));
    }

    @Test
    void progressLoggingCanBeTurnedOff() {
        List<String> lines = new ArrayList<>();
        ProgressLogger logger = ProgressLogger.everySteps(1).to(lines::add);
        LoraModel lora = LoraModel.wrap(TinyModels.model(3), LoraConfig.rank(2));
        Trainer.builder(lora.model()).maxSteps(2).globalBatchSize(2).microBatchSize(2).progressLogging(logger)
                .progressLogging(false).build().fit(data(4));
        assertEquals(List.of(), lines);
    }

    @Test
    void durationsReadAsAPersonWritesThem() {
        assertEquals("7s", ProgressLogger.duration(7.4));
        assertEquals("3m 05s", ProgressLogger.duration(185));
        assertEquals("2h 01m", ProgressLogger.duration(7290));
        assertEquals("?", ProgressLogger.duration(Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> ProgressLogger.everySteps(0));
        assertThrows(IllegalArgumentException.class, () -> ProgressLogger.everySeconds(-1));
    }
}
