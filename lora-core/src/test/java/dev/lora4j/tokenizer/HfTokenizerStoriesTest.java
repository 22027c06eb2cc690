package dev.lora4j.tokenizer;

import static dev.lora4j.tokenizer.TokenizerFixtures.ints;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** The 512-token llama2.c stories260K tokenizer: round trips and llama2.c's recorded greedy output. */
class HfTokenizerStoriesTest {
    private static final String STORIES = "stories260K/hf";

    /**
     * llama2.c's recorded text was produced from [BOS] alone and printed without the BOS, with the
     * leading space of the first piece dropped: exactly what the tokenizer's decoder (Strip of one
     * leading space) does to the generated ids.
     */
    @Test
    void greedyIdsDecodeToLlama2cRecordedText() throws IOException {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(STORIES);
        JsonNode golden = new ObjectMapper().readTree(TokenizerFixtures.fixture("stories260K/golden.json").toFile());
        String expected = golden.path("independent_golden").path("expected_text").asText();
        int[] generated = ints(golden.path("derived_here").path("greedy_ids_after_bos"));
        assertEquals(200, generated.length);
        assertEquals(expected, tokenizer.decode(generated));

        int[] withBos = new int[generated.length + 1];
        withBos[0] = 1;
        System.arraycopy(generated, 0, withBos, 1, generated.length);
        assertEquals(expected, tokenizer.decode(withBos, true));
        assertEquals("<s> " + expected, tokenizer.decode(withBos), "BOS kept: the Strip only removes a leading space");
        assertArrayEquals(withBos, tokenizer.encode(expected));
    }

    @Test
    void roundTripsArbitraryText() throws IOException {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(STORIES);
        List<String> texts = new ArrayList<>(List.of("", " ", "  leading and trailing  ", "Tom had a big dog.\n\nThe end.",
                "tabs\tand\r\nCRLF", "naïve café — “quotes” 🦙 日本語"));
        JsonNode alpaca = new ObjectMapper().readTree(TokenizerFixtures.fixture("alpaca/alpaca_en_demo.json").toFile());
        for (int i = 0; i < 40; i++) {
            texts.add(alpaca.get(i).path("output").asText());
        }
        for (String text : texts) {
            int[] ids = tokenizer.encode(text, false);
            assertEquals(text, tokenizer.decode(ids), () -> "round trip of " + HfTokenizerLlama2Test.quote(text));
            int[] withBos = tokenizer.encode(text);
            assertEquals(1, withBos[0]);
            assertArrayEquals(ids, Arrays.copyOfRange(withBos, 1, withBos.length));
        }
    }

    @Test
    void concurrentEncodingMatchesSequential() throws IOException {
        HfTokenizer tokenizer = HfTokenizer.load(TokenizerFixtures.fixture(STORIES));
        JsonNode alpaca = new ObjectMapper().readTree(TokenizerFixtures.fixture("alpaca/alpaca_en_demo.json").toFile());
        List<String> texts = new ArrayList<>();
        alpaca.forEach(record -> texts.add(record.path("output").asText()));
        List<int[]> sequential = texts.stream().map(tokenizer::encode).toList();
        HfTokenizer fresh = HfTokenizer.load(TokenizerFixtures.fixture(STORIES));
        List<int[]> parallel = texts.parallelStream().map(fresh::encode).toList();
        for (int i = 0; i < texts.size(); i++) {
            assertArrayEquals(sequential.get(i), parallel.get(i), texts.get(i));
        }
    }

    @Test
    void vocabularyAndSpecialTokens() {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer(STORIES);
        assertEquals(512, tokenizer.vocabSize());
        assertEquals(OptionalInt.of(1), tokenizer.bosId());
        assertEquals(OptionalInt.of(2), tokenizer.eosId());
        assertEquals(OptionalInt.empty(), tokenizer.padId(), "tokenizer_config.json has pad_token null");
        assertEquals("<0x0A>", tokenizer.token(13));
        // Characters outside the 512 pieces fall back to their UTF-8 bytes: '日' is E6 97 A5.
        int[] ids = tokenizer.encode("日", false);
        assertEquals("[\u2581, <0xE6>, <0x97>, <0xA5>]", Arrays.toString(TokenizerFixtures.tokens(tokenizer, ids)));
        assertTrue(tokenizer.decode(new int[] {3 + 0xE6}).equals("\uFFFD"), "a lone lead byte decodes to U+FFFD");
    }
}
