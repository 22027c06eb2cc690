package dev.lora4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.tokenizer.TokenizerJsonWriter.Merge;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerJsonWriterTest {
    private static final List<String> PIECES = List.of("▁", "t", "h", "e", "a", "▁t", "he", "▁the", "▁a", "at", "▁at");
    private static final List<Merge> MERGES = List.of(new Merge("▁", "t"), new Merge("h", "e"), new Merge("▁t", "he"),
            new Merge("▁", "a"), new Merge("a", "t"), new Merge("▁a", "t"));

    @Test
    void writtenTokenizerEncodesByRankAndRoundTrips(@TempDir Path dir) throws IOException {
        TokenizerJsonWriter.writeFolder(dir, PIECES, MERGES);
        HfTokenizer tokenizer = HfTokenizer.load(dir);
        assertEquals(259 + PIECES.size(), tokenizer.vocabSize());
        assertEquals(OptionalInt.of(1), tokenizer.bosId());
        assertEquals(OptionalInt.of(2), tokenizer.eosId());
        int the = 259 + PIECES.indexOf("▁the");
        int at = 259 + PIECES.indexOf("▁at");
        // "▁at" needs ▁+a (rank 3) before a+t (rank 4): lowest rank first gives ▁a + t, then merge 5.
        assertArrayEquals(new int[] {1, the, at}, tokenizer.encode("the at"));
        for (String text : List.of("", "the", " the  hat ", "Zoë’s 🦙\n\tend", "the\u00A0cat")) {
            assertEquals(text, tokenizer.decode(tokenizer.encode(text, false)), text);
            assertEquals(text, tokenizer.decode(tokenizer.encode(text), true), text);
        }
        assertEquals("[▁, <0x5A>]", Arrays.toString(TokenizerFixtures.tokens(tokenizer, tokenizer.encode("Z", false))));

        Path bare = Files.createDirectory(dir.resolve("bare")).resolve("tokenizer.json");
        TokenizerJsonWriter.write(bare, PIECES, MERGES);
        HfTokenizer withoutConfig = HfTokenizer.load(bare);
        assertArrayEquals(tokenizer.encode("the at"), withoutConfig.encode("the at"));
        assertEquals(OptionalInt.of(1), withoutConfig.bosId(), "the template's leading special token");
        assertEquals(OptionalInt.empty(), withoutConfig.eosId(), "only tokenizer_config.json names the EOS");
    }

    @Test
    void rejectsInconsistentInput() {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                () -> TokenizerJsonWriter.toJson(List.of("a", "b"), List.of(new Merge("a", "b"))));
        assertEquals("merges[0] (\"a\", \"b\") needs \"ab\", which is not a token; add it to pieces", missing.getMessage());
        IllegalArgumentException space = assertThrows(IllegalArgumentException.class,
                () -> TokenizerJsonWriter.toJson(List.of("a b"), List.of()));
        assertTrue(space.getMessage().startsWith("pieces[0] \"a b\" contains a space"), space.getMessage());
        IllegalArgumentException duplicate = assertThrows(IllegalArgumentException.class,
                () -> TokenizerJsonWriter.toJson(List.of("x", "<0x41>"), List.of()));
        assertTrue(duplicate.getMessage().startsWith("pieces[1] \"<0x41>\" is already token 68"), duplicate.getMessage());
    }

    /**
     * Rewriting the stories260K pieces and merges reproduces that (Hugging Face-loadable)
     * tokenizer.json node for node, and the result tokenizes like the original.
     */
    @Test
    void reproducesStories260KTokenizerJson() throws IOException {
        Path original = TokenizerFixtures.fixture("stories260K/hf/tokenizer.json");
        JsonNode expected = new ObjectMapper().readTree(original.toFile());
        Map<Integer, String> byId = new TreeMap<>();
        expected.path("model").path("vocab").fields().forEachRemaining(e -> byId.put(e.getValue().asInt(), e.getKey()));
        List<String> pieces = new ArrayList<>();
        byId.forEach((id, token) -> {
            if (id >= TokenizerJsonWriter.FIRST_PIECE_ID) {
                pieces.add(token);
            }
        });
        List<Merge> merges = new ArrayList<>();
        expected.path("model").path("merges").forEach(m -> {
            String[] parts = m.asText().split(" ");
            merges.add(new Merge(parts[0], parts[1]));
        });
        String json = TokenizerJsonWriter.toJson(pieces, merges);
        assertEquals(expected, new ObjectMapper().readTree(json));

        HfTokenizer written = HfTokenizer.fromJson(json);
        HfTokenizer reference = HfTokenizer.load(original);
        JsonNode alpaca = new ObjectMapper().readTree(TokenizerFixtures.fixture("alpaca/alpaca_en_demo.json").toFile());
        for (int i = 0; i < 100; i++) {
            String text = alpaca.get(i).path("instruction").asText() + "\n" + alpaca.get(i).path("output").asText();
            assertArrayEquals(reference.encode(text), written.encode(text));
            assertEquals(text, written.decode(written.encode(text), true));
        }
        assertTrue(Files.size(original) > 0);
    }
}
