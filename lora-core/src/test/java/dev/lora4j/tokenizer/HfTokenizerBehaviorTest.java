package dev.lora4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tokenizer.TokenizerPipeline.Behavior;
import dev.lora4j.tokenizer.TokenizerPipeline.PrependScheme;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Pipeline components on small hand-made tokenizers; expected values follow the tokenizers library's documented behaviour. */
class HfTokenizerBehaviorTest {

    /** A tokenizer.json with the given JSON fragments (null = JSON null). */
    private static String json(String model, String addedTokens, String normalizer, String preTokenizer,
                               String postProcessor, String decoder) {
        return "{\"version\":\"1.0\",\"added_tokens\":" + (addedTokens == null ? "[]" : addedTokens)
                + ",\"normalizer\":" + normalizer + ",\"pre_tokenizer\":" + preTokenizer
                + ",\"post_processor\":" + postProcessor + ",\"decoder\":" + decoder + ",\"model\":" + model + "}";
    }

    private static String bpe(String vocab, String merges, String options) {
        return "{\"type\":\"BPE\",\"vocab\":{" + vocab + "},\"merges\":[" + merges + "]" + (options.isEmpty() ? "" : "," + options) + "}";
    }

    private static final String ABC = "\"<unk>\":0,\"a\":1,\"b\":2,\"c\":3,\"ab\":4,\"bc\":5,\"abc\":6";

    private static int[] encode(String model, String text) {
        return HfTokenizer.fromJson(json(model, null, null, null, null, null)).encode(text, false);
    }

    @Test
    void mergesApplyByRankThenLeftmost() {
        assertArrayEquals(new int[] {1, 5}, encode(bpe(ABC, "\"b c\",\"a b\",\"ab c\"", ""), "abc"));
        assertArrayEquals(new int[] {6}, encode(bpe(ABC, "\"a b\",\"b c\",\"ab c\"", ""), "abc"));
        assertArrayEquals(new int[] {6}, encode(bpe(ABC, "[\"a\",\"b\"],[\"b\",\"c\"],[\"ab\",\"c\"]", ""), "abc"));
        assertArrayEquals(new int[] {4, 1}, encode(bpe("\"a\":1,\"aa\":4", "\"a a\"", ""), "aaa"));
        assertArrayEquals(new int[] {4, 4}, encode(bpe("\"a\":1,\"aa\":4", "\"a a\"", ""), "aaaa"));
    }

    @Test
    void unknownCharactersFuseOrRepeatOrVanish() {
        String vocab = "\"<unk>\":0,\"a\":1,\"b\":2";
        assertArrayEquals(new int[] {1, 0, 2}, encode(bpe(vocab, "", "\"unk_token\":\"<unk>\",\"fuse_unk\":true"), "axyb"));
        assertArrayEquals(new int[] {1, 0, 0, 2}, encode(bpe(vocab, "", "\"unk_token\":\"<unk>\""), "axyb"));
        assertArrayEquals(new int[] {1, 2}, encode(bpe(vocab, "", ""), "axyb"));
        // é is C3 A9: byte tokens when all exist, else the unknown token.
        String bytes = vocab + ",\"<0xC3>\":3,\"<0xA9>\":4";
        assertArrayEquals(new int[] {1, 3, 4}, encode(bpe(bytes, "", "\"unk_token\":\"<unk>\",\"byte_fallback\":true"), "aé"));
        assertArrayEquals(new int[] {1, 0}, encode(bpe(bytes, "", "\"unk_token\":\"<unk>\",\"byte_fallback\":true"), "a日"));
    }

    @Test
    void ignoreMergesTakesWholeWordTokens() {
        assertArrayEquals(new int[] {6}, encode(bpe(ABC, "\"a b\"", "\"ignore_merges\":true"), "abc"));
        assertArrayEquals(new int[] {4, 3}, encode(bpe(ABC, "\"a b\"", "\"ignore_merges\":false"), "abc"));
    }

    @Test
    void continuingSubwordPrefixAndEndOfWordSuffix() {
        String vocab = "\"a\":0,\"##b\":1,\"ab\":2,\"##c</w>\":3,\"abc</w>\":4";
        String options = "\"continuing_subword_prefix\":\"##\",\"end_of_word_suffix\":\"</w>\"";
        assertArrayEquals(new int[] {2, 3}, encode(bpe(vocab, "\"a ##b\"", options), "abc"));
        assertArrayEquals(new int[] {4}, encode(bpe(vocab, "\"a ##b\",\"ab ##c</w>\"", options), "abc"));
    }

