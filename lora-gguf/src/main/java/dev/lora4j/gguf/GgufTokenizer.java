package dev.lora4j.gguf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.lora4j.tokenizer.HfTokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Pattern;

/**
 * Tokenizers between Hugging Face's {@code tokenizer.json} and GGUF's {@code tokenizer.ggml.*}
 * metadata, both ways, for the two BPE flavours lora4j reads:
 *
 * <ul>
 *   <li>SentencePiece-style BPE (Llama-2, Mistral, TinyLlama; {@code byte_fallback}) as
 *       {@code tokenizer.ggml.model = "llama"}: tokens, scores and token types. llama.cpp merges the
 *       adjacent pair whose merged piece has the highest score, so the score of a piece is
 *       {@code -(rank of the first merge producing it)}: merge order becomes score order. Reading
 *       back, every split of a piece into two tokens becomes a merge, ordered by the piece's score
 *       (as transformers' SentencePiece converter does).</li>
 *   <li>byte-level BPE (GPT-2, Llama-3, Qwen2) as {@code tokenizer.ggml.model = "gpt2"}: tokens,
 *       token types, {@code tokenizer.ggml.merges} ("left right") and {@code tokenizer.ggml.pre}, the
 *       name under which llama.cpp knows the pre-tokenizer regex ("gpt-2", "llama-bpe", "qwen2").</li>
 * </ul>
 *
 * Token types (llama.cpp's {@code llama_token_type}): 1 normal, 2 unknown, 3 control (special
 * added tokens), 4 user-defined (non-special added tokens), 5 unused (padding up to the model's
 * vocab_size), 6 byte ({@code <0xNN>}). Special ids, {@code add_bos_token}/{@code add_eos_token}
 * (as the Hugging Face tokenizer actually behaves) and the chat template travel too.
 */
public final class GgufTokenizer {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SPACE_MARK = "\u2581";
    private static final Pattern BYTE_TOKEN = Pattern.compile("<0x[0-9A-F]{2}>");

    static final int NORMAL = 1;
    static final int UNKNOWN = 2;
    static final int CONTROL = 3;
    static final int USER_DEFINED = 4;
    static final int UNUSED = 5;
    static final int BYTE = 6;

    /** Pre-tokenizer regexes by llama.cpp's {@code tokenizer.ggml.pre} name. */
    static final String LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    private GgufTokenizer() {
    }

    // ---------------------------------------------------------------- tokenizer.json -> GGUF

