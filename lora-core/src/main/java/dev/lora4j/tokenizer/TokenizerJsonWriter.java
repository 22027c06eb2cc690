package dev.lora4j.tokenizer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Writes a SentencePiece-style BPE {@code tokenizer.json} in the layout Hugging Face
 * {@code tokenizers} uses for Llama-2: normalizer Prepend("▁") + Replace(" " → "▁"), no
 * pre-tokenizer, {@code byte_fallback}, TemplateProcessing that adds {@code <s>}, and the decoder
 * chain Replace("▁" → " "), ByteFallback, Fuse, Strip(one leading space).
 *
 * <p>Ids: {@code <unk>}=0, {@code <s>}=1, {@code </s>}=2 (special added tokens), {@code <0x00>}..
 * {@code <0xFF>}=3..258, then the given pieces in order from 259. Merges are written in rank
 * order as {@code "left right"} strings, the form every version of {@code tokenizers} reads
 * (which is why pieces may not contain a plain space: spaces are spelled ▁ after normalization).
 * Text outside the pieces still round-trips through the byte tokens.
 */
public final class TokenizerJsonWriter {
    /** Spaces are spelled with this character inside pieces. */
    public static final String SPACE_MARK = "\u2581";
    public static final int UNK_ID = 0;
    public static final int BOS_ID = 1;
    public static final int EOS_ID = 2;
    public static final int FIRST_PIECE_ID = 3 + 256;

    private static final String[] SPECIALS = {"<unk>", "<s>", "</s>"};

    /** One BPE merge: the adjacent tokens {@code left} and {@code right} become {@code left + right}. */
    public record Merge(String left, String right) {
        public Merge {
            Objects.requireNonNull(left, "left");
            Objects.requireNonNull(right, "right");
        }
    }

    private TokenizerJsonWriter() {
    }

    /** Writes the tokenizer.json (UTF-8) for {@code pieces} and {@code merges}; see {@link #toJson}. */
    public static void write(Path file, List<String> pieces, List<Merge> merges) throws IOException {
        String json = toJson(pieces, merges);
        Files.writeString(file, json, StandardCharsets.UTF_8);
    }

    /**
     * Writes {@code folder/tokenizer.json} and a {@code folder/tokenizer_config.json} naming
     * {@code <s>}, {@code </s>} and {@code <unk>} as BOS, EOS and unknown token (BOS added, EOS
     * not; legacy Llama behaviour, no clean-up of spaces), so that transformers' AutoTokenizer
     * and {@link HfTokenizer#load} know all three. Creates the folder if needed.
     */
    public static void writeFolder(Path folder, List<String> pieces, List<Merge> merges) throws IOException {
        String json = toJson(pieces, merges);
        Files.createDirectories(folder);
        Files.writeString(folder.resolve("tokenizer.json"), json, StandardCharsets.UTF_8);
        Files.writeString(folder.resolve("tokenizer_config.json"), CONFIG, StandardCharsets.UTF_8);
    }

    private static final String CONFIG = """
            {
              "add_bos_token": true,
              "add_eos_token": false,
              "bos_token": "<s>",
              "eos_token": "</s>",
              "unk_token": "<unk>",
              "pad_token": null,
              "legacy": true,
              "clean_up_tokenization_spaces": false,
              "tokenizer_class": "LlamaTokenizer"
            }
            """;

