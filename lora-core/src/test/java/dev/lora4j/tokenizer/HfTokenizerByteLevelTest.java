package dev.lora4j.tokenizer;

import static dev.lora4j.tokenizer.HfTokenizerLlama2Test.quote;
import static dev.lora4j.tokenizer.TokenizerFixtures.ints;
import static dev.lora4j.tokenizer.TokenizerFixtures.strings;
import static dev.lora4j.tokenizer.TokenizerFixtures.tokens;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** GPT-2 and Llama-3 byte-level BPE against ids recorded from Hugging Face tokenizers. */
class HfTokenizerByteLevelTest {
    private static final String GPT2 = "tokenizers/gpt2";
    private static final String LLAMA3 = "tokenizers/llama3";

    @Test
    void gpt2LlamaCppVectors() throws IOException {
        checkLlamaCpp(TokenizerFixtures.tokenizer(GPT2), "ggml-vocab-gpt-2.gguf");
    }

    @Test
    void llama3LlamaCppVectors() throws IOException {
        checkLlamaCpp(TokenizerFixtures.tokenizer(LLAMA3), "ggml-vocab-llama-bpe.gguf");
    }

    /** Byte-level BPE is lossless, so every text also decodes back exactly. */
    private static void checkLlamaCpp(HfTokenizer tokenizer, String name) throws IOException {
        List<TokenizerFixtures.Case> cases = TokenizerFixtures.llamaCppCases(name);
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
     * transformers.js expected values come from Python transformers, whose decode applied
     * clean_up_tokenization_spaces (the default then, and set in Llama-3's tokenizer_config.json);
     * HfTokenizer.decode follows the tokenizers library, so the test applies the clean-up itself.
     */
    @Test
    void gpt2TransformersJsCases() throws IOException {
        checkTransformersJs(TokenizerFixtures.tokenizer(GPT2), "Xenova/gpt2", 26, null);
    }

    @Test
    void llama3TransformersJsCases() throws IOException {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(LLAMA3);
        assertTrue(tokenizer.cleansUpTokenizationSpaces());
        checkTransformersJs(tokenizer, "Xenova/llama3-tokenizer", 37, null);
    }

    /** The later Llama-3 tokenizer.json differs only in a template adding <|begin_of_text|>; its ids are the shipped file's with 128000 first. */
    @Test
    void llama3NewTemplateCases() throws IOException {
        checkTransformersJs(TokenizerFixtures.tokenizer(LLAMA3), "Xenova/llama3-tokenizer-new", 37, 128000);
    }

    private static void checkTransformersJs(HfTokenizer tokenizer, String section, int expectedCases, Integer bos) throws IOException {
        JsonNode node = TokenizerFixtures.vectors().path("transformers_js").path(section);
        JsonNode cases = node.path("cases");
        assertEquals(expectedCases, cases.size());
        List<String> failures = new ArrayList<>();
        for (JsonNode c : cases) {
            String name = c.path("name").asText();
            String text = c.path("text").asText();
            int[] expectedIds = ints(c.path("ids"));
            int[] ids = tokenizer.encode(text);
            if (bos != null) {
                int[] prefixed = new int[ids.length + 1];
                prefixed[0] = bos;
                System.arraycopy(ids, 0, prefixed, 1, ids.length);
                ids = prefixed;
            }
            if (!Arrays.equals(expectedIds, ids)) {
                failures.add(name + " ids: expected " + Arrays.toString(expectedIds) + " got " + Arrays.toString(ids));
            }
            String[] expectedTokens = strings(c.path("tokens"));
            String[] pieces = tokens(tokenizer, tokenizer.encode(text, false));
            if (!Arrays.equals(expectedTokens, pieces)) {
                failures.add(name + " tokens: expected " + Arrays.toString(expectedTokens) + " got " + Arrays.toString(pieces));
            }
            String decoded = HfTokenizer.cleanUpTokenizationSpaces(tokenizer.decode(expectedIds));
            if (!decoded.equals(c.path("decoded").asText())) {
                failures.add(name + " decoded: expected " + quote(c.path("decoded").asText()) + " got " + quote(decoded));
            }
        }
        assertTrue(failures.isEmpty(), failures.size() + " mismatches:\n" + String.join("\n", failures));
    }

    @Test
    void llama3SpecialTokens() {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(LLAMA3);
        assertEquals(128256, tokenizer.vocabSize());
        assertEquals(OptionalInt.of(128000), tokenizer.bosId());
        assertEquals(OptionalInt.of(128001), tokenizer.eosId());
        assertEquals(OptionalInt.empty(), tokenizer.padId());
        int[] ids = tokenizer.encode("<|begin_of_text|>Hi<|eot_id|>", false);
        assertEquals(128000, ids[0]);
        assertEquals(128009, ids[ids.length - 1]);
        assertEquals("<|begin_of_text|>Hi<|eot_id|>", tokenizer.decode(ids));
        assertEquals("Hi", tokenizer.decode(ids, true));
    }

    @Test
    void gpt2HasNoDefaultSpecialTokens() {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(GPT2);
        assertEquals(50257, tokenizer.vocabSize());
        assertFalse(tokenizer.bosId().isPresent(), "neither tokenizer.json nor tokenizer_config.json names a BOS");
        assertEquals("[50256]", Arrays.toString(tokenizer.encode("<|endoftext|>")));
    }
}
