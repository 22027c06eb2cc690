package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * stories260K exported by lora4j and run by llama.cpp itself: the same greedy ids and the same
 * log-probabilities as lora4j computes, and llama.cpp's tokenizer reading lora4j's vocabulary
 * splits text as Hugging Face's does.
 */
@Tag("llama-cpp")
class Stories260KOracleTest {
    @TempDir
    static Path tmp;
    private static Path hf;
    private static LlamaModel model;
    private static Path f32;

    @BeforeAll
    static void export() {
        hf = GgufTesting.fixture("stories260K/hf");
        LlamaCpp.require();
        model = LlamaModel.load(hf);
        f32 = tmp.resolve("stories260K-f32.gguf");
        GgufExport.model(model, hf, GgmlType.F32, f32);
    }

    @Test
    void f32ExportGivesLora4jsGreedyIdsAndLogProbs() throws Exception {
        JsonNode r = LlamaCpp.check(f32, "--n", "200", "--ignore-eos", "--logits");
        int[] expected = new Generator(model).maxNewTokens(200).generate(new int[] {1});
        assertArrayEquals(expected, LlamaCpp.ints(r.get("ids")), "greedy ids from BOS");
        double max = GgufTesting.assertClose("log-softmax after BOS", GgufTesting.logSoftmaxLast(model, new int[] {1}),
                LlamaCpp.doubles(r.get("logprobs_last_prompt_position")), 1e-4);
        System.out.printf("stories260K F32: 200 ids identical; max |log-prob diff| %.3g%n", max);
    }

    @Test
    void llamaCppTokenizesTextAsHuggingFaceDoes() throws Exception {
        HfTokenizer tokenizer = HfTokenizer.load(hf);
        String text = "Once upon a time, there was a little girl named Lily. She loved to play outside!";
        JsonNode r = LlamaCpp.check(f32, "--prompt", text, "--n", "1");
        assertArrayEquals(tokenizer.encode(text, true), LlamaCpp.ints(r.get("prompt_ids")));
    }
}
