package dev.lora4j.io;

import dev.lora4j.tensor.BufferStorage;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes safetensors files byte-for-byte as the reference implementation does (the Rust crate's
 * {@code serialize}, which Python's {@code safetensors.torch.save_file} calls):
 *
 * <ul>
 *   <li>tensors are ordered by dtype alignment, descending, in the crate's {@code Dtype} order
 *       ({@code U64 > I64 > F64 > C64 > F32 > U32 > I32 > BF16 > F16 > U16 > I16 > ... > U8 > BOOL}),
 *       then by name (byte order of the UTF-8 names); the data section and the header follow
 *       that same order, with offsets packed from 0;
 *   <li>the header is compact JSON (no whitespace), {@code "__metadata__"} first when present,
 *       each entry as {@code {"dtype":..,"shape":[..],"data_offsets":[b,e]}}, strings escaped as
 *       serde_json does;
 *   <li>the header is padded with spaces to a multiple of 8 bytes, so that the data section is
 *       8-byte aligned.
 * </ul>
 *
 * <p>Metadata entries are written in the order given. (The reference writes them from a hash map,
 * so files with more than one metadata key have no canonical order.) An empty metadata map writes
 * no {@code "__metadata__"} key.
 *
 * <p>Tensors added with {@link #add(String, Tensor, DType)} or as buffers are read when the file
 * is written, not when they are added. {@link #write(Path)} is atomic: it writes a temporary file
 * beside the target and renames it over the target, so a crash leaves the previous file intact.
 */
public final class SafetensorsWriter {

    /** The reference {@code Dtype} enum order, which its writer sorts by (descending). */
    private static final List<String> ALIGNMENT_ORDER = List.of("BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8",
            "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32",
            "F32", "C64", "F64", "I64", "U64");

    private static final int CHUNK_ELEMENTS = 1 << 16;

    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    /** Source of one tensor's bytes, produced while the file is written. */
    private interface Payload {
        void writeTo(WritableByteChannel out) throws IOException;
    }

    private record Entry(String name, DType dtype, int[] shape, long byteLength, Payload payload) {}

    /** Raw little-endian bytes; the array is not copied. */
    public SafetensorsWriter add(String name, DType dtype, int[] shape, byte[] bytes) {
        return add(name, dtype, shape, ByteBuffer.wrap(bytes));
    }

    /** The remaining bytes of {@code bytes} (little-endian), read when the file is written. */
    public SafetensorsWriter add(String name, DType dtype, int[] shape, ByteBuffer bytes) {
        ByteBuffer view = bytes.slice();
        long expected = checkedByteLength(name, dtype, shape);
        if (view.remaining() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + dtype + " " + Arrays.toString(shape) + " needs "
                    + expected + " bytes but " + view.remaining() + " were given");
        }
        return put(new Entry(name, dtype, shape.clone(), expected, out -> writeFully(out, view.duplicate())));
    }

    /** Integer values encoded as {@code dtype} (I64, I32, I16, I8, U8 or BOOL), checking the range. */
    public SafetensorsWriter addLongs(String name, DType dtype, int[] shape, long[] values) {
        long expected = checkedByteLength(name, dtype, shape);
        if (expected / dtype.byteSize() != values.length) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " has "
                    + expected / dtype.byteSize() + " elements but " + values.length + " values were given");
        }
        long min;
        long max;
        switch (dtype) {
            case I64 -> { min = Long.MIN_VALUE; max = Long.MAX_VALUE; }
            case I32 -> { min = Integer.MIN_VALUE; max = Integer.MAX_VALUE; }
            case I16 -> { min = Short.MIN_VALUE; max = Short.MAX_VALUE; }
            case I8 -> { min = Byte.MIN_VALUE; max = Byte.MAX_VALUE; }
            case U8 -> { min = 0; max = 255; }
            case BOOL -> { min = 0; max = 1; }
            default -> throw new IllegalArgumentException("tensor '" + name + "': addLongs writes integer dtypes, not "
                    + dtype + "; use add(name, tensor, dtype) for floating point");
        }
        ByteBuffer buf = ByteBuffer.allocate(Math.toIntExact(expected)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < values.length; i++) {
            long v = values[i];
            if (v < min || v > max) {
                throw new IllegalArgumentException("tensor '" + name + "': value " + v + " at index " + i
                        + " does not fit " + dtype + " [" + min + ", " + max + "]");
            }
            switch (dtype.byteSize()) {
                case 8 -> buf.putLong(v);
                case 4 -> buf.putInt((int) v);
                case 2 -> buf.putShort((short) v);
                default -> buf.put((byte) v);
            }
        }
        return add(name, dtype, shape, buf.flip());
    }

    /** A tensor stored as F32. */
    public SafetensorsWriter add(String name, Tensor tensor) {
        return add(name, tensor, DType.F32);
    }

    /**
     * A tensor (any layout and storage) encoded as F32, BF16 or F16, rounding to nearest even via
     * {@link DType#floatToBf16}/{@link DType#floatToF16}. A contiguous tensor whose storage already
     * holds {@code dtype} bytes is copied bit for bit.
     */
    public SafetensorsWriter add(String name, Tensor tensor, DType dtype) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new IllegalArgumentException("tensor '" + name + "': tensors are written as F32, BF16 or F16, not "
                    + dtype + "; use addLongs for integers");
        }
        int[] shape = tensor.shape();
        long length = checkedByteLength(name, dtype, shape);
        if (tensor.storage() instanceof BufferStorage raw && raw.dtype() == dtype && tensor.isContiguous()
                && tensor.offset() == 0 && raw.size() == tensor.numel()) {
            return put(new Entry(name, dtype, shape, length, out -> writeFully(out, raw.bytes())));
        }
        return put(new Entry(name, dtype, shape, length, out -> encodeFloats(tensor, dtype, out)));
    }

    /** Every tensor (raw bytes, no conversion) and the metadata of {@code file}. */
    public SafetensorsWriter addAll(SafetensorsFile file) {
        for (TensorInfo info : file.infos()) {
            add(info.name(), info.dtype(), info.shape(), file.bytes(info.name()));
        }
        return metadata(file.metadata());
    }

    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(requireNonNull(key, "metadata key"), requireNonNull(value, "metadata value of '" + key + "'"));
        return this;
    }

    public SafetensorsWriter metadata(Map<String, String> entries) {
        entries.forEach(this::metadata);
        return this;
    }

    /** Names added so far, in the order added. */
    public Set<String> names() {
        return Collections.unmodifiableSet(entries.keySet());
    }

    /** The complete file contents (for files under 2 GiB). */
    public byte[] toBytes() {
        List<Entry> ordered = ordered();
        byte[] header = header(ordered);
        long total = 8L + header.length + ordered.stream().mapToLong(Entry::byteLength).sum();
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("serialized size " + total + " bytes exceeds a byte array; use write(Path)");
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream((int) total);
        try {
            writeTo(Channels.newChannel(bytes), ordered, header);
        } catch (IOException e) {
            throw new IllegalStateException("in-memory write failed", e);
        }
        return bytes.toByteArray();
    }

    /**
     * Writes the file atomically: to a temporary file in the same folder (created if needed),
     * flushed to disk, then renamed over {@code path}.
     */
    public void write(Path path) throws IOException {
        Path target = path.toAbsolutePath();
        Path dir = target.getParent();
        Files.createDirectories(dir);
        List<Entry> ordered = ordered();
        byte[] header = header(ordered);
        Path tmp = dir.resolve("." + target.getFileName() + "." + Long.toHexString(ThreadLocalRandom.current().nextLong())
                + ".tmp");
        boolean moved = false;
        try {
            try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                writeTo(out, ordered, header);
                out.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException | FileAlreadyExistsException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            moved = true;
        } finally {
            if (!moved) {
                Files.deleteIfExists(tmp);
            }
        }
    }

    // ---------------------------------------------------------------- layout

    private SafetensorsWriter put(Entry entry) {
        if (entries.containsKey(entry.name())) {
            throw new IllegalArgumentException("tensor '" + entry.name() + "' was already added; names must be unique");
        }
        entries.put(entry.name(), entry);
        return this;
    }

    private static long checkedByteLength(String name, DType dtype, int[] shape) {
        requireNonNull(name, "tensor name");
        if (name.equals(SafetensorsFile.METADATA_KEY)) {
            throw new IllegalArgumentException("'" + name + "' is reserved for the metadata map; pick another tensor name");
        }
        long numel = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor '" + name + "': negative dimension in shape " + Arrays.toString(shape));
            }
            try {
                numel = Math.multiplyExact(numel, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " overflows");
            }
        }
        return Math.multiplyExact(numel, dtype.byteSize());
    }

    private static <T> T requireNonNull(T value, String what) {
        if (value == null) {
            throw new IllegalArgumentException(what + " must not be null");
        }
        return value;
    }

    private List<Entry> ordered() {
        List<Entry> ordered = new ArrayList<>(entries.values());
        ordered.sort(Comparator.<Entry>comparingInt(e -> -ALIGNMENT_ORDER.indexOf(e.dtype().safetensorsName()))
                .thenComparing(Entry::name, PythonJson::compareCodePoints)); // = UTF-8 byte order
        return ordered;
    }

    private byte[] header(List<Entry> ordered) {
        StringBuilder json = new StringBuilder(64 + 96 * ordered.size()).append('{');
        if (!metadata.isEmpty()) {
            appendString(json, SafetensorsFile.METADATA_KEY).append(":{");
            boolean first = true;
            for (Map.Entry<String, String> e : metadata.entrySet()) {
                if (!first) {
                    json.append(',');
                }
                first = false;
                appendString(json, e.getKey()).append(':');
                appendString(json, e.getValue());
            }
            json.append('}');
            if (!ordered.isEmpty()) {
                json.append(',');
            }
        }
        long offset = 0;
        for (int i = 0; i < ordered.size(); i++) {
            Entry e = ordered.get(i);
            if (i > 0) {
                json.append(',');
            }
            appendString(json, e.name()).append(":{\"dtype\":\"").append(e.dtype().safetensorsName())
                    .append("\",\"shape\":[");
            for (int d = 0; d < e.shape().length; d++) {
                json.append(d > 0 ? "," : "").append(e.shape()[d]);
            }
            json.append("],\"data_offsets\":[").append(offset).append(',').append(offset + e.byteLength()).append("]}");
            offset += e.byteLength();
        }
        byte[] raw = json.append('}').toString().getBytes(StandardCharsets.UTF_8);
        int padded = (raw.length + 7) / 8 * 8;
        byte[] header = Arrays.copyOf(raw, padded);
        Arrays.fill(header, raw.length, padded, (byte) ' ');
        return header;
    }

    /** JSON string as serde_json writes it: only '"', '\\' and control characters are escaped. */
    private static StringBuilder appendString(StringBuilder json, String s) {
        json.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> json.append("\\\"");
                case '\\' -> json.append("\\\\");
                case '\b' -> json.append("\\b");
                case '\f' -> json.append("\\f");
                case '\n' -> json.append("\\n");
                case '\r' -> json.append("\\r");
                case '\t' -> json.append("\\t");
                default -> {
                    if (c < 0x20) {
                        json.append(String.format("\\u%04x", (int) c));
                    } else {
                        json.append(c);
                    }
                }
            }
        }
        return json.append('"');
    }

    private static void writeTo(WritableByteChannel out, List<Entry> ordered, byte[] header) throws IOException {
        ByteBuffer prefix = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(header.length).put(header).flip();
        writeFully(out, prefix);
        for (Entry e : ordered) {
            e.payload().writeTo(out);
        }
    }

    private static void writeFully(WritableByteChannel out, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            out.write(buffer);
        }
    }

    private static void encodeFloats(Tensor tensor, DType dtype, WritableByteChannel out) throws IOException {
        long numel = tensor.numel();
        float[] all = tensor.isContiguous() ? null : tensor.toFloatArray();
        float[] chunk = new float[(int) Math.min(CHUNK_ELEMENTS, Math.max(numel, 1))];
        ByteBuffer bytes = ByteBuffer.allocate(chunk.length * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        for (long start = 0; start < numel; start += chunk.length) {
            int n = (int) Math.min(chunk.length, numel - start);
            if (all == null) {
                tensor.storage().decode(tensor.offset() + start, n, chunk, 0);
            } else {
                System.arraycopy(all, (int) start, chunk, 0, n);
            }
            bytes.clear();
            for (int i = 0; i < n; i++) {
                switch (dtype) {
                    case F32 -> bytes.putFloat(chunk[i]);
                    case BF16 -> bytes.putShort(DType.floatToBf16(chunk[i]));
                    default -> bytes.putShort(DType.floatToF16(chunk[i]));
                }
            }
            writeFully(out, bytes.flip());
        }
    }
}
