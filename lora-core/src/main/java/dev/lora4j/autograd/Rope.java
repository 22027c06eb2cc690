package dev.lora4j.autograd;

import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;

/**
 * Rotary position embedding in the Hugging Face "rotate-half" layout: for head size D, element i
 * of the first half pairs with element i + D/2, and
 * out = x·cos(θ) + rotate_half(x)·sin(θ), rotate_half(x) = [−x₂, x₁], θ = pos·inv_freq[i].
 * The rotation is orthogonal, so backward applies the rotation by −θ to the gradient.
 */
public final class Rope {
    private Rope() {
    }

    /**
     * cos/sin for positions [0, maxPositions) of one head size, computed on demand: the table
     * holds the positions used so far (grown by doubling, at least 256), never the whole
     * {@code max_position_embeddings} up front, which may be 2³¹−1. Thread-safe.
     */
    public static final class Table {
        private static final int INITIAL_POSITIONS = 256;
        final int headDim;
        final int maxPositions;
        private final double[] invFreq;
        private volatile float[][] cosSin = {new float[0], new float[0]};

        /**
         * @param maxPositions the largest number of positions a sequence may use (max_position_embeddings)
         * @param invFreq the D/2 inverse frequencies (after any rope scaling), see {@link #inverseFrequencies}
         */
        public Table(int headDim, int maxPositions, double[] invFreq) {
            if (headDim % 2 != 0) {
                throw new IllegalArgumentException("rope: head size must be even, was " + headDim);
            }
            if (invFreq.length != headDim / 2) {
                throw new IllegalArgumentException("rope: " + invFreq.length + " inverse frequencies for head size " + headDim);
            }
            if (maxPositions < 1) {
                throw new IllegalArgumentException("rope: maxPositions must be >= 1, was " + maxPositions);
            }
            this.headDim = headDim;
            this.maxPositions = maxPositions;
            this.invFreq = invFreq.clone();
        }

        public int headDim() {
            return headDim;
        }

        public int maxPositions() {
            return maxPositions;
        }

        /** Positions the table holds now (grows as longer sequences are seen). */
        public int computedPositions() {
            return cosSin[0].length / (headDim / 2);
        }

        /** {cos, sin} covering at least positions [0, positions). */
        float[][] upTo(int positions) {
            float[][] current = cosSin;
            int half = headDim / 2;
            if (current[0].length >= (long) positions * half) {
                return current;
            }
            synchronized (this) {
                current = cosSin;
                int have = current[0].length / half;
                if (have >= positions) {
                    return current;
                }
                long grown = Math.max(Math.max(INITIAL_POSITIONS, positions), 2L * have);
                int size = (int) Math.min(maxPositions, Math.min(grown, Integer.MAX_VALUE / half));
                if (size < positions) {
                    throw new IllegalArgumentException("rope: " + positions + " positions of head size " + headDim
                            + " do not fit in a Java array; shorten the sequence");
                }
                float[] cos = Arrays.copyOf(current[0], size * half);
                float[] sin = Arrays.copyOf(current[1], size * half);
                for (int p = have; p < size; p++) {
                    for (int i = 0; i < half; i++) {
                        // HF computes the angle in float32 (pos * inv_freq), then cos/sin
                        float angle = (float) p * (float) invFreq[i];
                        cos[p * half + i] = (float) Math.cos(angle);
                        sin[p * half + i] = (float) Math.sin(angle);
                    }
                }
                cosSin = new float[][] {cos, sin};
                return cosSin;
            }
        }
    }

    /**
     * Inverse frequencies 1/θ^(2i/D) (computed in float32 as PyTorch does), optionally reshaped
     * by Llama-3 rope scaling (factor, low/high frequency factors, original context length):
     * wavelengths shorter than original/high_freq_factor keep their frequency, longer than
     * original/low_freq_factor are divided by factor, and the band between is interpolated.
     * "linear" scaling divides every frequency by factor.
     */
    public static double[] inverseFrequencies(int headDim, double theta, String scalingType, double factor,
                                              double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {
        int half = headDim / 2;
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) {
            inv[i] = (float) (1.0 / Math.pow(theta, (2.0 * i) / headDim));
        }
        if (scalingType == null || scalingType.equals("default")) {
            return inv;
        }
        switch (scalingType) {
            case "linear" -> {
                for (int i = 0; i < half; i++) {
                    inv[i] = inv[i] / factor;
                }
            }
            case "llama3" -> {
                double lowFreqWavelen = originalMaxPositions / lowFreqFactor;
                double highFreqWavelen = originalMaxPositions / highFreqFactor;
                for (int i = 0; i < half; i++) {
                    double wavelen = 2 * Math.PI / inv[i];
                    if (wavelen < highFreqWavelen) {
                        continue;
                    }
                    if (wavelen > lowFreqWavelen) {
                        inv[i] = inv[i] / factor;
                    } else {
                        double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                        inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
                    }
                    inv[i] = (float) inv[i];
                }
            }
            default -> throw new IllegalArgumentException("rope_scaling: type '" + scalingType
                    + "' is not supported; supported: default, linear, llama3");
        }
        return inv;
    }

    /**
     * Rotates x [B, T, H, D] in place of a copy; position of token t is {@code positionOffset + t}
     * (the offset is the number of tokens already in a KV cache).
     */
    public static Tensor apply(Tensor x, Table table, int positionOffset) {
        if (x.rank() != 4 || x.dim(3) != table.headDim) {
            throw new IllegalArgumentException("rope: x must be [B, T, H, " + table.headDim + "], got " + Arrays.toString(x.shape()));
        }
        int b = x.dim(0);
        int t = x.dim(1);
        int h = x.dim(2);
        if ((long) positionOffset + t > table.maxPositions) {
            throw new IllegalArgumentException("rope: position " + (positionOffset + t - 1) + " exceeds the table of "
                    + table.maxPositions + " positions (max_position_embeddings); shorten the sequence");
        }
        float[][] cosSin = table.upTo(positionOffset + t);
        float[] in = x.contiguous().toFloatArray();
        float[] out = new float[in.length];
        rotate(in, out, b, t, h, table.headDim, cosSin, positionOffset, 1f);
        return Autograd.record(Tensor.of(out, x.shape()), "rope", new Tensor[] {x}, dOut -> {
            float[] g = new float[in.length];
            rotate(dOut.data(), g, b, t, h, table.headDim, cosSin, positionOffset, -1f);
            Autograd.accumulate(x, Tensor.of(g, x.shape()));
        });
    }

    /** out = rotation of in by sign·θ. */
    private static void rotate(float[] in, float[] out, int b, int t, int h, int d, float[][] cosSin, int pos0, float sign) {
        float[] cosTable = cosSin[0];
        float[] sinTable = cosSin[1];
        int half = d / 2;
        Parallel.forRange(b * t, 8, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int pos = pos0 + r % t;
                for (int head = 0; head < h; head++) {
                    int o = (r * h + head) * d;
                    for (int i = 0; i < half; i++) {
                        float c = cosTable[pos * half + i];
                        float s = sign * sinTable[pos * half + i];
                        float x1 = in[o + i];
                        float x2 = in[o + i + half];
                        out[o + i] = x1 * c - x2 * s;
                        out[o + i + half] = x2 * c + x1 * s;
                    }
                }
            }
        });
    }
}