    /**
     * Adds the {@code tokenizer.*} metadata of the Hugging Face tokenizer in {@code folder}
     * (tokenizer.json, tokenizer_config.json) to {@code out}; ids up to {@code modelVocabSize} that
     * the tokenizer does not use are written as unused {@code [PADn]} tokens, as llama.cpp's
     * converter does.
     */
    public static void write(GgufWriter out, Path folder, int modelVocabSize) throws IOException {
        Path file = folder.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(folder + ": tokenizer.json is missing; a GGUF model needs its tokenizer "
                    + "(give the folder of the Hugging Face model it came from)");
        }
        JsonNode root = JSON.readTree(file.toFile());
        Path configFile = folder.resolve("tokenizer_config.json");
        JsonNode config = Files.isRegularFile(configFile) ? JSON.readTree(configFile.toFile()) : JSON.createObjectNode();
        HfTokenizer tokenizer = HfTokenizer.load(folder);
        JsonNode model = root.path("model");
        String type = model.path("type").asText("BPE");
        if (!type.equals("BPE")) {
            throw new IllegalArgumentException(file + ": model.type is " + type + "; lora4j writes BPE tokenizers to GGUF");
        }
        int size = Math.max(modelVocabSize, tokenizer.vocabSize());
        if (tokenizer.vocabSize() > modelVocabSize) {
            throw new IllegalArgumentException(file + ": the tokenizer has " + tokenizer.vocabSize()
                    + " tokens but the model's vocab_size is " + modelVocabSize + "; they must belong to the same model");
        }
        String[] tokens = new String[size];
        int[] types = new int[size];
        Map<String, Boolean> added = new HashMap<>();
        for (JsonNode t : root.path("added_tokens")) {
            added.put(t.path("content").asText(), t.path("special").asBoolean(false));
        }
        OptionalInt unk = model.hasNonNull("unk_token") ? tokenizer.id(model.get("unk_token").asText()) : OptionalInt.empty();
        for (int id = 0; id < size; id++) {
            String token = id < tokenizer.vocabSize() ? tokenOrNull(tokenizer, id) : null;
            if (token == null) {
                tokens[id] = "[PAD" + id + "]";
                types[id] = UNUSED;
                continue;
            }
            tokens[id] = token;
            if (unk.isPresent() && unk.getAsInt() == id) {
                types[id] = UNKNOWN;
            } else if (added.containsKey(token)) {
                types[id] = added.get(token) ? CONTROL : USER_DEFINED;
            } else if (BYTE_TOKEN.matcher(token).matches() && model.path("byte_fallback").asBoolean(false)) {
                types[id] = BYTE;
            } else {
                types[id] = NORMAL;
            }
        }
        List<String[]> merges = merges(file, model);
        boolean byteLevel = usesByteLevel(root);
        if (byteLevel) {
            out.putString("tokenizer.ggml.model", "gpt2");
            out.putString("tokenizer.ggml.pre", preTokenizerName(file, root.path("pre_tokenizer")));
            out.put("tokenizer.ggml.tokens", GgufValue.strings(tokens));
            out.put("tokenizer.ggml.token_type", GgufValue.ints(types));
            out.put("tokenizer.ggml.merges", GgufValue.strings(merges.stream().map(m -> m[0] + " " + m[1])
                    .toArray(String[]::new)));
        } else {
            Map<String, Integer> firstRank = new HashMap<>();
            for (int r = 0; r < merges.size(); r++) {
                firstRank.putIfAbsent(merges.get(r)[0] + merges.get(r)[1], r);
            }
            float[] scores = new float[size];
            for (int id = 0; id < size; id++) {
                Integer rank = firstRank.get(tokens[id]);
                // pieces no merge produces (characters, bytes, specials) are never a merge result: score 0
                scores[id] = types[id] == NORMAL && rank != null ? -rank : 0f;
            }
            for (int b = 0; b < 256; b++) {
                String byteToken = String.format("<0x%02X>", b);
                if (tokenizer.id(byteToken).isEmpty()) {
                    throw new IllegalArgumentException(file + ": the SentencePiece-style vocabulary has no byte token "
                            + byteToken + "; llama.cpp's \"llama\" tokenizer needs all 256 (<0x00>..<0xFF>, "
                            + "tokenizer.json's byte_fallback) and aborts on text it cannot split without them");
                }
            }
            out.putString("tokenizer.ggml.model", "llama");
            out.putString("tokenizer.ggml.pre", "default");
            out.put("tokenizer.ggml.tokens", GgufValue.strings(tokens));
            out.put("tokenizer.ggml.scores", GgufValue.floats(scores));
            out.put("tokenizer.ggml.token_type", GgufValue.ints(types));
            out.putBool("tokenizer.ggml.add_space_prefix", prependsSpace(root));
        }
        tokenizer.bosId().ifPresent(id -> out.putU32("tokenizer.ggml.bos_token_id", id));
        tokenizer.eosId().ifPresent(id -> out.putU32("tokenizer.ggml.eos_token_id", id));
        unk.ifPresent(id -> out.putU32("tokenizer.ggml.unknown_token_id", id));
        tokenizer.padId().ifPresent(id -> out.putU32("tokenizer.ggml.padding_token_id", id));
        int[] probe = tokenizer.encode("a", true);
        int[] plain = tokenizer.encode("a", false);
        boolean addBos = tokenizer.bosId().isPresent() && probe.length > plain.length && probe[0] == tokenizer.bosId().getAsInt();
        boolean addEos = tokenizer.eosId().isPresent() && probe.length > plain.length
                && probe[probe.length - 1] == tokenizer.eosId().getAsInt();
        out.putBool("tokenizer.ggml.add_bos_token", addBos);
        out.putBool("tokenizer.ggml.add_eos_token", addEos);
        String template = chatTemplate(config);
        if (template != null) {
            out.putString("tokenizer.chat_template", template);
        }
    }

    private static String tokenOrNull(HfTokenizer tokenizer, int id) {
        try {
            return tokenizer.token(id);
        } catch (IllegalArgumentException unused) {
            return null; // an id the tokenizer leaves unused
        }
    }

    private static List<String[]> merges(Path file, JsonNode model) {
        List<String[]> out = new ArrayList<>();
        for (JsonNode m : model.path("merges")) {
            if (m.isTextual()) {
                String s = m.asText();
                int space = s.indexOf(' ', 1);
                if (space < 0) {
                    throw new IllegalArgumentException(file + ": merge \"" + s + "\" is not \"left right\"");
                }
                out.add(new String[] {s.substring(0, space), s.substring(space + 1)});
            } else if (m.isArray() && m.size() == 2) {
                out.add(new String[] {m.get(0).asText(), m.get(1).asText()});
            } else {
                throw new IllegalArgumentException(file + ": merge " + m + " is neither \"left right\" nor [left, right]");
            }
        }
        return out;
    }

    private static boolean usesByteLevel(JsonNode root) {
        return root.path("pre_tokenizer").toString().contains("\"ByteLevel\"")
                || root.path("decoder").toString().contains("\"ByteLevel\"");
    }

    private static boolean prependsSpace(JsonNode root) {
        String normalizer = root.path("normalizer").toString();
        String pre = root.path("pre_tokenizer").toString();
        if (normalizer.contains("\"Prepend\"")) {
            return true;
        }
        return pre.contains("\"Metaspace\"") && !pre.contains("\"never\"") && !pre.contains("\"add_prefix_space\":false");
    }

    /** llama.cpp's name for a byte-level pre-tokenizer, recognized by its regex. */
    static String preTokenizerName(Path file, JsonNode pre) {
        String text = pre.toString();
        List<String> regexes = new ArrayList<>();
        pre.findValues("Regex").forEach(r -> regexes.add(r.asText()));
        if (regexes.isEmpty() && pre.path("type").asText().equals("ByteLevel") && pre.path("use_regex").asBoolean(true)) {
            return "gpt-2";
        }
        if (regexes.size() == 1 && text.contains("\"use_regex\":false")) {
            if (regexes.get(0).equals(LLAMA3_REGEX)) {
                return "llama-bpe";
            }
            if (regexes.get(0).equals(QWEN2_REGEX)) {
                return "qwen2";
            }
        }
        throw new IllegalArgumentException(file + ": the byte-level pre-tokenizer " + text + " is not one llama.cpp "
                + "knows by name in lora4j's table (GPT-2's ByteLevel, Llama-3's or Qwen2's Split regex)");
    }

    private static String chatTemplate(JsonNode config) {
        JsonNode t = config.path("chat_template");
        if (t.isTextual()) {
            return t.asText();
        }
        if (t.isArray()) {
            for (JsonNode named : t) {
                if (named.path("name").asText().equals("default")) {
                    return named.path("template").asText();
                }
            }
        }
        return null;
    }

    // ---------------------------------------------------------------- GGUF -> tokenizer.json

    /**
     * Writes {@code tokenizer.json} and {@code tokenizer_config.json} (with the chat template)
     * into {@code folder} from the GGUF file's tokenizer metadata.
     */
    public static void writeHuggingFace(GgufFile gguf, Path folder) throws IOException {
        String model = gguf.string("tokenizer.ggml.model");
        String[] tokens = gguf.array("tokenizer.ggml.tokens", String[].class);
        int[] types = new int[tokens.length];
        if (gguf.has("tokenizer.ggml.token_type")) {
            long[] t = gguf.array("tokenizer.ggml.token_type", long[].class);
            if (t.length != tokens.length) {
                throw new IllegalArgumentException(gguf.path() + ": tokenizer.ggml.token_type has " + t.length
                        + " entries but tokenizer.ggml.tokens has " + tokens.length);
            }
            for (int i = 0; i < t.length; i++) {
                types[i] = (int) t[i];
            }
        } else {
            java.util.Arrays.fill(types, NORMAL);
        }
        Integer bos = optionalId(gguf, "tokenizer.ggml.bos_token_id", tokens.length);
        Integer eos = optionalId(gguf, "tokenizer.ggml.eos_token_id", tokens.length);
        Integer unk = optionalId(gguf, "tokenizer.ggml.unknown_token_id", tokens.length);
        Integer pad = optionalId(gguf, "tokenizer.ggml.padding_token_id", tokens.length);
        boolean spm = model.equals("llama");
        if (!spm && !model.equals("gpt2")) {
            throw new IllegalArgumentException(gguf.path() + ": tokenizer.ggml.model is \"" + model + "\"; lora4j reads "
                    + "\"llama\" (SentencePiece BPE) and \"gpt2\" (byte-level BPE) tokenizers");
        }
        boolean addBos = gguf.bool("tokenizer.ggml.add_bos_token", spm);
        boolean addEos = gguf.bool("tokenizer.ggml.add_eos_token", false);
        boolean addSpace = gguf.bool("tokenizer.ggml.add_space_prefix", spm);

        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode addedTokens = root.putArray("added_tokens");
        for (int id = 0; id < tokens.length; id++) {
            if (types[id] == CONTROL || types[id] == USER_DEFINED || (spm && types[id] == UNKNOWN)) {
                ObjectNode a = addedTokens.addObject();
                a.put("id", id);
                a.put("content", tokens[id]);
                a.put("single_word", false);
                a.put("lstrip", false);
                a.put("rstrip", false);
                a.put("normalized", types[id] == USER_DEFINED && spm);
                a.put("special", types[id] != USER_DEFINED);
            }
        }
        ObjectNode bpe = JSON.createObjectNode();
        bpe.put("type", "BPE");
        bpe.putNull("dropout");
        if (spm && unk != null) {
            bpe.put("unk_token", tokens[unk]);
        } else {
            bpe.putNull("unk_token");
        }
        bpe.putNull("continuing_subword_prefix");
        bpe.putNull("end_of_word_suffix");
        bpe.put("fuse_unk", spm);
        bpe.put("byte_fallback", spm);
        // llama.cpp's llama-bpe pre-tokenizer type takes a word that is a token whole, as Llama-3's tokenizer.json says
        String pre = gguf.string("tokenizer.ggml.pre", "default");
        bpe.put("ignore_merges", !spm && (pre.equals("llama-bpe") || pre.equals("llama3") || pre.equals("llama-v3")));
        ObjectNode vocab = bpe.putObject("vocab");
        for (int id = 0; id < tokens.length; id++) {
            if (!vocab.has(tokens[id])) {
                vocab.put(tokens[id], id);
            }
        }
        ArrayNode merges = bpe.putArray("merges");
        if (spm) {
            float[] scores = gguf.has("tokenizer.ggml.scores") ? gguf.array("tokenizer.ggml.scores", float[].class)
                    : new float[tokens.length];
            if (scores.length != tokens.length) {
                throw new IllegalArgumentException(gguf.path() + ": tokenizer.ggml.scores has " + scores.length
                        + " entries but tokenizer.ggml.tokens has " + tokens.length);
            }
            for (String[] m : mergesFromScores(tokens, types, scores)) {
                merges.addArray().add(m[0]).add(m[1]);
            }
            ArrayNode norms = root.putObject("normalizer").put("type", "Sequence").putArray("normalizers");
            if (addSpace) {
                norms.addObject().put("type", "Prepend").put("prepend", SPACE_MARK);
            }
            ObjectNode replace = norms.addObject().put("type", "Replace");
            replace.putObject("pattern").put("String", " ");
            replace.put("content", SPACE_MARK);
            root.putNull("pre_tokenizer");
        } else {
            String[] ggufMerges = gguf.array("tokenizer.ggml.merges", String[].class);
            for (String m : ggufMerges) {
                merges.add(m);
            }
            root.putNull("normalizer");
            root.set("pre_tokenizer", byteLevelPreTokenizer(gguf.path(), pre));
        }
        root.set("post_processor", template(tokens, addBos ? bos : null, addEos ? eos : null));
        ObjectNode decoder = root.putObject("decoder");
        if (spm) {
            decoder.put("type", "Sequence");
            ArrayNode chain = decoder.putArray("decoders");
            ObjectNode rep = chain.addObject().put("type", "Replace");
            rep.putObject("pattern").put("String", SPACE_MARK);
            rep.put("content", " ");
            chain.addObject().put("type", "ByteFallback");
            chain.addObject().put("type", "Fuse");
            if (addSpace) {
                chain.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
            }
        } else {
            decoder.put("type", "ByteLevel").put("add_prefix_space", true).put("trim_offsets", true).put("use_regex", true);
        }
        root.set("model", bpe);

        ObjectNode config = JSON.createObjectNode();
        config.put("add_bos_token", addBos);
        config.put("add_eos_token", addEos);
        putToken(config, "bos_token", tokens, bos);
        putToken(config, "eos_token", tokens, eos);
        putToken(config, "unk_token", tokens, unk);
        putToken(config, "pad_token", tokens, pad);
        config.put("clean_up_tokenization_spaces", false);
        if (gguf.has("tokenizer.chat_template")) {
            config.put("chat_template", gguf.string("tokenizer.chat_template"));
        }
        Files.createDirectories(folder);
        Files.writeString(folder.resolve("tokenizer.json"), JSON.writeValueAsString(root), StandardCharsets.UTF_8);
        Files.writeString(folder.resolve("tokenizer_config.json"), JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsString(config), StandardCharsets.UTF_8);
    }

    /** The tokenizer of a GGUF file, through a temporary tokenizer.json. */
    public static HfTokenizer load(GgufFile gguf) {
        Path dir = null;
        try {
            dir = Files.createTempDirectory("lora4j-gguf-tokenizer");
            writeHuggingFace(gguf, dir);
            return HfTokenizer.load(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("reading the tokenizer of " + gguf.path() + ": " + e.getMessage(), e);
        } finally {
            if (dir != null) {
                try (var files = Files.list(dir)) {
                    for (Path p : files.toList()) {
                        Files.deleteIfExists(p);
                    }
                    Files.deleteIfExists(dir);
                } catch (IOException ignored) {
                    // a temporary folder left behind is harmless
                }
            }
        }
    }

    private static void putToken(ObjectNode config, String key, String[] tokens, Integer id) {
        if (id == null) {
            config.putNull(key);
        } else {
            config.put(key, tokens[id]);
        }
    }

    private static Integer optionalId(GgufFile gguf, String key, int vocab) {
        if (!gguf.has(key)) {
            return null;
        }
        long id = gguf.integer(key);
        if (id < 0 || id >= vocab) {
            // llama.cpp writes -1 (as u32 0xffffffff) for "none"
            return null;
        }
        return (int) id;
    }

    private static ObjectNode template(String[] tokens, Integer bos, Integer eos) {
        ObjectNode p = JSON.createObjectNode();
        p.put("type", "TemplateProcessing");
        for (String which : new String[] {"single", "pair"}) {
            ArrayNode seq = p.putArray(which);
            int sequences = which.equals("single") ? 1 : 2;
            for (int s = 0; s < sequences; s++) {
                if (bos != null) {
                    seq.addObject().putObject("SpecialToken").put("id", tokens[bos]).put("type_id", s);
                }
                seq.addObject().putObject("Sequence").put("id", s == 0 ? "A" : "B").put("type_id", s);
                if (eos != null) {
                    seq.addObject().putObject("SpecialToken").put("id", tokens[eos]).put("type_id", s);
                }
            }
        }
        ObjectNode special = p.putObject("special_tokens");
        for (Integer id : new Integer[] {bos, eos}) {
            if (id != null && !special.has(tokens[id])) {
                ObjectNode t = special.putObject(tokens[id]);
                t.put("id", tokens[id]);
                t.putArray("ids").add(id);
                t.putArray("tokens").add(tokens[id]);
            }
        }
        return p;
    }

    private static ObjectNode byteLevelPreTokenizer(Path file, String pre) {
        ObjectNode p = JSON.createObjectNode();
        String regex = switch (pre) {
            case "llama-bpe", "llama3", "llama-v3", "smaug-bpe" -> LLAMA3_REGEX;
            case "qwen2" -> QWEN2_REGEX;
            case "gpt-2", "default" -> null;
            default -> throw new IllegalArgumentException(file + ": tokenizer.ggml.pre \"" + pre + "\" is not one lora4j "
                    + "reads; supported: gpt-2, llama-bpe, qwen2");
        };
        if (regex == null) {
            return p.put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true).put("use_regex", true);
        }
        p.put("type", "Sequence");
        ArrayNode list = p.putArray("pretokenizers");
        ObjectNode split = list.addObject().put("type", "Split");
        split.putObject("pattern").put("Regex", regex);
        split.put("behavior", "Isolated").put("invert", false);
        list.addObject().put("type", "ByteLevel").put("add_prefix_space", false).put("trim_offsets", true)
                .put("use_regex", false);
        return p;
    }

    /**
     * SentencePiece merges from piece scores: every split of a normal piece into two tokens, the
     * pieces in descending score (ties in id order), the splits of one piece by the ids of their parts.
     */
    static List<String[]> mergesFromScores(String[] tokens, int[] types, float[] scores) {
        Map<String, Integer> ids = new LinkedHashMap<>();
        for (int i = 0; i < tokens.length; i++) {
            ids.putIfAbsent(tokens[i], i);
        }
        record Candidate(String left, String right, float score, int piece, int leftId, int rightId) {
        }
        List<Candidate> all = new ArrayList<>();
        for (int id = 0; id < tokens.length; id++) {
            if (types[id] != NORMAL && types[id] != USER_DEFINED) {
                continue;
            }
            String piece = tokens[id];
            if (piece.codePointCount(0, piece.length()) < 2) {
                continue;
            }
            for (int cut = piece.offsetByCodePoints(0, 1); cut < piece.length(); cut = piece.offsetByCodePoints(cut, 1)) {
                Integer l = ids.get(piece.substring(0, cut));
                Integer r = ids.get(piece.substring(cut));
                if (l != null && r != null) {
                    all.add(new Candidate(piece.substring(0, cut), piece.substring(cut), scores[id], id, l, r));
                }
            }
        }
        all.sort(Comparator.comparingDouble((Candidate c) -> -c.score()).thenComparingInt(Candidate::piece)
                .thenComparingInt(Candidate::leftId).thenComparingInt(Candidate::rightId));
        List<String[]> out = new ArrayList<>(all.size());
        for (Candidate c : all) {
            out.add(new String[] {c.left(), c.right()});
        }
        return out;
    }
}
