package dev.lora4j.quant;

import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;

/**
 * Bytes of a model's frozen weights stored four ways: all F32, all BF16, and with the decoder
 * projections in NF4 (blocksize 64) with and without double quantization while the embedding,
 * norms and lm_head stay BF16, as bitsandbytes keeps them. Counted from the shapes alone
 * ({@link LlamaModel#meta}), so any size of model can be planned without loading it.
 *
 * @param quantizedParameters parameters in the 4-bit projections
 * @param otherParameters parameters kept in 16 bits (embedding, norms, biases, lm_head)
 */
public record MemoryReport(long quantizedParameters, long otherParameters, long f32Bytes, long bf16Bytes, long nf4Bytes,
                           long nf4DqBytes) {

    /** Counts the frozen weights of a model with this configuration. */
    public static MemoryReport of(LlamaConfig config) {
        LlamaModel meta = LlamaModel.meta(config);
        Set<String> projections = new HashSet<>();
        meta.linears().forEach((name, lin) -> {
            if (!name.equals("lm_head")) {
                projections.add(name + ".weight");
            }
        });
        long quantized = 0;
        long other = 0;
        long nf4 = 0;
        long nf4dq = 0;
        for (var e : meta.allTensors().entrySet()) {
            Tensor t = e.getValue();
            if (projections.contains(e.getKey())) {
                quantized += t.numel();
                nf4 += QuantConfig.NF4.bytesFor(t.numel());
                nf4dq += QuantConfig.NF4_DQ.bytesFor(t.numel());
            } else {
                other += t.numel();
            }
        }
        long total = quantized + other;
        return new MemoryReport(quantized, other, 4 * total, 2 * total, nf4 + 2 * other, nf4dq + 2 * other);
    }

    /** A small table in MiB, e.g. for a benchmark's output. */
    @Override
    public String toString() {
        return String.format(Locale.ROOT,
                "frozen weights (%,d parameters, %,d of them in 4-bit projections):%n"
                        + "  F32      %,12.1f MiB%n  BF16     %,12.1f MiB%n  NF4      %,12.1f MiB  (%.3f bits per quantized parameter)%n"
                        + "  NF4+DQ   %,12.1f MiB  (%.3f bits per quantized parameter)",
                quantizedParameters + otherParameters, quantizedParameters, mib(f32Bytes), mib(bf16Bytes), mib(nf4Bytes),
                bits(nf4Bytes), mib(nf4DqBytes), bits(nf4DqBytes));
    }

    private double bits(long bytes) {
        return 8.0 * (bytes - 2 * otherParameters) / quantizedParameters;
    }

    private static double mib(long bytes) {
        return bytes / (1024.0 * 1024.0);
    }
}
