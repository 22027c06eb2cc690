package dev.lora4j.lora;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.autograd.Elementwise;
import dev.lora4j.autograd.MatMul;
import dev.lora4j.backend.Backends;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * A frozen linear layer with LoRA adapters (Hu et al. 2021):
 * h = x·W₀ᵀ + b + Σ_active scaling·(dropout(x)·Aᵀ)·Bᵀ, with W₀ frozen and B starting at zero so
 * that training starts from the base model. Several named adapters may be attached; the active
 * ones are summed. Merging folds scaling·B·A into W (no inference cost); unmerging restores W.
 */
public final class LoraLinear extends Linear {
    private final Map<String, LoraAdapter> adapters = new LinkedHashMap<>();
    private final List<String> active = new ArrayList<>();
    private final Set<String> merged = new LinkedHashSet<>();
    private boolean disabled;
    /** The weight as loaded, kept while adapters are merged into a widened copy (exact unmerge). */
    private Tensor unmergedWeight;
    private SplittableRandom dropoutRng = new SplittableRandom(0);
    /** The weight is shared with another tensor (a tied lm_head is the embedding): never merge in place. */
    private final boolean sharedWeight;

    public LoraLinear(Linear base) {
        this(base, false);
    }

    /** @param sharedWeight the base weight is also used elsewhere (tied embeddings): merging copies it first */
    public LoraLinear(Linear base, boolean sharedWeight) {
        super(base.name(), base.weight(), base.bias());
        this.sharedWeight = sharedWeight;
    }

    // ---------------------------------------------------------------- forward

    /**
     * h = x·W₀ᵀ + b + Σ_active scaling·(dropout(x)·Aᵀ)·Bᵀ as one fused op ({@link MatMul#loraLinear}):
     * no per-adapter output tensors, and no gradient for the frozen W₀.
     */
    @Override
    public Tensor forward(Tensor x) {
        if (disabled) {
            return super.forward(x);
        }
        int count = 0;
        for (String name : active) {
            if (!merged.contains(name)) {
                count++;
            }
        }
        if (count == 0) {
            return super.forward(x);
        }
        Tensor[] xd = new Tensor[count];
        Tensor[] a = new Tensor[count];
        Tensor[] b = new Tensor[count];
        float[] scaling = new float[count];
        int i = 0;
        for (String name : active) {
            if (merged.contains(name)) {
                continue;
            }
            LoraAdapter ad = adapters.get(name);
            boolean training = Autograd.isTraining() && ad.a().requiresGrad();
            xd[i] = training && ad.dropout() > 0 ? Elementwise.dropout(x, ad.dropout(), dropoutRng) : x;
            a[i] = ad.a();
            b[i] = ad.b();
            scaling[i] = (float) ad.scaling();
            i++;
        }
        return MatMul.loraLinear(x, weight(), bias(), xd, a, b, scaling);
    }

    /** Seeds the dropout masks of this layer (the trainer derives one seed per layer). */
    public void seedDropout(long seed) {
        dropoutRng = new SplittableRandom(seed);
    }

    /**
     * Advances the dropout stream as {@code passes} training forward passes would (one draw per
     * unmerged active adapter with dropout), without computing them: a data-parallel worker skips
     * the micro-batches that other workers take, so that its masks are those one process draws.
     */
    public void skipDropout(int passes) {
        if (disabled) {
            return;
        }
        for (int p = 0; p < passes; p++) {
            for (String name : active) {
                LoraAdapter ad = adapters.get(name);
                if (!merged.contains(name) && ad.a().requiresGrad() && ad.dropout() > 0) {
                    dropoutRng.nextLong();
                }
            }
        }
    }

    // ---------------------------------------------------------------- adapters

    public void addAdapter(String name, LoraAdapter adapter) {
        if (adapters.containsKey(name)) {
            throw new IllegalArgumentException(name() + ": an adapter named '" + name + "' exists already; delete it first");
        }
        if (adapter.a().dim(1) != inFeatures() || adapter.b().dim(0) != outFeatures()) {
            throw new IllegalArgumentException(name() + ": adapter '" + name + "' has A " + adapter.a() + " and B "
                    + adapter.b() + " but the layer maps " + inFeatures() + " → " + outFeatures());
        }
        adapters.put(name, adapter);
        if (active.isEmpty()) {
            active.add(name);
        }
    }

    public Map<String, LoraAdapter> adapters() {
        return Collections.unmodifiableMap(adapters);
    }

    public LoraAdapter adapter(String name) {
        LoraAdapter a = adapters.get(name);
        if (a == null) {
            throw new IllegalArgumentException(name() + ": no adapter named '" + name + "' (has " + adapters.keySet() + ")");
        }
        return a;
    }

    /** Makes exactly these adapters active (adapters this layer lacks are skipped). */
    public void setActive(List<String> names) {
        active.clear();
        for (String n : names) {
            if (adapters.containsKey(n)) {
                active.add(n);
            }
        }
    }

    public List<String> active() {
        return Collections.unmodifiableList(active);
    }

    public void setDisabled(boolean value) {
        disabled = value;
    }

    public boolean isDisabled() {
        return disabled;
    }

    public void deleteAdapter(String name) {
        adapter(name);
        if (merged.contains(name)) {
            throw new IllegalStateException(name() + ": adapter '" + name + "' is merged; unmerge it before deleting");
        }
        adapters.remove(name);
        active.remove(name);
    }

    // ---------------------------------------------------------------- merge

    /** ΔW = scaling·B·A, [out, in]. */
    public float[] delta(String name) {
        LoraAdapter ad = adapter(name);
        Tensor d = Tensor.zeros(outFeatures(), inFeatures());
        Tensor a = ad.a().contiguous();
        Tensor b = ad.b().contiguous();
        Backends.get().gemm(false, false, outFeatures(), inFeatures(), ad.rank(), (float) ad.scaling(), b.storage(),
                b.offset(), ad.rank(), a.storage(), a.offset(), inFeatures(), 0f, d.storage(), 0, inFeatures());
        return d.data();
    }

    /**
     * W += scaling·B·A for the named adapter. A weight that is not heap F32 (BF16, memory-mapped)
     * or that is shared (a tied lm_head) is copied to F32 first; the original is kept so that
     * unmerging all adapters restores it exactly.
     */
    public void merge(String name) {
        if (merged.contains(name)) {
            throw new IllegalStateException(name() + ": adapter '" + name + "' is merged already");
        }
        float[] d = delta(name);
        if (unmergedWeight == null
                && (sharedWeight || !(weight().storage() instanceof FloatStorage) || weight().offset() != 0)) {
            unmergedWeight = weight();
            setWeight(Tensor.of(weight().toFloatArray(), weight().shape()).name(weight().name()));
        }
        float[] w = weight().data();
        for (int i = 0; i < d.length; i++) {
            w[i] += d[i];
        }
        merged.add(name);
    }

    /** W −= scaling·B·A; once nothing is merged, a widened weight returns to its original storage. */
    public void unmerge(String name) {
        if (!merged.remove(name)) {
            throw new IllegalStateException(name() + ": adapter '" + name + "' is not merged");
        }
        if (merged.isEmpty() && unmergedWeight != null) {
            setWeight(unmergedWeight);
            unmergedWeight = null;
            return;
        }
        float[] d = delta(name);
        float[] w = weight().data();
        for (int i = 0; i < d.length; i++) {
            w[i] -= d[i];
        }
    }

    public Set<String> merged() {
        return Collections.unmodifiableSet(merged);
    }
}
