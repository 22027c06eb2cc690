package dev.lora4j.testing;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import java.util.SplittableRandom;

/** Small randomly initialized Llama models and inputs for fast tests. */
public final class TinyModels {
    private TinyModels() {
    }

    /** vocab 48, hidden 32, 2 layers, 4 query heads over 2 key/value heads (GQA), untied head. */
    public static LlamaConfig.Builder gqaBuilder() {
        return LlamaConfig.builder().vocabSize(48).hiddenSize(32).intermediateSize(56).numHiddenLayers(2)
                .numAttentionHeads(4).numKeyValueHeads(2).maxPositionEmbeddings(64).rmsNormEps(1e-5)
                .bosTokenId(1).eosTokenIds(java.util.List.of(2));
    }

    public static LlamaConfig gqa() {
        return gqaBuilder().build();
    }

    public static LlamaModel model(long seed) {
        return LlamaModel.initialize(gqa(), seed);
    }

    /** Token ids in [0, vocab) from a seed. */
    public static int[] tokens(int count, int vocab, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] out = new int[count];
        for (int i = 0; i < count; i++) {
            out[i] = rng.nextInt(vocab);
        }
        return out;
    }

    /** Logits without recording a graph. */
    public static float[] logits(LlamaModel model, int[] tokens, int batch) {
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            return model.forward(tokens, batch).toFloatArray();
        }
    }

    /** Overwrites a heap F32 tensor with normal(0, std) values. */
    public static void randomize(Tensor t, float std, long seed) {
        float[] src = Tensor.normal(new SplittableRandom(seed), 0f, std, t.shape()).data();
        System.arraycopy(src, 0, t.data(), t.intOffset(), src.length);
    }

    /** Largest |a[i] − b[i]|. */
    public static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException(a.length + " vs " + b.length + " values");
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }

    /** Open file descriptors of this JVM; the test is skipped where the platform does not report them. */
    public static long openFileDescriptors() {
        java.lang.management.OperatingSystemMXBean os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        org.junit.jupiter.api.Assumptions.assumeTrue(os instanceof com.sun.management.UnixOperatingSystemMXBean,
                "open file descriptors are not reported on this platform; skipping");
        return ((com.sun.management.UnixOperatingSystemMXBean) os).getOpenFileDescriptorCount();
    }
}
