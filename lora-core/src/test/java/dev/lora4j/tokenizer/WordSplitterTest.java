package dev.lora4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The hand-written splitters must cut every text exactly where their regexes (compiled as tokenizer.json regexes are) do. */
class WordSplitterTest {
    /** Characters that exercise every branch: contractions in both cases, long s, CR/LF runs, Unicode spaces, digits of other scripts, marks, emoji, lone surrogates. */
    private static final String[] ALPHABET = {
        "a", "Z", "s", "S", "t", "T", "r", "R", "e", "E", "v", "m", "M", "l", "L", "d", "D", "\u017F", "\u212A", "\u0130",
        "'", "'", "'", "\u2019", " ", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\u00A0", "\u2003", "\u3000", "\u0085",
        "0", "7", "\u0663", "\u00BD", "\u2163", ".", ",", "!", "-", "$", "\u20AC", "\u0301", "\u00E9", "\u4E2D", "\u0416",
        "\uD83E\uDD99", "\uD83D\uDE00", "\u200D", "\uFE0F", "\uD800", "\uDC00", "_", "\u0000", "\u001F"
    };

    @Test
    void recognizesOnlyItsExactPatterns() {
        assertNotNull(WordSplitter.forRegex(WordSplitter.GPT2));
        assertNotNull(WordSplitter.forRegex(WordSplitter.LLAMA3));
        assertNotNull(WordSplitter.forRegex(WordSplitter.QWEN2));
        assertNull(WordSplitter.forRegex(WordSplitter.LLAMA3 + "|x"));
    }

    @Test
    void gpt2MatchesRegex() {
        compare(WordSplitter.GPT2);
    }

    @Test
    void llama3MatchesRegex() {
        compare(WordSplitter.LLAMA3);
    }

    @Test
    void qwen2MatchesRegex() {
        compare(WordSplitter.QWEN2);
    }

    private static void compare(String regex) {
        Pattern pattern = TokenizerPipeline.compileOniguruma(regex);
        WordSplitter splitter = WordSplitter.forRegex(regex);
        Random random = new Random(42);
        for (int trial = 0; trial < 20_000; trial++) {
            StringBuilder sb = new StringBuilder();
            int length = random.nextInt(12);
            for (int k = 0; k < length; k++) {
                sb.append(ALPHABET[random.nextInt(ALPHABET.length)]);
            }
            String text = sb.toString();
            List<String> expected = new ArrayList<>();
            TokenizerPipeline.isolate(pattern, text, true, (piece, start) -> expected.add(piece));
            List<String> actual = new ArrayList<>();
            splitter.split(text, true, (piece, start) -> actual.add(piece));
            assertEquals(escape(expected), escape(actual), () -> "split of " + escape(List.of(text)));
        }
    }

    private static String escape(List<String> pieces) {
        StringBuilder sb = new StringBuilder("[");
        for (String p : pieces) {
            sb.append('"');
            p.chars().forEach(c -> sb.append(c < 0x20 || c > 0x7E ? String.format("\\u%04X", c) : String.valueOf((char) c)));
            sb.append("\", ");
        }
        return sb.append(']').toString();
    }

    @Test
    void regexMatcherIsUsedWhenNoHandWrittenOneExists() {
        Matcher m = TokenizerPipeline.compileOniguruma("\\s").matcher("\u00A0");
        assertEquals(true, m.matches(), "\\s must be Unicode White_Space, as in Oniguruma");
    }
}
