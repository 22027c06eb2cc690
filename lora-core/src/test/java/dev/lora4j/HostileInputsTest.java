package dev.lora4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.autograd.Rope;
import dev.lora4j.data.DatasetException;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.InstructionDatasets;
import dev.lora4j.io.Checkpoint;
import dev.lora4j.lora.AdapterConfigJson;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.testing.TinyModels;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The hostile inputs of issue 13 that once ended in a NullPointerException, a
 * NegativeArraySizeException, an OutOfMemoryError or a hang: each now gives a named error (file,
 * field, bound) or the correct result.
 */
class HostileInputsTest {

    @TempDir
    Path dir;

    // ---------------------------------------------------------------- checkpoints

    @Test
    void shardIndexNamingTheRootIsRefusedByName() throws IOException {
        for (String shard : List.of("/", "", ".", "..", "../x.safetensors", "a/b.safetensors", "C:\\\\x")) {
            Path folder = Files.createDirectories(dir.resolve("m" + Math.abs(shard.hashCode())));
            Files.writeString(folder.resolve("model.safetensors.index.json"),
                    "{\"weight_map\": {\"w\": \"" + shard + "\"}}");
            IOException e = assertThrows(IOException.class, () -> Checkpoint.open(folder), shard);
            assertTrue(e.getMessage().contains("model.safetensors.index.json") && e.getMessage().contains("plain file names"),
                    e.getMessage());
        }
    }

    // ---------------------------------------------------------------- tokenizers

    private static String tokenizerJson(String vocab, String addedTokens, String postProcessor) {
        return "{\"version\":\"1.0\",\"added_tokens\":" + addedTokens + ",\"normalizer\":null,\"pre_tokenizer\":null,"
                + "\"post_processor\":" + postProcessor + ",\"decoder\":null,"
                + "\"model\":{\"type\":\"BPE\",\"vocab\":{" + vocab + "},\"merges\":[\"a b\"]}}";
    }

    private static final String VOCAB = "\"<s>\":0,\"a\":1,\"b\":2,\"ab\":3";

    @Test
    void templateRepeatingTheSequenceRepeatsIt() {
        // tokenizers' TemplateProcessing copies the sequence once per $A item
        String template = "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
                + "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"
                + "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[0],\"tokens\":[\"<s>\"]}}}";
        HfTokenizer tokenizer = HfTokenizer.fromJson(tokenizerJson(VOCAB, "[]", template));
        assertArrayEquals(new int[] {0, 3, 1, 3, 1}, tokenizer.encode("aba", true));
        String bare = "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
                + "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],\"special_tokens\":{}}";
        HfTokenizer twice = HfTokenizer.fromJson(tokenizerJson(VOCAB, "[]", bare));
        assertArrayEquals(new int[] {3, 3}, twice.encode("ab", true));
        assertTrue(twice.bosId().isEmpty() && twice.eosId().isEmpty(), "a repeated $A has no single BOS/EOS edge");
    }

