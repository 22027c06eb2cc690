package dev.lora4j.benchmarks;

import dev.lora4j.data.Example;
import dev.lora4j.gguf.BlockQuantStorage;
import dev.lora4j.gguf.GgufExport;
import dev.lora4j.gguf.GgufFileType;
import dev.lora4j.gguf.GgufModel;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Storage;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.CausalLmLoss;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Memory of LoRA training on a Q4_K_M GGUF base: issue 12 asks that "a Q4_K_M file of a 1B model
 * train in about the memory of its file plus the adapter and activations".
 *
 * <p>{@code create OUT [vocab]} writes a random-weight model of Llama-3.2-1B's shape (hidden 2048,
 * 16 layers, 32/8 heads, head_dim 64, intermediate 8192, tied embedding, vocabulary 128256 unless
 * given) as Q4_K_M with lora4j's exporter ({@link GgufFileType#Q4_K_M}, llama.cpp's mix and
 * quantizers) and arith-tiny's tokenizer padded to the vocabulary. The weights come from a hash of
 * their index (uniform, std 1/√in; the embedding std 0.02), generated one tensor at a time, so the
 * exporter never holds the model in F32.
 *
 * <p>{@code train FILE [steps] [seq]} loads the GGUF as a frozen base (its blocks stay Q4_K/Q6_K,
 * memory-mapped), wraps LoRA r=8 alpha 16 on q, k, v, o, gate, up, down, runs AdamW steps on one
 * random sequence of {@code seq} tokens each, and prints the file size, adapter, gradient and
 * optimizer bytes, the heap (the largest live set after a garbage collection, and the sum of the
 * heap pools' peaks, an upper bound), the peak RSS (VmHWM) and the
 * storage of every base matrix (to show that nothing was widened).
 *
 * <pre>
 * mvn -q -B -pl benchmarks -am package -DskipTests
 * java -Xmx3g -cp benchmarks/target/benchmarks.jar dev.lora4j.benchmarks.GgufQ4KMMemory create /tmp/llama1b.Q4_K_M.gguf
 * java -Xmx2g --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar \
 *     dev.lora4j.benchmarks.GgufQ4KMMemory train /tmp/llama1b.Q4_K_M.gguf 3 256
 * </pre>
 */
public final class GgufQ4KMMemory {
    private GgufQ4KMMemory() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length >= 2 && args[0].equals("create")) {
            create(Path.of(args[1]), args.length > 2 ? Integer.parseInt(args[2]) : 128256);
        } else if (args.length >= 2 && args[0].equals("train")) {
            train(Path.of(args[1]), args.length > 2 ? Integer.parseInt(args[2]) : 3, args.length > 3 ? Integer.parseInt(args[3]) : 256);
        } else {
            System.err.println("usage: GgufQ4KMMemory create OUT.gguf [vocab] | train FILE.gguf [steps] [seq]");
            System.exit(2);
        }
    }

    /** Llama-3.2-1B's shape (without its RoPE scaling). */
    static LlamaConfig llama1b(int vocab) {
        return LlamaConfig.builder().modelType("llama").vocabSize(vocab).hiddenSize(2048).intermediateSize(8192)
                .numHiddenLayers(16).numAttentionHeads(32).numKeyValueHeads(8).maxPositionEmbeddings(131072)
                .rmsNormEps(1e-5).ropeTheta(500000).tieWordEmbeddings(true).bosTokenId(1).eosTokenIds(List.of(2)).build();
    }

    static void create(Path out, int vocab) {
        LlamaConfig config = llama1b(vocab);
        long[] seed = {0};
        LlamaModel model = LlamaModel.assemble(config, (name, shape) -> {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            float std = shape.length == 1 ? 0f : name.contains("embed") ? 0.02f : (float) (1 / Math.sqrt(shape[1]));
            return new Tensor(new HashStorage(++seed[0] * 0x9E3779B97F4A7C15L, n, shape.length == 1 ? 1f : 0f, std), shape)
                    .name(name);
        });
        long t0 = System.nanoTime();
        GgufExport.model(model, Path.of("lora-examples/models/arith-tiny"), GgufFileType.Q4_K_M, out);
        System.out.printf(Locale.ROOT, "wrote %s: %.1f MB in %.0f s%n", out, size(out) / 1e6, (System.nanoTime() - t0) / 1e9);
    }

    static void train(Path file, int steps, int seq) {
        long[] liveAfterGc = {0};
        for (var gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            ((javax.management.NotificationEmitter) gc).addNotificationListener((n, h) -> {
                if (n.getType().equals(com.sun.management.GarbageCollectionNotificationInfo.GARBAGE_COLLECTION_NOTIFICATION)) {
                    var info = com.sun.management.GarbageCollectionNotificationInfo.from(
                            (javax.management.openmbean.CompositeData) n.getUserData());
                    long used = 0;
                    for (var e : info.getGcInfo().getMemoryUsageAfterGc().entrySet()) {
                        if (!e.getKey().contains("Metaspace") && !e.getKey().contains("Code") && !e.getKey().contains("Class")) {
                            used += e.getValue().getUsed();
                        }
                    }
                    synchronized (liveAfterGc) {
                        liveAfterGc[0] = Math.max(liveAfterGc[0], used);
                    }
                }
            }, null, null);
        }
        long t0 = System.nanoTime();
        GgufModel gguf = GgufModel.load(file);
        LlamaModel base = gguf.model();
        double loadSeconds = (System.nanoTime() - t0) / 1e9;
        LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(8).alpha(16).targets(Target.ALL_LINEAR).seed(1));
        List<Tensor> params = new ArrayList<>(lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values());
        long adapterParams = 0;
        for (Tensor p : params) {
            adapterParams += p.numel();
        }
        AdamW adam = new AdamW(params, 1e-4, 0.0);
        int vocab = base.config().vocabSize();
        SplittableRandom rng = new SplittableRandom(5);
        double stepSeconds = 0;
        for (int step = 0; step < steps; step++) {
            int[] ids = new int[seq];
            for (int i = 0; i < seq; i++) {
                ids[i] = rng.nextInt(vocab);
            }
            long s = System.nanoTime();
            Tensor loss = CausalLmLoss.loss(lora.model(), CausalLmLoss.collate(List.of(Example.unmasked(ids)), 0));
            float l = loss.toFloatArray()[0];
            loss.backward();
            adam.step();
            params.forEach(Tensor::zeroGrad);
            double sec = (System.nanoTime() - s) / 1e9;
            stepSeconds += step > 0 ? sec : 0;
            System.out.printf(Locale.ROOT, "step %d: loss %.3f, %.1f s%n", step, l, sec);
        }
        long widened = 0;
        StringBuilder storages = new StringBuilder();
        java.util.Map<String, Integer> kinds = new java.util.TreeMap<>();
        for (Linear lin : base.linears().values()) {
            Storage st = lin.weight().storage();
            String kind = st instanceof BlockQuantStorage b ? b.type().toString() : st.getClass().getSimpleName() + "/" + st.dtype();
            kinds.merge(kind, 1, Integer::sum);
            if (!(st instanceof BlockQuantStorage)) {
                widened += st.byteSize();
            }
        }
        Storage embed = base.embedTokens().storage();
        storages.append("linear weights ").append(kinds).append("; embedding ")
                .append(embed instanceof BlockQuantStorage b ? b.type() : embed.getClass().getSimpleName() + "/" + embed.dtype());
        long peakHeap = 0;
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            if (pool.getType() == MemoryType.HEAP && pool.getPeakUsage() != null) {
                peakHeap += pool.getPeakUsage().getUsed();
            }
        }
        long fileBytes = size(file);
        System.out.printf(Locale.ROOT, "file %s: %.1f MB (loaded in %.1f s; %s)%n", file, fileBytes / 1e6, loadSeconds, storages);
        System.out.printf(Locale.ROOT, "adapter: %,d parameters = %.1f MB; gradients %.1f MB; AdamW moments %.1f MB%n",
                adapterParams, adapterParams * 4 / 1e6, adapterParams * 4 / 1e6, adapterParams * 8 / 1e6);
        System.out.printf(Locale.ROOT, "base matrices widened off the file: %.1f MB%n", widened / 1e6);
        System.out.printf(Locale.ROOT, "seq %d, %d steps, %.1f s/step after the first; -Xmx %.0f MB%n", seq, steps,
                steps > 1 ? stepSeconds / (steps - 1) : Double.NaN, Runtime.getRuntime().maxMemory() / 1e6);
        synchronized (liveAfterGc) {
            System.out.printf(Locale.ROOT, "heap: largest live set after a GC %.1f MB, sum of the pools' peaks %.1f MB; "
                    + "peak RSS (VmHWM) %.1f MB; VmRSS now %.1f MB%n", liveAfterGc[0] / 1e6, peakHeap / 1e6,
                    status("VmHWM") / 1e6, status("VmRSS") / 1e6);
        }
    }

    private static long size(Path p) {
        try {
            return Files.size(p);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** A field of /proc/self/status in bytes (0 where there is none). */
    private static long status(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }

    /** Deterministic pseudo-random values from a hash of the index: uniform with the given mean and std. */
    static final class HashStorage implements Storage {
        private final long seed;
        private final long size;
        private final float mean;
        private final float halfWidth;

        HashStorage(long seed, long size, float mean, float std) {
            this.seed = seed;
            this.size = size;
            this.mean = mean;
            this.halfWidth = (float) (std * Math.sqrt(3));
        }

        @Override
        public DType dtype() {
            return DType.F32;
        }

        @Override
        public long size() {
            return size;
        }

        @Override
        public void decode(long start, int count, float[] dst, int dstOffset) {
            for (int i = 0; i < count; i++) {
                long z = seed + (start + i) * 0x9E3779B97F4A7C15L;
                z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
                z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
                z ^= z >>> 31;
                float u = (z >>> 40) * 0x1p-24f; // [0, 1)
                dst[dstOffset + i] = mean + halfWidth * (2 * u - 1);
            }
        }

        @Override
        public long byteSize() {
            return size * 4;
        }
    }
}
