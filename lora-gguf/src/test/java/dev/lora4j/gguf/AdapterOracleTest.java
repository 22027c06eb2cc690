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
}
