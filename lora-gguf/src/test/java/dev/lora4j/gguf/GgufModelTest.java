package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** GGUF files as lora4j bases: the same model, tokenizer and chat template as the Hugging Face folder they came from. */
class GgufModelTest {
    @TempDir
    static Path tmp;
    private static Path hf;
    private static LlamaModel reference;
    private static final int[] PROMPT = {1, 403, 407, 261, 378};

    @BeforeAll
    static void load() {
        hf = GgufTesting.fixture("stories260K/hf");
        reference = LlamaModel.load(hf);
    }

    private static Path export(GgmlType type) {
        Path out = tmp.resolve("stories260K-" + type + ".gguf");
        if (!java.nio.file.Files.exists(out)) {
            GgufExport.model(reference, hf, type, out);
        }
        return out;
    }

    @Test
    void f32GgufGivesTheLogitsOfItsHuggingFaceFolder() {
        GgufModel gguf = GgufModel.load(export(GgmlType.F32));
        assertEquals(reference.config().numKeyValueHeads(), gguf.model().config().numKeyValueHeads());
        assertTrue(gguf.model().config().tieWordEmbeddings());
        assertArrayEquals(GgufTesting.logSoftmaxLast(reference, PROMPT), GgufTesting.logSoftmaxLast(gguf.model(), PROMPT),
                "F32 round trip (q/k permutation undone) is exact");
        assertArrayEquals(new Generator(reference).maxNewTokens(50).generate(new int[] {1}),
                new Generator(gguf.model()).maxNewTokens(50).generate(new int[] {1}));
    }

    @Test
    void tokenizerRebuiltFromGgufEncodesAndDecodesLikeTheOriginal() throws Exception {
        HfTokenizer original = HfTokenizer.load(hf);
        HfTokenizer fromGguf = GgufModel.load(export(GgmlType.F32)).tokenizer();
        for (String text : new String[] {"Once upon a time, there was a little girl named Lily.",
            "  Tom said: \"Wow!\"\nThe end. 123 ünïcödé ☃", ""}) {
            int[] ids = original.encode(text, true);
            assertArrayEquals(ids, fromGguf.encode(text, true), text);
            assertEquals(original.decode(ids, true), fromGguf.decode(ids, true));
        }
        assertEquals(original.bosId(), fromGguf.bosId());
        assertEquals(original.eosId(), fromGguf.eosId());
    }

    @Test
    void halfAndQ8ExportsLoadCloseToTheF32Model() {
        double[] expected = GgufTesting.logSoftmaxLast(reference, PROMPT);
        double[] tolerance = {2e-2, 1.5e-1, 1.5e-1};
        GgmlType[] types = {GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0};
        for (int i = 0; i < types.length; i++) {
            GgufModel gguf = GgufModel.load(export(types[i]));
            double d = GgufTesting.assertClose(types[i] + " vs F32", expected, GgufTesting.logSoftmaxLast(gguf.model(), PROMPT),
                    tolerance[i]);
            System.out.printf("stories260K %s GGUF loaded by lora4j: max |log-prob diff| to F32 %.3g%n", types[i], d);
        }
    }

    @Test
    void adapterGgufIsRefusedAsABase() {
        LoraModel lora = LoraModel.wrap(LlamaModel.load(hf), LoraConfig.rank(2).alpha(4).targets(Target.QUERY));
        Path adapter = tmp.resolve("adapter-as-base.gguf");
        GgufExport.adapter(lora, adapter);
        String msg = assertThrows(IllegalArgumentException.class, () -> GgufModel.load(adapter)).getMessage();
        assertTrue(msg.contains("adapter"), msg);
    }

    @Test
    void loraOnTiedOutputLayerIsRefused() {
        LoraModel lora = LoraModel.wrap(LlamaModel.load(hf), LoraConfig.rank(2).alpha(4).targets(Target.ALL));
        String msg = assertThrows(IllegalArgumentException.class,
                () -> GgufExport.adapter(lora, tmp.resolve("tied.gguf"))).getMessage();
        assertTrue(msg.contains("tied") && msg.contains("--merge"), msg);
    }

    /** lora4j's own F16, BF16 and Q8_0 exports, run by llama.cpp and by lora4j from the same file. */
    @Test
    @Tag("llama-cpp")
    void llamaCppAndLora4jAgreeOnTheSameQuantizedFile() throws Exception {
        LlamaCpp.require();
        // llama.cpp rounds the activations to the weight's precision inside its matrix products (F16, BF16,
        // and Q8_0 for Q8_0 weights); lora4j computes in F32: hence tolerances beyond F32's 1e-4
        GgmlType[] types = {GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0};
        double[] tolerance = {2e-2, 1.5e-1, 3e-1};
        for (int i = 0; i < types.length; i++) {
            GgmlType type = types[i];
            Path file = export(type);
            GgufModel gguf = GgufModel.load(file);
            JsonNode r = LlamaCpp.check(file, "--prompt-ids", "1,403,407,261,378", "--n", "20", "--ignore-eos", "--logits");
            double d = GgufTesting.assertClose(type + ": lora4j vs llama.cpp", GgufTesting.logSoftmaxLast(gguf.model(), PROMPT),
                    LlamaCpp.doubles(r.get("logprobs_last_prompt_position")), tolerance[i]);
            int[] ours = new Generator(gguf.model()).maxNewTokens(20).generate(PROMPT);
            assertArrayEquals(ours, LlamaCpp.ints(r.get("ids")), type + " greedy ids");
            System.out.printf("stories260K %s: lora4j and llama.cpp on the same file: 20 ids identical, max |log-prob "
                    + "diff| %.3g%n", type, d);
        }
    }
}
