package dev.lora4j.tokenizer;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import dev.lora4j.tokenizer.TokenizerPipeline.Behavior;
import dev.lora4j.tokenizer.TokenizerPipeline.Decoder;
import dev.lora4j.tokenizer.TokenizerPipeline.Normalizer;
import dev.lora4j.tokenizer.TokenizerPipeline.PostProcessor;
import dev.lora4j.tokenizer.TokenizerPipeline.PreTokenizer;
import dev.lora4j.tokenizer.TokenizerPipeline.PrependScheme;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Turns a parsed {@code tokenizer.json} (the serialization of Hugging Face {@code tokenizers})
 * into pipeline parts. Anything outside the supported subset is rejected with the JSON path of
 * the offending value and the list of what is supported, rather than approximated.
 */
final class TokenizerJsonReader {
    private static final String NORMALIZERS = "Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD";
    private static final String PRE_TOKENIZERS = "Sequence, Metaspace, ByteLevel, Split, Digits";
    private static final String PROCESSORS = "TemplateProcessing, ByteLevel, Sequence, RobertaProcessing, BertProcessing";
    private static final String DECODERS = "Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel";

    record AddedToken(int id, String content, boolean singleWord, boolean lstrip, boolean rstrip,
                      boolean normalized, boolean special) {
    }

    record Parsed(BpeModel model, Map<String, Integer> vocab, List<AddedToken> addedTokens,
                  Normalizer normalizer, PreTokenizer preTokenizer, PostProcessor postProcessor,
                  Decoder decoder) {
    }

    private final String file;
    private Map<String, Integer> vocab;
    private List<String[]> merges;

    private TokenizerJsonReader(String file) {
        this.file = file;
    }

    /**
     * Reads a tokenizer.json from a parser made by an ObjectMapper. The large model.vocab and
     * model.merges are streamed straight into their tables; everything else goes through a tree.
     *
     * @param file names the file in error messages
     */
    static Parsed read(JsonParser parser, String file) throws IOException {
        return new TokenizerJsonReader(file).parse(parser);
    }

    private IllegalArgumentException error(String path, String problem) {
        return new IllegalArgumentException(file + ": " + path + " " + problem);
    }

    private IllegalArgumentException unsupported(String path, JsonNode value, String kind, String supported) {
        return error(path, "is " + value + ", an unsupported " + kind + "; lora4j supports: " + supported);
    }

