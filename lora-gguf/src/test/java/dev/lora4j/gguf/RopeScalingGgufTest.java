package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaConfig.RopeScaling;
import dev.lora4j.model.LlamaModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Llama-3.1-style (llama3) and linear RoPE scaling through GGUF: golden-tiny-llama's weights (read
 * in place) under a config with rope_scaling added, so that a prompt runs past
 * original_max_position_embeddings. lora4j's logits are the same before and after a GGUF round
 * trip, and llama.cpp on lora4j's export (base, base + adapter, merged in every type) computes
 * lora4j's greedy ids and log-probabilities.
 */
@Tag("llama-cpp")
class RopeScalingGgufTest {
    /** 90 prompt tokens and 20 generated: positions up to 109, past original_max_position_embeddings 64. */
    private static final int[] PROMPT = prompt(90);
    private static final int N = 20;

    @TempDir
    Path tmp;

    private static int[] prompt(int n) {
        int[] ids = new int[n];
        ids[0] = 1;
        for (int i = 1; i < n; i++) {
            ids[i] = 3 + (i * 37 + i * i) % 93;
        }
        return ids;
    }

    /**
     * A model folder with golden-tiny-llama's config.json plus {@code scaling} and a symbolic link to
     * its weights (the fixture is read in place, never copied).
     */
    private Path scaledModel(ObjectNode scaling) throws IOException {
        Path src = GgufTesting.fixture("golden-tiny-llama/model");
        Path dir = Files.createDirectories(tmp.resolve("scaled-" + scaling.get("rope_type").asText()));
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree(src.resolve("config.json").toFile());
        config.set("rope_scaling", scaling);
        Files.writeString(dir.resolve("config.json"), json.writeValueAsString(config));
        Files.createSymbolicLink(dir.resolve("model.safetensors"), src.resolve("model.safetensors").toAbsolutePath());
        return dir;
    }

    private static ObjectNode llama3() {
        // head_dim 16, theta 1e4: wavelengths 6.3, 19.9, 62.8, 199, ... with original 64, low 1, high 4 the band
        // (16, 64] holds frequencies 1 and 2, so all three branches of the llama3 rule are used
        return new ObjectMapper().createObjectNode().put("rope_type", "llama3").put("factor", 4.0)
                .put("low_freq_factor", 1.0).put("high_freq_factor", 4.0).put("original_max_position_embeddings", 64);
    }

