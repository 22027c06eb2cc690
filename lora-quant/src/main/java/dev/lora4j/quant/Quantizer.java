package dev.lora4j.quant;

import dev.lora4j.lora.LoraLinear;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns a model's frozen projections into 4-bit weights for QLoRA training: every q/k/v/o and
 * gate/up/down projection of every decoder layer gets a {@link QuantizedStorage}, while the
 * embedding, the norms, biases and lm_head stay as they are, which is what bitsandbytes does
 * through Hugging Face ({@code load_in_4bit} converts the decoder's nn.Linear layers and keeps the
 * output embedding). Call it before {@code LoraModel.wrap}; LoRA then sits on top exactly as on a
 * 16-bit base.
 *
 * <pre>{@code
 * LlamaModel model = LlamaModel.load(dir);
 * Quantizer.quantize(model, QuantConfig.NF4_DQ);
 * LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(8).alpha(16));
 * }</pre>
 */
public final class Quantizer {
    private static final Logger LOG = LoggerFactory.getLogger(Quantizer.class);

    private Quantizer() {
    }

    /**
     * Quantizes every decoder projection in place and returns their module names. The previous
     * weights are released (a memory-mapped checkpoint is only read).
     *
     * @throws IllegalStateException if a projection is quantized already or has merged adapters
     */
    public static List<String> quantize(LlamaModel model, QuantConfig config) {
        long before = model.baseByteSize();
        List<String> done = new ArrayList<>();
        for (Linear lin : model.linears().values()) {
            if (lin.name().equals("lm_head")) {
                continue;
            }
            if (lin instanceof LoraLinear ll && !ll.merged().isEmpty()) {
                throw new IllegalStateException(lin.name() + ": adapters " + ll.merged() + " are merged into the weight; "
                        + "unmerge them before quantizing the base");
            }
            Tensor q = quantize(lin.weight(), config);
            // a weight placed on a device is quantized on the host (one copy each way) and goes back 4-bit
            lin.setWeight(lin.weight().device() == q.device() ? q : q.to(lin.weight().device()));
            done.add(lin.name());
        }
        LOG.info("quantized {} projections to {} ({} bits per parameter): frozen weights {} MB -> {} MB", done.size(), config,
                String.format("%.3f", config.bitsPerParameter()), before >> 20, model.baseByteSize() >> 20);
        return done;
    }

    /** A 4-bit copy of a 2-D weight [out, in] (any storage), with the same name. */
    public static Tensor quantize(Tensor weight, QuantConfig config) {
        String what = weight.name() != null ? weight.name() : "weight " + Arrays.toString(weight.shape());
        if (weight.storage() instanceof QuantizedStorage q) {
            throw new IllegalStateException(what + " is quantized already (" + q.config() + "); quantize the 16-bit "
                    + "weights instead of requantizing");
        }
        if (weight.rank() != 2 || !weight.isContiguous()) {
            throw new IllegalArgumentException(what + ": only contiguous 2-D weights [out, in] are quantized, got "
                    + weight);
        }
        DType source = weight.dtype() == DType.BF16 || weight.dtype() == DType.F16 ? weight.dtype() : DType.F32;
        QuantizedStorage q = QuantizedStorage.quantize(what, weight.storage(), weight.offset(), weight.shape(), config,
                source);
        return new Tensor(q, weight.shape()).name(weight.name());
    }

    /** A 4-bit weight of the given shape from F32 values (row-major). */
    public static Tensor quantize(String name, float[] values, int[] shape, QuantConfig config, DType sourceDType) {
        Tensor t = Tensor.of(values, shape);
        QuantizedStorage q = QuantizedStorage.quantize(name, t.storage(), 0, shape, config, sourceDType);
        return new Tensor(q, shape).name(name);
    }
}
