package dev.lora4j.model;

import dev.lora4j.autograd.Activations;
import dev.lora4j.autograd.Attention;
import dev.lora4j.autograd.Autograd;
import dev.lora4j.autograd.Checkpoint;
import dev.lora4j.autograd.Elementwise;
import dev.lora4j.autograd.Embedding;
import dev.lora4j.autograd.LayerNorm;
import dev.lora4j.autograd.RmsNorm;
import dev.lora4j.autograd.Rope;
import dev.lora4j.autograd.SoftCap;
import dev.lora4j.backend.AttentionMask;
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
 * A decoder-only causal language model assembled from the parts its {@link Architecture} names:
 * Hugging Face's LlamaForCausalLM and the configs of the same shape (Mistral, TinyLlama, SmolLM,
 * Qwen2), and phi-1.5, Falcon (falcon-7b layout), Phi-3, Gemma 2, Gemma 3 (text) and Qwen3.
 * Token embedding, N decoder layers (norm → attention with RoPE → residual, and norm → MLP →
 * residual, or both from one norm in parallel; see {@link Architecture}), a final norm and the
 * language-model head (tied to the embedding when the config says so).
 *
 * <p>Every tensor is addressed by its Hugging Face name ({@link #allTensors()}), every linear
 * layer by its module path ({@link #linears()}), which is how checkpoints, LoRA targeting and
 * PEFT adapter files refer to them. Fused modules (Phi-3's qkv_proj and gate_up_proj, Falcon's
 * query_key_value) stay one linear layer, split after the product, so a LoRA adapter on them has
 * one A/B pair over the fused output, as in PEFT.
 *
 * <p>Thread safety: not thread-safe; use a model from one thread at a time. A forward pass reads
 * the weights without locking, and {@link #replaceLinear}, {@link #untieLmHead} and LoRA wrapping
 * change the model in place. (Gradient recording is per thread and each {@link Generator} call
 * has its own {@link KvCache}, but concurrent forward passes on one model are not tested.)
 */
public final class LlamaModel {
    private LlamaConfig config;
    private final Architecture arch;
    private final Tensor embedTokens;
    private final List<DecoderLayer> layers;
    private final Tensor norm;
    private final Tensor normBias;
    private Linear lmHead;
    private final Rope.Table rope;
    private boolean activationCheckpointing;
    /** RoPE of the sliding layers when they have their own base (Gemma 3), else {@link #rope}. */
    private final Rope.Table localRope;

    /**
     * One decoder block. Its norms and linear modules are kept by their names within the layer
     * ("input_layernorm.weight", "self_attn.q_norm.weight"; "q_proj", "qkv_proj", "fc1"), in
     * checkpoint order.
     */
    public static final class DecoderLayer {
        /** The norm before attention (and before the MLP in parallel blocks). */
        public final Tensor inputLayernorm;
        /** Llama: the norm before the MLP; Gemma: the norm on the attention output; null in parallel blocks. */
        public final Tensor postAttentionLayernorm;
        final Map<String, Tensor> norms;
        final Map<String, Linear> modules;

        DecoderLayer(Map<String, Tensor> norms, Map<String, Linear> modules) {
            this.norms = norms;
            this.modules = modules;
            this.inputLayernorm = norms.get("input_layernorm.weight");
            this.postAttentionLayernorm = norms.get("post_attention_layernorm.weight");
        }

        Linear module(String shortName) {
            return modules.get(shortName);
        }
    }

    LlamaModel(LlamaConfig config, Tensor embedTokens, List<DecoderLayer> layers, Tensor norm, Tensor normBias,
               Linear lmHead) {
        this.config = config;
        this.arch = config.architecture();
        this.embedTokens = embedTokens;
        this.layers = List.copyOf(layers);
        this.norm = norm;
        this.normBias = normBias;
        this.lmHead = lmHead;
        boolean meta = embedTokens.storage() instanceof MetaStorage;
        this.rope = meta ? null : new Rope.Table(config.headDim(), config.rotaryDim(), config.maxPositionEmbeddings(),
                ropeFrequencies(config));
        this.localRope = meta || arch.localRopeTheta() == 0 ? rope : new Rope.Table(config.headDim(), config.rotaryDim(),
                config.maxPositionEmbeddings(), Rope.inverseFrequencies(config.rotaryDim(), arch.localRopeTheta(), null, 1,
                        1, 1, 0));
    }

    // ---------------------------------------------------------------- construction

    /**
     * Builds the model from a tensor source: {@code weights.apply(name, shape)} returns the tensor
     * for each Hugging Face name (it checks presence and shape). Public so that loaders of other
     * checkpoint formats (lora-quant's 4-bit checkpoints) can supply their own storages.
     */
    public static LlamaModel assemble(LlamaConfig c, BiFunction<String, int[], Tensor> weights) {
        Architecture a = c.architecture();
        int hidden = c.hiddenSize();
        int d = c.headDim();
        int qDim = c.queryDim();
        int kvDim = c.keyValueDim();
        int inter = c.intermediateSize();
        boolean layerNorm = a.norm() == Architecture.Norm.LAYER_NORM;
        Tensor embed = weights.apply(a.embedName() + ".weight", new int[] {c.vocabSize(), hidden});
        List<DecoderLayer> layers = new ArrayList<>();
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            String p = a.layerPrefix() + i + ".";
            Map<String, Tensor> norms = new LinkedHashMap<>();
            for (String n : a.layerNormNames()) {
                norms.put(n + ".weight", weights.apply(p + n + ".weight", new int[] {hidden}));
                if (layerNorm) {
                    norms.put(n + ".bias", weights.apply(p + n + ".bias", new int[] {hidden}));
                }
            }
            if (a.qkNorm()) {
                for (String n : List.of("q_norm", "k_norm")) {
                    String key = a.attentionName() + "." + n + ".weight";
                    norms.put(key, weights.apply(p + key, new int[] {d}));
                }
            }
            Map<String, Linear> modules = new LinkedHashMap<>();
            int layer = i;
            BiFunction<String, int[], Linear> attn = (name, shape) -> withBias(a.attentionModule(layer, name), weights,
                    name.equals(a.outputName()) ? a.outputBias() : a.qkvBias(), shape[0], shape[1]);
            if (a.qkv().fused()) {
                String name = a.qkv().names().get(0);
                modules.put(name, attn.apply(name, new int[] {qDim + 2 * kvDim, hidden}));
            } else {
                modules.put("q_proj", attn.apply("q_proj", new int[] {qDim, hidden}));
                modules.put("k_proj", attn.apply("k_proj", new int[] {kvDim, hidden}));
                modules.put("v_proj", attn.apply("v_proj", new int[] {kvDim, hidden}));
            }
            modules.put(a.outputName(), attn.apply(a.outputName(), new int[] {hidden, qDim}));
            List<String> mlp = a.mlp().names();
            for (int m = 0; m < mlp.size(); m++) {
                boolean down = m == mlp.size() - 1;
                int out = down ? hidden : a.mlp() == Architecture.Mlp.GATED_FUSED ? 2 * inter : inter;
                modules.put(mlp.get(m), withBias(a.mlpModule(i, mlp.get(m)), weights, a.mlpBias(), out, down ? inter : hidden));
            }
            layers.add(new DecoderLayer(norms, modules));
        }
        Tensor norm = weights.apply(a.finalNormName() + ".weight", new int[] {hidden});
        Tensor normBias = layerNorm ? weights.apply(a.finalNormName() + ".bias", new int[] {hidden}) : null;
        Linear head = c.tieWordEmbeddings() ? new Linear("lm_head", embed, null)
                : withBias("lm_head", weights, a.lmHeadBias(), c.vocabSize(), hidden);
        return new LlamaModel(c, embed, layers, norm, normBias, head);
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
     * (normal(0, initializer_range = 0.02) for matrices, zeros for biases, ones for norms — zeros
     * for Gemma's (1 + w) norms), from a seed. Used to pretrain small models from scratch.
     */
    public static LlamaModel initialize(LlamaConfig config, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        boolean onePlus = config.architecture().norm() == Architecture.Norm.RMS_ONE_PLUS;
        return assemble(config, (name, shape) -> {
            Tensor t;
            if (name.endsWith(".bias")) {
                t = Tensor.zeros(shape);
            } else if (shape.length == 1) {
                t = Tensor.full(onePlus ? 0f : 1f, shape);
            } else {
                t = Tensor.normal(rng.split(), 0f, 0.02f, shape);
            }
            return t.name(name);
        });
    }

    /**
     * This model with every base tensor on {@code device} ({@link Tensor#to}: frozen BF16 and 4-bit
     * weights keep their form on a device that computes on them), as a new model; itself when it is
     * there already. LoRA adapters are not carried: move a LoRA model with
     * {@link dev.lora4j.lora.LoraModel#to}. The weights are copied once; keep using the returned model.
     */
    public LlamaModel to(dev.lora4j.tensor.Device device) {
        if (embedTokens.device() == device) {
            return this;
        }
        for (Linear lin : linears().values()) {
            if (lin.getClass() != Linear.class) {
                throw new IllegalStateException(lin.name() + " is a " + lin.getClass().getSimpleName() + "; move the "
                        + "LoraModel that wraps this model (LoraModel.to) instead of the base model");
            }
        }
        Map<String, Tensor> moved = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : allTensors().entrySet()) {
            moved.put(e.getKey(), e.getValue().to(device).name(e.getKey()));
        }
        LlamaModel m = assemble(config, (name, shape) -> {
            Tensor t = moved.get(name);
            if (t == null) {
                throw new IllegalStateException("moving the model to " + device + ": tensor " + name + " is missing");
            }
            return t;
        });
        m.activationCheckpointing = activationCheckpointing;
        return m;
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
     * (generation; no gradients), and their keys/values are appended to the cache. Sliding-window
     * layers mask keys outside their window, with or without a cache, so cached generation equals
     * recomputing the whole sequence.
     */
    public Tensor forward(int[] tokens, int batch, KvCache cache) {
        return forward(tokens, batch, cache, null);
    }

    /**
     * Logits [B, T, V] of a padded batch: {@code attentionMask} [B, T] is transformers'
     * attention_mask (1 for a token, 0 for padding), and no query attends to a padding key.
     * Positions count from 0 in every row, as transformers numbers them when the batch is
     * right-padded. Without a mask, padding at the end of a row changes no real token's logits
     * (no earlier position attends to it); the mask matters for the padding rows themselves.
     */
    public Tensor forwardPadded(int[] tokens, int batch, int[] attentionMask) {
        if (attentionMask != null && attentionMask.length != tokens.length) {
            throw new IllegalArgumentException("forward: attentionMask has " + attentionMask.length + " entries for "
                    + tokens.length + " tokens; give one 0/1 per token, laid out [B, T] like the tokens");
        }
        return forward(tokens, batch, null, attentionMask);
    }

    private Tensor forward(int[] tokens, int batch, KvCache cache, int[] attentionMask) {
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
        int pos0 = cache == null ? 0 : cache.length();
        if (cache != null && (cache.capacity() < pos0 + t)) {
            throw new IllegalArgumentException("KV cache holds " + cache.capacity() + " positions; " + (pos0 + t) + " needed");
        }
        Tensor x = Embedding.lookup(embedTokens, tokens).reshape(batch, t, hidden);
        if (arch.scaleEmbeddings()) {
            x = Elementwise.scale(x, embeddingScale(config));
        }
        for (int li = 0; li < layers.size(); li++) {
            DecoderLayer layer = layers.get(li);
            if (activationCheckpointing && cache == null && Autograd.isGradEnabled()) {
                int layerIndex = li;
                x = Checkpoint.apply(x, trainableTensors(layer), in -> decoderLayer(layer, layerIndex, in, null, batch, t,
                        pos0, attentionMask));
            } else {
                x = decoderLayer(layer, li, x, cache, batch, t, pos0, attentionMask);
            }
        }
        if (cache != null) {
            cache.advance(t);
        }
        x = norm(x, norm, normBias);
        Tensor logits = lmHead.forward(x);
        return arch.finalSoftCap() > 0 ? SoftCap.apply(logits, (float) arch.finalSoftCap()) : logits;
    }

    /**
     * Self-attention of one layer on its normed input h [B, T, C]: projections (a fused one split
     * into queries, keys and values along its output), q/k norms, RoPE (the layer's own table),
     * the KV cache, attention with the layer's window, scale and soft-cap, output projection.
     */
    private Tensor attention(DecoderLayer layer, int li, Tensor h, int batch, int t, int pos0, KvCache cache,
                             int[] keyMask) {
        int heads = config.numAttentionHeads();
        int g = config.numKeyValueHeads();
        int d = config.headDim();
        Tensor q;
        Tensor k;
        Tensor v;
        if (arch.qkv().fused()) {
            Tensor qkv = layer.module(arch.qkv().names().get(0)).forward(h);
            q = qkv.slice(2, 0, heads * d);
            k = qkv.slice(2, heads * d, (heads + g) * d);
            v = qkv.slice(2, (heads + g) * d, (heads + 2 * g) * d);
        } else {
            q = layer.module("q_proj").forward(h);
            k = layer.module("k_proj").forward(h);
            v = layer.module("v_proj").forward(h);
        }
        q = q.reshape(batch, t, heads, d);
        k = k.reshape(batch, t, g, d);
        v = v.reshape(batch, t, g, d);
        if (arch.qkNorm()) {
            q = norm(q, layer, arch.attentionName() + ".q_norm");
            k = norm(k, layer, arch.attentionName() + ".k_norm");
        }
        Rope.Table table = arch.sliding(li) ? localRope : rope;
        q = Rope.apply(q, table, pos0);
        k = Rope.apply(k, table, pos0);
        if (cache != null) {
            k = appendToCache(cache.keysOf(li), k, cache, pos0);
            v = appendToCache(cache.valuesOf(li), v, cache, pos0);
        }
        float scale = (float) (1.0 / Math.sqrt(arch.queryPreAttnScalar() > 0 ? arch.queryPreAttnScalar() : d));
        AttentionMask mask = new AttentionMask(pos0, scale, true, config.windowOf(li),
                keyLengths(keyMask, batch, k.dim(1)), (float) arch.attnSoftCap());
        Tensor out = Attention.attention(q, k, v, mask).reshape(batch, t, heads * d);
        return layer.module(arch.outputName()).forward(out);
    }

    /**
     * Valid keys per batch row of transformers' attention_mask [B, S] (1 token, 0 padding), which
     * must be right-padded: each row's ones come first. Null when there is no mask.
     */
    static int[] keyLengths(int[] attentionMask, int batch, int s) {
        if (attentionMask == null) {
            return null;
        }
        int[] lengths = new int[batch];
        for (int b = 0; b < batch; b++) {
            int n = 0;
            while (n < s && attentionMask[b * s + n] == 1) {
                n++;
            }
            for (int j = n; j < s; j++) {
                if (attentionMask[b * s + j] != 0) {
                    throw new IllegalArgumentException("attention_mask row " + b + " has " + attentionMask[b * s + j]
                            + " at position " + j + " after padding at " + n + "; only 0/1 masks of right-padded rows"
                            + " (tokens first, padding last) are supported: pad on the right");
                }
            }
            lengths[b] = n;
        }
        return lengths;
    }

    /** The layer's MLP on its normed input: gated (SwiGLU, GeGLU; fused gate_up split in halves) or two layers. */
    private Tensor mlp(DecoderLayer layer, Tensor h) {
        List<String> names = arch.mlp().names();
        Linear down = layer.module(names.get(names.size() - 1));
        Tensor act;
        if (arch.mlp().gated()) {
            Tensor gate;
            Tensor up;
            if (arch.mlp() == Architecture.Mlp.GATED_FUSED) {
                int inter = config.intermediateSize();
                Tensor gateUp = layer.module(names.get(0)).forward(h);
                gate = gateUp.slice(-1, 0, inter);
                up = gateUp.slice(-1, inter, 2 * inter);
            } else {
                gate = layer.module(names.get(0)).forward(h);
                up = layer.module(names.get(1)).forward(h);
            }
            act = arch.activation().gelu() == null ? Elementwise.swiglu(gate, up)
                    : Activations.geglu(gate, up, arch.activation().gelu());
        } else {
            Tensor hidden = layer.module(names.get(0)).forward(h);
            act = arch.activation().gelu() == null ? Elementwise.silu(hidden) : Activations.gelu(hidden, arch.activation().gelu());
        }
        return down.forward(act);
    }

    private Tensor norm(Tensor x, DecoderLayer layer, String name) {
        return norm(x, layer.norms.get(name + ".weight"), layer.norms.get(name + ".bias"));
    }

    /** The block's normalization: RMSNorm with w or (1 + w), or LayerNorm with its bias. */
    private Tensor norm(Tensor x, Tensor weight, Tensor bias) {
        float eps = (float) config.rmsNormEps();
        return switch (arch.norm()) {
            case RMS -> RmsNorm.apply(x, weight, eps);
            case RMS_ONE_PLUS -> RmsNorm.apply(x, weight, 1f, eps);
            case LAYER_NORM -> LayerNorm.apply(x, weight, bias, eps);
        };
    }

    /**
     * Gemma's embedding multiplier sqrt(hidden_size), rounded to the checkpoint's dtype as
     * transformers does (sqrt(3072) becomes 55.5 in bfloat16).
     */
    static float embeddingScale(LlamaConfig c) {
        float s = (float) Math.sqrt(c.hiddenSize());
        String dtype = c.torchDtype();
        if ("bfloat16".equals(dtype)) {
            return DType.bf16ToFloat(DType.floatToBf16(s));
        }
        if ("float16".equals(dtype)) {
            return DType.f16ToFloat(DType.floatToF16(s));
        }
        return s;
    }

    /**
     * One decoder block as {@link Architecture} assembles it: norm → attention (→ post-norm) →
     * residual, then norm → MLP (→ post-norm) → residual; or, in parallel blocks, attention and MLP
     * from one norm added to the residual together.
     */
    private Tensor decoderLayer(DecoderLayer layer, int li, Tensor x, KvCache cache, int batch, int t, int pos0,
                                int[] attentionMask) {
        Tensor h = norm(x, layer, "input_layernorm");
        Tensor attn = attention(layer, li, h, batch, t, pos0, cache, attentionMask);
        if (arch.sandwich()) {
            attn = norm(attn, layer, "post_attention_layernorm");
        }
        if (arch.parallel()) {
            return Elementwise.add(x, Elementwise.add(attn, mlp(layer, h)));
        }
        x = Elementwise.add(x, attn);
        Tensor m = mlp(layer, norm(x, layer, arch.sandwich() ? "pre_feedforward_layernorm" : "post_attention_layernorm"));
        if (arch.sandwich()) {
            m = norm(m, layer, "post_feedforward_layernorm");
        }
        return Elementwise.add(x, m);
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
        for (Tensor n : layer.norms.values()) {
            if (n != null && n.requiresGrad()) {
                out.add(n);
            }
        }
        for (Linear lin : layer.modules.values()) {
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
    private static Tensor appendToCache(Tensor store, Tensor fresh, KvCache cache, int pos0) {
        int b = fresh.dim(0);
        int t = fresh.dim(1);
        int row = fresh.dim(2) * fresh.dim(3);
        dev.lora4j.tensor.Storage storage = store.storage();
        int[] strides = {cache.capacity() * row, row, fresh.dim(3), 1};
        new Tensor(storage, fresh.shape(), strides, (long) pos0 * row).copyFrom(fresh);
        int s = pos0 + t;
        return new Tensor(storage, new int[] {b, s, fresh.dim(2), fresh.dim(3)}, strides, 0);
    }

    /** A cache sized for this model. */
    public KvCache newCache(int batch, int capacity) {
        return new KvCache(layers.size(), batch, capacity, config.numKeyValueHeads(), config.headDim(), embedTokens.device());
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

    /** The final norm's weight. */
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
            for (Linear lin : l.modules.values()) {
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
            for (Map.Entry<String, Linear> e : l.modules.entrySet()) {
                if (e.getValue().name().equals(name)) {
                    e.setValue(replacement);
                    return;
                }
            }
        }
        throw new IllegalArgumentException("no linear module named '" + name + "' (modules are named like "
                + layers.get(0).modules.values().iterator().next().name() + " and lm_head)");
    }

    /**
     * The base model's tensors by Hugging Face checkpoint name (lm_head.weight omitted when tied),
     * in checkpoint order. LoRA adapter tensors are not included.
     */
    public Map<String, Tensor> allTensors() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        out.put(arch.embedName() + ".weight", embedTokens);
        for (int i = 0; i < layers.size(); i++) {
            DecoderLayer l = layers.get(i);
            String p = arch.layerPrefix() + i + ".";
            for (Map.Entry<String, Tensor> e : l.norms.entrySet()) {
                if (e.getKey().startsWith("input_layernorm.")) {
                    out.put(p + e.getKey(), e.getValue());
                }
            }
            for (Linear lin : l.modules.values()) {
                out.put(lin.name() + ".weight", lin.weight());
                if (lin.bias() != null) {
                    out.put(lin.name() + ".bias", lin.bias());
                }
            }
            for (Map.Entry<String, Tensor> e : l.norms.entrySet()) {
                if (!e.getKey().startsWith("input_layernorm.")) {
                    out.put(p + e.getKey(), e.getValue());
                }
            }
        }
        out.put(arch.finalNormName() + ".weight", norm);
        if (normBias != null) {
            out.put(arch.finalNormName() + ".bias", normBias);
        }
        if (!config.tieWordEmbeddings()) {
            out.put("lm_head.weight", lmHead.weight());
            if (lmHead.bias() != null) {
                out.put("lm_head.bias", lmHead.bias());
            }
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
            return Rope.inverseFrequencies(c.rotaryDim(), c.ropeTheta(), null, 1, 1, 1, 0);
        }
        if (s.type().equals(LlamaConfig.RopeScaling.FREQUENCY_FACTORS)) {
            return Rope.inverseFrequencies(c.rotaryDim(), c.ropeTheta(),
                    s.frequencyFactors().stream().mapToDouble(Double::doubleValue).toArray());
        }
        return Rope.inverseFrequencies(c.rotaryDim(), c.ropeTheta(), s.type(), s.factor(), s.lowFreqFactor(),
                s.highFreqFactor(), s.originalMaxPositionEmbeddings());
    }
}
