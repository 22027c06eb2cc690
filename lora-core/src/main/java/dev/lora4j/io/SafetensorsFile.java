package dev.lora4j.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A read-only, memory-mapped <a href="https://huggingface.co/docs/safetensors/index">safetensors</a>
 * file. Layout: an unsigned little-endian 64-bit header length {@code N}, {@code N} bytes of UTF-8
 * JSON mapping each tensor name to {@code {"dtype", "shape", "data_offsets": [begin, end]}} (plus
 * an optional {@code "__metadata__"} string map), then the data section, in which every tensor is
 * a little-endian, row-major byte range relative to the end of the header.
 *
 * <p>The whole header is validated by {@link #open} before anything is trusted: the length fits
 * in the file and under the reference implementation's 100 MB limit, every entry is well formed,
 * each byte range has exactly {@code numel * dtype size} bytes, and the ranges tile the data
 * section with no gap, no overlap and nothing left over. Tensor bytes are mapped lazily, one
 * mapping per tensor (so files of any size work; a single tensor is limited to 2 GiB, the size of
 * a Java buffer). Mappings stay valid after {@link #close()}, until the buffers are collected.
 * Thread-safe.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** Largest header the reference implementation accepts (its {@code MAX_HEADER_SIZE}). */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    static final String METADATA_KEY = "__metadata__";

    /** Valid safetensors dtypes that {@link DType} has no counterpart for. */
    private static final Set<String> OTHER_SPEC_DTYPES = Set.of("U16", "U32", "U64", "F8_E5M2", "F8_E4M3",
            "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F6_E2M3", "F6_E3M2", "F4", "C64");

    private static final JsonMapper JSON = JsonLimits.mapperBuilder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private final Path path;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    private final Map<String, ByteBuffer> mapped = new ConcurrentHashMap<>();
    private volatile boolean closed;

    private SafetensorsFile(Path path, FileChannel channel, long dataStart, Map<String, TensorInfo> tensors,
            Map<String, String> metadata) {
        this.path = path;
        this.channel = channel;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Opens and validates {@code path}.
     *
     * @throws NoSuchFileException if the file does not exist
     * @throws IOException if it cannot be read or is not a valid safetensors file; the message
     *     names the file, the tensor and the rule that failed
     */
    public static SafetensorsFile open(Path path) throws IOException {
        if (!Files.isRegularFile(path)) {
            throw new NoSuchFileException(path.toString(), null,
                    Files.exists(path) ? "not a regular file" : "safetensors file does not exist");
        }
        FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
        try {
            long fileSize = channel.size();
            if (fileSize < 8) {
                throw new IOException(path + ": file is " + fileSize + " bytes, shorter than the 8-byte header length;"
                        + " the file is truncated or not a safetensors file");
            }
            long headerLength = readFully(channel, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
                throw new IOException(path + ": header length " + Long.toUnsignedString(headerLength)
                        + " exceeds the safetensors limit of " + MAX_HEADER_BYTES
                        + " bytes; the file is corrupt or not a safetensors file");
            }
            if (headerLength > fileSize - 8) {
                throw new IOException(path + ": header length " + headerLength + " runs past the end of the file ("
                        + fileSize + " bytes); the file is truncated");
            }
            String header = decodeUtf8(path, readFully(channel, 8, (int) headerLength));
            long dataStart = 8 + headerLength;
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorInfo> tensors = parseHeader(path, header, metadata);
            checkLayout(path, tensors.values(), fileSize - dataStart);
            return new SafetensorsFile(path, channel, dataStart, Collections.unmodifiableMap(tensors),
                    Collections.unmodifiableMap(metadata));
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    /** Tensor names in header order. */
    public Set<String> names() {
        return tensors.keySet();
    }

    public int size() {
        return tensors.size();
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The {@code __metadata__} map in file order (empty if absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** @throws IllegalArgumentException if there is no such tensor, listing the closest names */
    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new IllegalArgumentException(missingTensorMessage(path.toString(), name, tensors.keySet()));
        }
        return info;
    }

    /** All entries in header order. */
    public Collection<TensorInfo> infos() {
        return tensors.values();
    }

    /** The tensor's raw little-endian bytes: a read-only view of the mapped file. */
    public ByteBuffer bytes(String name) {
        TensorInfo info = info(name);
        ensureOpen();
        if (info.byteLength() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + info.byteLength()
                    + " bytes; lora4j maps tensors of at most " + Integer.MAX_VALUE + " bytes (2 GiB) each");
        }
        ByteBuffer buffer = mapped.computeIfAbsent(name, n -> {
            try {
                return channel.map(FileChannel.MapMode.READ_ONLY, dataStart + info.begin(), info.byteLength());
            } catch (IOException e) {
                throw new UncheckedIOException(path + ": cannot map tensor '" + name + "'", e);
            }
        });
        return buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * A zero-copy tensor over the mapped bytes (F32, BF16 or F16); BF16/F16 are widened on each
     * read. The tensor is named after the entry.
     */
    public Tensor tensor(String name) {
        TensorInfo info = info(name);
        if (info.dtype() != DType.F32 && info.dtype() != DType.BF16 && info.dtype() != DType.F16) {
            throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + info.dtype()
                    + "; tensor() maps F32, BF16 or F16 weights (use longs() for integers or bytes() for raw data)");
        }
        return new Tensor(new BufferStorage(bytes(name), info.dtype()), info.shape()).name(name);
    }

    /** A heap F32 copy of a floating-point tensor (BF16/F16 widened exactly, F64 rounded). */
    public Tensor f32(String name) {
        TensorInfo info = info(name);
        ByteBuffer bytes = bytes(name);
        float[] values = new float[elementCount(info)];
        switch (info.dtype()) {
            case F32 -> bytes.asFloatBuffer().get(values);
            case BF16 -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = DType.bf16ToFloat(bytes.getShort(2 * i));
                }
            }
            case F16 -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = DType.f16ToFloat(bytes.getShort(2 * i));
                }
            }
            case F64 -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) bytes.getDouble(8 * i);
                }
            }
            default -> throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + info.dtype()
                    + ", not a floating-point type; use longs() for integer tensors");
        }
        return Tensor.of(values, info.shape()).name(name);
    }

    /** The elements of an integer (I64, I32, I16, I8, U8) or BOOL tensor, row-major. */
    public long[] longs(String name) {
        TensorInfo info = info(name);
        ByteBuffer bytes = bytes(name);
        long[] values = new long[elementCount(info)];
        switch (info.dtype()) {
            case I64 -> bytes.asLongBuffer().get(values);
            case I32 -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = bytes.getInt(4 * i);
                }
            }
            case I16 -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = bytes.getShort(2 * i);
                }
            }
            case I8 -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = bytes.get(i);
                }
            }
            case U8, BOOL -> {
                for (int i = 0; i < values.length; i++) {
                    values[i] = bytes.get(i) & 0xff;
                }
            }
            default -> throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + info.dtype()
                    + ", not an integer type; use tensor() or f32() for floating-point tensors");
        }
        return values;
    }

    /** Closes the file; buffers and tensors already handed out stay readable. */
    @Override
    public void close() throws IOException {
        closed = true;
        channel.close();
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + path + ", " + tensors.size() + " tensors]";
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException(path + " is closed");
        }
    }

    private int elementCount(TensorInfo info) {
        if (info.numel() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(path + ": tensor '" + info.name() + "' has " + info.numel()
                    + " elements, more than a Java array holds; read it through tensor() or bytes()");
        }
        return (int) info.numel();
    }

    // ---------------------------------------------------------------- header validation

    private static ByteBuffer readFully(FileChannel channel, long position, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(length);
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, position + buffer.position()) < 0) {
                throw new IOException("unexpected end of file at byte " + (position + buffer.position()));
            }
        }
        return buffer.flip();
    }

    private static String decodeUtf8(Path path, ByteBuffer bytes) throws IOException {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(bytes)
                    .toString();
        } catch (CharacterCodingException e) {
            throw new IOException(path + ": header is not valid UTF-8; the file is corrupt or not a safetensors file", e);
        }
    }

    private static Map<String, TensorInfo> parseHeader(Path path, String header, Map<String, String> metadata)
            throws IOException {
        if (!header.startsWith("{")) {
            throw new IOException(path + ": header does not start with '{' (found '"
                    + abbreviate(header, 20) + "'); the file is corrupt or not a safetensors file");
        }
        JsonNode root;
        try {
            root = JSON.readTree(header);
        } catch (JsonProcessingException e) {
            throw new IOException(path + ": header is not valid JSON " + JsonLimits.describe(e), e);
        }
        if (root == null || !root.isObject()) {
            throw new IOException(path + ": header is not a JSON object");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            String name = field.getKey();
            JsonNode entry = field.getValue();
            if (name.equals(METADATA_KEY)) {
                parseMetadata(path, entry, metadata);
            } else {
                tensors.put(name, parseEntry(path, name, entry));
            }
        }
        return tensors;
    }

    private static void parseMetadata(Path path, JsonNode node, Map<String, String> metadata) throws IOException {
        if (!node.isObject()) {
            throw new IOException(path + ": " + METADATA_KEY + " must be an object of strings, found " + node.getNodeType());
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw new IOException(path + ": " + METADATA_KEY + " value of '" + e.getKey()
                        + "' must be a string, found " + e.getValue().getNodeType() + " " + abbreviate(e.getValue().toString(), 40));
            }
            metadata.put(e.getKey(), e.getValue().textValue());
        }
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode entry) throws IOException {
        String where = path + ": tensor '" + name + "'";
        if (!entry.isObject()) {
            throw new IOException(where + " must map to {dtype, shape, data_offsets}, found " + entry.getNodeType());
        }
        JsonNode dtypeNode = entry.get("dtype");
        JsonNode shapeNode = entry.get("shape");
        JsonNode offsetsNode = entry.get("data_offsets");
        for (String key : List.of("dtype", "shape", "data_offsets")) {
            if (entry.get(key) == null) {
                throw new IOException(where + " has no \"" + key + "\" (each entry needs dtype, shape and data_offsets)");
            }
        }
        if (!dtypeNode.isTextual()) {
            throw new IOException(where + ": dtype must be a string, found " + dtypeNode);
        }
        DType dtype = parseDType(dtypeNode.textValue());
        if (dtype == null) {
            throw new IOException(where + " has " + (OTHER_SPEC_DTYPES.contains(dtypeNode.textValue())
                    ? "dtype '" + dtypeNode.textValue() + "', which lora4j does not read"
                    : "unknown dtype '" + dtypeNode.textValue() + "'") + "; supported: " + Arrays.toString(DType.values()));
        }
        if (!shapeNode.isArray()) {
            throw new IOException(where + ": shape must be an array of non-negative integers, found " + shapeNode);
        }
        int[] shape = new int[shapeNode.size()];
        for (int d = 0; d < shape.length; d++) {
            JsonNode dim = shapeNode.get(d);
            if (!dim.isIntegralNumber() || !dim.canConvertToLong() || dim.longValue() < 0
                    || dim.longValue() > Integer.MAX_VALUE) {
                throw new IOException(where + ": shape " + shapeNode + " must hold integers in [0, " + Integer.MAX_VALUE + "]");
            }
            shape[d] = dim.intValue();
        }
        if (!offsetsNode.isArray() || offsetsNode.size() != 2) {
            throw new IOException(where + ": data_offsets must be [begin, end], found " + offsetsNode);
        }
        long[] offsets = new long[2];
        for (int i = 0; i < 2; i++) {
            JsonNode o = offsetsNode.get(i);
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.longValue() < 0) {
                throw new IOException(where + ": data_offsets " + offsetsNode + " must be non-negative integers");
            }
            offsets[i] = o.longValue();
        }
        if (offsets[0] > offsets[1]) {
            throw new IOException(where + ": data_offsets " + offsetsNode + " has begin > end");
        }
        long numel = 1;
        long expectedBytes;
        try {
            for (int dim : shape) {
                numel = Math.multiplyExact(numel, dim);
            }
            expectedBytes = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new IOException(where + ": shape " + shapeNode + " overflows 64-bit byte counts");
        }
        long length = offsets[1] - offsets[0];
        if (length != expectedBytes) {
            throw new IOException(where + ": data_offsets " + offsetsNode + " span " + length + " bytes but "
                    + dtype + " " + shapeNode + " needs " + numel + " x " + dtype.byteSize() + " = " + expectedBytes);
        }
        return new TensorInfo(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static DType parseDType(String name) {
        for (DType t : DType.values()) {
            if (t.safetensorsName().equals(name)) {
                return t;
            }
        }
        return null;
    }

    /** The ranges, taken in offset order, must start at 0, abut, and end exactly at the data end. */
    private static void checkLayout(Path path, Collection<TensorInfo> infos, long dataLength) throws IOException {
        List<TensorInfo> byOffset = new ArrayList<>(infos);
        byOffset.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long covered = 0;
        TensorInfo previous = null;
        for (TensorInfo t : byOffset) {
            if (t.begin() < covered) {
                throw new IOException(path + ": tensor '" + t.name() + "' [" + t.begin() + ", " + t.end()
                        + ") overlaps tensor '" + previous.name() + "' [" + previous.begin() + ", " + previous.end()
                        + "); data_offsets must not overlap");
            }
            if (t.begin() > covered) {
                throw new IOException(path + ": data section bytes [" + covered + ", " + t.begin()
                        + ") belong to no tensor (gap before '" + t.name() + "'); tensors must be contiguous");
            }
            covered = t.end();
            previous = t;
        }
        if (covered > dataLength) {
            throw new IOException(path + ": tensor '" + previous.name() + "' ends at data byte " + covered
                    + " but the data section holds only " + dataLength + " bytes; the file is truncated");
        }
        if (covered < dataLength) {
            throw new IOException(path + ": the data section holds " + dataLength + " bytes but the tensors cover "
                    + covered + "; " + (dataLength - covered) + " trailing bytes belong to no tensor");
        }
    }

    private static String abbreviate(String s, int max) {
        return s.length() <= max ? s : s.substring(0, max) + "...";
    }

    // ---------------------------------------------------------------- error messages

    /**
     * {@code source: no tensor named 'x' (it has 58 tensors, e.g. a, b, c)}, where the examples are
     * the names closest to {@code wanted} by edit distance, so a wrong prefix or a typo is obvious.
     */
    static String missingTensorMessage(String source, String wanted, Collection<String> names) {
        StringBuilder sb = new StringBuilder(source).append(": no tensor named '").append(wanted).append("' (it has ")
                .append(names.size()).append(names.size() == 1 ? " tensor" : " tensors");
        if (!names.isEmpty()) {
            List<String> closest = new ArrayList<>(names);
            Map<String, Integer> distance = new LinkedHashMap<>();
            for (String n : closest) {
                distance.put(n, editDistance(wanted, n));
            }
            closest.sort(Comparator.comparingInt(distance::get));
            sb.append(", e.g. ").append(String.join(", ", closest.subList(0, Math.min(3, closest.size()))));
        }
        return sb.append(')').toString();
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitution = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(substitution, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] swap = prev;
            prev = cur;
            cur = swap;
        }
        return prev[b.length()];
    }
}
