package dev.lora4j.tokenizer;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.lora4j.tokenizer.TokenizerJsonReader.AddedToken;
import dev.lora4j.tokenizer.TokenizerPipeline.Decoder;
import dev.lora4j.tokenizer.TokenizerPipeline.Normalizer;
import dev.lora4j.tokenizer.TokenizerPipeline.PostProcessor;
import dev.lora4j.tokenizer.TokenizerPipeline.PreTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.Set;
import java.util.regex.Pattern;
import dev.lora4j.io.JsonLimits;

/**
 * A Hugging Face {@code tokenizer.json} tokenizer (the format of the Rust {@code tokenizers}
 * library), reproducing that library's ids and decoded text for BPE models: SentencePiece-style
 * (Llama-2, Mistral, TinyLlama: Prepend/Replace normalizer or Metaspace, {@code byte_fallback})
 * and byte-level (GPT-2, Llama-3: ByteLevel, Split with the model's regex,
 * {@code ignore_merges}).
 *
 * <p>Encoding follows {@code TokenizerImpl::encode}: added tokens whose {@code normalized} flag is
 * false are cut out of the raw text first (leftmost, then longest match; honouring
 * {@code single_word}, {@code lstrip}, {@code rstrip}); each remaining segment is normalized
 * separately, added tokens with {@code normalized} true are cut out of the normalized text (they
 * are matched in their normalized form); the pre-tokenizer splits what is left into words and the
 * BPE model encodes each word; finally the post-processor adds special tokens when asked.
 * Decoding maps ids to tokens and runs the decoder chain, or joins the tokens with spaces when
 * there is no decoder, as {@code tokenizers} does. It does not apply transformers'
 * {@code clean_up_tokenization_spaces}; see {@link #cleanUpTokenizationSpaces(String)}.
 *
 * <p>{@code tokenizer_config.json}, when present beside the file, supplies the BOS/EOS/PAD token
 * names. When it sets {@code add_bos_token} or {@code add_eos_token}, the default special tokens
 * become [BOS] text [EOS] as those flags say (an absent flag keeps what tokenizer.json's
 * post-processor does), as transformers' Llama tokenizers rebuild their post-processor. BOS and
 * EOS not named there are the special tokens that tokenizer.json's template puts directly before
 * and after the text. The {@code truncation} and {@code padding} sections are ignored, as
 * transformers ignores them unless a call asks for truncation or padding.
 *
 * <p>Instances are immutable and thread-safe.
 */
public final class HfTokenizer implements Tokenizer {
    /**
     * Largest token id accepted in tokenizer.json (model.vocab, added_tokens, post-processor
     * special tokens): 2²⁴−1, some 64 times the largest vocabulary published (262,144). The
     * id-to-token table is sized by the largest id, so the bound keeps a hostile id such as
     * 2³¹−1 from allocating gigabytes.
     */
    public static final int MAX_TOKEN_ID = (1 << 24) - 1;
    /** Largest tokenizer.json read (the largest published are about 35 MB). */
    public static final long MAX_TOKENIZER_JSON_BYTES = 512L << 20;
    /** Largest tokenizer_config.json read. */
    public static final long MAX_CONFIG_BYTES = 64L << 20;

    private static final ObjectMapper JSON = JsonLimits.mapper();

    private final String source;
    private final BpeModel model;
    private final Map<String, Integer> modelVocab;
    private final Map<String, Integer> addedVocab;
    private final String[] idToToken;
    private final boolean[] special;
    private final AddedTokenMatcher rawAddedTokens;
    private final AddedTokenMatcher normalizedAddedTokens;
    private final Normalizer normalizer;
    private final PreTokenizer preTokenizer;
    private final PostProcessor postProcessor;
    private final Decoder decoder;
    private final OptionalInt bos;
    private final OptionalInt eos;
    private final OptionalInt pad;
    private final boolean cleanUpTokenizationSpaces;

