package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Split GGUF files (llama.cpp's gguf-split format) written and read by lora4j: the same tensors
 * and metadata as the unsplit file, the same logits, found from any shard, refused with the file
 * named when a shard is missing or inconsistent, and loaded by llama.cpp from the first file.
 */
class GgufSplitTest {
    @TempDir
    Path tmp;

    private static float[] ramp(int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (i % 17 - 8) * scale;
        }
        return v;
    }

    /** A small file of four 32x32 F32 tensors (4 KiB each) and one metadata key. */
    private static GgufWriter small() {
        GgufWriter w = new GgufWriter();
        w.putString("general.name", "split test");
        for (int i = 0; i < 4; i++) {
            w.addF32("t" + i, new int[] {32, 32}, ramp(32 * 32, i + 1));
        }
        return w;
    }

    @Test
    void splitWritesGgufSplitsLayoutAndReadsBackAsOneFile() throws Exception {
        Path out = tmp.resolve("m.gguf");
        List<Path> files = small().writeSplit(out, 9000); // two 4096-byte tensors per shard
        assertEquals(List.of(tmp.resolve("m-00001-of-00002.gguf"), tmp.resolve("m-00002-of-00002.gguf")), files);
        assertFalse(Files.exists(out));
        try (GgufFile first = GgufFile.open(files.get(0)); GgufFile second = GgufFile.open(files.get(1))) {
            assertEquals(GgufValue.u16(0), first.metadata().get(GgufSplit.NO));
            assertEquals(GgufValue.u16(2), first.metadata().get(GgufSplit.COUNT));
            assertEquals(GgufValue.i32(4), first.metadata().get(GgufSplit.TENSORS_COUNT));
            assertEquals("split test", first.string("general.name"));
            assertEquals(List.of("t0", "t1"), List.copyOf(first.tensorNames()));
            assertEquals(GgufValue.u16(1), second.metadata().get(GgufSplit.NO));
            assertFalse(second.has("general.name"), "only the first shard holds the metadata");
            assertEquals(List.of("t2", "t3"), List.copyOf(second.tensorNames()));
        }
        Path whole = tmp.resolve("whole.gguf");
        small().write(whole);
        for (Path given : files) {
            try (GgufFile split = GgufSplit.open(given); GgufFile plain = GgufFile.open(whole)) {
                assertEquals(files, split.files());
                assertEquals(List.copyOf(plain.tensorNames()), List.copyOf(split.tensorNames()));
                for (String t : plain.tensorNames()) {
                    assertEquals(plain.bytes(t), split.bytes(t), t);
                    assertEquals(plain.info(t).type(), split.info(t).type());
                    assertArrayEquals(plain.info(t).shape(), split.info(t).shape());
                }
                assertEquals("split test", split.string("general.name"));
            }
        }
        // a size that holds everything writes the plain file, as llama.cpp's converter does
        assertEquals(List.of(out), small().writeSplit(out, 1 << 20));
        try (GgufFile f = GgufSplit.open(out)) {
            assertFalse(f.has(GgufSplit.COUNT));
            assertEquals(4, f.tensorNames().size());
        }
        // a tensor larger than the size gets a shard of its own
        assertEquals(4, small().writeSplit(tmp.resolve("tiny.gguf"), 100).size());
    }

    @Test
    void missingOrInconsistentShardsAreRefusedNamingTheFile() throws Exception {
        List<Path> files = small().writeSplit(tmp.resolve("m.gguf"), 9000);
        Path second = files.get(1);
        Path saved = tmp.resolve("saved.gguf");
        Files.move(second, saved);
        IOException missing = assertThrows(IOException.class, () -> GgufSplit.open(files.get(0)));
        assertTrue(missing.getMessage().contains(second.toString()) && missing.getMessage().contains("shard 2 of 2")
                && missing.getMessage().contains("missing"), missing.getMessage());

        // a second shard from a split into 3
        writeShard(second, 1, 3, 4, "t2", "t3");
        IOException count = assertThrows(IOException.class, () -> GgufSplit.open(files.get(0)));
        assertTrue(count.getMessage().startsWith(second.toString()) && count.getMessage().contains("split.count 3"),
                count.getMessage());

        writeShard(second, 1, 2, 4, "t1", "t3");
        IOException duplicate = assertThrows(IOException.class, () -> GgufSplit.open(files.get(0)));
        assertTrue(duplicate.getMessage().startsWith(second.toString()) && duplicate.getMessage().contains("tensor t1")
                && duplicate.getMessage().contains(files.get(0).toString()), duplicate.getMessage());

        writeShard(second, 1, 2, 4, "t2");
        IOException total = assertThrows(IOException.class, () -> GgufSplit.open(second));
        assertTrue(total.getMessage().startsWith(files.get(0).toString()) && total.getMessage().contains("split.tensors.count is 4")
                && total.getMessage().contains("hold 3"), total.getMessage());

        writeShard(second, 0, 2, 4, "t2", "t3");
        IOException no = assertThrows(IOException.class, () -> GgufSplit.open(second));
        assertTrue(no.getMessage().contains("split.no 0") && no.getMessage().contains("shard 2 of 2"), no.getMessage());

        Files.move(saved, second, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Path renamed = tmp.resolve("renamed.gguf");
        Files.copy(files.get(0), renamed);
        IOException name = assertThrows(IOException.class, () -> GgufSplit.open(renamed));
        assertTrue(name.getMessage().contains("PREFIX-NNNNN-of-NNNNN.gguf"), name.getMessage());
        try (GgufFile ok = GgufSplit.open(files.get(0))) {
            assertEquals(4, ok.tensorNames().size());
        }
    }

    /** A shard file with the given split keys and tensors (each like small()'s). */
    private static void writeShard(Path path, int no, int count, int total, String... tensors) throws IOException {
        GgufWriter w = new GgufWriter();
        w.put(GgufSplit.NO, GgufValue.u16(no));
        w.put(GgufSplit.COUNT, GgufValue.u16(count));
        w.put(GgufSplit.TENSORS_COUNT, GgufValue.i32(total));
        for (String t : tensors) {
            w.addF32(t, new int[] {32, 32}, ramp(32 * 32, 1));
        }
        w.write(path);
    }

    @Test
    @Tag("llama-cpp")
    void splitModelExportLoadsInLora4jAndLlamaCppAsTheUnsplitOne() throws Exception {
        Path hf = GgufTesting.fixture("stories260K/hf");
        LlamaModel model = LlamaModel.load(hf);
        Path whole = tmp.resolve("stories.gguf");
        GgufExport.model(model, hf, GgmlType.F32, whole);
        Path out = tmp.resolve("split/stories.gguf");
        List<Path> files = GgufExport.model(model, hf, GgmlType.F32, out, 300_000);
        assertEquals(4, files.size(), files.toString());
        assertEquals(tmp.resolve("split/stories-00001-of-00004.gguf"), files.get(0));
        try (GgufFile split = GgufSplit.open(files.get(2)); GgufFile plain = GgufFile.open(whole)) {
            assertEquals(List.copyOf(plain.tensorNames()), List.copyOf(split.tensorNames()));
            for (String t : plain.tensorNames()) {
                assertEquals(plain.bytes(t), split.bytes(t), t);
            }
            Map<String, GgufValue> meta = new java.util.LinkedHashMap<>(split.metadata());
            meta.keySet().removeAll(List.of(GgufSplit.NO, GgufSplit.COUNT, GgufSplit.TENSORS_COUNT));
            assertEquals(plain.metadata().keySet(), meta.keySet());
        }
        int[] prompt = {1, 403, 407, 261, 378};
        GgufModel fromSplit = GgufModel.load(files.get(files.size() - 1));
        double[] expected = GgufTesting.logSoftmaxLast(GgufModel.load(whole).model(), prompt);
        GgufTesting.assertClose("split vs unsplit GGUF in lora4j", expected,
                GgufTesting.logSoftmaxLast(fromSplit.model(), prompt), 0);
        assertArrayEquals(GgufModel.load(whole).tokenizer().encode("Once upon a time", true),
                fromSplit.tokenizer().encode("Once upon a time", true));

        LlamaCpp.require();
        int[] expectedIds = new Generator(model).maxNewTokens(50).generate(prompt);
        JsonNode r = LlamaCpp.check(files.get(0), "--prompt-ids", GgufTesting.csv(prompt), "--n", "50", "--ignore-eos",
                "--logits");
        assertArrayEquals(expectedIds, LlamaCpp.ints(r.get("ids")), "llama.cpp on the split export");
        double d = GgufTesting.assertClose("lora4j vs llama.cpp on the split export", GgufTesting.logSoftmaxLast(model,
                prompt), LlamaCpp.doubles(r.get("logprobs_last_prompt_position")), 1e-4);
        System.out.printf("stories260K split into %d shards: llama.cpp loads it from the first file, 50 ids identical, "
                + "max |log-prob diff| %.3g%n", files.size(), d);
    }
}
