package dev.lora4j.data;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvParser;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;
import dev.lora4j.io.JsonLimits;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads instruction-tuning data into {@link InstructionRecord}s.
 *
 * <p>The format follows the file's extension:
 * <ul>
 *   <li>{@code .json}: a JSON array of objects;</li>
 *   <li>{@code .jsonl}: one JSON object per line (blank lines are allowed);</li>
 *   <li>{@code .csv}: RFC 4180 CSV whose first row names the columns (quoted fields may hold
 *       commas, quotes written twice and line breaks; blank lines are ignored).</li>
 * </ul>
 * Without a {@link ColumnMapping} the layout is detected from the first record's keys:
 * Alpaca (instruction, input, output; input optional), Dolly (instruction, context, response;
 * context optional, other keys such as category ignored) or LIMA (a "conversations" array of
 * strings alternating user and assistant turns, JSON/JSONL only). Every later record must follow
 * the same layout.
 *
 * <p>Records whose output is empty are kept, as LitGPT keeps them (with an EOS appended they
 * still teach the model to stop); their count is logged as a warning.
 */
public final class InstructionDatasets {
    private static final Logger LOG = LoggerFactory.getLogger(InstructionDatasets.class);
    /**
     * Longest line of a .jsonl file, in bytes: one record. A longer line is refused before it is
     * buffered whole (the bound keeps a damaged file, e.g. one without line breaks, from filling
     * the heap).
     */
    public static final int MAX_RECORD_BYTES = 16 << 20;
    /**
     * Largest .json or .csv file, which is decoded and parsed whole; a larger dataset is read as
     * .jsonl, which is streamed line by line.
     */
    public static final long MAX_WHOLE_FILE_BYTES = 256L << 20;

    private static final ObjectMapper JSON = JsonLimits.mapperBuilder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .build();
    /** For JSONL: a line holding anything after its object is malformed. */
    private static final ObjectMapper JSON_LINE = JsonLimits.mapperBuilder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();
    private static final CsvMapper CSV = CsvMapper.builder()
            .enable(CsvParser.Feature.FAIL_ON_MISSING_COLUMNS)
            .enable(CsvParser.Feature.SKIP_EMPTY_LINES)
            .build();

    /**
     * How LIMA-style conversations become records. LitGPT's LIMA data module uses only the first
     * (user, assistant) pair unless {@code include_multiturn_conversations} is set; that is
     * {@link #FIRST_TURN}, the default here too.
     */
    public enum Conversations {
        /** One record per conversation, from its first user turn and the assistant's reply. */
        FIRST_TURN,
        /** One record per (user, assistant) pair; each pair stands alone, without the earlier turns. */
        ALL_TURNS
    }

    private InstructionDatasets() {
    }

    /** Loads {@code file}, detecting its layout; LIMA conversations contribute their first turn. */
    public static List<InstructionRecord> load(Path file) throws IOException {
        return read(file, null, Conversations.FIRST_TURN);
    }

    /** Loads {@code file}, detecting its layout, turning LIMA conversations into records as asked. */
    public static List<InstructionRecord> load(Path file, Conversations conversations) throws IOException {
        if (conversations == null) {
            throw new IllegalArgumentException("conversations must be FIRST_TURN or ALL_TURNS, was null");
        }
        return read(file, null, conversations);
    }

    /**
     * Loads {@code file} taking each field from the key or column {@code mapping} names. A record
     * without the mapped input key (or with null there) gets input ""; but if no record at all
     * has it, or a CSV header lacks it, that is an error, since it is most likely a typo.
     */
    public static List<InstructionRecord> load(Path file, ColumnMapping mapping) throws IOException {
        if (mapping == null) {
            throw new IllegalArgumentException("column mapping must not be null; use load(file) to detect the layout");
        }
        return read(file, mapping, Conversations.FIRST_TURN);
    }

