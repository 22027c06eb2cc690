package dev.lora4j.model;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.nn.KvCache;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.IntConsumer;

/**
 * Autoregressive decoding with a KV cache: the prompt is run once, then one token per step.
 * Greedy when temperature is 0; otherwise temperature, top-k and top-p (nucleus) sampling from a
 * seeded generator. Stops at any stop token (EOS) or after maxNewTokens.
 */
public final class Generator {
    private final LlamaModel model;
    private double temperature = 0;
    private int topK = 0;
    private double topP = 1.0;
    private int maxNewTokens = 128;
    private Set<Integer> stopTokens = Set.of();
    private long seed = 0;

    public Generator(LlamaModel model) {
        this.model = model;
    }

    /** 0 = greedy (argmax). */
    public Generator temperature(double value) {
        if (!(value >= 0)) {
            throw new IllegalArgumentException("temperature must be >= 0, was " + value);
        }
        temperature = value;
        return this;
    }

    /** Sample only among the k most likely tokens; 0 = no limit. */
    public Generator topK(int value) {
        if (value < 0) {
            throw new IllegalArgumentException("topK must be >= 0, was " + value);
        }
        topK = value;
        return this;
    }

    /** Sample from the smallest set of tokens whose probability reaches p; 1 = no limit. */
    public Generator topP(double value) {
        if (!(value > 0 && value <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1], was " + value);
        }
        topP = value;
        return this;
    }

    public Generator maxNewTokens(int value) {
        if (value < 1) {
            throw new IllegalArgumentException("maxNewTokens must be >= 1, was " + value);
        }
        maxNewTokens = value;
        return this;
    }

    public Generator stopTokens(Set<Integer> value) {
        stopTokens = Set.copyOf(value);
        return this;
    }

    public Generator seed(long value) {
        seed = value;
        return this;
    }

    /** The new tokens after {@code prompt} (a stop token, if hit, is included as the last one). */
    public int[] generate(int[] prompt) {
        return generate(prompt, id -> { });
    }

    /** As {@link #generate(int[])}, handing each new token to {@code onToken} as soon as it is chosen. */
    public int[] generate(int[] prompt, IntConsumer onToken) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("generate: the prompt is empty; start it with the BOS token");
        }
        int capacity = Math.min(model.config().maxPositionEmbeddings(), prompt.length + maxNewTokens);
        if (prompt.length >= capacity) {
            throw new IllegalArgumentException("generate: prompt of " + prompt.length + " tokens leaves no room under "
                    + "max_position_embeddings " + model.config().maxPositionEmbeddings());
        }
        SplittableRandom rng = new SplittableRandom(seed);
        List<Integer> out = new ArrayList<>();
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            KvCache cache = model.newCache(1, capacity);
            Tensor logits = model.forward(prompt, 1, cache);
            float[] last = lastRow(logits);
            while (out.size() < maxNewTokens && cache.length() < capacity) {
                int next = choose(last, rng);
                out.add(next);
                onToken.accept(next);
                if (stopTokens.contains(next) || out.size() >= maxNewTokens || cache.length() >= capacity) {
                    break;
                }
                last = lastRow(model.forward(new int[] {next}, 1, cache));
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private static float[] lastRow(Tensor logits) {
        int v = logits.dim(-1);
        float[] all = logits.data();
        return Arrays.copyOfRange(all, all.length - v, all.length);
    }

    int choose(float[] logits, SplittableRandom rng) {
        if (temperature == 0) {
            int best = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            return best;
        }
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Float.compare(logits[b], logits[a]));
        int keep = topK > 0 ? Math.min(topK, order.length) : order.length;
        double max = logits[order[0]];
        double[] p = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) {
            p[i] = Math.exp((logits[order[i]] - max) / temperature);
            sum += p[i];
        }
        double cumulative = 0;
        int nucleus = keep;
        for (int i = 0; i < keep; i++) {
            p[i] /= sum;
            cumulative += p[i];
            if (cumulative >= topP) {
                nucleus = i + 1;
                break;
            }
        }
        double r = rng.nextDouble() * Math.min(1.0, cumulative);
        double acc = 0;
        for (int i = 0; i < nucleus; i++) {
            acc += p[i];
            if (r < acc) {
                return order[i];
            }
        }
        return order[nucleus - 1];
    }
}
