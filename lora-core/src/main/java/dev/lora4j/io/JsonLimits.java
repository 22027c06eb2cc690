package dev.lora4j.io;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The bounds every JSON file lora4j reads is held to, and the helpers that apply them before
 * anything is allocated. The files (config.json, adapter_config.json, tokenizer.json,
 * trainer_state.json, datasets, safetensors headers) are a few levels deep and hold numbers of a
 * few digits; a deeper nesting or a longer number is hostile or damaged, and Jackson reports it
 * as a {@link com.fasterxml.jackson.core.exc.StreamConstraintsException} before it recurses or
 * allocates. Such exceptions carry no location, which {@link #describe} handles.
 */
public final class JsonLimits {
    /** Deepest nesting of arrays and objects accepted (real files use at most about 10). */
    public static final int MAX_NESTING_DEPTH = 128;
    /** Most characters in one JSON number (a double needs at most 24; a long 20). */
    public static final int MAX_NUMBER_LENGTH = 100;

    private static final StreamReadConstraints CONSTRAINTS = StreamReadConstraints.builder()
            .maxNestingDepth(MAX_NESTING_DEPTH)
            .maxNumberLength(MAX_NUMBER_LENGTH)
            .build();

    private JsonLimits() {
    }

    /** A mapper builder whose parsers enforce {@link #MAX_NESTING_DEPTH} and {@link #MAX_NUMBER_LENGTH}. */
    public static JsonMapper.Builder mapperBuilder() {
        return JsonMapper.builder(JsonFactory.builder().streamReadConstraints(CONSTRAINTS).build());
    }

    /** A plain mapper with the bounds. */
    public static JsonMapper mapper() {
        return mapperBuilder().build();
    }

    /**
     * Jackson's description of a parse failure with its line and column when it has them
     * ("at line 3, column 7: Unexpected character ..."), or just the description (a limit
     * exceeded has no location).
     */
    public static String describe(JsonProcessingException e) {
        JsonLocation at = e.getLocation();
        String message = e.getOriginalMessage() == null ? e.getClass().getSimpleName() : e.getOriginalMessage();
        message = message.replaceAll("Source: REDACTED \\(`[A-Za-z_.]+` disabled\\); ", "");
        return at == null || at.getLineNr() < 0 ? message : "at line " + at.getLineNr() + ", column " + at.getColumnNr() + ": " + message;
    }

    /**
     * The text of a small JSON file, after checking that its size is at most {@code maxBytes}
     * (so that a huge or endless file is refused before it is read).
     *
     * @param what names the kind of file in the message, e.g. "trainer state"
     * @throws IOException if the file cannot be read or is larger than {@code maxBytes}
     */
    public static String readSmallFile(Path file, long maxBytes, String what) throws IOException {
        long size = Files.size(file);
        if (size > maxBytes) {
            throw new IOException(file + ": " + what + " is " + size + " bytes, more than the limit of " + maxBytes
                    + " bytes for such a file; the file is damaged or not a " + what);
        }
        return Files.readString(file, StandardCharsets.UTF_8);
    }
}
