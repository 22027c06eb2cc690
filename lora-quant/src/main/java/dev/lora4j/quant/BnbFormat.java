package dev.lora4j.quant;

import dev.lora4j.io.PythonJson;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.lora4j.io.Checkpoint;
import dev.lora4j.io.SafetensorsWriter;
import dev.lora4j.io.TensorInfo;
import dev.lora4j.tensor.DType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One 4-bit weight in the safetensors layout that bitsandbytes' {@code Linear4bit} saves through
 * Hugging Face ({@code QuantState.as_dict(packed=True)}), for a weight named {@code P.weight}:
 *
 * <table>
 *   <caption>tensors</caption>
 *   <tr><th>key</th><th>dtype</th><th>shape</th><th>content</th></tr>
 *   <tr><td>{@code P.weight}</td><td>U8</td><td>[ceil(n/2), 1]</td><td>packed codes, element 2k high nibble</td></tr>
 *   <tr><td>{@code P.weight.absmax}</td><td>F32, or U8 when nested</td><td>[blocks]</td><td>per-block absmax</td></tr>
 *   <tr><td>{@code P.weight.quant_map}</td><td>F32</td><td>[16]</td><td>the 4-bit code table</td></tr>
 *   <tr><td>{@code P.weight.nested_absmax}</td><td>F32</td><td>[ceil(blocks/256)]</td><td>double quantization only</td></tr>
 *   <tr><td>{@code P.weight.nested_quant_map}</td><td>F32</td><td>[256]</td><td>double quantization only</td></tr>
 *   <tr><td>{@code P.weight.quant_state.bitsandbytes__nf4}</td><td>U8</td><td>[len]</td><td>UTF-8 JSON (below)</td></tr>
 * </table>
 *
 * The JSON is Python's {@code json.dumps} of the non-tensor items in {@code as_dict} order:
 * {@code {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [out, in]}}, plus
 * {@code "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": <float>} when nested.
 *
 * <p>Reading validates every size against the JSON's shape and blocksize from the headers alone,
 * before allocating anything, and names the tensor and the mismatch in each error.
 */
final class BnbFormat {
    static final String QUANT_STATE = ".quant_state.bitsandbytes__";
    /** The keys bitsandbytes' QuantState.from_dict accepts. */
    private static final Set<String> JSON_KEYS = Set.of("quant_type", "blocksize", "dtype", "shape", "nested_blocksize",
            "nested_dtype", "nested_offset");
    /** A quant_state JSON is a few hundred bytes; anything far larger is not one. */
    private static final long MAX_JSON_BYTES = 1 << 16;
    private static final JsonMapper JSON = dev.lora4j.io.JsonLimits.mapperBuilder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private BnbFormat() {
    }

    /** The quant-state key of {@code weightName} in the checkpoint, or null if the weight is not 4-bit. */
    static String quantStateKey(Checkpoint checkpoint, String weightName) {
        String prefix = weightName + ".quant_state.";
        List<String> keys = new ArrayList<>();
        for (String n : checkpoint.names()) {
            if (n.startsWith(prefix)) {
                keys.add(n);
            }
        }
        if (keys.size() > 1) {
            throw new IllegalArgumentException(source(checkpoint) + ": tensor " + weightName + " has " + keys.size()
                    + " quant states " + keys + "; bitsandbytes expects exactly one");
        }
        return keys.isEmpty() ? null : keys.get(0);
    }

    /** The auxiliary tensors of a 4-bit weight that this format reads (for unused-tensor bookkeeping). */
    static List<String> auxiliaryKeys(String weightName) {
        return List.of(weightName + ".absmax", weightName + ".quant_map", weightName + ".nested_absmax",
                weightName + ".nested_quant_map");
    }

