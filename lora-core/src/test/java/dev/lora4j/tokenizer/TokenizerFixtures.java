package dev.lora4j.tokenizer;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;

/** Locates the shared reference fixtures (system property {@code lora4j.fixtures}) and parses the tokenizer vectors. */
final class TokenizerFixtures {
    private static final ConcurrentHashMap<String, HfTokenizer> LOADED = new ConcurrentHashMap<>();
    private static final ObjectMapper JSON = new ObjectMapper();

    private TokenizerFixtures() {
    }

    /** A path under the fixtures folder; skips the calling test when it is absent. */
    static Path fixture(String relative) {
        String root = System.getProperty("lora4j.fixtures");
        assumeTrue(root != null && Files.isDirectory(Path.of(root)),
                "shared fixtures folder (system property lora4j.fixtures = " + root + ") absent; skipping");
        Path path = Path.of(root).resolve(relative);
        assumeTrue(Files.exists(path), path + " absent; skipping");
        return path;
    }

    /** Loads a fixture tokenizer once per test run (the Llama-3 file takes a while to parse). */
    static HfTokenizer tokenizer(String relative) {
        Path path = fixture(relative);
        return LOADED.computeIfAbsent(path.toString(), p -> {
            try {
                return HfTokenizer.load(Path.of(p));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    static JsonNode vectors() throws IOException {
        return JSON.readTree(fixture("tokenizer-vectors/vectors.json").toFile());
    }

    record Case(String text, int[] ids) {
    }

    /** The llama.cpp vocab test pairs: texts separated by {@code \n__ggml_vocab_test__\n}, one id line per text. */
    static List<Case> llamaCppCases(String name) throws IOException {
        Path dir = fixture("tokenizer-vectors/llamacpp");
        String inp = Files.readString(dir.resolve(name + ".inp"), StandardCharsets.UTF_8);
        List<String> texts = new ArrayList<>(Arrays.asList(inp.split("\n__ggml_vocab_test__\n", -1)));
        if (texts.get(texts.size() - 1).isEmpty()) {
            texts.remove(texts.size() - 1);
        }
        List<String> lines = Files.readAllLines(dir.resolve(name + ".out"), StandardCharsets.UTF_8);
        if (lines.size() != texts.size()) {
            throw new IllegalStateException(name + ": " + texts.size() + " texts but " + lines.size() + " id lines");
        }
        List<Case> cases = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            String line = lines.get(i).trim();
            int[] ids = line.isEmpty() ? new int[0] : Arrays.stream(line.split("\\s+")).mapToInt(Integer::parseInt).toArray();
            cases.add(new Case(texts.get(i), ids));
        }
        return cases;
    }

    static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    static String[] strings(JsonNode array) {
        String[] out = new String[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asText();
        }
        return out;
    }

    static String[] tokens(Tokenizer tokenizer, int[] ids) {
        return Arrays.stream(ids).mapToObj(tokenizer::token).toArray(String[]::new);
    }
}
