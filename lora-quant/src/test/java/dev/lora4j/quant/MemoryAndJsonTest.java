package dev.lora4j.quant;

import dev.lora4j.io.PythonJson;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class MemoryAndJsonTest {

    @Test
    void llama2SevenBillionFrozenWeights() {
        MemoryReport r = MemoryReport.of(LlamaConfig.llama2_7b());
        long total = 6_738_415_616L; // meta-llama/Llama-2-7b-hf
        assertEquals(total, r.quantizedParameters() + r.otherParameters());
        assertEquals(32L * (4 * 4096 * 4096 + 3 * 4096 * 11008), r.quantizedParameters());
        assertEquals(4 * total, r.f32Bytes());
        assertEquals(2 * total, r.bf16Bytes());
        long q = r.quantizedParameters();
        assertEquals(q / 2 + 4 * (q / 64) + 2 * r.otherParameters(), r.nf4Bytes());
        assertEquals(4.127, 8.0 * (r.nf4DqBytes() - 2 * r.otherParameters()) / q, 5e-4);
        // about 3.9 GB with double quantization against 13.5 GB in BF16
        assertEquals(3.88e9, r.nf4DqBytes(), 0.02e9);
    }

    @Test
    void reportMatchesTheBytesOfAQuantizedModel() {
        LlamaConfig config = LlamaConfig.builder().vocabSize(100).hiddenSize(64).intermediateSize(160).numHiddenLayers(2)
                .numAttentionHeads(4).numKeyValueHeads(2).maxPositionEmbeddings(32).rmsNormEps(1e-5).build();
        MemoryReport r = MemoryReport.of(config);
        assertEquals(r.f32Bytes(), LlamaModel.initialize(config, 1).baseByteSize());
        for (QuantConfig q : List.of(QuantConfig.NF4, QuantConfig.NF4_DQ)) {
            SplittableRandom rng = new SplittableRandom(4);
            LlamaModel model = LlamaModel.assemble(config, (name, shape) -> new Tensor(
                    BufferStorage.of(Tensor.normal(rng.split(), 0f, 0.02f, shape).data(), DType.BF16), shape).name(name));
            assertEquals(r.bf16Bytes(), model.baseByteSize());
            Quantizer.quantize(model, q);
            assertEquals(q.doubleQuant() ? r.nf4DqBytes() : r.nf4Bytes(), model.baseByteSize(), q.toString());
        }
    }

    @Test
    void floatsAreWrittenAsPythonReprWritesThem() {
        assertEquals("0.10000000149011612", PythonJson.floatRepr(0.1f));
        assertEquals("0.1", PythonJson.floatRepr(0.1));
        assertEquals("1e-05", PythonJson.floatRepr(1e-5));
        assertEquals("0.0001", PythonJson.floatRepr(1e-4));
        assertEquals("6.0", PythonJson.floatRepr(6.0));
        assertEquals("10000.0", PythonJson.floatRepr(1e4));
        assertEquals("1e+16", PythonJson.floatRepr(1e16));
        assertEquals("1234567890123456.8", PythonJson.floatRepr(1234567890123456.8));
        assertEquals("-2.5e-07", PythonJson.floatRepr(-2.5e-7));
        assertEquals("0.031876906752586365", PythonJson.floatRepr(0.031876906752586365));
        assertEquals("-0.0", PythonJson.floatRepr(-0.0));
    }

    @Test
    void compactAndIndentedDumpsFollowPython() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("b", List.of(1, 2));
        m.put("a", null);
        m.put("é", true);
        m.put("c", Map.of());
        assertEquals("{\"b\": [1, 2], \"a\": null, \"\\u00e9\": true, \"c\": {}}", PythonJson.dumps(m));
        assertEquals("{\n  \"a\": null,\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": {},\n  \"\\u00e9\": true\n}",
                PythonJson.dumps(m, 2, true));
    }
}
