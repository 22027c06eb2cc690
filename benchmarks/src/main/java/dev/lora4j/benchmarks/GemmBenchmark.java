package dev.lora4j.benchmarks;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
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
 * {@code C = A · op(B)} on the CPU backends, as in a frozen linear layer: {@code shape} is
 * "M x N x K" (tokens x out x in), {@code form} the transposes of A and B ("NT" is y = x·Wᵀ with W
 * stored [out, in], "NN" is the input gradient dY·W), and {@code bType} the storage of B (BF16 is
 * widened panel by panel inside gemm). Throughput is 2·M·N·K flops per operation; divide by the
 * reported time for GFLOP/s.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -jar benchmarks/target/benchmarks.jar Gemm}
 * (add {@code -p shape=64x4096x4096 -p form=NN} etc. to narrow or widen the grid).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class GemmBenchmark {

    @Param({"207x207x207", "1024x1024x1024", "64x4096x4096"})
    public String shape;

    @Param({"NT"})
    public String form;

    @Param({"scalar", "vector"})
    public String backend;

    @Param({"F32", "BF16"})
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

    @Setup
    public void setUp() {
        String[] dims = shape.split("x");
        m = Integer.parseInt(dims[0]);
        n = Integer.parseInt(dims[1]);
        k = Integer.parseInt(dims[2]);
        transA = form.charAt(0) == 'T';
        transB = form.charAt(1) == 'T';
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
