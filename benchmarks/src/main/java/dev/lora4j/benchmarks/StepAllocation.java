package dev.lora4j.benchmarks;

import dev.lora4j.backend.Backends;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.CausalLmLoss;
import dev.lora4j.train.Trainer;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Java heap bytes allocated per steady-state LoRA training step of the issue-9 "tiny" shape
 * (hidden 256, 4 layers, 8/4 heads, intermediate 688, vocabulary 4096, batch 4 × 128, LoRA r=8,
 * alpha 16, dropout 0.05 on q, k, v, o, gate, up, down and an untied lm_head, AdamW lr 3e-4,
 * weight decay 0.01), measured with {@code com.sun.management.ThreadMXBean#getThreadAllocatedBytes}
 * summed over every live thread (the fork-join workers included), and the time per step.
 * It runs the steps through {@link Trainer#fit} with {@code activationCheckpointing} off and on.
 *
 * <pre>java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar \
 *     dev.lora4j.benchmarks.StepAllocation [steps] [checkpointing: false|true]</pre>
 */
public final class StepAllocation {
    private StepAllocation() {
    }

    public static void main(String[] args) {
        int steps = args.length > 0 ? Integer.parseInt(args[0]) : 12;
        boolean checkpointing = args.length > 1 && Boolean.parseBoolean(args[1]);
        LlamaConfig config = LlamaConfig.builder().modelType("llama").vocabSize(4096).hiddenSize(256)
                .intermediateSize(688).numHiddenLayers(4).numAttentionHeads(8).numKeyValueHeads(4)
                .maxPositionEmbeddings(256).rmsNormEps(1e-5).tieWordEmbeddings(false).build();
        LlamaModel model = LlamaModel.initialize(config, 1);
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(8).alpha(16).dropout(0.05).targets(Target.ALL));
        SplittableRandom rng = new SplittableRandom(3);
        List<Example> examples = new ArrayList<>();
        for (int b = 0; b < 4 * (steps + 1); b++) {
            int[] ids = new int[128];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = rng.nextInt(4096);
            }
            examples.add(Example.unmasked(ids));
        }
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long[] allocated = new long[steps + 1];
        long[] nanos = new long[steps + 1];
        Trainer trainer = Trainer.builder(lora.model()).learningRate(3e-4).weightDecay(0.01).microBatchSize(4)
                .globalBatchSize(4).epochs(1).shuffle(false).warmupSteps(0)
                .activationCheckpointing(checkpointing)
                .listener(new dev.lora4j.train.TrainerListener() {
                    @Override
                    public void onStep(StepMetrics m) {
                        int i = (int) m.step();
                        if (i <= steps) {
                            allocated[i] = totalAllocated(threads);
                            nanos[i] = System.nanoTime();
                        }
                    }
                })
                .build();
        allocated[0] = totalAllocated(threads);
        nanos[0] = System.nanoTime();
        trainer.fit(examples.subList(0, 4 * steps));
        long[] perStep = new long[steps];
        double[] ms = new double[steps];
        for (int i = 1; i <= steps; i++) {
            perStep[i - 1] = allocated[i] - allocated[i - 1];
            ms[i - 1] = (nanos[i] - nanos[i - 1]) / 1e6;
        }
        long[] steady = Arrays.copyOfRange(perStep, steps / 2, steps);
        double[] steadyMs = Arrays.copyOfRange(ms, steps / 2, steps);
        Arrays.sort(steady);
        Arrays.sort(steadyMs);
        System.out.printf("backend %s, activation checkpointing %s%n", Backends.get(), checkpointing);
        System.out.printf("heap allocated per step (MB): %s%n", Arrays.toString(Arrays.stream(perStep)
                .mapToObj(b -> String.format("%.2f", b / 1e6)).toArray()));
        System.out.printf("steady state (second half) median: %.2f MB/step, %.0f ms/step, %.0f tok/s%n",
                steady[steady.length / 2] / 1e6, steadyMs[steadyMs.length / 2], 512 / (steadyMs[steadyMs.length / 2] / 1e3));
        long[] pool = dev.lora4j.backend.CpuBackend.poolStatistics();
        System.out.printf("step arena pool: %.1f MB of buffers kept for the next step (%d created, %d reuses)%n",
                pool[0] / 1e6, pool[1], pool[2]);
        Runtime rt = Runtime.getRuntime();
        System.out.printf("heap used at end: %.0f MB (committed %.0f MB)%n", (rt.totalMemory() - rt.freeMemory()) / 1e6,
                rt.totalMemory() / 1e6);
    }

    static long totalAllocated(com.sun.management.ThreadMXBean threads) {
        long[] ids = threads.getAllThreadIds();
        long sum = 0;
        for (long b : threads.getThreadAllocatedBytes(ids)) {
            if (b > 0) {
                sum += b;
            }
        }
        return sum;
    }
}
