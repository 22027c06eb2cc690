package dev.lora4j.data;

import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.tokenizer.Tokenizer;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.InstructionDataset.Encoded;
import dev.lora4j.data.InstructionDataset.Overlength;
import dev.lora4j.testing.Fixtures;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class InstructionDatasetTest {
    private static final int I = Example.IGNORE;

    /** One id per character (code point + 3), BOS 1 and EOS 2: every boundary is visible in the ids. */
    static final class CharTokenizer implements Tokenizer {
        private final boolean hasEos;

        CharTokenizer(boolean hasEos) {
            this.hasEos = hasEos;
        }

        @Override
        public int[] encode(String text, boolean addSpecialTokens) {
            int[] chars = text.chars().map(c -> c + 3).toArray();
            if (!addSpecialTokens) {
                return chars;
            }
            int[] ids = new int[chars.length + 1];
            ids[0] = 1;
            System.arraycopy(chars, 0, ids, 1, chars.length);
            return ids;
        }

        @Override
        public String decode(int[] ids, boolean skipSpecialTokens) {
            StringBuilder out = new StringBuilder();
            for (int id : ids) {
                if (id >= 3) {
                    out.append((char) (id - 3));
                } else if (!skipSpecialTokens) {
                    out.append(id == 1 ? "<s>" : "</s>");
                }
            }
            return out.toString();
        }

        @Override
        public String token(int id) {
            return decode(new int[] {id}, false);
        }

        @Override
        public OptionalInt id(String token) {
            return OptionalInt.empty();
        }

        @Override
        public int vocabSize() {
            return 259;
        }

        @Override
        public OptionalInt bosId() {
            return OptionalInt.of(1);
        }

        @Override
        public OptionalInt eosId() {
            return hasEos ? OptionalInt.of(2) : OptionalInt.empty();
        }

        @Override
        public OptionalInt padId() {
            return OptionalInt.empty();
        }
    }

    private static final Tokenizer CHARS = new CharTokenizer(true);
    private static final InstructionDataset.Builder PLAIN = InstructionDataset.builder(CHARS).promptStyle(PromptStyle.plain());
    private static final int A = 'a' + 3;
    private static final int B = 'b' + 3;
    private static final int C = 'c' + 3;
    private static final int D = 'd' + 3;
    private static final int NL = '\n' + 3;

    @Test
    void promptMaskedThenResponseThenEos() {
        Encoded encoded = PLAIN.build().encode(List.of(InstructionRecord.of("ab", "cd")));
        Example e = encoded.examples().get(0);
        assertArrayEquals(new int[] {1, A, B, NL, C, D, 2}, e.inputIds());
        assertArrayEquals(new int[] {I, I, I, I, C, D, 2}, e.labels());
        assertEquals(0, encoded.truncated());
        assertEquals(0, encoded.skipped());
    }

    @Test
    void unmaskedLabelsEqualIds() {
        Example e = PLAIN.maskPrompt(false).build().encode(List.of(InstructionRecord.of("ab", "cd"))).examples().get(0);
        assertArrayEquals(e.inputIds(), e.labels());
    }

    @Test
    void truncationKeepsTheFirstMaxLengthTokens() {
        Encoded encoded = PLAIN.maxLength(6).build().encode(List.of(InstructionRecord.of("ab", "cd"), InstructionRecord.of("a", "c")));
        assertEquals(1, encoded.truncated());
        assertEquals(0, encoded.skipped());
        assertArrayEquals(new int[] {1, A, B, NL, C, D}, encoded.examples().get(0).inputIds());
        assertArrayEquals(new int[] {I, I, I, I, C, D}, encoded.examples().get(0).labels());
        assertArrayEquals(new int[] {1, A, NL, C, 2}, encoded.examples().get(1).inputIds());
    }

    @Test
    void responseCutOffEntirelyIsSkippedWhenMasked() {
        List<InstructionRecord> records = List.of(InstructionRecord.of("abc", "d"), InstructionRecord.of("a", "b"));
        // Prompt "abc\n" with BOS is 5 tokens: a maxLength of 5 leaves no response token to learn.
        Encoded masked = PLAIN.maxLength(5).build().encode(records);
        assertEquals(1, masked.examples().size());
        assertEquals(1, masked.skipped());
        assertEquals(0, masked.truncated());
        assertArrayEquals(new int[] {1, A, NL, B, 2}, masked.examples().get(0).inputIds());
        // Without masking the truncated prompt is itself the target, so the record is kept.
        Encoded unmasked = PLAIN.maxLength(5).maskPrompt(false).build().encode(records);
        assertEquals(2, unmasked.examples().size());
        assertEquals(1, unmasked.truncated());
        assertEquals(0, unmasked.skipped());
    }

    @Test
    void skipAndFailPolicies() {
        List<InstructionRecord> records = List.of(InstructionRecord.of("a", "b"), InstructionRecord.of("abc", "abcd"));
        Encoded skipped = PLAIN.maxLength(6).overlength(Overlength.SKIP).build().encode(records);
        assertEquals(1, skipped.examples().size());
        assertEquals(1, skipped.skipped());
        assertEquals(0, skipped.truncated());
        DatasetException e = assertThrows(DatasetException.class, () -> PLAIN.maxLength(6).overlength(Overlength.FAIL).build().encode(records));
        assertTrue(e.getMessage().startsWith("record 2 of 2 is 10 tokens long (prompt 5 + response 5), more than maxLength 6"),
                e.getMessage());
    }

    @Test
    void emptyOutputWithoutEosHasNoTargetAndIsSkipped() {
        List<InstructionRecord> records = List.of(InstructionRecord.of("a", ""), InstructionRecord.of("a", "b"));
        Encoded encoded = PLAIN.appendEos(false).build().encode(records);
        assertEquals(1, encoded.skipped());
        assertArrayEquals(new int[] {1, A, NL, B}, encoded.examples().get(0).inputIds());
        // With EOS the empty output still teaches the model to stop: kept.
        Encoded withEos = PLAIN.build().encode(records);
        assertEquals(0, withEos.skipped());
        assertArrayEquals(new int[] {I, I, I, 2}, withEos.examples().get(0).labels());
    }

    @Test
    void nothingLeftOrNothingGivenIsAnError() {
        DatasetException allSkipped = assertThrows(DatasetException.class,
                () -> PLAIN.maxLength(3).build().encode(List.of(InstructionRecord.of("abc", "d"))));
        assertTrue(allSkipped.getMessage().startsWith("all 1 records were skipped"), allSkipped.getMessage());
        assertThrows(DatasetException.class, () -> PLAIN.build().encode(List.of()));
    }

    @Test
    void builderIsImmutableValidatesAndPrintsItsSettings() {
        InstructionDataset.Builder base = InstructionDataset.builder(CHARS);
        InstructionDataset.Builder limited = base.maxLength(512).overlength(Overlength.SKIP);
        assertEquals("InstructionDataset.Builder{tokenizer=CharTokenizer(vocab 259), promptStyle=alpaca, maskPrompt=true, maxLength=none, "
                + "overlength=TRUNCATE, appendEos=true}", base.toString());
        assertEquals("InstructionDataset{tokenizer=CharTokenizer(vocab 259), promptStyle=alpaca, maskPrompt=true, maxLength=512, "
                + "overlength=SKIP, appendEos=true}", limited.build().toString());
        assertEquals(OptionalInt.of(512), limited.build().maxLength());
        assertEquals(OptionalInt.empty(), limited.noMaxLength().build().maxLength());
        assertEquals(limited.build().toString(), limited.build().toBuilder().build().toString());
        IllegalArgumentException tooShort = assertThrows(IllegalArgumentException.class, () -> base.maxLength(1));
        assertTrue(tooShort.getMessage().contains("maxLength must be at least 2 tokens") && tooShort.getMessage().endsWith("was 1"), tooShort.getMessage());
        assertThrows(IllegalArgumentException.class, () -> base.promptStyle(null));
        assertThrows(IllegalArgumentException.class, () -> base.overlength(null));
        InstructionDataset.Builder noEos = InstructionDataset.builder(new CharTokenizer(false));
        assertThrows(IllegalArgumentException.class, () -> noEos.appendEos(true));
        IllegalStateException e = assertThrows(IllegalStateException.class, noEos::build);
        assertTrue(e.getMessage().contains("appendEos(false)"), e.getMessage());
        noEos.appendEos(false).build();
    }

    @Test
    void alpacaDemoWithLlama2TokenizerMasksExactlyThePrompt() throws IOException {
        List<InstructionRecord> records = InstructionDatasets.load(Fixtures.require("alpaca").resolve("alpaca_en_demo.json"));
        HfTokenizer tokenizer = HfTokenizer.load(Fixtures.require("tokenizers/llama2"));
        int bos = tokenizer.bosId().orElseThrow();
        int eos = tokenizer.eosId().orElseThrow();
        InstructionDataset dataset = InstructionDataset.builder(tokenizer).build();
        Encoded full = dataset.encode(records);
        assertEquals(999, full.examples().size());
        assertEquals(0, full.truncated());
        assertEquals(0, full.skipped());

        int[] promptLengths = new int[records.size()];
        int[] lengths = new int[records.size()];
        for (int i = 0; i < records.size(); i++) {
            InstructionRecord r = records.get(i);
            int[] prompt = tokenizer.encode(PromptStyle.alpaca().prompt(r), true);
            int[] response = tokenizer.encode(r.output(), false);
            Example e = full.examples().get(i);
            int[] ids = e.inputIds();
            String where = "record " + (i + 1);
            assertEquals(prompt.length + response.length + 1, ids.length, where);
            assertArrayEquals(prompt, Arrays.copyOfRange(ids, 0, prompt.length), where);
            assertArrayEquals(response, Arrays.copyOfRange(ids, prompt.length, ids.length - 1), where);
            assertEquals(bos, ids[0], where);
            assertEquals(eos, ids[ids.length - 1], where);
            for (int t = 0; t < ids.length; t++) {
                assertEquals(t < prompt.length ? I : ids[t], e.labels()[t], where + " position " + t);
            }
            promptLengths[i] = prompt.length;
            lengths[i] = ids.length;
        }

        // Truncation on the first 300 records (keeps the test quick; they include both outcomes).
        int subset = 300;
        int maxLength = 96;
        int expectTruncated = 0;
        int expectSkipped = 0;
        for (int i = 0; i < subset; i++) {
            if (lengths[i] > maxLength) {
                if (promptLengths[i] >= maxLength) {
                    expectSkipped++;
                } else {
                    expectTruncated++;
                }
            }
        }
        Encoded cut = dataset.toBuilder().maxLength(maxLength).build().encode(records.subList(0, subset));
        assertEquals(expectTruncated, cut.truncated());
        assertEquals(expectSkipped, cut.skipped());
        assertEquals(subset - expectSkipped, cut.examples().size());
        assertTrue(cut.truncated() > 50 && cut.skipped() > 0, "the fixture should exercise both: " + cut.truncated() + " truncated, "
                + cut.skipped() + " skipped");
        assertTrue(cut.examples().stream().allMatch(e -> e.length() <= maxLength && e.supervisedTokens() > 0));
    }
}
