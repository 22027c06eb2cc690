package dev.lora4j.model;

import dev.lora4j.autograd.Attention;
import dev.lora4j.autograd.Autograd;
import dev.lora4j.autograd.Checkpoint;
import dev.lora4j.autograd.Elementwise;
import dev.lora4j.autograd.Embedding;
import dev.lora4j.autograd.RmsNorm;
import dev.lora4j.autograd.Rope;
import dev.lora4j.nn.KvCache;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.MetaStorage;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.BiFunction;

/**
 * Hugging Face's LlamaForCausalLM and the configs of the same shape (Mistral, TinyLlama, SmolLM,
 * Qwen2 with q/k/v bias): token embedding, N pre-norm decoder layers (RMSNorm → grouped-query
 * attention with RoPE → residual; RMSNorm → SwiGLU MLP → residual), a final RMSNorm and the
 * language-model head (tied to the embedding when the config says so).
 *
 * <p>Every tensor is addressed by its Hugging Face name ({@link #allTensors()}), every linear
 * layer by its module path ({@link #linears()}), which is how checkpoints, LoRA targeting and
 * PEFT adapter files refer to them.
 *
 * <p>Thread safety: not thread-safe; use a model from one thread at a time. A forward pass reads
 * the weights without locking, and {@link #replaceLinear}, {@link #untieLmHead} and LoRA wrapping
 * change the model in place. (Gradient recording is per thread and each {@link Generator} call
 * has its own {@link KvCache}, but concurrent forward passes on one model are not tested.)
 */
public final class LlamaModel {
    private LlamaConfig config;
    private final Tensor embedTokens;
    private final List<DecoderLayer> layers;
    private final Tensor norm;
    private Linear lmHead;
    private final Rope.Table rope;
    private boolean activationCheckpointing;

    /** One decoder block; fields are the Hugging Face submodules. */
    public static final class DecoderLayer {
        public final Tensor inputLayernorm;
        public final Tensor postAttentionLayernorm;
        Linear qProj;
        Linear kProj;
        Linear vProj;
        Linear oProj;
        Linear gateProj;
        Linear upProj;
        Linear downProj;

        DecoderLayer(Tensor inputLayernorm, Tensor postAttentionLayernorm, Linear q, Linear k, Linear v, Linear o,
                     Linear gate, Linear up, Linear down) {
            this.inputLayernorm = inputLayernorm;
            this.postAttentionLayernorm = postAttentionLayernorm;
            this.qProj = q;
            this.kProj = k;
            this.vProj = v;
            this.oProj = o;
            this.gateProj = gate;
            this.upProj = up;
            this.downProj = down;
        }
    }

    LlamaModel(LlamaConfig config, Tensor embedTokens, List<DecoderLayer> layers, Tensor norm, Linear lmHead) {
        this.config = config;
        this.embedTokens = embedTokens;
        this.layers = List.copyOf(layers);
        this.norm = norm;
        this.lmHead = lmHead;
        this.rope = embedTokens.storage() instanceof MetaStorage ? null : new Rope.Table(config.headDim(),
                config.maxPositionEmbeddings(), ropeFrequencies(config));
    }

    // ---------------------------------------------------------------- construction

