package dev.lora4j.benchmarks;

import dev.lora4j.backend.CpuBackend;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.MemoryPlan;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.Quantizer;
import dev.lora4j.train.Trainer;
import dev.lora4j.train.TrainerListener;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The {@link MemoryPlan} against measured peaks: for each case a fresh JVM builds the model with
 * random weights (the {@link TrainShape} shapes), wraps it with LoRA r=8 on q, k, v, o, gate, up,
 * down (and an untied lm_head), runs a few AdamW steps through {@link Trainer#fit} (whose memory
 * check is on) and reports
 * <ul>
 * <li>the step arena's high-water mark ({@code CpuBackend.arenaPeakBytes}) against the plan's
 * activation row;</li>
 * <li>the live heap: the most heap in use right after a full collection at the end of a step
 * (the arena's buffers are then idle in the pool, so this is the step's peak live set) against
 * {@link MemoryPlan#predictedPeakHeap()};</li>
 * <li>the peak resident set ({@code VmHWM} of /proc/self/status) against {@link MemoryPlan#predictedRss()}.</li>
 * </ul>
 * Each child runs with the -Xmx the plan recommends ({@link MemoryPlan#recommendedMaxHeap()}), as a
 * user following the plan would.
 *
 * <pre>java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar \
 *     dev.lora4j.benchmarks.MemoryPlanCheck [steps]</pre>
 */
public final class MemoryPlanCheck {
    private MemoryPlanCheck() {
    }

    /** One measured case: a shape, with or without checkpointing, LoRA or QLoRA (nf4-dq). */
    record Case(String shape, int batch, int seq, boolean checkpointing, boolean qlora) {
        String label() {
            return String.format(Locale.ROOT, "%s %dx%d%s%s", shape, batch, seq, checkpointing ? " ckpt" : "",
                    qlora ? " qlora" : "");
        }
    }

    static final List<Case> CASES = List.of(
            new Case("tiny", 4, 128, false, false),
            new Case("tiny", 4, 128, true, false),
            new Case("smollm2-135m", 1, 256, false, false),
            new Case("smollm2-135m", 4, 256, false, false),
            new Case("smollm2-135m", 4, 256, true, false),
            new Case("smollm2-135m", 4, 256, false, true));

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("--child")) {
            child(new Case(args[1], Integer.parseInt(args[2]), Integer.parseInt(args[3]), Boolean.parseBoolean(args[4]),
                    Boolean.parseBoolean(args[5])), Integer.parseInt(args[6]));
            return;
        }
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 4;
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String cp = System.getProperty("java.class.path");
        System.out.printf(Locale.ROOT, "%d steps per case, %d compute threads, %s%n", steps,
                dev.lora4j.backend.Parallel.parallelism(), Runtime.version());
        System.out.printf(Locale.ROOT, "%-28s %9s %9s %6s | %9s %9s %6s | %9s %9s %6s%n", "case (-Xmx)", "arena", "plan",
                "ratio", "heap", "plan", "ratio", "RSS", "plan", "ratio");
        for (Case c : CASES) {
            MemoryPlan plan = plan(c);
            long xmx = Math.max(64L << 20, plan.recommendedMaxHeap());
            List<String> cmd = new ArrayList<>(List.of(java, "-Xmx" + (xmx >> 20) + "m", "--add-modules",
                    "jdk.incubator.vector", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp,
                    MemoryPlanCheck.class.getName(), "--child", c.shape(), "" + c.batch(), "" + c.seq(),
                    "" + c.checkpointing(), "" + c.qlora(), "" + steps));
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String result = null;
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    if (line.startsWith("RESULT ")) {
                        result = line.substring(7);
                    } else if (!line.startsWith("WARNING") && !line.isBlank()) {
                        System.out.println("  | " + line);
                    }
                }
            }
            if (p.waitFor() != 0 || result == null) {
                System.out.println(c.label() + ": the child failed (exit " + p.exitValue() + ")");
                continue;
            }
            String[] f = result.split(" ");
            long[] v = new long[f.length];
            for (int i = 0; i < f.length; i++) {
                v[i] = Long.parseLong(f[i]);
            }
            // measured arena, planned arena, measured heap, planned heap, measured RSS, planned RSS
            System.out.printf(Locale.ROOT, "%-28s %9s %9s %6.3f | %9s %9s %6.3f | %9s %9s %6.3f%n",
                    c.label() + " (" + (xmx >> 20) + "m)", mib(v[0]), mib(v[1]), v[1] / (double) v[0], mib(v[2]), mib(v[3]),
                    v[3] / (double) v[2], mib(v[4]), mib(v[5]), v[5] / (double) v[4]);
        }
    }

    private static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1fM", bytes / (double) (1L << 20));
    }

    static LoraConfig lora(TrainShape shape) {
        return LoraConfig.rank(8).alpha(16).targets(shape.targets());
    }

    /** The plan from the config alone, as {@code finetune --dry-run} makes it. */
    static MemoryPlan plan(Case c) {
        TrainShape shape = TrainShape.of(c.shape()).withBatch(c.batch(), c.seq());
        MemoryPlan.Weights w = c.qlora() ? MemoryPlan.Weights.nf4(QuantConfig.NF4_DQ.blocksize(), true) : MemoryPlan.Weights.F32;
        return MemoryPlan.of(shape.config(), lora(shape), w, MemoryPlan.Shape.of(c.batch(), c.seq())
                .activationCheckpointing(c.checkpointing()));
    }

    private static void child(Case c, int steps) {
        TrainShape shape = TrainShape.of(c.shape()).withBatch(c.batch(), c.seq());
        LlamaModel model = LlamaModel.initialize(shape.config(), 1);
        if (c.qlora()) {
            Quantizer.quantize(model, QuantConfig.NF4_DQ);
        }
        LoraModel lora = LoraModel.wrap(model, lora(shape));
        SplittableRandom rng = new SplittableRandom(7);
        List<Example> data = new ArrayList<>();
        for (int i = 0; i < c.batch() * steps; i++) {
            int[] ids = new int[c.seq()];
            for (int j = 0; j < ids.length; j++) {
                ids[j] = rng.nextInt(shape.config().vocabSize());
            }
            data.add(Example.unmasked(ids));
        }
        MemoryPlan loaded = lora.memoryPlan(MemoryPlan.Shape.of(c.batch(), c.seq()).activationCheckpointing(c.checkpointing()));
        MemoryPlan fromConfig = plan(c);
        if (loaded.predictedPeakHeap() != fromConfig.predictedPeakHeap()) {
            System.out.printf(Locale.ROOT, "note: the loaded model's plan (%d B) differs from the config's (%d B)%n",
                    loaded.predictedPeakHeap(), fromConfig.predictedPeakHeap());
        }
        long[] liveHeap = {0};
        java.lang.management.MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
        Trainer trainer = Trainer.builder(model).microBatchSize(c.batch()).globalBatchSize(c.batch()).maxSteps(steps)
                .warmupSteps(0).shuffle(false).activationCheckpointing(c.checkpointing()).progressLogging(false)
                .listener(new TrainerListener() {
                    @Override
                    public void onStep(StepMetrics m) {
                        System.gc();
                        liveHeap[0] = Math.max(liveHeap[0], memory.getHeapMemoryUsage().getUsed());
                    }
                })
                .build();
        CpuBackend.resetArenaPeak();
        trainer.fit(data);
        System.out.printf(Locale.ROOT, "RESULT %d %d %d %d %d %d%n", CpuBackend.arenaPeakBytes(), loaded.activationBytes(),
                liveHeap[0], loaded.predictedPeakHeap(), vmHwm(), loaded.predictedRss());
    }

    /** Peak resident set size of this process (VmHWM), or -1 off Linux. */
    static long vmHwm() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException e) {
            return -1;
        }
        return -1;
    }
}
