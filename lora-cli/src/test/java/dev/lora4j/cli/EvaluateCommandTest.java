package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.DataSplit;
import dev.lora4j.data.Example;
import dev.lora4j.data.HfTokenizer;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.data.InstructionDatasets;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.data.PromptStyle;
import dev.lora4j.eval.EvaluationReport;
import dev.lora4j.eval.LossEvaluator;
import dev.lora4j.eval.MultipleChoiceEvaluation;
import dev.lora4j.eval.ResponseEvaluation;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EvaluateCommandTest {

    private static LlamaModel arithTiny() {
        return ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
    }

    /** The examples as finetune encodes them with the test template, and their loss as the library computes it. */
    private static LossEvaluator.LossResult expectedLoss(List<InstructionRecord> records) throws Exception {
        HfTokenizer tokenizer = HfTokenizer.load(CliRun.ARITH_TINY);
        List<Example> examples = InstructionDataset.builder(tokenizer)
                .promptStyle(PromptStyle.custom("{instruction}\n{input}\nAnswer:", "{instruction}\nAnswer:"))
                .maxLength(128).build().encode(records).examples();
        return LossEvaluator.evaluate(arithTiny(), examples, 8, tokenizer.eosId().orElseThrow());
    }

    @Test
    void valLossIsLossEvaluatorsOnTheWholeFileOrItsValidationSplit(@TempDir Path tmp) throws Exception {
        Path data = FinetuneCommandTest.writeArithmetic(tmp.resolve("test.json"), 40, 11);
        Path report = tmp.resolve("results.json");
        CliRun run = CliRun.of("evaluate", CliRun.ARITH_TINY.toString(), "--tasks", "val_loss", "--data", data.toString(),
                "--prompt-template", FinetuneCommandTest.TEMPLATE, "--out", report.toString());
        assertEquals(0, run.exitCode(), run::toString);
        List<InstructionRecord> records = InstructionDatasets.load(data);
        LossEvaluator.LossResult expected = expectedLoss(records);
        EvaluationReport written = EvaluationReport.read(report);
        assertEquals(expected.loss(), written.metric("validation", "loss"), 1e-12);
        assertEquals(expected.perplexity(), written.metric("validation", "perplexity"), 1e-9);
        assertEquals(40, written.metric("validation", "examples"));
        assertEquals(expected.tokens(), (long) written.metric("validation", "tokens"));
        assertTrue(run.out().lines().anyMatch(l -> l.startsWith("val_loss") && l.contains("loss")
                && l.contains(String.format(java.util.Locale.ROOT, "%.4f", expected.loss()))), run::toString);

        // --val-split: only the part finetune holds out with that fraction and --data-seed
        CliRun split = CliRun.of("evaluate", CliRun.ARITH_TINY.toString(), "--tasks", "val_loss", "--data", data.toString(),
                "--prompt-template", FinetuneCommandTest.TEMPLATE, "--val-split", "0.25", "--json");
        assertEquals(0, split.exitCode(), split::toString);
        LossEvaluator.LossResult heldOut = expectedLoss(DataSplit.split(records, 0.25, 42).validation());
        EvaluationReport printed = EvaluationReport.fromJson(split.out(), "stdout");
        assertEquals(10, printed.metric("validation", "examples"));
        assertEquals(heldOut.loss(), printed.metric("validation", "loss"), 1e-12);
    }

    @Test
    void exactMatchAnswersTheRecordsAsTheLibraryDoes(@TempDir Path tmp) throws Exception {
        Path data = FinetuneCommandTest.writeArithmetic(tmp.resolve("test.json"), 12, 3);
        Path report = tmp.resolve("results.json");
        CliRun run = CliRun.of("evaluate", CliRun.ARITH_TINY.toString(), "--tasks", "exact_match", "--val-data",
                data.toString(), "--prompt-template", FinetuneCommandTest.TEMPLATE, "--out", report.toString());
        assertEquals(0, run.exitCode(), run::toString);
        HfTokenizer tokenizer = HfTokenizer.load(CliRun.ARITH_TINY);
        InstructionDataset dataset = InstructionDataset.builder(tokenizer)
                .promptStyle(PromptStyle.custom("{instruction}\n{input}\nAnswer:", "{instruction}\nAnswer:")).build();
        ResponseEvaluation.Result expected = ResponseEvaluation.evaluate(arithTiny(), dataset, InstructionDatasets.load(data),
                java.util.Set.of(tokenizer.eosId().orElseThrow()));
        EvaluationReport written = EvaluationReport.read(report);
        assertEquals(List.of("exact_match"), List.copyOf(written.results().keySet()));
        assertEquals(12L, written.results().get("exact_match").get("n"));
        assertEquals(expected.exactMatch(), written.metric("exact_match", "exact_match"), 1e-12);
        assertTrue(run.out().lines().anyMatch(l -> l.startsWith("exact_match")), run::toString);
    }

    @Test
    void arithmeticWritesTheTasksAsked(@TempDir Path tmp) throws Exception {
        Path report = tmp.resolve("results.json");
        CliRun run = CliRun.of("evaluate", CliRun.ARITH_TINY.toString(), "--tasks", "arithmetic_2da,arithmetic_4ds", "--count",
                "4", "--prompt-template", FinetuneCommandTest.TEMPLATE, "--out", report.toString());
        assertEquals(0, run.exitCode(), run::toString);
        EvaluationReport written = EvaluationReport.read(report);
        assertEquals(List.of("arithmetic_2da", "arithmetic_4ds"), List.copyOf(written.results().keySet()));
        for (String task : written.results().keySet()) {
            Map<String, Object> metrics = written.results().get(task);
            assertEquals(4L, metrics.get("n"));
            assertTrue(metrics.containsKey("acc") && metrics.containsKey("exact_match"), metrics::toString);
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> arithmetic = (Map<String, Object>) written.config().get("arithmetic");
        assertEquals(4L, arithmetic.get("count"));
        assertEquals("custom(withoutInput=\"{instruction}\\nAnswer:\")", written.config().get("arithmetic_prompt"));
        assertEquals(CliRun.ARITH_TINY.toString(), written.config().get("model"));
        assertEquals(4, run.out().lines().filter(l -> l.startsWith("arithmetic_")).count(), run::toString);
    }

    @Test
    void truthfulqaScoresTheMultipleChoiceFile(@TempDir Path tmp) throws Exception {
        Path mc = tmp.resolve("mc.json");
        Files.writeString(mc, """
                [{"question": "What is 12 plus 5?",
                  "mc1_targets": {"choices": ["17", "71", "12"], "labels": [1, 0, 0]},
                  "mc2_targets": {"choices": ["17", "seventeen", "3"], "labels": [1, 1, 0]}},
                 {"question": "What is 40 minus 8?",
                  "mc1_targets": {"choices": ["32", "48"], "labels": [1, 0]},
                  "mc2_targets": {"choices": ["32", "48", "8"], "labels": [1, 0, 0]}}]
                """);
        Path preamble = Files.writeString(tmp.resolve("preamble.txt"), "");
        Path report = tmp.resolve("results.json");
        CliRun run = CliRun.of("evaluate", CliRun.ARITH_TINY.toString(), "--tasks", "truthfulqa", "--mc-file", mc.toString(),
                "--mc-preamble-file", preamble.toString(), "--out", report.toString());
        assertEquals(0, run.exitCode(), run::toString);
        MultipleChoiceEvaluation.Result expected = MultipleChoiceEvaluation.defaults().preamble("")
                .evaluate(arithTiny(), HfTokenizer.load(CliRun.ARITH_TINY), MultipleChoiceEvaluation.read(mc));
        EvaluationReport written = EvaluationReport.read(report);
        assertEquals(expected.mc1().acc(), written.metric("truthfulqa_mc1", "acc"), 1e-12);
        assertEquals(expected.mc2().acc(), written.metric("truthfulqa_mc2", "acc"), 1e-12);
        assertEquals(2, written.metric("truthfulqa_mc2", "n"));

        CliRun onlyMc1 = CliRun.of("evaluate", CliRun.ARITH_TINY.toString(), "--tasks", "truthfulqa_mc1", "--mc-file",
                mc.toString(), "--json");
        assertEquals(0, onlyMc1.exitCode(), onlyMc1::toString);
        EvaluationReport printed = EvaluationReport.fromJson(onlyMc1.out(), "stdout");
        assertEquals(List.of("truthfulqa_mc1"), List.copyOf(printed.results().keySet()));
    }

    @Test
    void usageErrorsNameTheTaskOrOption(@TempDir Path tmp) throws Exception {
        String model = CliRun.ARITH_TINY.toString();
        CliRun badTask = CliRun.of("evaluate", model, "--tasks", "val_loss,arithmetic_9da");
        assertEquals(2, badTask.exitCode(), badTask::toString);
        assertTrue(badTask.err().contains("arithmetic_9da") && badTask.err().contains("arithmetic_2da")
                && badTask.err().contains("truthfulqa_mc2") && badTask.err().contains("val_loss"), badTask::toString);

        CliRun noData = CliRun.of("evaluate", model, "--tasks", "val_loss");
        assertEquals(2, noData.exitCode(), noData::toString);
        assertTrue(noData.err().contains("--data"), noData::toString);

        CliRun noMcFile = CliRun.of("evaluate", model, "--tasks", "truthfulqa_mc2");
        assertEquals(2, noMcFile.exitCode(), noMcFile::toString);
        assertTrue(noMcFile.err().contains("--mc-file"), noMcFile::toString);

        Path data = FinetuneCommandTest.writeArithmetic(tmp.resolve("test.json"), 4, 1);
        CliRun unusedData = CliRun.of("evaluate", model, "--tasks", "arithmetic_2da", "--data", data.toString());
        assertEquals(2, unusedData.exitCode(), unusedData::toString);
        assertTrue(unusedData.err().contains("val_loss"), unusedData::toString);
        assertFalse(Files.exists(tmp.resolve("results.json")));
    }
}
