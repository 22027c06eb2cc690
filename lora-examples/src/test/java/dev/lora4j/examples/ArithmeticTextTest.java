package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.data.Example;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.InstructionDataset;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ArithmeticTextTest {
    @TempDir
    Path dir;

    @Test
    void tokenizerKeepsDigitsApartAndRoundTrips() throws Exception {
        ArithmeticTokenizer.write(dir);
        HfTokenizer tok = HfTokenizer.load(dir);
        String text = "What is 59 minus 38?\nAnswer: 21";
        int[] ids = tok.encode(text, false);
        assertEquals(text, tok.decode(ids));
        // "▁What ▁is ▁ 5 9 ▁minus ▁ 3 8 ? \n Answer : ▁ 2 1"
        assertEquals(16, ids.length, java.util.Arrays.toString(ids));
        assertEquals("5", tok.token(ids[3]));
        assertEquals("9", tok.token(ids[4]));
    }

    @Test
    void instructionExampleMasksExactlyThePrompt() throws Exception {
        ArithmeticTokenizer.write(dir);
        HfTokenizer tok = HfTokenizer.load(dir);
        Problem p = new Problem(59, "minus", 38, 21);
        InstructionDataset dataset = InstructionDataset.builder(tok).promptStyle(ArithmeticText.PROMPT_STYLE).build();
        Example e = dataset.encode(List.of(ArithmeticText.record(p))).examples().get(0);
        int[] prompt = tok.encode("What is 59 minus 38?\nAnswer:", true);
        for (int i = 0; i < e.length(); i++) {
            assertEquals(i < prompt.length ? Example.IGNORE : e.inputIds()[i], e.labels()[i], "label " + i);
        }
        assertEquals(tok.eosId().getAsInt(), e.inputIds()[e.length() - 1]);
        // supervised: "▁", "2", "1", EOS
        assertEquals(4, e.supervisedTokens());
        // the decoder strips the leading space of the first piece, as SentencePiece does
        assertEquals("21", tok.decode(java.util.Arrays.copyOfRange(e.inputIds(), prompt.length, e.length() - 1)));
    }

    @Test
    void pretrainingSequencesFitAndAreSeeded() throws Exception {
        ArithmeticTokenizer.write(dir);
        HfTokenizer tok = HfTokenizer.load(dir);
        Example a = ArithmeticText.pretrainingSequence(tok, new SplittableRandom(5), 48);
        Example b = ArithmeticText.pretrainingSequence(tok, new SplittableRandom(5), 48);
        assertArrayEquals(a.inputIds(), b.inputIds());
        assertEquals(true, a.length() <= 48 && a.length() > 30);
        assertEquals(tok.bosId().getAsInt(), a.inputIds()[0]);
    }
}
