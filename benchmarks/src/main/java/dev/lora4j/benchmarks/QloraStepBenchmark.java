package dev.lora4j.benchmarks;

import dev.lora4j.backend.Backends;
import dev.lora4j.data.Example;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.nn.Linear;
import dev.lora4j.quant.MemoryReport;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.Quantizer;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import dev.lora4j.train.AdamW;
import dev.lora4j.train.CausalLmLoss;
import dev.lora4j.train.Optimizer;
import dev.lora4j.train.Trainer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * QLoRA versus LoRA step time: one randomly initialized Llama trained with the same LoRA adapter
 * (rank 8 on every projection, AdamW) on a BF16 base and on a 4-bit base, one step of each in
 * turn so that both see the same machine load. Prints the median step time of each and the
 * median of the per-round ratios QLoRA / LoRA, which Raschka's GPU experiments put at 1.39–1.50
 * (lora4j's target on CPU: at most 1.15).
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar \
 *     dev.lora4j.benchmarks.QloraStepBenchmark [--quant nf4-dq] [--hidden 256] [--intermediate 768]
 *     [--layers 4] [--heads 8] [--kv-heads 4] [--vocab 2048] [--batch 4] [--seq 128] [--warmup 3] [--rounds 15]
 * </pre>
 *
 * The embedding and lm_head are the same in both models (lm_head BF16, as bitsandbytes keeps it
 * in the compute dtype); only the decoder projections differ: BF16 or 4-bit.
 */
public final class QloraStepBenchmark {

    private QloraStepBenchmark() {
    }

    public static void main(String[] args) {
        Options o = Options.parse(args);
        LlamaConfig config = LlamaConfig.builder().vocabSize(o.vocab).hiddenSize(o.hidden).intermediateSize(o.intermediate)
                .numHiddenLayers(o.layers).numAttentionHeads(o.heads).numKeyValueHeads(o.kvHeads)
                .maxPositionEmbeddings(Math.max(o.seq, 16)).rmsNormEps(1e-5).build();
        LlamaModel bf16 = model(config);
        LlamaModel quantized = model(config);
        Quantizer.quantize(quantized, o.quant);
        Run lora = new Run("LoRA  (BF16 base)", bf16);
        Run qlora = new Run("QLoRA (" + o.quant + " base)", quantized);
        List<Example> batch = randomBatch(o, config.vocabSize());
        CausalLmLoss.Batch collated = CausalLmLoss.collate(batch, 0);

        System.out.printf(Locale.ROOT, "model: hidden %d, intermediate %d, %d layers, %d/%d heads, vocab %d: %,d parameters"
                + "; batch %d x %d tokens; LoRA rank 8 on q,k,v,o,gate,up,down; backend %s, %d threads%n", o.hidden,
                o.intermediate, o.layers, o.heads, o.kvHeads, o.vocab, bf16.baseParameterCount(), o.batch, o.seq,
                Backends.get(), dev.lora4j.backend.Parallel.parallelism());
        System.out.println(MemoryReport.of(config));
        System.out.printf(Locale.ROOT, "in memory: LoRA base %,d bytes, QLoRA base %,d bytes%n", bf16.baseByteSize(),
                quantized.baseByteSize());
        for (int i = 0; i < o.warmup; i++) {
            lora.step(collated);
            qlora.step(collated);
        }
        double[] ratios = new double[o.rounds];
        for (int r = 0; r < o.rounds; r++) {
            boolean loraFirst = r % 2 == 0;
            Run a = loraFirst ? lora : qlora;
            Run b = loraFirst ? qlora : lora;
            double first = a.step(collated);
            double second = b.step(collated);
            a.times.add(first);
            b.times.add(second);
            ratios[r] = loraFirst ? second / first : first / second;
        }
        System.out.printf(Locale.ROOT, "%-22s median step %8.1f ms (min %.1f, max %.1f) over %d steps%n", lora.name,
                median(lora.times), min(lora.times), max(lora.times), lora.times.size());
        System.out.printf(Locale.ROOT, "%-22s median step %8.1f ms (min %.1f, max %.1f) over %d steps%n", qlora.name,
                median(qlora.times), min(qlora.times), max(qlora.times), qlora.times.size());
        double[] sorted = ratios.clone();
        Arrays.sort(sorted);
        System.out.printf(Locale.ROOT, "QLoRA / LoRA step time: %.3f (median of %d paired rounds; quartiles %.3f .. %.3f;"
                + " ratio of medians %.3f)%n", median(ratios), ratios.length, sorted[ratios.length / 4],
                sorted[(3 * ratios.length) / 4], median(qlora.times) / median(lora.times));
    }

    /** Same seed for both variants, so they start from the same weights. */
    private static LlamaModel model(LlamaConfig config) {
        LlamaModel m = LlamaModel.initialize(config, 1234);
        for (Linear lin : m.linears().values()) {
            Tensor w = lin.weight();
            lin.setWeight(new Tensor(BufferStorage.of(w.data(), DType.BF16), w.shape()).name(w.name()));
        }
        return m;
    }

    private static List<Example> randomBatch(Options o, int vocab) {
        SplittableRandom rng = new SplittableRandom(99);
        List<Example> out = new ArrayList<>();
        for (int b = 0; b < o.batch; b++) {
            int[] ids = new int[o.seq];
            for (int t = 0; t < o.seq; t++) {
                ids[t] = rng.nextInt(vocab);
            }
            out.add(Example.unmasked(ids));
        }
        return out;
    }

    /** One model with its adapter and optimizer; {@link #step} times forward, backward and update. */
    private static final class Run {
        final String name;
        final LlamaModel model;
        final Optimizer optimizer;
        final List<Double> times = new ArrayList<>();

        Run(String name, LlamaModel base) {
            this.name = name;
            LoraModel lora = LoraModel.wrap(base, LoraConfig.rank(8).alpha(16).targets(Target.QUERY, Target.KEY,
                    Target.VALUE, Target.PROJECTION, Target.MLP));
            this.model = lora.model();
            this.optimizer = new AdamW(Trainer.trainableParameters(model), 1e-4, 0.01);
        }

        double step(CausalLmLoss.Batch batch) {
            long start = System.nanoTime();
            Tensor loss = CausalLmLoss.loss(model, batch);
            loss.backward();
            optimizer.step();
            optimizer.zeroGrad();
            return (System.nanoTime() - start) / 1e6;
        }
    }

    private static double median(List<Double> values) {
        return median(values.stream().mapToDouble(Double::doubleValue).toArray());
    }

    private static double median(double[] values) {
        double[] s = values.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    private static double min(List<Double> values) {
        return values.stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN);
    }

    private static double max(List<Double> values) {
        return values.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN);
    }

    /** Command-line settings: "--name value" pairs. */
    private static final class Options {
        QuantConfig quant = QuantConfig.NF4_DQ;
        int hidden = 256;
        int intermediate = 768;
        int layers = 4;
        int heads = 8;
        int kvHeads = 4;
        int vocab = 2048;
        int batch = 4;
        int seq = 128;
        int warmup = 3;
        int rounds = 15;

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i += 2) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("option " + args[i] + " needs a value");
                }
                String v = args[i + 1];
                switch (args[i]) {
                    case "--quant" -> o.quant = QuantConfig.parse(v);
                    case "--hidden" -> o.hidden = Integer.parseInt(v);
                    case "--intermediate" -> o.intermediate = Integer.parseInt(v);
                    case "--layers" -> o.layers = Integer.parseInt(v);
                    case "--heads" -> o.heads = Integer.parseInt(v);
                    case "--kv-heads" -> o.kvHeads = Integer.parseInt(v);
                    case "--vocab" -> o.vocab = Integer.parseInt(v);
                    case "--batch" -> o.batch = Integer.parseInt(v);
                    case "--seq" -> o.seq = Integer.parseInt(v);
                    case "--warmup" -> o.warmup = Integer.parseInt(v);
                    case "--rounds" -> o.rounds = Integer.parseInt(v);
                    default -> throw new IllegalArgumentException("unknown option " + args[i] + "; options: --quant, --hidden, "
                            + "--intermediate, --layers, --heads, --kv-heads, --vocab, --batch, --seq, --warmup, --rounds");
                }
            }
            return o;
        }
    }
}
