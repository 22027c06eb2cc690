package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.autograd.Autograd;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoRA adapters exported by lora4j and applied by llama.cpp itself: base + adapter GGUF gives what
 * lora4j computes with the adapter, and the same as the merged GGUF.
 */
@Tag("llama-cpp")
class AdapterOracleTest {
    @TempDir
    Path tmp;

    private static final int[] PROMPT = {1, 17, 42, 5, 77, 30};

    private static String csv(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            sb.append(sb.length() == 0 ? "" : ",").append(id);
        }
        return sb.toString();
    }

    /** The PEFT golden adapter (r 4, alpha 8, every projection and lm_head) on golden-tiny-llama. */
    @Test
    void goldenTinyLlamaAdapterEqualsLora4jAndTheMergedModel() throws Exception {
        Path root = GgufTesting.fixture("golden-tiny-llama");
        LlamaCpp.require();
        Path base = tmp.resolve("base.gguf");
        Path adapter = tmp.resolve("adapter.gguf");
        Path merged = tmp.resolve("merged.gguf");
        Path tokenizer = GgufTesting.characterTokenizer(tmp.resolve("tokenizer"), 96);
        GgufExport.model(LlamaModel.load(root.resolve("model")), tokenizer, GgmlType.F32, base);
        LoraModel lora = LoraModel.load(LlamaModel.load(root.resolve("model")), root.resolve("adapter"));
        GgufExport.adapter(lora, adapter);
        double[] expected = GgufTesting.logSoftmaxLast(lora.model(), PROMPT);
        int[] expectedIds = new Generator(lora.model()).maxNewTokens(20).generate(PROMPT);
        GgufExport.merged(lora, tokenizer, GgmlType.F32, merged);

        JsonNode withAdapter = LlamaCpp.check(base, "--lora", adapter.toString(), "--prompt-ids", csv(PROMPT), "--n", "20",
                "--ignore-eos", "--logits");
        JsonNode fromMerged = LlamaCpp.check(merged, "--prompt-ids", csv(PROMPT), "--n", "20", "--ignore-eos", "--logits");
        double d1 = GgufTesting.assertClose("lora4j vs llama.cpp base + adapter", expected,
                LlamaCpp.doubles(withAdapter.get("logprobs_last_prompt_position")), 1e-4);
        double d2 = GgufTesting.assertClose("llama.cpp base + adapter vs merged", LlamaCpp.doubles(
                fromMerged.get("logprobs_last_prompt_position")), LlamaCpp.doubles(withAdapter.get("logprobs_last_prompt_position")), 1e-4);
        assertArrayEquals(expectedIds, LlamaCpp.ints(withAdapter.get("ids")));
        assertArrayEquals(expectedIds, LlamaCpp.ints(fromMerged.get("ids")));
        System.out.printf("golden-tiny-llama + adapter: 20 ids identical; max |log-prob diff| lora4j vs llama.cpp %.3g, "
                + "adapter vs merged %.3g%n", d1, d2);
    }

    /** Random non-zero B so that the adapter changes the output. */
    private static void randomizeB(LoraModel lora, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).forEach((key, t) -> {
            if (key.contains("lora_B")) {
                float[] d = t.data();
                for (int i = 0; i < d.length; i++) {
                    d[i] = (float) (rng.nextDouble() - 0.5) * 0.2f;
                }
            }
        });
    }

    /**
     * rsLoRA (scaling alpha/√r, folded into adapter.lora.alpha = alpha·√r) and per-module ranks and
     * alphas (scaling folded into lora_b, alpha 0) on stories260K: llama.cpp computes what lora4j does.
     */
    @Test
    void rsLoraAndPerModuleRanksEqualLora4j() throws Exception {
        Path hf = GgufTesting.fixture("stories260K/hf");
        LlamaCpp.require();
        Path base = tmp.resolve("stories.gguf");
        GgufExport.model(LlamaModel.load(hf), hf, GgmlType.F32, base);
        int[] prompt = {1, 403, 407, 261, 378};
        LoraConfig[] configs = {
            LoraConfig.rank(4).alpha(8).useRslora(true).targets(Target.QUERY, Target.KEY, Target.VALUE, Target.MLP),
            LoraConfig.rank(4).alpha(8).targets(Target.QUERY, Target.KEY, Target.PROJECTION, Target.MLP)
                    .rankPattern(Map.of("k_proj", 2)).alphaPattern(Map.of("down_proj", 3))
        };
        for (int c = 0; c < configs.length; c++) {
            LoraModel lora = LoraModel.wrap(LlamaModel.load(hf), configs[c]);
            randomizeB(lora, 7 + c);
            Path adapter = tmp.resolve("adapter" + c + ".gguf");
            GgufExport.adapter(lora, adapter);
            try (GgufFile f = GgufFile.open(adapter)) {
                double alpha = f.number("adapter.lora.alpha");
                assertEquals(c == 0 ? 8 * Math.sqrt(4) : 0.0, alpha, 1e-6);
            }
            double[] expected = GgufTesting.logSoftmaxLast(lora.model(), prompt);
            int[] expectedIds = new Generator(lora.model()).maxNewTokens(30).generate(prompt);
            JsonNode r = LlamaCpp.check(base, "--lora", adapter.toString(), "--prompt-ids", csv(prompt), "--n", "30",
                    "--ignore-eos", "--logits");
            double d = GgufTesting.assertClose("config " + c, expected, LlamaCpp.doubles(r.get("logprobs_last_prompt_position")),
                    1e-4);
            assertArrayEquals(expectedIds, LlamaCpp.ints(r.get("ids")), "config " + c);
            System.out.printf("stories260K adapter %s: 30 ids identical, max |log-prob diff| %.3g%n",
                    c == 0 ? "rsLoRA" : "rank/alpha patterns", d);
        }
    }

    /**
     * The qwen2 row of the architecture table (q/k/v biases, no q/k permutation) and a Mistral
     * config (written as llama): a random model and an adapter on it, exported and run by llama.cpp.
     */
    @Test
    void qwen2AndMistralExportsEqualLora4j() throws Exception {
        Path hf = GgufTesting.fixture("stories260K/hf");
        LlamaCpp.require();
        for (String type : new String[] {"qwen2", "mistral"}) {
            dev.lora4j.model.LlamaConfig config = dev.lora4j.model.LlamaConfig.builder().modelType(type).vocabSize(512)
                    .hiddenSize(64).intermediateSize(96).numHiddenLayers(2).numAttentionHeads(4).numKeyValueHeads(2)
                    .maxPositionEmbeddings(128).rmsNormEps(1e-6).ropeTheta(1e6).tieWordEmbeddings(type.equals("qwen2"))
                    .build();
            SplittableRandom rng = new SplittableRandom(5);
            LlamaModel model = LlamaModel.assemble(config, (name, shape) -> Tensor.normal(rng.split(),
                    name.endsWith("norm.weight") ? 1f : 0f, shape.length == 1 ? 0.2f : (float) (1 / Math.sqrt(shape[shape.length - 1])),
                    shape).name(name));
            Path base = tmp.resolve(type + ".gguf");
            GgufExport.model(model, hf, GgmlType.F32, base);
            try (GgufFile f = GgufFile.open(base)) {
                assertEquals(type.equals("qwen2") ? "qwen2" : "llama", f.string("general.architecture"));
                assertEquals(type.equals("qwen2"), f.contains("blk.0.attn_q.bias"));
            }
            LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(4).alpha(8).targets(Target.QUERY, Target.KEY,
                    Target.VALUE, Target.MLP));
            int[] prompt = {1, 403, 407, 261, 378};
            lora.disableAdapters();
            double[] plain = GgufTesting.logSoftmaxLast(lora.model(), prompt);
            assertArrayEquals(plain, GgufTesting.logSoftmaxLast(GgufModel.load(base).model(), prompt),
                    type + ": the GGUF loads back into the same model");
            lora.enableAdapters();
            randomizeB(lora, 11);
            Path adapter = tmp.resolve(type + "-adapter.gguf");
            GgufExport.adapter(lora, adapter);
            double[] adapted = GgufTesting.logSoftmaxLast(lora.model(), prompt);
            JsonNode r0 = LlamaCpp.check(base, "--prompt-ids", csv(prompt), "--n", "1", "--logits");
            JsonNode r1 = LlamaCpp.check(base, "--lora", adapter.toString(), "--prompt-ids", csv(prompt), "--n", "1",
                    "--logits");
            double d0 = GgufTesting.assertClose(type + " base", plain, LlamaCpp.doubles(r0.get("logprobs_last_prompt_position")),
                    1e-4);
            double d1 = GgufTesting.assertClose(type + " + adapter", adapted,
                    LlamaCpp.doubles(r1.get("logprobs_last_prompt_position")), 1e-4);
            System.out.printf("%s: max |log-prob diff| lora4j vs llama.cpp %.3g (base), %.3g (with adapter)%n", type, d0, d1);
        }
    }
}
