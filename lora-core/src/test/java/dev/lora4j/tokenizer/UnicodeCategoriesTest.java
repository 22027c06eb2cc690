package dev.lora4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * Tokenization must not depend on the JDK's Unicode version: letters and digits added in Unicode
 * 14 and 15 (unassigned in JDK 17's Unicode 13 tables) behave as on JDK 25 on every JDK.
 */
class UnicodeCategoriesTest {
    /** VITHKUQI CAPITAL LETTER A (Unicode 14.0, Lu). */
    private static final String VITHKUQI_A = new String(Character.toChars(0x10570));
    /** TOTO LETTER PA (Unicode 14.0, Lo). */
    private static final String TOTO_PA = new String(Character.toChars(0x1E290));
    /** KAWI LETTER A (Unicode 15.0, Lo). */
    private static final String KAWI_A = new String(Character.toChars(0x11F04));
    /** KAWI DIGIT ZERO..THREE (Unicode 15.0, Nd). */
    private static final String KAWI_0123 = IntStream.rangeClosed(0x11F50, 0x11F53)
            .collect(StringBuilder::new, StringBuilder::appendCodePoint, StringBuilder::append).toString();

    @Test
    void tableKnowsUnicode14And15() {
        assertEquals(Character.UPPERCASE_LETTER, UnicodeCategories.type(0x10570));
        assertEquals(Character.OTHER_LETTER, UnicodeCategories.type(0x1E290));
        assertEquals(Character.OTHER_LETTER, UnicodeCategories.type(0x11F04));
        assertEquals(Character.DECIMAL_DIGIT_NUMBER, UnicodeCategories.type(0x11F50));
        assertEquals(Character.LOWERCASE_LETTER, UnicodeCategories.type('a'));
        assertEquals(Character.UNASSIGNED, UnicodeCategories.type(0x2FFFF));
        assertEquals(Character.PRIVATE_USE, UnicodeCategories.type(0x10FFFD));
    }

    @Test
    void tableEqualsTheJdkThatWroteIt() {
        if (Runtime.version().feature() < UnicodeCategories.tableJdk()) {
            // an older JDK differs exactly where Unicode grew; every code point it knows keeps its category
            for (int cp = 0; cp <= Character.MAX_CODE_POINT; cp++) {
                int jdk = Character.getType(cp);
                if (jdk != Character.UNASSIGNED && jdk != UnicodeCategories.type(cp)) {
                    // Unicode moved a few characters between categories; none of them is a letter turned non-letter
                    assertEquals(isLetter(jdk), isLetter(UnicodeCategories.type(cp)), "U+" + Integer.toHexString(cp));
                }
            }
            return;
        }
        for (int cp = 0; cp <= Character.MAX_CODE_POINT; cp++) {
            if (Character.getType(cp) != UnicodeCategories.type(cp)) {
                assertEquals(Character.getType(cp), UnicodeCategories.type(cp), "U+" + Integer.toHexString(cp)
                        + ": the committed table is older than this JDK; regenerate it (UnicodeCategoryTableGenerator)");
            }
        }
    }

    private static boolean isLetter(int type) {
        return type >= Character.UPPERCASE_LETTER && type <= Character.OTHER_LETTER;
    }

    @Test
    void rewrittenRegexesFollowTheTable() {
        assertTrue(compile("\\p{L}+").matcher("ab" + KAWI_A + TOTO_PA + VITHKUQI_A).matches());
        assertTrue(compile("\\pL").matcher(KAWI_A).matches());
        assertTrue(compile("\\p{Letter}").matcher(KAWI_A).matches());
        assertTrue(compile("\\p{Lu}").matcher(VITHKUQI_A).matches());
        assertFalse(compile("\\p{Ll}").matcher(VITHKUQI_A).matches());
        assertFalse(compile("\\P{L}").matcher(KAWI_A).matches());
        assertFalse(compile("\\p{^L}").matcher(KAWI_A).matches());
        assertFalse(compile("[^\\s\\p{L}\\p{N}]").matcher(KAWI_A).matches());
        assertTrue(compile("\\p{N}{4}").matcher(KAWI_0123).matches());
        assertTrue(compile("[^\\s\\p{L}\\p{N}]").matcher("!").matches());
        assertTrue(compile("\\Q\\p{L}\\E").matcher("\\p{L}").matches(), "quoted text is left alone");
        assertTrue(compile("\\p{IsHan}").matcher("\u4E2D").matches(), "scripts are the JDK's");
        if (Runtime.version().feature() >= UnicodeCategories.tableJdk()) {
            assertEquals(WordSplitter.LLAMA3, UnicodeCategories.rewrite(WordSplitter.LLAMA3), "unchanged where the JDK agrees");
        }
    }

    private static Pattern compile(String regex) {
        return TokenizerPipeline.compileOniguruma(regex);
    }

    /** Pieces of the Llama-3 pre-tokenizer, by the hand-written splitter and by the regex itself. */
    private static List<List<String>> llama3Pieces(String text) {
        List<String> fast = new ArrayList<>();
        WordSplitter.forRegex(WordSplitter.LLAMA3).split(text, true, (piece, start) -> fast.add(piece));
        List<String> regex = new ArrayList<>();
        TokenizerPipeline.isolate(compile(WordSplitter.LLAMA3), text, true, (piece, start) -> regex.add(piece));
        return List.of(fast, regex);
    }

    @Test
    void llama3SplitKeepsNewLettersInTheirWord() {
        // [^\r\n\p{L}\p{N}]?\p{L}+ : a letter joins the letters around it
        for (List<String> pieces : llama3Pieces("hello" + KAWI_A + "world " + TOTO_PA + VITHKUQI_A + "!")) {
            assertEquals(List.of("hello" + KAWI_A + "world", " " + TOTO_PA + VITHKUQI_A, "!"), pieces);
        }
        // \p{N}{1,3}: new digits group in threes
        for (List<String> pieces : llama3Pieces("x" + KAWI_0123)) {
            assertEquals(List.of("x", KAWI_0123.substring(0, 6), KAWI_0123.substring(6)), pieces);
        }
    }

    @Test
    void llama3IdsTreatNewLettersAsLetters() throws IOException {
        HfTokenizer llama3 = TokenizerFixtures.tokenizer("tokenizers/llama3");
        String json = Files.readString(TokenizerFixtures.fixture("tokenizers/llama3/tokenizer.json"));
        // the same tokenizer without the Split: the whole text is one pre-token, which the rule above says it must be
        String split = json.substring(json.indexOf("\"pre_tokenizer\""));
        String preTokenizer = split.substring(0, split.indexOf("\"post_processor\""));
        HfTokenizer oneWord = HfTokenizer.fromJson(json.replace(preTokenizer, "\"pre_tokenizer\": {\"type\": \"ByteLevel\","
                + " \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}, "));
        // a letter before 's: the contraction is its own pre-token (Kawi A, 's); were Kawi A not a letter,
        // " ?[^\\s\\p{L}\\p{N}]+" would take it with the apostrophe (Kawi A', s)
        for (String letter : List.of(KAWI_A, TOTO_PA, VITHKUQI_A)) {
            int[] expected = IntStream.concat(Arrays.stream(oneWord.encode(letter, false)),
                    Arrays.stream(oneWord.encode("'s", false))).toArray();
            assertArrayEquals(expected, llama3.encode(letter + "'s", false));
            int[] asNonLetter = IntStream.concat(Arrays.stream(oneWord.encode(letter + "'", false)),
                    Arrays.stream(oneWord.encode("s", false))).toArray();
            assertNotEquals(Arrays.toString(asNonLetter), Arrays.toString(expected),
                    "treating the letter as a non-letter would give other ids");
        }
        String text = "hello" + KAWI_A + "world";
        assertArrayEquals(oneWord.encode(text, false), llama3.encode(text, false), "one pre-token");
    }
}
