package dev.lora4j.lora;

import dev.lora4j.io.Checkpoint;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Llama model with LoRA adapters: the base is frozen, each targeted linear layer becomes a
 * {@link LoraLinear}, and adapters are created, loaded, saved (PEFT's format), switched, combined,
 * merged and unmerged by name. Adapter files use PEFT's keys,
 * {@code base_model.model.<module>.lora_A.weight} [R, in] and {@code ...lora_B.weight} [out, R].
 *
 * <pre>{@code
 * LoraModel lora = LoraModel.wrap(LlamaModel.load(dir), LoraConfig.rank(8).alpha(16).targets(Target.ALL));
 * // train lora.model() ...
 * lora.saveAdapter(Path.of("my-adapter"));   // loads in PEFT: PeftModel.from_pretrained(base, "my-adapter")
 * lora.merge();                              // W += (alpha/r)·B·A, no inference cost
 * }</pre>
 *
 * <p>Thread safety: not thread-safe. Adding, loading, switching, merging and deleting adapters
 * change the wrapped {@link LlamaModel} in place; do them from one thread, with no forward pass
 * or training running on the model at the same time.
 */
public final class LoraModel {
    /** PEFT's name for the adapter created by get_peft_model / loaded without a name. */
    public static final String DEFAULT_ADAPTER = "default";
    private static final String PEFT_PREFIX = "base_model.model.";
    private static final Logger LOG = LoggerFactory.getLogger(LoraModel.class);

    private final LlamaModel model;
    private final Map<String, LoraConfig> configs = new LinkedHashMap<>();
    private List<String> active = new ArrayList<>();
    private String baseModelNameOrPath;

    private LoraModel(LlamaModel model) {
        this.model = model;
        for (Tensor t : model.allTensors().values()) {
            t.requiresGrad(false);
        }
    }

    /** Freezes the base and adds a new adapter named "default" from {@code config}. */
    public static LoraModel wrap(LlamaModel model, LoraConfig config) {
        LoraModel lora = new LoraModel(model);
        lora.addAdapter(DEFAULT_ADAPTER, config);
        return lora;
    }

    /** Freezes the base and loads a PEFT adapter folder as "default". */
    public static LoraModel load(LlamaModel model, Path adapterDir) {
        return load(model, DEFAULT_ADAPTER, adapterDir);
    }

    /** Freezes the base and loads a PEFT adapter folder under {@code name} (further ones via {@link #loadAdapter}). */
    public static LoraModel load(LlamaModel model, String name, Path adapterDir) {
        LoraModel lora = new LoraModel(model);
        lora.loadAdapter(name, adapterDir);
        return lora;
    }

    public LlamaModel model() {
        return model;
    }

    /**
     * This LoRA model on {@code device}: the base weights moved once ({@link LlamaModel#to}; frozen
     * BF16 and 4-bit weights keep their form on a device that computes on them) and every adapter's
     * A and B copied there, trainable, with the same configs, names and active set. Returns a new
     * LoraModel (itself when it is there already); train and save through the returned one.
     */
    public LoraModel to(dev.lora4j.tensor.Device device) {
        if (model.embedTokens().device() == device) {
            return this;
        }
        Map<String, LoraLinear> wrapped = new LinkedHashMap<>();
        for (Map.Entry<String, Linear> e : model.linears().entrySet()) {
            if (e.getValue() instanceof LoraLinear ll) {
                if (!ll.merged().isEmpty()) {
                    throw new IllegalStateException(ll.name() + ": adapters " + ll.merged() + " are merged; unmerge them "
                            + "before moving the model");
                }
                wrapped.put(e.getKey(), ll);
                model.replaceLinear(e.getKey(), new Linear(ll.name(), ll.weight(), ll.bias()));
            }
        }
        LlamaModel movedBase;
        try {
            movedBase = model.to(device);
        } finally {
            for (Map.Entry<String, LoraLinear> e : wrapped.entrySet()) {
                model.replaceLinear(e.getKey(), e.getValue());
            }
        }
        LoraModel moved = new LoraModel(movedBase);
        moved.baseModelNameOrPath = baseModelNameOrPath;
        moved.configs.putAll(configs);
        Map<String, Linear> targets = movedBase.linears();
        for (Map.Entry<String, LoraLinear> e : wrapped.entrySet()) {
            LoraLinear from = e.getValue();
            LoraLinear to = new LoraLinear(targets.get(e.getKey()), e.getKey().equals("lm_head")
                    && movedBase.config().tieWordEmbeddings());
            for (Map.Entry<String, LoraAdapter> ad : from.adapters().entrySet()) {
                LoraAdapter a = ad.getValue();
                Tensor am = a.a().detach().to(device).requiresGrad(a.a().requiresGrad()).name(a.a().name());
                Tensor bm = a.b().detach().to(device).requiresGrad(a.b().requiresGrad()).name(a.b().name());
                to.addAdapter(ad.getKey(), new LoraAdapter(am, bm, a.rank(), a.alpha(), a.scaling(), a.dropout()));
            }
            to.setActive(from.active());
            to.setDisabled(from.isDisabled());
            movedBase.replaceLinear(e.getKey(), to);
        }
        moved.active = new ArrayList<>(active);
        return moved;
    }

    /**
     * Records the base model's name or folder (PEFT's {@code base_model_name_or_path}), written
     * into every adapter_config.json this model saves, so that the adapter says which base it
     * belongs to; e.g. {@code lora.baseModel(modelDir.toString())}. Loading an adapter whose
     * config names a base sets it too. Returns this.
     */
    public LoraModel baseModel(String nameOrPath) {
        baseModelNameOrPath = nameOrPath;
        return this;
    }

    /** The base model's name or folder recorded by {@link #baseModel(String)}, or null. */
    public String baseModel() {
        return baseModelNameOrPath;
    }

    // ---------------------------------------------------------------- adapters

    /** Creates a fresh adapter (A random as configured, B zero) on every module the config targets. */
    public void addAdapter(String name, LoraConfig requested) {
        requireNewName(name);
        Map<String, Linear> linears = model.linears();
        // Llama module names (Target groups, the defaults) become this family's names, e.g. qkv_proj
        LoraConfig config = Target.forModel(requested, model.config().architecture(), linears.keySet());
        List<String> selected = config.validateAgainst(linears.keySet());
        for (String module : selected) {
            ModuleLora m = config.resolve(module).orElseThrow();
            Linear lin = linears.get(module);
            Tensor a = Tensor.of(config.init().newA(m.rank(), lin.inFeatures(), config.randomFor(module)), m.rank(),
                    lin.inFeatures());
            Tensor b = Tensor.of(LoraInit.newB(lin.outFeatures(), m.rank()), lin.outFeatures(), m.rank());
            attach(module, name, a, b, m);
        }
        configs.put(name, config);
        if (active.isEmpty()) {
            active = new ArrayList<>(List.of(name));
        }
        applyActive();
        LOG.info("added LoRA adapter '{}' to {} modules: {} trainable of {} parameters ({})", name, selected.size(),
                adapterParameterCount(name), totalParameterCount(), config);
    }

    /**
     * Loads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors). Every tensor
     * must map onto a module of this model with the expected shape, and every module the config
     * targets must have both A and B; anything else is an error naming the key.
     */
    public void loadAdapter(String name, Path dir) {
        requireNewName(name);
        try {
            AdapterConfigJson json = AdapterConfigJson.read(dir);
            LoraConfig config = json.lora();
            if (baseModelNameOrPath == null) {
                baseModelNameOrPath = json.baseModelNameOrPath();
            }
            Map<String, Linear> linears = model.linears();
            List<String> selected = config.validateAgainst(linears.keySet());
            Map<String, Tensor[]> loaded = new LinkedHashMap<>();
            // f32() copies every tensor to the heap, so the file is closed before returning
            try (Checkpoint file = Checkpoint.open(dir, "adapter_model")) {
                String fileName = file.source().getFileName().toString();
                Set<String> unused = new LinkedHashSet<>(file.names());
                for (String module : selected) {
                    ModuleLora m = config.resolve(module).orElseThrow();
                    Linear lin = linears.get(module);
                    Tensor a = readAdapterTensor(file, fileName, module, "lora_A",
                            new int[] {m.rank(), lin.inFeatures()});
                    Tensor b = readAdapterTensor(file, fileName, module, "lora_B",
                            new int[] {lin.outFeatures(), m.rank()});
                    unused.remove(peftKey(module, "lora_A"));
                    unused.remove(peftKey(module, "lora_B"));
                    loaded.put(module, new Tensor[] {a, b});
                }
                if (!unused.isEmpty()) {
                    throw new IllegalArgumentException(dir.resolve(fileName) + ": " + unused.size()
                            + " tensor(s) match no module that adapter_config.json targets, e.g. "
                            + unused.iterator().next() + " (targets " + config.targetModules() + "); the adapter was made for a different model or config");
                }
            }
            for (Map.Entry<String, Tensor[]> e : loaded.entrySet()) {
                attach(e.getKey(), name, e.getValue()[0], e.getValue()[1], config.resolve(e.getKey()).orElseThrow());
            }
            configs.put(name, config);
            if (active.isEmpty()) {
                active = new ArrayList<>(List.of(name));
            }
            applyActive();
            LOG.info("loaded LoRA adapter '{}' from {} ({} modules, {} parameters)", name, dir, loaded.size(),
                    adapterParameterCount(name));
        } catch (IOException e) {
            throw new UncheckedIOException("reading adapter folder " + dir + ": " + e.getMessage(), e);
        }
    }

    private static Tensor readAdapterTensor(Checkpoint file, String fileName, String module, String which, int[] shape) {
        String key = peftKey(module, which);
        if (!file.contains(key)) {
            throw new IllegalArgumentException(fileName + ": tensor " + key + " is missing (adapter_config.json targets "
                    + module + ")");
        }
        TensorInfo info = file.info(key);
        if (!Arrays.equals(info.shape(), shape)) {
            throw new IllegalArgumentException(fileName + ": tensor " + key + " has shape " + Arrays.toString(info.shape())
                    + " but the model and adapter_config.json imply " + Arrays.toString(shape));
        }
        return file.f32(key);
    }

    private void attach(String module, String adapterName, Tensor a, Tensor b, ModuleLora m) {
        // adapters live where the base model does (a GPU when the model was placed there)
        a = a.to(model.embedTokens().device());
        b = b.to(model.embedTokens().device());
        a.requiresGrad(true).name(peftKey(module, "lora_A") + (adapterName.equals(DEFAULT_ADAPTER) ? "" : "@" + adapterName));
        b.requiresGrad(true).name(peftKey(module, "lora_B") + (adapterName.equals(DEFAULT_ADAPTER) ? "" : "@" + adapterName));
        Linear lin = model.linears().get(module);
        LoraLinear ll;
        if (lin instanceof LoraLinear existing) {
            ll = existing;
        } else {
            ll = new LoraLinear(lin, module.equals("lm_head") && model.config().tieWordEmbeddings());
            model.replaceLinear(module, ll);
        }
        ll.addAdapter(adapterName, new LoraAdapter(a, b, m.rank(), m.alpha(), m.scaling(), (float) m.dropout()));
    }

    /**
     * Writes the named adapter as PEFT does: adapter_config.json and adapter_model.safetensors
     * (F32). Both files are first written in full (and flushed) under temporary names in the
     * folder, then renamed over the old ones, so that a full disk or an I/O error while writing
     * leaves an adapter saved there before complete and loadable.
     *
     * @throws UncheckedIOException if writing fails; the message names the folder and the cause
     *     and says that the previous adapter there, if any, is untouched
     */
    public void saveAdapter(String name, Path dir) {
        LoraConfig config = config(name);
        checkPatternOrderSurvives(name, config);
        String suffix = "." + Long.toHexString(java.util.concurrent.ThreadLocalRandom.current().nextLong()) + ".tmp";
        Path weights = dir.resolve("adapter_model.safetensors");
        Path json = dir.resolve(AdapterConfigJson.FILE_NAME);
        Path weightsTmp = dir.resolve("." + weights.getFileName() + suffix);
        Path jsonTmp = dir.resolve("." + json.getFileName() + suffix);
        boolean renamed = false;
        try {
            Files.createDirectories(dir);
            SafetensorsWriter writer = new SafetensorsWriter();
            for (Map.Entry<String, Tensor> e : peftTensors(name, t -> t).entrySet()) {
                writer.add(e.getKey(), e.getValue(), DType.F32);
            }
            writer.metadata("format", "pt");
            writer.write(weightsTmp);
            try (java.nio.channels.FileChannel out = java.nio.channels.FileChannel.open(jsonTmp,
                    java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
                java.nio.ByteBuffer bytes = java.nio.ByteBuffer.wrap(
                        AdapterConfigJson.of(config).withBaseModel(baseModelNameOrPath).toJson().getBytes(java.nio.charset.StandardCharsets.UTF_8));
                while (bytes.hasRemaining()) {
                    out.write(bytes);
                }
                out.force(true);
            }
            replace(weightsTmp, weights);
            renamed = true;
            replace(jsonTmp, json);
        } catch (IOException e) {
            throw new UncheckedIOException("writing adapter folder " + dir + " failed: " + e.getMessage() + (renamed
                    ? "; " + weights.getFileName() + " is new but " + json.getFileName() + " could not be replaced: save again"
                    : "; the adapter that was there before, if any, is untouched"), e);
        } finally {
            try {
                Files.deleteIfExists(weightsTmp);
                Files.deleteIfExists(jsonTmp);
            } catch (IOException ignored) {
                // a leftover hidden .tmp file is harmless: loading reads only the two names above
            }
        }
    }

    /**
     * adapter_config.json lists rank_pattern and alpha_pattern keys sorted (PEFT writes it with
     * {@code sort_keys=True}) while the first matching key wins; if two keys match one adapted
     * module and sorting changes which comes first, the saved file would describe other ranks
     * than the adapter has, and loading it would fail. Found by fuzzing; refused here by name.
     */
    private void checkPatternOrderSurvives(String name, LoraConfig config) {
        if (config.rankPattern().size() + config.alphaPattern().size() < 2) {
            return;
        }
        LoraConfig reread = AdapterConfigJson.parse(AdapterConfigJson.of(config).toJson(), AdapterConfigJson.FILE_NAME).lora();
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll && ll.adapters().containsKey(name)) {
                java.util.Optional<ModuleLora> now = config.resolve(lin.name());
                java.util.Optional<ModuleLora> saved = reread.resolve(lin.name());
                if (!now.equals(saved)) {
                    throw new IllegalStateException("saveAdapter: rank_pattern / alpha_pattern keys " + config.rankPattern().keySet()
                            + " / " + config.alphaPattern().keySet() + " overlap on module " + lin.name() + ": in the given order it"
                            + " gets " + now.map(Object::toString).orElse("no adapter") + ", but adapter_config.json lists the keys"
                            + " sorted (as PEFT writes them) and would give it " + saved.map(Object::toString).orElse("no adapter")
                            + "; make the keys match disjoint modules or give them in sorted order");
                }
            }
        }
    }

    private static void replace(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (java.nio.file.AtomicMoveNotSupportedException e) {
            Files.move(from, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
    }

    public void saveAdapter(Path dir) {
        saveAdapter(active.isEmpty() ? DEFAULT_ADAPTER : active.get(0), dir);
    }

    /**
     * The named adapter's tensors by PEFT key, transformed by {@code f} (e.g. {@code t -> t.grad()}),
     * in module order.
     */
    public Map<String, Tensor> peftTensors(String name, Function<Tensor, Tensor> f) {
        config(name);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll && ll.adapters().containsKey(name)) {
                LoraAdapter ad = ll.adapter(name);
                out.put(peftKey(lin.name(), "lora_A"), f.apply(ad.a()));
                out.put(peftKey(lin.name(), "lora_B"), f.apply(ad.b()));
            }
        }
        return out;
    }

    static String peftKey(String module, String which) {
        return PEFT_PREFIX + module + "." + which + ".weight";
    }

    public Set<String> adapterNames() {
        return configs.keySet();
    }

    public LoraConfig config(String name) {
        LoraConfig c = configs.get(name);
        if (c == null) {
            throw new IllegalArgumentException("no adapter named '" + name + "' (adapters: " + configs.keySet() + ")");
        }
        return c;
    }

    /** Makes these adapters the active ones (their outputs are summed); others stay loaded but idle. */
    public void setActive(String... names) {
        for (String n : names) {
            config(n);
        }
        active = new ArrayList<>(List.of(names));
        applyActive();
    }

    public List<String> active() {
        return List.copyOf(active);
    }

    private void applyActive() {
        for (LoraLinear ll : loraLinears()) {
            ll.setActive(active);
        }
    }

    /** Runs the base model alone (adapters kept, not applied) until {@link #enableAdapters()}. */
    public void disableAdapters() {
        loraLinears().forEach(ll -> ll.setDisabled(true));
    }

    public void enableAdapters() {
        loraLinears().forEach(ll -> ll.setDisabled(false));
    }

    /** Whether {@link #disableAdapters()} is in effect. */
    public boolean adaptersDisabled() {
        return loraLinears().stream().anyMatch(LoraLinear::isDisabled);
    }

    public void deleteAdapter(String name) {
        config(name);
        for (LoraLinear ll : loraLinears()) {
            if (ll.adapters().containsKey(name)) {
                ll.deleteAdapter(name);
            }
        }
        configs.remove(name);
        active.remove(name);
        applyActive();
    }

    /**
     * A new adapter whose update is exactly Σᵢ wᵢ·ΔWᵢ of the given adapters (PEFT's
     * add_weighted_adapter with combination_type="cat"): the A matrices (scaled by wᵢ·scalingᵢ)
     * and B matrices are concatenated along the rank, and the new adapter has scaling 1. Its config
     * lists the modules it covers by full name, with rank/alpha patterns where the concatenated
     * ranks differ, so that {@link #saveAdapter} writes a folder that loads back.
     */
    public void addWeightedAdapter(String newName, Map<String, Double> weights) {
        requireNewName(newName);
        if (weights.isEmpty()) {
            throw new IllegalArgumentException("addWeightedAdapter: weights must name at least one adapter");
        }
        weights.keySet().forEach(this::config);
        Map<String, Integer> moduleRanks = new LinkedHashMap<>();
        for (LoraLinear ll : loraLinears()) {
            int rank = 0;
            for (String src : weights.keySet()) {
                if (ll.adapters().containsKey(src)) {
                    rank += ll.adapter(src).rank();
                }
            }
            if (rank == 0) {
                continue;
            }
            moduleRanks.put(ll.name(), rank);
            int in = ll.inFeatures();
            int out = ll.outFeatures();
            float[] a = new float[rank * in];
            float[] b = new float[out * rank];
            int r0 = 0;
            for (Map.Entry<String, Double> w : weights.entrySet()) {
                if (!ll.adapters().containsKey(w.getKey())) {
                    continue;
                }
                LoraAdapter src = ll.adapter(w.getKey());
                float[] sa = src.a().toFloatArray();
                float[] sb = src.b().toFloatArray();
                float k = (float) (w.getValue() * src.scaling());
                for (int i = 0; i < sa.length; i++) {
                    a[r0 * in + i] = sa[i] * k;
                }
                for (int o = 0; o < out; o++) {
                    System.arraycopy(sb, o * src.rank(), b, o * rank + r0, src.rank());
                }
                r0 += src.rank();
            }
            ll.addAdapter(newName, new LoraAdapter(Tensor.of(a, rank, in).requiresGrad(true),
                    Tensor.of(b, out, rank).requiresGrad(true), rank, rank, 1.0, 0f));
        }
        // The config must describe what was built, so that the saved folder loads back (here or in
        // PEFT): the modules by full name, and those whose concatenated rank differs from the most
        // common one in rank/alpha patterns, with alpha = rank (scaling 1) everywhere.
        Map<Integer, Integer> rankFrequency = new LinkedHashMap<>();
        moduleRanks.values().forEach(r -> rankFrequency.merge(r, 1, Integer::sum));
        int rank = rankFrequency.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
        Map<String, Integer> rankPattern = new TreeMap<>(); // sorted, as adapter_config.json stores them
        Map<String, Double> alphaPattern = new TreeMap<>();
        moduleRanks.forEach((module, r) -> {
            if (r != rank) {
                rankPattern.put(module, r);
                alphaPattern.put(module, (double) r);
            }
        });
        LoraConfig first = config(weights.keySet().iterator().next());
        configs.put(newName, first.withRank(rank).alpha(rank).dropout(0).useRslora(false).allLayers().clearLayersPattern()
                .targetModules(moduleRanks.keySet()).rankPattern(rankPattern).alphaPattern(alphaPattern));
        applyActive();
    }

    // ---------------------------------------------------------------- merge

    /** Merges every active adapter into the base weights. */
    public void merge() {
        for (String name : active) {
            merge(name);
        }
    }

    /** Merges the named adapter into the base weights; an adapter merged already is left as it is (as in PEFT). */
    public void merge(String name) {
        config(name);
        for (LoraLinear ll : loraLinears()) {
            if (ll.adapters().containsKey(name) && !ll.merged().contains(name)) {
                ll.merge(name);
            }
        }
    }

    /** Undoes every merge. */
    public void unmerge() {
        for (LoraLinear ll : loraLinears()) {
            for (String name : new ArrayList<>(ll.merged())) {
                ll.unmerge(name);
            }
        }
    }

    /**
     * Merges the active adapters and returns the plain base model with merged weights (adapters
     * removed): PEFT's merge_and_unload. This LoraModel must not be used afterwards. A tied
     * lm_head that an adapter changed gets its own weight (the model grows by vocab × hidden).
     *
     * <p>The merge checks itself ({@link MergeCheck}): the merged model, as it would be saved,
     * must give the adapter model's loss on a few probe tokens within F32 rounding, or a
     * {@link MergeCheck.MergeMismatchException} names both losses. Save the result with
     * {@link dev.lora4j.model.ModelLoader#saveFolder}.
     */
    public LlamaModel mergeAndUnload() {
        MergeCheck.Probe probe = MergeCheck.probe(this);
        LlamaModel merged = mergeAndUnloadUnchecked();
        MergeCheck.verify(probe, merged, MergeCheck.tolerance(DType.F32));
        return merged;
    }

    private LlamaModel mergeAndUnloadUnchecked() {
        merge();
        if (model.config().tieWordEmbeddings() && model.linears().get("lm_head") instanceof LoraLinear head
                && !head.merged().isEmpty()) {
            LOG.info("the merged adapter changed lm_head, whose weight was tied to the embedding: the merged model has "
                    + "its own lm_head.weight (tie_word_embeddings false)");
            model.untieLmHead();
        }
        for (LoraLinear ll : loraLinears()) {
            model.replaceLinear(ll.name(), new Linear(ll.name(), ll.weight(), ll.bias()));
        }
        configs.clear();
        active.clear();
        return model;
    }

    private List<LoraLinear> loraLinears() {
        List<LoraLinear> out = new ArrayList<>();
        for (Linear lin : model.linears().values()) {
            if (lin instanceof LoraLinear ll) {
                out.add(ll);
            }
        }
        return out;
    }

    private void requireNewName(String name) {
        if (name == null || name.isBlank() || name.contains(".")) {
            throw new IllegalArgumentException("adapter name must be non-empty and contain no '.', was '" + name + "'");
        }
        if (configs.containsKey(name)) {
            throw new IllegalArgumentException("an adapter named '" + name + "' exists already; delete it or pick another name");
        }
    }

    // ---------------------------------------------------------------- counts

    public long adapterParameterCount(String name) {
        long n = 0;
        for (LoraLinear ll : loraLinears()) {
            if (ll.adapters().containsKey(name)) {
                n += ll.adapter(name).parameterCount();
            }
        }
        return n;
    }

    /** Parameters that require gradients (all adapters' A and B). */
    public long trainableParameterCount() {
        long n = 0;
        for (LoraLinear ll : loraLinears()) {
            for (LoraAdapter ad : ll.adapters().values()) {
                n += (ad.a().requiresGrad() ? ad.a().numel() : 0) + (ad.b().requiresGrad() ? ad.b().numel() : 0);
            }
        }
        return n;
    }

    /** Base plus every adapter. */
    public long totalParameterCount() {
        long n = model.baseParameterCount();
        for (LoraLinear ll : loraLinears()) {
            for (LoraAdapter ad : ll.adapters().values()) {
                n += ad.parameterCount();
            }
        }
        return n;
    }

    /**
     * The memory a training run of this model and its adapters will need at this step shape:
     * weights and adapters counted from the loaded tensors, activations from the model's shape
     * (see {@link MemoryPlan}). {@code Trainer} checks it against the heap before it starts.
     */
    public MemoryPlan memoryPlan(MemoryPlan.Shape shape) {
        return MemoryPlan.of(this, shape);
    }

    /** Parameter counts of a model and LoRA setting, computed from the config alone (nothing allocated). */
    public record ParameterCount(long base, long trainable) {
        public long total() {
            return base + trainable;
        }

        public double trainablePercent() {
            return 100.0 * trainable / total();
        }

        @Override
        public String toString() {
            return String.format("trainable params: %,d || all params: %,d || trainable%%: %.4f", trainable, total(),
                    trainablePercent());
        }
    }

    public static ParameterCount count(LlamaConfig config, LoraConfig lora) {
        LlamaModel meta = LlamaModel.meta(config);
        Map<String, Linear> linears = meta.linears();
        LoraConfig mapped = Target.forModel(lora, config.architecture(), linears.keySet());
        long trainable = 0;
        for (String module : mapped.validateAgainst(linears.keySet())) {
            ModuleLora m = mapped.resolve(module).orElseThrow();
            Linear lin = linears.get(module);
            trainable += (long) m.rank() * (lin.inFeatures() + lin.outFeatures());
        }
        return new ParameterCount(meta.baseParameterCount(), trainable);
    }

    @Override
    public String toString() {
        return "LoraModel(adapters=" + configs.keySet() + ", active=" + active + ", trainable=" + trainableParameterCount()
                + ", total=" + totalParameterCount() + ")";
    }
}
