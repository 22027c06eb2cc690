package dev.lora4j.benchmarks;

import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The model shapes and micro-batches of the end-to-end training benchmarks, the same as the PyTorch
 * anchor {@code ../shared/bench/torch_lora_bench.py} builds: LoRA on q, k, v, o, gate, up, down,
 * and on lm_head when the head is not tied to the embedding (a tied head gets no adapter there,
 * as in the anchor and in PEFT's default for tied models).
 *
 * @param name       the anchor's CONFIG argument ({@code tiny}, {@code smollm2-135m})
 * @param config     the model shape
 * @param batch      sequences per step (the anchor's BATCH)
 * @param seq        tokens per sequence fed to the model (the anchor's SEQ); the loss scores all
 *                   of them against the next token, so each step reads {@code seq + 1} ids per row
 */
public record TrainShape(String name, LlamaConfig config, int batch, int seq) {

    /** Names accepted by {@link #of}. */
    public static final List<String> NAMES = List.of("tiny", "smollm2-135m", "micro");

    public TrainShape {
        if (batch < 1) {
            throw new IllegalArgumentException("batch must be >= 1, was " + batch);
        }
        if (seq < 1) {
            throw new IllegalArgumentException("seq must be >= 1, was " + seq);
        }
    }

    /**
     * A shape by name, with the anchor's default batch × sequence:
     * <ul>
     * <li>{@code tiny}: vocab 4096, hidden 256, 4 layers, 8/4 heads, ffn 688, untied head; 4 × 128.</li>
     * <li>{@code smollm2-135m}: vocab 49152, hidden 576, 30 layers, 9/3 heads, ffn 1536, RoPE θ 100000,
     * tied embeddings; 1 × 256.</li>
     * <li>{@code micro}: the historical JMH shape (vocab 1024, otherwise tiny); 4 × 64. No anchor run.</li>
     * </ul>
     */
    public static TrainShape of(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "tiny" -> new TrainShape("tiny", llama(4096, 256, 4, 8, 4, 688, 10000, false), 4, 128);
            case "smollm2-135m" -> new TrainShape("smollm2-135m", llama(49152, 576, 30, 9, 3, 1536, 100000, true), 1, 256);
            case "micro" -> new TrainShape("micro", llama(1024, 256, 4, 8, 4, 688, 10000, false), 4, 64);
            default -> throw new IllegalArgumentException("unknown shape '" + name + "'; shapes: " + String.join(", ", NAMES));
        };
    }

    /** The same model with another batch × sequence. */
    public TrainShape withBatch(int newBatch, int newSeq) {
        LlamaConfig c = newSeq <= config.maxPositionEmbeddings() ? config
                : config.toBuilder().maxPositionEmbeddings(newSeq).build();
        return new TrainShape(name, c, newBatch, newSeq);
    }

    /** q, k, v, o, gate, up, down, plus lm_head unless it is tied to the embedding. */
    public Target[] targets() {
        List<Target> t = new ArrayList<>(List.of(Target.QUERY, Target.KEY, Target.VALUE, Target.PROJECTION, Target.MLP));
        if (!config.tieWordEmbeddings()) {
            t.add(Target.HEAD);
        }
        return t.toArray(Target[]::new);
    }

    /** Tokens trained per step, the numerator of tokens/s. */
    public int tokensPerStep() {
        return batch * seq;
    }

    private static LlamaConfig llama(int vocab, int hidden, int layers, int heads, int kvHeads, int ffn, double ropeTheta,
                                     boolean tied) {
        return LlamaConfig.builder().modelType("llama").vocabSize(vocab).hiddenSize(hidden).intermediateSize(ffn)
                .numHiddenLayers(layers).numAttentionHeads(heads).numKeyValueHeads(kvHeads)
                .maxPositionEmbeddings(2048).rmsNormEps(1e-5).ropeTheta(ropeTheta).tieWordEmbeddings(tied).build();
    }

    @Override
    public String toString() {
        LlamaConfig c = config;
        return String.format(Locale.ROOT, "%s (vocab %d, hidden %d, %d layers, %d/%d heads, ffn %d, %s head; batch %d x %d)",
                name, c.vocabSize(), c.hiddenSize(), c.numHiddenLayers(), c.numAttentionHeads(), c.numKeyValueHeads(),
                c.intermediateSize(), c.tieWordEmbeddings() ? "tied" : "untied", batch, seq);
    }
}
