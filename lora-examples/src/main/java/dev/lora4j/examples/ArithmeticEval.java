package dev.lora4j.examples;

import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.data.Tokenizer;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** Greedy answers to instruction-form questions and their exact-match accuracy. */
final class ArithmeticEval {
    private ArithmeticEval() {
    }

    /** The model's answer to each problem: greedy, up to 6 tokens, stopping at EOS or a newline. */
    static List<String> answers(LlamaModel model, Tokenizer tok, List<Problem> problems) {
        Set<Integer> stops = stopTokens(tok);
        Generator generator = new Generator(model).maxNewTokens(6).stopTokens(stops);
        List<String> out = new ArrayList<>();
        for (Problem p : problems) {
            int[] generated = generator.generate(tok.encode(ArithmeticText.prompt(p), true));
            int end = generated.length;
            while (end > 0 && stops.contains(generated[end - 1])) {
                end--;
            }
            out.add(tok.decode(java.util.Arrays.copyOf(generated, end)).trim());
        }
        return out;
    }

    /** EOS and the newline token (a piece of its own, or the byte-fallback token <0x0A>). */
    static Set<Integer> stopTokens(Tokenizer tok) {
        Set<Integer> stops = new HashSet<>();
        stops.add(tok.eosId().orElseThrow());
        int[] newline = tok.encode("\n", false);
        stops.add(newline[newline.length - 1]);
        return stops;
    }

    static double accuracy(LlamaModel model, Tokenizer tok, List<Problem> problems) {
        return ArithmeticTasks.accuracy(problems, answers(model, tok, problems));
    }
}
