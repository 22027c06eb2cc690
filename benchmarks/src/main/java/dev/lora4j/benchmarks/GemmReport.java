package dev.lora4j.benchmarks;

import java.util.Collection;
import java.util.Locale;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.util.Statistics;

/**
 * Runs {@link GemmBenchmark} and prints GFLOP/s per problem, backend, threads and B type: the
 * median of the measurement iterations, with their minimum and maximum. Arguments are JMH's
 * (for example {@code -p problem=NT:256x1536x576 -p threads=1}).
 *
 * <p>{@code java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar
 * dev.lora4j.benchmarks.GemmReport [JMH options]}
 */
public final class GemmReport {
    private GemmReport() {
    }

    public static void main(String[] args) throws RunnerException, CommandLineOptionException {
        CommandLineOptions cli = new CommandLineOptions(args);
        Collection<RunResult> results = new Runner(new OptionsBuilder().parent(cli)
                .include(GemmBenchmark.class.getName() + ".gemm").build()).run();
        System.out.println();
        System.out.printf(Locale.ROOT, "%-6s %-16s %-7s %-4s %-5s %9s %9s %9s%n", "form", "shape", "backend", "thr",
                "B", "median", "min", "max");
        for (RunResult r : results) {
            BenchmarkParams p = r.getParams();
            String problem = p.getParam("problem");
            int[] s = GemmBenchmark.parse(problem);
            double gflop = 2.0 * s[2] * s[3] * s[4] * 1e-9;
            Statistics calls = r.getPrimaryResult().getStatistics();
            System.out.printf(Locale.ROOT, "%-6s %-16s %-7s %-4s %-5s %9.1f %9.1f %9.1f  GFLOP/s%n",
                    problem.substring(0, 2), problem.substring(3), p.getParam("backend"), p.getParam("threads"),
                    p.getParam("bType"), calls.getPercentile(50) * gflop, calls.getMin() * gflop,
                    calls.getMax() * gflop);
        }
    }
}
