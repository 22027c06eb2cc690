package dev.lora4j.cuda;

/**
 * A frozen base weight on the device as the LoRA kernels read it: BF16, or bitsandbytes 4-bit.
 * {@link #elements()} is the logical element count (rows × columns).
 */
public sealed interface FrozenWeight permits FrozenWeight.Bf16, FrozenWeight.Quant4 {

    long elements();

    /** A BF16 matrix, two bytes per element. */
    record Bf16(KernelBuffer data, long elements) implements FrozenWeight {
        public Bf16 {
            Kernels.need("BF16 weight", data, 2 * elements);
        }
    }

    /**
     * A 4-bit weight in the bitsandbytes layout (see lora-quant's QuantizedStorage): packed codes,
     * two per byte with element 2k in the high nibble; per-block absmax as F32 ({@code absmax}) or,
     * with double quantization ({@code absmax} null), 8-bit codes into {@code nestedMap} scaled by
     * {@code nestedAbsmax} per group of {@code nestedBlocksize} blocks, plus {@code offset}; {@code code}
     * the 16-value table (NF4 or FP4) as F32.
     */
    record Quant4(KernelBuffer packed, KernelBuffer absmax, KernelBuffer absmaxCodes, KernelBuffer nestedAbsmax,
                  KernelBuffer nestedMap, float offset, KernelBuffer code, int blocksize, int nestedBlocksize,
                  long elements) implements FrozenWeight {
        public Quant4 {
            if (blocksize < 2 || Integer.bitCount(blocksize) != 1) {
                throw new IllegalArgumentException("4-bit blocksize must be a power of two ≥ 2, was " + blocksize);
            }
            long blocks = (elements + blocksize - 1) / blocksize;
            Kernels.need("4-bit packed codes", packed, (elements + 1) / 2);
            Kernels.need("4-bit code table", code, 16 * 4);
            if (absmax != null) {
                Kernels.need("4-bit absmax", absmax, 4 * blocks);
            } else {
                if (nestedBlocksize < 1 || Integer.bitCount(nestedBlocksize) != 1) {
                    throw new IllegalArgumentException("nested blocksize must be a power of two, was " + nestedBlocksize);
                }
                Kernels.need("4-bit absmax codes", absmaxCodes, blocks);
                Kernels.need("nested absmax", nestedAbsmax, 4 * ((blocks + nestedBlocksize - 1) / nestedBlocksize));
                Kernels.need("nested quant map", nestedMap, 256 * 4);
            }
        }

        int blockShift() {
            return Integer.numberOfTrailingZeros(blocksize);
        }

        int nestedShift() {
            return absmax != null ? 0 : Integer.numberOfTrailingZeros(nestedBlocksize);
        }

        /** The weight's arguments in the kernels' order: packed, absmax, absmaxCodes, nestedAbsmax, nestedMap, offset, code. */
        KernelArgs addTo(KernelArgs a) {
            return a.ptr(packed).ptr(absmax).ptr(absmax != null ? null : absmaxCodes).ptr(absmax != null ? null : nestedAbsmax)
                    .ptr(absmax != null ? null : nestedMap).f32(absmax != null ? 0f : offset).ptr(code);
        }
    }
}
