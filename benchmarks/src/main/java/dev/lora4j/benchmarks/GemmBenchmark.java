package dev.lora4j.benchmarks;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.backend.Parallel;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.FloatStorage;
import dev.lora4j.tensor.Storage;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@code C = A · op(B)} on the CPU backends at the shapes a training step multiplies.
 * {@code problem} is "FORM:MxNxK": FORM the transposes of A and B ("NT" is y = x·Wᵀ with W stored
 * [out, in], "NN" the input gradient dY·W, "TN" a weight gradient dYᵀ·X), M x N x K the product's
 * sizes. The defaults are a SmolLM2-135M layer at 256 tokens (d 576, ffn 1536: the up/gate and
 * down projections forward and backward, and a weight gradient), a Llama-7B-sized 4096 x 4096
 * weight and a quarter of a 4096 x 11008 one, and odd sizes. {@code threads} is
 * {@code lora4j.threads}; {@code bType} the storage of B (BF16 is widened panel by panel).
 *
 * <p>The score is calls per second; {@link GemmReport} runs this benchmark and prints GFLOP/s
 * (2·M·N·K flops per call). {@code benchmarks/openblas/run.sh} times OpenBLAS's cblas_sgemm on the
 * same problems for comparison.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class GemmBenchmark {

    @Param({"NT:256x1536x576", "NT:256x576x1536", "NN:256x576x1536", "NN:256x1536x576", "TN:1536x576x256",
            "NT:256x4096x4096", "NT:256x2752x4096", "NN:256x4096x2752", "NT:207x207x702", "NN:7x702x207"})
    public String problem;

    @Param({"scalar", "vector"})
    public String backend;

    @Param({"1", "2"})
    public int threads;

    @Param({"F32"})
    public String bType;

    private Backend impl;
    private boolean transA;
    private boolean transB;
    private int m;
    private int n;
    private int k;
    private FloatStorage a;
    private Storage b;
    private FloatStorage c;

    /** The sizes of a problem string "FORM:MxNxK": {transA, transB, m, n, k} with booleans as 0/1. */
    static int[] parse(String problem) {
        String[] formAndShape = problem.split(":");
        String[] dims = formAndShape.length == 2 ? formAndShape[1].split("x") : new String[0];
        if (dims.length != 3 || !formAndShape[0].matches("[NT][NT]")) {
            throw new IllegalArgumentException("problem must be FORM:MxNxK with FORM one of NN, NT, TN, TT, e.g."
                    + " NT:256x1536x576, was '" + problem + "'");
        }
        return new int[] {formAndShape[0].charAt(0) == 'T' ? 1 : 0, formAndShape[0].charAt(1) == 'T' ? 1 : 0,
            Integer.parseInt(dims[0]), Integer.parseInt(dims[1]), Integer.parseInt(dims[2])};
    }

    @Setup
    public void setUp() {
        System.setProperty(Parallel.PROPERTY, Integer.toString(threads));
        if (Parallel.parallelism() != threads) {
            throw new IllegalStateException("the compute pool already has " + Parallel.parallelism()
                    + " threads; threads=" + threads + " needs a fresh fork");
        }
        int[] p = parse(problem);
        transA = p[0] == 1;
        transB = p[1] == 1;
        m = p[2];
        n = p[3];
        k = p[4];
        impl = switch (backend) {
            case "scalar" -> Backends.scalar();
            case "vector" -> Backends.vector().orElseThrow(() -> new IllegalStateException(
                    "backend=vector needs the JVM option --add-modules jdk.incubator.vector"));
            default -> throw new IllegalArgumentException("backend must be scalar or vector, not " + backend);
        };
        SplittableRandom rng = new SplittableRandom(42);
        a = new FloatStorage(random(rng, m * k));
        float[] weights = random(rng, k * n);
        b = bType.equals("F32") ? new FloatStorage(weights) : BufferStorage.of(weights, DType.valueOf(bType));
        c = new FloatStorage(m * n);
    }

    private static float[] random(SplittableRandom rng, int size) {
        float[] x = new float[size];
        for (int i = 0; i < size; i++) {
            x[i] = (float) (rng.nextDouble() - 0.5);
        }
        return x;
    }

    @Benchmark
    public float[] gemm() {
        impl.gemm(transA, transB, m, n, k, 1f, a, 0, transA ? m : k, b, 0, transB ? k : n, 0f, c, 0, n);
        return c.array();
    }
}
