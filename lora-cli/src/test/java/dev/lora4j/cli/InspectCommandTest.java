package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InspectCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static JsonNode json(String... args) throws Exception {
        String[] all = new String[args.length + 1];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "--json";
        CliRun run = CliRun.of(all);
        assertEquals(0, run.exitCode(), run::toString);
        return JSON.readTree(run.out());
    }

    @Test
    void llama2_7bWithTheDefaultsHasTheKnownCounts() throws Exception {
        // all-linear at r=8 on Llama 2 7B: 32 layers x 8 x (4 x (4096 + 4096) + 2 x (4096 + 11008) + (11008 + 4096))
        CliRun run = CliRun.of("inspect", "llama2-7b");
        assertEquals(0, run.exitCode(), run::toString);
        assertTrue(run.out().contains("19,988,480"), run::toString);
        assertTrue(run.out().contains("6,738,415,616"), run::toString);
        assertTrue(run.out().contains("rank 8, alpha 16 (scaling 2), dropout 0"), run::toString);
        JsonNode params = json("inspect", "llama2-7b").get("parameters");
        assertEquals(19_988_480L, params.get("trainable").asLong());
        assertEquals(6_738_415_616L, params.get("base").asLong());
        assertEquals(6_758_404_096L, params.get("total").asLong());
        // q_proj and v_proj at r=8 (LitGPT's old CLI default): 32 layers x 2 x 8 x (4096 + 4096)
        assertEquals(4_194_304L, json("inspect", "llama2-7b", "--targets", "query,value").at("/parameters/trainable")
                .asLong());
    }

    @Test
    void theCommandLineAndTheLibraryShareOneSetOfDefaults() throws Exception {
        // issue 14: `inspect llama2-7b -r 64` reported alpha 16 on q_proj/v_proj, LoraConfig.rank(64) alpha 128 on seven modules
        JsonNode lora = json("inspect", "llama2-7b", "-r", "64").get("lora");
        dev.lora4j.lora.LoraConfig library = dev.lora4j.lora.LoraConfig.rank(64);
        assertEquals(library.alpha(), lora.get("alpha").asDouble());
        assertEquals(library.dropout(), lora.get("dropout").asDouble());
        List<String> modules = new java.util.ArrayList<>();
        lora.get("target_modules").forEach(n -> modules.add(n.asText()));
        assertEquals(library.targetModules(), modules.stream().sorted().toList());
        assertEquals(dev.lora4j.lora.LoraModel.count(dev.lora4j.model.LlamaConfig.llama2_7b(), library).trainable(),
                json("inspect", "llama2-7b", "-r", "64").at("/parameters/trainable").asLong());
    }

    @Test
    void anUnknownTargetListsTheValidNames() {
        CliRun run = CliRun.of("inspect", "llama2-7b", "--targets", "qproj");
        assertEquals(2, run.exitCode(), run::toString);
        assertTrue(run.err().contains("'qproj' is not a LoRA target; valid names are presets and groups: all, all-linear, "
                + "attention, head, key, mlp, projection, query, value; module names: dense, dense_4h_to_h, dense_h_to_4h, "
                + "down_proj, fc1, fc2, gate_proj, gate_up_proj, k_proj, lm_head, o_proj, q_proj, qkv_proj, query_key_value, "
                + "up_proj, v_proj"), run::toString);
    }

    @Test
    void targetsAllIncludesTheMlpAndTheHead() throws Exception {
        CliRun run = CliRun.of("inspect", "llama2-7b", "--rank", "8", "--targets", "all");
        assertEquals(0, run.exitCode(), run::toString);
        assertTrue(run.out().contains("20,277,248"), run::toString);
        // a given --targets replaces the default all-linear: mlp alone is 32 x 3 x 8 x (4096 + 11008)
        assertEquals(11_599_872L, json("inspect", "llama2-7b", "--targets", "mlp").at("/parameters/trainable").asLong());
        // LitGPT and Hugging Face names mix; repeats count once
        assertEquals(4_194_304L, json("inspect", "llama2-7b", "--targets", "q_proj,value,query").at("/parameters/trainable")
                .asLong());
        assertEquals(16, json("inspect", "llama2-7b", "-r", "16").at("/lora/rank").asInt());
    }

    @Test
    void presetsHaveThePublishedParameterCounts() throws Exception {
        assertEquals(13_015_864_320L, json("inspect", "llama2-13b").at("/parameters/base").asLong());
        assertEquals(8_030_261_248L, json("inspect", "llama3-8b").at("/parameters/base").asLong());
        assertEquals(7_241_732_096L, json("inspect", "mistral-7b").at("/parameters/base").asLong());
        // the other families: the totals their model cards and safetensors indexes give
        assertEquals(1_418_270_720L, json("inspect", "phi-1_5").at("/parameters/base").asLong());
        assertEquals(6_921_720_704L, json("inspect", "falcon-7b").at("/parameters/base").asLong());
        assertEquals(3_821_079_552L, json("inspect", "phi-3-mini-4k").at("/parameters/base").asLong());
        assertEquals(2_614_341_888L, json("inspect", "gemma-2-2b").at("/parameters/base").asLong());
        assertEquals(999_885_952L, json("inspect", "gemma-3-1b").at("/parameters/base").asLong());
        assertEquals(596_049_920L, json("inspect", "qwen3-0.6b").at("/parameters/base").asLong());
    }

    @Test
    void targetGroupsMapToEachFamilysModules() throws Exception {
        // Phi-3: q/k/v are one qkv_proj [9216, 3072], so --targets query adapts the fused module:
        // 32 layers x 8 x (3072 + 9216)
        JsonNode phi3 = json("inspect", "phi-3-mini-4k", "--targets", "query");
        assertEquals(3_145_728L, phi3.at("/parameters/trainable").asLong());
        assertEquals("[\"qkv_proj\"]", phi3.at("/lora/target_modules").toString());
        // Falcon: all = query_key_value, dense, dense_h_to_4h, dense_4h_to_h and lm_head
        JsonNode falcon = json("inspect", "falcon-7b", "--targets", "all", "--rank", "8");
        assertEquals("[\"dense\",\"dense_4h_to_h\",\"dense_h_to_4h\",\"lm_head\",\"query_key_value\"]",
                falcon.at("/lora/target_modules").toString());
        assertEquals(32 * 4 + 1, falcon.at("/lora/adapted_modules").asInt());
        // phi-1.5's MLP is fc1 and fc2
        assertEquals("[\"fc1\",\"fc2\"]", json("inspect", "phi-1_5", "--targets", "mlp").at("/lora/target_modules").toString());
    }

    @Test
    void modelFolderAndConfigFileAgreeWithTheLoadedModel() throws Exception {
        JsonNode folder = json("inspect", CliRun.ARITH_TINY.toString(), "--targets", "all", "--rank", "4");
        assertEquals(794_240L, folder.at("/parameters/base").asLong());
        assertEquals(4, folder.at("/model/layers").asInt());
        JsonNode file = json("inspect", CliRun.ARITH_TINY.resolve("config.json").toString(), "--targets", "all", "--rank", "4");
        assertEquals(folder.get("parameters"), file.get("parameters"));
        // the count from the config alone equals what wrapping the real model gives
        LlamaModel model = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(4).targets(Target.ALL));
        assertEquals(lora.trainableParameterCount(), folder.at("/parameters/trainable").asLong());
        assertEquals(model.baseParameterCount(), folder.at("/parameters/base").asLong());
    }

    @Test
    void adapterConfigReplacesTheLoraOptions(@TempDir Path tmp) throws Exception {
        LlamaModel model = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(2).targets(Target.MLP));
        lora.saveAdapter(tmp.resolve("adapter"));
        JsonNode report = json("inspect", CliRun.ARITH_TINY.toString(), "--adapter", tmp.resolve("adapter").toString());
        assertEquals(lora.trainableParameterCount(), report.at("/parameters/trainable").asLong());
        assertEquals(2, report.at("/lora/rank").asInt());
    }

    @Test
    void badValuesAreUsageErrorsNamingTheOption(@TempDir Path tmp) throws Exception {
        CliRun rank = CliRun.of("inspect", "llama2-7b", "--rank", "0");
        assertEquals(2, rank.exitCode(), rank::toString);
        assertTrue(rank.err().contains("--rank") && rank.err().contains("0"), rank::toString);

        CliRun notInt = CliRun.of("inspect", "llama2-7b", "--rank", "eight");
        assertEquals(2, notInt.exitCode(), notInt::toString);
        assertTrue(notInt.err().contains("--rank") && notInt.err().contains("eight"), notInt::toString);

        CliRun target = CliRun.of("inspect", "llama2-7b", "--targets", "query,attn");
        assertEquals(2, target.exitCode(), target::toString);
        assertTrue(target.err().contains("--targets") && target.err().contains("'attn' is not a LoRA target"),
                target::toString);

        CliRun dropout = CliRun.of("inspect", "llama2-7b", "--dropout", "1.5");
        assertEquals(2, dropout.exitCode(), dropout::toString);
        assertTrue(dropout.err().contains("--dropout"), dropout::toString);

        CliRun missing = CliRun.of("inspect", tmp.resolve("no-such-model").toString());
        assertEquals(2, missing.exitCode(), missing::toString);
        assertTrue(missing.err().contains("MODEL") && missing.err().contains("no-such-model")
                && missing.err().contains("llama2-7b"), missing::toString);
        assertFalse(missing.err().contains("\tat "), missing::toString);
        assertTrue(missing.out().isEmpty(), missing::toString);
    }

    @Test
    void aBrokenConfigFailsWithOneLineNamingTheFile(@TempDir Path tmp) throws Exception {
        Path config = tmp.resolve("config.json");
        Files.writeString(config, "{\"model_type\": \"llama\", \"hidden_size\": 64}");
        CliRun run = CliRun.of("inspect", config.toString());
        assertEquals(1, run.exitCode(), run::toString);
        assertTrue(run.err().startsWith("lora4j inspect: ") && run.err().contains(config.toString()), run::toString);
        assertFalse(run.err().contains("\tat "), run::toString);

        CliRun verbose = CliRun.of("inspect", config.toString(), "--verbose");
        assertEquals(1, verbose.exitCode(), verbose::toString);
        assertTrue(verbose.err().contains("\tat "), verbose::toString);
    }

    @Test
    void configWithBillionsOfLayersIsRefusedByName(@TempDir Path dir) throws Exception {
        Path config = dir.resolve("config.json");
        Files.writeString(config, "{\"model_type\":\"llama\",\"vocab_size\":32000,\"hidden_size\":64,\"intermediate_size\":128,"
                + "\"num_hidden_layers\":2147483647,\"num_attention_heads\":4,\"max_position_embeddings\":2147483647,"
                + "\"rms_norm_eps\":1e-5}");
        CliRun run = CliRun.of("inspect", dir.toString());
        assertTrue(run.exitCode() != 0, run::toString);
        assertTrue(run.err().contains(config + ": num_hidden_layers is 2147483647, above lora4j's bound of 1024"), run::toString);
    }

    @Test
    void printsTheMemoryPlanOfADefaultTrainingShape() throws Exception {
        CliRun run = CliRun.of("inspect", "llama2-7b");
        assertEquals(0, run.exitCode(), run::toString);
        for (String row : List.of("micro-batch 1 x 512 tokens, adamw", "base weights (mapped)", "LoRA adapters",
                "optimizer state", "activations + grads", "predicted peak heap", "predicted peak RSS")) {
            assertTrue(run.out().contains(row), row + " missing:\n" + run);
        }
        // the JSON figures are the library's plan from the config (llama2-7b is float16: memory-mapped 2-byte weights)
        JsonNode plan = json("inspect", "llama2-7b", "--micro-batch-size", "2", "--seq-length", "1024",
                "--activation-checkpointing").get("memory_plan");
        dev.lora4j.lora.MemoryPlan library = dev.lora4j.lora.MemoryPlan.of(dev.lora4j.model.LlamaConfig.llama2_7b(),
                LoraConfig.defaults(),
                dev.lora4j.lora.MemoryPlan.Weights.BF16_MAPPED, new dev.lora4j.lora.MemoryPlan.Shape(2, 1024,
                        dev.lora4j.lora.MemoryPlan.Optimizer.ADAMW, true, plan.get("threads").asInt()));
        assertEquals(1024, plan.get("sequence_length").asInt());
        assertTrue(plan.get("activation_checkpointing").asBoolean());
        assertEquals(library.predictedPeakHeap(), plan.get("predicted_peak_heap_bytes").asLong());
        assertEquals(library.predictedRss(), plan.get("predicted_rss_bytes").asLong());
        assertEquals(2L * 6_738_415_616L - 2L * 4096 * 65 + 4L * 4096 * 65,
                plan.at("/rows_bytes/base weights (mapped)").asLong() + plan.at("/rows_bytes/base weights (heap)").asLong(),
                "16-bit matrices mapped, the 65 norm vectors copied to F32");
        // QLoRA: the projections in 4 bits shrink the heap weights below the 16-bit mapped ones
        JsonNode qlora = json("inspect", "llama2-7b", "--quantize", "nf4-dq").get("memory_plan");
        assertTrue(qlora.at("/rows_bytes/base weights (mapped)").asLong() < 2L * 6_738_415_616L / 5, qlora::toString);
    }
}
