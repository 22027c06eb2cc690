package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.LoraModel;
import dev.lora4j.lora.Target;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import dev.lora4j.quant.QuantConfig;
import dev.lora4j.quant.QuantizedCheckpoint;
import dev.lora4j.quant.Quantizer;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GenerateCommandTest {
    private static final String PROMPT = "we know that 59 minus 38 is";

    /** What the Generator API gives: the new text without the stop token, as generate prints it. */
    private static String expected(LlamaModel model, String prompt, int maxNewTokens) throws Exception {
        HfTokenizer tokenizer = HfTokenizer.load(CliRun.ARITH_TINY);
        int[] ids = new Generator(model).temperature(0).maxNewTokens(maxNewTokens).stopTokens(Set.of(2))
                .generate(tokenizer.encode(prompt, true));
        int[] text = Arrays.stream(ids).filter(id -> id != 2).toArray();
        int[] promptIds = tokenizer.encode(prompt, true);
        int[] all = java.util.stream.IntStream.concat(Arrays.stream(promptIds), Arrays.stream(text)).toArray();
        // the continuation is the whole decode minus the prompt's decode (keeps the continuation's leading space)
        String whole = tokenizer.decode(all, true);
        String head = tokenizer.decode(promptIds, true);
        assertTrue(whole.startsWith(head), whole);
        return whole.substring(head.length()) + "\n";
    }

    @Test
    void greedyOutputEqualsTheGeneratorApis() throws Exception {
        CliRun run = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "--prompt", PROMPT, "--temperature", "0",
                "--max-new-tokens", "12");
        assertEquals(0, run.exitCode(), run::toString);
        String want = expected(ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults()), PROMPT, 12);
        assertEquals(want, run.out());
        assertTrue(want.strip().length() > 0, "the model generated nothing: " + run);
    }

    @Test
    void anEmptyPromptStartsFromBosAndEscapesInThePromptAreUnderstood() throws Exception {
        LlamaModel model = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        assertEquals(List.of(1), Arrays.stream(HfTokenizer.load(CliRun.ARITH_TINY).encode("", true)).boxed().toList(),
                "arith-tiny encodes an empty text as BOS alone");
        CliRun fromBos = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", "", "-t", "0", "--max-new-tokens", "10");
        assertEquals(0, fromBos.exitCode(), fromBos::toString);
        assertEquals(expected(model, "", 10), fromBos.out());
        assertTrue(fromBos.out().strip().length() > 0, fromBos::toString);

        CliRun escaped = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", "What is 59 minus 38?\\nAnswer:", "-t",
                "0", "--max-new-tokens", "6");
        assertEquals(0, escaped.exitCode(), escaped::toString);
        assertEquals(expected(model, "What is 59 minus 38?\nAnswer:", 6), escaped.out());
    }

    @Test
    void adaptersApplyAndPromptComesFromStdinWhenNotGiven(@TempDir Path tmp) throws Exception {
        Path adapter = MergeCommandTest.writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(4).targets(Target.ALL));
        InputStream stdin = System.in;
        CliRun run;
        try {
            System.setIn(new ByteArrayInputStream(PROMPT.getBytes(StandardCharsets.UTF_8)));
            run = CliRun.of("generate", "--model", CliRun.ARITH_TINY.toString(), "--adapter", "arith=" + adapter, "-t", "0",
                    "--max-new-tokens", "10");
        } finally {
            System.setIn(stdin);
        }
        assertEquals(0, run.exitCode(), run::toString);
        LlamaModel base = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        LoraModel.load(base, "arith", adapter);
        assertEquals(expected(base, PROMPT, 10), run.out());
    }

    @Test
    void severalAdaptersAreAllActive(@TempDir Path tmp) throws Exception {
        Path first = MergeCommandTest.writeAdapter(tmp.resolve("first"), LoraConfig.rank(2).targets(Target.QUERY));
        Path second = MergeCommandTest.writeAdapter(tmp.resolve("second"), LoraConfig.rank(3).targets(Target.MLP));
        CliRun run = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "--adapter", first.toString(), "--adapter",
                "mlp=" + second, "-p", PROMPT, "-t", "0", "--max-new-tokens", "10");
        assertEquals(0, run.exitCode(), run::toString);
        LlamaModel base = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        LoraModel lora = LoraModel.load(base, first);
        lora.loadAdapter("mlp", second);
        lora.setActive(LoraModel.DEFAULT_ADAPTER, "mlp");
        assertEquals(expected(base, PROMPT, 10), run.out());

        CliRun sameName = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "--adapter", "a=" + first, "--adapter",
                "a=" + second, "-p", PROMPT);
        assertEquals(2, sameName.exitCode(), sameName::toString);
        assertTrue(sameName.err().contains("'a' is used twice"), sameName::toString);
    }

    @Test
    void quantizedBasesGenerateAsTheirApis(@TempDir Path tmp) throws Exception {
        CliRun onTheFly = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "--quantize", "nf4", "-p", PROMPT, "-t", "0",
                "--max-new-tokens", "8");
        assertEquals(0, onTheFly.exitCode(), onTheFly::toString);
        LlamaModel model = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        Quantizer.quantize(model, QuantConfig.NF4);
        assertEquals(expected(model, PROMPT, 8), onTheFly.out());

        Path quantized = tmp.resolve("nf4");
        CliRun quantize = CliRun.of("quantize", CliRun.ARITH_TINY.toString(), quantized.toString(), "--type", "nf4-dq");
        assertEquals(0, quantize.exitCode(), quantize::toString);
        assertTrue(quantize.out().contains("as nf4-dq: 794,240 parameters"), quantize::toString);
        assertTrue(QuantizedCheckpoint.isQuantized(quantized));
        CliRun fromFolder = CliRun.of("generate", quantized.toString(), "-p", PROMPT, "-t", "0", "--max-new-tokens", "8");
        assertEquals(0, fromFolder.exitCode(), fromFolder::toString);
        assertEquals(expected(QuantizedCheckpoint.load(quantized), PROMPT, 8), fromFolder.out());

        CliRun again = CliRun.of("quantize", CliRun.ARITH_TINY.toString(), quantized.toString());
        assertEquals(2, again.exitCode(), again::toString);
        assertTrue(again.err().contains("DST"), again::toString);
        CliRun twice = CliRun.of("generate", quantized.toString(), "--quantize", "nf4", "-p", PROMPT);
        assertEquals(2, twice.exitCode(), twice::toString);
        assertTrue(twice.err().contains("--quantize") && twice.err().contains("quantized already"), twice::toString);
        CliRun badType = CliRun.of("quantize", CliRun.ARITH_TINY.toString(), tmp.resolve("x").toString(), "--type", "int4");
        assertEquals(2, badType.exitCode(), badType::toString);
        assertTrue(badType.err().contains("--type") && badType.err().contains("int4"), badType::toString);

        // merging onto a 4-bit base dequantizes it and writes 16-bit weights that load back
        Path adapter = MergeCommandTest.writeAdapter(tmp.resolve("adapter"), LoraConfig.rank(2).targets(Target.QUERY));
        Path merged = tmp.resolve("merged");
        CliRun merge = CliRun.of("merge", quantized.toString(), "--adapter", adapter.toString(), "--out", merged.toString());
        assertEquals(0, merge.exitCode(), merge::toString);
        assertFalse(QuantizedCheckpoint.isQuantized(merged));
        assertEquals(794_240L, ModelLoader.load(merged, ModelLoader.Options.defaults()).baseParameterCount());
    }

    @Test
    void badSamplingValuesNameTheOption() {
        CliRun topP = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", PROMPT, "--top-p", "0");
        assertEquals(2, topP.exitCode(), topP::toString);
        assertTrue(topP.err().contains("--top-p"), topP::toString);
        CliRun temperature = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", PROMPT, "--temperature", "-1");
        assertEquals(2, temperature.exitCode(), temperature::toString);
        assertTrue(temperature.err().contains("--temperature"), temperature::toString);
        CliRun adapter = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", PROMPT, "--adapter", "x=");
        assertEquals(2, adapter.exitCode(), adapter::toString);
        assertTrue(adapter.err().contains("--adapter"), adapter::toString);
    }

    @Test
    void stopStringEndsTheTextBeforeIt() throws Exception {
        CliRun full = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", PROMPT, "-t", "0", "--max-new-tokens", "16");
        assertEquals(0, full.exitCode(), full::toString);
        String text = full.out().substring(0, full.out().length() - 1);
        int newline = text.indexOf('\n');
        assertTrue(newline > 0, "the greedy continuation has no newline to stop at: " + full);
        CliRun cut = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", PROMPT, "-t", "0", "--max-new-tokens", "16",
                "--stop", "\\n");
        assertEquals(0, cut.exitCode(), cut::toString);
        assertEquals(text.substring(0, newline) + "\n", cut.out());
        CliRun empty = CliRun.of("generate", CliRun.ARITH_TINY.toString(), "-p", PROMPT, "--stop", "");
        assertEquals(2, empty.exitCode(), empty::toString);
        assertTrue(empty.err().contains("--stop"), empty::toString);
    }
}
