package dev.lora4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.eval.ArithmeticEvaluation.Task;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.testing.Fixtures;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ArithmeticEvaluationTest {

    @Test
    void promptsAndTargetsAreTheGpt3DatasetText() {
        ArithmeticEvaluation eval = ArithmeticEvaluation.defaults();
        assertEquals("Question: What is 98 plus 45?\nAnswer:", eval.prompt(new Problem(98, "plus", 45, 143)));
        assertEquals(" 143", eval.target(new Problem(98, "plus", 45, 143)));
        assertEquals("Question: What is 12 minus 45?\nAnswer:", eval.prompt(new Problem(12, "minus", 45, -33)));
        assertEquals(" -33", eval.target(new Problem(12, "minus", 45, -33)));
        assertEquals(" 0", eval.target(new Problem(7, "minus", 7, 0)));

        ArithmeticEvaluation alpaca = eval.promptFormat(q -> "### Instruction:\n" + q + "\n\n### Response:\n").answerDelimiter("");
        assertEquals("### Instruction:\nWhat is 98 plus 45?\n\n### Response:\n", alpaca.prompt(new Problem(98, "plus", 45, 143)));
        assertEquals("143", alpaca.target(new Problem(98, "plus", 45, 143)));
        assertEquals("A: What is 1 plus 2? =", eval.promptTemplate("A: {question} =").prompt(new Problem(1, "plus", 2, 3)));
        assertTrue(alpaca.toString().contains("prompt=custom function"), alpaca.toString());
        assertTrue(eval.toString().contains("count=2000"), eval.toString());
    }

    @Test
    void problemsAreSeededUniformOperandsWithOneOperatorPerTask() {
        ArithmeticEvaluation eval = ArithmeticEvaluation.defaults().count(500).seed(9);
        List<Problem> sub2 = eval.problems(Task.ARITHMETIC_2DS);
        assertEquals(500, sub2.size());
        assertEquals(sub2, eval.problems(Task.ARITHMETIC_2DS));
        assertNotEquals(sub2, eval.seed(10).problems(Task.ARITHMETIC_2DS));
        assertNotEquals(sub2.subList(0, 20).stream().map(Problem::left).toList(),
                eval.problems(Task.ARITHMETIC_2DA).subList(0, 20).stream().map(Problem::left).toList());
        for (Problem p : sub2) {
            assertEquals("minus", p.operator());
            assertTrue(p.left() >= 0 && p.left() < 100 && p.right() >= 0 && p.right() < 100, p.toString());
            assertEquals(p.left() - p.right(), p.answer());
        }
        assertTrue(sub2.stream().anyMatch(p -> p.answer() < 0), "about half of uniform subtractions are negative");
        assertTrue(sub2.stream().anyMatch(p -> p.left() < 10), "operands below 10 occur: [0, 100), not 10..99");

        List<Problem> add4 = eval.problems(Task.ARITHMETIC_4DA);
        for (Problem p : add4) {
            assertEquals("plus", p.operator());
            assertTrue(p.left() < 10_000 && p.right() < 10_000);
            assertEquals(p.left() + p.right(), p.answer());
        }
        assertTrue(add4.stream().anyMatch(p -> p.left() >= 5000));
    }

    @Test
    void settingsAreValidatedAtOnce() {
        ArithmeticEvaluation eval = ArithmeticEvaluation.defaults();
        assertTrue(assertThrows(IllegalArgumentException.class, () -> eval.count(0)).getMessage().contains("count must be >= 1, was 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> eval.promptTemplate("Q: x"))
                .getMessage().contains("no {question} placeholder"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> eval.tasks(List.of())).getMessage().contains("empty"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Task.fromName("2dm"))
                .getMessage().contains("unknown arithmetic task \"2dm\""));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ArithmeticTasks.sample(5, "times", 0, 10, 1))
                .getMessage().contains("operator must be \"plus\" or \"minus\", was \"times\""));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ArithmeticTasks.sample(5, "plus", 10, 10, 1))
                .getMessage().contains("operand range [10, 10)"));
        assertEquals(Task.ARITHMETIC_4DS, Task.fromName("4ds"));
        assertEquals(Task.ARITHMETIC_2DA, Task.fromName("Arithmetic_2DA"));
    }

    @Test
    void endToEndOnStories260KIsDeterministicAndAccAgreesWithGreedyGeneration() throws Exception {
        Path root = Fixtures.require("stories260K").resolve("hf");
        LlamaModel model = LlamaModel.load(root);
        HfTokenizer tok = HfTokenizer.load(root);
        ArithmeticEvaluation eval = ArithmeticEvaluation.defaults().tasks(List.of(Task.ARITHMETIC_2DA, Task.ARITHMETIC_2DS))
                .count(6).seed(3).batchSize(4);
        ArithmeticEvaluation.Result r = eval.evaluate(model, tok);
        assertEquals(2, r.tasks().size());
        assertEquals(r, eval.evaluate(model, tok));
        assertEquals("arithmetic_2da,arithmetic_2ds", r.settings().get("tasks"));

        Set<Integer> stops = ArithmeticEvaluation.newlineAndEosTokens(tok, model);
        assertTrue(stops.contains(tok.eosId().getAsInt()));
        assertTrue(stops.contains(tok.id("<0x0A>").orElseThrow()));
        Generator greedy = new Generator(model).maxNewTokens(12);
        for (ArithmeticEvaluation.TaskResult t : r.tasks()) {
            assertEquals(6, t.n());
            assertEquals(t.greedyCount() / 6.0, t.acc(), 1e-12);
            for (ArithmeticEvaluation.Sample s : t.samples()) {
                // acc's "greedy continuation" and generation must agree: the answer is greedy exactly
                // when greedy decoding from the prompt starts with the answer's tokens
                LogLikelihood.Request req = LogLikelihood.encode(tok, eval.prompt(s.problem()), eval.target(s.problem()), true);
                int[] generated = greedy.generate(req.context());
                int[] cont = req.continuation();
                boolean startsWith = generated.length >= cont.length
                        && Arrays.equals(Arrays.copyOf(generated, cont.length), cont);
                assertEquals(startsWith, s.isGreedy(), s.toString());
                assertFalse(s.generated().contains("\n"));
                assertEquals(s.generated().equals(s.problem().answerText()), s.exactMatch());
                assertTrue(s.logLikelihood() < 0);
            }
        }
    }
}
