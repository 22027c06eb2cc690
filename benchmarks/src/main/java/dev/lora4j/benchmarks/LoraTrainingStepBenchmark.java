package dev.lora4j.benchmarks;

import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
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
 * One LoRA training step (forward, backward, optimizer update) of a randomly initialized Llama of
 * a {@link TrainShape} ({@code micro}: hidden 256, 4 layers, GQA 8/4 heads, intermediate 688,
 * vocabulary 1024, 4 × 64 tokens; {@code tiny} and {@code smollm2-135m}: the shapes of
 * {@link TrainStepBenchmark} and the PyTorch anchor), with the frozen base in F32 or BF16, at
 * several ranks, with AdamW or SGD. LoRA alpha is twice the rank, dropout 0.05, on q, k, v, o,
 * gate, up, down and the untied lm_head; AdamW and SGD use the anchor's learning rate 3e-4
 * (weight decay 0.01) and 1e-2 (momentum 0.9). Tokens per second = B·T / (seconds per step).
 *
 * <pre>java --add-modules jdk.incubator.vector -jar benchmarks/target/benchmarks.jar LoraTrainingStep</pre>
 *
 * The anchor's step as a JMH benchmark:
 * {@code ... LoraTrainingStep -p shape=tiny -p rank=8 -p baseDType=F32 -p optimizer=ADAMW}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class LoraTrainingStepBenchmark {
    @Param({"micro"})
    public String shape;

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
        TrainShape train = TrainShape.of(shape);
        LlamaConfig config = train.config();
        model = LlamaModel.initialize(config, 1);
        if (baseDType.equals("BF16")) {
            for (Map.Entry<String, dev.lora4j.nn.Linear> e : model.linears().entrySet()) {
                Tensor w = e.getValue().weight();
                e.getValue().setWeight(new Tensor(BufferStorage.of(w.toFloatArray(), DType.BF16), w.shape()));
            }
        }
        LoraModel lora = LoraModel.wrap(model, LoraConfig.rank(rank).alpha(2 * rank).dropout(TrainStep.DROPOUT)
                .targets(train.targets()));
        List<Tensor> params = Trainer.trainableParameters(lora.model());
        opt = optimizer.equals("ADAMW") ? new AdamW(params, TrainStep.LEARNING_RATE, TrainStep.WEIGHT_DECAY)
                : new Sgd(params, 1e-2, 0.9, 0);
        SplittableRandom rng = new SplittableRandom(3);
        List<Example> examples = new ArrayList<>();
        for (int b = 0; b < train.batch(); b++) {
            examples.add(Example.unmasked(rng.ints(train.seq(), 0, config.vocabSize()).toArray()));
        }
        batch = CausalLmLoss.collate(examples, 0);
    }

    @Benchmark
    public float trainingStep() {
        Tensor loss = CausalLmLoss.loss(model, batch);
        float value = loss.toFloatArray()[0];
        loss.backward();
        opt.step();
        opt.zeroGrad();
        return value;
    }
}