    /**
     * Reads the 4-bit weight {@code weightName} whose quant state is {@code stateKey}; its
     * quant_state shape must equal {@code expectedShape}.
     */
    static QuantizedStorage read(Checkpoint checkpoint, String weightName, String stateKey, int[] expectedShape) {
        String src = source(checkpoint);
        String where = src + ": tensor " + weightName;
        String suffix = stateKey.substring((weightName + ".quant_state.").length());
        if (!suffix.startsWith("bitsandbytes__")) {
            throw new IllegalArgumentException(where + ": quant state key " + stateKey + " does not end in "
                    + "bitsandbytes__nf4 or bitsandbytes__fp4");
        }
        String typeName = suffix.substring("bitsandbytes__".length());
        QuantType type;
        try {
            type = QuantType.parse(typeName);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": unknown quant type '" + typeName + "' in " + stateKey
                    + "; bitsandbytes 4-bit weights are nf4 or fp4");
        }
        TensorInfo stateInfo = checkpoint.info(stateKey);
        if (stateInfo.dtype() != DType.U8 || stateInfo.shape().length != 1 || stateInfo.numel() > MAX_JSON_BYTES) {
            throw new IllegalArgumentException(src + ": tensor " + stateKey + " must be U8 [length] holding JSON, found "
                    + stateInfo.dtype() + Arrays.toString(stateInfo.shape()));
        }
        byte[] stateBytes = bytes(checkpoint, stateKey, (int) stateInfo.numel());
        JsonNode state;
        try {
            state = JSON.readTree(new String(stateBytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(src + ": tensor " + stateKey + " is not valid JSON: " + e.getOriginalMessage());
        }
        if (state == null || !state.isObject()) {
            throw new IllegalArgumentException(src + ": tensor " + stateKey + " must hold a JSON object, found " + state);
        }
        for (Map.Entry<String, JsonNode> e : state.properties()) {
            if (!JSON_KEYS.contains(e.getKey())) {
                throw new IllegalArgumentException(src + ": " + stateKey + " has the unknown key \"" + e.getKey()
                        + "\"; bitsandbytes' quant state holds " + JSON_KEYS);
            }
        }
        String stateType = text(state, "quant_type", src, stateKey);
        if (!stateType.equals(type.bnbName())) {
            throw new IllegalArgumentException(src + ": " + stateKey + " says quant_type \"" + stateType
                    + "\" but its key names " + type.bnbName());
        }
        long blocksize = integer(state, "blocksize", src, stateKey);
        try {
            QuantConfig.checkBlocksize("blocksize", blocksize);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(src + ": " + stateKey + ": " + e.getMessage());
        }
        DType sourceDType = torchDType(text(state, "dtype", src, stateKey), src + ": " + stateKey + ": dtype");
        JsonNode shapeNode = state.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new IllegalArgumentException(src + ": " + stateKey + " has no \"shape\" list (found " + shapeNode + ")");
        }
        int[] shape = new int[shapeNode.size()];
        for (int d = 0; d < shape.length; d++) {
            JsonNode dim = shapeNode.get(d);
            if (!dim.isIntegralNumber() || !dim.canConvertToInt() || dim.intValue() < 0) {
                throw new IllegalArgumentException(src + ": " + stateKey + ": shape " + shapeNode + " must hold non-negative integers");
            }
            shape[d] = dim.intValue();
        }
        if (!Arrays.equals(shape, expectedShape)) {
            throw new IllegalArgumentException(where + ": quant_state shape " + Arrays.toString(shape)
                    + " disagrees with the shape " + Arrays.toString(expectedShape) + " that config.json implies");
        }
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        long blocks = (n + blocksize - 1) / blocksize;
        long packedBytes = (n + 1) / 2;
        expect(checkpoint, weightName, DType.U8, new long[] {packedBytes, 1},
                "packed codes of " + Arrays.toString(shape) + " = " + n + " elements, two per byte");
        boolean nested = state.has("nested_blocksize") || state.has("nested_offset") || state.has("nested_dtype");
        boolean nestedTensors = checkpoint.contains(weightName + ".nested_absmax")
                || checkpoint.contains(weightName + ".nested_quant_map");
        if (nested != nestedTensors) {
            throw new IllegalArgumentException(where + ": " + (nested ? stateKey + " describes double quantization but "
                    + weightName + ".nested_absmax / .nested_quant_map are missing" : weightName
                    + ".nested_absmax / .nested_quant_map are present but " + stateKey + " has no nested_* entries"));
        }
        expect(checkpoint, weightName + ".absmax", nested ? DType.U8 : DType.F32, new long[] {blocks},
                (nested ? "8-bit codes of the absmax of " : "absmax of ") + blocks + " blocks of " + blocksize);
        expect(checkpoint, weightName + ".quant_map", DType.F32, new long[] {16}, "the 16-value " + type.bnbName() + " table");
        long nestedBlocksize = 0;
        double offset = 0;
        if (nested) {
            nestedBlocksize = integer(state, "nested_blocksize", src, stateKey);
            try {
                QuantConfig.checkBlocksize("nested_blocksize", nestedBlocksize);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(src + ": " + stateKey + ": " + e.getMessage());
            }
            String nestedDType = text(state, "nested_dtype", src, stateKey);
            if (!nestedDType.equals("float32")) {
                throw new IllegalArgumentException(src + ": " + stateKey + ": nested_dtype \"" + nestedDType
                        + "\" is not supported; bitsandbytes double-quantizes float32 absmax");
            }
            JsonNode offsetNode = state.get("nested_offset");
            if (offsetNode == null || !offsetNode.isNumber()) {
                throw new IllegalArgumentException(src + ": " + stateKey + ": nested_offset must be a number, found " + offsetNode);
            }
            offset = offsetNode.doubleValue();
            long nestedBlocks = (blocks + nestedBlocksize - 1) / nestedBlocksize;
            expect(checkpoint, weightName + ".nested_absmax", DType.F32, new long[] {nestedBlocks},
                    "absmax of " + nestedBlocks + " blocks of " + nestedBlocksize + " absmax codes");
            expect(checkpoint, weightName + ".nested_quant_map", DType.F32, new long[] {256}, "the 256-value 8-bit map");
        }
        byte[] packed = bytes(checkpoint, weightName, (int) packedBytes);
        float[] quantMap = floats(checkpoint, weightName + ".quant_map", 16);
        checkQuantMap(where, type, quantMap);
        if (!nested) {
            float[] absmax = floats(checkpoint, weightName + ".absmax", (int) blocks);
            return new QuantizedStorage(type, (int) blocksize, shape, sourceDType, packed, absmax, null, quantMap, stateBytes);
        }
        byte[] codes = bytes(checkpoint, weightName + ".absmax", (int) blocks);
        float[] nestedAbsmax = floats(checkpoint, weightName + ".nested_absmax",
                (int) ((blocks + nestedBlocksize - 1) / nestedBlocksize));
        float[] map = floats(checkpoint, weightName + ".nested_quant_map", 256);
        if (Arrays.equals(map, QuantMaps.dynamicSignedShared())) {
            map = QuantMaps.dynamicSignedShared();
        }
        QuantizedStorage.NestedAbsmax n2 = new QuantizedStorage.NestedAbsmax(codes, nestedAbsmax, map, (int) nestedBlocksize,
                offset);
        return new QuantizedStorage(type, (int) blocksize, shape, sourceDType, packed, null, n2, quantMap, stateBytes);
    }