    @Test
    void splitBehaviorsMatchTheTokenizersDocumentation() {
        String text = "the-final--countdown";
        assertEquals(List.of("the", "final", "countdown"), split(Behavior.REMOVED, false, text));
        assertEquals(List.of("the", "-", "final", "-", "-", "countdown"), split(Behavior.ISOLATED, false, text));
        assertEquals(List.of("the-", "final-", "-", "countdown"), split(Behavior.MERGED_WITH_PREVIOUS, false, text));
        assertEquals(List.of("the", "-final", "-", "-countdown"), split(Behavior.MERGED_WITH_NEXT, false, text));
        assertEquals(List.of("the", "-", "final", "--", "countdown"), split(Behavior.CONTIGUOUS, false, text));
        assertEquals(List.of("-", "-", "-"), split(Behavior.REMOVED, true, text));
    }

    private static List<String> split(Behavior behavior, boolean invert, String text) {
        List<String> pieces = new ArrayList<>();
        new TokenizerPipeline.Split(Pattern.compile("-"), behavior, invert).split(text, true, (p, s) -> pieces.add(p));
        return pieces;
    }

    @Test
    void metaspacePreTokenizerAndDecoder() {
        TokenizerPipeline.Metaspace always = new TokenizerPipeline.Metaspace('▁', PrependScheme.ALWAYS, true);
        assertEquals(List.of("▁Hey", "▁friend!"), pieces(always, "Hey friend!", true));
        assertEquals(List.of("▁Hey", "▁", "▁", "▁friend!"), pieces(always, "Hey   friend!", true));
        TokenizerPipeline.Metaspace first = new TokenizerPipeline.Metaspace('▁', PrependScheme.FIRST, false);
        assertEquals(List.of("▁Hey▁"), pieces(first, " Hey ", true));
        assertEquals(List.of("how"), pieces(first, "how", false), "not the start of the input: nothing prepended");
        assertEquals(List.of("▁you"), pieces(first, " you", false));
        assertEquals(List.of("x▁y"), pieces(new TokenizerPipeline.Metaspace('▁', PrependScheme.NEVER, false), "x y", true));

        assertEquals(List.of("Hey", " friend!"), new TokenizerPipeline.MetaspaceDecoder('▁', true).decodeChain(List.of("▁Hey", "▁friend!")));
        assertEquals(List.of(" Hey", " friend!"), new TokenizerPipeline.MetaspaceDecoder('▁', false).decodeChain(List.of("▁Hey", "▁friend!")));
    }

    private static List<String> pieces(TokenizerPipeline.PreTokenizer pre, String text, boolean atStart) {
        List<String> out = new ArrayList<>();
        pre.split(text, atStart, (p, s) -> out.add(p));
        return out;
    }

    @Test
    void addedTokensHonourLstripRstripSingleWordAndLongestMatch() {
        TokenizerJsonReader.AddedToken lstrip = new TokenizerJsonReader.AddedToken(9, "<mask>", false, true, false, false, true);
        assertEquals("[0, 7, -1, 7, 14, 9, 14, 16, -1]",
                Arrays.toString(new HfTokenizer.AddedTokenMatcher(List.of(lstrip)).split("I saw a <mask> x")));
        TokenizerJsonReader.AddedToken rstrip = new TokenizerJsonReader.AddedToken(9, "<mask>", false, false, true, false, true);
        assertEquals("[0, 8, -1, 8, 15, 9, 15, 16, -1]",
                Arrays.toString(new HfTokenizer.AddedTokenMatcher(List.of(rstrip)).split("I saw a <mask> x")));
        TokenizerJsonReader.AddedToken word = new TokenizerJsonReader.AddedToken(5, "ab", true, false, false, false, false);
        assertEquals("[0, 2, 5, 2, 7, -1, 7, 9, 5]",
                Arrays.toString(new HfTokenizer.AddedTokenMatcher(List.of(word)).split("ab cab ab")));
        TokenizerJsonReader.AddedToken shortOne = new TokenizerJsonReader.AddedToken(1, "<a>", false, false, false, false, true);
        TokenizerJsonReader.AddedToken longOne = new TokenizerJsonReader.AddedToken(2, "<a><b>", false, false, false, false, true);
        assertEquals("[0, 1, -1, 1, 7, 2, 7, 10, 1]",
                Arrays.toString(new HfTokenizer.AddedTokenMatcher(List.of(shortOne, longOne)).split("x<a><b><a>")));
    }

