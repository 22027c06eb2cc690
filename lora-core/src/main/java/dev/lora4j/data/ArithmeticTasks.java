package dev.lora4j.data;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The generated arithmetic questions of Raschka's LoRA experiments with LitGPT: "What is 59 minus
 * 38?" → "21", with n-digit operands, addition and subtraction. Seeded, and split so that a
 * held-out set never shares a question with the training set.
 */
public final class ArithmeticTasks {
    private ArithmeticTasks() {
    }

    /** One question and its exact answer. */
    public record Problem(int left, String operator, int right, int answer) {
        /** "What is 59 minus 38?" */
        public String question() {
            return "What is " + left + " " + operator + " " + right + "?";
        }

        /** "59-38=" style equation prefix (used to pretrain the quickstart base model). */
        public String equation() {
            return left + ("plus".equals(operator) ? "+" : "-") + right + "=";
        }

        public String answerText() {
            return Integer.toString(answer);
        }
    }

    /**
     * {@code count} distinct problems with operands of exactly {@code digits} digits, half
     * additions and half subtractions (subtractions keep left >= right unless
     * {@code allowNegative}).
     */
    public static List<Problem> generate(int count, int digits, boolean allowNegative, long seed) {
        if (digits < 1 || digits > 9) {
            throw new IllegalArgumentException("digits must be in [1, 9], was " + digits);
        }
        int low = digits == 1 ? 0 : (int) Math.pow(10, digits - 1);
        int high = (int) Math.pow(10, digits);
        long space = 2L * (high - low) * (high - low);
        if (count < 1 || count > space / 2) {
            throw new IllegalArgumentException("count must be in [1, " + space / 2 + "] for " + digits + "-digit operands, was "
                    + count);
        }
        SplittableRandom rng = new SplittableRandom(seed);
        Set<Problem> seen = new LinkedHashSet<>();
        while (seen.size() < count) {
            int a = rng.nextInt(low, high);
            int b = rng.nextInt(low, high);
            if (rng.nextBoolean()) {
                seen.add(new Problem(a, "plus", b, a + b));
            } else {
                if (!allowNegative && a < b) {
                    int t = a;
                    a = b;
                    b = t;
                }
                seen.add(new Problem(a, "minus", b, a - b));
            }
        }
        return new ArrayList<>(seen);
    }

    /**
     * {@code count} problems drawn independently (repeats possible) with one {@code operator}
     * ("plus" or "minus") and both operands uniform in [{@code low}, {@code high}); a subtraction
     * may be negative. This is how the GPT-3 arithmetic sets (lm-eval's arithmetic_2da ...
     * arithmetic_5ds) were made: e.g. two-digit addition adds two integers uniform in [0, 100).
     */
    public static List<Problem> sample(int count, String operator, int low, int high, long seed) {
        if (!"plus".equals(operator) && !"minus".equals(operator)) {
            throw new IllegalArgumentException("operator must be \"plus\" or \"minus\", was \"" + operator + "\"");
        }
        if (low < 0 || high <= low || high > 1_000_000_000) {
            throw new IllegalArgumentException("operand range [" + low + ", " + high + ") must be non-empty, non-negative "
                    + "and end at most at 1000000000 (so that a sum fits an int)");
        }
        if (count < 1) {
            throw new IllegalArgumentException("count must be >= 1, was " + count);
        }
        SplittableRandom rng = new SplittableRandom(seed);
        List<Problem> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int a = rng.nextInt(low, high);
            int b = rng.nextInt(low, high);
            out.add("plus".equals(operator) ? new Problem(a, operator, b, a + b) : new Problem(a, operator, b, a - b));
        }
        return out;
    }

    /** Exact-match accuracy of {@code predictions} (trimmed) against the answers. */
    public static double accuracy(List<Problem> problems, List<String> predictions) {
        if (problems.size() != predictions.size()) {
            throw new IllegalArgumentException(predictions.size() + " predictions for " + problems.size() + " problems");
        }
        int right = 0;
        for (int i = 0; i < problems.size(); i++) {
            right += problems.get(i).answerText().equals(predictions.get(i).trim()) ? 1 : 0;
        }
        return problems.isEmpty() ? 0 : (double) right / problems.size();
    }
}