    @Test
    void templateAddingAnIdOutsideTheVocabularyIsRefused() {
        String template = "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<x>\",\"type_id\":0}},"
                + "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"
                + "\"special_tokens\":{\"<x>\":{\"id\":\"<x>\",\"ids\":[99],\"tokens\":[\"<x>\"]}}}";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> HfTokenizer.fromJson(tokenizerJson(VOCAB, "[]", template)));
        assertEquals("tokenizer.json: post_processor adds token id 99, which is not in the vocabulary (ids 0..3)", e.getMessage());
    }

    @Test
    void hugeVocabIdsAreRefusedBeforeAllocating() {
        for (long id : new long[] {Integer.MAX_VALUE, 1_000_000_000L, HfTokenizer.MAX_TOKEN_ID + 1L, 1L << 40}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> HfTokenizer.fromJson(tokenizerJson(VOCAB + ",\"big\":" + id, "[]", "null")));
            assertEquals("tokenizer.json: model.vocab[\"big\"] is " + id + "; ids must be integers in [0, 16777215]"
                    + " (HfTokenizer.MAX_TOKEN_ID)", e.getMessage());
        }
        // the largest allowed id still works (a sparse table of 2^24 entries)
        HfTokenizer sparse = HfTokenizer.fromJson(tokenizerJson(VOCAB + ",\"big\":" + HfTokenizer.MAX_TOKEN_ID, "[]", "null"));
        assertEquals(HfTokenizer.MAX_TOKEN_ID + 1, sparse.vocabSize());
    }

    @Test
    void hugeAddedTokenIdsAreRefusedBeforeAllocating() {
        for (long id : new long[] {Integer.MAX_VALUE, 1_000_000_000L, -1}) {
            String added = "[{\"id\":" + id + ",\"content\":\"<big>\",\"special\":true}]";
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> HfTokenizer.fromJson(tokenizerJson(VOCAB, added, "null")));
            assertEquals("tokenizer.json: added_tokens[0].id is " + id + "; expected an integer in [0, 16777215]"
                    + " (HfTokenizer.MAX_TOKEN_ID)", e.getMessage());
        }
    }

    // ---------------------------------------------------------------- datasets

    @Test
    void jsonlLineOf100MegabytesIsRefusedWithoutReadingItWhole() throws IOException {
        Path file = dir.resolve("huge.jsonl");
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16)) {
            out.write("{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"".getBytes(StandardCharsets.UTF_8));
            byte[] block = new byte[1 << 20];
            Arrays.fill(block, (byte) 'x');
            for (int i = 0; i < 100; i++) {
                out.write(block);
            }
            out.write("\",\"output\":\"b\"}\n".getBytes(StandardCharsets.UTF_8));
        }
        try {
            DatasetException e = assertThrows(DatasetException.class, () -> InstructionDatasets.load(file));
            assertEquals(file + " line 2: the line is longer than 16777216 bytes, the limit for one record"
                    + " (InstructionDatasets.MAX_RECORD_BYTES); a .jsonl file holds one {...} object per line: check that the"
                    + " file has line breaks, or split the record", e.getMessage());
        } finally {
            Files.delete(file);
        }
    }

    @Test
    void jsonlFieldNested5000DeepIsRefusedByName() throws IOException {
        Path file = dir.resolve("deep.jsonl");
        Files.writeString(file, "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"a\",\"output\":\"b\",\"x\":"
                + "[".repeat(5000) + "]".repeat(5000) + "}\n");
        DatasetException e = assertThrows(DatasetException.class, () -> InstructionDatasets.load(file));
        assertTrue(e.getMessage().startsWith(file + " line 2 (record 2): malformed JSON"), e.getMessage());
        assertTrue(e.getMessage().contains("nesting depth") && e.getMessage().contains("128"), e.getMessage());
    }

    @Test
    void jsonlNumberOf2000DigitsIsRefusedByName() throws IOException {
        Path file = dir.resolve("number.jsonl");
        Files.writeString(file, "{\"instruction\":\"a\",\"output\":\"b\",\"n\":" + "7".repeat(2000) + "}\n");
        DatasetException e = assertThrows(DatasetException.class, () -> InstructionDatasets.load(file));
        assertTrue(e.getMessage().startsWith(file + " line 1 (record 1): malformed JSON"), e.getMessage());
        assertTrue(e.getMessage().contains("Number value length") && e.getMessage().contains("100"), e.getMessage());
    }

    @Test
    void deepAndLongValuesInJsonArraysAreRefusedByName() throws IOException {
        Path deep = dir.resolve("deep.json");
        Files.writeString(deep, "[{\"instruction\":" + "[".repeat(5000) + "]".repeat(5000) + ",\"output\":\"b\"}]");
        DatasetException e = assertThrows(DatasetException.class, () -> InstructionDatasets.load(deep));
        assertTrue(e.getMessage().startsWith(deep + " record 1: malformed JSON") && e.getMessage().contains("nesting depth"),
                e.getMessage());
        Path number = dir.resolve("number.json");
        Files.writeString(number, "[{\"instruction\":\"a\",\"output\":\"b\",\"n\":" + "7".repeat(2000) + "}]");
        e = assertThrows(DatasetException.class, () -> InstructionDatasets.load(number));
        assertTrue(e.getMessage().startsWith(number + " record 1: malformed JSON") && e.getMessage().contains("Number value length"),
                e.getMessage());
    }

    @Test
    void jsonlStreamingKeepsLinesRecordsAndUtf8Errors() throws IOException {
        Path file = dir.resolve("ok.jsonl");
        Files.write(file, ("\uFEFF{\"instruction\":\"é\",\"output\":\"b\"}\r\n\n  \n{\"instruction\":\"c\",\"output\":\"d\"}")
                .getBytes(StandardCharsets.UTF_8));
        assertEquals(2, InstructionDatasets.load(file).size());
        Path bad = dir.resolve("bad.jsonl");
        byte[] bytes = "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"\u00ff\",\"output\":\"b\"}\n"
                .getBytes(StandardCharsets.ISO_8859_1);
        Files.write(bad, bytes);
        DatasetException e = assertThrows(DatasetException.class, () -> InstructionDatasets.load(bad));
        assertEquals(bad + ": not valid UTF-8: byte 0xFF at offset 49 (line 2); save the file as UTF-8", e.getMessage());
    }

    // ---------------------------------------------------------------- configs and RoPE

    @Test
    void hugeMaxPositionEmbeddingsSizesRopeByTheSequenceUsed() {
        for (int maxPositions : new int[] {Integer.MAX_VALUE, 200_000_000}) {
            LlamaModel big = LlamaModel.initialize(TinyModels.gqaBuilder().maxPositionEmbeddings(maxPositions).build(), 5);
            LlamaModel small = LlamaModel.initialize(TinyModels.gqa(), 5);
            int[] tokens = TinyModels.tokens(12, 48, 9);
            assertArrayEquals(TinyModels.logits(small, tokens, 2), TinyModels.logits(big, tokens, 2),
                    "the context limit changes no value");
        }
        double[] inv = Rope.inverseFrequencies(8, 10000, null, 1, 1, 1, 0);
        Rope.Table table = new Rope.Table(8, Integer.MAX_VALUE, inv);
        assertEquals(0, table.computedPositions());
        Tensor x = Tensor.zeros(1, 300, 1, 8);
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            Rope.apply(x, table, 0);
        }
        assertEquals(300, table.computedPositions(), "grown to the sequence used, not to max_position_embeddings");
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            Rope.apply(Tensor.zeros(1, 2, 1, 8), table, 400);
        }
        assertEquals(600, table.computedPositions(), "grown by doubling");
    }

    @Test
    void ropeGrownOnDemandEqualsTheFullTable() {
        double[] inv = Rope.inverseFrequencies(8, 10000, null, 1, 1, 1, 0);
        Rope.Table grown = new Rope.Table(8, 4096, inv);
        Rope.Table direct = new Rope.Table(8, 4096, inv);
        Tensor x = Tensor.normal(new java.util.SplittableRandom(3), 0f, 1f, 1, 1000, 2, 8);
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            for (int pos = 0; pos < 1000; pos += 100) {
                Rope.apply(Tensor.zeros(1, 1, 2, 8), grown, pos);
            }
            assertArrayEquals(Rope.apply(x, direct, 0).toFloatArray(), Rope.apply(x, grown, 0).toFloatArray());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Rope.apply(x, grown, 3500));
        assertTrue(e.getMessage().contains("exceeds the table of 4096 positions"), e.getMessage());
    }

    @Test
    void configWithBillionsOfLayersIsRefusedBeforeInspecting() {
        String json = "{\"model_type\":\"llama\",\"vocab_size\":32000,\"hidden_size\":64,\"intermediate_size\":128,"
                + "\"num_hidden_layers\":2147483647,\"num_attention_heads\":4,\"max_position_embeddings\":2048,"
                + "\"rms_norm_eps\":1e-5}";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LlamaConfig.parse(json, "config.json"));
        assertEquals("config.json: num_hidden_layers is 2147483647, above lora4j's bound of 1024 (LlamaConfig.MAX_LAYERS,"
                + " far above any published model); the config is damaged", e.getMessage());
        for (String key : List.of("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads")) {
            String bad = json.replace("2147483647", "2").replaceFirst("\"" + key + "\":\\d+", "\"" + key + "\":2147483647");
            e = assertThrows(IllegalArgumentException.class, () -> LlamaConfig.parse(bad, "config.json"), key);
            assertTrue(e.getMessage().startsWith("config.json: " + key + " is 2147483647, above lora4j's bound"), e.getMessage());
        }
    }

    @Test
    void otherJsonReadersNameTheLimitInsteadOfFailingOnAMissingLocation() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> dev.lora4j.eval.EvaluationReport.fromJson("{\"results\": " + "[".repeat(5000), "report.json"));
        assertTrue(e.getMessage().startsWith("report.json: not valid JSON") && e.getMessage().contains("nesting depth"),
                e.getMessage());
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"chat_template\": " + "[".repeat(5000));
        e = assertThrows(IllegalArgumentException.class, () -> dev.lora4j.tokenizer.ChatTemplate.fromTokenizerConfig(config));
        assertTrue(e.getMessage().startsWith(config + ": not valid JSON") && e.getMessage().contains("nesting depth"),
                e.getMessage());
        Path items = dir.resolve("mc.json");
        Files.writeString(items, "[" + "9".repeat(2000) + "]");
        e = assertThrows(IllegalArgumentException.class, () -> dev.lora4j.eval.MultipleChoiceEvaluation.read(items));
        assertTrue(e.getMessage().startsWith(items + ": not valid JSON") && e.getMessage().contains("Number value length"),
                e.getMessage());
    }

    // ---------------------------------------------------------------- patterns

    private static final String CATASTROPHIC = "(([a-z_]|[a-z_.0-9])+)+X";

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS) // a guard against a hang, not a timing assertion
    void catastrophicTargetPatternMatchesInLinearTime() {
        LoraConfig lora = LoraConfig.defaults().targetPattern(CATASTROPHIC);
        String name = "model.layers.31.self_attn.q_proj_with_a_long_suffix_that_makes_backtracking_explode";
        assertFalse(lora.isTargeted(name));
        assertTrue(lora.isTargeted("model.layers.0.mlp.up_projX"));
        AdapterConfigJson read = AdapterConfigJson.parse("{\"peft_type\":\"LORA\",\"r\":4,\"target_modules\":\""
                + CATASTROPHIC + "\"}", "adapter_config.json");
        assertFalse(read.lora().isTargeted(name));
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS) // a guard against a hang, not a timing assertion
    void catastrophicRankPatternMatchesInLinearTime() {
        Map<String, Integer> ranks = new LinkedHashMap<>();
        ranks.put(CATASTROPHIC, 16);
        ranks.put("q_proj", 4);
        LoraConfig lora = LoraConfig.defaults().rankPattern(ranks);
        String name = "model.layers.31.self_attn.q_proj";
        assertEquals(4, lora.resolve(name).orElseThrow().rank());
        Map<String, Double> alphas = new LinkedHashMap<>();
        alphas.put(CATASTROPHIC, 3.0);
        assertEquals(LoraConfig.defaults().alpha(), LoraConfig.defaults().alphaPattern(alphas)
                .resolve("model.layers.31.self_attn.q_proj_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").map(m -> m.alpha())
                .orElse(LoraConfig.defaults().alpha()));
    }

    @Test
    void savingAnAdapterWhosePatternOrderTheFileCannotKeepIsRefused() {
        Map<String, Integer> ranks = new LinkedHashMap<>();
        ranks.put("q_proj", 2);
        ranks.put("layers\\.0\\.self_attn\\.q_proj", 3); // sorts first in adapter_config.json
        dev.lora4j.lora.LoraModel lora = dev.lora4j.lora.LoraModel.wrap(TinyModels.model(5),
                LoraConfig.rank(4).targets(dev.lora4j.lora.Target.QUERY).rankPattern(ranks));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> lora.saveAdapter(dir.resolve("a")));
        assertTrue(e.getMessage().contains("overlap on module model.layers.0.self_attn.q_proj"), e.getMessage());
        Map<String, Integer> sorted = new LinkedHashMap<>();
        sorted.put("layers\\.0\\.self_attn\\.q_proj", 3);
        sorted.put("q_proj", 2);
        dev.lora4j.lora.LoraModel ok = dev.lora4j.lora.LoraModel.wrap(TinyModels.model(5),
                LoraConfig.rank(4).targets(dev.lora4j.lora.Target.QUERY).rankPattern(sorted));
        ok.saveAdapter(dir.resolve("b"));
        assertEquals(3, dev.lora4j.lora.LoraModel.load(TinyModels.model(5), dir.resolve("b"))
                .config(dev.lora4j.lora.LoraModel.DEFAULT_ADAPTER).resolve("model.layers.0.self_attn.q_proj").orElseThrow().rank());
    }

    @Test
    void patternsKeepPeftSemantics() {
        LoraConfig full = LoraConfig.defaults().targetPattern(".*\\.(q|v)_proj");
        assertTrue(full.isTargeted("model.layers.0.self_attn.q_proj"));
        assertFalse(full.isTargeted("model.layers.0.self_attn.q_proj.extra"), "re.fullmatch, not a prefix match");
        assertFalse(full.isTargeted("q_proj"));
        Map<String, Integer> ranks = new LinkedHashMap<>();
        ranks.put("layers\\.0\\.self_attn\\.q_proj", 2);
        ranks.put("q_proj", 6);
        LoraConfig keyed = LoraConfig.defaults().targetModules("q_proj").rankPattern(ranks);
        assertEquals(2, keyed.resolve("model.layers.0.self_attn.q_proj").orElseThrow().rank(), "first key that matches");
        assertEquals(6, keyed.resolve("model.layers.10.self_attn.q_proj").orElseThrow().rank(),
                "keys match after a dot: layers.10 is not layers.0");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LoraConfig.defaults().targetPattern("(?=q)q_proj"));
        assertTrue(e.getMessage().startsWith("targetPattern must be a valid RE2 regular expression, was '(?=q)q_proj'"),
                e.getMessage());
    }
}