    private Parsed parse(JsonParser parser) throws IOException {
        if (parser.nextToken() != JsonToken.START_OBJECT) {
            throw error("(root)", "is not a JSON object; expected a Hugging Face tokenizer.json");
        }
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String name = parser.currentName();
            JsonToken value = parser.nextToken();
            if (name.equals("model") && value == JsonToken.START_OBJECT) {
                root.set(name, streamModel(parser));
            } else {
                root.set(name, parser.readValueAsTree());
            }
        }
        JsonNode modelNode = root.path("model");
        if (!modelNode.isObject()) {
            throw error("model", "is missing; a tokenizer.json must describe its model");
        }
        BpeModel model = model(modelNode);
        List<AddedToken> added = addedTokens(root.path("added_tokens"));
        Normalizer normalizer = isAbsent(root.get("normalizer")) ? null : normalizer(root.get("normalizer"), "normalizer");
        PreTokenizer preTokenizer = isAbsent(root.get("pre_tokenizer")) ? null
                : preTokenizer(root.get("pre_tokenizer"), "pre_tokenizer");
        PostProcessor postProcessor = isAbsent(root.get("post_processor")) ? null
                : postProcessor(root.get("post_processor"), "post_processor");
        Decoder decoder = isAbsent(root.get("decoder")) ? null : decoder(root.get("decoder"), "decoder");
        return new Parsed(model, vocab, added, normalizer, preTokenizer, postProcessor, decoder);
    }

    /** The model object with vocab and merges read into {@link #vocab} and {@link #merges}. */
    private ObjectNode streamModel(JsonParser parser) throws IOException {
        ObjectNode node = JsonNodeFactory.instance.objectNode();
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String name = parser.currentName();
            JsonToken value = parser.nextToken();
            if (name.equals("vocab") && value == JsonToken.START_OBJECT) {
                vocab = new HashMap<>();
                while (parser.nextToken() == JsonToken.FIELD_NAME) {
                    String token = parser.currentName();
                    JsonToken id = parser.nextToken();
                    if (id != JsonToken.VALUE_NUMBER_INT || parser.getNumberType() == JsonParser.NumberType.BIG_INTEGER
                            || parser.getLongValue() < 0 || parser.getLongValue() > HfTokenizer.MAX_TOKEN_ID) {
                        throw error("model.vocab[\"" + shorten(token) + "\"]", "is " + shorten(parser.getText())
                                + "; ids must be integers in [0, " + HfTokenizer.MAX_TOKEN_ID + "] (HfTokenizer.MAX_TOKEN_ID)");
                    }
                    vocab.put(token, parser.getIntValue());
                }
            } else if (name.equals("merges") && value == JsonToken.START_ARRAY) {
                merges = new ArrayList<>();
                for (JsonToken t = parser.nextToken(); t != JsonToken.END_ARRAY; t = parser.nextToken()) {
                    merges.add(merge(parser, t, merges.size()));
                }
            } else {
                node.set(name, parser.readValueAsTree());
            }
        }
        return node;
    }

    /** One merge: {@code "a b"} (older files) or {@code ["a", "b"]}. */
    private String[] merge(JsonParser parser, JsonToken token, int index) throws IOException {
        String path = "model.merges[" + index + "]";
        if (token == JsonToken.VALUE_STRING) {
            String[] parts = parser.getText().split(" ", -1);
            if (parts.length != 2) {
                throw error(path, "is \"" + parser.getText() + "\"; a merge string must be two tokens separated by one space");
            }
            return parts;
        }
        if (token == JsonToken.START_ARRAY && parser.nextToken() == JsonToken.VALUE_STRING) {
            String left = parser.getText();
            if (parser.nextToken() == JsonToken.VALUE_STRING) {
                String right = parser.getText();
                if (parser.nextToken() == JsonToken.END_ARRAY) {
                    return new String[] {left, right};
                }
            }
        }
        throw error(path, "is not a merge; expected \"a b\" or [\"a\", \"b\"]");
    }

    /** A value cut to 80 characters for a message. */
    static String shorten(String value) {
        return value.length() <= 80 ? value : value.substring(0, 80) + "... (" + value.length() + " characters)";
    }

    private static boolean isAbsent(JsonNode node) {
        return node == null || node.isNull() || node.isMissingNode();
    }

    // ---------------------------------------------------------------- model

    private BpeModel model(JsonNode node) {
        JsonNode type = node.get("type");
        if (isAbsent(type)) {
            if (merges == null) {
                throw error("model.type", "is missing and the model has no merges; lora4j supports BPE models");
            }
        } else if (!"BPE".equals(type.asText())) {
            throw unsupported("model.type", type, "model type", "BPE");
        }
        JsonNode dropout = node.get("dropout");
        if (!isAbsent(dropout) && dropout.asDouble() != 0.0) {
            throw error("model.dropout", "is " + dropout + "; lora4j supports only null (no BPE-dropout)");
        }
        if (vocab == null) {
            throw error("model.vocab", "is " + node.get("vocab") + "; expected an object of token → id");
        }
        if (merges == null) {
            throw error("model.merges", "is " + node.get("merges") + "; expected an array of merges");
        }
        return new BpeModel(vocab, merges, optionalText(node, "continuing_subword_prefix", "model"),
                optionalText(node, "end_of_word_suffix", "model"), bool(node, "byte_fallback", false, "model"),
                bool(node, "fuse_unk", false, "model"), bool(node, "ignore_merges", false, "model"),
                optionalText(node, "unk_token", "model"), file + ": model");
    }

    private List<AddedToken> addedTokens(JsonNode node) {
        List<AddedToken> tokens = new ArrayList<>();
        if (isAbsent(node)) {
            return tokens;
        }
        if (!node.isArray()) {
            throw error("added_tokens", "is not an array");
        }
        for (int i = 0; i < node.size(); i++) {
            String path = "added_tokens[" + i + "]";
            JsonNode t = node.get(i);
            if (!t.isObject()) {
                throw error(path, "is " + shorten(t.toString()) + "; expected an object {id, content, ...}");
            }
            JsonNode id = t.get("id");
            if (id == null || !id.isIntegralNumber() || !id.canConvertToInt() || id.asInt() < 0 || id.asInt() > HfTokenizer.MAX_TOKEN_ID) {
                throw error(path + ".id", "is " + id + "; expected an integer in [0, " + HfTokenizer.MAX_TOKEN_ID
                        + "] (HfTokenizer.MAX_TOKEN_ID)");
            }
            String content = optionalText(t, "content", path);
            if (content == null) {
                throw error(path + ".content", "is missing");
            }
            boolean special = bool(t, "special", false, path);
            tokens.add(new AddedToken(id.asInt(), content, bool(t, "single_word", false, path),
                    bool(t, "lstrip", false, path), bool(t, "rstrip", false, path),
                    bool(t, "normalized", !special, path), special));
        }
        return tokens;
    }

    // ---------------------------------------------------------------- normalizers

    private Normalizer normalizer(JsonNode node, String path) {
        String type = type(node, path);
        switch (type) {
            case "Sequence": {
                List<Normalizer> parts = new ArrayList<>();
                JsonNode list = array(node, "normalizers", path);
                for (int i = 0; i < list.size(); i++) {
                    parts.add(normalizer(list.get(i), path + ".normalizers[" + i + "]"));
                }
                return new TokenizerPipeline.SequenceNormalizer(List.copyOf(parts));
            }
            case "Prepend":
                return new TokenizerPipeline.Prepend(requiredText(node, "prepend", path));
            case "Replace":
                return replace(node, path);
            case "NFC":
                return new TokenizerPipeline.UnicodeNormalization(java.text.Normalizer.Form.NFC);
            case "NFD":
                return new TokenizerPipeline.UnicodeNormalization(java.text.Normalizer.Form.NFD);
            case "NFKC":
                return new TokenizerPipeline.UnicodeNormalization(java.text.Normalizer.Form.NFKC);
            case "NFKD":
                return new TokenizerPipeline.UnicodeNormalization(java.text.Normalizer.Form.NFKD);
            default:
                throw unsupported(path + ".type", node.get("type"), "normalizer", NORMALIZERS);
        }
    }

    private TokenizerPipeline.Replace replace(JsonNode node, String path) {
        String content = requiredText(node, "content", path);
        JsonNode literal = node.path("pattern").get("String");
        if (literal != null && literal.isTextual() && !literal.asText().isEmpty()) {
            return TokenizerPipeline.Replace.literal(literal.asText(), content);
        }
        return new TokenizerPipeline.Replace(pattern(node, path), null, content);
    }

    /** A {@code {"String": s}} or {@code {"Regex": r}} pattern. */
    private Pattern pattern(JsonNode node, String path) {
        JsonNode pattern = node.path("pattern");
        if (pattern.has("String")) {
            return Pattern.compile(Pattern.quote(requiredText(pattern, "String", path + ".pattern")));
        }
        if (pattern.has("Regex")) {
            String regex = requiredText(pattern, "Regex", path + ".pattern");
            try {
                return TokenizerPipeline.compileOniguruma(regex);
            } catch (PatternSyntaxException e) {
                throw error(path + ".pattern.Regex", "is " + pattern.get("Regex")
                        + ", which Java's regex engine cannot compile: " + e.getDescription());
            }
        }
        throw error(path + ".pattern", "is " + pattern + "; expected {\"String\": ...} or {\"Regex\": ...}");
    }

    // ---------------------------------------------------------------- pre-tokenizers

    private PreTokenizer preTokenizer(JsonNode node, String path) {
        String type = type(node, path);
        switch (type) {
            case "Sequence": {
                List<PreTokenizer> parts = new ArrayList<>();
                JsonNode list = array(node, "pretokenizers", path);
                for (int i = 0; i < list.size(); i++) {
                    parts.add(preTokenizer(list.get(i), path + ".pretokenizers[" + i + "]"));
                }
                return new TokenizerPipeline.SequencePreTokenizer(List.copyOf(parts));
            }
            case "Metaspace":
                return new TokenizerPipeline.Metaspace(replacement(node, path), prependScheme(node, path),
                        bool(node, "split", true, path));
            case "ByteLevel":
                return new TokenizerPipeline.ByteLevel(bool(node, "add_prefix_space", true, path),
                        bool(node, "use_regex", true, path));
            case "Split": {
                Behavior behavior = behavior(node, path);
                boolean invert = bool(node, "invert", false, path);
                Pattern pattern = pattern(node, path);
                WordSplitter fast = node.path("pattern").has("Regex")
                        ? WordSplitter.forRegex(node.path("pattern").path("Regex").asText()) : null;
                return fast != null && behavior == Behavior.ISOLATED && !invert ? new TokenizerPipeline.FastSplit(fast)
                        : new TokenizerPipeline.Split(pattern, behavior, invert);
            }
            case "Digits":
                return new TokenizerPipeline.Digits(bool(node, "individual_digits", false, path));
            default:
                throw unsupported(path + ".type", node.get("type"), "pre-tokenizer", PRE_TOKENIZERS);
        }
    }

    private int replacement(JsonNode node, String path) {
        String replacement = requiredText(node, "replacement", path);
        if (replacement.codePointCount(0, replacement.length()) != 1) {
            throw error(path + ".replacement", "is \"" + replacement + "\"; it must be a single character");
        }
        return replacement.codePointAt(0);
    }

    /** {@code prepend_scheme}, or the older {@code add_prefix_space} (false means never). */
    private PrependScheme prependScheme(JsonNode node, String path) {
        JsonNode addPrefixSpace = node.get("add_prefix_space");
        JsonNode scheme = node.get("prepend_scheme");
        if (!isAbsent(addPrefixSpace) && !addPrefixSpace.asBoolean()) {
            return PrependScheme.NEVER;
        }
        if (isAbsent(scheme)) {
            return PrependScheme.ALWAYS;
        }
        switch (scheme.asText()) {
            case "first":
                return PrependScheme.FIRST;
            case "always":
                return PrependScheme.ALWAYS;
            case "never":
                return PrependScheme.NEVER;
            default:
                throw unsupported(path + ".prepend_scheme", scheme, "prepend scheme", "first, always, never");
        }
    }

    private Behavior behavior(JsonNode node, String path) {
        JsonNode behavior = node.get("behavior");
        String value = behavior == null ? "" : behavior.asText();
        switch (value) {
            case "Removed":
                return Behavior.REMOVED;
            case "Isolated":
                return Behavior.ISOLATED;
            case "MergedWithPrevious":
                return Behavior.MERGED_WITH_PREVIOUS;
            case "MergedWithNext":
                return Behavior.MERGED_WITH_NEXT;
            case "Contiguous":
                return Behavior.CONTIGUOUS;
            default:
                throw unsupported(path + ".behavior", behavior, "split behavior",
                        "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
        }
    }

    // ---------------------------------------------------------------- post-processors

    private PostProcessor postProcessor(JsonNode node, String path) {
        String type = type(node, path);
        switch (type) {
            case "TemplateProcessing":
                return template(node, path);
            case "ByteLevel":
                return new TokenizerPipeline.Identity();
            case "Sequence": {
                List<PostProcessor> parts = new ArrayList<>();
                JsonNode list = array(node, "processors", path);
                for (int i = 0; i < list.size(); i++) {
                    parts.add(postProcessor(list.get(i), path + ".processors[" + i + "]"));
                }
                return new TokenizerPipeline.SequenceProcessor(List.copyOf(parts));
            }
            case "RobertaProcessing":
            case "BertProcessing": {
                int[] cls = {tokenPairId(node, "cls", path)};
                int[] sep = {tokenPairId(node, "sep", path)};
                return new TokenizerPipeline.Template(java.util.Arrays.asList(cls, null, sep));
            }
            default:
                throw unsupported(path + ".type", node.get("type"), "post-processor", PROCESSORS);
        }
    }

    private int tokenPairId(JsonNode node, String field, String path) {
        JsonNode pair = node.get(field);
        if (pair == null || !pair.isArray() || pair.size() != 2 || !pair.get(1).isIntegralNumber() || !pair.get(1).canConvertToInt()
                || pair.get(1).asInt() < 0 || pair.get(1).asInt() > HfTokenizer.MAX_TOKEN_ID) {
            throw error(path + "." + field, "is " + pair + "; expected [token, id]");
        }
        return pair.get(1).asInt();
    }

    /** The {@code single} template; items are {@code {"SpecialToken": {"id": name}}} or {@code {"Sequence": {"id": "A"}}}. */
    private PostProcessor template(JsonNode node, String path) {
        JsonNode single = array(node, "single", path);
        JsonNode specials = node.path("special_tokens");
        List<int[]> items = new ArrayList<>();
        for (int i = 0; i < single.size(); i++) {
            String itemPath = path + ".single[" + i + "]";
            JsonNode item = single.get(i);
            if (item.has("Sequence")) {
                String id = item.get("Sequence").path("id").asText();
                if (!"A".equals(id)) {
                    throw error(itemPath + ".Sequence.id", "is \"" + id + "\"; a single-sequence template can only use A");
                }
                items.add(null);
            } else if (item.has("SpecialToken")) {
                String name = item.get("SpecialToken").path("id").asText();
                JsonNode special = specials.get(name);
                if (special == null || !special.path("ids").isArray()) {
                    throw error(itemPath + ".SpecialToken.id", "is \"" + name
                            + "\", which " + path + ".special_tokens does not define with its ids");
                }
                int[] ids = new int[special.get("ids").size()];
                for (int k = 0; k < ids.length; k++) {
                    JsonNode id = special.get("ids").get(k);
                    if (!id.isIntegralNumber() || !id.canConvertToInt() || id.asInt() < 0 || id.asInt() > HfTokenizer.MAX_TOKEN_ID) {
                        throw error(path + ".special_tokens[\"" + shorten(name) + "\"].ids[" + k + "]", "is " + shorten(id.toString())
                                + "; expected a token id in [0, " + HfTokenizer.MAX_TOKEN_ID + "]");
                    }
                    ids[k] = id.asInt();
                }
                items.add(ids);
            } else {
                throw error(itemPath, "is " + item + "; expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
            }
        }
        return new TokenizerPipeline.Template(java.util.Collections.unmodifiableList(items));
    }

    // ---------------------------------------------------------------- decoders

    private Decoder decoder(JsonNode node, String path) {
        String type = type(node, path);
        switch (type) {
            case "Sequence": {
                List<Decoder> parts = new ArrayList<>();
                JsonNode list = array(node, "decoders", path);
                for (int i = 0; i < list.size(); i++) {
                    parts.add(decoder(list.get(i), path + ".decoders[" + i + "]"));
                }
                return new TokenizerPipeline.SequenceDecoder(List.copyOf(parts));
            }
            case "Replace":
                return new TokenizerPipeline.ReplaceDecoder(replace(node, path));
            case "ByteFallback":
                return new TokenizerPipeline.ByteFallbackDecoder();
            case "Fuse":
                return new TokenizerPipeline.FuseDecoder();
            case "Strip": {
                String content = requiredText(node, "content", path);
                if (content.codePointCount(0, content.length()) != 1) {
                    throw error(path + ".content", "is \"" + content + "\"; it must be a single character");
                }
                return new TokenizerPipeline.StripDecoder(content.codePointAt(0), nonNegative(node, "start", path),
                        nonNegative(node, "stop", path));
            }
            case "Metaspace":
                return new TokenizerPipeline.MetaspaceDecoder(replacement(node, path),
                        prependScheme(node, path) != PrependScheme.NEVER);
            case "ByteLevel":
                return new TokenizerPipeline.ByteLevelDecoder();
            default:
                throw unsupported(path + ".type", node.get("type"), "decoder", DECODERS);
        }
    }

    // ---------------------------------------------------------------- JSON helpers

    private String type(JsonNode node, String path) {
        if (node == null || !node.isObject()) {
            throw error(path, "is " + node + "; expected an object with a \"type\"");
        }
        JsonNode type = node.get("type");
        if (type == null || !type.isTextual()) {
            throw error(path + ".type", "is " + type + "; expected the component's type name");
        }
        return type.asText();
    }

    private JsonNode array(JsonNode node, String field, String path) {
        JsonNode value = node.get(field);
        if (value == null || !value.isArray()) {
            throw error(path + "." + field, "is " + value + "; expected an array");
        }
        return value;
    }

    private String requiredText(JsonNode node, String field, String path) {
        JsonNode value = node.get(field);
        if (value == null || !value.isTextual()) {
            throw error(path + "." + field, "is " + value + "; expected a string");
        }
        return value.asText();
    }

    private String optionalText(JsonNode node, String field, String path) {
        JsonNode value = node.get(field);
        if (isAbsent(value)) {
            return null;
        }
        if (!value.isTextual()) {
            throw error(path + "." + field, "is " + value + "; expected a string or null");
        }
        return value.asText();
    }

    private boolean bool(JsonNode node, String field, boolean fallback, String path) {
        JsonNode value = node.get(field);
        if (isAbsent(value)) {
            return fallback;
        }
        if (!value.isBoolean()) {
            throw error(path + "." + field, "is " + value + "; expected true or false");
        }
        return value.asBoolean();
    }

    private int nonNegative(JsonNode node, String field, String path) {
        JsonNode value = node.get(field);
        if (value == null || !value.canConvertToInt() || value.asInt() < 0) {
            throw error(path + "." + field, "is " + value + "; expected a non-negative integer");
        }
        return value.asInt();
    }
}
