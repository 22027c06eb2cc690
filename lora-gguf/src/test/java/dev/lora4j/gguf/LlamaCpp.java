package dev.lora4j.gguf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * The llama.cpp oracle of ../shared/gguf ({@code llama-cpp-check}, node-llama-cpp's prebuilt
 * llama.cpp): runs a GGUF file and returns its JSON report. Tests using it skip with a message
 * when node or the oracle is absent; when the oracle is there but not installed, {@code setup
 * --offline} is tried once (the CI runs {@code setup} beforehand when node is present).
 */
final class LlamaCpp {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static Boolean available;
    private static String reason;

    private LlamaCpp() {
    }

    static Path sharedGguf() {
        String fixtures = System.getProperty("lora4j.fixtures", "../../shared/fixtures");
        return Path.of(fixtures).resolveSibling("gguf").normalize();
    }

    /** Skips the calling test unless the oracle runs here. */
    static synchronized void require() {
        if (available == null) {
            available = probe();
        }
        Assumptions.assumeTrue(available, "llama.cpp oracle unavailable (" + reason + "); skipping");
    }

    private static boolean probe() {
        Path check = sharedGguf().resolve("llama-cpp-check");
        if (!Files.isRegularFile(check)) {
            reason = check + " is absent";
            return false;
        }
        try {
            if (run(List.of("node", "--version"), 30).exit != 0) {
                reason = "node is not on PATH";
                return false;
            }
        } catch (IOException e) {
            reason = "node is not on PATH";
            return false;
        }
        try {
            Result r = run(List.of(sharedGguf().resolve("setup").toString(), "--offline"), 180);
            if (r.exit != 0) {
                reason = "../shared/gguf/setup --offline failed (run ../shared/gguf/setup once with network): " + r.err.trim();
                return false;
            }
        } catch (IOException e) {
            reason = "running setup: " + e.getMessage();
            return false;
        }
        return true;
    }

    record Result(int exit, String out, String err) {
    }

    private static Result run(List<String> command, int timeoutSeconds) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(command);
        Path out = Files.createTempFile("llama-cpp", ".out");
        Path err = Files.createTempFile("llama-cpp", ".err");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile());
        Process p = pb.start();
        try {
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(command + " did not finish within " + timeoutSeconds + " s");
            }
            return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                    Files.readString(err, StandardCharsets.UTF_8));
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    /** Runs {@code llama-cpp-check MODEL ARGS... --json}; fails with llama.cpp's message on a non-zero exit. */
    static JsonNode check(Path model, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(sharedGguf().resolve("llama-cpp-check").toString(), model.toString()));
        cmd.addAll(List.of(args));
        cmd.add("--json");
        Result r = run(cmd, 300);
        if (r.exit != 0) {
            throw new AssertionError("llama.cpp refused " + model + " (exit " + r.exit + "): " + r.err.trim() + " "
                    + r.out.trim());
        }
        return JSON.readTree(r.out);
    }

    /** Like {@link #check} but returns the exit code and output instead of failing. */
    static Result tryCheck(Path model, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(sharedGguf().resolve("llama-cpp-check").toString(), model.toString()));
        cmd.addAll(List.of(args));
        return run(cmd, 300);
    }

    private static Path quantizeTool;

    /** The npm package's prebuilt libraries (libllama, libggml-*). */
    static Path libraries() throws IOException {
        String home = System.getenv().getOrDefault("LLAMA_CPP_HOME", System.getProperty("user.home") + "/.cache/lora4j-llama-cpp");
        Path bins = Path.of(home, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64");
        if (!Files.isDirectory(bins)) {
            return null;
        }
        return bins;
    }

    /**
     * Compiles (once) a small C program that calls llama.cpp's {@code llama_model_quantize} from the
     * npm package's libllama.so; skips the calling test when gcc or the library is missing.
     */
    static synchronized Path quantizeTool() throws IOException {
        require();
        if (quantizeTool != null) {
            return quantizeTool;
        }
        Path bins = libraries();
        Assumptions.assumeTrue(bins != null, "node-llama-cpp's linux-x64 libraries are absent; skipping");
        Path lib;
        try (var files = Files.list(bins)) {
            lib = files.filter(f -> f.getFileName().toString().matches("libllama(\\.v[0-9.]+)?\\.so")).findFirst().orElse(null);
        }
        Assumptions.assumeTrue(lib != null, "no libllama*.so in " + bins + "; skipping");
        Path dir = Files.createTempDirectory("lora4j-llama-quantize");
        Path source = dir.resolve("llama_quantize.c");
        try (var in = LlamaCpp.class.getResourceAsStream("llama_quantize.c")) {
            Files.copy(in, source);
        }
        Path exe = dir.resolve("llama_quantize");
        Result r;
        try {
            r = run(List.of("gcc", "-O1", "-o", exe.toString(), source.toString(), lib.toString(),
                    "-Wl,-rpath," + bins), 120);
        } catch (IOException e) {
            Assumptions.abort("gcc is not available (" + e.getMessage() + "); skipping");
            throw e;
        }
        Assumptions.assumeTrue(r.exit == 0, "gcc could not build the quantize tool: " + r.err);
        quantizeTool = exe;
        return exe;
    }

    /** llama.cpp's llama_model_quantize of {@code in} into {@code out} with every tensor of one type. */
    static void quantize(Path in, Path out, int llamaFtype) throws IOException {
        quantize(in, out, llamaFtype, true);
    }

    /**
     * llama.cpp's llama_model_quantize of {@code in} into {@code out}: {@code pure} puts every
     * matrix in the ftype's type, otherwise llama.cpp chooses per tensor as llama-quantize does.
     */
    static void quantize(Path in, Path out, int llamaFtype, boolean pure) throws IOException {
        Result r = run(List.of(quantizeTool().toString(), in.toString(), out.toString(), String.valueOf(llamaFtype),
                pure ? "1" : "0"), 300);
        if (r.exit != 0) {
            throw new AssertionError("llama_model_quantize failed: " + r.err + r.out);
        }
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    static double[] doubles(JsonNode array) {
        double[] out = new double[array.size()];
        for (int i = 0; i < out.length; i++) {
            // the oracle prints null where the probability underflowed to 0 in float
            out[i] = array.get(i).isNull() ? Double.NEGATIVE_INFINITY : array.get(i).asDouble();
        }
        return out;
    }
}
