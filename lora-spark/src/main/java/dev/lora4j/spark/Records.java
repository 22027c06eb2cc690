package dev.lora4j.spark;

import dev.lora4j.data.Example;
import dev.lora4j.data.InstructionRecord;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The rows of a training Dataset as compact bytes, numbered in the Dataset's order, and the
 * exchange that gives every worker all of them in that order. Two kinds: token rows
 * ({@code input_ids} array&lt;int&gt;, optional {@code labels} array&lt;int&gt;) and instruction
 * rows ({@code instruction}, optional {@code input}, {@code output} strings).
 */
final class Records {
    static final String INPUT_IDS = "input_ids";
    static final String LABELS = "labels";
    static final String INSTRUCTION = "instruction";
    static final String INPUT = "input";
    static final String OUTPUT = "output";

    /** Row {@code index} (0-based, in the Dataset's order) and its encoded content. */
    record Indexed(long index, byte[] payload) implements Serializable {
        private static final long serialVersionUID = 1L;
    }

    /** The kind of rows a run trains on. */
    enum Kind {
        TOKENS,
        INSTRUCTIONS
    }

    private Records() {
    }

    /**
     * The columns to select for {@code kind}, checked against the schema; the message names the
     * column, the type found and the fix.
     */
    static List<String> columns(StructType schema, Kind kind) {
        List<String> names = Arrays.asList(schema.fieldNames());
        List<String> out = new ArrayList<>();
        if (kind == Kind.TOKENS) {
            require(schema, INPUT_IDS, DataTypes.createArrayType(DataTypes.IntegerType), "array<int>", true);
            out.add(INPUT_IDS);
            if (names.contains(LABELS)) {
                require(schema, LABELS, DataTypes.createArrayType(DataTypes.IntegerType), "array<int>", false);
                out.add(LABELS);
            }
        } else {
            require(schema, INSTRUCTION, DataTypes.StringType, "string", true);
            require(schema, OUTPUT, DataTypes.StringType, "string", true);
            out.add(INSTRUCTION);
            out.add(OUTPUT);
            if (names.contains(INPUT)) {
                require(schema, INPUT, DataTypes.StringType, "string", false);
                out.add(INPUT);
            }
        }
        return out;
    }

    private static void require(StructType schema, String name, DataType type, String typeName, boolean mandatory) {
        int at = Arrays.asList(schema.fieldNames()).indexOf(name);
        if (at < 0) {
            if (mandatory) {
                throw new IllegalArgumentException("the training Dataset has no column '" + name + "' (" + typeName
                        + "); its columns are " + Arrays.toString(schema.fieldNames()) + "; rename one with "
                        + "withColumnRenamed(\"yours\", \"" + name + "\")");
            }
            return;
        }
        StructField f = schema.fields()[at];
        DataType found = f.dataType();
        boolean ok = type instanceof ArrayType a ? found instanceof ArrayType b && b.elementType().equals(a.elementType())
                : found.equals(type);
        if (!ok) {
            throw new IllegalArgumentException("column '" + name + "' of the training Dataset must be " + typeName
                    + ", was " + found.simpleString() + "; cast it with col(\"" + name + "\").cast(\"" + typeName + "\")");
        }
    }

    /** Encodes a row selected with {@link #columns} (the same column order). */
    static byte[] encode(Row row, Kind kind, long index) {
        if (kind == Kind.TOKENS) {
            int[] ids = ints(row, 0, INPUT_IDS, index);
            if (ids == null) {
                throw new IllegalArgumentException("row " + index + " of the training Dataset has a null input_ids; "
                        + "drop it (na().drop()) or give it tokens");
            }
            int[] labels = row.length() > 1 ? ints(row, 1, LABELS, index) : null;
            ByteBuffer b = ByteBuffer.allocate(8 + 4 * (ids.length + (labels == null ? 0 : labels.length)))
                    .order(ByteOrder.LITTLE_ENDIAN);
            b.putInt(ids.length);
            for (int v : ids) {
                b.putInt(v);
            }
            b.putInt(labels == null ? -1 : labels.length);
            if (labels != null) {
                for (int v : labels) {
                    b.putInt(v);
                }
            }
            return b.array();
        }
        byte[] instruction = text(row, 0, INSTRUCTION, index, false);
        byte[] output = text(row, 1, OUTPUT, index, false);
        byte[] input = row.length() > 2 ? text(row, 2, INPUT, index, true) : new byte[0];
        ByteBuffer b = ByteBuffer.allocate(12 + instruction.length + input.length + output.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        for (byte[] s : new byte[][] {instruction, input, output}) {
            b.putInt(s.length).put(s);
        }
        return b.array();
    }

    private static int[] ints(Row row, int at, String column, long index) {
        if (row.isNullAt(at)) {
            return null;
        }
        if (row.get(at) instanceof int[] ids) {
            return ids.clone(); // a Row built by hand; Rows read from a Dataset hold a Scala Seq
        }
        List<Object> list = row.getList(at);
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) {
            Object v = list.get(i);
            if (v == null) {
                throw new IllegalArgumentException("row " + index + " of the training Dataset has a null in " + column
                        + " at position " + i + "; every token id must be set");
            }
            out[i] = (Integer) v;
        }
        return out;
    }