    @Test
    void llama3ScaledModelExportsAsRopeFreqsAndLlamaCppComputesLora4jsLogits() throws Exception {
        Path dir = scaledModel(llama3());
        Path adapterDir = GgufTesting.fixture("golden-tiny-llama/adapter");
        LlamaModel plain = LlamaModel.load(dir);
        assertEquals("llama3", plain.config().ropeScaling().type());
        double[] basePlain = GgufTesting.logSoftmaxLast(plain, PROMPT);
        double[] unscaled = GgufTesting.logSoftmaxLast(
                LlamaModel.load(GgufTesting.fixture("golden-tiny-llama/model")), PROMPT);
        double scalingEffect = maxDiff(basePlain, unscaled);
        assertTrue(scalingEffect > 1e-2, "the scaling must change the logits past position 64: " + scalingEffect);

        Path tokenizer = GgufTesting.characterTokenizer(tmp.resolve("tokenizer"), plain.config().vocabSize());
        Path base = tmp.resolve("base.gguf");
        GgufExport.model(plain, tokenizer, GgmlType.F32, base);
        try (GgufFile f = GgufFile.open(base)) {
            float[] factors = f.floats(GgufRope.ROPE_FREQS);
            // converter's rule: i=0 wavelength 6.3 < 16 -> 1; i=1 19.9 and i=2 62.8 interpolated; i>=3 -> factor 4
            assertEquals(8, factors.length);
            assertEquals(1f, factors[0]);
            double s1 = (64 / (2 * Math.PI / (float) Math.pow(1e4, -2.0 / 16)) - 1) / 3;
            assertEquals(1 / ((1 - s1) / 4 + s1), factors[1], 1e-6);
            assertTrue(factors[2] > factors[1] && factors[2] < 4f, "interpolated: " + factors[2]);
            for (int i = 3; i < 8; i++) {
                assertEquals(4f, factors[i]);
            }
            assertTrue(!f.has("llama.rope.scaling.type"), "llama3 scaling has no scaling-type key in llama.cpp's files");
        }
        GgufModel loaded = GgufModel.load(base);
        RopeScaling read = loaded.model().config().ropeScaling();
        assertEquals(RopeScaling.FREQUENCY_FACTORS, read.type());
        double dLoad = GgufTesting.assertClose("llama3: base GGUF loaded by lora4j", basePlain,
                GgufTesting.logSoftmaxLast(loaded.model(), PROMPT), 1e-5);
        // the loaded model writes the same factors back
        Path again = tmp.resolve("again.gguf");
        GgufExport.model(loaded.model(), tokenizer, GgmlType.F32, again);
        try (GgufFile a = GgufFile.open(base); GgufFile b = GgufFile.open(again)) {
            assertArrayEquals(a.floats(GgufRope.ROPE_FREQS), b.floats(GgufRope.ROPE_FREQS));
        }

        LoraModel lora = LoraModel.load(LlamaModel.load(dir), adapterDir);
        Path adapter = tmp.resolve("adapter.gguf");
        GgufExport.adapter(lora, adapter);
        double[] expected = GgufTesting.logSoftmaxLast(lora.model(), PROMPT);
        int[] expectedIds = new Generator(lora.model()).maxNewTokens(N).generate(PROMPT);
        Path merged = tmp.resolve("merged.gguf");
        GgufExport.merged(lora, tokenizer, GgmlType.F32, merged);
        double dMergedLoad = GgufTesting.assertClose("llama3: merged GGUF loaded by lora4j", expected,
                GgufTesting.logSoftmaxLast(GgufModel.load(merged).model(), PROMPT), 1e-5);

        LlamaCpp.require();
        String ids = GgufTesting.csv(PROMPT);
        JsonNode onBase = LlamaCpp.check(base, "--prompt-ids", ids, "--n", "1", "--logits");
        JsonNode withAdapter = LlamaCpp.check(base, "--lora", adapter.toString(), "--prompt-ids", ids, "--n",
                String.valueOf(N), "--ignore-eos", "--logits");
        JsonNode fromMerged = LlamaCpp.check(merged, "--prompt-ids", ids, "--n", String.valueOf(N), "--ignore-eos",
                "--logits");
        double d0 = GgufTesting.assertClose("llama3: lora4j vs llama.cpp base", basePlain,
                LlamaCpp.doubles(onBase.get("logprobs_last_prompt_position")), 1e-4);
        double d1 = GgufTesting.assertClose("llama3: lora4j vs llama.cpp base + adapter", expected,
                LlamaCpp.doubles(withAdapter.get("logprobs_last_prompt_position")), 1e-4);
        double d2 = GgufTesting.assertClose("llama3: lora4j vs llama.cpp merged", expected,
                LlamaCpp.doubles(fromMerged.get("logprobs_last_prompt_position")), 1e-4);
        assertArrayEquals(expectedIds, LlamaCpp.ints(withAdapter.get("ids")), "llama3: base + adapter ids");
        assertArrayEquals(expectedIds, LlamaCpp.ints(fromMerged.get("ids")), "llama3: merged ids");
        // without the factors llama.cpp would compute something else: the test can fail
        assertTrue(maxDiff(unscaled, LlamaCpp.doubles(onBase.get("logprobs_last_prompt_position"))) > 1e-2);
        System.out.printf("llama3 rope scaling (factor 4, original 64, %d+%d positions): %d ids identical; max |log-prob "
                + "diff| lora4j vs llama.cpp %.3g (base), %.3g (+ adapter), %.3g (merged); GGUF loaded back %.3g (base), "
                + "%.3g (merged); scaling moves log-probs by %.3g%n", PROMPT.length, N, N, d0, d1, d2, dLoad, dMergedLoad,
                scalingEffect);
    }

