package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.data.ArithmeticTasks;
import dev.lora4j.data.ColumnMapping;
import dev.lora4j.data.DataSplit;
import dev.lora4j.data.Example;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.data.InstructionDataset;
import dev.lora4j.data.InstructionDatasets;
import dev.lora4j.data.InstructionRecord;
import dev.lora4j.data.Packing;
import dev.lora4j.data.PromptStyle;
import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.model.ModelLoader;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FinetuneCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final String TEMPLATE = "{instruction}\\nAnswer:";

    /** Alpaca records of arith-tiny's question form: {"instruction": "What is 59 minus 38?", "input": "", "output": "21"}. */
    static Path writeArithmetic(Path file, int count, long seed) throws Exception {
        List<Map<String, String>> records = new ArrayList<>();
        for (ArithmeticTasks.Problem p : ArithmeticTasks.generate(count, 2, false, seed)) {
            Map<String, String> r = new LinkedHashMap<>();
            r.put("instruction", p.question());
            r.put("input", "");
            r.put("output", p.answerText());
            records.add(r);
        }
        Files.createDirectories(file.toAbsolutePath().getParent());
        JSON.writeValue(file.toFile(), records);
        return file;
    }

    /** 48 records, 6 held out: 42 training examples, 11 steps of 4, validation at steps 4, 8 and 11. */
    private static List<String> smallRun(Path data, Path out, String... extra) {
        List<String> args = new ArrayList<>(List.of("finetune", CliRun.ARITH_TINY.toString(), "--data", data.toString(),
                "--prompt-template", TEMPLATE, "--val-split", "0.125", "--batch-size", "4", "--micro-batch-size", "2",
                "--warmup-steps", "2", "--lr", "3e-3", "--eval-interval", "4", "--targets", "query,value,mlp", "--out",
                out.toString(), "-q"));
        args.addAll(List.of(extra));
        return args;
    }

    private static CliRun run(List<String> args) {
        return CliRun.of(args.toArray(String[]::new));
    }

    private static List<JsonNode> metrics(Path out) throws Exception {
        List<JsonNode> records = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("metrics.jsonl"))) {
            records.add(JSON.readTree(line));
        }
        return records;
    }

    /** The records without their timing fields, which differ from run to run. */
    private static List<JsonNode> withoutTiming(List<JsonNode> records) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode r : records) {
            ObjectNode copy = r.deepCopy();
            copy.remove("tokens_per_sec");
            copy.remove("elapsed_s");
            out.add(copy);
        }
        return out;
    }

    @Test
    void writesThePeftAdapterMetricsPlotAndSettings(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 48, 3);
        Path out = tmp.resolve("run");
        CliRun result = run(smallRun(data, out));
        assertEquals(0, result.exitCode(), result::toString);
        assertTrue(result.out().contains("finished 11 of 11 steps"), result::toString);
        assertTrue(result.out().contains("validation loss"), result::toString);

        // the adapter is a PEFT folder that loads onto the base, with the options' rank and modules
        LoraModel lora = LoraModel.load(ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults()),
                out.resolve("adapter"));
        assertEquals(8, lora.config(LoraModel.DEFAULT_ADAPTER).rank());
        assertEquals(java.util.Set.of("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"),
                java.util.Set.copyOf(lora.config(LoraModel.DEFAULT_ADAPTER).targetModules()));
        try (SafetensorsFile f = SafetensorsFile.open(out.resolve("adapter/adapter_model.safetensors"))) {
            float[] b = f.f32("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight").data();
            boolean trained = false;
            for (float v : b) {
                trained |= v != 0; // B starts at zero: non-zero means the optimizer updated it
            }
            assertTrue(trained);
        }

        // one record per step, then the validations at the eval interval and the last step
        List<JsonNode> records = metrics(out);
        List<Long> steps = records.stream().filter(r -> r.has("loss")).map(r -> r.get("step").asLong()).toList();
        assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L, 10L, 11L), steps);
        List<JsonNode> validations = records.stream().filter(r -> r.has("val_loss")).toList();
        assertEquals(List.of(4L, 8L, 11L), validations.stream().map(r -> r.get("step").asLong()).toList());
        for (JsonNode v : validations) {
            assertEquals(Math.exp(v.get("val_loss").asDouble()), v.get("val_ppl").asDouble(), 1e-9);
        }
        // at lr 3e-3 the new question form is learned quickly: validation loss falls
        assertTrue(validations.get(2).get("val_loss").asDouble() < validations.get(0).get("val_loss").asDouble(),
                validations::toString);

        BufferedImage png = ImageIO.read(out.resolve("loss.png").toFile());
        assertNotNull(png, "loss.png is not a PNG ImageIO reads");
        assertEquals(800, png.getWidth());

        JsonNode settings = JSON.readTree(out.resolve("finetune.json").toFile());
        assertEquals(Lora4j.version(), settings.get("lora4j_version").asText());
        assertEquals(3e-3, settings.at("/train/lr").asDouble());
        assertEquals(4, settings.at("/train/batch_size").asInt());
        assertEquals(0.0, settings.at("/lora/dropout").asDouble());
        assertEquals(CliRun.ARITH_TINY.toString(), JSON.readTree(out.resolve("adapter/adapter_config.json").toFile())
                .get("base_model_name_or_path").asText(), "the adapter names its base, as PEFT's does");
        assertEquals(42, settings.at("/data/train_examples").asInt());
        assertEquals(6, settings.at("/data/validation_examples").asInt());
        assertEquals(data.toAbsolutePath().normalize().toString(), settings.at("/data/data").asText());
        assertEquals(11, settings.at("/result/steps").asInt());
        assertEquals(validations.get(2).get("val_loss").asDouble(), settings.at("/result/val_loss").asDouble());
        assertTrue(Files.isDirectory(out.resolve("checkpoints/step-000011")));
    }

    @Test
    void anInterruptedRunResumedEqualsTheUninterruptedOne(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 48, 5);
        Path whole = tmp.resolve("whole");
        CliRun uninterrupted = run(smallRun(data, whole, "--save-interval", "3"));
        assertEquals(0, uninterrupted.exitCode(), uninterrupted::toString);

        Path parts = tmp.resolve("parts");
        CliRun first = run(smallRun(data, parts, "--save-interval", "3", "--stop-after-steps", "5"));
        assertEquals(0, first.exitCode(), first::toString);
        assertTrue(first.out().contains("stopped after 5 of 11 steps") && first.out().contains("--resume"), first::toString);
        assertFalse(Files.exists(parts.resolve("adapter")), "no final adapter before the run completes");
        assertEquals(5, metrics(parts).stream().filter(r -> r.has("loss")).count());

        // a run without --resume refuses the folder; --resume continues it
        CliRun refused = run(smallRun(data, parts, "--save-interval", "3"));
        assertEquals(2, refused.exitCode(), refused::toString);
        assertTrue(refused.err().contains("--out") && refused.err().contains("--resume"), refused::toString);
        CliRun second = run(smallRun(data, parts, "--save-interval", "3", "--resume"));
        assertEquals(0, second.exitCode(), second::toString);
        assertTrue(second.out().contains("finished 11 of 11 steps"), second::toString);

        assertEquals(withoutTiming(metrics(whole)), withoutTiming(metrics(parts)));
        assertArrayEquals(Files.readAllBytes(whole.resolve("adapter/adapter_model.safetensors")),
                Files.readAllBytes(parts.resolve("adapter/adapter_model.safetensors")));
        assertEquals(JSON.readTree(whole.resolve("finetune.json").toFile()).at("/result/val_loss"),
                JSON.readTree(parts.resolve("finetune.json").toFile()).at("/result/val_loss"));
    }

    @Test
    void resumingWithOtherLoraSettingsIsRefusedNamingThem(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 48, 5);
        Path out = tmp.resolve("run");
        assertEquals(0, run(smallRun(data, out, "--stop-after-steps", "2")).exitCode());
        CliRun other = run(smallRun(data, out, "--resume", "--alpha", "32"));
        assertEquals(2, other.exitCode(), other::toString);
        assertTrue(other.err().contains("lora.alpha (was 16.0, now 32.0)"), other::toString);
    }

    @Test
    void qloraTrainsAnAdapterOnAFourBitBase(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 16, 9);
        Path out = tmp.resolve("run");
        CliRun result = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--quantize", "nf4-dq", "--data", data.toString(),
                "--prompt-template", TEMPLATE, "--val-split", "0", "--batch-size", "4", "--micro-batch-size", "4",
                "--max-steps", "2", "--out", out.toString(), "-q");
        assertEquals(0, result.exitCode(), result::toString);
        assertTrue(result.out().contains("finished 2 of 2 steps"), result::toString);
        assertFalse(result.out().contains("validation loss"), result::toString);
        JsonNode settings = JSON.readTree(out.resolve("finetune.json").toFile());
        assertEquals("nf4-dq", settings.at("/model/quantize").asText());
        LoraModel.load(ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults()), out.resolve("adapter"));
    }

    /** The training examples finetune encodes from {@code records} with {@link #TEMPLATE} on arith-tiny (128 positions). */
    static List<Example> encodeLikeFinetune(List<InstructionRecord> records) throws Exception {
        return InstructionDataset.builder(HfTokenizer.load(CliRun.ARITH_TINY))
                .promptStyle(PromptStyle.custom("{instruction}\n{input}\nAnswer:", "{instruction}\nAnswer:"))
                .maxLength(128).build().encode(records).examples();
    }

    @Test
    void packingTrainsOnTheBlocksTheLibraryPacksAndShowsTheBarOnStderr(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 48, 7);
        Path out = tmp.resolve("run");
        // not quiet: the data summary and the progress bar go to the captured error writer
        CliRun result = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--data", data.toString(), "--prompt-template",
                TEMPLATE, "--val-split", "0.125", "--packing", "32", "--batch-size", "4", "--micro-batch-size", "2",
                "--warmup-steps", "1", "--lr", "3e-3", "--targets", "query,value", "--out", out.toString());
        assertEquals(0, result.exitCode(), result::toString);

        List<InstructionRecord> train = DataSplit.split(InstructionDatasets.load(data), 0.125, DataOptions.DEFAULT_DATA_SEED)
                .train();
        List<Example> examples = encodeLikeFinetune(train);
        int eos = HfTokenizer.load(CliRun.ARITH_TINY).eosId().orElseThrow();
        List<Example> blocks = Packing.pack(examples, 32, eos);
        assertEquals(42, examples.size());
        assertTrue(blocks.size() > 1 && blocks.size() < examples.size(), blocks::toString);
        assertTrue(result.err().contains(String.format(Locale.ROOT, "Packed the 42 training examples into %d blocks of 32 "
                + "tokens.", blocks.size())), result::toString);
        JsonNode settings = JSON.readTree(out.resolve("finetune.json").toFile());
        assertEquals(32, settings.at("/data/packing").asInt());
        assertEquals(blocks.size(), settings.at("/data/train_examples").asInt());
        assertEquals(32L * blocks.size(), settings.at("/data/train_tokens").asLong());
        assertEquals(blocks.stream().mapToLong(Example::supervisedTokens).sum(),
                settings.at("/data/train_supervised_tokens").asLong());

        // an epoch of optimizer steps of 4 blocks (the last filled from the next epoch), each block 32 tokens, no padding
        int steps = (blocks.size() + 3) / 4;
        List<JsonNode> records = metrics(out);
        List<JsonNode> stepRecords = records.stream().filter(r -> r.has("loss")).toList();
        assertEquals(steps, stepRecords.size(), records::toString);
        for (int i = 0; i < steps; i++) {
            assertEquals(i + 1, stepRecords.get(i).get("step").asLong());
            assertTrue(Double.isFinite(stepRecords.get(i).get("loss").asDouble()), stepRecords.get(i)::toString);
        }
        JsonNode last = stepRecords.get(steps - 1);
        assertEquals(steps * 4L * 32, last.get("tokens").asLong());
        assertTrue(result.out().contains("finished " + steps + " of " + steps + " steps"), result::toString);
        assertEquals(steps, settings.at("/result/steps").asInt());

        // the bar's final frame, once, with the last step's loss, learning rate and throughput; then the line ends
        String err = result.err();
        int end = err.lastIndexOf('\n');
        int start = err.lastIndexOf('\r', end);
        assertTrue(start >= 0 && end == err.length() - 1, result::toString);
        String frame = err.substring(start + 1, end);
        assertTrue(frame.startsWith("finetune") && frame.contains(steps + "/" + steps), frame);
        assertTrue(frame.contains(String.format(Locale.ROOT, "%,.0f tok/s loss %.4f lr %.1e",
                last.get("tokens_per_sec").asDouble(), last.get("loss").asDouble(), last.get("lr").asDouble())), frame);
        assertEquals(err.indexOf("\r" + frame), start, "the final frame is shown once:\n" + err);
    }

    @Test
    void multiTurnAndColumnMappingDataTrainOnTheRecordsTheLibraryLoads(@TempDir Path tmp) throws Exception {
        Path lima = EvaluateCommandTest.writeLima(tmp.resolve("lima.json"), 6);
        Path limaOut = tmp.resolve("lima-run");
        CliRun multi = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--data", lima.toString(), "--multi-turn",
                "--prompt-template", TEMPLATE, "--val-split", "0", "--batch-size", "4", "--micro-batch-size", "4",
                "--max-steps", "1", "--out", limaOut.toString(), "-q");
        assertEquals(0, multi.exitCode(), multi::toString);
        List<Example> turns = encodeLikeFinetune(InstructionDatasets.load(lima, InstructionDatasets.Conversations.ALL_TURNS));
        JsonNode limaSettings = JSON.readTree(limaOut.resolve("finetune.json").toFile());
        assertTrue(limaSettings.at("/data/multi_turn").asBoolean());
        assertEquals(12, limaSettings.at("/data/records").asInt());
        assertEquals(12, limaSettings.at("/data/train_examples").asInt());
        assertEquals(turns.stream().mapToLong(Example::length).sum(), limaSettings.at("/data/train_tokens").asLong());
        assertEquals(1, metrics(limaOut).stream().filter(r -> r.has("loss")).count());

        Path csv = Files.writeString(tmp.resolve("qa.csv"), "id,question,answer\n1,What is 12 plus 5?,17\n"
                + "2,\"What is 40 plus 8, in all?\",48\n3,What is 59 minus 38?,21\n");
        Path csvOut = tmp.resolve("csv-run");
        String mapping = "instruction=question,output=answer";
        CliRun mapped = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--data", csv.toString(), "--column-mapping",
                mapping, "--prompt-template", TEMPLATE, "--val-split", "0", "--batch-size", "2", "--micro-batch-size", "2",
                "--max-steps", "1", "--out", csvOut.toString(), "-q");
        assertEquals(0, mapped.exitCode(), mapped::toString);
        List<Example> rows = encodeLikeFinetune(InstructionDatasets.load(csv, ColumnMapping.parse(mapping)));
        JsonNode csvSettings = JSON.readTree(csvOut.resolve("finetune.json").toFile());
        assertEquals(mapping, csvSettings.at("/data/column_mapping").asText());
        assertEquals(3, csvSettings.at("/data/train_examples").asInt());
        assertEquals(rows.stream().mapToLong(Example::length).sum(), csvSettings.at("/data/train_tokens").asLong());
        assertEquals(rows.stream().mapToLong(Example::supervisedTokens).sum(),
                csvSettings.at("/data/train_supervised_tokens").asLong());
    }

    @Test
    void packingErrorsNameTheOptionAndTheRange(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 8, 2);
        String model = CliRun.ARITH_TINY.toString();
        for (String block : new String[] {"1", "129"}) {
            Path out = tmp.resolve("out-" + block);
            CliRun run = CliRun.of("finetune", model, "--data", data.toString(), "--prompt-template", TEMPLATE, "--val-split",
                    "0", "--packing", block, "--out", out.toString());
            assertEquals(2, run.exitCode(), run::toString);
            assertTrue(run.err().contains("--packing") && run.err().contains(block) && run.err().contains("[2, 128]")
                    && run.err().contains("max_position_embeddings"), run::toString);
            assertFalse(Files.exists(out), "a refused run writes nothing");
        }
        CliRun evaluate = CliRun.of("evaluate", model, "--tasks", "val_loss", "--data", data.toString(), "--prompt-template",
                TEMPLATE, "--packing", "32");
        assertEquals(2, evaluate.exitCode(), evaluate::toString);
        assertTrue(evaluate.err().contains("--packing") && evaluate.err().contains("drop --packing"), evaluate::toString);
    }

    @Test
    void badOptionValuesAreRefusedBeforeAnyDataIsRead(@TempDir Path tmp) {
        // the data file does not exist: an option error must come first, naming the option, the rule and the value
        String missing = tmp.resolve("not-read.json").toString();
        // option, value, the value as the message shows it, the rule
        String[][] cases = {
            {"--rank", "0", "0", "rank must be >= 1"}, {"--lr", "-1", "-1.0", "learningRate must be > 0"},
            {"--epochs", "0", "0", "epochs"}, {"--dropout", "1", "1.0", "in [0, 1)"},
            {"--batch-size", "0", "0", "globalBatchSize"}, {"--alpha", "0", "0.0", "alpha"}};
        for (String[] c : cases) {
            CliRun r = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--data", missing, c[0], c[1], "--out",
                    tmp.resolve("out").toString());
            assertEquals(2, r.exitCode(), r::toString);
            assertTrue(r.err().contains("Invalid value for option '" + c[0] + "' (" + c[2] + ")") && r.err().contains(c[3]),
                    r::toString);
            assertFalse(r.err().contains("not-read.json"), "no data was looked at: " + r);
        }
        assertFalse(Files.exists(tmp.resolve("out")), "a refused run writes nothing");
    }

    @Test
    void whenEveryRecordIsTooLongTheMessageSuggestsAShorterPromptOrALongerSequence(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 24, 5);
        CliRun r = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--data", data.toString(), "--max-seq-length", "4",
                "--out", tmp.resolve("out").toString(), "-q");
        assertEquals(1, r.exitCode(), r::toString);
        assertTrue(r.err().contains("records were skipped") && r.err().contains("--prompt-style plain")
                && r.err().contains("--prompt-template") && r.err().contains("--max-seq-length"), r::toString);
    }

    @Test
    void aFileGivenAsTheModelSaysWhatItIsAndWhatAModelFolderNeeds(@TempDir Path tmp) throws Exception {
        Path notes = Files.writeString(tmp.resolve("notes.txt"), "not a model");
        CliRun r = CliRun.of("generate", notes.toString(), "-p", "x");
        assertEquals(2, r.exitCode(), r::toString);
        assertTrue(r.err().contains("is a text file, not a model folder") && r.err().contains("config.json")
                && r.err().contains("model.safetensors") && r.err().contains("tokenizer.json"), r::toString);
        CliRun config = CliRun.of("generate", CliRun.ARITH_TINY.resolve("config.json").toString(), "-p", "x");
        assertTrue(config.err().contains("a model's config.json (give the folder that contains it)"), config::toString);
    }

    @Test
    void usageErrorsNameTheOption(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("train.json"), 48, 5);
        String model = CliRun.ARITH_TINY.toString();

        CliRun noData = CliRun.of("finetune", model, "--out", tmp.resolve("a").toString());
        assertEquals(2, noData.exitCode(), noData::toString);
        assertTrue(noData.err().contains("--data"), noData::toString);

        CliRun badMapping = CliRun.of("finetune", model, "--data", data.toString(), "--column-mapping", "instruction=q",
                "--out", tmp.resolve("b").toString());
        assertEquals(2, badMapping.exitCode(), badMapping::toString);
        assertTrue(badMapping.err().contains("--column-mapping") && badMapping.err().contains("output"), badMapping::toString);

        CliRun missingFile = CliRun.of("finetune", model, "--data", tmp.resolve("nope.json").toString(), "--out",
                tmp.resolve("c").toString());
        assertEquals(2, missingFile.exitCode(), missingFile::toString);
        assertTrue(missingFile.err().contains("--data") && missingFile.err().contains("no such file"), missingFile::toString);

        Path full = Files.createDirectories(tmp.resolve("full"));
        Files.writeString(full.resolve("notes.txt"), "mine");
        CliRun notEmpty = CliRun.of("finetune", model, "--data", data.toString(), "--out", full.toString());
        assertEquals(2, notEmpty.exitCode(), notEmpty::toString);
        assertTrue(notEmpty.err().contains("not empty") && notEmpty.err().contains("--force"), notEmpty::toString);

        CliRun nothingToResume = CliRun.of("finetune", model, "--data", data.toString(), "--out", full.toString(), "--resume");
        assertEquals(2, nothingToResume.exitCode(), nothingToResume::toString);
        assertTrue(nothingToResume.err().contains("no complete checkpoint"), nothingToResume::toString);

        CliRun tinySplit = CliRun.of("finetune", model, "--data", data.toString(), "--val-split", "0.001", "--out",
                tmp.resolve("d").toString());
        assertEquals(2, tinySplit.exitCode(), tinySplit::toString);
        assertTrue(tinySplit.err().contains("--val-split"), tinySplit::toString);

        CliRun inputTemplate = CliRun.of("finetune", model, "--data", data.toString(), "--prompt-template",
                "{instruction} {input}", "--out", tmp.resolve("e").toString());
        assertEquals(2, inputTemplate.exitCode(), inputTemplate::toString);
        assertTrue(inputTemplate.err().contains("--prompt-template-no-input"), inputTemplate::toString);

        assertEquals(List.of(), listOrEmpty(tmp.resolve("a")), "a refused run writes nothing");
    }

    @Test
    void aTemplateWithoutInputRefusesRecordsThatHaveOne(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("with-input.json");
        Files.writeString(data, "[{\"instruction\": \"Add\", \"input\": \"\", \"output\": \"3\"},"
                + " {\"instruction\": \"Add\", \"input\": \"1 and 2\", \"output\": \"3\"}]");
        CliRun run = CliRun.of("finetune", CliRun.ARITH_TINY.toString(), "--data", data.toString(), "--prompt-template",
                TEMPLATE, "--out", tmp.resolve("out").toString());
        assertEquals(2, run.exitCode(), run::toString);
        assertTrue(run.err().contains("record 2") && run.err().contains("{input}"), run::toString);
    }

    @Test
    void promptTemplatesAreUnescapedAndTheirInputPlaceholderFound() {
        assertEquals("{instruction}\nAnswer:\t\\", DataOptions.unescape("{instruction}\\nAnswer:\\t\\\\"));
        assertEquals("a\\qb", DataOptions.unescape("a\\qb"));
        assertTrue(DataOptions.mentionsInput("{instruction}\n{input}"));
        assertFalse(DataOptions.mentionsInput("{instruction} {{input}}"));
        assertTrue(DataOptions.mentionsInput("{{{input}"));
    }

    private static List<Path> listOrEmpty(Path dir) throws Exception {
        if (!Files.exists(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.toList();
        }
    }

    @Test
    void dryRunPrintsThePlanAndTrainsNothing(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("arith.json"), 48, 5);
        Path out = tmp.resolve("run");
        CliRun run = run(smallRun(data, out, "--dry-run"));
        assertEquals(0, run.exitCode(), run::toString);
        assertTrue(run.out().contains("activations + grads"), run::toString);
        assertTrue(run.out().contains("micro-batch 2 x "), run::toString);
        assertTrue(run.out().contains("fits: peak heap"), run::toString);
        assertFalse(Files.exists(out), "a dry run writes nothing");
        // checkpointing shrinks the activation row
        CliRun ckpt = run(smallRun(data, out, "--dry-run", "--activation-checkpointing"));
        assertEquals(0, ckpt.exitCode(), ckpt::toString);
        assertTrue(ckpt.out().contains("activation checkpointing on"), ckpt::toString);
    }

    @Test
    void dryRunOverTheHeapExitsOneNamingTheSettingsToChange(@TempDir Path tmp) throws Exception {
        Path data = writeArithmetic(tmp.resolve("arith.json"), 48, 5);
        CliRun run = run(smallRun(data, tmp.resolve("run"), "--dry-run", "--assume-max-heap", "100000"));
        assertEquals(1, run.exitCode(), run::toString);
        assertTrue(run.err().contains("exceeds the JVM's maximum heap 0.1 MiB"), run::toString);
        assertTrue(run.err().contains("activation checkpointing"), run::toString);
        assertTrue(run.err().contains("-Xmx"), run::toString);
        assertTrue(run.out().contains("predicted peak heap"), run::toString);
    }
}