    private static List<InstructionRecord> read(Path file, ColumnMapping mapping, Conversations conversations) throws IOException {
        if (file == null) {
            throw new IllegalArgumentException("dataset file must not be null");
        }
        if (!Files.exists(file)) {
            throw new DatasetException(file + ": dataset file not found (working directory " + Path.of("").toAbsolutePath() + ")");
        }
        if (!Files.isRegularFile(file)) {
            throw new DatasetException(file + ": not a regular file; give the path of a .json, .jsonl or .csv file");
        }
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (!name.endsWith(".jsonl") && (name.endsWith(".json") || name.endsWith(".csv"))
                && Files.size(file) > MAX_WHOLE_FILE_BYTES) {
            throw new DatasetException(file + ": the file is " + Files.size(file) + " bytes, more than the "
                    + MAX_WHOLE_FILE_BYTES + " bytes a .json or .csv dataset is read whole at; write it as .jsonl"
                    + " (one object per line), which is streamed");
        }
        List<RawRecord> raw;
        if (name.endsWith(".jsonl")) {
            raw = readJsonLines(file);
        } else if (name.endsWith(".json")) {
            raw = readJsonArray(file, decodeUtf8(file));
        } else if (name.endsWith(".csv")) {
            raw = readCsv(file, decodeUtf8(file), mapping);
        } else {
            throw new DatasetException(file + ": unknown dataset format; the file name must end in .json (an array of objects), "
                    + ".jsonl (one object per line) or .csv (a header row, then one record per row)");
        }
        if (raw.isEmpty()) {
            throw new DatasetException(file + ": the dataset has no records");
        }
        Layout layout = mapping != null ? Layout.mapped(mapping) : Layout.detect(file, raw.get(0));
        if (mapping != null && mapping.input() != null && raw.stream().noneMatch(r -> r.node().has(mapping.input()))) {
            throw new DatasetException(file + ": no record has the input key \"" + mapping.input() + "\" of column mapping \"" + mapping
                    + "\"; record 1 has keys " + keys(raw.get(0).node()) + "; fix the mapping or leave input out of it");
        }
        Converter converter = new Converter(file, layout, conversations);
        for (RawRecord record : raw) {
            converter.add(record);
        }
        return converter.finish(raw.size());
    }

    /** One parsed object and where it came from, for messages. */
    private record RawRecord(ObjectNode node, int index, long line, boolean lineOnly) {
        String where(Path file) {
            return lineOnly ? file + " line " + line + " (record " + index + ")" : file + " record " + index + " (line " + line + ")";
        }
    }