    private static byte[] text(Row row, int at, String column, long index, boolean nullable) {
        if (row.isNullAt(at)) {
            if (nullable) {
                return new byte[0];
            }
            throw new IllegalArgumentException("row " + index + " of the training Dataset has a null " + column
                    + "; use \"\" for an empty one");
        }
        return row.getString(at).getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Decodes token rows into examples, checking every id against the vocabulary; {@code rows}
     * are in Dataset order.
     */
    static List<Example> examples(List<Indexed> rows, int vocabSize) {
        List<Example> out = new ArrayList<>(rows.size());
        for (Indexed r : rows) {
            ByteBuffer b = ByteBuffer.wrap(r.payload()).order(ByteOrder.LITTLE_ENDIAN);
            int[] ids = new int[b.getInt()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = b.getInt();
            }
            int n = b.getInt();
            int[] labels = n < 0 ? ids.clone() : new int[n];
            for (int i = 0; i < n; i++) {
                labels[i] = b.getInt();
            }
            check(ids, r.index(), INPUT_IDS, vocabSize, false);
            check(labels, r.index(), LABELS, vocabSize, true);
            if (ids.length == 0) {
                throw new IllegalArgumentException("row " + r.index() + " of the training Dataset has an empty input_ids; "
                        + "drop it (filter(size(col(\"input_ids\")) > 0))");
            }
            if (labels.length != ids.length) {
                throw new IllegalArgumentException("row " + r.index() + " of the training Dataset has " + ids.length
                        + " input_ids but " + labels.length + " labels; labels must align with input_ids (-100 where "
                        + "a token is not scored)");
            }
            out.add(new Example(ids, labels));
        }
        return out;
    }

    private static void check(int[] ids, long index, String column, int vocabSize, boolean ignoreAllowed) {
        for (int i = 0; i < ids.length; i++) {
            int v = ids[i];
            if ((v < 0 || v >= vocabSize) && !(ignoreAllowed && v == Example.IGNORE)) {
                throw new IllegalArgumentException(String.format(Locale.ROOT, "row %d of the training Dataset holds "
                        + "token id %d in %s at position %d, outside the model's vocabulary of %d (0 to %d%s); "
                        + "tokenize with the base model's tokenizer", index, v, column, i, vocabSize, vocabSize - 1,
                        ignoreAllowed ? ", or -100 for an unscored label" : ""));
            }
        }
    }

    /** Decodes instruction rows, in Dataset order. */
    static List<InstructionRecord> instructions(List<Indexed> rows) {
        List<InstructionRecord> out = new ArrayList<>(rows.size());
        for (Indexed r : rows) {
            ByteBuffer b = ByteBuffer.wrap(r.payload()).order(ByteOrder.LITTLE_ENDIAN);
            String[] s = new String[3];
            for (int i = 0; i < 3; i++) {
                byte[] bytes = new byte[b.getInt()];
                b.get(bytes);
                s[i] = new String(bytes, StandardCharsets.UTF_8);
            }
            out.add(new InstructionRecord(s[0], s[1], s[2]));
        }
        return out;
    }

    /** This worker's rows as one message: count, then (index, length, payload) each. */
    static byte[] pack(List<Indexed> rows) {
        long size = 4;
        for (Indexed r : rows) {
            size += 12 + r.payload().length;
        }
        if (size > Integer.MAX_VALUE - 64) {
            throw new IllegalArgumentException("one worker's share of the training Dataset is " + size + " bytes, more "
                    + "than one exchange carries (2 GiB); use more workers or a smaller Dataset");
        }
        ByteBuffer b = ByteBuffer.allocate((int) size).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(rows.size());
        for (Indexed r : rows) {
            b.putLong(r.index()).putInt(r.payload().length).put(r.payload());
        }
        return b.array();
    }

    /**
     * Every worker's rows (as packed by {@link #pack}, possibly zero-padded at the end), merged and
     * sorted by index; the indices must be 0 to n-1, each once.
     */
    static List<Indexed> unpack(byte[][] all) {
        List<Indexed> out = new ArrayList<>();
        for (byte[] message : all) {
            ByteBuffer b = ByteBuffer.wrap(message).order(ByteOrder.LITTLE_ENDIAN);
            int n = b.getInt();
            for (int i = 0; i < n; i++) {
                long index = b.getLong();
                byte[] payload = new byte[b.getInt()];
                b.get(payload);
                out.add(new Indexed(index, payload));
            }
        }
        out.sort(Comparator.comparingLong(Indexed::index));
        for (int i = 0; i < out.size(); i++) {
            if (out.get(i).index() != i) {
                throw new IllegalStateException("the workers hold rows " + out.get(i).index() + " at position " + i
                        + " of " + out.size() + ": the training Dataset's rows were not numbered 0 to n-1 once each; "
                        + "its order must be deterministic (e.g. read from files, or sorted)");
            }
        }
        return out;
    }
}
