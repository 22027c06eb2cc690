package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.autograd.Autograd;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * lora4j's Q4_K_M export against llama.cpp's own quantizer: {@code llama_model_quantize}
 * (ftype 15 MOSTLY_Q4_K_M, no importance matrix, llama.cpp's type mix) applied to lora4j's F32
 * export of the same model gives the same tensor types and the same bytes, tensor by tensor; and
 * llama.cpp running lora4j's Q4_K_M file generates what lora4j generates from it.
 *
 * <p>The golden models and stories260K have rows of 64–192, so they exercise the 32-element
 * fallbacks (Q5_0, Q8_0, F16); random Llama-shaped models with rows of 256 and 512 and eight
 * layers exercise Q4_K, Q6_K and the per-layer choices for attn_v and ffn_down, tied and untied.
 */
@Tag("llama-cpp")
class Q4KMOracleTest {
    @TempDir
    Path tmp;

    /** Exports {@code model} as F32 and as Q4_K_M and asserts llama.cpp's Q4_K_M of the F32 file equals lora4j's. */
    private Path assertQ4KMEqualsLlamaCpp(String label, LlamaModel model, Path tokenizer) throws Exception {
        LlamaCpp.quantizeTool();
        Path f32 = tmp.resolve(label + "-f32.gguf");
        Path theirs = tmp.resolve(label + "-llama-Q4_K_M.gguf");
        Path ours = tmp.resolve(label + "-Q4_K_M.gguf");
        GgufExport.model(model, tokenizer, GgmlType.F32, f32);
        LlamaCpp.quantize(f32, theirs, GgufFileType.Q4_K_M.llamaFtype(), false);
        GgufExport.model(model, tokenizer, GgufFileType.Q4_K_M, ours);
        Map<GgmlType, Integer> counts = new TreeMap<>();
        try (GgufFile a = GgufFile.open(theirs); GgufFile b = GgufFile.open(ours)) {
            assertEquals(a.tensors().keySet().stream().sorted().toList(), b.tensors().keySet().stream().sorted().toList(),
                    label + ": tensor names");
            for (GgufTensorInfo info : a.tensors().values()) {
                GgufTensorInfo mine = b.info(info.name());
                assertEquals(info.type(), mine.type(), label + ": type of " + info.name());
                assertArrayEquals(info.shape(), mine.shape(), label + ": shape of " + info.name());
                assertEquals(a.bytes(info.name()), b.bytes(info.name()), label + ": bytes of " + info.name() + " ("
                        + info.type() + ")");
                counts.merge(info.type(), 1, Integer::sum);
            }
            assertEquals(15L, ((Number) b.metadata().get("general.file_type").value()).longValue());
        }
        System.out.printf("%s Q4_K_M: %s tensors byte-identical to llama_model_quantize%n", label, counts);
        return ours;
    }

    @ParameterizedTest
    @ValueSource(strings = {"golden-tiny-llama", "golden-qwen3", "golden-gemma2", "golden-gemma3", "golden-phi3", "golden-phi-1_5",
        "golden-falcon", "golden-mistral-swa"})
    void goldenFamilyQ4KMEqualsLlamaCpp(String family) throws Exception {
        Path root = GgufTesting.fixture(family);
        LlamaModel model = LlamaModel.load(root.resolve("model"));
        Path tokenizer = GgufTesting.characterTokenizer(tmp.resolve("tokenizer"), model.config().vocabSize());
        assertQ4KMEqualsLlamaCpp(family, model, tokenizer);
    }

    @Test
    void stories260KQ4KMEqualsLlamaCppAndRunsAlike() throws Exception {
        Path hf = GgufTesting.fixture("stories260K/hf");
        Path file = assertQ4KMEqualsLlamaCpp("stories260K", LlamaModel.load(hf), hf);
        GgufModel gguf = GgufModel.load(file);
        int n = 40;
        int[] ours;
        try (var ignored = Autograd.noGrad()) {
            ours = new Generator(gguf.model()).maxNewTokens(n).generate(new int[] {1});
        }
        JsonNode r = LlamaCpp.check(file, "--n", String.valueOf(n), "--ignore-eos");
        assertArrayEquals(ours, LlamaCpp.ints(r.get("ids")), "stories260K Q4_K_M: greedy ids from BOS");
        System.out.printf("stories260K Q4_K_M: %d greedy ids identical in lora4j and llama.cpp%n", n);
    }

    /** A random Llama with rows of 256 and 512, eight layers (use_more_bits picks layers 0, 3, 6, 7). */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void randomLlamaWithSuperBlocksEqualsLlamaCpp(boolean tied) throws Exception {
        Path hf = GgufTesting.fixture("stories260K/hf");
        LlamaConfig config = LlamaConfig.builder().vocabSize(512).hiddenSize(256).intermediateSize(512).numHiddenLayers(8)
                .numAttentionHeads(4).numKeyValueHeads(2).maxPositionEmbeddings(256).rmsNormEps(1e-5)
                .tieWordEmbeddings(tied).bosTokenId(1).eosTokenIds(List.of(2)).build();
        SplittableRandom rng = new SplittableRandom(tied ? 41 : 42);
        LlamaModel model = LlamaModel.assemble(config, (name, shape) -> {
            float std = shape.length == 1 ? 0.1f : name.contains("embed") ? 1f : (float) (1 / Math.sqrt(shape[1]));
            return Tensor.normal(rng.split(), shape.length == 1 ? 1f : 0f, std, shape).name(name);
        });
        Path file = assertQ4KMEqualsLlamaCpp("random-" + (tied ? "tied" : "untied"), model, hf);
        try (GgufFile f = GgufFile.open(file)) {
            for (int layer = 0; layer < 8; layer++) {
                GgmlType more = layer == 0 || layer == 3 || layer == 6 || layer == 7 ? GgmlType.Q6_K : GgmlType.Q4_K;
                assertEquals(more, f.info("blk." + layer + ".attn_v.weight").type(), "attn_v of layer " + layer);
                assertEquals(more, f.info("blk." + layer + ".ffn_down.weight").type(), "ffn_down of layer " + layer);
                assertEquals(GgmlType.Q4_K, f.info("blk." + layer + ".attn_q.weight").type());
            }
            assertEquals(GgmlType.Q6_K, f.info(tied ? "token_embd.weight" : "output.weight").type());
            if (!tied) {
                assertEquals(GgmlType.Q4_K, f.info("token_embd.weight").type());
            }
        }
        // lora4j reads its own file as llama.cpp does: the same next token after a prompt, and
        // log-probabilities closer to llama.cpp's than the unquantized model's are (llama.cpp also
        // rounds the activations to 8 bits inside K-quant products, so they are not identical)
        GgufModel gguf = GgufModel.load(file);
        int[] prompt = {1, 403, 407, 261, 378, 300, 41};
        double[] ourLogProbs = GgufTesting.logSoftmaxLast(gguf.model(), prompt);
        JsonNode r = LlamaCpp.check(file, "--prompt-ids", GgufTesting.csv(prompt), "--n", "1", "--logits");
        double[] theirs = LlamaCpp.doubles(r.get("logprobs_last_prompt_position"));
        int a = 0;
        int b = 0;
        for (int i = 1; i < theirs.length; i++) {
            a = ourLogProbs[i] > ourLogProbs[a] ? i : a;
            b = theirs[i] > theirs[b] ? i : b;
        }
        assertEquals(b, a, "next token");
        double dq = maxDiff(ourLogProbs, theirs);
        double df = maxDiff(GgufTesting.logSoftmaxLast(model, prompt), theirs);
        System.out.printf("random-%s Q4_K_M by llama.cpp: max |log-prob diff| lora4j on the file %.3g, on the F32 "
                + "original %.3g%n", tied ? "tied" : "untied", dq, df);
        assertTrue(dq < df, "lora4j on its Q4_K_M file " + dq + " vs the F32 original " + df);
    }

    private static double maxDiff(double[] a, double[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            if (b[i] != Double.NEGATIVE_INFINITY) {
                m = Math.max(m, Math.abs(a[i] - b[i]));
            }
        }
        return m;
    }
}