    /**
     * Builds the model from a tensor source: {@code weights.apply(name, shape)} returns the tensor
     * for each Hugging Face name (it checks presence and shape). Public so that loaders of other
     * checkpoint formats (lora-quant's 4-bit checkpoints) can supply their own storages.
     */
    public static LlamaModel assemble(LlamaConfig c, BiFunction<String, int[], Tensor> weights) {
        int hidden = c.hiddenSize();
        int qDim = c.numAttentionHeads() * c.headDim();
        int kvDim = c.numKeyValueHeads() * c.headDim();
        int inter = c.intermediateSize();
        boolean qkvBias = c.qkvBias();
        boolean oBias = c.outputProjBias();
        Tensor embed = weights.apply("model.embed_tokens.weight", new int[] {c.vocabSize(), hidden});
        List<DecoderLayer> layers = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String p = "model.layers." + i + ".";
            BiFunction<String, int[], Linear> linear = (module, shape) -> new Linear(p + module,
                    weights.apply(p + module + ".weight", shape), null);
            layers.add(new DecoderLayer(
                    weights.apply(p + "input_layernorm.weight", new int[] {hidden}),
                    weights.apply(p + "post_attention_layernorm.weight", new int[] {hidden}),
                    withBias(p + "self_attn.q_proj", weights, qkvBias, qDim, hidden),
                    withBias(p + "self_attn.k_proj", weights, qkvBias, kvDim, hidden),
                    withBias(p + "self_attn.v_proj", weights, qkvBias, kvDim, hidden),
                    withBias(p + "self_attn.o_proj", weights, oBias, hidden, qDim),
                    withBias(p + "mlp.gate_proj", weights, c.mlpBias(), inter, hidden),
                    withBias(p + "mlp.up_proj", weights, c.mlpBias(), inter, hidden),
                    withBias(p + "mlp.down_proj", weights, c.mlpBias(), hidden, inter)));
        }
        Tensor norm = weights.apply("model.norm.weight", new int[] {hidden});
        Linear head = c.tieWordEmbeddings() ? new Linear("lm_head", embed, null)
                : new Linear("lm_head", weights.apply("lm_head.weight", new int[] {c.vocabSize(), hidden}), null);
        return new LlamaModel(c, embed, layers, norm, head);
    }

    private static Linear withBias(String module, BiFunction<String, int[], Tensor> weights, boolean bias, int out, int in) {
        return new Linear(module, weights.apply(module + ".weight", new int[] {out, in}),
                bias ? weights.apply(module + ".bias", new int[] {out}) : null);
    }

    /** Shapes only, no memory: for parameter counts and memory planning of any size of model. */
    public static LlamaModel meta(LlamaConfig config) {
        return assemble(config, (name, shape) -> new Tensor(new MetaStorage(DType.F32, Tensor.numel(shape)), shape).name(name));
    }

    /**
     * A freshly initialized model with F32 weights, as Hugging Face initializes one
     * (normal(0, initializer_range = 0.02) for matrices, zeros for biases, ones for norms), from a
     * seed. Used to pretrain small models from scratch.
     */
    public static LlamaModel initialize(LlamaConfig config, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        return assemble(config, (name, shape) -> {
            Tensor t;
            if (name.endsWith("norm.weight")) {
                t = Tensor.full(1f, shape);
            } else if (name.endsWith(".bias")) {
                t = Tensor.zeros(shape);
            } else {
                t = Tensor.normal(rng.split(), 0f, 0.02f, shape);
            }
            return t.name(name);
        });
    }

    /** Loads a Hugging Face model folder; see {@link ModelLoader}. */
    public static LlamaModel load(java.nio.file.Path folder) {
        return ModelLoader.load(folder, ModelLoader.Options.defaults());
    }

    // ---------------------------------------------------------------- forward

    /** Logits [B, T, V] for token ids laid out [B, T] (row-major), with the graph recorded if needed. */
    public Tensor forward(int[] tokens, int batch) {
        return forward(tokens, batch, null);
    }

    /**
     * Logits [B, T, V]. With a {@link KvCache}, {@code tokens} continue the cached positions
     * (generation; no gradients), and their keys/values are appended to the cache.
     */
    public Tensor forward(int[] tokens, int batch, KvCache cache) {
        if (rope == null) {
            throw new IllegalStateException("this model was built from its config alone (meta); load weights to run it");
        }
        if (batch <= 0 || tokens.length % batch != 0) {
            throw new IllegalArgumentException("forward: " + tokens.length + " tokens do not split into batch " + batch);
        }
        if (cache != null && Autograd.isGradEnabled() && hasTrainable()) {
            throw new IllegalStateException("forward with a KV cache is for generation: wrap it in Autograd.noGrad()");
        }
        int t = tokens.length / batch;
        int hidden = config.hiddenSize();
        int h = config.numAttentionHeads();
        int g = config.numKeyValueHeads();
        int d = config.headDim();
        int pos0 = cache == null ? 0 : cache.length();
        if (cache != null && (cache.capacity() < pos0 + t)) {
            throw new IllegalArgumentException("KV cache holds " + cache.capacity() + " positions; " + (pos0 + t) + " needed");
        }
        Integer window = config.slidingWindow();
        if (window != null && pos0 + t > window) {
            throw new IllegalArgumentException("forward: sequence of " + (pos0 + t) + " tokens exceeds the sliding_window "
                    + window + " of config.json; lora4j attends over the full causal context, which matches the model "
                    + "only within the window: use sequences of at most " + window + " tokens");
        }
        Tensor x = Embedding.lookup(embedTokens, tokens).reshape(batch, t, hidden);
        for (int li = 0; li < layers.size(); li++) {
            DecoderLayer layer = layers.get(li);
            if (activationCheckpointing && cache == null && Autograd.isGradEnabled()) {
                x = Checkpoint.apply(x, trainableTensors(layer), in -> decoderLayer(layer, -1, in, null, batch, t, pos0));
            } else {
                x = decoderLayer(layer, li, x, cache, batch, t, pos0);
            }
        }
        if (cache != null) {
            cache.advance(t);
        }
        x = RmsNorm.apply(x, norm, (float) config.rmsNormEps());
        return lmHead.forward(x);
    }

    /** One pre-norm decoder block: x + attention(norm(x)), then + mlp(norm(·)). */
    private Tensor decoderLayer(DecoderLayer layer, int li, Tensor x, KvCache cache, int batch, int t, int pos0) {
        int h = config.numAttentionHeads();
        int g = config.numKeyValueHeads();
        int d = config.headDim();
        Tensor hIn = RmsNorm.apply(x, layer.inputLayernorm, (float) config.rmsNormEps());
        Tensor q = Rope.apply(layer.qProj.forward(hIn).reshape(batch, t, h, d), rope, pos0);
        Tensor k = Rope.apply(layer.kProj.forward(hIn).reshape(batch, t, g, d), rope, pos0);
        Tensor v = layer.vProj.forward(hIn).reshape(batch, t, g, d);
        if (cache != null) {
            k = appendToCache(cache.keysOf(li), k, cache, pos0);
            v = appendToCache(cache.valuesOf(li), v, cache, pos0);
        }
        Tensor attn = Attention.causal(q, k, v, pos0).reshape(batch, t, h * d);
        x = Elementwise.add(x, layer.oProj.forward(attn));
        Tensor hMlp = RmsNorm.apply(x, layer.postAttentionLayernorm, (float) config.rmsNormEps());
        Tensor act = Elementwise.swiglu(layer.gateProj.forward(hMlp), layer.upProj.forward(hMlp));
        return Elementwise.add(x, layer.downProj.forward(act));
    }

    /**
     * Recompute each decoder block in backward instead of keeping its activations
     * ({@link Checkpoint}): only block inputs stay alive between forward and backward. Gradients
     * are unchanged; a step costs about one more forward pass.
     */
    public void activationCheckpointing(boolean value) {
        activationCheckpointing = value;
    }

    public boolean activationCheckpointing() {
        return activationCheckpointing;
    }

    /** Every tensor of a block that requires a gradient (norms, linear weights and biases, LoRA matrices). */
    private static List<Tensor> trainableTensors(DecoderLayer layer) {
        List<Tensor> out = new ArrayList<>();
        for (Tensor n : new Tensor[] {layer.inputLayernorm, layer.postAttentionLayernorm}) {
            if (n.requiresGrad()) {
                out.add(n);
            }
        }
        for (Linear lin : new Linear[] {layer.qProj, layer.kProj, layer.vProj, layer.oProj, layer.gateProj, layer.upProj,
                layer.downProj}) {
            for (Tensor p : new Tensor[] {lin.weight(), lin.bias()}) {
                if (p != null && p.requiresGrad()) {
                    out.add(p);
                }
            }
            if (lin instanceof dev.lora4j.lora.LoraLinear ll) {
                for (dev.lora4j.lora.LoraAdapter ad : ll.adapters().values()) {
                    if (ad.a().requiresGrad()) {
                        out.add(ad.a());
                    }
                    if (ad.b().requiresGrad()) {
                        out.add(ad.b());
                    }
                }
            }
        }
        return out;
    }

    /** Writes the new positions into the cache and returns all cached positions [B, pos0+T, G, D]. */
    private static Tensor appendToCache(float[] store, Tensor fresh, KvCache cache, int pos0) {
        int b = fresh.dim(0);
        int t = fresh.dim(1);
        int row = fresh.dim(2) * fresh.dim(3);
        FloatStorage storage = new FloatStorage(store);
        int[] strides = {cache.capacity() * row, row, fresh.dim(3), 1};
        new Tensor(storage, fresh.shape(), strides, (long) pos0 * row).copyFrom(fresh);
        int s = pos0 + t;
        return new Tensor(storage, new int[] {b, s, fresh.dim(2), fresh.dim(3)}, strides, 0);
    }

    /** A cache sized for this model. */
    public KvCache newCache(int batch, int capacity) {
        return new KvCache(layers.size(), batch, capacity, config.numKeyValueHeads(), config.headDim());
    }

    private boolean hasTrainable() {
        for (Tensor p : allTensors().values()) {
            if (p.requiresGrad()) {
                return true;
            }
        }
        return false;
    }

    // ---------------------------------------------------------------- structure

    public LlamaConfig config() {
        return config;
    }

    public List<DecoderLayer> layers() {
        return Collections.unmodifiableList(layers);
    }

    public Tensor embedTokens() {
        return embedTokens;
    }

    public Tensor norm() {
        return norm;
    }

    /**
     * Every linear module by Hugging Face module path, in checkpoint order; lm_head included (for
     * a tied model its weight is the embedding).
     */
    public Map<String, Linear> linears() {
        Map<String, Linear> out = new LinkedHashMap<>();
        for (DecoderLayer l : layers) {
            for (Linear lin : new Linear[] {l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj}) {
                out.put(lin.name(), lin);
            }
        }
        out.put("lm_head", lmHead);
        return out;
    }

    /**
     * Gives lm_head its own weight entry: the config becomes tie_word_embeddings = false and
     * {@link #allTensors()} lists lm_head.weight (the head's current weight, which a merged adapter
     * may have changed). No-op for an untied model.
     */
    public void untieLmHead() {
        if (config.tieWordEmbeddings()) {
            config = config.toBuilder().tieWordEmbeddings(false).build();
        }
    }

    /** Replaces the linear module at {@code name} (e.g. with a LoRA-wrapped one of the same shape). */
    public void replaceLinear(String name, Linear replacement) {
        if (!replacement.name().equals(name)) {
            throw new IllegalArgumentException("replacement is named " + replacement.name() + ", not " + name);
        }
        if (name.equals("lm_head")) {
            lmHead = replacement;
            return;
        }
        for (DecoderLayer l : layers) {
            if (name.equals(l.qProj.name())) {
                l.qProj = replacement;
            } else if (name.equals(l.kProj.name())) {
                l.kProj = replacement;
            } else if (name.equals(l.vProj.name())) {
                l.vProj = replacement;
            } else if (name.equals(l.oProj.name())) {
                l.oProj = replacement;
            } else if (name.equals(l.gateProj.name())) {
                l.gateProj = replacement;
            } else if (name.equals(l.upProj.name())) {
                l.upProj = replacement;
            } else if (name.equals(l.downProj.name())) {
                l.downProj = replacement;
            } else {
                continue;
            }
            return;
        }
        throw new IllegalArgumentException("no linear module named '" + name + "' (modules are named like "
                + layers.get(0).qProj.name() + " and lm_head)");
    }

    /**
     * The base model's tensors by Hugging Face checkpoint name (lm_head.weight omitted when tied),
     * in checkpoint order. LoRA adapter tensors are not included.
     */
    public Map<String, Tensor> allTensors() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        out.put("model.embed_tokens.weight", embedTokens);
        for (int i = 0; i < layers.size(); i++) {
            DecoderLayer l = layers.get(i);
            String p = "model.layers." + i + ".";
            out.put(p + "input_layernorm.weight", l.inputLayernorm);
            for (Linear lin : new Linear[] {l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj}) {
                out.put(lin.name() + ".weight", lin.weight());
                if (lin.bias() != null) {
                    out.put(lin.name() + ".bias", lin.bias());
                }
            }
            out.put(p + "post_attention_layernorm.weight", l.postAttentionLayernorm);
        }
        out.put("model.norm.weight", norm);
        if (!config.tieWordEmbeddings()) {
            out.put("lm_head.weight", lmHead.weight());
        }
        return out;
    }

    /** Number of base-model parameters (tied embeddings counted once). */
    public long baseParameterCount() {
        long n = 0;
        for (Tensor t : allTensors().values()) {
            n += t.numel();
        }
        return n;
    }

    /** Bytes held by the frozen base weights in their current storages. */
    public long baseByteSize() {
        long n = 0;
        for (Tensor t : allTensors().values()) {
            n += t.storage().byteSize();
        }
        return n;
    }

    /** Marks every base tensor trainable (full fine-tuning / pretraining) or frozen. */
    public void setBaseTrainable(boolean trainable) {
        for (Tensor t : allTensors().values()) {
            if (trainable && !(t.storage() instanceof FloatStorage)) {
                throw new IllegalStateException(t.name() + " is stored as " + t.dtype() + "; full training needs F32 weights "
                        + "(load with ModelLoader.Options.frozenDType(F32))");
            }
            t.requiresGrad(trainable);
        }
    }

    static double[] ropeFrequencies(LlamaConfig c) {
        LlamaConfig.RopeScaling s = c.ropeScaling();
        if (s == null) {
            return Rope.inverseFrequencies(c.headDim(), c.ropeTheta(), null, 1, 1, 1, 0);
        }
        return Rope.inverseFrequencies(c.headDim(), c.ropeTheta(), s.type(), s.factor(), s.lowFreqFactor(),
                s.highFreqFactor(), s.originalMaxPositionEmbeddings());
    }
}
