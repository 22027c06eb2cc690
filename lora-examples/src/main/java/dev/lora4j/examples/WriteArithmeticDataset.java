package dev.lora4j.examples;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ArithmeticTasks.Problem;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes the quickstart's arithmetic questions as Alpaca-format instruction data for the command
 * line: {@code arith-train.json} and {@code arith-test.json}, JSON arrays of
 * {@code {"instruction": "What is 59 minus 38?", "input": "", "output": "21"}}. Both come from one
 * seeded draw of distinct two-digit problems ({@link ArithmeticTasks#generate}), so the test
 * questions never occur in the training file.
 *
 * <p>Arguments: output folder (required), training count (default 7200), test count (default 200),
 * seed (default 7, the quickstart's).
 *
 * <pre>
 * mvn -q -B -pl lora-examples exec:exec -Dlora4j.main=dev.lora4j.examples.WriteArithmeticDataset -Dlora4j.args="../runs"
 * ./lora4j finetune lora-examples/models/arith-tiny --data runs/arith-train.json --prompt-template "{instruction}\nAnswer:" ...
 * </pre>
 */
public final class WriteArithmeticDataset {
    public static final String TRAIN_FILE = "arith-train.json";
    public static final String TEST_FILE = "arith-test.json";

    private WriteArithmeticDataset() {
    }

    public static void main(String[] args) throws IOException {
        List<String> a = Quickstart.nonBlank(args);
        if (a.isEmpty() || a.size() > 4) {
            System.err.println("usage: WriteArithmeticDataset OUT_DIR [TRAIN_COUNT=7200] [TEST_COUNT=200] [SEED=7]");
            System.exit(2);
        }
        Path out = Path.of(a.get(0));
        int trainCount = a.size() > 1 ? Integer.parseInt(a.get(1)) : 7200;
        int testCount = a.size() > 2 ? Integer.parseInt(a.get(2)) : 200;
        long seed = a.size() > 3 ? Long.parseLong(a.get(3)) : 7;
        write(out, trainCount, testCount, seed);
        System.out.printf("wrote %d training and %d test questions (disjoint, seed %d) to %s and %s%n", trainCount, testCount,
                seed, out.resolve(TRAIN_FILE), out.resolve(TEST_FILE));
    }

    /** Writes both files into {@code out} (created if needed); the test questions are disjoint from the training ones. */
    public static void write(Path out, int trainCount, int testCount, long seed) throws IOException {
        if (trainCount < 1 || testCount < 1) {
            throw new IllegalArgumentException("the training and test counts must be at least 1, were " + trainCount + " and "
                    + testCount);
        }
        List<Problem> all = ArithmeticTasks.generate(trainCount + testCount, ArithmeticText.DIGITS, false, seed);
        Files.createDirectories(out);
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        json.writeValue(out.resolve(TRAIN_FILE).toFile(), records(all.subList(0, trainCount)));
        json.writeValue(out.resolve(TEST_FILE).toFile(), records(all.subList(trainCount, all.size())));
    }

    /** Alpaca records: the question as instruction, no input, the answer as output. */
    static List<Map<String, String>> records(List<Problem> problems) {
        List<Map<String, String>> out = new ArrayList<>(problems.size());
        for (Problem p : problems) {
            Map<String, String> r = new LinkedHashMap<>();
            r.put("instruction", p.question());
            r.put("input", "");
            r.put("output", p.answerText());
            out.add(r);
        }
        return out;
    }
}
