package dev.lora4j.data;

import java.util.Arrays;

/**
 * One training sequence in Hugging Face's causal-LM convention: {@code labels} is aligned with
 * {@code inputIds} (the model shifts them: position t learns to predict labels[t + 1]), and a
 * label of -100 keeps a token (a masked prompt, padding) out of the loss.
 */
public record Example(int[] inputIds, int[] labels) {
    public static final int IGNORE = -100;

    public Example {
        if (inputIds.length == 0) {
            throw new IllegalArgumentException("example has no tokens");
        }
        if (labels.length != inputIds.length) {
            throw new IllegalArgumentException("example has " + inputIds.length + " input ids but " + labels.length + " labels");
        }
    }

    /** Every token is a label (plain language modelling). */
    public static Example unmasked(int[] ids) {
        return new Example(ids, ids.clone());
    }

    /** The first {@code promptLength} tokens are context only (label -100), as in instruction tuning. */
    public static Example promptMasked(int[] ids, int promptLength) {
        int[] labels = ids.clone();
        Arrays.fill(labels, 0, Math.min(promptLength, ids.length), IGNORE);
        return new Example(ids, labels);
    }

    public int length() {
        return inputIds.length;
    }

    /** Tokens that count in the loss after the causal shift. */
    public int supervisedTokens() {
        int n = 0;
        for (int i = 1; i < labels.length; i++) {
            n += labels[i] != IGNORE ? 1 : 0;
        }
        return n;
    }
}
