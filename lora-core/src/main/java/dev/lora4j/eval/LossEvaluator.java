package dev.lora4j.eval;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.data.Example;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.train.CausalLmLoss;
import java.util.List;

/**
 * Validation loss and perplexity of a model on a dataset, without recording a graph. The mean is
 * over supervised tokens (token-weighted), not over batches, so the result does not depend on
 * the micro-batch size: loss = Σ NLL / Σ tokens, perplexity = exp(loss).
 */
public final class LossEvaluator {
    private LossEvaluator() {
    }

    /** The mean next-token loss over {@code tokens} supervised tokens of {@code examples} sequences. */
    public record LossResult(double loss, double perplexity, long tokens, int examples) {
    }

    public static LossResult evaluate(LlamaModel model, List<Example> data, int microBatchSize, int padTokenId) {
        if (data.isEmpty()) {
            throw new IllegalArgumentException("LossEvaluator: the evaluation set is empty");
        }
        if (microBatchSize < 1) {
            throw new IllegalArgumentException("LossEvaluator: microBatchSize must be >= 1, was " + microBatchSize);
        }
        double totalNll = 0;
        long tokens = 0;
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            for (int start = 0; start < data.size(); start += microBatchSize) {
                List<Example> slice = data.subList(start, Math.min(data.size(), start + microBatchSize));
                int supervised = 0;
                for (Example e : slice) {
                    supervised += e.supervisedTokens();
                }
                if (supervised == 0) {
                    continue; // every label masked: nothing to score, and the mean would be NaN
                }
                CausalLmLoss.Batch batch = CausalLmLoss.collate(slice, padTokenId);
                double meanLoss = CausalLmLoss.loss(model, batch).toFloatArray()[0];
                totalNll += meanLoss * supervised;
                tokens += supervised;
            }
        }
        if (tokens == 0) {
            throw new IllegalArgumentException("LossEvaluator: none of the " + data.size() + " examples has a supervised "
                    + "token (every label is -100); check the prompt masking and the maximum length");
        }
        double loss = totalNll / tokens;
        return new LossResult(loss, Math.exp(loss), tokens, data.size());
    }
}
