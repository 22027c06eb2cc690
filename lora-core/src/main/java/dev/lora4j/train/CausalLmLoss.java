package dev.lora4j.train;

import dev.lora4j.autograd.Losses;
import dev.lora4j.data.Example;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;
import java.util.List;

/**
 * Next-token loss as Hugging Face's LlamaForCausalLM computes it: logits at position t are scored
 * against labels[t + 1]; labels of -100 (masked prompt, padding) are skipped; the mean is over the
 * remaining tokens of the batch.
 */
public final class CausalLmLoss {
    private CausalLmLoss() {
    }

    /** A micro-batch padded on the right to its longest example: ids and labels [B, T]. */
    public record Batch(int[] inputIds, int[] labels, int batchSize, int length, int realTokens) {
    }

    /** Right-pads with {@code padId} (label -100); causal attention keeps real tokens unaffected. */
    public static Batch collate(List<Example> examples, int padId) {
        int t = 0;
        int real = 0;
        for (Example e : examples) {
            t = Math.max(t, e.length());
            real += e.length();
        }
        int b = examples.size();
        int[] ids = new int[b * t];
        int[] labels = new int[b * t];
        Arrays.fill(ids, padId);
        Arrays.fill(labels, Example.IGNORE);
        for (int i = 0; i < b; i++) {
            Example e = examples.get(i);
            System.arraycopy(e.inputIds(), 0, ids, i * t, e.length());
            System.arraycopy(e.labels(), 0, labels, i * t, e.length());
        }
        return new Batch(ids, labels, b, t, real);
    }

    /** Targets per logits row: labels shifted left by one within each sequence. */
    public static int[] shiftedTargets(int[] labels, int batch, int length) {
        int[] targets = new int[labels.length];
        for (int b = 0; b < batch; b++) {
            for (int t = 0; t < length; t++) {
                targets[b * length + t] = t + 1 < length ? labels[b * length + t + 1] : Example.IGNORE;
            }
        }
        return targets;
    }

    /** Mean next-token cross-entropy of the model on the batch (graph recorded if trainable). */
    public static Tensor loss(LlamaModel model, Batch batch) {
        Tensor logits = model.forward(batch.inputIds(), batch.batchSize());
        return loss(logits, batch.labels(), batch.batchSize(), batch.length());
    }

    public static Tensor loss(Tensor logits, int[] labels, int batch, int length) {
        return Losses.crossEntropy(logits.reshape(batch * length, logits.dim(-1)), shiftedTargets(labels, batch, length));
    }
}
