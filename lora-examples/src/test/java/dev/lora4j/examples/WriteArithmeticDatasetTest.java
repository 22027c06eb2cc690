package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.InstructionDatasets;
import dev.lora4j.data.InstructionRecord;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WriteArithmeticDatasetTest {

    @Test
    void writesDisjointAlpacaFilesThatLoadBackAndRepeatWithTheSeed(@TempDir Path tmp) throws Exception {
        WriteArithmeticDataset.write(tmp.resolve("a"), 300, 50, 7);
        List<InstructionRecord> train = InstructionDatasets.load(tmp.resolve("a").resolve(WriteArithmeticDataset.TRAIN_FILE));
        List<InstructionRecord> test = InstructionDatasets.load(tmp.resolve("a").resolve(WriteArithmeticDataset.TEST_FILE));
        assertEquals(300, train.size());
        assertEquals(50, test.size());
        Set<String> trainQuestions = new HashSet<>();
        for (InstructionRecord r : train) {
            assertTrue(r.instruction().matches("What is \\d\\d (plus|minus) \\d\\d\\?"), r::toString);
            assertEquals("", r.input());
            String[] w = r.instruction().replace("?", "").split(" ");
            int left = Integer.parseInt(w[2]);
            int right = Integer.parseInt(w[4]);
            assertEquals(Integer.toString(w[3].equals("plus") ? left + right : left - right), r.output(), r::toString);
            trainQuestions.add(r.instruction());
        }
        assertEquals(300, trainQuestions.size(), "training questions are distinct");
        for (InstructionRecord r : test) {
            assertTrue(!trainQuestions.contains(r.instruction()), () -> "held-out question in training: " + r);
        }
        WriteArithmeticDataset.write(tmp.resolve("b"), 300, 50, 7);
        assertEquals(Files.readString(tmp.resolve("a").resolve(WriteArithmeticDataset.TRAIN_FILE)),
                Files.readString(tmp.resolve("b").resolve(WriteArithmeticDataset.TRAIN_FILE)));
    }
}
