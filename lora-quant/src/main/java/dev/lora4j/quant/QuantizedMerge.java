package dev.lora4j.quant;

import dev.lora4j.lora.LoraLinear;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.MergeCheck;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Merges LoRA adapters into a 4-bit base, one layer at a time so that at most one layer is ever
 * widened to F32: W = dequantize(W₄) + Σ_active scaling·B·A, computed in F32, then stored as BF16
 * (what QLoRA users save and serve), or, on request, requantized with the base's own
 * configuration. Either way the rounding that the stored format adds to the exact F32 merge is
 * measured and reported (max and mean absolute difference).
 *
 * <p>As {@link LoraModel#mergeAndUnload()}, a merge that changes a tied lm_head gives the head its
 * own weight (tie_word_embeddings false; the model grows by vocab × hidden), and every merge
 * checks itself with {@link MergeCheck}: the merged model, as it would be saved, must give the
 * adapter model's loss on a few probe tokens within the rounding of the stored format, or a
 * {@link MergeCheck.MergeMismatchException} names both losses.
 *
 * <pre>{@code
 * LlamaModel merged = QuantizedMerge.mergeAndUnload(lora);      // BF16, like lora.mergeAndUnload()
 * QuantizedMerge.Result r = QuantizedMerge.merge(lora, QuantizedMerge.Target.REQUANTIZE);
 * log.info("requantization error: {}, {}", r.overall(), r.check());
 * r.save(Path.of("merged"), baseFolder);   // a 4-bit folder (REQUANTIZE) or a BF16 one, with tokenizer files
 * }</pre>
 */
public final class QuantizedMerge {
    private static final Logger LOG = LoggerFactory.getLogger(QuantizedMerge.class);

    private QuantizedMerge() {
    }

    /** What the merged weights are stored as. */
    public enum Target {
        /** 16-bit: BF16 for every merged layer. */
        BF16,
        /** 4-bit again, with the type, blocksize and double quantization of the layer's base. */
        REQUANTIZE
    }

    /** Absolute differences between the stored merged weight and the exact F32 merge. */
    public record RoundingError(double max, double mean, long count) {
        static RoundingError combine(RoundingError a, RoundingError b) {
            long n = a.count + b.count;
            return new RoundingError(Math.max(a.max, b.max), n == 0 ? 0 : (a.mean * a.count + b.mean * b.count) / n, n);
        }

        @Override
        public String toString() {
            return String.format(java.util.Locale.ROOT, "max |diff| %.6g, mean |diff| %.6g over %,d weights", max, mean, count);
        }
    }

    /**
     * @param model the base model with merged weights and plain {@link Linear} layers (the
     *     LoraModel must not be used afterwards)
     * @param perLayer the rounding error of each merged layer, by module name
     * @param overall all merged layers together
     * @param target what the merged weights are stored as
     * @param check the passed merge check (loss of the merged model against the adapter model)
     */
    public record Result(LlamaModel model, Map<String, RoundingError> perLayer, RoundingError overall, Target target,
                         MergeCheck.Result check) {
        /**
         * Writes the merged model as a complete Hugging Face folder: under REQUANTIZE a
         * bitsandbytes 4-bit folder ({@link QuantizedCheckpoint#save(LlamaModel, Path)}), under
         * BF16 a BF16 folder ({@link ModelLoader#saveFolder}); both with the tokenizer files and
         * generation_config.json of {@code baseFolder} (null: none copied).
         *
         * @return the names of the files written
         */
        public List<String> save(Path folder, Path baseFolder) {
            if (target == Target.BF16) {
                return ModelLoader.saveFolder(model, folder, DType.BF16, baseFolder);
            }
            QuantizedCheckpoint.save(model, folder);
            return ModelLoader.copyModelFiles(model.config(), baseFolder, folder);
        }
    }

    /**
     * PEFT's merge_and_unload for a 4-bit base: merges the active adapters, stores the merged
     * layers as BF16 and returns the plain model, to save with {@link ModelLoader#saveFolder}.
     */
    public static LlamaModel mergeAndUnload(LoraModel lora) {
        return merge(lora, Target.BF16).model();
    }

    /**
     * Merges every active adapter of every LoRA layer (PEFT's merge_and_unload) and stores the
     * merged weights as {@code target}. Under REQUANTIZE only layers whose base is 4-bit are
     * requantized; others (an adapted lm_head) become BF16. Layers without adapters keep their
     * weights. Active adapters are merged even while disabled, as in PEFT.
     *
     * @throws MergeCheck.MergeMismatchException when the merged model does not reproduce the
     *     adapter model's loss within the rounding of {@code target}
     */
    public static Result merge(LoraModel lora, Target target) {
        LlamaModel model = lora.model();
        MergeCheck.Probe probe = MergeCheck.probe(lora);
        QuantConfig requantizedAs = null;
        Map<String, RoundingError> perLayer = new LinkedHashMap<>();
        RoundingError overall = new RoundingError(0, 0, 0);
        for (Linear lin : model.linears().values()) {
            if (!(lin instanceof LoraLinear ll)) {
                continue;
            }
            if (!ll.merged().isEmpty()) {
                throw new IllegalStateException(ll.name() + ": adapters " + ll.merged() + " are merged already; unmerge them "
                        + "(LoraModel.unmerge) so that the base is the 4-bit weight");
            }
            Tensor base = ll.weight();
            float[] w = base.toFloatArray();
            for (String name : ll.active()) {
                float[] d = ll.delta(name);
                for (int i = 0; i < w.length; i++) {
                    w[i] += d[i];
                }
            }
            Tensor stored;
            if (target == Target.REQUANTIZE && base.storage() instanceof QuantizedStorage q) {
                stored = Quantizer.quantize(base.name(), w, base.shape(), q.config(), q.sourceDType());
                requantizedAs = q.config();
            } else {
                stored = new Tensor(BufferStorage.of(w, DType.BF16), base.shape()).name(base.name());
            }
            RoundingError error = difference(stored, w);
            perLayer.put(ll.name(), error);
            overall = RoundingError.combine(overall, error);
            if (ll.name().equals("lm_head") && model.config().tieWordEmbeddings() && !ll.active().isEmpty()) {
                // the head now differs from the embedding: it must be saved as its own tensor
                LOG.info("the merged adapter changed lm_head, whose weight was tied to the embedding: the merged model "
                        + "has its own lm_head.weight (tie_word_embeddings false)");
                model.untieLmHead();
            }
            model.replaceLinear(ll.name(), new Linear(ll.name(), stored, ll.bias()));
        }
        LOG.info("merged LoRA adapters into {} layers, stored as {}: {}", perLayer.size(), target, overall);
        MergeCheck.Tolerance tolerance = requantizedAs != null ? MergeCheck.tolerance(requantizedAs.toString())
                : MergeCheck.tolerance(DType.BF16);
        MergeCheck.Result check = MergeCheck.verify(probe, model, tolerance);
        return new Result(model, Collections.unmodifiableMap(perLayer), overall, target, check);
    }

    private static RoundingError difference(Tensor stored, float[] exact) {
        float[] chunk = new float[Math.min(exact.length, 1 << 16)];
        double max = 0;
        double sum = 0;
        for (int start = 0; start < exact.length; start += chunk.length) {
            int n = Math.min(chunk.length, exact.length - start);
            stored.storage().decode(start, n, chunk, 0);
            for (int i = 0; i < n; i++) {
                double d = Math.abs((double) chunk[i] - exact[start + i]);
                max = Math.max(max, d);
                sum += d;
            }
        }
        return new RoundingError(max, exact.length == 0 ? 0 : sum / exact.length, exact.length);
    }
}
