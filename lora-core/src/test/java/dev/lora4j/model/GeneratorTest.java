package dev.lora4j.model;

import static dev.lora4j.testing.Fixtures.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.nn.KvCache;
import dev.lora4j.testing.TinyModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Generation with a KV cache against full recomputation, greedy and seeded sampling, stop tokens, sampling filters. */
class GeneratorTest {
    private static final int[] PROMPT = {1, 7, 19, 3, 40};
    private static LlamaModel model;

    /** Larger weights than the 0.02 init so that the next-token distribution is peaked and argmax is clear-cut. */
    @BeforeAll
    static void peakedModel() {
        model = LlamaModel.initialize(TinyModels.gqa(), 77);
        long seed = 500;
        for (var e : model.allTensors().entrySet()) {
            if (!e.getKey().endsWith("norm.weight")) {
                TinyModels.randomize(e.getValue(), e.getKey().equals("lm_head.weight") ? 0.6f : 0.15f, seed++);
            }
        }
    }

    private static int argmax(float[] v, int from, int to) {
        int best = from;
        for (int i = from + 1; i < to; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best - from;
    }

    /** Greedy decoding that reruns the whole sequence through the model at every step (no cache). */
    private static int[] greedyWithoutCache(int[] prompt, int steps) {
        List<Integer> seq = new ArrayList<>();
        for (int t : prompt) {
            seq.add(t);
        }
        int[] out = new int[steps];
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            for (int s = 0; s < steps; s++) {
                int[] ids = seq.stream().mapToInt(Integer::intValue).toArray();
                float[] logits = model.forward(ids, 1).toFloatArray();
                int v = model.config().vocabSize();
                out[s] = argmax(logits, logits.length - v, logits.length);
                seq.add(out[s]);
            }
        }
        return out;
    }

    @Test
    void greedyIsDeterministicAndEqualsRecomputation() {
        int[] first = new Generator(model).maxNewTokens(20).generate(PROMPT);
        int[] second = new Generator(model).maxNewTokens(20).seed(123).generate(PROMPT);
        assertEquals(20, first.length);
        assertArrayEquals(first, second, "greedy ignores the seed");
        assertArrayEquals(greedyWithoutCache(PROMPT, 20), first);
        assertTrue(Arrays.stream(first).distinct().count() > 2, "a degenerate sequence would prove little: " + Arrays.toString(first));
    }

