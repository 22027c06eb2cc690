package dev.lora4j.benchmarks;

import dev.lora4j.autograd.Elementwise;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.CausalLmLoss;
import dev.lora4j.train.Optimizer;
import dev.lora4j.train.Sgd;
import dev.lora4j.train.Trainer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One LoRA training step (forward, backward, optimizer update) of a small Llama
 * (hidden 256, 4 layers, GQA 8/4 heads, intermediate 688, vocabulary 1024) on a micro-batch of
 * 4 × 64 tokens, with the frozen base in F32 or BF16, at several ranks, with AdamW or SGD.
 * Tokens per second = 256 / (seconds per step).
 *
 * <pre>java --add-modules jdk.incubator.vector -jar benchmarks/target/benchmarks.jar LoraTrainingStep</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class LoraTrainingStepBenchmark {
    @Param({"8", "64"})
    public int rank;

    @Param({"BF16", "F32"})
    public String baseDType;

    @Param({"ADAMW", "SGD"})
    public String optimizer;

    private LlamaModel model;
    private CausalLmLoss.Batch batch;
    private Optimizer opt;

    @Setup(Level.Trial)
    public void setUp() {
        LlamaConfig config = LlamaConfig.builder().modelType("llama").vocabSize(1024).hiddenSize(256)
                .intermediateSize(688).numHiddenLayers(4).numAttentionHeads(8).numKeyValueHeads(4)
                .maxPositionEmbeddings(256).rmsNormEps(1e-5).build();
        model = LlamaModel.initialize(config, 1);
        if (baseDType.equals("BF16")) {
            for (Map.Entry<String, dev.lora4j.nn.Linear> e : model.linears().entrySet()) {
                Tensor w = e.getValue().weight();
                e.getValue().setWeight(new Tensor(BufferStorage.of(w.toFloatArray(), DType.BF16), w.shape()));
            }
        }
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(rank).alpha(2 * rank).targets(Target.ALL));
        List<Tensor> params = Trainer.trainableParameters(lora.model());
        opt = optimizer.equals("ADAMW") ? new AdamW(params, 1e-4, 0.01) : new Sgd(params, 1e-2, 0.9, 0);
        SplittableRandom rng = new SplittableRandom(3);
        List<Example> examples = new ArrayList<>();
        for (int b = 0; b < 4; b++) {
            int[] ids = new int[64];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = rng.nextInt(1024);
            }
            examples.add(Example.unmasked(ids));
        }
        batch = CausalLmLoss.collate(examples, 0);
    }

    @Benchmark
    public float trainingStep() {
        Tensor loss = CausalLmLoss.loss(model, batch);
        float value = loss.toFloatArray()[0];
        Elementwise.scale(loss, 1f).backward();
        opt.step();
        opt.zeroGrad();
        return value;
    }
}
