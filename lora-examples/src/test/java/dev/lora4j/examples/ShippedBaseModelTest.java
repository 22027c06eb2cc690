package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.eval.ResponseEvaluation;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The quickstart's base model is what the README says: it knows the facts, not the question form. */
class ShippedBaseModelTest {
    private static final Path DIR = Path.of("models/arith-tiny");
    private static LlamaModel model;
    private static HfTokenizer tok;

    @BeforeAll
    static void load() throws Exception {
        model = LlamaModel.load(DIR);
        tok = HfTokenizer.load(DIR);
    }

    @Test
    void answersMostPretrainingFacts() {
        Generator gen = new Generator(model).maxNewTokens(5).stopTokens(ArithmeticText.stopTokens(tok));
        SplittableRandom rng = new SplittableRandom(99);
        int right = 0;
        int n = 40;
        for (int i = 0; i < n; i++) {
            Problem p = ArithmeticText.randomProblem(rng);
            right += tok.decode(gen.generate(tok.encode(p.equation(), true))).trim().equals(p.answerText()) ? 1 : 0;
        }
        assertTrue(right >= n / 4, "the shipped base answered only " + right + " of " + n + " equations");
    }

    @Test
    void doesNotAnswerTheQuestionFormBeforeLora() {
        List<Problem> problems = ArithmeticTasks.generate(40, ArithmeticText.DIGITS, false, 5);
        InstructionDataset dataset = InstructionDataset.builder(tok).promptStyle(ArithmeticText.PROMPT_STYLE).build();
        ResponseEvaluation.Result result = ResponseEvaluation.evaluate(model, dataset, ArithmeticText.records(problems),
                ArithmeticText.stopTokens(tok));
        assertEquals(0.0, result.exactMatch(), 0.1);
    }
}
