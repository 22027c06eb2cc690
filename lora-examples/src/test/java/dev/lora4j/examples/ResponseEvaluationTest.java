package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.data.PromptStyle;
import dev.lora4j.eval.ResponseEvaluation;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Exact match of greedy answers, on the shipped base model asked the facts it was pretrained on
 * ("59 minus 38 is" → "21"), each fact once with its true answer and once with a wrong one.
 */
class ResponseEvaluationTest {
    private static final Path DIR = Path.of("models/arith-tiny");

    @Test
    void anAnswerMatchesOnlyTheOutputItEquals() throws Exception {
        LlamaModel model = LlamaModel.load(DIR);
        HfTokenizer tok = HfTokenizer.load(DIR);
        InstructionDataset dataset = InstructionDataset.builder(tok).promptStyle(PromptStyle.custom("{instruction} {input}",
                "{instruction}")).build();
        Set<Integer> stops = ArithmeticText.stopTokens(tok); // EOS and newline: the base model goes on with more facts
        List<Problem> problems = ArithmeticTasks.generate(30, 2, false, 5);
        List<InstructionRecord> records = new ArrayList<>();
        for (Problem p : problems) {
            String fact = p.left() + " " + p.operator() + " " + p.right() + " is";
            records.add(InstructionRecord.of(fact, p.answerText()));
            records.add(InstructionRecord.of(fact, Integer.toString(p.answer() + 1)));
        }

        ResponseEvaluation.Result result = ResponseEvaluation.evaluate(model, dataset, records, stops);

        assertEquals(records.size(), result.n());
        assertEquals(0, result.skipped());
        int right = 0;
        for (int i = 0; i < problems.size(); i++) {
            ResponseEvaluation.Sample truth = result.samples().get(2 * i);
            ResponseEvaluation.Sample offByOne = result.samples().get(2 * i + 1);
            // the same prompt gets the same greedy answer, which equals at most one of the two outputs
            assertEquals(truth.answer(), offByOne.answer());
            assertFalse(truth.exactMatch() && offByOne.exactMatch());
            assertEquals(truth.answer().strip().equals(problems.get(i).answerText()), truth.exactMatch());
            right += truth.exactMatch() ? 1 : 0;
            // the answer is the greedy continuation, read independently through the token API
            int[] prompt = tok.encode(records.get(2 * i).instruction(), true);
            int[] ids = new Generator(model).stopTokens(stops).maxNewTokens(dataset.encodeResponse(records.get(2 * i)).length
                    + ResponseEvaluation.SLACK_TOKENS).generate(prompt);
            int end = ids.length > 0 && stops.contains(ids[ids.length - 1]) ? ids.length - 1 : ids.length;
            assertEquals(tok.decode(Arrays.copyOf(ids, end)).strip(), truth.answer().strip());
        }
        assertTrue(right >= problems.size() / 4, "the base model knew only " + right + " of " + problems.size() + " facts");
        assertEquals((double) result.matches() / result.n(), result.exactMatch(), 1e-12);
        assertThrows(IllegalArgumentException.class, () -> ResponseEvaluation.evaluate(model, dataset, records, Set.of()));
    }
}
