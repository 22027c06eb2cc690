package dev.lora4j.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.ArithmeticTasks.Problem;
import dev.lora4j.eval.ArithmeticEvaluation.Sample;
import dev.lora4j.eval.ArithmeticEvaluation.Task;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EvaluationReportTest {

    @TempDir
    Path dir;

    private static EvaluationReport sample() {
        Problem p1 = new Problem(98, "plus", 45, 143);
        Problem p2 = new Problem(3, "plus", 4, 7);
        Problem p3 = new Problem(1, "plus", 1, 2);
        ArithmeticEvaluation.TaskResult add = new ArithmeticEvaluation.TaskResult(Task.ARITHMETIC_2DA, List.of(
                new Sample(p1, -0.5, true, "143", true), new Sample(p2, -3.0, false, "8", false),
                new Sample(p3, -0.1, true, "2", false)));
        ArithmeticEvaluation.TaskResult sub = new ArithmeticEvaluation.TaskResult(Task.ARITHMETIC_2DS, List.of(
                new Sample(new Problem(1, "minus", 5, -4), -1.0, false, "-4", true)));
        ArithmeticEvaluation.Result arithmetic = new ArithmeticEvaluation.Result(List.of(add, sub),
                ArithmeticEvaluation.defaults().count(3).settings());
        MultipleChoiceEvaluation.Result mc = new MultipleChoiceEvaluation.Result(
                new MultipleChoiceEvaluation.TaskScore("truthfulqa_mc1", List.of(1.0, 0.0, 0.0, 1.0)),
                new MultipleChoiceEvaluation.TaskScore("truthfulqa_mc2", List.of(0.25, 0.5)),
                MultipleChoiceEvaluation.defaults().settings());
        return EvaluationReport.empty()
                .model("meta-llama/Llama-2-7b-hf")
                .adapter("out/lora/final")
                .config("seed", 42)
                .config("quantize", "nf4")
                .validation(new LossEvaluator.LossResult(1.25, Math.exp(1.25), 4096, 50))
                .arithmetic(arithmetic)
                .multipleChoice(mc);
    }

    @Test
    void writesLmEvalShapedJsonThatReadsBackEqual() throws Exception {
        EvaluationReport report = sample();
        Path file = dir.resolve("sub/eval.json");
        report.write(file);
        EvaluationReport back = EvaluationReport.read(file);
        assertEquals(report, back);
        assertEquals(report.toJson(), back.toJson());
        assertEquals(Files.readString(file), back.toJson());

        assertEquals(2.0 / 3, back.metric("arithmetic_2da", "acc"), 1e-15);
        assertEquals(1.0 / 3, back.metric("arithmetic_2da", "exact_match"), 1e-15);
        // lm-eval's stderr: sample standard deviation / sqrt(n); acc values 1, 0, 1 have squared deviations
        // summing to 1/9 + 4/9 + 1/9 = 2/3, so sqrt((2/3) / (3 - 1)) / sqrt(3) = 1/3
        assertEquals(1.0 / 3, back.metric("arithmetic_2da", "acc_stderr"), 1e-12);
        assertEquals(3L, back.results().get("arithmetic_2da").get("n"));
        assertEquals(0.5, back.metric("truthfulqa_mc1", "acc"));
        assertEquals(0.375, back.metric("truthfulqa_mc2", "acc"));
        assertEquals(1.25, back.metric("validation", "loss"));
        assertEquals(4096L, back.results().get("validation").get("tokens"));
        assertEquals("out/lora/final", back.config().get("adapter"));
        assertEquals(3L, ((Map<?, ?>) back.config().get("arithmetic")).get("count"));

        String json = report.toJson();
        assertTrue(json.startsWith("{\n  \"results\" : {\n    \"arithmetic_2da\" : {\n      \"acc\" : 0.6666666666666666,"), json);
        assertTrue(json.indexOf("\"results\"") < json.indexOf("\"config\""));
        assertTrue(json.indexOf("\"arithmetic_2ds\"") < json.indexOf("\"truthfulqa_mc1\""));
        assertTrue(json.indexOf("\"truthfulqa_mc2\"") < json.indexOf("\"validation\""));
        assertTrue(json.contains("\"n\" : 3"), json);
        // one sample has no standard error: left out rather than written as NaN
        assertFalse(report.results().get("arithmetic_2ds").containsKey("acc_stderr"));
        assertFalse(json.contains("NaN"));
    }

    @Test
    void sameResultsGiveTheSameBytesWhateverTheOrderOfCalls() {
        EvaluationReport a = EvaluationReport.empty().task("b", Map.of("y", 1, "x", 2.5)).task("a", Map.of("n", 3)).model("m");
        EvaluationReport b = EvaluationReport.empty().model("m").task("a", Map.of("n", 3L)).task("b", Map.of("x", 2.5, "y", 1L));
        assertEquals(a, b);
        assertEquals(a.toJson(), b.toJson());
    }

    @Test
    void badInputIsNamed() throws Exception {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> EvaluationReport.fromJson("{\"results\": [", "r.json"))
                .getMessage().startsWith("r.json: not valid JSON at line 1"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> EvaluationReport.fromJson("{\"x\": 1}", "r.json"))
                .getMessage().contains("r.json: not an evaluation report"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> EvaluationReport.fromJson("{\"results\": {\"t\": {\"acc\": \"high\"}}}", "r.json"))
                .getMessage().contains("results.t.acc is \"high\", not a number"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> EvaluationReport.empty().config("k", List.of(1)))
                .getMessage().contains("config.k is a"));
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> EvaluationReport.empty().task("t", Map.of("acc", Double.POSITIVE_INFINITY)))
                .getMessage().contains("t.acc is Infinity"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> EvaluationReport.empty().metric("t", "acc"))
                .getMessage().contains("no t.acc"));
    }
}
