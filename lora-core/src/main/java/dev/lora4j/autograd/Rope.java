package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Device;
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
        final int rotaryDim;
        final int maxPositions;
        private final double[] invFreq;
        private volatile float[][] cosSin = {new float[0], new float[0]};
        /** cos and sin as [P, rotaryDim/2] tensors per device for the positions {@link #cosSin} holds. */
        private final java.util.Map<Device, Tensor[]> onDevice = new java.util.concurrent.ConcurrentHashMap<>();

        /**
         * @param maxPositions the largest number of positions a sequence may use (max_position_embeddings)
         * @param invFreq the D/2 inverse frequencies (after any rope scaling), see {@link #inverseFrequencies}
         */
        public Table(int headDim, int maxPositions, double[] invFreq) {
            this(headDim, headDim, maxPositions, invFreq);
        }

        /**
         * Partial rotary embedding (phi-1.5's partial_rotary_factor): only the first
         * {@code rotaryDim} dimensions of each head are rotated (rotate-half within them, pairs i and
         * i + rotaryDim/2); the remaining {@code headDim - rotaryDim} pass through unchanged.
         *
         * @param invFreq the rotaryDim/2 inverse frequencies, built over rotaryDim dimensions
         */
        public Table(int headDim, int rotaryDim, int maxPositions, double[] invFreq) {
            if (rotaryDim % 2 != 0 || rotaryDim <= 0 || rotaryDim > headDim) {
                throw new IllegalArgumentException("rope: rotary size must be even and within (0, head size " + headDim
                        + "], was " + rotaryDim);
            }
            if (invFreq.length != rotaryDim / 2) {
                throw new IllegalArgumentException("rope: " + invFreq.length + " inverse frequencies for rotary size " + rotaryDim);
            }
            if (maxPositions < 1) {
                throw new IllegalArgumentException("rope: maxPositions must be >= 1, was " + maxPositions);
            }
            this.headDim = headDim;
            this.rotaryDim = rotaryDim;
            this.maxPositions = maxPositions;
            this.invFreq = invFreq.clone();
        }

        public int headDim() {
            return headDim;
        }

        /** {cos, sin} as [P, rotaryDim/2] tensors on {@code device}, P ≥ {@code positions}. */
        Tensor[] on(Device device, int positions) {
            float[][] host = upTo(positions);
            int half = rotaryDim / 2;
            int rows = host[0].length / half;
            Tensor[] cached = onDevice.get(device);
            if (cached != null && cached[0].dim(0) == rows) {
                return cached;
            }
            Tensor[] made = {Tensor.of(host[0], rows, half).to(device), Tensor.of(host[1], rows, half).to(device)};
            onDevice.put(device, made);
            return made;
        }

        public int maxPositions() {
            return maxPositions;
        }

        /** Positions the table holds now (grows as longer sequences are seen). */
        public int computedPositions() {
            return cosSin[0].length / (rotaryDim / 2);
        }

        /** {cos, sin} covering at least positions [0, positions). */
        float[][] upTo(int positions) {
            float[][] current = cosSin;
            int half = rotaryDim / 2;
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
     * Inverse frequencies divided by per-frequency factors, as llama.cpp applies a GGUF file's
     * {@code rope_freqs} tensor (its Llama-3.1-style scaling): 1/θ^(2i/D) (float32, as
     * {@link #inverseFrequencies(int, double, String, double, double, double, int)} computes it)
     * divided by {@code factors[i]}, rounded to float32.
     */
    public static double[] inverseFrequencies(int headDim, double theta, double[] factors) {
        if (factors.length != headDim / 2) {
            throw new IllegalArgumentException("rope: " + factors.length + " frequency factors for rotary size " + headDim
                    + " (expected " + headDim / 2 + ")");
        }
        double[] inv = inverseFrequencies(headDim, theta, null, 1, 1, 1, 0);
        for (int i = 0; i < inv.length; i++) {
            inv[i] = (float) (inv[i] / factors[i]);
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
        int t = x.dim(1);
        if ((long) positionOffset + t > table.maxPositions) {
            throw new IllegalArgumentException("rope: position " + (positionOffset + t - 1) + " exceeds the table of "
                    + table.maxPositions + " positions (max_position_embeddings); shorten the sequence");
        }
        Backend be = Autograd.backendFor("rope", x);
        Tensor xc = x.contiguous().detach();
        Tensor[] cs = table.on(x.device(), positionOffset + t);
        Tensor out = be.empty(x.shape());
        be.rope(out, xc, cs[0], cs[1], table.rotaryDim, positionOffset, false);
        return Autograd.record(out, "rope", new Tensor[] {x}, dOut -> {
            Tensor g = be.empty(x.shape());
            be.rope(g, dOut, cs[0], cs[1], table.rotaryDim, positionOffset, true);
            Autograd.accumulateOwned(x, g);
        });
    }
}
