package dev.lora4j.gguf;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Writes a GGUF version 3 file (see {@link GgufFile} for the layout). Tensors are written in the
 * order they were added, each at the next multiple of the alignment, so that offsets are exactly
 * sequential as llama.cpp requires ({@code tensor 'x' has offset N, expected M} otherwise). Tensor
 * bytes may be produced lazily (one tensor in memory at a time), so a merged model of any size is
 * written without holding it whole. The file is written to a temporary sibling and moved into
 * place, so a failed export leaves no half-written file.
 */
public final class GgufWriter {
    private final Map<String, GgufValue> metadata = new LinkedHashMap<>();
    private final List<Entry> tensors = new ArrayList<>();
    private final Map<String, Entry> byName = new LinkedHashMap<>();
    private int alignment = GgufFile.DEFAULT_ALIGNMENT;

    private record Entry(String name, int[] shape, GgmlType type, Supplier<ByteBuffer> bytes) {
    }

    /** Sets (or replaces) a metadata value; {@code general.alignment} also changes the alignment used. */
    public GgufWriter put(String key, GgufValue value) {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("metadata key must be non-empty");
        }
        if (key.equals("general.alignment")) {
            if (value.type() != GgufValueType.UINT32) {
                throw new IllegalArgumentException("general.alignment must be UINT32, was " + value.type());
            }
            long a = (Long) value.value();
            if (a == 0 || (a & (a - 1)) != 0 || a > (1 << 20)) {
                throw new IllegalArgumentException("general.alignment must be a power of two, was " + a);
            }
            alignment = (int) a;
        }
        metadata.put(key, value);
        return this;
    }

    public GgufWriter putString(String key, String value) {
        return put(key, GgufValue.string(value));
    }

    public GgufWriter putU32(String key, long value) {
        return put(key, GgufValue.u32(value));
    }

    public GgufWriter putF32(String key, double value) {
        return put(key, GgufValue.f32(value));
    }

    public GgufWriter putBool(String key, boolean value) {
        return put(key, GgufValue.bool(value));
    }

    public Map<String, GgufValue> metadata() {
        return java.util.Collections.unmodifiableMap(metadata);
    }

    /**
     * Adds a tensor of row-major {@code shape} whose {@code bytes} (little-endian, in ggml's layout
     * for {@code type}) are produced when the file is written.
     */
    public GgufWriter add(String name, int[] shape, GgmlType type, Supplier<ByteBuffer> bytes) {
        if (name.getBytes(StandardCharsets.UTF_8).length > GgufFile.MAX_NAME_BYTES) {
            throw new IllegalArgumentException("tensor name " + name + " is longer than ggml's " + GgufFile.MAX_NAME_BYTES
                    + " bytes");
        }
        if (shape.length < 1 || shape.length > GgufFile.MAX_DIMS) {
            throw new IllegalArgumentException("tensor " + name + " has " + shape.length + " dimensions; ggml allows 1 to 4");
        }
        for (int d : shape) {
            if (d < 1) {
                throw new IllegalArgumentException("tensor " + name + " has shape " + Arrays.toString(shape)
                        + "; every dimension must be >= 1");
            }
        }
        if (shape[shape.length - 1] % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor " + name + " " + Arrays.toString(shape) + " cannot be " + type
                    + ": its rows of " + shape[shape.length - 1] + " are not a multiple of the block size " + type.blockSize());
        }
        Entry e = new Entry(name, shape.clone(), type, bytes);
        if (byName.putIfAbsent(name, e) != null) {
            throw new IllegalArgumentException("tensor " + name + " is added twice");
        }
        tensors.add(e);
        return this;
    }

    /** Adds an F32 tensor from values in row-major order. */
    public GgufWriter addF32(String name, int[] shape, float[] values) {
        checkCount(name, shape, values.length);
        return add(name, shape, GgmlType.F32, () -> GgmlQuants.encode(GgmlType.F32, values));
    }

    /** Adds a tensor converted from F32 values to {@code type} (F32, F16, BF16 or Q8_0). */
    public GgufWriter add(String name, int[] shape, GgmlType type, float[] values) {
        checkCount(name, shape, values.length);
        return add(name, shape, type, () -> GgmlQuants.encode(type, values));
    }

    private static void checkCount(String name, int[] shape, int count) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        if (n != count) {
            throw new IllegalArgumentException("tensor " + name + " " + Arrays.toString(shape) + " needs " + n
                    + " values, got " + count);
        }
    }

    public List<String> tensorNames() {
        return tensors.stream().map(Entry::name).toList();
    }

    /** Writes the file (to a temporary sibling first, then moved over {@code path}). */
    public void write(Path path) throws IOException {
        Path parent = path.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path tmp = Files.createTempFile(parent, path.getFileName().toString(), ".tmp");
        try {
            try (OutputStream os = new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16)) {
                Out out = new Out(os);
                out.i32(GgufFile.MAGIC);
                out.i32(3);
                out.i64(tensors.size());
                out.i64(metadata.size());
                for (Map.Entry<String, GgufValue> kv : metadata.entrySet()) {
                    out.string(kv.getKey());
                    out.i32(kv.getValue().type().id());
                    out.value(kv.getValue());
                }
                long offset = 0;
                for (Entry e : tensors) {
                    out.string(e.name);
                    out.i32(e.shape.length);
                    for (int d = e.shape.length - 1; d >= 0; d--) {
                        out.i64(e.shape[d]);
                    }
                    out.i32(e.type.id());
                    out.i64(offset);
                    offset = GgufFile.align(offset + byteSize(e), alignment);
                }
                out.pad(alignment);
                for (Entry e : tensors) {
                    ByteBuffer b = e.bytes.get();
                    long expected = byteSize(e);
                    if (b.remaining() != expected) {
                        throw new IllegalStateException("tensor " + e.name + " " + Arrays.toString(e.shape) + " " + e.type
                                + " should have " + expected + " bytes but its data has " + b.remaining());
                    }
                    out.bytes(b);
                    out.pad(alignment);
                }
            }
            Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * Writes the file split as llama.cpp's {@code gguf-split} does (see {@link GgufSplit}): tensors in
     * order, a new shard whenever the next tensor would take the current shard's tensor data
     * (each tensor padded to the alignment) past {@code maxShardBytes}; a tensor larger than that
     * gets a shard of its own. The first shard {@code PREFIX-00001-of-0000N.gguf} ({@code path}
     * without ".gguf" as PREFIX) holds all the metadata, every shard the split keys. When everything
     * fits in one shard, the plain file {@code path} is written, as llama.cpp's converter does.
     *
     * @return the files written, first file first
     */
    public List<Path> writeSplit(Path path, long maxShardBytes) throws IOException {
        if (maxShardBytes < 1) {
            throw new IllegalArgumentException("split size must be >= 1 byte, was " + maxShardBytes);
        }
        List<List<Entry>> groups = new ArrayList<>();
        long current = 0;
        for (Entry e : tensors) {
            long size = GgufFile.align(byteSize(e), alignment);
            if (groups.isEmpty() || (current > 0 && current + size > maxShardBytes)) {
                groups.add(new ArrayList<>());
                current = 0;
            }
            groups.get(groups.size() - 1).add(e);
            current += size;
        }
        if (groups.size() <= 1) {
            write(path);
            return List.of(path);
        }
        if (groups.size() > 0xffff) {
            throw new IllegalArgumentException("splitting into shards of at most " + maxShardBytes + " bytes gives "
                    + groups.size() + " shards; GGUF's split.count holds at most 65535: choose a larger split size");
        }
        String file = path.getFileName().toString();
        Path prefix = path.resolveSibling(file.endsWith(".gguf") ? file.substring(0, file.length() - 5) : file);
        List<Path> written = new ArrayList<>();
        try {
            for (int i = 0; i < groups.size(); i++) {
                GgufWriter shard = new GgufWriter();
                if (i == 0) {
                    metadata.forEach(shard::put);
                } else if (metadata.containsKey("general.alignment")) {
                    shard.put("general.alignment", metadata.get("general.alignment"));
                }
                shard.put(GgufSplit.NO, GgufValue.u16(i));
                shard.put(GgufSplit.COUNT, GgufValue.u16(groups.size()));
                shard.put(GgufSplit.TENSORS_COUNT, GgufValue.i32(tensors.size()));
                for (Entry e : groups.get(i)) {
                    shard.add(e.name, e.shape, e.type, e.bytes);
                }
                Path out = GgufSplit.shardPath(prefix, i + 1, groups.size());
                shard.write(out);
                written.add(out);
            }
        } catch (IOException | RuntimeException e) {
            for (Path p : written) {
                Files.deleteIfExists(p);
            }
            throw e;
        }
        return written;
    }

    private static long byteSize(Entry e) {
        long n = 1;
        for (int d : e.shape) {
            n *= d;
        }
        return e.type.byteSize(n);
    }

    /** Little-endian primitive output with a position, for padding. */
    private static final class Out {
        private final OutputStream os;
        private final ByteBuffer scratch = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        private long position;

        Out(OutputStream os) {
            this.os = os;
        }

        void i8(int v) throws IOException {
            os.write(v);
            position++;
        }

        void i16(int v) throws IOException {
            scratch.clear();
            scratch.putShort((short) v);
            os.write(scratch.array(), 0, 2);
            position += 2;
        }

        void i32(int v) throws IOException {
            scratch.clear();
            scratch.putInt(v);
            os.write(scratch.array(), 0, 4);
            position += 4;
        }

        void i64(long v) throws IOException {
            scratch.clear();
            scratch.putLong(v);
            os.write(scratch.array(), 0, 8);
            position += 8;
        }

        void string(String s) throws IOException {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            i64(b.length);
            os.write(b);
            position += b.length;
        }

        void bytes(ByteBuffer b) throws IOException {
            ByteBuffer src = b.duplicate();
            byte[] chunk = new byte[Math.min(src.remaining(), 1 << 16)];
            while (src.hasRemaining()) {
                int n = Math.min(chunk.length, src.remaining());
                src.get(chunk, 0, n);
                os.write(chunk, 0, n);
                position += n;
            }
        }

        void pad(int alignment) throws IOException {
            long target = GgufFile.align(position, alignment);
            while (position < target) {
                i8(0);
            }
        }

        void scalar(GgufValueType type, Object v) throws IOException {
            switch (type) {
                case UINT8, INT8 -> i8((int) (long) (Long) v);
                case UINT16, INT16 -> i16((int) (long) (Long) v);
                case UINT32, INT32 -> i32((int) (long) (Long) v);
                case UINT64, INT64 -> i64((Long) v);
                case FLOAT32 -> i32(Float.floatToRawIntBits((Float) v));
                case FLOAT64 -> i64(Double.doubleToRawLongBits((Double) v));
                case BOOL -> i8((Boolean) v ? 1 : 0);
                case STRING -> string((String) v);
                case ARRAY -> throw new AssertionError();
            }
        }

        void value(GgufValue v) throws IOException {
            if (v.type() != GgufValueType.ARRAY) {
                scalar(v.type(), v.value());
                return;
            }
            GgufValueType elem = v.elementType();
            i32(elem.id());
            int n = v.length();
            i64(n);
            Object a = v.value();
            for (int i = 0; i < n; i++) {
                Object item = switch (elem) {
                    case FLOAT32 -> ((float[]) a)[i];
                    case FLOAT64 -> ((double[]) a)[i];
                    case BOOL -> ((boolean[]) a)[i];
                    case STRING -> ((String[]) a)[i];
                    default -> ((long[]) a)[i];
                };
                scalar(elem, item);
            }
        }
    }
}
