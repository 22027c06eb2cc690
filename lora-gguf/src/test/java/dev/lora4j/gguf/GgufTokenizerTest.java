package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tokenizers through GGUF metadata and back (SentencePiece Llama-2, byte-level GPT-2 and Llama-3),
 * checked on llama.cpp's tokenizer test vectors, and tokenized by llama.cpp itself.
 */
class GgufTokenizerTest {
    @TempDir
    static Path tmp;
    /** Loaded tokenizers and their metadata-only GGUF, shared by the tests (Llama-3's takes seconds to load). */
    private static final java.util.Map<String, Object[]> CACHE = new java.util.HashMap<>();

    private static synchronized HfTokenizer original(String tokenizer) throws Exception {
        return (HfTokenizer) cached(tokenizer)[0];
    }

    private static synchronized Path metadataOnly(String tokenizer) throws Exception {
        return (Path) cached(tokenizer)[1];
    }

    private static Object[] cached(String tokenizer) throws Exception {
        Object[] c = CACHE.get(tokenizer);
        if (c == null) {
            Path folder = GgufTesting.fixture("tokenizers/" + tokenizer);
            HfTokenizer hf = HfTokenizer.load(folder);
            GgufWriter w = new GgufWriter();
            GgufTokenizer.write(w, folder, hf.vocabSize());
            Path file = tmp.resolve(tokenizer + "-tokenizer.gguf");
            w.write(file);
            c = new Object[] {hf, file};
            CACHE.put(tokenizer, c);
        }
        return c;
    }

    private static List<String> texts(Path vectors, String name) throws Exception {
        String all = Files.readString(vectors.resolve(name + ".gguf.inp"), StandardCharsets.UTF_8);
        // the file ends with a separator
        List<String> texts = Arrays.asList(all.split("\n__ggml_vocab_test__\n", -1));
        return texts.get(texts.size() - 1).isEmpty() ? texts.subList(0, texts.size() - 1) : texts;
    }

    private static int[][] ids(Path vectors, String name) throws Exception {
        return Files.readAllLines(vectors.resolve(name + ".gguf.out")).stream()
                .map(l -> l.isBlank() ? new int[0] : Arrays.stream(l.trim().split(" ")).mapToInt(Integer::parseInt).toArray())
                .toArray(int[][]::new);
    }

    @ParameterizedTest
    @CsvSource({"llama2, ggml-vocab-llama-spm, llama", "gpt2, ggml-vocab-gpt-2, gpt2", "llama3, ggml-vocab-llama-bpe, gpt2"})
    void roundTripEncodesLlamaCppsVectorsAsHuggingFace(String tokenizer, String vectors, String model) throws Exception {
        Path dir = GgufTesting.fixture("tokenizer-vectors/llamacpp");
        HfTokenizer original = original(tokenizer);
        Path file = metadataOnly(tokenizer);
        HfTokenizer back;
        try (GgufFile f = GgufFile.open(file)) {
            assertEquals(model, f.string("tokenizer.ggml.model"));
            back = GgufTokenizer.load(f);
        }
        List<String> texts = texts(dir, vectors);
        int[][] expected = ids(dir, vectors);
        assertEquals(texts.size(), expected.length);
        for (int i = 0; i < texts.size(); i++) {
            String text = texts.get(i);
            assertArrayEquals(expected[i], back.encode(text, false), tokenizer + " vector " + i + ": " + text);
            assertEquals(original.decode(expected[i], false), back.decode(expected[i], false), tokenizer + " decode " + i);
        }
        assertArrayEquals(original.encode("Hello world", true), back.encode("Hello world", true), "special tokens added");
        assertEquals(original.bosId(), back.bosId());
        assertEquals(original.eosId(), back.eosId());
    }

    @Test
    void chatTemplateTravelsAndGivesOllamaItsStopTokens() throws Exception {
        Path folder = GgufTesting.fixture("tokenizers/llama3");
        HfTokenizer original = original("llama3");
        Path file = metadataOnly("llama3");
        String template = new com.fasterxml.jackson.databind.ObjectMapper().readTree(folder.resolve("tokenizer_config.json")
                .toFile()).get("chat_template").asText();
        try (GgufFile f = GgufFile.open(file)) {
            assertEquals(template, f.string("tokenizer.chat_template"));
            assertEquals("llama-bpe", f.string("tokenizer.ggml.pre"));
        }
        Set<String> stops = OllamaModelfile.stopTokens(template, original);
        assertTrue(stops.containsAll(List.of("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")), stops.toString());
        assertFalse(stops.contains("<|begin_of_text|>"), stops.toString());
        String text = OllamaModelfile.text(tmp, tmp.resolve("m.gguf"), null, template, original);
        assertTrue(text.contains("FROM ./m.gguf\n") && text.contains("PARAMETER stop \"<|eot_id|>\"\n"), text);
    }

    /**
     * A one-layer model around each byte-level tokenizer, so that llama.cpp loads the vocabulary and
     * tokenizes with it: the longer test vectors joined into one text, tokenized in one call (the
     * SentencePiece export is tokenized by llama.cpp in Stories260KOracleTest).
     */
    @ParameterizedTest
    @CsvSource({"gpt2, ggml-vocab-gpt-2", "llama3, ggml-vocab-llama-bpe"})
    @Tag("llama-cpp")
    void llamaCppTokenizesWithTheExportedVocabularyAsHuggingFace(String tokenizer, String vectors) throws Exception {
        Path folder = GgufTesting.fixture("tokenizers/" + tokenizer);
        Path dir = GgufTesting.fixture("tokenizer-vectors/llamacpp");
        LlamaCpp.require();
        HfTokenizer hf = original(tokenizer);
        LlamaConfig config = LlamaConfig.builder().vocabSize(hf.vocabSize()).hiddenSize(8).intermediateSize(8)
                .numHiddenLayers(1).numAttentionHeads(2).maxPositionEmbeddings(1024).rmsNormEps(1e-5)
                .tieWordEmbeddings(true).build();
        Path file = tmp.resolve(tokenizer + "-tiny.gguf");
        GgufExport.model(LlamaModel.initialize(config, 1), folder, GgmlType.F16, file);
        StringBuilder joined = new StringBuilder();
        for (String text : texts(dir, vectors)) {
            if (text.length() >= 12 && text.length() < 200) {
                joined.append(joined.length() == 0 ? "" : "\n").append(text);
            }
        }
        String text = joined.toString();
        JsonNode r = LlamaCpp.check(file, "--prompt", text, "--no-bos", "--n", "1", "--ctx", "1024");
        int[] expected = hf.encode(text, false);
        assertTrue(expected.length > 50, "a long text: " + expected.length + " tokens");
        assertArrayEquals(expected, LlamaCpp.ints(r.get("prompt_ids")), tokenizer + ": " + text);
    }
}