    @Test
    void cachedLogitsEqualFullForwardAtEveryPosition() {
        int[] seq = TinyModels.tokens(2 * 12, 48, 31);
        int batch = 2;
        int t = 12;
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            float[] full = model.forward(seq, batch).toFloatArray();
            int v = model.config().vocabSize();
            KvCache cache = model.newCache(batch, t);
            // a 4-token prefill, then one token per step, then a 3-token chunk
            int[][] chunks = {{0, 4}, {4, 5}, {5, 6}, {6, 9}, {9, 12}};
            for (int[] c : chunks) {
                int n = c[1] - c[0];
                int[] ids = new int[batch * n];
                for (int b = 0; b < batch; b++) {
                    System.arraycopy(seq, b * t + c[0], ids, b * n, n);
                }
                float[] part = model.forward(ids, batch, cache).toFloatArray();
                assertEquals(c[1], cache.length());
                for (int b = 0; b < batch; b++) {
                    for (int p = 0; p < n; p++) {
                        float[] expected = Arrays.copyOfRange(full, ((b * t) + c[0] + p) * v, ((b * t) + c[0] + p + 1) * v);
                        float[] actual = Arrays.copyOfRange(part, ((b * n) + p) * v, ((b * n) + p + 1) * v);
                        assertClose("batch " + b + " position " + (c[0] + p), expected, actual, 1e-4, 1e-5);
                    }
                }
            }
            IllegalArgumentException full2 = assertThrows(IllegalArgumentException.class,
                    () -> model.forward(new int[] {1, 1}, batch, cache));
            assertTrue(full2.getMessage().contains("KV cache holds 12"), full2.getMessage());
        }
    }

    @Test
    void topKOneEqualsGreedy() {
        int[] greedy = new Generator(model).maxNewTokens(15).generate(PROMPT);
        for (long seed : new long[] {1, 2, 3}) {
            int[] sampled = new Generator(model).temperature(1.3).topK(1).seed(seed).maxNewTokens(15).generate(PROMPT);
            assertArrayEquals(greedy, sampled, "seed " + seed);
        }
    }

    @Test
    void seededSamplingIsReproducible() {
        Generator g = new Generator(model).temperature(1.5).topP(0.95).seed(42).maxNewTokens(24);
        int[] a = g.generate(PROMPT);
        int[] b = g.generate(PROMPT);
        int[] c = new Generator(model).temperature(1.5).topP(0.95).seed(42).maxNewTokens(24).generate(PROMPT);
        assertArrayEquals(a, b);
        assertArrayEquals(a, c);
        int[] other = new Generator(model).temperature(1.5).topP(0.95).seed(43).maxNewTokens(24).generate(PROMPT);
        assertFalse(Arrays.equals(a, other), "another seed samples another sequence");
        assertFalse(Arrays.equals(a, new Generator(model).maxNewTokens(24).generate(PROMPT)), "sampling is not greedy");
    }

    @Test
    void stopTokenEndsGenerationAndIsIncluded() {
        int[] free = new Generator(model).maxNewTokens(20).generate(PROMPT);
        int stop = free[5];
        int firstAt = 0;
        while (free[firstAt] != stop) {
            firstAt++;
        }
        List<Integer> streamed = new ArrayList<>();
        int[] stopped = new Generator(model).maxNewTokens(20).stopTokens(Set.of(stop, 47_000)).generate(PROMPT, streamed::add);
        assertArrayEquals(Arrays.copyOf(free, firstAt + 1), stopped);
        assertEquals(Arrays.stream(stopped).boxed().toList(), streamed, "each token is streamed as it is chosen");
    }

    @Test
    void maxNewTokensAndContextLimitsAreRespected() {
        assertEquals(3, new Generator(model).maxNewTokens(3).generate(PROMPT).length);
        // max_position_embeddings is 64: a 60-token prompt leaves room for 4 tokens
        int[] longPrompt = TinyModels.tokens(60, 48, 3);
        assertEquals(4, new Generator(model).maxNewTokens(50).generate(longPrompt).length);
        IllegalArgumentException full = assertThrows(IllegalArgumentException.class,
                () -> new Generator(model).generate(TinyModels.tokens(64, 48, 4)));
        assertTrue(full.getMessage().contains("max_position_embeddings 64"), full.getMessage());
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class, () -> new Generator(model).generate(new int[0]));
        assertTrue(empty.getMessage().contains("empty"), empty.getMessage());
    }

    @Test
    void settingsAreValidated() {
        Generator g = new Generator(model);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> g.temperature(-0.1)).getMessage().contains("temperature"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> g.temperature(Double.NaN)).getMessage().contains("temperature"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> g.topK(-1)).getMessage().contains("topK"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> g.topP(0)).getMessage().contains("topP"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> g.topP(1.01)).getMessage().contains("topP"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> g.maxNewTokens(0)).getMessage().contains("maxNewTokens"));
    }

    /**
     * A byte-level test tokenizer: even ids are the UTF-8 lead byte C3, odd ids a continuation
     * byte, so generated text is full of two-byte characters split across tokens (and of U+FFFD
     * where bytes do not pair up).
     */
    private static final class SplitUtf8Tokenizer implements dev.lora4j.tokenizer.Tokenizer {
        static byte byteOf(int id) {
            return (byte) (id % 2 == 0 ? 0xC3 : 0xA0 + (id % 16));
        }

        @Override
        public int[] encode(String text, boolean addSpecialTokens) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String decode(int[] ids, boolean skipSpecialTokens) {
            byte[] bytes = new byte[ids.length];
            for (int i = 0; i < ids.length; i++) {
                bytes[i] = byteOf(ids[i]);
            }
            return new String(bytes, java.nio.charset.StandardCharsets.UTF_8);
        }

        @Override
        public String token(int id) {
            return String.valueOf(id);
        }

        @Override
        public java.util.OptionalInt id(String token) {
            return java.util.OptionalInt.empty();
        }

        @Override
        public int vocabSize() {
            return 48;
        }

        @Override
        public java.util.OptionalInt bosId() {
            return java.util.OptionalInt.empty();
        }

        @Override
        public java.util.OptionalInt eosId() {
            return java.util.OptionalInt.empty();
        }

        @Override
        public java.util.OptionalInt padId() {
            return java.util.OptionalInt.empty();
        }
    }

    /** Streaming never hands out half a character: the pieces join to the decoding of all tokens. */
    @Test
    void streamedPiecesNeverSplitUtf8Characters() {
        SplitUtf8Tokenizer tokenizer = new SplitUtf8Tokenizer();
        for (long seed = 1; seed <= 5; seed++) {
            List<String> pieces = new ArrayList<>();
            Generator.Generation g = new Generator(model).tokenizer(tokenizer).temperature(1.5).seed(seed).maxNewTokens(40)
                    .generateText(PROMPT, pieces::add);
            String expected = tokenizer.decode(g.tokens());
            assertEquals(expected, g.text());
            assertEquals(expected, String.join("", pieces));
            assertTrue(expected.chars().anyMatch(c -> c >= 0xC0 && c != 0xFFFD), "has two-byte characters: " + expected);
            for (String piece : pieces.subList(0, pieces.size() - 1)) {
                assertFalse(piece.endsWith("\uFFFD") && expected.indexOf('\uFFFD') < 0, "piece " + piece);
            }
            // a held-back lead byte is never streamed on its own
            assertTrue(pieces.stream().noneMatch(String::isEmpty));
        }
    }

    @Test
    void textApiAndStopStringsNeedATokenizer() {
        IllegalStateException noTokenizer = assertThrows(IllegalStateException.class,
                () -> new Generator(model).stopStrings(List.of("x")).generate(PROMPT));
        assertTrue(noTokenizer.getMessage().contains("stopStrings") && noTokenizer.getMessage().contains("tokenizer"),
                noTokenizer.getMessage());
        IllegalStateException text = assertThrows(IllegalStateException.class,
                () -> new Generator(model).generate("hello", piece -> { }));
        assertTrue(text.getMessage().contains("tokenizer(...)"), text.getMessage());
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
                () -> new Generator(model).stopStrings(List.of("ok", "")));
        assertTrue(empty.getMessage().contains("stopStrings[1] is empty"), empty.getMessage());
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
                () -> new Generator(model).stopTokens(Set.of(-3)));
        assertTrue(negative.getMessage().contains("stopTokens") && negative.getMessage().contains("-3"), negative.getMessage());
    }

    @Test
    void contextFullIsReported() {
        Generator.Generation g = new Generator(model).tokenizer(new SplitUtf8Tokenizer()).maxNewTokens(50)
                .generateText(TinyModels.tokens(60, 48, 3), piece -> { });
        assertEquals(4, g.tokens().length);
        assertEquals(Generator.StopReason.CONTEXT_FULL, g.stopReason());
        assertEquals(60, g.promptTokens());
    }

    /** Generation through LoRA: active, switched, disabled and merged adapters each give the expected model. */
    @Test
    void generatesWithActiveSwitchedDisabledAndMergedAdapters() {
        LlamaModel base = LlamaModel.initialize(TinyModels.gqa(), 77);
        long s = 500;
        for (var e : base.allTensors().entrySet()) {
            if (!e.getKey().endsWith("norm.weight")) {
                TinyModels.randomize(e.getValue(), e.getKey().equals("lm_head.weight") ? 0.6f : 0.15f, s++);
            }
        }
        int[] baseTokens = new Generator(base).maxNewTokens(20).generate(PROMPT);
        dev.lora4j.lora.LoraModel lora = dev.lora4j.lora.LoraModel.wrap(base, dev.lora4j.lora.LoraConfig.rank(4).alpha(8));
        lora.addAdapter("other", dev.lora4j.lora.LoraConfig.rank(4).alpha(8).seed(7));
        for (String name : List.of("default", "other")) {
            long seed = name.equals("default") ? 900 : 1900;
            for (var e : lora.peftTensors(name, t -> t).entrySet()) {
                if (e.getKey().contains("lora_B")) {
                    TinyModels.randomize(e.getValue(), 0.3f, seed++);
                }
            }
        }
        lora.setActive("default");
        int[] first = new Generator(lora.model()).maxNewTokens(20).generate(PROMPT);
        assertFalse(Arrays.equals(baseTokens, first), "the adapter changes the output");
        lora.setActive("other");
        int[] second = new Generator(lora.model()).maxNewTokens(20).generate(PROMPT);
        assertFalse(Arrays.equals(first, second), "switching adapters changes the output");
        assertFalse(Arrays.equals(baseTokens, second));
        lora.disableAdapters();
        assertArrayEquals(baseTokens, new Generator(lora.model()).maxNewTokens(20).generate(PROMPT), "disabled = base");
        lora.enableAdapters();
        lora.setActive("default");
        assertArrayEquals(first, new Generator(lora.model()).maxNewTokens(20).generate(PROMPT), "back to the first adapter");
        LlamaModel merged = lora.mergeAndUnload();
        assertArrayEquals(first, new Generator(merged).maxNewTokens(20).generate(PROMPT), "merged = active");
    }

    // ---------------------------------------------------------------- the sampling rule itself

    private static double[] frequencies(Generator g, float[] logits, int draws) {
        SplittableRandom rng = new SplittableRandom(2024);
        double[] f = new double[logits.length];
        for (int i = 0; i < draws; i++) {
            f[g.choose(logits, rng)] += 1.0 / draws;
        }
        return f;
    }

    private static float[] logitsOf(double... probabilities) {
        float[] l = new float[probabilities.length];
        for (int i = 0; i < l.length; i++) {
            l[i] = (float) Math.log(probabilities[i]);
        }
        return l;
    }

    @Test
    void samplingFollowsTemperatureTopKAndTopP() {
        float[] logits = logitsOf(0.05, 0.5, 0.15, 0.3);
        int n = 40_000;
        double tol = 0.012; // > 4 standard deviations of a frequency at n = 40000
        double[] plain = frequencies(new Generator(model).temperature(1), logits, n);
        assertArrayEquals(new double[] {0.05, 0.5, 0.15, 0.3}, plain, tol);

        // temperature 0.5 squares the probabilities before renormalizing
        double z = 0.05 * 0.05 + 0.25 + 0.15 * 0.15 + 0.09;
        assertArrayEquals(new double[] {0.0025 / z, 0.25 / z, 0.0225 / z, 0.09 / z},
                frequencies(new Generator(model).temperature(0.5), logits, n), tol);

        // top-k 2 keeps 0.5 and 0.3, renormalized
        assertArrayEquals(new double[] {0, 0.625, 0, 0.375}, frequencies(new Generator(model).temperature(1).topK(2), logits, n), tol);

        // top-p 0.7: 0.5 < 0.7 <= 0.5 + 0.3, so the nucleus is the same two tokens
        assertArrayEquals(new double[] {0, 0.625, 0, 0.375}, frequencies(new Generator(model).temperature(1).topP(0.7), logits, n), tol);

        // top-p 0.5 keeps only the most likely token
        assertArrayEquals(new double[] {0, 1, 0, 0}, frequencies(new Generator(model).temperature(1).topP(0.5), logits, n), 1e-9);

        // top-k 3 then top-p 0.9 over the renormalized top 3 (0.526, 0.316, 0.158): all three stay
        double k3 = 0.95;
        assertArrayEquals(new double[] {0, 0.5 / k3, 0.15 / k3, 0.3 / k3},
                frequencies(new Generator(model).temperature(1).topK(3).topP(0.9), logits, n), tol);
    }

    @Test
    void greedyChoiceIsTheFirstMaximum() {
        Generator g = new Generator(model);
        SplittableRandom rng = new SplittableRandom(0);
        assertEquals(2, g.choose(new float[] {0.1f, -3f, 4f, 4f, 1f}, rng));
        assertEquals(0, g.choose(new float[] {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}, rng));
    }
}