    /** bitsandbytes decodes with its own table whatever quant_map says; a different table means a foreign file. */
    private static void checkQuantMap(String where, QuantType type, float[] quantMap) {
        float[] expected = type.codeShared();
        for (int i = 0; i < 16; i++) {
            if (Math.abs(quantMap[i] - expected[i]) > 1e-6f) {
                throw new IllegalArgumentException(where + ".quant_map[" + i + "] is " + quantMap[i] + " but bitsandbytes' "
                        + type.bnbName() + " table has " + expected[i] + "; the weight was not quantized by bitsandbytes "
                        + "with this type");
            }
        }
    }

    /** Adds the tensors of one 4-bit weight to {@code writer}. */
    static void write(SafetensorsWriter writer, String weightName, QuantizedStorage q) {
        writer.add(weightName, DType.U8, new int[] {q.packed().length, 1}, q.packed());
        if (q.isDoubleQuant()) {
            QuantizedStorage.NestedAbsmax n = q.nested();
            writer.add(weightName + ".absmax", DType.U8, new int[] {n.codes().length}, n.codes());
            writer.add(weightName + ".nested_absmax", DType.F32, new int[] {n.absmax().length}, littleEndian(n.absmax()));
            writer.add(weightName + ".nested_quant_map", DType.F32, new int[] {256}, littleEndian(n.map()));
        } else {
            writer.add(weightName + ".absmax", DType.F32, new int[] {q.absmax().length}, littleEndian(q.absmax()));
        }
        writer.add(weightName + ".quant_map", DType.F32, new int[] {16}, littleEndian(q.quantMap()));
        byte[] json = q.storedQuantState() != null ? q.storedQuantState() : quantStateJson(q).getBytes(StandardCharsets.UTF_8);
        writer.add(weightName + QUANT_STATE + q.type().bnbName(), DType.U8, new int[] {json.length}, json);
    }

