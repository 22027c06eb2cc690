package dev.lora4j.gguf;

import static org.junit.jupiter.api.Assertions.fail;

import dev.lora4j.autograd.Autograd;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/** Fixture lookup and comparisons for the GGUF tests. */
final class GgufTesting {
    private GgufTesting() {
    }

    /** The shared fixture folder {@code relative}, or a skipped test when the fixtures are absent. */
    static Path fixture(String relative) {
        String root = System.getProperty("lora4j.fixtures", "../../shared/fixtures");
        Path dir = Path.of(root).resolve(relative).normalize();
        Assumptions.assumeTrue(Files.exists(dir), "shared fixture " + dir + " is absent; skipping");
        return dir;
    }

    /**
     * Writes a byte-level BPE tokenizer for a model without one (golden-tiny-llama): {@code <unk>},
     * {@code <s>}, {@code </s>} and single printable ASCII characters up to {@code vocab} ids, no merges.
     */
    static Path characterTokenizer(Path folder, int vocab) throws java.io.IOException {
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        var root = json.createObjectNode();
        var added = root.putArray("added_tokens");
        String[] specials = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < 3; i++) {
            added.addObject().put("id", i).put("content", specials[i]).put("single_word", false).put("lstrip", false)
                    .put("rstrip", false).put("normalized", false).put("special", true);
        }
        root.putNull("normalizer");
        root.putObject("pre_tokenizer").put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true)
                .put("use_regex", true);
        root.putNull("post_processor");
        root.putObject("decoder").put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true)
                .put("use_regex", true);
        var model = root.putObject("model");
        model.put("type", "BPE").putNull("unk_token").put("byte_fallback", false);
        var v = model.putObject("vocab");
        for (int i = 0; i < 3; i++) {
            v.put(specials[i], i);
        }
        for (int id = 3; id < vocab; id++) {
            v.put(String.valueOf((char) (33 + id - 3)), id);
        }
        model.putArray("merges");
        Files.createDirectories(folder);
        Files.writeString(folder.resolve("tokenizer.json"), json.writeValueAsString(root));
        Files.writeString(folder.resolve("tokenizer_config.json"), "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", "
                + "\"unk_token\": \"<unk>\", \"add_bos_token\": true}");
        return folder;
    }

    static String csv(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            sb.append(sb.length() == 0 ? "" : ",").append(id);
        }
        return sb.toString();
    }

    /** log_softmax of the logits at the last position of {@code ids}, in double. */
    static double[] logSoftmaxLast(LlamaModel model, int[] ids) {
        Tensor logits;
        try (var ignored = Autograd.noGrad()) {
            logits = model.forward(ids, 1);
        }
        int v = logits.dim(-1);
        float[] all = logits.toFloatArray();
        double[] out = new double[v];
        int base = (ids.length - 1) * v;
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) {
            max = Math.max(max, all[base + i]);
        }
        double sum = 0;
        for (int i = 0; i < v; i++) {
            sum += Math.exp(all[base + i] - max);
        }
        double lse = max + Math.log(sum);
        for (int i = 0; i < v; i++) {
            out[i] = all[base + i] - lse;
        }
        return out;
    }

    /** Fails with the first mismatches and the largest difference when |a − e| > tol anywhere; returns the max difference. */
    static double assertClose(String what, double[] expected, double[] actual, double tol) {
        if (expected.length != actual.length) {
            fail(what + ": " + actual.length + " values, expected " + expected.length);
        }
        double max = 0;
        int bad = 0;
        StringBuilder first = new StringBuilder();
        for (int i = 0; i < expected.length; i++) {
            if (actual[i] == Double.NEGATIVE_INFINITY && expected[i] < -80) {
                continue; // below float's exp range: llama.cpp reports probability 0
            }
            double d = Math.abs(expected[i] - actual[i]);
            max = Math.max(max, d);
            if (!(d <= tol) && bad++ < 5) {
                first.append(String.format(" [%d] expected %.7g got %.7g;", i, expected[i], actual[i]));
            }
        }
        if (bad > 0) {
            fail(what + ": " + bad + " of " + expected.length + " values differ by more than " + tol + " (max " + max + "):"
                    + first);
        }
        return max;
    }
}