    /** The file's text; a byte sequence that is not UTF-8 is an error naming its offset and line. */
    private static String decodeUtf8(Path file) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length);
        CoderResult result = decoder.decode(in, out, true);
        if (!result.isError()) {
            result = decoder.flush(out);
        }
        if (result.isError()) {
            int offset = in.position();
            int line = 1;
            for (int i = 0; i < offset; i++) {
                line += bytes[i] == '\n' ? 1 : 0;
            }
            throw new DatasetException(String.format(Locale.ROOT,
                    "%s: not valid UTF-8: byte 0x%02X at offset %d (line %d); save the file as UTF-8", file, bytes[offset] & 0xFF, offset,
                    line));
        }
        out.flip();
        String text = out.toString();
        // A byte order mark is legal UTF-8 but not part of the data.
        return text.startsWith("\uFEFF") ? text.substring(1) : text;
    }

    private static List<RawRecord> readJsonArray(Path file, String text) throws IOException {
        List<RawRecord> records = new ArrayList<>();
        JsonFactory factory = JSON.getFactory();
        boolean insideArray = false;
        try (JsonParser parser = factory.createParser(text)) {
            JsonToken first = parser.nextToken();
            if (first == null) {
                throw new DatasetException(file + ": the file is empty; expected a JSON array of records ([{...}, ...])");
            }
            if (first != JsonToken.START_ARRAY) {
                throw new DatasetException(file + ": expected a JSON array of records ([{...}, ...]) but the file starts with "
                        + describe(first) + (first == JsonToken.START_OBJECT ? "; if it holds one object per line, name it .jsonl" : ""));
            }
            insideArray = true;
            while (true) {
                JsonToken token = parser.nextToken();
                if (token == JsonToken.END_ARRAY) {
                    insideArray = false;
                    break;
                }
                int index = records.size() + 1;
                long line = parser.currentTokenLocation().getLineNr();
                if (token != JsonToken.START_OBJECT) {
                    throw new DatasetException(file + " record " + index + " (line " + line + "): expected a JSON object but found "
                            + describe(token));
                }
                JsonNode node = JSON.readTree(parser);
                records.add(new RawRecord((ObjectNode) node, index, line, false));
            }
            JsonToken after = parser.nextToken();
            if (after != null) {
                throw new DatasetException(file + ": unexpected " + describe(after) + " at line " + parser.currentTokenLocation().getLineNr()
                        + " after the closing ] of the record array");
            }
        } catch (JsonProcessingException e) {
            throw malformed(file, insideArray ? " record " + (records.size() + 1) : "", e);
        }
        return records;
    }

    /**
     * Streams a .jsonl file: lines are split on the byte '\n' (which never occurs inside a UTF-8
     * multi-byte sequence), each is bounded by {@link #MAX_RECORD_BYTES} before it is buffered
     * whole, then decoded strictly and parsed.
     */
    private static List<RawRecord> readJsonLines(Path file) throws IOException {
        List<RawRecord> records = new ArrayList<>();
        byte[] chunk = new byte[1 << 16];
        byte[] line = new byte[1 << 12];
        int length = 0;
        long lineNumber = 1;
        long lineStart = 0;
        long offset = 0;
        try (InputStream in = Files.newInputStream(file)) {
            int n;
            while ((n = in.read(chunk)) > 0) {
                int from = 0;
                for (int i = 0; i < n; i++) {
                    if (chunk[i] != '\n') {
                        continue;
                    }
                    line = append(file, lineNumber, line, length, chunk, from, i - from);
                    length += i - from;
                    addJsonLine(file, records, line, length, lineNumber, lineStart);
                    length = 0;
                    from = i + 1;
                    lineNumber++;
                    lineStart = offset + i + 1;
                }
                line = append(file, lineNumber, line, length, chunk, from, n - from);
                length += n - from;
                offset += n;
            }
        }
        addJsonLine(file, records, line, length, lineNumber, lineStart);
        return records;
    }

    /** line[0, length) + chunk[from, from + count), refusing a line longer than MAX_RECORD_BYTES. */
    private static byte[] append(Path file, long lineNumber, byte[] line, int length, byte[] chunk, int from, int count) {
        if ((long) length + count > MAX_RECORD_BYTES) {
            throw new DatasetException(file + " line " + lineNumber + ": the line is longer than " + MAX_RECORD_BYTES
                    + " bytes, the limit for one record (InstructionDatasets.MAX_RECORD_BYTES); a .jsonl file holds one"
                    + " {...} object per line: check that the file has line breaks, or split the record");
        }
        if (length + count > line.length) {
            line = java.util.Arrays.copyOf(line, (int) Math.min(MAX_RECORD_BYTES, Math.max(2L * line.length, length + count)));
        }
        System.arraycopy(chunk, from, line, length, count);
        return line;
    }

    private static void addJsonLine(Path file, List<RawRecord> records, byte[] bytes, int length, long lineNumber,
            long lineStart) {
        int skip = lineNumber == 1 && length >= 3 && (bytes[0] & 0xFF) == 0xEF && (bytes[1] & 0xFF) == 0xBB
                && (bytes[2] & 0xFF) == 0xBF ? 3 : 0; // a byte order mark is legal UTF-8 but not part of the data
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes, skip, length - skip);
        CharBuffer out = CharBuffer.allocate(length - skip);
        CoderResult result = decoder.decode(in, out, true);
        if (!result.isError()) {
            result = decoder.flush(out);
        }
        if (result.isError()) {
            int at = in.position();
            throw new DatasetException(String.format(Locale.ROOT,
                    "%s: not valid UTF-8: byte 0x%02X at offset %d (line %d); save the file as UTF-8", file, bytes[at] & 0xFF,
                    lineStart + at, lineNumber));
        }
        String line = out.flip().toString();
        if (line.isBlank()) {
            return;
        }
        int index = records.size() + 1;
        JsonNode node;
        try {
            node = JSON_LINE.readTree(line);
        } catch (JsonProcessingException e) {
            JsonLocation location = e.getLocation();
            String column = location == null || location.getColumnNr() < 0 ? "" : " at column " + location.getColumnNr();
            throw new DatasetException(file + " line " + lineNumber + " (record " + index + "): malformed JSON" + column + ": "
                    + jacksonMessage(e), e);
        }
        if (!node.isObject()) {
            throw new DatasetException(file + " line " + lineNumber + " (record " + index + "): expected a JSON object but found "
                    + node.getNodeType().toString().toLowerCase(Locale.ROOT) + "; a .jsonl file holds one {...} object per line");
        }
        records.add(new RawRecord((ObjectNode) node, index, lineNumber, true));
    }

    private static List<RawRecord> readCsv(Path file, String text, ColumnMapping mapping) throws IOException {
        List<RawRecord> records = new ArrayList<>();
        long line = 0;
        try (CsvParser parser = CSV.getFactory().createParser(text)) {
            parser.setSchema(CsvSchema.emptySchema().withHeader());
            JsonToken token;
            while ((token = parser.nextToken()) != null) {
                if (token != JsonToken.START_OBJECT) {
                    throw new DatasetException(file + ": unexpected CSV token " + token + " at line " + parser.currentTokenLocation().getLineNr());
                }
                if (records.isEmpty()) {
                    checkHeader(file, parser.getSchema(), mapping);
                }
                ObjectNode node = JsonNodeFactory.instance.objectNode();
                line = 0;
                while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
                    if (line == 0) {
                        // The row's first field: the line it starts on, even if a quoted field spans lines.
                        line = parser.currentTokenLocation().getLineNr();
                    }
                    String column = parser.currentName();
                    parser.nextToken();
                    node.put(column, parser.getText());
                }
                records.add(new RawRecord(node, records.size() + 1, line, false));
            }
            if (records.isEmpty()) {
                String columns = parser.getSchema().size() == 0 ? "the file is empty"
                        : "it has only the header row " + columnNames(parser.getSchema());
                throw new DatasetException(file + ": the dataset has no records (" + columns + ")");
            }
        } catch (JsonProcessingException e) {
            throw malformed(file, " record " + (records.size() + 1), e);
        }
        return records;
    }

    private static void checkHeader(Path file, CsvSchema header, ColumnMapping mapping) {
        List<String> columns = columnNames(header);
        Set<String> seen = new HashSet<>();
        for (String column : columns) {
            if (!seen.add(column)) {
                throw new DatasetException(file + " line 1: the header names column \"" + column + "\" twice; column names must be unique");
            }
        }
        if (mapping != null) {
            List<String> wanted = new ArrayList<>(List.of(mapping.instruction(), mapping.output()));
            mapping.inputKey().ifPresent(wanted::add);
            for (String key : wanted) {
                if (!seen.contains(key)) {
                    throw new DatasetException(file + " line 1: the header has no column \"" + key + "\" (from column mapping \"" + mapping
                            + "\"); its columns are " + columns);
                }
            }
        }
    }

    private static List<String> columnNames(CsvSchema schema) {
        List<String> names = new ArrayList<>();
        for (Iterator<CsvSchema.Column> it = schema.iterator(); it.hasNext();) {
            names.add(it.next().getName());
        }
        return names;
    }

    private static DatasetException malformed(Path file, String where, JsonProcessingException e) {
        JsonLocation location = e.getLocation();
        String at = location == null ? "" : " at line " + location.getLineNr() + ", column " + location.getColumnNr();
        String kind = file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".csv") ? "CSV" : "JSON";
        return new DatasetException(file + where + ": malformed " + kind + at + ": " + jacksonMessage(e), e);
    }

    /** Jackson's own description, without its note that the source is not shown (we name the file). */
    private static String jacksonMessage(JsonProcessingException e) {
        return String.valueOf(e.getOriginalMessage()).replaceAll("Source: REDACTED \\(`[A-Za-z_.]+` disabled\\); ", "");
    }

    private static String describe(JsonToken token) {
        return switch (token) {
            case START_OBJECT -> "an object";
            case START_ARRAY -> "an array";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> token.toString();
        };
    }

    static List<String> keys(JsonNode node) {
        List<String> keys = new ArrayList<>();
        node.fieldNames().forEachRemaining(keys::add);
        return keys;
    }

    /** Where each field comes from: a column mapping, or LIMA's conversations array. */
    private record Layout(String description, ColumnMapping mapping) {
        static Layout mapped(ColumnMapping mapping) {
            return new Layout("column mapping \"" + mapping + "\"", mapping);
        }

        static Layout detect(Path file, RawRecord first) {
            ObjectNode node = first.node();
            if (node.has("conversations")) {
                return new Layout("LIMA (conversations)", null);
            }
            if (node.has("instruction") && node.has("output")) {
                return new Layout("Alpaca (instruction, input, output)", ColumnMapping.ALPACA);
            }
            if (node.has("instruction") && node.has("response")) {
                return new Layout("Dolly (instruction, context, response)", ColumnMapping.DOLLY);
            }
            throw new DatasetException(first.where(file) + ": cannot tell the dataset layout from the keys " + keys(node)
                    + "; expected Alpaca (instruction, input, output), Dolly (instruction, context, response) or LIMA (conversations). "
                    + "Pass a column mapping such as \"" + suggestMapping(node, "instruction") + "\"");
        }
    }

    /** A mapping that uses the record's own keys for the fields it lacks, as a hint in messages. */
    private static String suggestMapping(JsonNode node, String preferInstruction) {
        List<String> unused = new ArrayList<>(keys(node));
        String instruction = unused.contains(preferInstruction) ? preferInstruction : unused.isEmpty() ? "yourInstructionKey" : unused.get(0);
        unused.remove(instruction);
        String output = unused.contains("output") ? "output" : unused.isEmpty() ? "yourOutputKey" : unused.get(unused.size() - 1);
        unused.remove(output);
        String input = unused.contains("input") ? "input" : unused.isEmpty() ? null : unused.get(0);
        return "instruction=" + instruction + (input == null ? "" : ",input=" + input) + ",output=" + output;
    }

    /** Turns raw records into InstructionRecords, counting what it keeps and leaves out. */
    private static final class Converter {
        private final Path file;
        private final Layout layout;
        private final Conversations conversations;
        private final List<InstructionRecord> records = new ArrayList<>();
        private int emptyOutputs;
        private int unusedTurns;
        private int conversationsWithUnusedTurns;
        /** Keys of the source records that no field is read from (e.g. Dolly's "category"), reported once. */
        private final java.util.SortedSet<String> unusedKeys = new java.util.TreeSet<>();

        Converter(Path file, Layout layout, Conversations conversations) {
            this.file = file;
            this.layout = layout;
            this.conversations = conversations;
        }

        void add(RawRecord raw) {
            ColumnMapping m = layout.mapping();
            raw.node().fieldNames().forEachRemaining(key -> {
                boolean read = m == null ? key.equals("conversations")
                        : key.equals(m.instruction()) || key.equals(m.output()) || key.equals(m.input());
                if (!read) {
                    unusedKeys.add(key);
                }
            });
            if (m == null) {
                addConversation(raw);
                return;
            }
            String instruction = text(raw, m.instruction(), true);
            String input = m.input() == null ? "" : text(raw, m.input(), false);
            String output = text(raw, m.output(), true);
            keep(new InstructionRecord(instruction, input, output));
        }

        private void addConversation(RawRecord raw) {
            JsonNode turns = raw.node().get("conversations");
            if (turns == null) {
                throw missing(raw, "conversations");
            }
            if (!turns.isArray()) {
                throw new DatasetException(raw.where(file) + ": field \"conversations\" must be an array of strings (user, assistant, "
                        + "user, ...) but is " + nodeType(turns));
            }
            if (turns.size() < 2) {
                throw new DatasetException(raw.where(file) + ": \"conversations\" has " + turns.size()
                        + " turn(s); it needs at least a user turn and the assistant's reply");
            }
            List<String> texts = new ArrayList<>();
            for (int i = 0; i < turns.size(); i++) {
                JsonNode turn = turns.get(i);
                if (!turn.isTextual()) {
                    throw new DatasetException(raw.where(file) + ": \"conversations\" turn " + (i + 1) + " must be a string but is "
                            + nodeType(turn));
                }
                texts.add(turn.asText());
            }
            int pairs = conversations == Conversations.ALL_TURNS ? texts.size() / 2 : 1;
            for (int p = 0; p < pairs; p++) {
                keep(InstructionRecord.of(texts.get(2 * p), texts.get(2 * p + 1)));
            }
            int unused = texts.size() - 2 * pairs;
            if (unused > 0) {
                unusedTurns += unused;
                conversationsWithUnusedTurns++;
            }
        }

        private void keep(InstructionRecord record) {
            emptyOutputs += record.output().isEmpty() ? 1 : 0;
            records.add(record);
        }

        private String text(RawRecord raw, String key, boolean required) {
            JsonNode value = raw.node().get(key);
            if (value == null || value.isNull()) {
                if (!required) {
                    return "";
                }
                if (value == null) {
                    throw missing(raw, key);
                }
                throw new DatasetException(raw.where(file) + ": field \"" + key + "\" is null; it must be a string");
            }
            if (!value.isTextual()) {
                throw new DatasetException(raw.where(file) + ": field \"" + key + "\" must be a string but is " + nodeType(value)
                        + " (" + abbreviate(value.toString()) + "); write it in quotes");
            }
            return value.asText();
        }

        private DatasetException missing(RawRecord raw, String key) {
            String source = raw.index() == 1 || layout.description().startsWith("column mapping")
                    ? layout.description() : layout.description() + ", detected from record 1";
            return new DatasetException(raw.where(file) + ": missing field \"" + key + "\" required by " + source + "; the record has keys "
                    + keys(raw.node()) + ". If the data uses other names, pass a column mapping such as \""
                    + suggestMapping(raw.node(), layout.mapping() == null ? "instruction" : layout.mapping().instruction()) + "\"");
        }

        List<InstructionRecord> finish(int rawCount) {
            if (records.isEmpty()) {
                throw new DatasetException(file + ": the dataset has no records");
            }
            LOG.info("Loaded {} instruction records from {} ({} source records, layout {})", records.size(), file, rawCount,
                    layout.description());
            if (!unusedKeys.isEmpty()) {
                LOG.info("{}: the keys {} are not read by layout {}; map them with a column mapping if they matter", file,
                        unusedKeys, layout.description());
            }
            if (emptyOutputs > 0) {
                LOG.warn("{}: {} of {} records have an empty output; they are kept (with an EOS appended they teach the model "
                        + "to stop at once, as in LitGPT)", file, emptyOutputs, records.size());
            }
            if (unusedTurns > 0) {
                LOG.info("{}: {} turn(s) in {} conversation(s) were not used: {}", file, unusedTurns, conversationsWithUnusedTurns,
                        conversations == Conversations.FIRST_TURN
                                ? "only the first (user, assistant) pair is used; load with Conversations.ALL_TURNS for the rest"
                                : "a final user turn has no assistant reply to learn from");
            }
            return Collections.unmodifiableList(records);
        }
    }

    private static String nodeType(JsonNode node) {
        return switch (node.getNodeType()) {
            case ARRAY -> "an array";
            case OBJECT, POJO -> "an object";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL, MISSING -> "null";
            case STRING -> "a string";
            case BINARY -> "binary";
        };
    }

    private static String abbreviate(String s) {
        return s.length() <= 40 ? s : s.substring(0, 37) + "...";
    }
}
