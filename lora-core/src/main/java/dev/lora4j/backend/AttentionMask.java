package dev.lora4j.backend;

import java.util.Arrays;

/**
 * Which keys each query of {@link Backend#attention} sees, and how scores are scaled. Query row i
 * of a sequence sits at position {@code queryOffset + i}; key j is visible to it when
 * <ul>
 *   <li>{@code causal}: j ≤ queryOffset + i;</li>
 *   <li>{@code window} > 0 (sliding window, Mistral/Gemma 2): queryOffset + i − j &lt; window;</li>
 *   <li>{@code keyLengths} not null (right padding): j &lt; keyLengths[b] for batch row b.</li>
 * </ul>
 * Scores are {@code scale·q·k}, then, when {@code softCap} > 0 (Gemma 2), {@code softCap·tanh(s / softCap)}.
 * A query that sees no key gets a zero output and no gradient.
 *
 * @param queryOffset position of the first query (tokens already in a KV cache), 0 in training
 * @param scale multiplier of q·k, usually 1/√D
 * @param causal mask keys after the query's position
 * @param window sliding window in positions, 0 for none
 * @param keyLengths valid keys per batch row, or null when every key is valid
 * @param softCap logit soft-cap, 0 for none
 */
public record AttentionMask(int queryOffset, float scale, boolean causal, int window, int[] keyLengths, float softCap) {

    public AttentionMask {
        if (queryOffset < 0) {
            throw new IllegalArgumentException("attention: queryOffset must be >= 0, was " + queryOffset);
        }
        if (!(scale > 0) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException("attention: scale must be a positive finite number, was " + scale);
        }
        if (window < 0) {
            throw new IllegalArgumentException("attention: window must be >= 0 (0 for none), was " + window);
        }
        if (!(softCap >= 0) || Float.isInfinite(softCap)) {
            throw new IllegalArgumentException("attention: softCap must be >= 0 (0 for none), was " + softCap);
        }
        if (keyLengths != null) {
            for (int b = 0; b < keyLengths.length; b++) {
                if (keyLengths[b] < 0) {
                    throw new IllegalArgumentException("attention: keyLengths[" + b + "] must be >= 0, was "
                            + keyLengths[b]);
                }
            }
        }
    }

    /** Causal attention at head size {@code headDim}: scale 1/√D, no window, no padding, no cap. */
    public static AttentionMask causal(int queryOffset, int headDim) {
        return new AttentionMask(queryOffset, (float) (1.0 / Math.sqrt(headDim)), true, 0, null, 0f);
    }

    public AttentionMask withWindow(int value) {
        return new AttentionMask(queryOffset, scale, causal, value, keyLengths, softCap);
    }

    public AttentionMask withKeyLengths(int[] value) {
        return new AttentionMask(queryOffset, scale, causal, window, value == null ? null : value.clone(), softCap);
    }

    public AttentionMask withSoftCap(float value) {
        return new AttentionMask(queryOffset, scale, causal, window, keyLengths, value);
    }

    public AttentionMask withScale(float value) {
        return new AttentionMask(queryOffset, value, causal, window, keyLengths, softCap);
    }

    /** First visible key of the query at row i (0-based within the sequence). */
    public int firstKey(int i) {
        return window > 0 ? Math.max(0, queryOffset + i - window + 1) : 0;
    }

    /** One past the last visible key of row i in batch row b, given S keys in total. */
    public int endKey(int b, int i, int keys) {
        int end = causal ? Math.min(keys, queryOffset + i + 1) : keys;
        return keyLengths == null ? end : Math.min(end, keyLengths[b]);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof AttentionMask m && m.queryOffset == queryOffset && Float.compare(m.scale, scale) == 0
                && m.causal == causal && m.window == window && Arrays.equals(m.keyLengths, keyLengths)
                && Float.compare(m.softCap, softCap) == 0;
    }

    @Override
    public int hashCode() {
        return ((queryOffset * 31 + Float.hashCode(scale)) * 31 + window) * 31 + Arrays.hashCode(keyLengths);
    }

    @Override
    public String toString() {
        return "AttentionMask[queryOffset=" + queryOffset + ", scale=" + scale + ", causal=" + causal + ", window="
                + window + ", keyLengths=" + Arrays.toString(keyLengths) + ", softCap=" + softCap + "]";
    }
}
