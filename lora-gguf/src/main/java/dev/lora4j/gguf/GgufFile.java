package dev.lora4j.gguf;

import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Storage;
import java.io.IOException;
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
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A read-only GGUF file (the container of llama.cpp, {@code ggml/include/gguf.h}), validated on
 * {@link #open} before anything is trusted. Layout, all little-endian:
 *
 * <pre>
 * "GGUF"  u32 version (2 or 3)  u64 n_tensors  u64 n_kv
 * n_kv ×      { string key; u32 value_type; value }          string = u64 length + UTF-8
 * n_tensors × { string name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type; u64 offset }
 * zero padding to general.alignment (default 32)
 * data section: each tensor at data_start + offset
 * </pre>
 *
 * Every count and length is checked against the bytes left in the file before anything is
 * allocated, so a corrupt or hostile header is refused with a message naming the file, the field
 * and the rule, never an OutOfMemoryError. Tensor bytes are memory-mapped on demand, one mapping
 * per tensor (a single tensor is limited to 2 GiB, the size of a Java buffer); the mappings stay
 * valid after {@link #close()}. Thread-safe.
 */
public final class GgufFile implements AutoCloseable {
    public static final int MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
    public static final int DEFAULT_ALIGNMENT = 32;
    /** ggml's GGML_MAX_NAME (64, including the terminating NUL). */
    public static final int MAX_NAME_BYTES = 63;
    static final int MAX_DIMS = 4;

    private final Path path;
    private final FileChannel channel;
    private final int version;
    private final Map<String, GgufValue> metadata;
    private final Map<String, GgufTensorInfo> tensors;
    private final int alignment;
    private final long dataStart;
    /** The shards of a split model ({@link GgufSplit#open}) holding tensors by name; empty for one file. */
    private final Map<String, GgufFile> shardOf;
    private final List<GgufFile> shards;

    private GgufFile(Path path, FileChannel channel, int version, Map<String, GgufValue> metadata,
                     Map<String, GgufTensorInfo> tensors, int alignment, long dataStart) {
        this.path = path;
        this.channel = channel;
        this.version = version;
        this.metadata = metadata;
        this.tensors = tensors;
        this.alignment = alignment;
        this.dataStart = dataStart;
        this.shardOf = Map.of();
        this.shards = List.of();
    }

    /**
     * A split model as one file: the metadata of {@code first} (split keys included) and the
     * tensors of every shard, each read from its own shard. Closing it closes the shards.
     */
    GgufFile(GgufFile first, List<GgufFile> shards, Map<String, GgufTensorInfo> tensors, Map<String, GgufFile> shardOf) {
        this.path = first.path;
        this.channel = first.channel;
        this.version = first.version;
        this.metadata = first.metadata;
        this.tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
        this.alignment = first.alignment;
        this.dataStart = first.dataStart;
        this.shardOf = Map.copyOf(shardOf);
        this.shards = List.copyOf(shards);
    }

    /** The files of a split model (first file first), or just this file. */
    public List<Path> files() {
        return shards.isEmpty() ? List.of(path) : shards.stream().map(GgufFile::path).toList();
    }

    /**
     * Opens and validates {@code path}.
     *
     * @throws NoSuchFileException when it does not exist
     * @throws IOException when it cannot be read or is not a valid GGUF file (the message names the rule)
     */
    public static GgufFile open(Path path) throws IOException {
        if (!Files.isRegularFile(path)) {
            throw new NoSuchFileException(path.toString(), null, Files.exists(path) ? "not a regular file"
                    : "GGUF file does not exist");
        }
        FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
        try {
            Reader r = new Reader(path, channel);
            if (r.fileSize < 24) {
                throw new IOException(path + ": file is " + r.fileSize + " bytes, shorter than a GGUF header (24 bytes); "
                        + "the file is truncated or not a GGUF file");
            }
            int magic = r.i32("magic");
            if (magic != MAGIC) {
                throw new IOException(path + ": not a GGUF file: it starts with bytes " + hex(magic)
                        + " instead of \"GGUF\"" + (Integer.reverseBytes(magic) == MAGIC ? " (a big-endian GGUF, which "
                        + "lora4j does not read)" : ""));
            }
            long version = r.u32("version");
            if (version != 2 && version != 3) {
                throw new IOException(path + ": GGUF version " + version + " is not supported; versions 2 and 3 are "
                        + "(version 1 files are from 2023 and need re-converting)");
            }
            long nTensors = r.i64("tensor count");
            long nKv = r.i64("metadata count");
            // each metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8 + 4 + 8 + 4 + 8
            r.checkCount("metadata count", nKv, 13);
            r.checkCount("tensor count", nTensors, 32);
            Map<String, GgufValue> metadata = new LinkedHashMap<>();
            for (long i = 0; i < nKv; i++) {
                String key = r.string("metadata key #" + i);
                long typeId = r.u32("type of " + key);
                GgufValueType type = GgufValueType.byId(typeId);
                if (type == null) {
                    throw new IOException(path + ": metadata " + key + " has value type " + typeId
                            + ", which GGUF does not define (0..12)");
                }
                GgufValue value = r.value(key, type);
                if (metadata.put(key, value) != null) {
                    throw new IOException(path + ": metadata key " + key + " appears twice");
                }
            }
            int alignment = DEFAULT_ALIGNMENT;
            GgufValue align = metadata.get("general.alignment");
            if (align != null) {
                if (align.type() != GgufValueType.UINT32) {
                    throw new IOException(path + ": general.alignment is " + align.type() + "; GGUF requires UINT32");
                }
                long a = (Long) align.value();
                if (a == 0 || (a & (a - 1)) != 0 || a > (1 << 20)) {
                    throw new IOException(path + ": general.alignment " + a + " must be a power of two (at most 2^20)");
                }
                alignment = (int) a;
            }
            List<GgufTensorInfo> infos = new ArrayList<>();
            Map<String, GgufTensorInfo> byName = new LinkedHashMap<>();
            for (long i = 0; i < nTensors; i++) {
                GgufTensorInfo info = r.tensorInfo(i, alignment);
                if (byName.put(info.name(), info) != null) {
                    throw new IOException(path + ": tensor " + info.name() + " appears twice");
                }
                infos.add(info);
            }
            long dataStart = align(r.position, alignment);
            long dataBytes = r.fileSize - dataStart;
            for (GgufTensorInfo info : infos) {
                if (info.offset() > dataBytes || info.byteSize() > dataBytes - info.offset()) {
                    throw new IOException(path + ": tensor " + info.name() + " (" + info.byteSize() + " bytes at offset "
                            + info.offset() + ") lies outside the data section of " + Math.max(0, dataBytes)
                            + " bytes; the file is truncated");
                }
            }
            checkNoOverlap(path, infos);
            return new GgufFile(path, channel, (int) version, Collections.unmodifiableMap(metadata),
                    Collections.unmodifiableMap(byName), alignment, dataStart);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private static void checkNoOverlap(Path path, List<GgufTensorInfo> infos) throws IOException {
        List<GgufTensorInfo> sorted = new ArrayList<>(infos);
        sorted.sort((a, b) -> Long.compare(a.offset(), b.offset()));
        for (int i = 1; i < sorted.size(); i++) {
            GgufTensorInfo prev = sorted.get(i - 1);
            if (sorted.get(i).offset() < prev.offset() + prev.byteSize()) {
                throw new IOException(path + ": tensors " + prev.name() + " and " + sorted.get(i).name()
                        + " overlap in the data section");
            }
        }
    }

    static long align(long position, int alignment) {
        return (position + alignment - 1) / alignment * alignment;
    }

    private static String hex(int v) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 4; i++) {
            sb.append(String.format("%02x ", (v >>> (8 * i)) & 0xff));
        }
        return sb.toString().trim();
    }

    // ---------------------------------------------------------------- accessors

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public int alignment() {
        return alignment;
    }

    public Map<String, GgufValue> metadata() {
        return metadata;
    }

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    public Set<String> tensorNames() {
        return tensors.keySet();
    }

    public Map<String, GgufTensorInfo> tensors() {
        return tensors;
    }

    public boolean contains(String tensor) {
        return tensors.containsKey(tensor);
    }

    public GgufTensorInfo info(String tensor) {
        GgufTensorInfo info = tensors.get(tensor);
        if (info == null) {
            throw new IllegalArgumentException(path + ": no tensor named " + tensor);
        }
        return info;
    }

    private GgufValue require(String key) {
        GgufValue v = metadata.get(key);
        if (v == null) {
            throw new IllegalArgumentException(path + ": metadata " + key + " is missing");
        }
        return v;
    }

    /** An integer value of any integer type. */
    public long integer(String key) {
        GgufValue v = require(key);
        if (!v.type().isInteger()) {
            throw new IllegalArgumentException(path + ": metadata " + key + " is " + v.type() + ", expected an integer");
        }
        return (Long) v.value();
    }

    public long integer(String key, long fallback) {
        return has(key) ? integer(key) : fallback;
    }

    /** A FLOAT32 or FLOAT64 value (integers are accepted too). */
    public double number(String key) {
        GgufValue v = require(key);
        if (v.value() instanceof Number n && v.type() != GgufValueType.ARRAY) {
            return n.doubleValue();
        }
        throw new IllegalArgumentException(path + ": metadata " + key + " is " + v.type() + ", expected a number");
    }

    public double number(String key, double fallback) {
        return has(key) ? number(key) : fallback;
    }

    public String string(String key) {
        GgufValue v = require(key);
        if (v.type() != GgufValueType.STRING) {
            throw new IllegalArgumentException(path + ": metadata " + key + " is " + v.type() + ", expected a STRING");
        }
        return (String) v.value();
    }

    public String string(String key, String fallback) {
        return has(key) ? string(key) : fallback;
    }

    public boolean bool(String key, boolean fallback) {
        if (!has(key)) {
            return fallback;
        }
        GgufValue v = require(key);
        if (v.type() != GgufValueType.BOOL) {
            throw new IllegalArgumentException(path + ": metadata " + key + " is " + v.type() + ", expected a BOOL");
        }
        return (Boolean) v.value();
    }

    /** An ARRAY value's Java array, checked to be of {@code arrayClass} (e.g. {@code String[].class}). */
    public <T> T array(String key, Class<T> arrayClass) {
        GgufValue v = require(key);
        if (v.type() != GgufValueType.ARRAY || !arrayClass.isInstance(v.value())) {
            throw new IllegalArgumentException(path + ": metadata " + key + " is " + v + ", expected an array of "
                    + arrayClass.getComponentType().getSimpleName());
        }
        return arrayClass.cast(v.value());
    }

    // ---------------------------------------------------------------- tensor data

    /** The tensor's bytes, memory-mapped (read-only, little-endian). */
    public ByteBuffer bytes(String tensor) {
        GgufFile shard = shardOf.get(tensor);
        if (shard != null) {
            return shard.bytes(tensor);
        }
        GgufTensorInfo info = info(tensor);
        long size = info.byteSize();
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(path + ": tensor " + tensor + " has " + size
                    + " bytes; lora4j maps at most 2 GiB per tensor");
        }
        try {
            return channel.map(FileChannel.MapMode.READ_ONLY, dataStart + info.offset(), size).order(ByteOrder.LITTLE_ENDIAN);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(path + ": mapping tensor " + tensor + ": " + e.getMessage(), e);
        }
    }

    /**
     * The tensor as a storage that widens to F32 on read: F32/F16/BF16 as {@link BufferStorage},
     * the block-quantized types as {@link BlockQuantStorage}; no F32 copy is made.
     */
    public Storage storage(String tensor) {
        GgufTensorInfo info = info(tensor);
        return storage(tensor, info.type(), bytes(tensor));
    }

    static Storage storage(String what, GgmlType type, ByteBuffer bytes) {
        return switch (type) {
            case F32 -> new BufferStorage(bytes, DType.F32);
            case F16 -> new BufferStorage(bytes, DType.F16);
            case BF16 -> new BufferStorage(bytes, DType.BF16);
            case Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K -> new BlockQuantStorage(type, bytes);
            default -> throw new IllegalArgumentException(what + " is of ggml type " + type + ", which lora4j does not "
                    + "decode; it reads F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K (re-quantize the file, e.g. "
                    + "llama-quantize --allow-requantize IN OUT Q4_K_M)");
        };
    }

    /** All elements widened to F32 (a copy; for small tensors such as norms). */
    public float[] floats(String tensor) {
        Storage s = storage(tensor);
        long n = s.size();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(path + ": tensor " + tensor + " has " + n + " elements, too many for one array");
        }
        float[] out = new float[(int) n];
        s.decode(0, out.length, out, 0);
        return out;
    }

    @Override
    public void close() throws IOException {
        channel.close();
        for (GgufFile shard : shards) {
            shard.close();
        }
    }

    @Override
    public String toString() {
        return "GgufFile(" + path + ", v" + version + ", " + metadata.size() + " metadata, " + tensors.size() + " tensors)";
    }

    // ---------------------------------------------------------------- header parsing

    /** Buffered little-endian reads of the header with every length checked against the file. */
    private static final class Reader {
        private final Path path;
        private final FileChannel channel;
        private final long fileSize;
        private final ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
        private long bufStart;
        long position;

        Reader(Path path, FileChannel channel) throws IOException {
            this.path = path;
            this.channel = channel;
            this.fileSize = channel.size();
            buf.limit(0);
        }

        private void need(int n, String what) throws IOException {
            if (position + n > fileSize) {
                throw new IOException(path + ": " + what + " runs past the end of the file (" + fileSize
                        + " bytes) at byte " + position + "; the file is truncated");
            }
            long bufEnd = bufStart + buf.limit();
            if (position >= bufStart && position + n <= bufEnd) {
                buf.position((int) (position - bufStart));
                return;
            }
            buf.clear();
            bufStart = position;
            int want = (int) Math.min(buf.capacity(), fileSize - position);
            while (buf.position() < want) {
                int read = channel.read(buf, bufStart + buf.position());
                if (read < 0) {
                    throw new IOException(path + ": unexpected end of file at byte " + (bufStart + buf.position()));
                }
            }
            buf.flip();
        }

        int i32(String what) throws IOException {
            need(4, what);
            position += 4;
            return buf.getInt();
        }

        long u32(String what) throws IOException {
            return i32(what) & 0xffffffffL;
        }

        long i64(String what) throws IOException {
            need(8, what);
            position += 8;
            return buf.getLong();
        }

        /** A count that must fit in the file when each item takes at least {@code minBytes}. */
        void checkCount(String what, long count, long minBytes) throws IOException {
            if (count < 0 || count > (fileSize - position) / minBytes) {
                throw new IOException(path + ": " + what + " " + Long.toUnsignedString(count) + " cannot fit in the "
                        + (fileSize - position) + " bytes left in the file; the header is corrupt");
            }
        }

        String string(String what) throws IOException {
            long len = i64("length of " + what);
            if (len < 0 || len > fileSize - position) {
                throw new IOException(path + ": " + what + " has length " + Long.toUnsignedString(len) + " but only "
                        + (fileSize - position) + " bytes are left in the file; the header is corrupt");
            }
            byte[] bytes = new byte[(int) Math.min(len, Integer.MAX_VALUE - 8)];
            if (bytes.length != len) {
                throw new IOException(path + ": " + what + " has length " + len + ", more than a string can hold");
            }
            int done = 0;
            while (done < bytes.length) {
                int chunk = Math.min(bytes.length - done, buf.capacity());
                need(chunk, what);
                buf.get(bytes, done, chunk);
                position += chunk;
                done += chunk;
            }
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
            } catch (CharacterCodingException e) {
                throw new IOException(path + ": " + what + " is not valid UTF-8", e);
            }
        }

        GgufValue value(String key, GgufValueType type) throws IOException {
            if (type == GgufValueType.ARRAY) {
                long elemId = u32("element type of " + key);
                GgufValueType elem = GgufValueType.byId(elemId);
                if (elem == null || elem == GgufValueType.ARRAY) {
                    throw new IOException(path + ": metadata " + key + " is an array of type " + elemId
                            + (elem == null ? ", which GGUF does not define" : " (arrays of arrays are not supported)"));
                }
                long n = i64("length of " + key);
                checkCount("array length of " + key, n, elem.minBytes());
                int count = (int) Math.min(n, Integer.MAX_VALUE - 8);
                if (count != n) {
                    throw new IOException(path + ": metadata " + key + " has " + n + " elements, more than lora4j reads");
                }
                Object array = switch (elem) {
                    case FLOAT32 -> {
                        float[] a = new float[count];
                        for (int i = 0; i < count; i++) {
                            a[i] = Float.intBitsToFloat(i32(key));
                        }
                        yield a;
                    }
                    case FLOAT64 -> {
                        double[] a = new double[count];
                        for (int i = 0; i < count; i++) {
                            a[i] = Double.longBitsToDouble(i64(key));
                        }
                        yield a;
                    }
                    case BOOL -> {
                        boolean[] a = new boolean[count];
                        for (int i = 0; i < count; i++) {
                            a[i] = bool(key);
                        }
                        yield a;
                    }
                    case STRING -> {
                        String[] a = new String[count];
                        for (int i = 0; i < count; i++) {
                            a[i] = string(key + "[" + i + "]");
                        }
                        yield a;
                    }
                    default -> {
                        long[] a = new long[count];
                        for (int i = 0; i < count; i++) {
                            a[i] = integer(key, elem);
                        }
                        yield a;
                    }
                };
                return new GgufValue(GgufValueType.ARRAY, elem, array);
            }
            Object v = switch (type) {
                case FLOAT32 -> Float.intBitsToFloat(i32(key));
                case FLOAT64 -> Double.longBitsToDouble(i64(key));
                case BOOL -> bool(key);
                case STRING -> string(key);
                default -> integer(key, type);
            };
            return new GgufValue(type, null, v);
        }

        private boolean bool(String key) throws IOException {
            need(1, key);
            position += 1;
            byte b = buf.get();
            if (b != 0 && b != 1) {
                throw new IOException(path + ": metadata " + key + " holds bool byte " + b + "; GGUF bools are 0 or 1");
            }
            return b == 1;
        }

        private long integer(String key, GgufValueType type) throws IOException {
            switch (type) {
                case UINT8, INT8 -> {
                    need(1, key);
                    position += 1;
                    byte b = buf.get();
                    return type == GgufValueType.UINT8 ? b & 0xff : b;
                }
                case UINT16, INT16 -> {
                    need(2, key);
                    position += 2;
                    short s = buf.getShort();
                    return type == GgufValueType.UINT16 ? s & 0xffff : s;
                }
                case UINT32 -> {
                    return u32(key);
                }
                case INT32 -> {
                    return i32(key);
                }
                case UINT64, INT64 -> {
                    return i64(key);
                }
                default -> throw new AssertionError(type);
            }
        }

        GgufTensorInfo tensorInfo(long index, int alignment) throws IOException {
            String name = string("name of tensor #" + index);
            if (name.getBytes(StandardCharsets.UTF_8).length > MAX_NAME_BYTES) {
                throw new IOException(path + ": tensor name " + name + " is longer than ggml's " + MAX_NAME_BYTES + " bytes");
            }
            long nDims = u32("dimension count of " + name);
            if (nDims < 1 || nDims > MAX_DIMS) {
                throw new IOException(path + ": tensor " + name + " has " + nDims + " dimensions; ggml allows 1 to " + MAX_DIMS);
            }
            long[] ne = new long[(int) nDims];
            long numel = 1;
            for (int d = 0; d < nDims; d++) {
                ne[d] = i64("ne[" + d + "] of " + name);
                if (ne[d] < 1 || ne[d] > Integer.MAX_VALUE) {
                    throw new IOException(path + ": tensor " + name + " has ne[" + d + "] = " + Long.toUnsignedString(ne[d])
                            + "; each dimension must be between 1 and 2^31 - 1");
                }
                numel = Math.multiplyHigh(numel, ne[d]) != 0 || numel * ne[d] < 0 ? -1 : numel * ne[d];
                if (numel < 0) {
                    throw new IOException(path + ": tensor " + name + " has more elements than a file can hold");
                }
            }
            long typeId = u32("type of " + name);
            GgmlType type = GgmlType.byId(typeId);
            if (type == null) {
                throw new IOException(path + ": tensor " + name + " has ggml type " + typeId + ", which this reader does "
                        + "not know (known: F32, F16, BF16, the Q and IQ types)");
            }
            if (ne[0] % type.blockSize() != 0) {
                throw new IOException(path + ": tensor " + name + " is " + type + " with rows of " + ne[0]
                        + " elements, not a multiple of its block size " + type.blockSize());
            }
            long offset = i64("offset of " + name);
            if (offset < 0 || offset % alignment != 0) {
                throw new IOException(path + ": tensor " + name + " has offset " + Long.toUnsignedString(offset)
                        + ", not a multiple of the alignment " + alignment);
            }
            int[] shape = new int[(int) nDims];
            for (int d = 0; d < nDims; d++) {
                shape[d] = (int) ne[(int) nDims - 1 - d];
            }
            return new GgufTensorInfo(name, shape, type, offset);
        }
    }
}
