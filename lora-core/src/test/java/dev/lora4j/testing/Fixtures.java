package dev.lora4j.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/** Locates ../shared/fixtures and compares float arrays the way llm.c's tests do. */
public final class Fixtures {
    private Fixtures() {
    }

    /** The fixture folder {@code relative}, or a skipped test when the shared fixtures are absent. */
    public static Path require(String relative) {
        String root = System.getProperty("lora4j.fixtures", "../../shared/fixtures");
        Path dir = Path.of(root).resolve(relative).normalize();
        Assumptions.assumeTrue(Files.exists(dir), "shared fixture " + dir + " is absent; skipping (it ships in ../shared/fixtures)");
        return dir;
    }

    /**
     * Fails with the first mismatches and the largest difference when
     * |actual − expected| > atol + rtol·|expected| anywhere.
     */
    public static void assertClose(String what, float[] expected, float[] actual, double rtol, double atol) {
        if (expected.length != actual.length) {
            fail(what + ": " + actual.length + " values, expected " + expected.length);
        }
        StringBuilder first = new StringBuilder();
        int bad = 0;
        double maxDiff = 0;
        for (int i = 0; i < expected.length; i++) {
            double diff = Math.abs((double) actual[i] - expected[i]);
            maxDiff = Math.max(maxDiff, diff);
            if (!(diff <= atol + rtol * Math.abs(expected[i]))) {
                if (bad++ < 5) {
                    first.append(String.format(" [%d] expected %.7g got %.7g;", i, expected[i], actual[i]));
                }
            }
        }
        if (bad > 0) {
            fail(what + ": " + bad + " of " + expected.length + " values differ (max |diff| " + maxDiff + "):" + first);
        }
    }
}
