package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.lora.LoraAdapter;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MergeCommandTest {

    /** A PEFT adapter on arith-tiny whose B is non-zero, so that merging changes the weights. */
    static Path writeAdapter(Path dir, LoraConfig config) {
        LlamaModel model = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        LoraModel lora = LoraModel.wrap(model, config);
        SplittableRandom rng = new SplittableRandom(7);
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll) {
                LoraAdapter ad = ll.adapter(LoraModel.DEFAULT_ADAPTER);
                float[] b = ad.b().data();
                for (int i = 0; i < b.length; i++) {
                    b[i] = (float) (rng.nextDouble() - 0.5) * 0.2f;
                }
            }
        }
        lora.saveAdapter(dir);
        return dir;
    }

    private static Map<String, Tensor> expectedMerge(Path adapter) {
        LlamaModel base = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        return LoraModel.load(base, adapter).mergeAndUnload().allTensors();
    }

    /** Issue 14's command sequence: quantize, an adapter on every layer and the head, merge; the head's update survives. */
    @Test
    void mergingIntoAFourBitTiedBaseKeepsTheHeadsUpdateAndChecksTheWrittenFolder(@TempDir Path tmp) throws Exception {
        Path q4 = tmp.resolve("q4");
        assertEquals(0, CliRun.of("quantize", CliRun.ARITH_TINY.toString(), q4.toString(), "-q").exitCode());
        Path adapter = writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(4).alpha(8).targets(Target.ALL));
        Path out = tmp.resolve("merged");
        CliRun run = CliRun.of("merge", q4.toString(), "--adapter", adapter.toString(), "--out", out.toString(), "-q");
        assertEquals(0, run.exitCode(), run::toString);
        assertTrue(run.out().contains("check: loss on 16 tokens") && run.out().contains("(tolerance"), run::toString);
        assertTrue(run.out().contains("generation_config.json"), run::toString);
        LlamaModel merged = ModelLoader.load(out, ModelLoader.Options.defaults());
        assertFalse(merged.config().tieWordEmbeddings(), "the head's update needs its own lm_head.weight");
        assertEquals(794_240L + 436 * 128, merged.baseParameterCount(), "the untied head adds vocab x hidden");
    }

    @Test
    void mergedFolderLoadsBackWithMergeAndUnloadsWeights(@TempDir Path tmp) throws Exception {
        Path adapter = writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(4).alpha(16).targets(Target.QUERY, Target.VALUE,
                Target.MLP));
        Path out = tmp.resolve("merged");
        CliRun run = CliRun.of("merge", "--model", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(),
                "--out", out.toString(), "--dtype", "f32");
        assertEquals(0, run.exitCode(), run::toString);
        assertTrue(run.out().contains("794,240 parameters as float32"), run::toString);
        assertTrue(run.out().contains("tokenizer.json, tokenizer_config.json"), run::toString);
        assertTrue(run.out().contains("check: loss on 16 tokens"), run::toString);
        assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")));
        assertEquals(Files.readString(CliRun.ARITH_TINY.resolve("tokenizer.json")), Files.readString(out.resolve("tokenizer.json")));

        LlamaModel reloaded = ModelLoader.load(out, ModelLoader.Options.defaults());
        assertEquals("float32", reloaded.config().torchDtype());
        Map<String, Tensor> expected = expectedMerge(adapter);
        Map<String, Tensor> actual = reloaded.allTensors();
        assertEquals(expected.keySet(), actual.keySet());
        LlamaModel base = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        for (String name : expected.keySet()) {
            assertArrayEquals(expected.get(name).toFloatArray(), actual.get(name).toFloatArray(), name);
        }
        // the adapter did change the adapted weights (and only those)
        String q = "model.layers.0.self_attn.q_proj.weight";
        assertFalse(java.util.Arrays.equals(base.allTensors().get(q).toFloatArray(), actual.get(q).toFloatArray()));
        String k = "model.layers.0.self_attn.k_proj.weight";
        assertArrayEquals(base.allTensors().get(k).toFloatArray(), actual.get(k).toFloatArray());
    }

    @Test
    void defaultDtypeIsTheBasesAndOutMustBeEmptyUnlessForced(@TempDir Path tmp) throws Exception {
        Path adapter = writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(2).targets(Target.QUERY));
        Path out = tmp.resolve("merged");
        CliRun run = CliRun.of("merge", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(), "-o", out.toString());
        assertEquals(0, run.exitCode(), run::toString);
        try (SafetensorsFile f = SafetensorsFile.open(out.resolve("model.safetensors"))) {
            assertEquals(DType.BF16, f.info("model.layers.0.self_attn.q_proj.weight").dtype());
        }
        assertEquals("bfloat16", ModelLoader.load(out, ModelLoader.Options.defaults()).config().torchDtype());

        CliRun again = CliRun.of("merge", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(), "-o", out.toString());
        assertEquals(2, again.exitCode(), again::toString);
        assertTrue(again.err().contains("--out") && again.err().contains("--force"), again::toString);

        Files.writeString(out.resolve("model-00002-of-00002.safetensors"), "stale shard");
        CliRun forced = CliRun.of("merge", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(), "-o", out.toString(),
                "--force", "--dtype", "f16");
        assertEquals(0, forced.exitCode(), forced::toString);
        assertFalse(Files.exists(out.resolve("model-00002-of-00002.safetensors")));
        try (SafetensorsFile f = SafetensorsFile.open(out.resolve("model.safetensors"))) {
            assertEquals(DType.F16, f.info("model.layers.0.self_attn.q_proj.weight").dtype());
        }
    }

    @Test
    void badInputsNameTheOption(@TempDir Path tmp) throws Exception {
        CliRun noAdapter = CliRun.of("merge", CliRun.ARITH_TINY.toString(), "--out", tmp.resolve("m").toString());
        assertEquals(2, noAdapter.exitCode(), noAdapter::toString);
        assertTrue(noAdapter.err().contains("--adapter"), noAdapter::toString);

        CliRun missingAdapter = CliRun.of("merge", CliRun.ARITH_TINY.toString(), "--adapter", tmp.resolve("nope").toString(),
                "--out", tmp.resolve("m").toString());
        assertEquals(2, missingAdapter.exitCode(), missingAdapter::toString);
        assertTrue(missingAdapter.err().contains("--adapter") && missingAdapter.err().contains("nope"), missingAdapter::toString);

        Path adapter = writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(2).targets(Target.QUERY));
        CliRun noOut = CliRun.of("merge", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString());
        assertEquals(2, noOut.exitCode(), noOut::toString);
        assertTrue(noOut.err().contains("--out"), noOut::toString);

        CliRun missingModel = CliRun.of("merge", tmp.resolve("no-model").toString(), "--adapter", adapter.toString(), "--out",
                tmp.resolve("m").toString());
        assertEquals(2, missingModel.exitCode(), missingModel::toString);
        assertTrue(missingModel.err().contains("MODEL") && missingModel.err().contains("no-model"), missingModel::toString);

        CliRun dtype = CliRun.of("merge", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(), "--out",
                tmp.resolve("m").toString(), "--dtype", "int8");
        assertEquals(2, dtype.exitCode(), dtype::toString);
        assertTrue(dtype.err().contains("--dtype") && dtype.err().contains("int8"), dtype::toString);

        assertFalse(Files.exists(tmp.resolve("m")));
    }

    @Test
    void peftGoldenAdapterMergesAsPeftDoes(@TempDir Path tmp) throws Exception {
        Path root = Path.of(System.getProperty("lora4j.fixtures", "../../shared/fixtures")).resolve("golden-tiny-llama");
        Assumptions.assumeTrue(Files.isDirectory(root), "shared fixture " + root + " is absent; skipping");
        Path out = tmp.resolve("merged");
        CliRun run = CliRun.of("merge", root.resolve("model").toString(), "--adapter", root.resolve("adapter").toString(),
                "--out", out.toString(), "--dtype", "f32");
        assertEquals(0, run.exitCode(), run::toString);
        LlamaModel merged = ModelLoader.load(out, ModelLoader.Options.defaults());
        int compared = 0;
        try (SafetensorsFile expected = SafetensorsFile.open(root.resolve("expected/merged_weights.safetensors"))) {
            for (String key : expected.names()) {
                float[] want = expected.f32(key).data();
                float[] got = merged.allTensors().get(key).toFloatArray();
                assertEquals(want.length, got.length, key);
                for (int i = 0; i < want.length; i++) {
                    assertEquals(want[i], got[i], 1e-6 + 1e-4 * Math.abs(want[i]), key + "[" + i + "]");
                }
                compared++;
            }
        }
        assertEquals(15, compared);
    }
}
