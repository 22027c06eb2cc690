package dev.lora4j.lora;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.data.Example;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.CausalLmLoss;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Checks a merge end to end: the merged model, as it would be saved, must give the same loss on
 * a few tokens as the adapter model it came from, within the rounding of the stored weights.
 *
 * <p>The probe tokens are BOS followed by the adapter model's own greedy continuation
 * ({@value #PROBE_NEW_TOKENS} tokens): on text the adapter model is confident about, an update
 * that the merge lost (an output layer left tied to the embedding, a skipped layer, a wrong
 * scaling) moves the loss towards the base model's. The merged model is checked through
 * {@link #asSaved(LlamaModel)}, a model rebuilt from the tensors {@link LlamaModel#allTensors()}
 * lists, i.e. exactly what {@code ModelLoader.save} writes; a head that was merged but still
 * tied, and therefore not written, is caught.
 *
 * <p>Tolerance: |loss(merged) − loss(adapter)| ≤ {@code absolute + relative·loss(adapter)}, by
 * how the merged weights are stored (see {@link #tolerance(String)}); a larger difference throws
 * {@link MergeMismatchException} naming both losses, the base model's loss and the tolerance.
 */
public final class MergeCheck {
    private static final Logger LOG = LoggerFactory.getLogger(MergeCheck.class);
    /** Tokens the adapter model generates greedily after BOS to form the probe. */
    public static final int PROBE_NEW_TOKENS = 15;

    /**
     * The loss of the adapter model (and of the base, adapters disabled) on the probe tokens,
     * taken before merging.
     *
     * @param tokens      BOS (when the config names one) and the adapter model's greedy continuation
     * @param adapterLoss mean next-token loss of the model with its active adapters
     * @param baseLoss    the same with every adapter disabled (for the message: how far a lost update moves it)
     */
    public record Probe(int[] tokens, double adapterLoss, double baseLoss) {
    }

    /**
     * The allowed difference for a storage of the merged weights: loss difference ≤ absolute +
     * relative·loss.
     *
     * @param stored    what the merged weights are stored as (e.g. "f32", "bf16", "nf4-dq")
     * @param absolute  absolute part of the allowed loss difference
     * @param relative  relative part (times the adapter model's loss)
     * @param reason    why this much is rounding
     */
    public record Tolerance(String stored, double absolute, double relative, String reason) {
        public double allowed(double loss) {
            return absolute + relative * Math.abs(loss);
        }
    }

    /** The outcome of a passed check. */
    public record Result(Probe probe, double mergedLoss, Tolerance tolerance) {
        public double difference() {
            return Math.abs(mergedLoss - probe.adapterLoss());
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "merge check: loss on %d probe tokens %.5f merged vs %.5f with the adapter "
                            + "(|diff| %.2g <= %.2g for %s weights; base model %.5f)", probe.tokens().length,
                    mergedLoss, probe.adapterLoss(), difference(), tolerance.allowed(probe.adapterLoss()),
                    tolerance.stored(), probe.baseLoss());
        }
    }

    /** Thrown when the merged model does not reproduce the adapter model. */
    public static final class MergeMismatchException extends IllegalStateException {
        private static final long serialVersionUID = 1L;
        private final transient Result result;

        MergeMismatchException(String message, Result result) {
            super(message);
            this.result = result;
        }

        /** The losses compared. */
        public Result result() {
            return result;
        }
    }

    private MergeCheck() {
    }

    /**
     * The tolerance for merged weights stored as {@code stored}. The adapter model computes
     * x·W₀ᵀ + s·(x·Aᵀ)·Bᵀ in F32 and the merged one x·(W₀ + s·B·A)ᵀ: in F32 only the order of
     * additions differs (1e-4). BF16 keeps 8 significant bits, so each merged weight moves by up
     * to 2⁻⁹ of itself; on the shipped models that moves the loss by a few 1e-3, hence 0.02 +
     * 1%. F16 keeps 11 bits (0.01 + 0.5%). A 4-bit requantization moves each weight by up to
     * half a quantization step (NF4: about 1/16 of the block's absmax), which moves the loss by
     * up to a few tenths on small models, hence 0.1 + 10%: still well below the loss change of an
     * update that was lost (the case: 2.17 vs 2.80).
     *
     * @param stored "f32", "bf16", "f16", or a 4-bit type name ("nf4", "nf4-dq", "fp4", ...)
     */
    public static Tolerance tolerance(String stored) {
        String s = stored.toLowerCase(Locale.ROOT);
        return switch (s) {
            case "f32", "float32" -> new Tolerance(s, 1e-4, 1e-4, "F32 merge: only the order of additions differs");
            case "bf16", "bfloat16" -> new Tolerance(s, 0.02, 0.01, "BF16 rounding of the merged weights (8 significant bits)");
            case "f16", "float16" -> new Tolerance(s, 0.01, 0.005, "F16 rounding of the merged weights (11 significant bits)");
            default -> {
                if (s.startsWith("nf4") || s.startsWith("fp4")) {
                    yield new Tolerance(s, 0.1, 0.1, "4-bit requantization of the merged weights");
                }
                throw new IllegalArgumentException("merge check: no tolerance for weights stored as '" + stored
                        + "'; expected f32, bf16, f16 or a 4-bit type (nf4, nf4-dq, fp4, fp4-dq)");
            }
        };
    }

    /** The tolerance for a dtype of the merged weights. */
    public static Tolerance tolerance(DType dtype) {
        return tolerance(switch (dtype) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            case F16 -> "f16";
            default -> throw new IllegalArgumentException("merge check: merged weights cannot be stored as " + dtype
                    + "; expected F32, BF16 or F16");
        });
    }

    /**
     * Takes the probe from a model with adapters, before merging: BOS plus the model's greedy
     * continuation, and its loss with and without the adapters.
     */
    public static Probe probe(LoraModel lora) {
        LlamaModel model = lora.model();
        // a merge folds in the active adapters even while they are disabled (PEFT's merge_and_unload)
        boolean wasDisabled = lora.adaptersDisabled();
        lora.enableAdapters();
        Integer bos = model.config().bosTokenId();
        int start = bos != null ? bos : 0;
        int maxNew = Math.max(1, Math.min(PROBE_NEW_TOKENS, model.config().maxPositionEmbeddings() - 1));
        int[] generated = new dev.lora4j.model.Generator(model).maxNewTokens(maxNew).generate(new int[] {start});
        int[] tokens = new int[1 + generated.length];
        tokens[0] = start;
        System.arraycopy(generated, 0, tokens, 1, generated.length);
        double adapterLoss = loss(model, tokens);
        lora.disableAdapters();
        double baseLoss;
        try {
            baseLoss = loss(model, tokens);
        } finally {
            if (!wasDisabled) {
                lora.enableAdapters();
            }
        }
        return new Probe(tokens, adapterLoss, baseLoss);
    }

    /**
     * Compares the merged model, as it would be saved, with the probe; throws
     * {@link MergeMismatchException} when the losses differ by more than the tolerance.
     */
    public static Result verify(Probe probe, LlamaModel merged, Tolerance tolerance) {
        return verifyLoaded(probe, asSaved(merged), tolerance, "the merged model");
    }

    /**
     * Compares a model read back from a saved folder with the probe (the command line checks the
     * folder it wrote); throws {@link MergeMismatchException} on a mismatch.
     */
    public static Result verifyLoaded(Probe probe, LlamaModel model, Tolerance tolerance, String what) {
        double mergedLoss = loss(model, probe.tokens());
        Result result = new Result(probe, mergedLoss, tolerance);
        double allowed = tolerance.allowed(probe.adapterLoss());
        if (!(result.difference() <= allowed)) {
            throw new MergeMismatchException(String.format(Locale.ROOT, "merge check failed: %s gives loss %.5f on %d "
                            + "probe tokens but the model with the adapter gives %.5f (|diff| %.4g > tolerance %.4g = %s "
                            + "+ %s·loss for %s weights: %s; the base model without the adapter gives %.5f). The merged "
                            + "weights do not reproduce the adapter: part of the update was lost or changed. Do not use "
                            + "this merged model; serve the base with the adapter instead, and report this as a bug.",
                    what, mergedLoss, probe.tokens().length, probe.adapterLoss(), result.difference(), allowed,
                    tolerance.absolute(), tolerance.relative(), tolerance.stored(), tolerance.reason(), probe.baseLoss()),
                    result);
        }
        LOG.info("{}", result);
        return result;
    }

    /**
     * The model that {@code ModelLoader.save} would write: rebuilt from {@link LlamaModel#allTensors()}
     * and the config (a tied lm_head is the embedding again). Shares the tensors; nothing is copied.
     */
    public static LlamaModel asSaved(LlamaModel model) {
        Map<String, Tensor> tensors = model.allTensors();
        return LlamaModel.assemble(model.config(), (name, shape) -> {
            Tensor t = tensors.get(name);
            if (t == null) {
                throw new IllegalStateException("merge check: the merged model lists no tensor " + name);
            }
            return t;
        });
    }

    /** Mean next-token loss on one sequence, no graph recorded. */
    public static double loss(LlamaModel model, int[] tokens) {
        try (Autograd.Scope ignored = Autograd.noGrad()) {
            CausalLmLoss.Batch batch = CausalLmLoss.collate(List.of(Example.unmasked(tokens)), 0);
            return CausalLmLoss.loss(model, batch).toFloatArray()[0];
        }
    }
}
