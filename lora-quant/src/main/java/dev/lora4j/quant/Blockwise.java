package dev.lora4j.quant;

import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.Storage;

/**
 * Blockwise absmax quantization kernels, after bitsandbytes' {@code kQuantizeBlockwise}: for each
 * block of consecutive elements, absmax = max |x|, and every element is coded from
 * {@code x · (1/absmax)} (the reciprocal rounded to float, then one multiply, as the kernel does).
 */
final class Blockwise {
    /** Blocks per parallel task: enough work to pay for scheduling. */
    private static final int BLOCKS_PER_TASK = 1024;

    private Blockwise() {
    }

    /**
     * 4-bit codes of {@code n} elements of {@code src} from {@code srcOffset}, two per byte with
     * element 2k in the high nibble; an odd count pads the last low nibble with the code of 0.
     *
     * @param packed receives {@code ceil(n / 2)} bytes
     * @return the absmax of each block
     */
    static float[] quantize4(String what, Storage src, long srcOffset, long n, QuantType type, int blocksize,
                             byte[] packed) {
        int blocks = Math.toIntExact((n + blocksize - 1) / blocksize);
        float[] absmax = new float[blocks];
        Parallel.forRange(blocks, BLOCKS_PER_TASK, (from, to) -> {
            float[] x = new float[blocksize + 1];
            for (int b = from; b < to; b++) {
                long start = (long) b * blocksize;
                int len = (int) Math.min(blocksize, n - start);
                src.decode(srcOffset + start, len, x, 0);
                float max = absmax(what, x, len, start);
                absmax[b] = max;
                float inv = 1f / max;
                x[len] = 0f;
                int p = (int) (start >> 1);
                for (int i = 0; i < len; i += 2) {
                    packed[p++] = (byte) (type.encode(x[i] * inv) << 4 | type.encode(x[i + 1] * inv));
                }
            }
        });
        return absmax;
    }

    private static float absmax(String what, float[] x, int len, long start) {
        float max = 0f;
        for (int i = 0; i < len; i++) {
            float a = Math.abs(x[i]);
            if (!(a <= Float.MAX_VALUE)) {
                throw new IllegalArgumentException(what + ": element " + (start + i) + " is " + x[i]
                        + "; only finite weights can be quantized");
            }
            max = Math.max(max, a);
        }
        return max;
    }

    /**
     * 8-bit blockwise quantization of {@code x} with a sorted 256-value {@code map} (bitsandbytes'
     * {@code quantize_blockwise}); fills {@code codes} and returns the absmax of each block.
     */
    static float[] quantize8(float[] x, float[] map, int blocksize, byte[] codes) {
        int blocks = (x.length + blocksize - 1) / blocksize;
        float[] absmax = new float[blocks];
        for (int b = 0; b < blocks; b++) {
            int start = b * blocksize;
            int end = Math.min(x.length, start + blocksize);
            float max = 0f;
            for (int i = start; i < end; i++) {
                max = Math.max(max, Math.abs(x[i]));
            }
            absmax[b] = max;
            float inv = 1f / max;
            for (int i = start; i < end; i++) {
                codes[i] = (byte) nearest8(map, x[i] * inv);
            }
        }
        return absmax;
    }

    /**
     * The index of the map value nearest to {@code x}, found as bitsandbytes' {@code dQuantize}
     * finds it: seven halving steps from index 127 bracket x between a lower and an upper pivot,
     * then x goes to whichever side of their midpoint it lies on (NaN ends at index 0).
     */
    static int nearest8(float[] map, float x) {
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = -1f;
        float upper = 1f;
        float value = map[pivot];
        for (int step = 64; step > 0; step >>= 1) {
            if (x > value) {
                lowerPivot = pivot;
                lower = value;
                pivot += step;
            } else {
                upperPivot = pivot;
                upper = value;
                pivot -= step;
            }
            value = map[pivot];
        }
        if (upperPivot == 255) {
            upper = map[255];
        }
        if (lowerPivot == 0) {
            lower = map[0];
        }
        if (x > value) {
            return x > (upper + value) * 0.5f ? upperPivot : pivot;
        }
        return x < (lower + value) * 0.5f ? lowerPivot : pivot;
    }
}
