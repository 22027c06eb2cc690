package dev.lora4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** Windowed regex matching (a bound on the text one find() sees) must find exactly what a plain find() loop finds. */
class RegexWindowTest {
    private static final String[] PIECES = {"a", "b", "ab", "aaaaaaaaaa", " ", "  ", "\n", "\r\n", "'s", "'S", "7", "123456",
        ".", "!!", "\u00e9", "\u4e2d", "\uD83D\uDE00", "\u0301", "x", "\t"};
    private static final String[] REGEXES = {WordSplitter.LLAMA3, WordSplitter.GPT2, WordSplitter.QWEN2, "a+b|a", "x*",
        "^a|b$", "\\s+(?!\\S)|\\s+", "(?<=a)b", "\\b\\w+\\b", "[^\\s]{3,}", "(?:ab)+|a", "\\p{N}{1,3}", ""};

    private static List<String> plain(Pattern pattern, String text) {
        List<String> out = new ArrayList<>();
        Matcher m = pattern.matcher(text);
        while (m.find()) {
            if (m.end() > m.start()) {
                out.add(m.start() + "-" + m.end());
            }
        }
        return out;
    }

    private static List<String> windowed(Pattern pattern, String text, int window) {
        List<String> out = new ArrayList<>();
        TokenizerPipeline.forEachMatch(pattern, text, window, (start, end) -> out.add(start + "-" + end));
        return out;
    }

    @Test
    void windowedMatchesEqualThePlainLoop() {
        Random random = new Random(7);
        for (String regex : REGEXES) {
            Pattern pattern = TokenizerPipeline.compileOniguruma(regex);
            for (int trial = 0; trial < 1500; trial++) {
                StringBuilder sb = new StringBuilder();
                int length = random.nextInt(30);
                for (int k = 0; k < length; k++) {
                    sb.append(PIECES[random.nextInt(PIECES.length)]);
                }
                String text = sb.toString();
                List<String> expected = plain(pattern, text);
                for (int window : new int[] {1, 2, 3, 5, 16, TokenizerPipeline.REGEX_WINDOW}) {
                    assertEquals(expected, windowed(pattern, text, window), () -> "regex " + regex + ", window " + window
                            + ", text " + text.codePoints().mapToObj(Integer::toHexString).toList());
                }
            }
        }
    }

    @Test
    void longTextIsSplitAsAWhole() {
        StringBuilder sb = new StringBuilder();
        Random random = new Random(3);
        while (sb.length() < 3 * TokenizerPipeline.REGEX_WINDOW) {
            sb.append(PIECES[random.nextInt(PIECES.length)]);
        }
        sb.append("a".repeat(TokenizerPipeline.REGEX_WINDOW + 5)).append("b"); // one match longer than a window
        String text = sb.toString();
        for (String regex : new String[] {WordSplitter.LLAMA3, "a+b|a"}) {
            Pattern pattern = TokenizerPipeline.compileOniguruma(regex);
            assertEquals(plain(pattern, text), windowed(pattern, text, TokenizerPipeline.REGEX_WINDOW), regex);
        }
    }

    @Test
    void windowedReplaceEqualsReplaceAll() {
        Random random = new Random(11);
        for (String regex : REGEXES) {
            Pattern pattern = TokenizerPipeline.compileOniguruma(regex);
            TokenizerPipeline.Replace replace = new TokenizerPipeline.Replace(pattern, null, "<$1>");
            for (int trial = 0; trial < 500; trial++) {
                StringBuilder sb = new StringBuilder();
                int length = random.nextInt(30);
                for (int k = 0; k < length; k++) {
                    sb.append(PIECES[random.nextInt(PIECES.length)]);
                }
                String text = sb.toString();
                String expected = pattern.matcher(text).replaceAll(Matcher.quoteReplacement("<$1>"));
                assertEquals(expected, replace.normalize(text), () -> "regex " + regex + ", text "
                        + text.codePoints().mapToObj(Integer::toHexString).toList());
            }
        }
    }

    @Test
    void longTextIsReplacedAsAWhole() {
        StringBuilder sb = new StringBuilder();
        Random random = new Random(5);
        while (sb.length() < 3 * TokenizerPipeline.REGEX_WINDOW) {
            sb.append(PIECES[random.nextInt(PIECES.length)]);
        }
        sb.append("a".repeat(TokenizerPipeline.REGEX_WINDOW + 5)).append("b");
        String text = sb.toString();
        for (String regex : new String[] {"\\s+", "a+b|a", "x*"}) {
            Pattern pattern = TokenizerPipeline.compileOniguruma(regex);
            assertEquals(pattern.matcher(text).replaceAll("_"),
                    new TokenizerPipeline.Replace(pattern, null, "_").normalize(text), regex);
        }
    }
}
