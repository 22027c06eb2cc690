package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ColumnMapping;
import dev.lora4j.data.DataSplit;
import dev.lora4j.data.Example;
import dev.lora4j.tokenizer.HfTokenizer;
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
import java.util.ArrayList;
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

    /**
     * LIMA conversations of arithmetic questions: conversation c has c % 3 + 1 (user, assistant)
     * pairs, and the last one ends with a question left unanswered.
     */
    static Path writeLima(Path file, int conversations) throws Exception {
        List<ArithmeticTasks.Problem> problems = ArithmeticTasks.generate(3 * conversations, 2, false, 17);
        List<Map<String, Object>> records = new ArrayList<>();
        int next = 0;
        for (int c = 0; c < conversations; c++) {
            List<String> turns = new ArrayList<>();
            for (int p = 0; p <= c % 3; p++) {
                ArithmeticTasks.Problem problem = problems.get(next++);
                turns.add(problem.question());
                turns.add(problem.answerText());
            }
            if (c == conversations - 1) {
                turns.add(problems.get(next++).question());
            }
            records.add(Map.of("conversations", turns, "source", "test"));
        }
        new ObjectMapper().writeValue(file.toFile(), records);
        return file;
    }

    private static CliRun valLoss(Path data, String... extra) {
        List<String> args = new ArrayList<>(List.of("evaluate", CliRun.ARITH_TINY.toString(), "--tasks", "val_loss", "--data",
                data.toString(), "--json"));
        args.addAll(List.of(extra));
        return CliRun.of(args.toArray(String[]::new));
    }

    @Test
    void multiTurnScoresEveryPairOfTheLimaConversations(@TempDir Path tmp) throws Exception {
        Path lima = writeLima(tmp.resolve("lima.json"), 6);
        List<InstructionRecord> allTurns = InstructionDatasets.load(lima, InstructionDatasets.Conversations.ALL_TURNS);
        assertEquals(1 + 2 + 3 + 1 + 2 + 3, allTurns.size());

        CliRun multi = valLoss(lima, "--multi-turn", "--prompt-template", FinetuneCommandTest.TEMPLATE);
        assertEquals(0, multi.exitCode(), multi::toString);
        LossEvaluator.LossResult expected = expectedLoss(allTurns);
        EvaluationReport report = EvaluationReport.fromJson(multi.out(), "stdout");
        assertEquals(12, report.metric("validation", "examples"));
        assertEquals(expected.loss(), report.metric("validation", "loss"), 1e-12);
        assertEquals(expected.tokens(), (long) report.metric("validation", "tokens"));

        // without --multi-turn only the first pair of each conversation
        CliRun first = valLoss(lima, "--prompt-template", FinetuneCommandTest.TEMPLATE);
        assertEquals(0, first.exitCode(), first::toString);
        EvaluationReport firstReport = EvaluationReport.fromJson(first.out(), "stdout");
        assertEquals(6, firstReport.metric("validation", "examples"));
        assertEquals(expectedLoss(InstructionDatasets.load(lima)).loss(), firstReport.metric("validation", "loss"), 1e-12);
    }

    @Test
    void columnMappingReadsTheNamedCsvColumns(@TempDir Path tmp) throws Exception {
        Path csv = tmp.resolve("qa.csv");
        Files.writeString(csv, """
                topic,question,context,answer
                sums,What is 12 plus 5?,,17
                sums,"What is 40 plus 8, in all?",,48
                differences,What is 59 minus 38?,59 minus 38,21
                differences,"What is 70 minus 3?","70 minus 3, that is",67
                """);
        String mapping = "instruction=question, input=context, output=answer";
        CliRun run = valLoss(csv, "--column-mapping", mapping, "--prompt-template", "{instruction}\\n{input}\\nAnswer:",
                "--prompt-template-no-input", FinetuneCommandTest.TEMPLATE);
        assertEquals(0, run.exitCode(), run::toString);
        List<InstructionRecord> records = InstructionDatasets.load(csv, ColumnMapping.parse(mapping));
        assertEquals(new InstructionRecord("What is 40 plus 8, in all?", "", "48"), records.get(1));
        assertEquals(new InstructionRecord("What is 70 minus 3?", "70 minus 3, that is", "67"), records.get(3));
        LossEvaluator.LossResult expected = expectedLoss(records);
        EvaluationReport report = EvaluationReport.fromJson(run.out(), "stdout");
        assertEquals(4, report.metric("validation", "examples"));
        assertEquals(expected.loss(), report.metric("validation", "loss"), 1e-12);
        assertEquals(expected.tokens(), (long) report.metric("validation", "tokens"));
    }

    @Test
    void columnMappingAndMultiTurnErrorsNameTheOption(@TempDir Path tmp) throws Exception {
        Path csv = Files.writeString(tmp.resolve("qa.csv"), "question,answer\nWhat is 12 plus 5?,17\n");
        CliRun unknownField = valLoss(csv, "--column-mapping", "instruction=question,answer=answer");
        assertEquals(2, unknownField.exitCode(), unknownField::toString);
        assertTrue(unknownField.err().contains("--column-mapping") && unknownField.err().contains("unknown field \"answer\""),
                unknownField::toString);

        CliRun noOutput = valLoss(csv, "--column-mapping", "instruction=question");
        assertEquals(2, noOutput.exitCode(), noOutput::toString);
        assertTrue(noOutput.err().contains("--column-mapping") && noOutput.err().contains("output"), noOutput::toString);

        CliRun missingColumn = valLoss(csv, "--column-mapping", "instruction=query,output=answer");
        // a well-formed mapping that names a column the file lacks: a data error naming the file, line, column and mapping
        assertEquals(1, missingColumn.exitCode(), missingColumn::toString);
        assertTrue(missingColumn.err().contains(csv + " line 1: the header has no column \"query\" (from column mapping"),
                missingColumn::toString);

        Path lima = writeLima(tmp.resolve("lima.json"), 2);
        CliRun both = valLoss(lima, "--multi-turn", "--column-mapping", "instruction=question,output=answer");
        assertEquals(2, both.exitCode(), both::toString);
        assertTrue(both.err().contains("--column-mapping") && both.err().contains("--multi-turn"), both::toString);
        CliRun bothInFinetune = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--data", lima.toString(), "--multi-turn",
                "--column-mapping", "instruction=question,output=answer", "--out", tmp.resolve("out").toString());
        assertEquals(2, bothInFinetune.exitCode(), bothInFinetune::toString);
        assertTrue(bothInFinetune.err().contains("--column-mapping") && bothInFinetune.err().contains("--multi-turn"),
                bothInFinetune::toString);
        assertFalse(Files.exists(tmp.resolve("out")), "a refused run writes nothing");
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