    /** A normalized added token is matched in its normalized form, so with Prepend("▁") it only matches after a space. */
    @Test
    void normalizedAddedTokensMatchAfterNormalization() {
        String normalizer = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"▁\"},"
                + "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"▁\"}]}";
        String added = "[{\"id\":7,\"content\":\"hi\",\"normalized\":true,\"special\":false}]";
        String vocab = "\"<unk>\":0,\"▁\":1,\"h\":2,\"i\":3,\"o\":4,\"hi\":7";
        HfTokenizer tokenizer = HfTokenizer.fromJson(json(bpe(vocab, "", "\"unk_token\":\"<unk>\""), added, normalizer, null, null, null));
        assertArrayEquals(new int[] {7, 7}, tokenizer.encode("hi hi", false));
        assertArrayEquals(new int[] {1, 4, 2, 3}, tokenizer.encode("ohi", false));
        assertEquals("hi hi", tokenizer.decode(new int[] {7, 7}), "without a decoder tokens are joined by spaces");
    }

    @Test
    void configFlagsRebuildDefaultSpecialTokens(@TempDir Path dir) throws IOException {
        TokenizerJsonWriter.write(dir.resolve("tokenizer.json"), List.of("▁", "a", "▁a"), List.of(new TokenizerJsonWriter.Merge("▁", "a")));
        Files.writeString(dir.resolve("tokenizer_config.json"),
                "{\"bos_token\":{\"content\":\"<s>\"},\"eos_token\":\"</s>\",\"pad_token\":\"<unk>\",\"add_bos_token\":false,\"add_eos_token\":true}",
                StandardCharsets.UTF_8);
        HfTokenizer tokenizer = HfTokenizer.load(dir);
        int a = TokenizerJsonWriter.FIRST_PIECE_ID + 2;
        assertArrayEquals(new int[] {a, 2}, tokenizer.encode("a"));
        assertArrayEquals(new int[] {a}, tokenizer.encode("a", false));
        assertEquals(OptionalInt.of(1), tokenizer.bosId());
        assertEquals(OptionalInt.of(0), tokenizer.padId());

        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\":true,\"bos_token\":null}", StandardCharsets.UTF_8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HfTokenizer.load(dir));
        assertEquals(dir.resolve("tokenizer_config.json") + ": add_bos_token is true but no bos_token is defined; "
                + "set bos_token or add_bos_token: false", e.getMessage());
    }

    @Test
    void unsupportedComponentsAreNamedWithTheirJsonPath(@TempDir Path dir) throws IOException {
        String model = bpe(ABC, "", "");
        assertError("tokenizer.json: normalizer.normalizers[1].type is \"Lowercase\", an unsupported normalizer; "
                + "lora4j supports: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD",
                json(model, null, "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Lowercase\"}]}", null, null, null));
        assertError("tokenizer.json: pre_tokenizer.pretokenizers[0].type is \"Whitespace\", an unsupported pre-tokenizer; "
                + "lora4j supports: Sequence, Metaspace, ByteLevel, Split, Digits",
                json(model, null, null, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Whitespace\"}]}", null, null));
        assertError("tokenizer.json: decoder.type is \"CTC\", an unsupported decoder; "
                + "lora4j supports: Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel",
                json(model, null, null, null, null, "{\"type\":\"CTC\"}"));
        assertError("tokenizer.json: model.type is \"WordPiece\", an unsupported model type; lora4j supports: BPE",
                json("{\"type\":\"WordPiece\",\"vocab\":{}}", null, null, null, null, null));
        assertError("tokenizer.json: model.dropout is 0.1; lora4j supports only null (no BPE-dropout)",
                json(bpe(ABC, "", "\"dropout\":0.1"), null, null, null, null, null));
        assertError("tokenizer.json: post_processor.single[1].Sequence.id is \"B\"; a single-sequence template can only use A",
                json(model, null, null, null, "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\"}},"
                        + "{\"Sequence\":{\"id\":\"B\"}}],\"special_tokens\":{}}", null));
        assertError("tokenizer.json: model.merges[1] is \"a b c\"; a merge string must be two tokens separated by one space",
                json(bpe(ABC, "\"a b\",\"a b c\"", ""), null, null, null, null, null));

        Path file = dir.resolve("tokenizer.json");
        Files.writeString(file, json(model, null, "{\"type\":\"Strip\"}", null, null, null), StandardCharsets.UTF_8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HfTokenizer.load(dir));
        assertTrue(e.getMessage().startsWith(file + ": normalizer.type is \"Strip\", an unsupported normalizer"), e.getMessage());
        NoSuchFileException missing = assertThrows(NoSuchFileException.class, () -> HfTokenizer.load(dir.resolve("nothing")));
        assertTrue(missing.getMessage().contains("no such file"), missing.getMessage());
    }

    private static void assertError(String message, String tokenizerJson) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HfTokenizer.fromJson(tokenizerJson));
        assertEquals(message, e.getMessage());
    }

    @Test
    void decodersFollowTheTokenizersLibrary() {
        TokenizerPipeline.Decoder llama = new TokenizerPipeline.SequenceDecoder(List.of(
                new TokenizerPipeline.ReplaceDecoder(TokenizerPipeline.Replace.literal("▁", " ")),
                new TokenizerPipeline.ByteFallbackDecoder(), new TokenizerPipeline.FuseDecoder(),
                new TokenizerPipeline.StripDecoder(' ', 1, 0)));
        assertEquals(List.of("Hi 日!"), llama.decodeChain(List.of("▁Hi", "▁", "<0xE6>", "<0x97>", "<0xA5>", "!")));
        assertEquals(List.of("\uFFFD\uFFFDa"), llama.decodeChain(List.of("<0xE6>", "<0x97>", "a")), "one U+FFFD per byte of an invalid run");
        assertEquals(List.of("x "), new TokenizerPipeline.StripDecoder(' ', 2, 1).decodeChain(List.of("  x  ")));
        assertEquals(List.of("h\u00E9"), new TokenizerPipeline.ByteLevelDecoder().decodeChain(List.of("h", "Ã©")));
        assertEquals(List.of("<|x|> \uFFFD"), new TokenizerPipeline.ByteLevelDecoder().decodeChain(List.of("<|x|>", "Ġ", "Ã")));
    }

    /**
     * Rust's from_utf8_lossy replaces each maximal ill-formed subpart with U+FFFD, as Java's UTF-8
     * decoder does, except that Java swallows an encoded surrogate (ED A0..BF) whole, so those
     * inputs are checked by hand.
     */
    @Test
    void lossyUtf8MatchesMaximalSubpartReplacement() {
        assertEquals("\uFFFD\uFFFD\uFFFD", Utf8Bytes.decodeLossy(new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80}, 3));
        assertEquals("\uFFFDA", Utf8Bytes.decodeLossy(new byte[] {(byte) 0xE6, 0x41}, 2));
        assertEquals("\uFFFD", Utf8Bytes.decodeLossy(new byte[] {(byte) 0xF0, (byte) 0x9F, (byte) 0xA6}, 3));
        assertEquals("\uFFFD\uFFFD\uFFFD\uFFFD", Utf8Bytes.decodeLossy(new byte[] {(byte) 0x8F, (byte) 0xED, (byte) 0xA0, (byte) 0xC2}, 4));
        Random random = new Random(7);
        byte[] pool = {0x41, 0x7F, (byte) 0x80, (byte) 0xBF, (byte) 0xC0, (byte) 0xC2, (byte) 0xDF, (byte) 0xE0, (byte) 0xA0,
            (byte) 0xED, (byte) 0x9F, (byte) 0xEF, (byte) 0xF0, (byte) 0x90, (byte) 0xF4, (byte) 0x8F, (byte) 0xF5, (byte) 0xFF};
        for (int trial = 0; trial < 20_000; trial++) {
            byte[] bytes = new byte[random.nextInt(8)];
            boolean encodedSurrogate = false;
            for (int i = 0; i < bytes.length; i++) {
                bytes[i] = pool[random.nextInt(pool.length)];
                encodedSurrogate |= i > 0 && bytes[i - 1] == (byte) 0xED && (bytes[i] & 0xFF) >= 0xA0 && (bytes[i] & 0xFF) <= 0xBF;
            }
            if (encodedSurrogate) {
                continue;
            }
            String expected = new String(bytes, StandardCharsets.UTF_8);
            assertEquals(expected, Utf8Bytes.decodeLossy(bytes, bytes.length), () -> Arrays.toString(bytes));
            assertEquals(!expected.contains("\uFFFD"), Utf8Bytes.isValid(bytes, bytes.length), () -> Arrays.toString(bytes));
        }
    }

    @Test
    void gpt2ByteTableCoversEveryByteOnce() {
        boolean[] seen = new boolean[Utf8Bytes.CHAR_TO_BYTE.length];
        for (int b = 0; b < 256; b++) {
            char c = Utf8Bytes.BYTE_TO_CHAR[b];
            assertTrue(!seen[c]);
            seen[c] = true;
            assertEquals(b, Utf8Bytes.byteOf(c));
        }
        assertEquals('Ġ', Utf8Bytes.BYTE_TO_CHAR[' ']);
        assertEquals('Ċ', Utf8Bytes.BYTE_TO_CHAR['\n']);
        assertEquals('A', Utf8Bytes.BYTE_TO_CHAR['A']);
    }
}