    /**
     * stories260K (a trained model: fewer near-ties than the random golden weights, whose greedy
     * path llama.cpp's Q8_0 activation rounding can flip) with llama3 scaling (original 128, so 160
     * tokens from BOS run past it), exported in F16, BF16 and Q8_0: llama.cpp's greedy ids on each
     * file equal lora4j's reading of the same file.
     */
    @Test
    void llama3ExportInEveryTypeGivesLlamaCppLora4jsIds() throws Exception {
        Path src = GgufTesting.fixture("stories260K/hf");
        Path dir = Files.createDirectories(tmp.resolve("stories-llama3"));
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree(src.resolve("config.json").toFile());
        config.set("rope_scaling", json.createObjectNode().put("rope_type", "llama3").put("factor", 4.0)
                .put("low_freq_factor", 1.0).put("high_freq_factor", 4.0).put("original_max_position_embeddings", 128));
        Files.writeString(dir.resolve("config.json"), json.writeValueAsString(config));
        for (String f : new String[] {"model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
            Files.createSymbolicLink(dir.resolve(f), src.resolve(f).toAbsolutePath());
        }
        LlamaModel model = LlamaModel.load(dir);
        // the prompt: BOS and lora4j's own 139 greedy tokens (positions up to 139, past 128), then 20 generated
        int[] story = new Generator(model).maxNewTokens(139).generate(new int[] {1});
        int[] prompt = new int[140];
        prompt[0] = 1;
        System.arraycopy(story, 0, prompt, 1, 139);
        int n = 20;
        LlamaCpp.require();
        // llama.cpp rounds activations to the weight's precision in its matrix products (F16, BF16, Q8_0), lora4j
        // computes in F32: tolerances as in GgufModelTest beyond F32's 1e-4
        GgmlType[] types = {GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0};
        double[] tolerance = {1e-4, 2e-2, 1.5e-1, 3e-1};
        for (int t = 0; t < types.length; t++) {
            GgmlType type = types[t];
            Path out = tmp.resolve("stories-llama3-" + type + ".gguf");
            GgufExport.model(model, dir, type, out);
            LlamaModel read = GgufModel.load(out).model();
            assertEquals(RopeScaling.FREQUENCY_FACTORS, read.config().ropeScaling().type());
            int[] expectedIds = new Generator(read).maxNewTokens(n).generate(prompt);
            JsonNode r = LlamaCpp.check(out, "--prompt-ids", GgufTesting.csv(prompt), "--n", String.valueOf(n),
                    "--ignore-eos", "--logits");
            assertArrayEquals(expectedIds, LlamaCpp.ints(r.get("ids")), type + ": ids");
            double d = GgufTesting.assertClose(type + ": lora4j vs llama.cpp on the same file",
                    GgufTesting.logSoftmaxLast(read, prompt), LlamaCpp.doubles(r.get("logprobs_last_prompt_position")),
                    tolerance[t]);
            if (type == GgmlType.F32) {
                assertArrayEquals(new Generator(model).maxNewTokens(n).generate(prompt), expectedIds,
                        "F32 GGUF read back vs the Hugging Face folder");
            }
            System.out.printf("stories260K llama3-scaled %s: %d ids after 140 prompt positions identical to lora4j's "
                    + "reading of the file; max |log-prob diff| %.3g%n", type, n, d);
        }
    }

    @Test
    void linearScalingRoundTripsAndLlamaCppAgrees() throws Exception {
        Path dir = scaledModel(new ObjectMapper().createObjectNode().put("rope_type", "linear").put("factor", 2.0));
        LlamaModel plain = LlamaModel.load(dir);
        Path tokenizer = GgufTesting.characterTokenizer(tmp.resolve("tokenizer"), 96);
        Path base = tmp.resolve("linear.gguf");
        GgufExport.model(plain, tokenizer, GgmlType.F32, base);
        try (GgufFile f = GgufFile.open(base)) {
            assertEquals("linear", f.string("llama.rope.scaling.type"));
            assertEquals(2.0, f.number("llama.rope.scaling.factor"));
            assertTrue(!f.contains(GgufRope.ROPE_FREQS));
        }
        LlamaModel loaded = GgufModel.load(base).model();
        assertEquals(RopeScaling.linear(2.0), loaded.config().ropeScaling());
        double[] expected = GgufTesting.logSoftmaxLast(plain, PROMPT);
        GgufTesting.assertClose("linear: GGUF loaded by lora4j", expected, GgufTesting.logSoftmaxLast(loaded, PROMPT), 1e-6);
        int[] expectedIds = new Generator(plain).maxNewTokens(N).generate(PROMPT);

        LlamaCpp.require();
        JsonNode r = LlamaCpp.check(base, "--prompt-ids", GgufTesting.csv(PROMPT), "--n", String.valueOf(N), "--ignore-eos",
                "--logits");
        double d = GgufTesting.assertClose("linear: lora4j vs llama.cpp", expected,
                LlamaCpp.doubles(r.get("logprobs_last_prompt_position")), 1e-4);
        assertArrayEquals(expectedIds, LlamaCpp.ints(r.get("ids")), "linear: ids");
        System.out.printf("linear rope scaling (factor 2): %d ids identical; max |log-prob diff| %.3g%n", N, d);
    }

    /**
     * Linear scaling on the other families (Gemma 3 scales its global layers only, in Hugging Face
     * and in llama.cpp alike): the GGUF loads back with the same logits, and llama.cpp agrees with
     * lora4j (within the GELU-table bound of FamilyOracleTest for Gemma 3).
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"golden-qwen3", "golden-gemma3", "golden-phi3"})
    void familyLinearScalingRoundTripsAndLlamaCppAgrees(String family) throws Exception {
        Path src = GgufTesting.fixture(family + "/model");
        Path dir = Files.createDirectories(tmp.resolve(family));
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree(src.resolve("config.json").toFile());
        config.set("rope_scaling", json.createObjectNode().put("rope_type", "linear").put("factor", 4.0));
        config.remove("rope_parameters");
        Files.writeString(dir.resolve("config.json"), json.writeValueAsString(config));
        Files.createSymbolicLink(dir.resolve("model.safetensors"), src.resolve("model.safetensors").toAbsolutePath());
        LlamaModel plain = LlamaModel.load(dir);
        assertEquals(RopeScaling.linear(4.0), plain.config().ropeScaling());
        int[] prompt = java.util.Arrays.copyOf(PROMPT, 40);
        double[] expected = GgufTesting.logSoftmaxLast(plain, prompt);
        assertTrue(maxDiff(expected, GgufTesting.logSoftmaxLast(LlamaModel.load(src), prompt)) > 1e-3,
                family + ": the scaling must change the logits");
        Path tokenizer = GgufTesting.characterTokenizer(tmp.resolve("tokenizer"), plain.config().vocabSize());
        Path base = tmp.resolve(family + ".gguf");
        GgufExport.model(plain, tokenizer, GgmlType.F32, base);
        LlamaModel loaded = GgufModel.load(base).model();
        assertEquals(RopeScaling.linear(4.0), loaded.config().ropeScaling());
        double dLoad = GgufTesting.assertClose(family + " linear: GGUF loaded by lora4j", expected,
                GgufTesting.logSoftmaxLast(loaded, prompt), 1e-5);
        LlamaCpp.require();
        JsonNode r = LlamaCpp.check(base, "--prompt-ids", GgufTesting.csv(prompt), "--n", "1", "--logits");
        double d = GgufTesting.assertClose(family + " linear: lora4j vs llama.cpp", expected,
                LlamaCpp.doubles(r.get("logprobs_last_prompt_position")), family.equals("golden-gemma3") ? 3e-3 : 1e-4);
        System.out.printf("%s with linear rope scaling (factor 4, 40 positions): max |log-prob diff| lora4j vs llama.cpp "
                + "%.3g; GGUF loaded back %.3g%n", family, d, dLoad);
    }

    @Test
    void frequencyFactorsAreCheckedAndHaveNoConfigJson() {
        LlamaConfig.Builder b = LlamaConfig.builder().modelType("llama").vocabSize(96).hiddenSize(64).intermediateSize(160)
                .numHiddenLayers(2).numAttentionHeads(4).headDim(16).maxPositionEmbeddings(256).rmsNormEps(1e-5);
        LlamaConfig ok = b.ropeScaling(RopeScaling.frequencyFactors(new double[] {1, 1, 2, 4, 4, 4, 4, 4})).build();
        IllegalStateException json = assertThrows(IllegalStateException.class, ok::toJson);
        assertTrue(json.getMessage().contains("rope_freqs"), json.getMessage());
        IllegalArgumentException count = assertThrows(IllegalArgumentException.class,
                () -> b.ropeScaling(RopeScaling.frequencyFactors(new double[] {1, 2, 4})).build());
        assertTrue(count.getMessage().contains("3 RoPE frequency factors") && count.getMessage().contains("8 frequencies"),
                count.getMessage());
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
                () -> b.ropeScaling(RopeScaling.frequencyFactors(new double[] {1, 0, 4, 4, 4, 4, 4, 4})).build());
        assertTrue(zero.getMessage().contains("> 0"), zero.getMessage());
    }

    @Test
    void ropeMetadataIsCheckedOnImport() throws Exception {
        GgufArchitecture llama = GgufArchitecture.named("llama");
        assertEquals(RopeScaling.frequencyFactors(new double[] {1, 2, 4, 4}),
                read(llama, 8, w -> w.addF32(GgufRope.ROPE_FREQS, new int[] {4}, new float[] {1, 2, 4, 4})));
        assertEquals(null, read(llama, 8, w -> w.addF32(GgufRope.ROPE_FREQS, new int[] {4}, new float[] {1, 1, 1, 1})));
        // llama.cpp's default scaling type is linear: a factor alone scales
        assertEquals(RopeScaling.linear(2), read(llama, 8, w -> w.putF32("llama.rope.scaling.factor", 2)));
        assertEquals(null, read(llama, 8, w -> w.putString("llama.rope.scaling.type", "none")));
        String qwen2 = assertThrows(IllegalArgumentException.class, () -> read(GgufArchitecture.named("qwen2"), 8,
                w -> w.addF32(GgufRope.ROPE_FREQS, new int[] {4}, new float[] {1, 2, 4, 4}))).getMessage();
        assertTrue(qwen2.contains("rope_freqs") && qwen2.contains("qwen2"), qwen2);
        String shape = assertThrows(IllegalArgumentException.class, () -> read(llama, 16,
                w -> w.addF32(GgufRope.ROPE_FREQS, new int[] {4}, new float[] {1, 2, 4, 4}))).getMessage();
        assertTrue(shape.contains("[4]") && shape.contains("[8]"), shape);
        String zero = assertThrows(IllegalArgumentException.class, () -> read(llama, 8,
                w -> w.addF32(GgufRope.ROPE_FREQS, new int[] {4}, new float[] {1, 0, 4, 4}))).getMessage();
        assertTrue(zero.contains("rope_freqs.weight[1] is 0.0"), zero);
        String both = assertThrows(IllegalArgumentException.class, () -> read(llama, 8, w -> {
            w.putF32("llama.rope.scaling.factor", 2);
            w.addF32(GgufRope.ROPE_FREQS, new int[] {4}, new float[] {1, 2, 4, 4});
        })).getMessage();
        assertTrue(both.contains("both"), both);
        String yarn = assertThrows(IllegalArgumentException.class, () -> read(llama, 8,
                w -> w.putString("llama.rope.scaling.type", "yarn"))).getMessage();
        assertTrue(yarn.contains("llama.rope.scaling.type") && yarn.contains("yarn"), yarn);
    }

    private RopeScaling read(GgufArchitecture arch, int rotaryDim, java.util.function.Consumer<GgufWriter> fill)
            throws IOException {
        GgufWriter w = new GgufWriter();
        w.putString("general.architecture", arch.name());
        fill.accept(w);
        Path file = Files.createTempFile(tmp, "rope", ".gguf");
        w.write(file);
        try (GgufFile f = GgufFile.open(file)) {
            return GgufRope.read(f, arch, rotaryDim);
        }
    }

    @Test
    void llama3ScalingOfAnotherArchitectureIsRefused() {
        LlamaConfig qwen2 = LlamaConfig.builder().modelType("qwen2").vocabSize(96).hiddenSize(64).intermediateSize(160)
                .numHiddenLayers(2).numAttentionHeads(4).headDim(16).maxPositionEmbeddings(256).rmsNormEps(1e-5)
                .ropeScaling(RopeScaling.llama3(4, 1, 4, 64)).build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GgufRope.write(new GgufWriter(), GgufArchitecture.of(qwen2), qwen2));
        assertTrue(e.getMessage().contains("rope_freqs") && e.getMessage().contains("qwen2"), e.getMessage());
    }

    private static double maxDiff(double[] a, double[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }
}
