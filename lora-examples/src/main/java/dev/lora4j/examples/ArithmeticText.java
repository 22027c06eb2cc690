package dev.lora4j.examples;

import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.data.Example;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.data.PromptStyle;
import dev.lora4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The two text forms of arithmetic in the quickstart. The base model is pretrained on plain
 * facts ("59-38=21", "59 minus 38 is 21"); the LoRA task is the instruction form of Raschka's
 * experiments ("What is 59 minus 38?\nAnswer: 21"), which the base model has never seen.
 */
final class ArithmeticText {
    /** Operands of the quickstart: two-digit numbers, 10..99. */
    static final int DIGITS = 2;

    private ArithmeticText() {
    }

    /**
     * The question form of the LoRA task: "What is 59 minus 38?\nAnswer:", the answer following
     * as the response (the same template the command-line example passes as --prompt-template).
     */
    static final PromptStyle PROMPT_STYLE = PromptStyle.custom("{instruction}\n{input}\nAnswer:", "{instruction}\nAnswer:");

    /** The problem as an instruction record: the question, no input, the answer as output. */
    static InstructionRecord record(Problem p) {
        return InstructionRecord.of(p.question(), p.answerText());
    }

    static List<InstructionRecord> records(List<Problem> problems) {
        return problems.stream().map(ArithmeticText::record).toList();
    }

    /**
     * EOS and the newline token (a piece of its own, or the byte-fallback token <0x0A>): answers
     * end there, also for the base model, which goes on with the next fact after a newline.
     */
    static Set<Integer> stopTokens(Tokenizer tok) {
        Set<Integer> stops = new HashSet<>();
        stops.add(tok.eosId().orElseThrow());
        int[] newline = tok.encode("\n", false);
        stops.add(newline[newline.length - 1]);
        return Set.copyOf(stops);
    }

    /**
     * Phrasings of a fact used in pretraining ({@code %1$d} left, {@code %2$s} operator word,
     * {@code %3$d} right, {@code %4$d} answer, {@code %5$s} operator symbol). Their varied lengths
     * keep the model from tying the answer to fixed token offsets; none is a question.
     */
    private static final List<String> PHRASINGS = List.of(
            "%1$d%5$s%3$d=%4$d",
            "%1$d %5$s %3$d = %4$d",
            "%1$d %2$s %3$d is %4$d",
            "%1$d %2$s %3$d equals %4$d",
            "%1$d %2$s %3$d makes %4$d",
            "we know that %1$d %2$s %3$d is %4$d",
            "%1$d %2$s %3$d gives %4$d, of course",
            "so %1$d %2$s %3$d is equal to %4$d");

    /** One pretraining fact about p in the given phrasing (0 is the bare equation "59-38=21"). */
    static String fact(Problem p, int phrasing) {
        return String.format(java.util.Locale.ROOT, PHRASINGS.get(phrasing), p.left(), p.operator(), p.right(),
                p.answer(), "plus".equals(p.operator()) ? "+" : "-");
    }

    static int phrasings() {
        return PHRASINGS.size();
    }

    /** Random problems with two-digit operands (subtraction never negative), not deduplicated. */
    static Problem randomProblem(SplittableRandom rng) {
        int a = rng.nextInt(10, 100);
        int b = rng.nextInt(10, 100);
        if (rng.nextBoolean()) {
            return new Problem(a, "plus", b, a + b);
        }
        return new Problem(Math.max(a, b), "minus", Math.min(a, b), Math.abs(a - b));
    }

    /** BOS + facts separated by newlines, as long as fits in {@code maxTokens}; all tokens are labels. */
    static Example pretrainingSequence(Tokenizer tok, SplittableRandom rng, int maxTokens) {
        List<Integer> ids = new ArrayList<>();
        ids.add(tok.bosId().orElseThrow());
        while (true) {
            Problem p = randomProblem(rng);
            int[] line = tok.encode(fact(p, rng.nextInt(PHRASINGS.size())) + "\n", false);
            if (ids.size() + line.length > maxTokens) {
                break;
            }
            for (int id : line) {
                ids.add(id);
            }
        }
        return Example.unmasked(ids.stream().mapToInt(Integer::intValue).toArray());
    }
}
