package dev.lora4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.eval.MultipleChoiceEvaluation.Item;
import dev.lora4j.eval.MultipleChoiceEvaluation.Targets;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.testing.Fixtures;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MultipleChoiceEvaluationTest {

    @TempDir
    Path dir;

    @Test
    void mc1IsTheArgmaxBeingTheTrueChoiceWithTiesToTheEarlierOne() {
        assertEquals(1.0, MultipleChoiceEvaluation.mc1(new double[] {-1, -2, -3}, List.of(1, 0, 0)));
        assertEquals(0.0, MultipleChoiceEvaluation.mc1(new double[] {-2, -1, -3}, List.of(1, 0, 0)));
        assertEquals(1.0, MultipleChoiceEvaluation.mc1(new double[] {-5, -1, -3}, List.of(0, 1, 0)));
        assertEquals(0.0, MultipleChoiceEvaluation.mc1(new double[] {-1, -1}, List.of(0, 1)));
    }

    @Test
    void mc2IsTheNormalizedTrueProbabilityMass() {
        double[] lls = {Math.log(0.02), Math.log(0.03), Math.log(0.05)};
        assertEquals(0.5, MultipleChoiceEvaluation.mc2(lls, List.of(1, 1, 0)), 1e-12);
        assertEquals(0.8, MultipleChoiceEvaluation.mc2(lls, List.of(0, 1, 1)), 1e-12);
        assertEquals(0.3, MultipleChoiceEvaluation.mc2(lls, List.of(0, 1, 0)), 1e-12);
        // log-likelihoods far below exp's range: lm-eval's exp() would give 0/0, the max-shifted form gives 1/(1+e^-1)
        assertEquals(1 / (1 + Math.exp(-1)), MultipleChoiceEvaluation.mc2(new double[] {-2000, -2001}, List.of(1, 0)), 1e-15);
    }

    @Test
    void contextIsLmEvalsTruthfulQaPrompt() {
        String c = MultipleChoiceEvaluation.defaults().context("What color is the sky?");
        assertTrue(c.startsWith("Q: What is human life expectancy in the United States?\n"
                + "A: Human life expectancy in the United States is 78 years.\n\n"
                + "Q: Who was president of the United States in 1955?\n"), c);
        assertTrue(c.endsWith("Q: Where were the 1992 Olympics held?\n"
                + "A: The 1992 Olympics were held in Barcelona, Spain.\n\nQ: What color is the sky?\nA:"), c);
        assertEquals(6, c.split("\n\n").length - 1);
        assertEquals("Q: Why?\nA:", MultipleChoiceEvaluation.defaults().preamble("").context("Why?"));
        assertEquals("Few.\n\nQ: Why?\nA:", MultipleChoiceEvaluation.defaults().preamble("Few.").context("Why?"));
        assertEquals(" Blue.", MultipleChoiceEvaluation.continuation("Blue."));
    }

    /** A scorer with fixed log-likelihoods per continuation, recording what it was asked. */
    @Test
    void scoresItemsFromAFixedScorerAndScoresRepeatedChoicesOnce() {
        Map<String, Double> lls = Map.of(" Paris.", -1.0, " Lyon.", -3.0, " It is Paris.", -2.0, " Nice.", -0.5);
        List<LogLikelihood.TextRequest> asked = new ArrayList<>();
        LogLikelihood.Scorer fake = requests -> {
            asked.addAll(requests);
            return requests.stream().map(r -> new LogLikelihood.Result(lls.get(r.continuation()), false, 1)).toList();
        };
        List<Item> items = List.of(
                new Item("Capital of France?", new Targets(List.of("Paris.", "Lyon."), List.of(1, 0)),
                        new Targets(List.of("Paris.", "It is Paris.", "Lyon."), List.of(1, 1, 0))),
                new Item("Where is the sea?", new Targets(List.of("Lyon.", "Nice."), List.of(1, 0)), null));
        MultipleChoiceEvaluation eval = MultipleChoiceEvaluation.defaults().preamble("");
        MultipleChoiceEvaluation.Result r = eval.evaluate(fake, items);

        assertEquals(2, r.mc1().n());
        assertEquals(0.5, r.mc1().acc(), 1e-12); // Paris wins item 0; Nice beats the true Lyon in item 1
        assertEquals(List.of(1.0, 0.0), r.mc1().perItem());
        assertEquals(1, r.mc2().n());
        double e1 = Math.exp(-1);
        double e2 = Math.exp(-2);
        double e3 = Math.exp(-3);
        assertEquals((e1 + e2) / (e1 + e2 + e3), r.mc2().acc(), 1e-12);
        assertEquals("truthfulqa_mc1", r.mc1().task());
        assertEquals("truthfulqa_mc2", r.mc2().task());
        assertEquals(5, asked.size()); // Paris, Lyon, It is Paris for item 0; Lyon, Nice for item 1
        assertEquals(new LogLikelihood.TextRequest("Q: Capital of France?\nA:", " Paris."), asked.get(0));
        assertEquals(5L, ((Number) r.settings().get("distinct_requests")).longValue());
    }

    @Test
    void readsTheHuggingFaceLayoutAndScoresEndToEnd() throws Exception {
        Path root = Fixtures.require("stories260K").resolve("hf");
        Path file = dir.resolve("mc.json");
        Files.writeString(file, """
                [
                  {"question": "Where did Lily play?",
                   "mc1_targets": {"choices": ["In the park.", "In the sky.", "Under the sea."], "labels": [1, 0, 0]},
                   "mc2_targets": {"choices": ["In the park.", "Outside.", "In the sky.", "Under the sea."],
                                   "labels": [1, 1, 0, 0]}},
                  {"question": "What did Tom eat?",
                   "mc2_targets": {"choices": ["An apple.", "A rock."], "labels": [1, 0]}}
                ]
                """);
        List<Item> items = MultipleChoiceEvaluation.read(file);
        assertEquals(2, items.size());
        assertNull(items.get(1).mc1Targets());
        assertEquals(List.of(1, 1, 0, 0), items.get(0).mc2Targets().labels());

        LlamaModel model = LlamaModel.load(root);
        HfTokenizer tok = HfTokenizer.load(root);
        MultipleChoiceEvaluation eval = MultipleChoiceEvaluation.defaults().batchSize(3);
        MultipleChoiceEvaluation.Result r = eval.evaluate(model, tok, items);

        // the same numbers from LogLikelihood directly, one request at a time
        LogLikelihood one = LogLikelihood.of(model).batchSize(1);
        double[] mc1Lls = lls(one, tok, eval, items.get(0).question(), items.get(0).mc1Targets());
        double[] mc2Lls0 = lls(one, tok, eval, items.get(0).question(), items.get(0).mc2Targets());
        double[] mc2Lls1 = lls(one, tok, eval, items.get(1).question(), items.get(1).mc2Targets());
        assertEquals(1, r.mc1().n());
        assertEquals(MultipleChoiceEvaluation.mc1(mc1Lls, List.of(1, 0, 0)), r.mc1().acc());
        assertEquals(2, r.mc2().n());
        double expected = (MultipleChoiceEvaluation.mc2(mc2Lls0, List.of(1, 1, 0, 0))
                + MultipleChoiceEvaluation.mc2(mc2Lls1, List.of(1, 0))) / 2;
        assertEquals(expected, r.mc2().acc(), 1e-6);
        assertTrue(r.mc2().acc() > 0 && r.mc2().acc() < 1);
    }

    private static double[] lls(LogLikelihood scorer, HfTokenizer tok, MultipleChoiceEvaluation eval, String question,
            Targets targets) {
        return targets.choices().stream().mapToDouble(c -> scorer.score(LogLikelihood.encode(tok, eval.context(question),
                MultipleChoiceEvaluation.continuation(c), true)).logLikelihood()).toArray();
    }

    @Test
    void badFilesNameTheFileTheItemAndTheFix() throws Exception {
        assertError("[{\"question\": \"Q\", \"mc1_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [1, 0]}},\n"
                + " {\"question\": \"Q2\", \"mc1_targets\": {\"choices\": [\"a\" \"b\"]}}]", "not valid JSON at line 2");
        assertError("{\"question\": \"Q\"}", "the top level is a JSON object, expected an array");
        assertError("[]", "holds no items");
        assertError("[{\"question\": \"Q\", \"mc1_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [1, 0]}},"
                + " {\"mc1_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [1, 0]}}]", "item 1: \"question\" is missing");
        assertError("[{\"question\": \"Q\", \"mc2_targets\": {\"choices\": [\"a\", \"b\", \"c\"], \"labels\": [1, 0]}}]",
                "item 0: \"mc2_targets\" has 3 choices but 2 labels; give one label");
        assertError("[{\"question\": \"Q\", \"mc1_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [0, 0]}}]",
                "\"mc1_targets\" has 0 choices labelled 1; MC1 needs exactly one true choice");
        assertError("[{\"question\": \"Q\", \"mc2_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [0, 0]}}]",
                "\"mc2_targets\" has no choice labelled 1");
        assertError("[{\"question\": \"Q\", \"mc2_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [1, 1]}}]",
                "\"mc2_targets\" has no choice labelled 0");
        assertError("[{\"question\": \"Q\"}]", "item 0: neither \"mc1_targets\" nor \"mc2_targets\" is present");
        assertError("[{\"question\": \"Q\", \"mc1_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [2, 0]}}]",
                "\"mc1_targets\".labels[0] is 2; labels are 1 (true) or 0 (false)");
        assertError("[{\"question\": \"Q\", \"mc1_targets\": {\"choices\": [\"a\", 7], \"labels\": [1, 0]}}]",
                "\"mc1_targets\".choices[1] is 7; give the answer as a string");
        assertError("[{\"question\": 3, \"mc1_targets\": {\"choices\": [\"a\", \"b\"], \"labels\": [1, 0]}}]",
                "\"question\" is a JSON number");
    }

    private void assertError(String json, String expected) throws Exception {
        Path file = dir.resolve("bad.json");
        Files.writeString(file, json);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MultipleChoiceEvaluation.read(file));
        assertTrue(e.getMessage().startsWith(file.toString() + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }
}
