package dev.lora4j.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.Target;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.junit.jupiter.api.Test;

/** What travels to and between the workers, without Spark running: rows, their exchange, the LoRA config. */
class RecordsTest {

    private static Records.Indexed tokens(long index, int[] ids, int[] labels) {
        Row row = labels == null ? RowFactory.create((Object) ids) : RowFactory.create(ids, labels);
        return new Records.Indexed(index, Records.encode(row, Records.Kind.TOKENS, index));
    }

    @Test
    void rowsFromSeveralWorkersComeBackInDatasetOrder() {
        Records.Indexed r0 = tokens(0, new int[] {5, 6, 7}, new int[] {-100, 6, 7});
        Records.Indexed r1 = tokens(1, new int[] {8, 9}, null);
        Records.Indexed r2 = tokens(2, new int[] {1}, new int[] {1});
        // worker 0 got rows 2 and 0, worker 1 row 1; messages are zero-padded to the longest
        byte[] a = Records.pack(List.of(r2, r0));
        byte[] b = Records.pack(List.of(r1));
        List<Records.Indexed> all = Records.unpack(new byte[][] {a, Arrays.copyOf(b, a.length)});
        List<Example> examples = Records.examples(all, 16);
        assertArrayEquals(new int[] {5, 6, 7}, examples.get(0).inputIds());
        assertArrayEquals(new int[] {-100, 6, 7}, examples.get(0).labels());
        assertArrayEquals(new int[] {8, 9}, examples.get(1).labels(), "no labels column: every token scored");
        assertArrayEquals(new int[] {1}, examples.get(2).inputIds());

        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> Records.unpack(new byte[][] {a, a}));
        assertTrue(twice.getMessage().contains("its order must be deterministic"), twice.getMessage());
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> Records.examples(List.of(tokens(0, new int[] {3, 16}, null)), 16));
        assertEquals("row 0 of the training Dataset holds token id 16 in input_ids at position 1, outside the model's "
                + "vocabulary of 16 (0 to 15); tokenize with the base model's tokenizer", bad.getMessage());
        IllegalArgumentException misaligned = assertThrows(IllegalArgumentException.class,
                () -> Records.examples(List.of(tokens(4, new int[] {3, 4}, new int[] {3})), 16));
        assertTrue(misaligned.getMessage().startsWith("row 4 of the training Dataset has 2 input_ids but 1 labels"));
    }

    @Test
    void instructionRowsKeepTheirTextAndAMissingInputIsEmpty() {
        Row row = RowFactory.create("Translate «ça»", "→ English", null);
        Records.Indexed r = new Records.Indexed(0, Records.encode(row, Records.Kind.INSTRUCTIONS, 0));
        var records = Records.instructions(List.of(r));
        assertEquals("Translate «ça»", records.get(0).instruction());
        assertEquals("→ English", records.get(0).output());
        assertEquals("", records.get(0).input());
    }

    @Test
    void loraConfigSurvivesJavaSerialization() throws Exception {
        LoraConfig config = LoraConfig.rank(4).alpha(12).dropout(0.05).targets(Target.QUERY, Target.MLP)
                .rankPattern(Map.of("q_proj", 8)).seed(99);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
            out.writeObject(config);
        }
        try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
            LoraConfig back = (LoraConfig) in.readObject();
            assertEquals(config, back);
            assertEquals(config.toString(), back.toString());
        }
    }

    @Test
    void taskAddressesGiveTheirHost() {
        assertEquals("10.0.0.7", BarrierWorker.host("10.0.0.7:41234"));
        assertEquals("worker-3", BarrierWorker.host("worker-3"));
        assertEquals("fe80::1", BarrierWorker.host("fe80::1"));
    }
}
