package dev.lora4j.tokenizer;

import static dev.lora4j.tokenizer.TokenizerFixtures.ints;
import static dev.lora4j.tokenizer.TokenizerFixtures.strings;
import static dev.lora4j.tokenizer.TokenizerFixtures.tokens;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** Llama-2 SentencePiece-style BPE against ids recorded from Hugging Face tokenizers and sentencepiece. */
class HfTokenizerLlama2Test {
    private static final String LLAMA2 = "tokenizers/llama2";

    @Test
    void llamaCppVectorsEncodeAndDecodeExactly() throws IOException {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(LLAMA2);
        List<TokenizerFixtures.Case> cases = TokenizerFixtures.llamaCppCases("ggml-vocab-llama-spm.gguf");
        assertEquals(46, cases.size());
        List<String> failures = new ArrayList<>();
        for (TokenizerFixtures.Case c : cases) {
            int[] ids = tokenizer.encode(c.text(), false);
            if (!Arrays.equals(c.ids(), ids)) {
                failures.add("encode " + quote(c.text()) + ": expected " + Arrays.toString(c.ids()) + " got " + Arrays.toString(ids));
            }
            String decoded = tokenizer.decode(c.ids());
            if (!decoded.equals(c.text())) {
                failures.add("decode " + Arrays.toString(c.ids()) + ": expected " + quote(c.text()) + " got " + quote(decoded));
            }
        }
        assertTrue(failures.isEmpty(), failures.size() + " mismatches:\n" + String.join("\n", failures));
    }

    /**
     * transformers' non-legacy Llama conversion replaces the Prepend/Replace normalizer by a
     * Metaspace pre-tokenizer (prepend_scheme first, split false). Both give the same ids, except
     * that Metaspace prepends no ▁ when the text already starts with a space.
     */
    @Test
    void metaspacePreTokenizerVariantGivesTheSameIds() throws IOException {
        ObjectNode json = (ObjectNode) new ObjectMapper().readTree(
                TokenizerFixtures.fixture(LLAMA2 + "/tokenizer.json").toFile());
        json.putNull("normalizer");
        ObjectNode metaspace = json.putObject("pre_tokenizer");
        metaspace.put("type", "Metaspace").put("replacement", "\u2581").put("prepend_scheme", "first").put("split", false);
        HfTokenizer tokenizer = HfTokenizer.fromJson(json.toString());
        HfTokenizer legacy = TokenizerFixtures.tokenizer(LLAMA2);
        int same = 0;
        for (TokenizerFixtures.Case c : TokenizerFixtures.llamaCppCases("ggml-vocab-llama-spm.gguf")) {
            if (!c.text().startsWith(" ")) {
                assertEquals(Arrays.toString(c.ids()), Arrays.toString(tokenizer.encode(c.text(), false)), quote(c.text()));
                same++;
            }
        }
        assertEquals(31, same);
        assertArrayEquals(legacy.encode("Hello world", false), tokenizer.encode(" Hello world", false));
        assertArrayEquals(new int[] {29871}, tokenizer.encode(" ", false));
    }

    @Test
    void transformersJsCasesWithDefaultSpecialTokens() throws IOException {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(LLAMA2);
        JsonNode section = TokenizerFixtures.vectors().path("transformers_js").path("Xenova/llama-tokenizer");
        assertEquals("tokenizers/llama2/tokenizer.json", section.path("tokenizer").asText());
        JsonNode cases = section.path("cases");
        assertEquals(37, cases.size());
        List<String> failures = new ArrayList<>();
        for (JsonNode c : cases) {
            String text = c.path("text").asText();
            int[] expectedIds = ints(c.path("ids"));
            int[] ids = tokenizer.encode(text);
            if (!Arrays.equals(expectedIds, ids)) {
                failures.add(c.path("name").asText() + " ids: expected " + Arrays.toString(expectedIds) + " got " + Arrays.toString(ids));
            }
            String[] expectedTokens = strings(c.path("tokens"));
            String[] pieces = tokens(tokenizer, tokenizer.encode(text, false));
            if (!Arrays.equals(expectedTokens, pieces)) {
                failures.add(c.path("name").asText() + " tokens: expected " + Arrays.toString(expectedTokens) + " got " + Arrays.toString(pieces));
            }
            String decoded = tokenizer.decode(expectedIds);
            if (!decoded.equals(c.path("decoded").asText())) {
                failures.add(c.path("name").asText() + " decoded: expected " + quote(c.path("decoded").asText()) + " got " + quote(decoded));
            }
        }
        assertTrue(failures.isEmpty(), failures.size() + " mismatches:\n" + String.join("\n", failures));
    }

    @Test
    void llama2cTestCasesIncludeBos() throws IOException {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(LLAMA2);
        JsonNode section = TokenizerFixtures.vectors().path("llama2_c_test_c");
        JsonNode cases = section.path("cases");
        assertEquals(5, cases.size());
        for (JsonNode c : cases) {
            String text = c.path("text").asText();
            int[] expected = ints(c.path("ids"));
            assertEquals(Arrays.toString(expected), Arrays.toString(tokenizer.encode(text)), quote(text));
            assertEquals(text, tokenizer.decode(expected, true), "decode without BOS of " + quote(text));
        }
    }

    @Test
    void specialTokensAndVocabulary() {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(LLAMA2);
        assertEquals(32000, tokenizer.vocabSize());
        assertEquals(OptionalInt.of(1), tokenizer.bosId());
        assertEquals(OptionalInt.of(2), tokenizer.eosId());
        assertEquals(OptionalInt.of(0), tokenizer.padId(), "tokenizer_config.json names <unk> as pad_token");
        assertEquals("<0x0A>", tokenizer.token(13));
        assertEquals(OptionalInt.of(29871), tokenizer.id("\u2581"));
        assertEquals(OptionalInt.empty(), tokenizer.id("no such token"));
        assertTrue(tokenizer.isSpecial(1) && tokenizer.isSpecial(2) && !tokenizer.isSpecial(13));
        // Special tokens written in the text are matched before normalization; each side is normalized on its own.
        assertEquals("[1, 1, 15043, 2]", Arrays.toString(tokenizer.encode("<s>Hello</s>")));
        assertEquals("<s><s> Hello</s>", tokenizer.decode(tokenizer.encode("<s>Hello</s>")));
        assertEquals("Hello", tokenizer.decode(tokenizer.encode("<s>Hello</s>"), true));
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        s.codePoints().forEach(cp -> sb.append(cp < 0x20 ? String.format("\\u%04x", cp) : Character.toString(cp)));
        return sb.append('"').toString();
    }
}
