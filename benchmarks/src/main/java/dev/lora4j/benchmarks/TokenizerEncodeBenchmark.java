package dev.lora4j.benchmarks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.tokenizer.HfTokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Single-threaded encoding speed of {@link HfTokenizer} on real English: the {@code output} fields
 * of the fixture {@code alpaca/alpaca_en_demo.json} (999 records, about 0.7 MB of UTF-8).
 *
 * <p>{@code unit=records} encodes the records one by one, as a data set is tokenized;
 * {@code unit=concatenated} encodes them joined by blank lines as one string. The throughput line
 * {@code encode:megabytesPerSecond} is megabytes (10<sup>6</sup> bytes) of UTF-8 input per second
 * (JMH prints it with the unit "ops/s"); the plain {@code encode} line counts passes over the
 * whole text per second.
 *
 * <p>{@code java --add-modules jdk.incubator.vector -jar benchmarks/target/benchmarks.jar TokenizerEncode}
 * from the repository root; the fixtures are read from {@code ../shared/fixtures}, or from the
 * folder given with {@code -p fixtures=/path/to/fixtures}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Threads(1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx2g"})
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
public class TokenizerEncodeBenchmark {

    /** A folder under {@code fixtures/tokenizers}. */
    @Param({"llama2", "llama3", "gpt2"})
    public String tokenizer;

    @Param({"records", "concatenated"})
    public String unit;

    /** The shared fixtures folder; relative paths resolve against the working directory. */
    @Param({"../shared/fixtures"})
    public String fixtures;

    private HfTokenizer impl;
    private List<String> texts;
    private long utf8Bytes;

    /** Bytes of input encoded, reported by JMH as a rate next to the operation count. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Throughput {
        public double megabytesPerSecond;

        @Setup(Level.Iteration)
        public void reset() {
            megabytesPerSecond = 0;
        }
    }

    @Setup
    public void setUp() throws IOException {
        Path root = Path.of(fixtures).toAbsolutePath().normalize();
        Path tokenizerFolder = root.resolve("tokenizers").resolve(tokenizer);
        Path alpaca = root.resolve("alpaca/alpaca_en_demo.json");
        for (Path required : List.of(tokenizerFolder.resolve("tokenizer.json"), alpaca)) {
            if (!Files.isRegularFile(required)) {
                throw new IllegalStateException("fixture " + required + " is missing: run from the repository root with "
                        + "the shared fixtures at ../shared/fixtures, or pass -p fixtures=/path/to/fixtures");
            }
        }
        impl = HfTokenizer.load(tokenizerFolder);
        List<String> outputs = new ArrayList<>();
        for (JsonNode record : new ObjectMapper().readTree(alpaca.toFile())) {
            outputs.add(record.path("output").asText());
        }
        texts = unit.equals("records") ? outputs
                : unit.equals("concatenated") ? List.of(String.join("\n\n", outputs))
                : failUnit(unit);
        utf8Bytes = texts.stream().mapToLong(t -> t.getBytes(StandardCharsets.UTF_8).length).sum();
        long tokens = texts.stream().mapToLong(t -> impl.encode(t, false).length).sum();
        System.out.printf("%n%s: %d texts, %d bytes of UTF-8, %d tokens (%.2f bytes/token)%n",
                tokenizer, texts.size(), utf8Bytes, tokens, (double) utf8Bytes / tokens);
    }

    private static List<String> failUnit(String unit) {
        throw new IllegalArgumentException("unit must be records or concatenated, not " + unit);
    }

    /** Encodes the whole text once; returns the token count so that nothing is optimized away. */
    @Benchmark
    public long encode(Throughput counter) {
        long count = 0;
        for (String text : texts) {
            count += impl.encode(text, false).length;
        }
        counter.megabytesPerSecond += utf8Bytes / 1e6;
        return count;
    }
}
