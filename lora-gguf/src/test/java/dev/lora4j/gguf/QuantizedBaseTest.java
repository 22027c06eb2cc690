package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.autograd.Autograd;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.CausalLmLoss;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * GGUF files quantized by llama.cpp itself (llama_model_quantize from node-llama-cpp's libllama.so)
 * as lora4j bases: lora4j's Q8_0 encoder writes llama.cpp's bytes exactly; its Q8_0, Q4_0, Q4_K,
 * Q5_K and Q6_K decoders read llama.cpp's files; a LoRA trained on a Q4_K base, exported as GGUF,
 * runs in llama.cpp as it runs in lora4j.
 *
 * <p>The model is a random Llama with rows of 256 (k-quant super-blocks) and the stories260K
 * tokenizer, large enough in its weights (std 1/√in) that the logits spread over tens of nats.
 */
@Tag("llama-cpp")
class QuantizedBaseTest {
    @TempDir
    static Path tmp;
    private static Path f32;
    private static LlamaModel reference;
    private static final int[] PROMPT = {1, 403, 407, 261, 378, 300, 41};

    /** llama.cpp's llama_ftype for "mostly" each type. */
    private static final Map<GgmlType, Integer> FTYPES = Map.of(GgmlType.Q8_0, 7, GgmlType.Q4_0, 2, GgmlType.Q4_K, 14,
            GgmlType.Q5_K, 16, GgmlType.Q6_K, 18);

    @BeforeAll
    static void build() throws Exception {
        Path hf = GgufTesting.fixture("stories260K/hf");
        LlamaCpp.quantizeTool();
        LlamaConfig config = LlamaConfig.builder().vocabSize(512).hiddenSize(256).intermediateSize(512).numHiddenLayers(2)
                .numAttentionHeads(4).numKeyValueHeads(2).maxPositionEmbeddings(256).rmsNormEps(1e-5)
                .bosTokenId(1).eosTokenIds(List.of(2)).build();
        SplittableRandom rng = new SplittableRandom(12);
        reference = LlamaModel.assemble(config, (name, shape) -> {
            float std = shape.length == 1 ? 0.1f : name.contains("embed") ? 1f : (float) (1 / Math.sqrt(shape[1]));
            Tensor t = Tensor.normal(rng.split(), shape.length == 1 ? 1f : 0f, std, shape);
            return t.name(name);
        });
        f32 = tmp.resolve("random-f32.gguf");
        GgufExport.model(reference, hf, GgmlType.F32, f32);
    }

    private static Path quantized(GgmlType type) throws Exception {
        Path out = tmp.resolve("random-" + type + ".gguf");
        if (!Files.exists(out)) {
            LlamaCpp.quantize(f32, out, FTYPES.get(type));
            try (GgufFile f = GgufFile.open(out)) {
                for (GgufTensorInfo info : f.tensors().values()) {
                    assertEquals(info.shape().length == 1 ? GgmlType.F32 : type, info.type(),
                            "llama_model_quantize (pure) wrote " + info.name() + " as " + info.type());
                }
            }
        }
        return out;
    }

    @Test
    void q8EncoderWritesLlamaCppsBytes() throws Exception {
        try (GgufFile theirs = GgufFile.open(quantized(GgmlType.Q8_0)); GgufFile source = GgufFile.open(f32)) {
            int tensors = 0;
            for (GgufTensorInfo info : theirs.tensors().values()) {
                if (info.type() != GgmlType.Q8_0) {
                    continue;
                }
                ByteBuffer ours = GgmlQuants.encode(GgmlType.Q8_0, source.floats(info.name()));
                assertEquals(theirs.bytes(info.name()), ours, info.name() + ": lora4j's Q8_0 bytes differ from llama.cpp's");
                tensors++;
            }
            assertEquals(2 + 2 * 7, tensors);
        }
    }

    @Test
    void blockDecodersReadLlamaCppsFiles() throws Exception {
        double[] weightTolerance = {0.01, 0.12, 0.1, 0.05, 0.025}; // relative RMS error of each format
        GgmlType[] types = {GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K};
        for (int i = 0; i < types.length; i++) {
            GgmlType type = types[i];
            Path file = quantized(type);
            GgufModel gguf = GgufModel.load(file);
            // decoded weights (q/k rows moved back into Hugging Face order) near the F32 originals
            for (Map.Entry<String, Tensor> e : reference.allTensors().entrySet()) {
                if (e.getValue().rank() != 2) {
                    continue;
                }
                float[] want = e.getValue().toFloatArray();
                float[] got = gguf.model().allTensors().get(e.getKey()).toFloatArray();
                double err = 0;
                double norm = 0;
                for (int k = 0; k < want.length; k++) {
                    err += (got[k] - want[k]) * (double) (got[k] - want[k]);
                    norm += want[k] * (double) want[k];
                }
                double rel = Math.sqrt(err / norm);
                assertTrue(rel < weightTolerance[i], type + " " + e.getKey() + ": relative RMS error " + rel);
            }
            JsonNode r = LlamaCpp.check(file, "--prompt-ids", GgufTesting.csv(PROMPT), "--n", "8", "--ignore-eos",
                    "--logits");
            double[] ours = GgufTesting.logSoftmaxLast(gguf.model(), PROMPT);
            double[] theirs = LlamaCpp.doubles(r.get("logprobs_last_prompt_position"));
            double[] fromF32 = GgufTesting.logSoftmaxLast(reference, PROMPT);
            double dq = maxDiff(ours, theirs);
            double df = maxDiff(fromF32, theirs);
            System.out.printf("%s file by llama.cpp: max |log-prob diff| lora4j %.3g (lora4j on the F32 original: %.3g)%n",
                    type, dq, df);
            // the same decoded weights: closer to llama.cpp than the unquantized model is (llama.cpp also
            // quantizes the activations to 8 bits in these products, so not exact)
            assertTrue(dq < 0.08 && dq < df, type + ": lora4j " + dq + " vs F32 original " + df);
            assertEquals(argmax(theirs), argmax(ours), type + ": next token");
        }
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

    private static int argmax(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    /**
     * QLoRA on a GGUF: LoRA trained on the Q4_K base (the weights stay Q4_K blocks), saved as PEFT
     * and as GGUF; llama.cpp runs base + adapter as lora4j does.
     */
    @Test
    void loraTrainedOnAQ4KBaseRunsInLlamaCpp() throws Exception {
        Path file = quantized(GgmlType.Q4_K);
        GgufModel gguf = GgufModel.load(file);
        assertTrue(gguf.model().layers().get(0).inputLayernorm != null);
        assertTrue(gguf.model().linears().get("model.layers.0.self_attn.q_proj").weight().storage() instanceof BlockQuantStorage);
        LoraModel lora = LoraModel.wrap(gguf.model(), LoraConfig.rank(4).alpha(8).targets(Target.QUERY, Target.KEY,
                Target.VALUE, Target.MLP).seed(3));
        int[] text = gguf.tokenizer().encode("Once upon a time, there was a little dog named Max.", true);
        List<Tensor> params = new ArrayList<>(lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values());
        AdamW adam = new AdamW(params, 1e-2, 0.0);
        float first = 0;
        float last = 0;
        for (int step = 0; step < 8; step++) {
            Tensor loss = CausalLmLoss.loss(lora.model(), CausalLmLoss.collate(List.of(Example.unmasked(text)), 0));
            last = loss.toFloatArray()[0];
            if (step == 0) {
                first = last;
            }
            loss.backward();
            adam.step();
            params.forEach(Tensor::zeroGrad);
        }
        assertTrue(last < first * 0.8, "loss " + first + " -> " + last);
        Path peft = tmp.resolve("peft-adapter");
        lora.saveAdapter(peft);
        assertTrue(Files.isRegularFile(peft.resolve("adapter_model.safetensors")));
        Path adapter = tmp.resolve("q4k-adapter.gguf");
        GgufExport.adapter(lora, adapter);
        int[] prompt = java.util.Arrays.copyOf(text, 6);
        double[] ours = GgufTesting.logSoftmaxLast(lora.model(), prompt);
        int[] ourIds;
        try (var ignored = Autograd.noGrad()) {
            ourIds = new Generator(lora.model()).maxNewTokens(6).generate(prompt);
        }
        JsonNode r = LlamaCpp.check(file, "--lora", adapter.toString(), "--prompt-ids", GgufTesting.csv(prompt), "--n", "6",
                "--ignore-eos", "--logits");
        JsonNode base = LlamaCpp.check(file, "--prompt-ids", GgufTesting.csv(prompt), "--n", "1", "--logits");
        double withAdapter = maxDiff(ours, LlamaCpp.doubles(r.get("logprobs_last_prompt_position")));
        double adapterEffect = maxDiff(LlamaCpp.doubles(base.get("logprobs_last_prompt_position")),
                LlamaCpp.doubles(r.get("logprobs_last_prompt_position")));
        System.out.printf("LoRA on Q4_K base: loss %.3f -> %.3f in 8 steps; lora4j vs llama.cpp base + adapter: max "
                + "|log-prob diff| %.3g (the adapter itself moves them by %.3g); ids %s vs %s%n", first, last, withAdapter,
                adapterEffect, java.util.Arrays.toString(ourIds), r.get("ids"));
        assertTrue(withAdapter < 0.2 * adapterEffect, "adapter applied as lora4j applies it");
        assertArrayEquals(ourIds, LlamaCpp.ints(r.get("ids")));
    }
}