    /**
     * Loads {@code tokenizer.json}, or {@code folder/tokenizer.json} when given a folder, together
     * with the {@code tokenizer_config.json} beside it if there is one.
     *
     * @throws IllegalArgumentException when the files use something this class does not support
     *                                  or are inconsistent; the message names the file, the JSON
     *                                  path and the value
     */
    public static HfTokenizer load(Path tokenizerJsonOrFolder) throws IOException {
        Path file = Files.isDirectory(tokenizerJsonOrFolder) ? tokenizerJsonOrFolder.resolve("tokenizer.json")
                : tokenizerJsonOrFolder;
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null, Files.isDirectory(tokenizerJsonOrFolder)
                    ? "the folder has no tokenizer.json; pass the folder of a Hugging Face tokenizer"
                    : "no such file; pass a tokenizer.json or its folder");
        }
        TokenizerJsonReader.Parsed parsed;
        checkSize(file, MAX_TOKENIZER_JSON_BYTES);
        try (JsonParser parser = JSON.createParser(file.toFile())) {
            parsed = TokenizerJsonReader.read(parser, file.toString());
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON " + JsonLimits.describe(e), e);
        }
        Path configFile = file.resolveSibling("tokenizer_config.json");
        JsonNode config = null;
        if (Files.isRegularFile(configFile)) {
            checkSize(configFile, MAX_CONFIG_BYTES);
            try {
                config = JSON.readTree(configFile.toFile());
            } catch (JsonProcessingException e) {
                throw new IllegalArgumentException(configFile + ": not valid JSON " + JsonLimits.describe(e), e);
            }
            if (config == null || !config.isObject()) {
                throw new IllegalArgumentException(configFile + ": expected a JSON object, found "
                        + (config == null ? "nothing" : TokenizerJsonReader.shorten(config.toString())));
            }
        }
        return new HfTokenizer(parsed, file.toString(), config, configFile.toString());
    }

    private static void checkSize(Path file, long bound) throws IOException {
        long size = Files.size(file);
        if (size > bound) {
            throw new IllegalArgumentException(file + ": the file is " + size + " bytes, more than the " + bound
                    + " bytes lora4j reads for it; the file is damaged or not a tokenizer file");
        }
    }

    /** Parses the text of a tokenizer.json (no tokenizer_config.json). */
    public static HfTokenizer fromJson(String tokenizerJson) {
        try (JsonParser parser = JSON.createParser(tokenizerJson)) {
            return new HfTokenizer(TokenizerJsonReader.read(parser, "tokenizer.json"), "tokenizer.json", null, null);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("tokenizer.json: not valid JSON " + JsonLimits.describe(e), e);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private HfTokenizer(TokenizerJsonReader.Parsed parsed, String source, JsonNode config, String configSource) {
        this.source = source;
        this.model = parsed.model();
        this.modelVocab = parsed.vocab();
        this.normalizer = parsed.normalizer();
        this.preTokenizer = parsed.preTokenizer();
        this.decoder = parsed.decoder();

        int maxId = -1;
        for (int id : modelVocab.values()) {
            maxId = Math.max(maxId, id);
        }
        List<AddedToken> added = parsed.addedTokens();
        for (AddedToken t : added) {
            maxId = Math.max(maxId, t.id());
        }
        this.idToToken = new String[maxId + 1];
        for (Map.Entry<String, Integer> e : modelVocab.entrySet()) {
            idToToken[e.getValue()] = e.getKey();
        }
        this.addedVocab = new HashMap<>();
        Set<String> specialContents = new HashSet<>();
        List<AddedToken> raw = new ArrayList<>();
        List<AddedToken> normalized = new ArrayList<>();
        for (AddedToken t : added) {
            idToToken[t.id()] = t.content();
            addedVocab.put(t.content(), t.id());
            if (t.special()) {
                specialContents.add(t.content());
            }
            if (t.content().isEmpty()) {
                continue;
            }
            if (t.normalized() && normalizer != null) {
                String pattern = normalizer.normalize(t.content());
                normalized.add(new AddedToken(t.id(), pattern, t.singleWord(), t.lstrip(), t.rstrip(), true, t.special()));
            } else if (t.normalized()) {
                normalized.add(t);
            } else {
                raw.add(t);
            }
        }
        this.special = new boolean[idToToken.length];
        for (int id = 0; id < idToToken.length; id++) {
            special[id] = idToToken[id] != null && specialContents.contains(idToToken[id]);
        }
        this.rawAddedTokens = new AddedTokenMatcher(raw);
        this.normalizedAddedTokens = new AddedTokenMatcher(normalized);
        checkProcessorIds(parsed.postProcessor(), "post_processor");

        int[] edges = templateEdges(parsed.postProcessor());
        if (config == null) {
            this.bos = edges[0] >= 0 ? OptionalInt.of(edges[0]) : OptionalInt.empty();
            this.eos = edges[1] >= 0 ? OptionalInt.of(edges[1]) : OptionalInt.empty();
            this.pad = OptionalInt.empty();
            this.postProcessor = parsed.postProcessor();
            this.cleanUpTokenizationSpaces = false;
            return;
        }
        this.bos = configToken(config, "bos_token", configSource, edges[0]);
        this.eos = configToken(config, "eos_token", configSource, edges[1]);
        this.pad = configToken(config, "pad_token", configSource, -1);
        this.cleanUpTokenizationSpaces = config.path("clean_up_tokenization_spaces").asBoolean(false);
        JsonNode addBos = config.get("add_bos_token");
        JsonNode addEos = config.get("add_eos_token");
        boolean bosFlag = addBos != null && addBos.isBoolean();
        boolean eosFlag = addEos != null && addEos.isBoolean();
        if (!bosFlag && !eosFlag) {
            this.postProcessor = parsed.postProcessor();
            return;
        }
        boolean withBos = bosFlag ? addBos.asBoolean() : edges[0] >= 0;
        boolean withEos = eosFlag ? addEos.asBoolean() : edges[1] >= 0;
        if (withBos && bos.isEmpty()) {
            throw new IllegalArgumentException(configSource + ": add_bos_token is true but no bos_token is defined; "
                    + "set bos_token or add_bos_token: false");
        }
        if (withEos && eos.isEmpty()) {
            throw new IllegalArgumentException(configSource + ": add_eos_token is true but no eos_token is defined; "
                    + "set eos_token or add_eos_token: false");
        }
        List<int[]> items = new ArrayList<>();
        if (withBos) {
            items.add(new int[] {bos.getAsInt()});
        }
        items.add(null);
        if (withEos) {
            items.add(new int[] {eos.getAsInt()});
        }
        this.postProcessor = new TokenizerPipeline.Template(java.util.Collections.unmodifiableList(items));
    }

    /** Every id a template adds must name a token of this vocabulary. */
    private void checkProcessorIds(PostProcessor processor, String path) {
        if (processor instanceof TokenizerPipeline.SequenceProcessor s) {
            for (int i = 0; i < s.processors().size(); i++) {
                checkProcessorIds(s.processors().get(i), path + ".processors[" + i + "]");
            }
        } else if (processor instanceof TokenizerPipeline.Template t) {
            for (int[] item : t.items()) {
                for (int id : item == null ? new int[0] : item) {
                    if (id >= idToToken.length || idToToken[id] == null) {
                        throw new IllegalArgumentException(source + ": " + path + " adds token id " + id
                                + ", which is not in the vocabulary (ids 0.." + (idToToken.length - 1) + ")");
                    }
                }
            }
        }
    }

    /**
     * The single special token directly before / after $A in tokenizer.json's template, or -1.
     * A template using $A more than once (legal: the sequence is repeated) names no edges.
     */
    private static int[] templateEdges(PostProcessor processor) {
        int[] edges = {-1, -1};
        List<PostProcessor> chain = processor instanceof TokenizerPipeline.SequenceProcessor s ? s.processors()
                : processor == null ? List.of() : List.of(processor);
        for (PostProcessor p : chain) {
            if (p instanceof TokenizerPipeline.Template t) {
                List<int[]> items = t.items();
                int a = items.indexOf(null);
                if (a < 0 || items.lastIndexOf(null) != a) {
                    continue;
                }
                if (a > 0 && items.get(a - 1).length == 1) {
                    edges[0] = items.get(a - 1)[0];
                }
                if (a + 1 < items.size() && items.get(a + 1).length == 1) {
                    edges[1] = items.get(a + 1)[0];
                }
            }
        }
        return edges;
    }

    /** A token named in tokenizer_config.json (a string or an AddedToken object), else the fallback id. */
    private OptionalInt configToken(JsonNode config, String field, String configSource, int fallback) {
        JsonNode value = config.get(field);
        if (value == null || value.isNull()) {
            return value == null && fallback >= 0 ? OptionalInt.of(fallback) : OptionalInt.empty();
        }
        String name = value.isObject() ? value.path("content").asText(null) : value.isTextual() ? value.asText() : null;
        if (name == null) {
            throw new IllegalArgumentException(configSource + ": " + field + " is " + value
                    + "; expected a token string or an object with \"content\"");
        }
        OptionalInt id = id(name);
        if (id.isEmpty()) {
            throw new IllegalArgumentException(configSource + ": " + field + " is \"" + name
                    + "\", which is not in the vocabulary of " + source);
        }
        return id;
    }

    @Override
    public int[] encode(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text");
        BpeModel.Ids ids = new BpeModel.Ids();
        TokenizerPipeline.PieceSink toModel = (word, atStart) -> model.tokenize(word, ids);
        int[] segments = rawAddedTokens.split(text);
        for (int s = 0; s < segments.length; s += 3) {
            if (segments[s + 2] >= 0) {
                ids.add(segments[s + 2]);
                continue;
            }
            int start = segments[s];
            String segment = text.substring(start, segments[s + 1]);
            String norm = normalizer == null ? segment : normalizer.normalize(segment);
            if (norm.isEmpty()) {
                continue;
            }
            int[] pieces = normalizedAddedTokens.split(norm);
            for (int p = 0; p < pieces.length; p += 3) {
                if (pieces[p + 2] >= 0) {
                    ids.add(pieces[p + 2]);
                    continue;
                }
                String piece = norm.substring(pieces[p], pieces[p + 1]);
                boolean atStart = start == 0 && pieces[p] == 0;
                if (preTokenizer == null) {
                    model.tokenize(piece, ids);
                } else {
                    preTokenizer.split(piece, atStart, toModel);
                }
            }
        }
        int[] core = ids.toArray();
        return addSpecialTokens && postProcessor != null ? postProcessor.process(core) : core;
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        List<String> tokens = new ArrayList<>(ids.length);
        for (int id : ids) {
            String token = token(id);
            if (!skipSpecialTokens || !special[id]) {
                tokens.add(token);
            }
        }
        return decoder == null ? String.join(" ", tokens) : String.join("", decoder.decodeChain(tokens));
    }

    /**
     * transformers' {@code clean_up_tokenization_spaces}: removes the space before
     * {@code . ? ! ,} and before the English contractions {@code n't 'm 's 've 're}, and turns
     * {@code " ' "} into {@code "'"}. transformers applies it in {@code decode} when the
     * tokenizer's config enables it (see {@link #cleansUpTokenizationSpaces()}); it is lossy.
     */
    public static String cleanUpTokenizationSpaces(String text) {
        return text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
                .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
                .replace(" 've", "'ve").replace(" 're", "'re");
    }

    /** Whether tokenizer_config.json asks transformers to clean up tokenization spaces when decoding. */
    public boolean cleansUpTokenizationSpaces() {
        return cleanUpTokenizationSpaces;
    }

    @Override
    public String token(int id) {
        if (id < 0 || id >= idToToken.length || idToToken[id] == null) {
            throw new IllegalArgumentException("token id " + id + " is not in the vocabulary of " + source
                    + " (ids 0.." + (idToToken.length - 1) + (id >= 0 && id < idToToken.length ? ", this one unused)" : ")"));
        }
        return idToToken[id];
    }

    @Override
    public OptionalInt id(String token) {
        Integer id = addedVocab.get(token);
        if (id == null) {
            id = modelVocab.get(token);
        }
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** Whether {@code id} is a special added token (the ones {@code skipSpecialTokens} drops). */
    public boolean isSpecial(int id) {
        return id >= 0 && id < special.length && special[id];
    }

    @Override
    public int vocabSize() {
        return idToToken.length;
    }

    @Override
    public OptionalInt bosId() {
        return bos;
    }

    @Override
    public OptionalInt eosId() {
        return eos;
    }

    @Override
    public OptionalInt padId() {
        return pad;
    }

    @Override
    public String toString() {
        return "HfTokenizer[" + source + ", " + idToToken.length + " ids]";
    }

    /**
     * Finds added tokens in a text as {@code AddedVocabulary::find_matches} does: scanning left to
     * right, the longest token starting at the leftmost position wins; a {@code single_word} token
     * must not touch word characters (its match is then skipped, not retried); {@code lstrip} /
     * {@code rstrip} extend the match over adjacent whitespace.
     */
    static final class AddedTokenMatcher {
        private static final Pattern WORD_CHAR = Pattern.compile("\\w", Pattern.UNICODE_CHARACTER_CLASS);
        private final Map<Character, AddedToken[]> byFirstChar = new HashMap<>();
        private final long[] firstChars = new long[1024];

        AddedTokenMatcher(List<AddedToken> tokens) {
            Map<Character, List<AddedToken>> groups = new HashMap<>();
            for (AddedToken t : tokens) {
                groups.computeIfAbsent(t.content().charAt(0), c -> new ArrayList<>()).add(t);
            }
            groups.forEach((c, list) -> {
                AddedToken[] sorted = list.toArray(new AddedToken[0]);
                Arrays.sort(sorted, Comparator.comparingInt((AddedToken t) -> t.content().length()).reversed());
                byFirstChar.put(c, sorted);
                firstChars[c >>> 6] |= 1L << c;
            });
        }

        /** [start, end, id]* covering {@code text}; id -1 marks plain text. Empty spans are left out. */
        int[] split(String text) {
            if (byFirstChar.isEmpty()) {
                return new int[] {0, text.length(), -1};
            }
            int[] out = new int[12];
            int count = 0;
            int previousEnd = 0;
            int i = 0;
            while (i < text.length()) {
                char c = text.charAt(i);
                if ((firstChars[c >>> 6] & (1L << c)) == 0) {
                    i++;
                    continue;
                }
                AddedToken[] candidates = byFirstChar.get(c);
                AddedToken match = null;
                if (candidates != null) {
                    for (AddedToken t : candidates) {
                        if (text.startsWith(t.content(), i)) {
                            match = t;
                            break;
                        }
                    }
                }
                if (match == null) {
                    i++;
                    continue;
                }
                int start = i;
                int end = i + match.content().length();
                i = end;
                if (match.singleWord() && (touchesWord(text, start - 1) || touchesWord(text, end))) {
                    continue;
                }
                if (match.lstrip()) {
                    while (start > previousEnd && isWhiteSpace(text.codePointBefore(start))) {
                        start -= Character.charCount(text.codePointBefore(start));
                    }
                }
                if (match.rstrip()) {
                    while (end < text.length() && isWhiteSpace(text.codePointAt(end))) {
                        end += Character.charCount(text.codePointAt(end));
                    }
                    i = end;
                }
                if (count * 3 + 6 > out.length) {
                    out = Arrays.copyOf(out, 2 * out.length);
                }
                if (start > previousEnd) {
                    out[3 * count] = previousEnd;
                    out[3 * count + 1] = start;
                    out[3 * count + 2] = -1;
                    count++;
                }
                out[3 * count] = start;
                out[3 * count + 1] = end;
                out[3 * count + 2] = match.id();
                count++;
                previousEnd = end;
            }
            if (previousEnd < text.length()) {
                if (count * 3 + 3 > out.length) {
                    out = Arrays.copyOf(out, out.length + 3);
                }
                out[3 * count] = previousEnd;
                out[3 * count + 1] = text.length();
                out[3 * count + 2] = -1;
                count++;
            }
            return Arrays.copyOf(out, 3 * count);
        }

        private static boolean touchesWord(String text, int index) {
            if (index < 0 || index >= text.length()) {
                return false;
            }
            int cp = Character.isLowSurrogate(text.charAt(index)) && index > 0 ? text.codePointBefore(index + 1)
                    : text.codePointAt(index);
            return WORD_CHAR.matcher(Character.toString(cp)).matches();
        }
    }

    /** The Unicode White_Space property (Rust {@code char::is_whitespace}, regex {@code \s}). */
    static boolean isWhiteSpace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
                || cp == 0x205F || cp == 0x3000;
    }
}
