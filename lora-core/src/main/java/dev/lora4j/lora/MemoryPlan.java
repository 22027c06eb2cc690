package dev.lora4j.lora;

import dev.lora4j.model.Architecture;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * What a LoRA training run will hold in memory, predicted before it starts: one row per
 * component (frozen weights, adapters, their gradients, optimizer state, the step arena of
 * activations and their gradients, per-thread workspaces, RoPE tables, the JVM itself), each on
 * the Java heap or off it, and the two totals that decide whether the run fits:
 * {@link #predictedPeakHeap()} (compare with {@code -Xmx}) and {@link #predictedRss()} (compare
 * with the machine's memory).
 *
 * <pre>{@code
 * MemoryPlan plan = lora.memoryPlan(MemoryPlan.Shape.of(4, 512).activationCheckpointing(true));
 * System.out.println(plan);                           // the table
 * plan.check(Runtime.getRuntime().maxMemory(), MemoryPlan.physicalMemory().orElse(-1)); // throws if it does not fit
 *
 * // from a config alone, nothing loaded:
 * MemoryPlan.of(LlamaConfig.read(dir), LoraConfig.rank(16), MemoryPlan.Weights.BF16_MAPPED, MemoryPlan.Shape.of(1, 2048));
 * }</pre>
 *
 * <p>How each row is derived (from the code, see the README's "Memory plan" section for the
 * measured accuracy):
 * <ul>
 * <li>weights: the bytes of every distinct storage ({@link Storage#byteSize()}); F32 arrays and
 * 4-bit blocks are heap, memory-mapped BF16/F16 safetensors are off-heap (page cache, resident
 * once a step has read them);</li>
 * <li>adapters, gradients, optimizer: 4 bytes per trainable parameter each; AdamW keeps two
 * moments, SGD with momentum one buffer;</li>
 * <li>activations: the step arena's high-water mark, counted op by op as the forward allocates
 * (every output and what it saves for backward, rounded up to the pool's size buckets) plus the
 * largest set of gradients alive at once in backward (the logits' gradient at the head, or three
 * intermediate-size gradients in an MLP); with activation checkpointing only block inputs are
 * kept and one block is recomputed at a time;</li>
 * <li>arena pool slack: idle pooled buffers of sizes the peak does not use (a buffer given back
 * serves only requests of its own size);</li>
 * <li>G1 region rounding: arrays of half a G1 region or more take whole regions (with this JVM's
 * region size; no row when the JVM does not use G1);</li>
 * <li>workspace: per compute thread, the gemm packing panels and the attention score blocks;</li>
 * <li>JVM baseline: an estimate (class metadata, JIT code cache, thread stacks, GC structures),
 * not derived from lora4j's code.</li>
 * </ul>
 * The heap total is the live set at the peak, as G1 counts it (humongous arrays in whole regions,
 * the pool's idle buffers included); {@link #recommendedMaxHeap()} adds headroom for the collector
 * and {@link #predictedRss()} what the young generation adds to the resident set.
 */
public final class MemoryPlan {
    /**
     * -Xmx the plan recommends above its peak heap, percent: G1 sizes the heap to keep 40 % of it
     * free after a collection (MinHeapFreeRatio), so a heap barely above the live set collects
     * far more often.
     */
    public static final int XMX_HEADROOM_PERCENT = 50;
    /**
     * Resident memory above the peak heap, percent: the young generation's garbage between
     * collections, net of the untouched tails of humongous regions (counted in the heap, never
     * touched). Fitted to the measurements in the README (within 15 % on six shapes): it depends
     * on the collector, its settings and the step's garbage, not on lora4j's code.
     */
    public static final int RSS_HEADROOM_PERCENT = 18;
    /** Resident memory of a JVM before lora4j allocates (metaspace, code cache, GC tables), bytes: an estimate. */
    public static final long JVM_BASELINE_BYTES = 96L << 20;
    /** Resident stack and thread-local allocation of each compute thread, bytes: an estimate. */
    public static final long THREAD_BYTES = 2L << 20;

    /** Where a row's bytes live. */
    public enum Place {
        HEAP,
        OFF_HEAP
    }

    /** One component: its name, bytes, place and how it was counted. */
    public record Row(String name, long bytes, Place place, String detail) {
    }

    /** The optimizer's state per trainable parameter. */
    public enum Optimizer {
        /** Two F32 moments (m, v). */
        ADAMW(2),
        /** One F32 momentum buffer. */
        SGD_MOMENTUM(1),
        /** No state. */
        SGD(0);

        private final int slots;

        Optimizer(int slots) {
            this.slots = slots;
        }

        /** F32 values kept per trainable parameter. */
        public int slots() {
            return slots;
        }
    }

    /**
     * How the frozen base weights are stored, for plans made from a config alone.
     *
     * @param name          shown in the table
     * @param bytesPerValue bytes per parameter of the unquantized matrices (embedding, projections, lm_head)
     * @param offHeap       those matrices are memory-mapped from safetensors (off the Java heap); norm
     *                      weights are always F32 copies on the heap
     * @param quantBits     0, or 4 for NF4/FP4 decoder projections (embedding, norms and lm_head stay
     *                      as stored, as bitsandbytes keeps them)
     * @param blocksize     values per absmax scale of the 4-bit weights
     * @param doubleQuant   scales stored as 8-bit codes with an F32 scale per 256 blocks
     */
    public record Weights(String name, int bytesPerValue, boolean offHeap, int quantBits, int blocksize,
                          boolean doubleQuant) {
        /** F32 arrays on the heap (a model built in memory, or weights converted on load). */
        public static final Weights F32 = new Weights("f32 heap", 4, false, 0, 0, false);
        /** BF16/F16 safetensors memory-mapped as they are (the loader's default for 16-bit files). */
        public static final Weights BF16_MAPPED = stored(2, true);

        /** Weights as a checkpoint stores them: 2 or 4 bytes per value, memory-mapped or on the heap. */
        public static Weights stored(int bytesPerValue, boolean mapped) {
            if (bytesPerValue != 2 && bytesPerValue != 4) {
                throw new IllegalArgumentException("bytesPerValue must be 2 (bf16/f16) or 4 (f32), was " + bytesPerValue);
            }
            return new Weights((bytesPerValue == 2 ? "16-bit" : "f32") + (mapped ? " memory-mapped" : " heap"), bytesPerValue,
                    mapped, 0, 0, false);
        }

        /** NF4 (or FP4) decoder projections with the given blocksize; the other matrices F32 on the heap. */
        public static Weights nf4(int blocksize, boolean doubleQuant) {
            return F32.quantized(blocksize, doubleQuant);
        }

        /** These weights with the decoder projections in 4 bits (QLoRA's --quantize). */
        public Weights quantized(int blocksize, boolean doubleQuant) {
            if (blocksize < 16 || Integer.bitCount(blocksize) != 1) {
                throw new IllegalArgumentException("blocksize must be a power of two >= 16, was " + blocksize);
            }
            return new Weights("4-bit projections (blocksize " + blocksize + (doubleQuant ? ", double-quant" : "") + "), rest "
                    + name, bytesPerValue, offHeap, 4, blocksize, doubleQuant);
        }

        long quantizedBytes(long values) {
            long blocks = (values + blocksize - 1) / blocksize;
            long scales = doubleQuant ? blocks + 4 * ((blocks + 255) / 256) + 4 : 4 * blocks;
            return (values + 1) / 2 + scales;
        }
    }

    /**
     * The shape of one training step.
     *
     * @param microBatchSize          sequences per forward/backward (gradient accumulation does not add memory)
     * @param sequenceLength          tokens per sequence (the longest example of a micro-batch)
     * @param optimizer               the optimizer's state
     * @param activationCheckpointing recompute each decoder block in backward
     * @param threads                 compute threads ({@code lora4j.threads})
     */
    public record Shape(int microBatchSize, int sequenceLength, Optimizer optimizer, boolean activationCheckpointing,
                        int threads) {
        public Shape {
            if (microBatchSize < 1) {
                throw new IllegalArgumentException("microBatchSize must be >= 1, was " + microBatchSize);
            }
            if (sequenceLength < 1) {
                throw new IllegalArgumentException("sequenceLength must be >= 1, was " + sequenceLength);
            }
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be >= 1, was " + threads);
            }
            if (optimizer == null) {
                throw new IllegalArgumentException("optimizer must be set (ADAMW, SGD_MOMENTUM or SGD)");
            }
        }

        /** AdamW, no checkpointing, the thread count lora4j computes with. */
        public static Shape of(int microBatchSize, int sequenceLength) {
            return new Shape(microBatchSize, sequenceLength, Optimizer.ADAMW, false, dev.lora4j.backend.Parallel.parallelism());
        }

        public Shape activationCheckpointing(boolean value) {
            return new Shape(microBatchSize, sequenceLength, optimizer, value, threads);
        }

        public Shape optimizer(Optimizer value) {
            return new Shape(microBatchSize, sequenceLength, value, activationCheckpointing, threads);
        }

        public Shape threads(int value) {
            return new Shape(microBatchSize, sequenceLength, optimizer, activationCheckpointing, value);
        }

        public Shape microBatchSize(int value) {
            return new Shape(value, sequenceLength, optimizer, activationCheckpointing, threads);
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "micro-batch %d x %d tokens, %s, activation checkpointing %s, %d thread%s",
                    microBatchSize, sequenceLength, optimizer.name().toLowerCase(Locale.ROOT), activationCheckpointing ? "on" : "off",
                    threads, threads == 1 ? "" : "s");
        }
    }

    /** Thrown by {@link #check} when the run does not fit; the message names the numbers and the fixes. */
    public static final class DoesNotFitException extends IllegalStateException {
        private final transient MemoryPlan plan;

        DoesNotFitException(String message, MemoryPlan plan) {
            super(message);
            this.plan = plan;
        }

        public MemoryPlan plan() {
            return plan;
        }
    }

    private final String title;
    private final Shape shape;
    private final List<Row> rows;
    private final Inputs inputs;

    private MemoryPlan(String title, Shape shape, List<Row> rows, Inputs inputs) {
        this.title = title;
        this.shape = shape;
        this.rows = List.copyOf(rows);
        this.inputs = inputs;
    }

    // ---------------------------------------------------------------- construction

    /** The plan of a loaded model with its adapters: weights and adapters counted from the tensors themselves. */
    public static MemoryPlan of(LoraModel lora, Shape shape) {
        return of(lora.model(), shape);
    }

    /** The plan of a loaded model whose LoRA layers (if any) are in place; see {@link #of(LoraModel, Shape)}. */
    public static MemoryPlan of(LlamaModel model, Shape shape) {
        long heapWeights = 0;
        long offHeapWeights = 0;
        Set<Storage> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Long> frozenArrays = new ArrayList<>();
        List<Long> trainableArrays = new ArrayList<>();
        for (Tensor t : model.allTensors().values()) {
            if (!seen.add(t.storage()) || t.requiresGrad()) {
                continue;
            }
            if (offHeap(t.storage())) {
                offHeapWeights += t.storage().byteSize();
            } else {
                heapWeights += t.storage().byteSize();
                frozenArrays.add(t.storage().byteSize());
            }
        }
        long adapterParams = 0;
        long trainable = 0;
        List<LayerLora> perLayer = new ArrayList<>();
        for (int i = 0; i < model.config().numHiddenLayers(); i++) {
            perLayer.add(new LayerLora());
        }
        LayerLora head = new LayerLora();
        for (Map.Entry<String, Linear> e : model.linears().entrySet()) {
            if (e.getValue() instanceof LoraLinear ll) {
                for (LoraAdapter ad : ll.adapters().values()) {
                    adapterParams += ad.a().numel() + ad.b().numel();
                    trainable += (ad.a().requiresGrad() ? ad.a().numel() : 0) + (ad.b().requiresGrad() ? ad.b().numel() : 0);
                    trainableArrays.add(4 * ad.a().numel());
                    trainableArrays.add(4 * ad.b().numel());
                }
                if (ll.isDisabled() || ll.active().isEmpty()) {
                    continue;
                }
                LayerLora target = layerOf(e.getKey(), perLayer, head);
                for (String name : ll.active()) {
                    if (ll.merged().contains(name)) {
                        continue;
                    }
                    LoraAdapter ad = ll.adapter(name);
                    target.add(shortName(e.getKey()), ad.rank(), ad.dropout() > 0);
                }
            }
        }
        for (Tensor t : model.allTensors().values()) {
            if (t.requiresGrad()) {
                trainable += t.numel();
                adapterParams += t.numel(); // a trained base tensor (full fine-tuning of a norm) is held like an adapter
                trainableArrays.add(4 * t.numel());
            }
        }
        Inputs in = new Inputs(model.config(), perLayer, head, heapWeights, offHeapWeights, adapterParams, trainable,
                "loaded tensors", frozenArrays, trainableArrays);
        return build("memory plan of the loaded model", shape, in);
    }

    /**
     * The plan from a config alone, nothing loaded or allocated: for {@code finetune --dry-run} and
     * {@code inspect} on models of any size.
     */
    public static MemoryPlan of(LlamaConfig config, LoraConfig lora, Weights weights, Shape shape) {
        LlamaModel meta = LlamaModel.meta(config);
        Map<String, Linear> linears = meta.linears();
        LoraConfig mapped = Target.forModel(lora, config.architecture(), linears.keySet());
        List<String> selected = mapped.validateAgainst(linears.keySet());
        long heap = 0;
        long offHeap = 0;
        Set<Tensor> linearWeights = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Map.Entry<String, Linear> e : linears.entrySet()) {
            if (!e.getKey().equals("lm_head")) {
                linearWeights.add(e.getValue().weight());
            }
        }
        Set<Tensor> norms = Collections.newSetFromMap(new IdentityHashMap<>());
        meta.allTensors().forEach((name, t) -> {
            if (t.rank() == 1 && name.contains("norm")) {
                norms.add(t);
            }
        });
        List<Long> frozenArrays = new ArrayList<>();
        for (Tensor t : identity(meta.allTensors().values())) {
            long n = t.numel();
            long bytes;
            if (weights.quantBits() > 0 && linearWeights.contains(t)) {
                bytes = weights.quantizedBytes(n);
            } else if (norms.contains(t) && weights.offHeap()) {
                bytes = 4 * n; // the loader copies norm weights to F32
            } else if (weights.offHeap()) {
                offHeap += n * weights.bytesPerValue();
                continue;
            } else {
                bytes = n * weights.bytesPerValue();
            }
            heap += bytes;
            frozenArrays.add(bytes);
        }
        List<LayerLora> perLayer = new ArrayList<>();
        for (int i = 0; i < config.numHiddenLayers(); i++) {
            perLayer.add(new LayerLora());
        }
        LayerLora head = new LayerLora();
        long params = 0;
        List<Long> trainableArrays = new ArrayList<>();
        for (String module : selected) {
            ModuleLora m = mapped.resolve(module).orElseThrow();
            Linear lin = linears.get(module);
            params += (long) m.rank() * (lin.inFeatures() + lin.outFeatures());
            trainableArrays.add(4L * m.rank() * lin.inFeatures());
            trainableArrays.add(4L * m.rank() * lin.outFeatures());
            layerOf(module, perLayer, head).add(shortName(module), m.rank(), m.dropout() > 0);
        }
        Inputs in = new Inputs(config, perLayer, head, heap, offHeap, params, params, weights.name(), frozenArrays,
                trainableArrays);
        return build("memory plan from the config (" + weights.name() + " weights)", shape, in);
    }

    private static List<Tensor> identity(java.util.Collection<Tensor> tensors) {
        List<Tensor> out = new ArrayList<>();
        Set<Tensor> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Tensor t : tensors) {
            if (seen.add(t)) {
                out.add(t);
            }
        }
        return out;
    }

    static boolean offHeap(Storage s) {
        return s.offHeap();
    }

    private static LayerLora layerOf(String module, List<LayerLora> perLayer, LayerLora head) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\.(\\d+)\\.").matcher(module);
        if (m.find()) {
            int i = Integer.parseInt(m.group(1));
            if (i < perLayer.size()) {
                return perLayer.get(i);
            }
        }
        return head;
    }

    private static String shortName(String module) {
        return module.substring(module.lastIndexOf('.') + 1);
    }

    /** The LoRA adapters of one decoder layer (or of the head): rank and dropout per module short name. */
    static final class LayerLora {
        final Map<String, int[]> modules = new java.util.HashMap<>();

        void add(String shortName, int rank, boolean dropout) {
            int[] prev = modules.get(shortName);
            int count = prev == null ? 0 : prev[2];
            int ranks = prev == null ? 0 : prev[0];
            int drops = prev == null ? 0 : prev[1];
            modules.put(shortName, new int[] {ranks + rank, drops + (dropout ? 1 : 0), count + 1});
        }

        /** Sum of the ranks of the active adapters on this module, 0 without. */
        int rank(String shortName) {
            int[] m = modules.get(shortName);
            return m == null ? 0 : m[0];
        }

        /** Adapters of this module with dropout (each keeps its own dropped copy of the input). */
        int dropouts(String shortName) {
            int[] m = modules.get(shortName);
            return m == null ? 0 : m[1];
        }

        int adapters(String shortName) {
            int[] m = modules.get(shortName);
            return m == null ? 0 : m[2];
        }
    }

    private record Inputs(LlamaConfig config, List<LayerLora> layers, LayerLora head, long heapWeights, long offHeapWeights,
                          long adapterParams, long trainableParams, String weightSource, List<Long> frozenArrays,
                          List<Long> trainableArrays) {
        /**
         * Bytes G1 adds to the heap arrays of weights and trainable tensors (each trainable one
         * held as value, gradient and optimizer slots) by giving humongous ones whole regions.
         */
        long weightRounding(long region, int optimizerSlots) {
            long extra = 0;
            for (long b : frozenArrays) {
                extra += rounding(b, region);
            }
            for (long b : trainableArrays) {
                extra += (2 + optimizerSlots) * rounding(b, region);
            }
            return extra;
        }

        private static long rounding(long bytes, long region) {
            return bytes + 16 >= region / 2 ? (bytes + 16 + region - 1) / region * region - bytes : 0;
        }
    }

    /**
     * G1's heap region size in this JVM (humongous arrays take whole regions), or 0 when the JVM
     * does not use G1 or does not say.
     */
    public static long heapRegionBytes() {
        return RegionSize.BYTES;
    }

    /** Read once: the JVM's flags do not change while it runs. */
    private static final class RegionSize {
        static final long BYTES = read();

        private RegionSize() {
        }
    }

    private static long read() {
        try {
            var diagnostics = java.lang.management.ManagementFactory.getPlatformMXBean(
                    com.sun.management.HotSpotDiagnosticMXBean.class);
            if (diagnostics == null || !"true".equals(diagnostics.getVMOption("UseG1GC").getValue())) {
                return 0;
            }
            return Long.parseLong(diagnostics.getVMOption("G1HeapRegionSize").getValue());
        } catch (RuntimeException | LinkageError e) {
            return 0;
        }
    }

    private static MemoryPlan build(String title, Shape shape, Inputs in) {
        LlamaConfig c = in.config();
        List<Row> rows = new ArrayList<>();
        rows.add(new Row("base weights (heap)", in.heapWeights(), Place.HEAP, "frozen, " + in.weightSource()));
        if (in.offHeapWeights() > 0) {
            rows.add(new Row("base weights (mapped)", in.offHeapWeights(), Place.OFF_HEAP, "memory-mapped, resident once read"));
        }
        rows.add(new Row("LoRA adapters", 4 * in.adapterParams(), Place.HEAP, String.format(Locale.ROOT, "%,d F32 parameters",
                in.adapterParams())));
        rows.add(new Row("LoRA gradients", 4 * in.trainableParams(), Place.HEAP, "one F32 per trainable parameter"));
        rows.add(new Row("optimizer state", 4L * shape.optimizer().slots() * in.trainableParams(), Place.HEAP,
                shape.optimizer() == Optimizer.ADAMW ? "AdamW m and v" : shape.optimizer() == Optimizer.SGD_MOMENTUM
                        ? "SGD momentum" : "none"));
        long activations = new ActivationCount(0).peak(c, in.layers(), in.head(), shape);
        rows.add(new Row("activations + grads", activations, Place.HEAP, "step arena high-water mark"
                + (shape.activationCheckpointing() ? ", block inputs + one recomputed block" : "")));
        rows.add(new Row("arena pool slack", new ActivationCount(0).footprint(c, in.layers(), in.head(), shape) - activations,
                Place.HEAP, "idle pooled buffers of sizes the peak does not use"));
        long region = heapRegionBytes();
        if (region > 0) {
            long rounding = new ActivationCount(region).footprint(c, in.layers(), in.head(), shape)
                    - new ActivationCount(0).footprint(c, in.layers(), in.head(), shape)
                    + in.weightRounding(region, shape.optimizer().slots());
            rows.add(new Row("G1 region rounding", rounding, Place.HEAP, "humongous arrays take whole "
                    + (region >> 20) + " MiB regions"));
        }
        int rotary = c.rotaryDim();
        long rope = 2L * 4 * shape.sequenceLength() * (rotary / 2)
                * (c.architecture().localRopeTheta() > 0 ? 2 : 1);
        rows.add(new Row("RoPE tables", rope, Place.HEAP, "cos/sin for " + shape.sequenceLength() + " positions"));
        rows.add(new Row("compute workspace", (long) shape.threads() * workspaceBytesPerThread(c, shape), Place.HEAP,
                shape.threads() + " x (gemm panels + attention scores)"));
        rows.add(new Row("JVM baseline", JVM_BASELINE_BYTES + (long) shape.threads() * THREAD_BYTES, Place.OFF_HEAP,
                "estimate: metaspace, code cache, GC tables, stacks"));
        return new MemoryPlan(title, shape, rows, in);
    }

    /** gemm's packed B (NC x KC) and A (MC x KC) panels, and attention's score blocks and transposes. */
    static long workspaceBytesPerThread(LlamaConfig c, Shape shape) {
        long gemm = 3072L * 256 + 256L * 256 + 3072 + 16 * 16;
        long s = shape.sequenceLength();
        long d = c.headDim();
        long attention = 2 * 64 * s + d * 64 + 2 * d * s + 3 * 64;
        return 4 * (gemm + attention);
    }

    /**
     * Bytes of the step arena, op by op as {@code LlamaModel.forward}, the autograd ops and
     * {@code CausalLmLoss} allocate them (each rounded up to the pool's bucket), then the
     * backward's largest set of live gradients.
     */
    static final class ActivationCount {
        /** G1 heap region bytes (0: count the arena's bytes as they are). */
        private final long region;

        /** While not null, every buffer counted is also tallied here: bytes per buffer -> buffers. */
        private Map<Long, Long> tally;

        ActivationCount(long region) {
            this.region = region;
        }

        /** {@code count} buffers of at least n floats. */
        long many(long count, long n) {
            long sum = 0;
            for (long i = 0; i < count; i++) {
                sum += bucket(n);
            }
            return sum;
        }

        /**
         * Bytes of a pool buffer of at least n floats: its bucket, and with G1 regions the whole
         * regions a humongous array (half a region or more, header included) occupies.
         */
        long bucket(long n) {
            long bytes = 4 * floats(n);
            if (region > 0 && bytes + 16 >= region / 2) {
                bytes = (bytes + 16 + region - 1) / region * region;
            }
            if (tally != null) {
                tally.merge(bytes, 1L, Long::sum);
            }
            return bytes;
        }

        /** The buffers {@code phase} counts, by size. */
        private Map<Long, Long> buffersOf(Runnable phase) {
            Map<Long, Long> saved = tally;
            tally = new java.util.HashMap<>();
            try {
                phase.run();
                return tally;
            } finally {
                tally = saved;
            }
        }

        /**
         * The pool's buffers at the end of a step: besides what stays alive, each size as many times
         * as the most buffers of that size any one backward phase holds at once (a buffer given back
         * serves later requests of its own size only). At least {@link #peak}; the difference is the
         * pool's slack.
         */
        long footprint(LlamaConfig c, List<LayerLora> layers, LayerLora head, Shape shape) {
            long n = (long) shape.microBatchSize() * shape.sequenceLength();
            long hidden = c.hiddenSize();
            long saved = saved(c, layers, head, shape, n);
            Map<Long, Long> union = new java.util.HashMap<>();
            List<Map<Long, Long>> phases = new ArrayList<>();
            phases.add(buffersOf(() -> headBackward(c, head, n)));
            for (LayerLora l : layers) {
                for (int sub = 0; sub < 3; sub++) {
                    int which = sub;
                    phases.add(buffersOf(() -> {
                        bucket(n * hidden); // the incoming residual gradient
                        many(2, 1);
                        if (shape.activationCheckpointing()) {
                            bucket(n * hidden); // the block input's gradient
                            layerForward(c, l, n); // the recomputed block
                        }
                        layerBackwardPhase(c, l, n, which);
                    }));
                }
            }
            for (Map<Long, Long> phase : phases) {
                phase.forEach((size, count) -> union.merge(size, count, Math::max));
            }
            long transient_ = 0;
            for (Map.Entry<Long, Long> e : union.entrySet()) {
                transient_ += e.getKey() * e.getValue();
            }
            return saved + transient_;
        }

        /** The pool's bucket (HeapPool.bucket): exact up to 4096 floats, then four sizes per octave. */
        static long floats(long n) {
            if (n <= 4096) {
                return n;
            }
            long high = Long.highestOneBit(n);
            long quarter = high >>> 2;
            return high + quarter * ((n - high + quarter - 1) / quarter);
        }

        long peak(LlamaConfig c, List<LayerLora> layers, LayerLora head, Shape shape) {
            long n = (long) shape.microBatchSize() * shape.sequenceLength();
            long hidden = c.hiddenSize();
            long saved = saved(c, layers, head, shape, n);
            long maxLayerFwd = 0;
            long maxLayerBwd = 0;
            for (LayerLora l : layers) {
                maxLayerFwd = Math.max(maxLayerFwd, layerForward(c, l, n));
                maxLayerBwd = Math.max(maxLayerBwd, layerBackward(c, l, n));
            }
            long headBwd = headBackward(c, head, n);
            // in a block: the incoming residual gradient plus the block's own live gradients; with
            // checkpointing also the block input's gradient and the block's recomputed forward
            long blockBwd = shape.activationCheckpointing()
                    ? 2 * bucket(n * hidden) + maxLayerFwd + maxLayerBwd + many(2, 1)
                    : bucket(n * hidden) + maxLayerBwd + many(2, 1);
            return saved + Math.max(headBwd, blockBwd);
        }

        /** What stays alive from the forward to the end of the backward. */
        private long saved(LlamaConfig c, List<LayerLora> layers, LayerLora head, Shape shape, long n) {
            long hidden = c.hiddenSize();
            long vocab = c.vocabSize();
            Architecture a = c.architecture();
            long embed = bucket(n * hidden) + (a.scaleEmbeddings() ? bucket(n * hidden) : 0);
            // final norm, lm_head (+ LoRA), optional soft-cap, the loss's log-sum-exp, loss scaling
            long saved = embed + norm(a, n, hidden) + lora(head, "lm_head", n, hidden, vocab)
                    + (a.finalSoftCap() > 0 ? bucket(n * vocab) : 0) + bucket(n) + many(2, 1);
            for (LayerLora l : layers) {
                saved += shape.activationCheckpointing() ? bucket(n * hidden) : layerForward(c, l, n);
            }
            return saved;
        }

        /** Backward at the head: the logits' gradient, the head's input gradient, the adapter's scratch. */
        private long headBackward(LlamaConfig c, LayerLora head, long n) {
            return bucket(n * c.vocabSize()) + bucket(n * c.hiddenSize()) + rankScratch(head, "lm_head", n)
                    + many(head.dropouts("lm_head"), n * c.hiddenSize()) + many(2, 1);
        }

        private long norm(Architecture a, long n, long width) {
            return bucket(n * width) + many(a.norm() == Architecture.Norm.LAYER_NORM ? 2 : 1, n);
        }

        /** A linear layer's output and, per adapter, x·Aᵀ and the dropped-out input. */
        private long lora(LayerLora l, String module, long n, long in, long out) {
            long bytes = bucket(n * out);
            if (l.adapters(module) > 0) {
                bytes += many(l.adapters(module), n * Math.max(1, l.rank(module) / l.adapters(module)))
                        + many(l.dropouts(module), n * in);
            }
            return bytes;
        }

        private long rankScratch(LayerLora l, String module, long n) {
            return l.adapters(module) > 0 ? bucket(n * Math.max(1, l.rank(module) / l.adapters(module))) : 0;
        }

        long layerForward(LlamaConfig c, LayerLora l, long n) {
            Architecture a = c.architecture();
            long hidden = c.hiddenSize();
            long q = c.queryDim();
            long kv = c.keyValueDim();
            long inter = c.intermediateSize();
            long heads = c.numAttentionHeads();
            long f = norm(a, n, hidden);
            if (a.qkv().fused()) {
                String name = a.qkv().names().get(0);
                f += lora(l, name, n, hidden, q + 2 * kv) + bucket(n * q) + many(2, n * kv); // contiguous q, k, v
            } else {
                f += lora(l, "q_proj", n, hidden, q) + lora(l, "k_proj", n, hidden, kv) + lora(l, "v_proj", n, hidden, kv);
            }
            if (a.qkNorm()) {
                f += bucket(n * q) + bucket(n * heads) + bucket(n * kv) + bucket(n * c.numKeyValueHeads());
            }
            f += bucket(n * q) + bucket(n * kv); // RoPE outputs
            f += bucket(n * q) + bucket(n * heads); // attention output and log-sum-exp
            f += lora(l, a.outputName(), n, q, hidden);
            if (a.sandwich()) {
                f += norm(a, n, hidden);
            }
            List<String> mlp = a.mlp().names();
            String down = mlp.get(mlp.size() - 1);
            long mlpF;
            if (a.mlp() == Architecture.Mlp.GATED_FUSED) {
                mlpF = lora(l, mlp.get(0), n, hidden, 2 * inter) + many(3, n * inter);
            } else if (a.mlp().gated()) {
                mlpF = lora(l, mlp.get(0), n, hidden, inter) + lora(l, mlp.get(1), n, hidden, inter) + bucket(n * inter);
            } else {
                mlpF = lora(l, mlp.get(0), n, hidden, inter) + bucket(n * inter);
            }
            mlpF += lora(l, down, n, inter, hidden);
            if (a.sandwich()) {
                mlpF += norm(a, n, hidden);
            }
            if (a.parallel()) {
                f += mlpF + many(2, n * hidden); // attn + mlp, then the residual
            } else {
                f += bucket(n * hidden) + norm(a, n, hidden) + mlpF + bucket(n * hidden);
            }
            return f;
        }

        /** The most gradient bytes a block holds at once in backward, besides the incoming residual gradient. */
        long layerBackward(LlamaConfig c, LayerLora l, long n) {
            long most = 0;
            for (int phase = 0; phase < 3; phase++) {
                most = Math.max(most, layerBackwardPhase(c, l, n, phase));
            }
            return most;
        }

        /**
         * The gradients live at three moments of a block's backward, besides the incoming residual
         * gradient: 0, down_proj (its output's gradient, the activation's, the dropped-out copy's);
         * 1, the gate (the activation's gradient and those of gate and up, or of the fused gate_up);
         * 2, attention (the output's gradient and those of q, k, v).
         */
        long layerBackwardPhase(LlamaConfig c, LayerLora l, long n, int phase) {
            Architecture a = c.architecture();
            List<String> mlp = a.mlp().names();
            String down = mlp.get(mlp.size() - 1);
            long inter = n * c.intermediateSize();
            return switch (phase) {
                case 0 -> bucket(n * c.hiddenSize()) + many(1 + l.dropouts(down), inter) + rankScratch(l, down, n);
                case 1 -> many(a.mlp().gated() ? 3 : 2, inter);
                default -> many(2, n * c.queryDim()) + many(2, n * c.keyValueDim()) + bucket(n * c.hiddenSize());
            };
        }
    }

    // ---------------------------------------------------------------- results

    public Shape shape() {
        return shape;
    }

    public List<Row> rows() {
        return rows;
    }

    /** The row with this name. */
    public Optional<Row> row(String name) {
        return rows.stream().filter(r -> r.name().equals(name)).findFirst();
    }

    /** Bytes of the step arena at its high-water mark (the "activations + grads" row). */
    public long activationBytes() {
        return row("activations + grads").orElseThrow().bytes();
    }

    /** The live Java heap at the step's peak: the sum of the heap rows. */
    public long predictedPeakHeap() {
        long sum = 0;
        for (Row r : rows) {
            if (r.place() == Place.HEAP) {
                sum += r.bytes();
            }
        }
        return sum;
    }

    /** Off-heap bytes: mapped weights and the JVM's own memory. */
    public long offHeapBytes() {
        long sum = 0;
        for (Row r : rows) {
            if (r.place() == Place.OFF_HEAP) {
                sum += r.bytes();
            }
        }
        return sum;
    }

    /** Resident memory at the peak: the heap with {@value #RSS_HEADROOM_PERCENT}% headroom, plus everything off-heap. */
    public long predictedRss() {
        return predictedPeakHeap() + predictedPeakHeap() * RSS_HEADROOM_PERCENT / 100 + offHeapBytes();
    }

    /** The -Xmx this plan recommends: the peak heap plus {@value #XMX_HEADROOM_PERCENT}%, in bytes. */
    public long recommendedMaxHeap() {
        return predictedPeakHeap() + predictedPeakHeap() * XMX_HEADROOM_PERCENT / 100;
    }

    // ---------------------------------------------------------------- the check

    /**
     * The machine's memory (com.sun.management.OperatingSystemMXBean#getTotalMemorySize), or empty when the
     * JVM does not say.
     */
    public static java.util.OptionalLong physicalMemory() {
        try {
            java.lang.management.OperatingSystemMXBean os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
            if (os instanceof com.sun.management.OperatingSystemMXBean sun) {
                long total = sun.getTotalMemorySize(); // the container's limit when there is one
                return total > 0 ? java.util.OptionalLong.of(total) : java.util.OptionalLong.empty();
            }
        } catch (RuntimeException | LinkageError e) {
            // not a HotSpot-compatible JVM: no figure
        }
        return java.util.OptionalLong.empty();
    }

    /**
     * Throws {@link DoesNotFitException} when the predicted peak heap exceeds {@code maxHeap} or the
     * predicted resident memory exceeds {@code physicalMemory}; the message names both numbers and
     * which settings would make the run fit. A limit of 0 or less is not checked.
     */
    public void check(long maxHeap, long physicalMemory) {
        List<String> problems = new ArrayList<>();
        if (maxHeap > 0 && predictedPeakHeap() > maxHeap) {
            problems.add("the predicted peak heap " + size(predictedPeakHeap()) + " exceeds the JVM's maximum heap "
                    + size(maxHeap) + " (-Xmx)");
        }
        if (physicalMemory > 0 && predictedRss() > physicalMemory) {
            problems.add("the predicted resident memory " + size(predictedRss()) + " exceeds the machine's memory "
                    + size(physicalMemory));
        }
        if (problems.isEmpty()) {
            return;
        }
        throw new DoesNotFitException("training would run out of memory: " + String.join("; ", problems) + " for "
                + shape + ". " + suggestions(maxHeap, physicalMemory) + "\n" + format(), this);
    }

    /** What to change, with the figure each change gives. */
    String suggestions(long maxHeap, long physicalMemory) {
        List<String> out = new ArrayList<>();
        long heap = predictedPeakHeap();
        if (!shape.activationCheckpointing()) {
            MemoryPlan p = build(title, shape.activationCheckpointing(true), inputs);
            out.add("turn on activation checkpointing (--activation-checkpointing / activationCheckpointing(true)): peak heap "
                    + size(p.predictedPeakHeap()));
        }
        if (shape.microBatchSize() > 1) {
            MemoryPlan p = build(title, shape.microBatchSize(1), inputs);
            out.add("use micro-batch size 1 with gradient accumulation (--micro-batch-size 1): " + size(p.predictedPeakHeap()));
        }
        if (shape.sequenceLength() > 256) {
            Shape shorter = new Shape(shape.microBatchSize(), shape.sequenceLength() / 2, shape.optimizer(),
                    shape.activationCheckpointing(), shape.threads());
            MemoryPlan p = build(title, shorter, inputs);
            out.add("halve the sequence length to " + shorter.sequenceLength() + " (--max-seq-length): " + size(p.predictedPeakHeap()));
        }
        long weights = row("base weights (heap)").map(Row::bytes).orElse(0L);
        if (weights > heap / 3) {
            out.add("load the base in 4 bits (QLoRA, --quantize nf4-dq) or memory-mapped 16-bit weights: the heap weights are "
                    + size(weights));
        }
        if (maxHeap > 0 && heap > maxHeap) {
            out.add("give the JVM more heap: -Xmx" + ((recommendedMaxHeap() >> 20) + 1) + "m (the peak plus "
                    + XMX_HEADROOM_PERCENT + "% for the garbage collector)");
        }
        return "To make it fit: " + String.join("; or ", out) + ". (--no-memory-check, or Trainer.builder(...).memoryCheck(false), skips this check.)";
    }

    // ---------------------------------------------------------------- printing

    /** Bytes as MiB with one decimal, or from 1 GiB on as GiB with two. */
    public static String size(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
        }
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }

    /** The table: one line per row, then the two totals. */
    public String format() {
        StringBuilder sb = new StringBuilder();
        sb.append(title).append(": ").append(shape).append('\n');
        sb.append(String.format(Locale.ROOT, "  %-24s %12s  %-8s %s%n", "component", "size", "where", "how"));
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "  %-24s %12s  %-8s %s%n", r.name(), size(r.bytes()),
                    r.place() == Place.HEAP ? "heap" : "off-heap", r.detail()));
        }
        sb.append(String.format(Locale.ROOT, "  %-24s %12s  %-8s %s%n", "predicted peak heap", size(predictedPeakHeap()), "heap",
                "live set at the step's peak; compare with -Xmx"));
        sb.append(String.format(Locale.ROOT, "  %-24s %12s  %-8s %s", "predicted peak RSS", size(predictedRss()), "",
                "heap + " + RSS_HEADROOM_PERCENT + "% + off-heap; recommended -Xmx" + ((recommendedMaxHeap() >> 20) + 1) + "m"));
        return sb.toString();
    }

    @Override
    public String toString() {
        return format();
    }
}