    /**
     * The tokenizer.json text.
     *
     * @param pieces vocabulary after the specials and byte tokens: non-empty, distinct, without
     *               plain spaces, none equal to a special or byte token
     * @param merges in rank order (first applied first); both parts and their concatenation must
     *               be tokens
     * @throws IllegalArgumentException naming the offending piece or merge
     */
    public static String toJson(List<String> pieces, List<Merge> merges) {
        Map<String, Integer> vocab = vocabulary(pieces);
        for (int i = 0; i < merges.size(); i++) {
            Merge m = merges.get(i);
            for (String part : new String[] {m.left(), m.right(), m.left() + m.right()}) {
                if (!vocab.containsKey(part)) {
                    throw new IllegalArgumentException("merges[" + i + "] (\"" + m.left() + "\", \"" + m.right()
                            + "\") needs \"" + part + "\", which is not a token; add it to pieces");
                }
            }
        }
        StringWriter out = new StringWriter(32 * (vocab.size() + merges.size()));
        try {
            write(out, pieces, merges);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString();
    }

    private static Map<String, Integer> vocabulary(List<String> pieces) {
        Map<String, Integer> vocab = new HashMap<>();
        for (int i = 0; i < SPECIALS.length; i++) {
            vocab.put(SPECIALS[i], i);
        }
        for (int b = 0; b < 256; b++) {
            vocab.put(byteToken(b), 3 + b);
        }
        for (int i = 0; i < pieces.size(); i++) {
            String piece = pieces.get(i);
            if (piece == null || piece.isEmpty()) {
                throw new IllegalArgumentException("pieces[" + i + "] is " + (piece == null ? "null" : "empty")
                        + "; every piece must be a non-empty string");
            }
            if (piece.contains(" ")) {
                throw new IllegalArgumentException("pieces[" + i + "] \"" + piece + "\" contains a space; spell spaces as "
                        + SPACE_MARK + " (U+2581), which is what the normalizer turns them into");
            }
            Integer previous = vocab.putIfAbsent(piece, FIRST_PIECE_ID + i);
            if (previous != null) {
                throw new IllegalArgumentException("pieces[" + i + "] \"" + piece + "\" is already token " + previous
                        + (previous < FIRST_PIECE_ID ? " (a special or byte token, which the writer adds itself)"
                        : " (pieces[" + (previous - FIRST_PIECE_ID) + "])") + "; pieces must be distinct");
            }
        }
        return vocab;
    }

    private static String byteToken(int b) {
        return String.format("<0x%02X>", b);
    }

    private static void write(Writer writer, List<String> pieces, List<Merge> merges) throws IOException {
        try (JsonGenerator g = new JsonFactory().createGenerator(writer)) {
            g.useDefaultPrettyPrinter();
            g.writeStartObject();
            g.writeStringField("version", "1.0");
            g.writeNullField("truncation");
            g.writeNullField("padding");
            g.writeArrayFieldStart("added_tokens");
            for (int i = 0; i < SPECIALS.length; i++) {
                g.writeStartObject();
                g.writeNumberField("id", i);
                g.writeStringField("content", SPECIALS[i]);
                g.writeBooleanField("single_word", false);
                g.writeBooleanField("lstrip", false);
                g.writeBooleanField("rstrip", false);
                g.writeBooleanField("normalized", false);
                g.writeBooleanField("special", true);
                g.writeEndObject();
            }
            g.writeEndArray();

            g.writeObjectFieldStart("normalizer");
            g.writeStringField("type", "Sequence");
            g.writeArrayFieldStart("normalizers");
            g.writeStartObject();
            g.writeStringField("type", "Prepend");
            g.writeStringField("prepend", SPACE_MARK);
            g.writeEndObject();
            writeReplace(g, " ", SPACE_MARK);
            g.writeEndArray();
            g.writeEndObject();

            g.writeNullField("pre_tokenizer");

            g.writeObjectFieldStart("post_processor");
            g.writeStringField("type", "TemplateProcessing");
            g.writeArrayFieldStart("single");
            writeTemplatePiece(g, "SpecialToken", "<s>", 0);
            writeTemplatePiece(g, "Sequence", "A", 0);
            g.writeEndArray();
            g.writeArrayFieldStart("pair");
            writeTemplatePiece(g, "SpecialToken", "<s>", 0);
            writeTemplatePiece(g, "Sequence", "A", 0);
            writeTemplatePiece(g, "SpecialToken", "<s>", 1);
            writeTemplatePiece(g, "Sequence", "B", 1);
            g.writeEndArray();
            g.writeObjectFieldStart("special_tokens");
            g.writeObjectFieldStart("<s>");
            g.writeStringField("id", "<s>");
            g.writeArrayFieldStart("ids");
            g.writeNumber(BOS_ID);
            g.writeEndArray();
            g.writeArrayFieldStart("tokens");
            g.writeString("<s>");
            g.writeEndArray();
            g.writeEndObject();
            g.writeEndObject();
            g.writeEndObject();

            g.writeObjectFieldStart("decoder");
            g.writeStringField("type", "Sequence");
            g.writeArrayFieldStart("decoders");
            writeReplace(g, SPACE_MARK, " ");
            g.writeStartObject();
            g.writeStringField("type", "ByteFallback");
            g.writeEndObject();
            g.writeStartObject();
            g.writeStringField("type", "Fuse");
            g.writeEndObject();
            g.writeStartObject();
            g.writeStringField("type", "Strip");
            g.writeStringField("content", " ");
            g.writeNumberField("start", 1);
            g.writeNumberField("stop", 0);
            g.writeEndObject();
            g.writeEndArray();
            g.writeEndObject();

            g.writeObjectFieldStart("model");
            g.writeStringField("type", "BPE");
            g.writeNullField("dropout");
            g.writeStringField("unk_token", "<unk>");
            g.writeNullField("continuing_subword_prefix");
            g.writeNullField("end_of_word_suffix");
            g.writeBooleanField("fuse_unk", true);
            g.writeBooleanField("byte_fallback", true);
            g.writeBooleanField("ignore_merges", false);
            g.writeObjectFieldStart("vocab");
            for (int i = 0; i < SPECIALS.length; i++) {
                g.writeNumberField(SPECIALS[i], i);
            }
            for (int b = 0; b < 256; b++) {
                g.writeNumberField(byteToken(b), 3 + b);
            }
            for (int i = 0; i < pieces.size(); i++) {
                g.writeNumberField(pieces.get(i), FIRST_PIECE_ID + i);
            }
            g.writeEndObject();
            g.writeArrayFieldStart("merges");
            for (Merge m : merges) {
                g.writeString(m.left() + " " + m.right());
            }
            g.writeEndArray();
            g.writeEndObject();
            g.writeEndObject();
        }
    }

    private static void writeReplace(JsonGenerator g, String from, String to) throws IOException {
        g.writeStartObject();
        g.writeStringField("type", "Replace");
        g.writeObjectFieldStart("pattern");
        g.writeStringField("String", from);
        g.writeEndObject();
        g.writeStringField("content", to);
        g.writeEndObject();
    }

    private static void writeTemplatePiece(JsonGenerator g, String kind, String id, int typeId) throws IOException {
        g.writeStartObject();
        g.writeObjectFieldStart(kind);
        g.writeStringField("id", id);
        g.writeNumberField("type_id", typeId);
        g.writeEndObject();
        g.writeEndObject();
    }
}