    /** The JSON bitsandbytes packs into the quant_state tensor, in its key order and Python's formatting. */
    static String quantStateJson(QuantizedStorage q) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("quant_type", q.type().bnbName());
        m.put("blocksize", q.blocksize());
        m.put("dtype", torchName(q.sourceDType()));
        List<Integer> shape = new ArrayList<>();
        for (int d : q.shape()) {
            shape.add(d);
        }
        m.put("shape", shape);
        if (q.isDoubleQuant()) {
            m.put("nested_blocksize", q.nested().blocksize());
            m.put("nested_dtype", "float32");
            m.put("nested_offset", q.nested().offset());
        }
        return PythonJson.dumps(m);
    }

    /** PyTorch's name of a dtype, as {@code str(dtype).strip("torch.")} gives it. */
    static String torchName(DType dtype) {
        return switch (dtype) {
            case F32 -> "float32";
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> throw new IllegalArgumentException("no 16/32-bit float dtype: " + dtype);
        };
    }

    static DType torchDType(String name, String where) {
        return switch (name) {
            case "float32" -> DType.F32;
            case "bfloat16" -> DType.BF16;
            case "float16" -> DType.F16;
            default -> throw new IllegalArgumentException(where + " \"" + name
                    + "\" is not one of float32, bfloat16, float16");
        };
    }

    private static void expect(Checkpoint checkpoint, String name, DType dtype, long[] shape, String meaning) {
        String src = source(checkpoint);
        if (!checkpoint.contains(name)) {
            throw new IllegalArgumentException(src + ": tensor " + name + " is missing; a bitsandbytes 4-bit weight needs it ("
                    + meaning + ")");
        }
        TensorInfo info = checkpoint.info(name);
        int[] actual = info.shape();
        boolean same = actual.length == shape.length;
        for (int d = 0; same && d < shape.length; d++) {
            same = actual[d] == shape[d];
        }
        if (info.dtype() != dtype || !same) {
            throw new IllegalArgumentException(src + ": tensor " + name + " is " + info.dtype() + Arrays.toString(actual)
                    + " but should be " + dtype + Arrays.toString(shape) + " (" + meaning + ")"
                    + (info.numel() < Arrays.stream(shape).reduce(1, (a, b) -> a * b) ? "; the tensor is truncated" : ""));
        }
    }

    private static byte[] bytes(Checkpoint checkpoint, String name, int length) {
        byte[] out = new byte[length];
        checkpoint.bytes(name).get(out);
        return out;
    }

    private static float[] floats(Checkpoint checkpoint, String name, int length) {
        float[] out = new float[length];
        checkpoint.bytes(name).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out);
        return out;
    }

    private static byte[] littleEndian(float[] values) {
        ByteBuffer buf = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.asFloatBuffer().put(values);
        return buf.array();
    }

    private static String text(JsonNode state, String key, String src, String stateKey) {
        JsonNode v = state.get(key);
        if (v == null || !v.isTextual()) {
            throw new IllegalArgumentException(src + ": " + stateKey + ": \"" + key + "\" must be a string, found " + v);
        }
        return v.textValue();
    }

    private static long integer(JsonNode state, String key, String src, String stateKey) {
        JsonNode v = state.get(key);
        if (v == null || !v.isIntegralNumber() || !v.canConvertToLong()) {
            throw new IllegalArgumentException(src + ": " + stateKey + ": \"" + key + "\" must be an integer, found " + v);
        }
        return v.longValue();
    }

    private static String source(Checkpoint checkpoint) {
        return String.valueOf(checkpoint.source().getFileName());
    }
}
