package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.gguf.GgmlType;
import dev.lora4j.gguf.GgufFile;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExportGgufCommandTest {

    @Test
    void exportsAdapterBaseAndModelfileThenUsesTheGgufAsAModel(@TempDir Path tmp) throws Exception {
        Path adapter = MergeCommandTest.writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(4).alpha(16)
                .targets(Target.QUERY, Target.KEY, Target.VALUE, Target.MLP));
        Path out = tmp.resolve("gguf");
        CliRun run = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(),
                "--out", out.resolve("adapter.gguf").toString(), "--base-out", out.resolve("base.gguf").toString());
        assertEquals(0, run.exitCode(), run::toString);
        String modelfile = Files.readString(out.resolve("Modelfile"));
        assertTrue(modelfile.contains("FROM ./base.gguf\nADAPTER ./adapter.gguf\n"), modelfile);
        assertTrue(modelfile.contains("PARAMETER stop \"</s>\""), modelfile);
        try (GgufFile a = GgufFile.open(out.resolve("adapter.gguf")); GgufFile b = GgufFile.open(out.resolve("base.gguf"))) {
            assertEquals("adapter", a.string("general.type"));
            assertEquals(16.0, a.number("adapter.lora.alpha"), 1e-6);
            assertTrue(a.contains("blk.3.attn_k.weight.lora_b"));
            assertEquals(GgmlType.BF16, b.info("blk.0.attn_q.weight").type(), "arith-tiny stores bf16");
            assertEquals(436, b.array("tokenizer.ggml.tokens", String[].class).length);
        }

        // the GGUF as MODEL: generation equals the Hugging Face folder's, and a merged q8_0 export from it
        String prompt = "What is 12 + 30?";
        CliRun fromFolder = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(),
                "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "12");
        CliRun fromGguf = CliRun.of("generate", out.resolve("base.gguf").toString(), "--adapter", adapter.toString(),
                "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "12");
        assertEquals(0, fromGguf.exitCode(), fromGguf::toString);
        assertEquals(fromFolder.out(), fromGguf.out());

        CliRun merged = CliRun.of("export-gguf", out.resolve("base.gguf").toString(), "--adapter", adapter.toString(),
                "--merge", "--type", "q8_0", "--out", tmp.resolve("merged/merged.gguf").toString());
        assertEquals(0, merged.exitCode(), merged::toString);
        try (GgufFile m = GgufFile.open(tmp.resolve("merged/merged.gguf"))) {
            assertEquals(GgmlType.Q8_0, m.info("blk.0.attn_q.weight").type());
            assertEquals(7, m.integer("general.file_type"));
        }
        assertTrue(Files.readString(tmp.resolve("merged/Modelfile")).contains("FROM ./merged.gguf\n"));
    }

    /** --type q4_k_m: llama.cpp's mix (arith-tiny's rows of 128 and 352 take the 32-element fallbacks). */
    @Test
    void exportsAMergedQ4KMModelThatGenerates(@TempDir Path tmp) throws Exception {
        Path adapter = MergeCommandTest.writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(4).alpha(16)
                .targets(Target.QUERY, Target.VALUE));
        Path file = tmp.resolve("merged.Q4_K_M.gguf");
        CliRun run = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--adapter", adapter.toString(), "--merge",
                "--type", "q4_k_m", "--out", file.toString());
        assertEquals(0, run.exitCode(), run::toString);
        assertTrue(run.out().contains("wrote Q4_K_M model"), run.out());
        try (GgufFile m = GgufFile.open(file)) {
            assertEquals(15, m.integer("general.file_type"));
            assertEquals(GgmlType.Q8_0, m.info("token_embd.weight").type(), "tied output, rows of 128: Q8_0");
            assertEquals(GgmlType.Q5_0, m.info("blk.0.attn_q.weight").type(), "Q4_K on rows of 128 falls back to Q5_0");
            assertEquals(GgmlType.Q5_0, m.info("blk.0.ffn_down.weight").type());
            assertEquals(GgmlType.Q8_0, m.info("blk.3.ffn_down.weight").type(), "use_more_bits: Q6_K, falls back to Q8_0");
            assertEquals(GgmlType.F32, m.info("blk.0.attn_norm.weight").type());
        }
        CliRun generate = CliRun.of("generate", file.toString(), "--prompt", "What is 12 + 30?", "--temperature", "0",
                "--max-new-tokens", "4");
        assertEquals(0, generate.exitCode(), generate::toString);
        CliRun bad = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--type", "q3_k_s", "--out",
                tmp.resolve("x.gguf").toString());
        assertEquals(2, bad.exitCode(), bad::toString);
        assertTrue(bad.err().contains("q4_k_m"), bad.err());
    }

    @Test
    void refusesWhatGgufCannotRepresent(@TempDir Path tmp) throws Exception {
        Path head = MergeCommandTest.writeAdapter(tmp.resolve("head"), LoraConfig.rank(2).alpha(4).targets(Target.ALL));
        CliRun tied = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--adapter", head.toString(), "--out",
                tmp.resolve("a.gguf").toString());
        assertEquals(1, tied.exitCode(), tied::toString);
        assertTrue(tied.err().contains("tied to the embedding"), tied::toString);
        CliRun mergedHead = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--adapter", head.toString(), "--merge",
                "--out", tmp.resolve("merged-head.gguf").toString());
        assertEquals(0, mergedHead.exitCode(), mergedHead::toString);
        try (GgufFile m = GgufFile.open(tmp.resolve("merged-head.gguf"))) {
            assertTrue(m.contains("output.weight"), "the merged lm_head is untied from the embedding");
        }

        Path dora = MergeCommandTest.writeAdapter(tmp.resolve("dora"), LoraConfig.rank(2).alpha(4).targets(Target.QUERY));
        Path config = dora.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"use_dora\" : false", "\"use_dora\" : true")
                .replace("\"use_dora\": false", "\"use_dora\": true"));
        CliRun doraRun = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--adapter", dora.toString(), "--out",
                tmp.resolve("d.gguf").toString());
        assertEquals(2, doraRun.exitCode(), doraRun::toString);
        assertTrue(doraRun.err().contains("DoRA"), doraRun::toString);

        CliRun notGguf = CliRun.of("export-gguf", config.toString(), "--out", tmp.resolve("x.gguf").toString());
        assertEquals(2, notGguf.exitCode(), notGguf::toString);
        assertTrue(notGguf.err().contains("not a GGUF model"), notGguf::toString);
    }

    @Test
    void splitMaxSizeWritesShardsThatLoadFromAnyShard(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("split/model.gguf");
        CliRun run = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--type", "f32", "--split-max-size", "200K",
                "--out", out.toString());
        assertEquals(0, run.exitCode(), run::toString);
        java.util.List<Path> shards;
        try (var files = Files.list(tmp.resolve("split"))) {
            shards = files.filter(p -> p.toString().endsWith(".gguf")).sorted().toList();
        }
        assertTrue(shards.size() > 1, shards.toString());
        int n = shards.size();
        assertEquals(tmp.resolve(String.format("split/model-00001-of-%05d.gguf", n)), shards.get(0));
        assertTrue(run.out().contains(n + " shards") && run.out().contains("no Modelfile for a split model"), run::toString);
        String prompt = "What is 12 + 30?";
        CliRun fromFolder = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "--prompt", prompt, "--temperature", "0",
                "--max-new-tokens", "8");
        CliRun fromShard = CliRun.of("generate", shards.get(n - 1).toString(), "--prompt", prompt, "--temperature", "0",
                "--max-new-tokens", "8");
        assertEquals(0, fromShard.exitCode(), fromShard::toString);
        assertEquals(fromFolder.out(), fromShard.out());

        CliRun bad = CliRun.of("export-gguf", CliRun.ARITH_TINY.toString(), "--split-max-size", "2X", "--out",
                tmp.resolve("x.gguf").toString());
        assertEquals(2, bad.exitCode(), bad::toString);
        assertTrue(bad.err().contains("not a split size"), bad::toString);
    }
}
