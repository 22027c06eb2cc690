package dev.lora4j.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The chat formats of the common instruction-tuned model families, reimplemented without a Jinja
 * engine: each family's Hugging Face {@code chat_template} is recognised by signature substrings
 * of its source and rendered by Java code that reproduces transformers'
 * {@code apply_chat_template(..., tokenize=False)} output for system/user/assistant messages
 * (the tests compare against jinja2 renderings of the real templates).
 *
 * <p>Families ({@link #named(String)}):
 * <ul>
 *   <li>{@code llama2}: {@code <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s>}, BOS before every user turn,
 *       contents stripped; roles must alternate user/assistant after an optional system message.</li>
 *   <li>{@code llama3}: {@code <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>}, contents trimmed.</li>
 *   <li>{@code llama3.1}: as llama3, but always opens with a system block holding
 *       {@code Cutting Knowledge Date: December 2023} and {@code Today Date: 26 Jul 2024} (the template's fixed
 *       default; {@link #withDateString(String)} changes it). A Llama-3.2 template, whose date is today's, is
 *       recognised as {@code llama3.2} and renders today's date unless given one.</li>
 *   <li>{@code chatml}: {@code <|im_start|>role\n...<|im_end|>\n}; {@code qwen2}, {@code qwen2.5} and {@code smollm2}
 *       are ChatML with the default system message their templates insert when the conversation has none.</li>
 *   <li>{@code mistral-v0.1} and {@code mistral-v0.2}: {@code <s>[INST] ... [/INST]...</s>} (v0.1 puts a space
 *       after each {@code </s>}); only user/assistant, alternating. Mistral v0.3 and Tekken templates are not
 *       supported.</li>
 *   <li>{@code zephyr} (Zephyr, TinyLlama-Chat): {@code <|user|>\n...</s>\n}.</li>
 *   <li>{@code gemma}: {@code <start_of_turn>user\n...<end_of_turn>\n}, assistant turns are "model"; no system
 *       role.</li>
 *   <li>{@code phi3} (Phi-3.5-mini, Phi-3-mini-4k): {@code <|user|>\n...<|end|>\n}; without the generation prompt
 *       the text ends with the EOS token.</li>
 *   <li>{@code gemma3} (Gemma 3 instruction-tuned, e.g. gemma-3-1b-it): as {@code gemma}, but a leading system
 *       message is written into the first user turn, followed by a blank line (its content is not trimmed,
 *       the turns' contents are). Text contents only; the template's image items are not supported.</li>
 *   <li>{@code qwen3} (Qwen3, e.g. Qwen3-0.6B): ChatML without a default system message, with the template's
 *       thinking mode: an assistant message's {@code <think>...</think>} part is dropped from turns before
 *       the last user message and kept, re-formatted as {@code <think>\nREASONING\n</think>\n\n}, after
 *       it (the final assistant turn always gets a think block, empty when it had none, as the template
 *       does); {@link #withEnableThinking(boolean) withEnableThinking(false)} makes the generation prompt end
 *       with an empty think block, as {@code enable_thinking=False} does. Tools, tool calls, tool responses
 *       and a separate {@code reasoning_content} field are not supported.</li>
 * </ul>
 *
 * <p>Base models without a chat template (phi-1.5, Falcon-7B, Gemma and Qwen base checkpoints) are
 * refused by {@link #fromTokenizerConfig}; choose a format with {@link #named(String)} when
 * fine-tuning one of them on chat data.
 *
 * <p><b>BOS.</b> Most templates write the BOS token's text themselves ({@link #rendersBos()}); such text
 * must be encoded without the tokenizer adding another BOS. {@link #encode} does that, and for templates
 * that do not write BOS (ChatML, Zephyr, Phi-3.5) it lets the tokenizer add its default special tokens,
 * so that a model whose tokenizer starts every sequence with BOS gets exactly one.
 *
 * <p>Instances are immutable.
 */
public final class ChatTemplate {
    private static final ObjectMapper JSON = dev.lora4j.io.JsonLimits.mapper();

    /** The names {@link #named(String)} accepts. */
    public static final List<String> NAMES = List.of("llama2", "llama3", "llama3.1", "chatml", "qwen2", "qwen2.5",
            "smollm2", "mistral-v0.1", "mistral-v0.2", "zephyr", "gemma", "phi3", "gemma3", "qwen3");

    private static final String QWEN2_SYSTEM = "You are a helpful assistant.";
    private static final String QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    private static final String SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
    private static final String LLAMA31_DATE = "26 Jul 2024";

    private enum Family { LLAMA2, LLAMA3, LLAMA31, CHATML, MISTRAL, ZEPHYR, GEMMA, PHI3, GEMMA3, QWEN3 }

    private final String name;
    private final Family family;
    private final String bosToken;
    private final String eosToken;
    /** llama2: strip contents (the official template does; some fine-tunes' copies do not). */
    private final boolean stripContent;
    /** chatml: the system message inserted when the conversation has none, or null. */
    private final String defaultSystem;
    /** chatml and phi3: the template starts with {@code bos_token}. */
    private final boolean leadingBos;
    /** llama3.1: the date; null means today's (Llama 3.2's strftime_now). */
    private final String dateString;
    /** mistral-v0.1: a space after each assistant turn's EOS. */
    private final boolean spaceAfterEos;
    /** phi3: a system message with empty content is left out (Phi-3.5) rather than rendered empty. */
    private final boolean skipEmptySystem;
    /** qwen3: Jinja's {@code enable_thinking} (true when undefined, as in the template). */
    private final boolean enableThinking;

    private ChatTemplate(String name, Family family, String bosToken, String eosToken, boolean stripContent,
                         String defaultSystem, boolean leadingBos, String dateString, boolean spaceAfterEos,
                         boolean skipEmptySystem) {
        this(name, family, bosToken, eosToken, stripContent, defaultSystem, leadingBos, dateString, spaceAfterEos,
                skipEmptySystem, true);
    }

    private ChatTemplate(String name, Family family, String bosToken, String eosToken, boolean stripContent,
                         String defaultSystem, boolean leadingBos, String dateString, boolean spaceAfterEos,
                         boolean skipEmptySystem, boolean enableThinking) {
        this.name = name;
        this.family = family;
        this.bosToken = bosToken == null ? "" : bosToken;
        this.eosToken = eosToken == null ? "" : eosToken;
        this.stripContent = stripContent;
        this.defaultSystem = defaultSystem;
        this.leadingBos = leadingBos;
        this.dateString = dateString;
        this.spaceAfterEos = spaceAfterEos;
        this.skipEmptySystem = skipEmptySystem;
        this.enableThinking = enableThinking;
    }

    /**
     * One of {@link #NAMES}, with the family's usual BOS/EOS token strings (change them with
     * {@link #withSpecialTokens}).
     */
    public static ChatTemplate named(String name) {
        Objects.requireNonNull(name, "name");
        return switch (name) {
            case "llama2" -> new ChatTemplate(name, Family.LLAMA2, "<s>", "</s>", true, null, false, null, false, false);
            case "llama3" -> new ChatTemplate(name, Family.LLAMA3, "<|begin_of_text|>", "<|eot_id|>", false, null, false,
                    null, false, false);
            case "llama3.1" -> new ChatTemplate(name, Family.LLAMA31, "<|begin_of_text|>", "<|eot_id|>", false, null,
                    false, LLAMA31_DATE, false, false);
            case "chatml" -> chatml(name, null, null, "<|im_end|>", false);
            case "qwen2" -> chatml(name, QWEN2_SYSTEM, null, "<|im_end|>", false);
            case "qwen2.5" -> chatml(name, QWEN25_SYSTEM, null, "<|im_end|>", false);
            case "smollm2" -> chatml(name, SMOLLM2_SYSTEM, "<|im_start|>", "<|im_end|>", false);
            case "mistral-v0.1" -> new ChatTemplate(name, Family.MISTRAL, "<s>", "</s>", false, null, false, null, true,
                    false);
            case "mistral-v0.2" -> new ChatTemplate(name, Family.MISTRAL, "<s>", "</s>", false, null, false, null, false,
                    false);
            case "zephyr" -> new ChatTemplate(name, Family.ZEPHYR, "<s>", "</s>", false, null, false, null, false, false);
            case "gemma" -> new ChatTemplate(name, Family.GEMMA, "<bos>", "<eos>", false, null, false, null, false, false);
            case "phi3" -> new ChatTemplate(name, Family.PHI3, "<s>", "<|endoftext|>", false, null, false, null, false,
                    true);
            case "gemma3" -> new ChatTemplate(name, Family.GEMMA3, "<bos>", "<eos>", false, null, false, null, false,
                    false);
            case "qwen3" -> new ChatTemplate(name, Family.QWEN3, null, "<|im_end|>", false, null, false, null, false,
                    false);
            default -> throw new IllegalArgumentException("ChatTemplate.named: unknown template \"" + name
                    + "\"; the supported ones are " + NAMES);
        };
    }

    private static ChatTemplate chatml(String name, String defaultSystem, String bos, String eos, boolean leadingBos) {
        return new ChatTemplate(name, Family.CHATML, bos, eos, false, defaultSystem, leadingBos, null, false, false);
    }

    /**
     * Reads {@code chat_template} (a string, or a list of {@code {name, template}} of which the one
     * named "default" is used) and {@code bos_token}/{@code eos_token} from
     * {@code modelFolder/tokenizer_config.json} and recognises the template's family.
     *
     * @throws IllegalArgumentException when the file has no chat template or one of no supported
     *                                  family; the message names the file and says how to choose a
     *                                  template explicitly
     */
    public static ChatTemplate fromTokenizerConfig(Path modelFolder) throws IOException {
        Path file = Files.isDirectory(modelFolder) ? modelFolder.resolve("tokenizer_config.json") : modelFolder;
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null,
                    "no tokenizer_config.json; choose a template with ChatTemplate.named(...), one of " + NAMES);
        }
        JsonNode config;
        try {
            config = JSON.readTree(dev.lora4j.io.JsonLimits.readSmallFile(file, HfTokenizer.MAX_CONFIG_BYTES, "tokenizer_config.json"));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON " + dev.lora4j.io.JsonLimits.describe(e), e);
        }
        if (config == null || !config.isObject()) {
            throw new IllegalArgumentException(file + ": expected a JSON object with \"chat_template\"");
        }
        JsonNode node = config.path("chat_template");
        String template;
        if (node.isTextual()) {
            template = node.asText();
        } else if (node.isArray()) {
            template = null;
            for (JsonNode entry : node) {
                if ("default".equals(entry.path("name").asText())) {
                    template = entry.path("template").asText();
                }
            }
            if (template == null) {
                throw new IllegalArgumentException(file + ": chat_template is a list without an entry named \"default\"; "
                        + "choose a template with ChatTemplate.named(...), one of " + NAMES);
            }
        } else {
            throw new IllegalArgumentException(file + ": has no chat_template (found " + node.getNodeType()
                    + "); choose a template with ChatTemplate.named(...), one of " + NAMES);
        }
        return fromTemplateText(template, tokenText(config, "bos_token"), tokenText(config, "eos_token"), file.toString());
    }

    private static String tokenText(JsonNode config, String field) {
        JsonNode node = config.path(field);
        if (node.isTextual()) {
            return node.asText();
        }
        return node.path("content").isTextual() ? node.path("content").asText() : null;
    }

    /**
     * Recognises the family of a Jinja {@code chat_template} text.
     *
     * @param bosToken the text {@code bos_token} renders to (null: empty)
     * @param source   names the template's origin in error messages
     */
    public static ChatTemplate fromTemplateText(String template, String bosToken, String eosToken, String source) {
        Objects.requireNonNull(template, "template");
        String code = normalize(template);
        boolean leadingBos = code.startsWith("{{bos_token}}") || code.startsWith("{{-bos_token}}");
        ChatTemplate found = null;
        if (code.contains("<<SYS>>") && code.contains("bos_token+'[INST] '+content")) {
            boolean strip = code.contains("content.strip()") || code.contains("content|trim");
            found = new ChatTemplate("llama2", Family.LLAMA2, bosToken, eosToken, strip, null, false, null, false, false);
        } else if (code.contains("<|start_header_id|>") && template.contains("Cutting Knowledge Date: December 2023")
                && code.contains("'<|start_header_id|>'+message['role']+'<|end_header_id|>\\n\\n'+message['content']|trim+'<|eot_id|>'")) {
            if (code.contains("strftime_now")) {
                found = new ChatTemplate("llama3.2", Family.LLAMA31, bosToken, eosToken, false, null, false, null, false,
                        false);
            } else {
                Matcher date = Pattern.compile("date_string\\s*=\\s*\"([^\"]*)\"").matcher(template);
                found = new ChatTemplate("llama3.1", Family.LLAMA31, bosToken, eosToken, false, null, false,
                        date.find() ? date.group(1) : LLAMA31_DATE, false, false);
            }
        } else if (code.contains("'<|start_header_id|>'+message['role']+'<|end_header_id|>\\n\\n'+message['content']|trim+'<|eot_id|>'")
                && code.contains("bos_token+content")) {
            found = new ChatTemplate("llama3", Family.LLAMA3, bosToken, eosToken, false, null, false, null, false, false);
        } else if (code.contains(QWEN3_THINK_TURN) && code.contains("enable_thinkingisdefinedandenable_thinkingisfalse")
                && code.contains("{{-'<think>\\n\\n</think>\\n\\n'}}")) {
            if (!code.contains("{%-ifloop.index0>ns.last_query_index%}")
                    || !code.contains("'<|im_start|>'+message.role+'\\n'+message.content+'<|im_end|>'+'\\n'")) {
                throw new IllegalArgumentException(source + ": chat_template is a Qwen3-style thinking template that "
                        + "differs from Qwen3-0.6B's in which past assistant turns keep their <think> part or in how "
                        + "contents are read; lora4j renders only Qwen3-0.6B's. If the differences do not matter "
                        + "for your conversations, choose it explicitly with ChatTemplate.named(\"qwen3\") and check "
                        + "the rendered text");
            }
            found = new ChatTemplate("qwen3", Family.QWEN3, bosToken, eosToken, false, null, false, null, false, false);
        } else if (code.contains("'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>'+'\\n'")
                || code.contains("'<|im_start|>'+message.role+'\\n'+message.content+'<|im_end|>'+'\\n'")) {
            String system = defaultChatmlSystem(template);
            String name = system == null ? "chatml" : system.equals(QWEN2_SYSTEM) ? "qwen2"
                    : system.equals(QWEN25_SYSTEM) ? "qwen2.5" : system.equals(SMOLLM2_SYSTEM) ? "smollm2"
                    : "chatml-with-default-system";
            found = new ChatTemplate(name, Family.CHATML, bosToken, eosToken, false, system, leadingBos, null, false,
                    false);
        } else if (!code.contains("<<SYS>>") && leadingBos && code.contains("'[INST] '+message['content']+' [/INST]'")
                && code.contains("roles must alternate")) {
            if (code.contains("message['content']+eos_token+' '")) {
                found = new ChatTemplate("mistral-v0.1", Family.MISTRAL, bosToken, eosToken, false, null, false, null,
                        true, false);
            } else if (code.contains("message['content']+eos_token}}")) {
                found = new ChatTemplate("mistral-v0.2", Family.MISTRAL, bosToken, eosToken, false, null, false, null,
                        false, false);
            }
        } else if (code.contains("'<start_of_turn>'+role+'\\n'+(first_user_prefixifloop.firstelse'')")
                && code.contains("first_user_prefix=messages[0]['content']+'\\n\\n'")
                && code.contains("{{message['content']|trim}}") && code.contains("{{'<end_of_turn>\\n'}}")
                && code.contains("{{'<start_of_turn>model\\n'}}") && leadingBos) {
            found = new ChatTemplate("gemma3", Family.GEMMA3, bosToken, eosToken, false, null, false, null, false, false);
        } else if (code.contains("'<start_of_turn>'+role+'\\n'+message['content']|trim+'<end_of_turn>\\n'") && leadingBos) {
            found = new ChatTemplate("gemma", Family.GEMMA, bosToken, eosToken, false, null, false, null, false, false);
        } else if (code.contains("'<|assistant|>\\n'+message['content']+'<|end|>\\n'")
                && code.contains("'<|user|>\\n'+message['content']+'<|end|>\\n'")
                && code.contains("'<|system|>\\n'+message['content']+'<|end|>\\n'")
                && code.contains("{%else%}{{eos_token}}")) {
            found = new ChatTemplate("phi3", Family.PHI3, bosToken, eosToken, false, null, leadingBos, null, false,
                    code.contains("message['role']=='system'andmessage['content']"));
        } else if (code.contains("'<|user|>\\n'+message['content']+eos_token")
                && code.contains("'<|assistant|>\\n'+message['content']+eos_token")
                && code.contains("'<|system|>\\n'+message['content']+eos_token")
                && code.contains("loop.lastandadd_generation_prompt") && !leadingBos) {
            found = new ChatTemplate("zephyr", Family.ZEPHYR, bosToken, eosToken, false, null, false, null, false, false);
        }
        if (found == null) {
            throw new IllegalArgumentException(source + ": chat_template is not one of the families lora4j renders "
                    + "without a Jinja engine (Llama-2, Llama-3, Llama-3.1/3.2, ChatML incl. Qwen2/Qwen2.5/SmolLM2, "
                    + "Mistral-Instruct v0.1/v0.2, Zephyr/TinyLlama-Chat, Gemma, Gemma 3, Phi-3.5, Qwen3); its start is \""
                    + abbreviate(template) + "\". If it formats like one of them, choose it explicitly with "
                    + "ChatTemplate.named(name) for a name in " + NAMES + ", and check the rendered text");
        }
        return found;
    }

    /** Qwen3's assistant turn after the last user message, in {@link #normalize normalized} form. */
    private static final String QWEN3_THINK_TURN =
            "'<|im_start|>'+message.role+'\\n<think>\\n'+reasoning_content.strip('\\n')+'\\n</think>\\n\\n'+content.lstrip('\\n')";

    private static String abbreviate(String s) {
        String oneLine = s.replace("\n", "\\n");
        return oneLine.length() <= 120 ? oneLine : oneLine.substring(0, 120) + "...";
    }

    /**
     * The template's code with whitespace outside string literals and comments removed, every
     * literal quoted with ', and newlines inside literals written as the escape \n, so that
     * signatures match whatever spacing, quoting and line breaking a copy of the template uses.
     */
    static String normalize(String template) {
        String text = template.replaceAll("(?s)\\{#.*?#}", "");
        StringBuilder out = new StringBuilder(text.length());
        char quote = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (quote == 0) {
                if (c == '\'' || c == '"') {
                    quote = c;
                    out.append('\'');
                } else if (!Character.isWhitespace(c)) {
                    out.append(c);
                }
            } else if (c == '\\' && i + 1 < text.length()) {
                out.append(c).append(text.charAt(++i));
            } else if (c == quote) {
                quote = 0;
                out.append('\'');
            } else if (c == '\n') {
                out.append("\\n");
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    /** The literal system message of {@code '<|im_start|>system\nTEXT<|im_end|>'} in the template, if any. */
    private static String defaultChatmlSystem(String template) {
        String escaped = template.replace("\n", "\\n");
        Matcher m = Pattern.compile("<\\|im_start\\|>system\\\\n([^'\"]+?)<\\|im_end\\|>").matcher(escaped);
        return m.find() ? m.group(1).replace("\\n", "\n").replace("\\\\", "\\") : null;
    }

    /** The same format with other BOS/EOS token texts (null: none). */
    public ChatTemplate withSpecialTokens(String bos, String eos) {
        return new ChatTemplate(name, family, bos, eos, stripContent, defaultSystem, leadingBos, dateString,
                spaceAfterEos, skipEmptySystem, enableThinking);
    }

    /** Llama 3.1/3.2 only: the "Today Date" of the system block, e.g. {@code "26 Jul 2024"}. */
    public ChatTemplate withDateString(String date) {
        Objects.requireNonNull(date, "date");
        if (family != Family.LLAMA31) {
            throw new IllegalStateException("withDateString: template " + name + " has no date; only llama3.1/llama3.2 do");
        }
        return new ChatTemplate(name, family, bosToken, eosToken, stripContent, defaultSystem, leadingBos, date,
                spaceAfterEos, skipEmptySystem, enableThinking);
    }

    /**
     * Qwen3 only: the template's {@code enable_thinking} (default true). With false the generation
     * prompt ends with an empty {@code <think>\n\n</think>\n\n}, so the model answers without reasoning.
     */
    public ChatTemplate withEnableThinking(boolean enable) {
        if (family != Family.QWEN3) {
            throw new IllegalStateException("withEnableThinking: template " + name + " has no thinking switch; only qwen3 has");
        }
        return new ChatTemplate(name, family, bosToken, eosToken, stripContent, defaultSystem, leadingBos, dateString,
                spaceAfterEos, skipEmptySystem, enable);
    }

    /** Qwen3: whether thinking is enabled (true for every other template, which has no switch). */
    public boolean enableThinking() {
        return enableThinking;
    }

    public String name() {
        return name;
    }

    public String bosToken() {
        return bosToken;
    }

    public String eosToken() {
        return eosToken;
    }

    /** True when the rendered text contains the BOS token's text, so it must be encoded without adding BOS. */
    public boolean rendersBos() {
        return !bosToken.isEmpty() && switch (family) {
            case LLAMA2, LLAMA3, LLAMA31, MISTRAL, GEMMA, GEMMA3 -> true;
            case CHATML, PHI3 -> leadingBos;
            case ZEPHYR, QWEN3 -> false;
        };
    }

    /**
     * The texts that end an assistant turn in this format (as a tokenizer decodes them, special
     * tokens kept): hand them to {@code Generator.stopStrings} to stop at the end of the reply.
     */
    public List<String> stopStrings() {
        return switch (family) {
            case LLAMA2, MISTRAL, ZEPHYR -> List.of(eosToken);
            case LLAMA3 -> List.of("<|eot_id|>");
            case LLAMA31 -> List.of("<|eot_id|>", "<|eom_id|>");
            case CHATML, QWEN3 -> List.of("<|im_end|>");
            case GEMMA, GEMMA3 -> List.of("<end_of_turn>");
            case PHI3 -> List.of("<|end|>");
        };
    }

    /**
     * Renders the conversation; with {@code addGenerationPrompt} the text ends with the header of
     * an assistant turn (templates without one, Llama-2 and Mistral, ignore the flag).
     *
     * @throws IllegalArgumentException when the conversation breaks the format's rules (unknown
     *                                  role, system message where the format has none, roles not
     *                                  alternating); the message names the message index
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        Objects.requireNonNull(messages, "messages");
        if (messages.isEmpty()) {
            throw new IllegalArgumentException(name + ": messages is empty; pass at least one message");
        }
        for (int i = 0; i < messages.size(); i++) {
            ChatMessage m = Objects.requireNonNull(messages.get(i), "messages[" + i + "]");
            if (!m.role().equals("system") && !m.role().equals("user") && !m.role().equals("assistant")) {
                throw new IllegalArgumentException(name + ": messages[" + i + "].role is \"" + m.role()
                        + "\"; the roles are system, user and assistant");
            }
        }
        StringBuilder out = new StringBuilder();
        switch (family) {
            case LLAMA2 -> renderLlama2(messages, out);
            case LLAMA3 -> {
                for (int i = 0; i < messages.size(); i++) {
                    out.append(i == 0 ? bosToken : "");
                    appendLlama3Turn(messages.get(i), out);
                }
                if (addGenerationPrompt) {
                    out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            case LLAMA31 -> {
                boolean hasSystem = messages.get(0).role().equals("system");
                String date = dateString != null ? dateString
                        : LocalDate.now().format(DateTimeFormatter.ofPattern("dd MMM yyyy", Locale.ENGLISH));
                out.append(bosToken).append("<|start_header_id|>system<|end_header_id|>\n\n")
                        .append("Cutting Knowledge Date: December 2023\n").append("Today Date: ").append(date).append("\n\n")
                        .append(hasSystem ? pythonStrip(messages.get(0).content()) : "").append("<|eot_id|>");
                for (int i = hasSystem ? 1 : 0; i < messages.size(); i++) {
                    appendLlama3Turn(messages.get(i), out);
                }
                if (addGenerationPrompt) {
                    out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
            case CHATML -> {
                out.append(leadingBos ? bosToken : "");
                if (defaultSystem != null && !messages.get(0).role().equals("system")) {
                    out.append("<|im_start|>system\n").append(defaultSystem).append("<|im_end|>\n");
                }
                for (ChatMessage m : messages) {
                    out.append("<|im_start|>").append(m.role()).append('\n').append(m.content()).append("<|im_end|>\n");
                }
                if (addGenerationPrompt) {
                    out.append("<|im_start|>assistant\n");
                }
            }
            case MISTRAL -> {
                requireAlternating(messages, 0, "Mistral-Instruct v0.1/v0.2 have no system role; put the "
                        + "instructions into the first user message");
                out.append(bosToken);
                for (ChatMessage m : messages) {
                    if (m.role().equals("user")) {
                        out.append("[INST] ").append(m.content()).append(" [/INST]");
                    } else {
                        out.append(m.content()).append(eosToken).append(spaceAfterEos ? " " : "");
                    }
                }
            }
            case ZEPHYR -> {
                for (ChatMessage m : messages) {
                    out.append("<|").append(m.role()).append("|>\n").append(m.content()).append(eosToken).append('\n');
                }
                if (addGenerationPrompt) {
                    out.append("<|assistant|>\n");
                }
            }
            case GEMMA -> {
                requireAlternating(messages, 0, "Gemma has no system role; put the instructions into the first "
                        + "user message");
                out.append(bosToken);
                for (ChatMessage m : messages) {
                    out.append("<start_of_turn>").append(m.role().equals("assistant") ? "model" : "user").append('\n')
                            .append(pythonStrip(m.content())).append("<end_of_turn>\n");
                }
                if (addGenerationPrompt) {
                    out.append("<start_of_turn>model\n");
                }
            }
            case PHI3 -> {
                out.append(leadingBos ? bosToken : "");
                for (ChatMessage m : messages) {
                    if (m.role().equals("system") && skipEmptySystem && m.content().isEmpty()) {
                        continue;
                    }
                    out.append("<|").append(m.role()).append("|>\n").append(m.content()).append("<|end|>\n");
                }
                out.append(addGenerationPrompt ? "<|assistant|>\n" : eosToken);
            }
            case GEMMA3 -> {
                boolean hasSystem = messages.get(0).role().equals("system");
                int first = hasSystem ? 1 : 0;
                requireAlternating(messages, first, "Gemma 3 takes one system message, first (it is written into "
                        + "the first user turn)");
                out.append(bosToken);
                for (int i = first; i < messages.size(); i++) {
                    ChatMessage m = messages.get(i);
                    out.append("<start_of_turn>").append(m.role().equals("assistant") ? "model" : "user").append('\n');
                    if (i == first && hasSystem) {
                        out.append(messages.get(0).content()).append("\n\n");
                    }
                    out.append(pythonStrip(m.content())).append("<end_of_turn>\n");
                }
                if (addGenerationPrompt) {
                    out.append("<start_of_turn>model\n");
                }
            }
            case QWEN3 -> renderQwen3(messages, addGenerationPrompt, out);
        }
        return out.toString();
    }

    /**
     * Qwen3-0.6B's template for system/user/assistant messages: the system message first, if any;
     * assistant turns split at {@code </think>} into reasoning and answer; turns after the last user
     * message (one not wrapped in {@code <tool_response>...</tool_response>}) carry their reasoning
     * (the last turn always, even empty), earlier ones only their answer.
     */
    private void renderQwen3(List<ChatMessage> messages, boolean addGenerationPrompt, StringBuilder out) {
        if (messages.get(0).role().equals("system")) {
            out.append("<|im_start|>system\n").append(messages.get(0).content()).append("<|im_end|>\n");
        }
        int lastQuery = messages.size() - 1;
        for (int i = messages.size() - 1; i >= 0; i--) {
            String content = messages.get(i).content();
            if (messages.get(i).role().equals("user")
                    && !(content.startsWith("<tool_response>") && content.endsWith("</tool_response>"))) {
                lastQuery = i;
                break;
            }
        }
        for (int i = 0; i < messages.size(); i++) {
            ChatMessage m = messages.get(i);
            if (m.role().equals("user") || (m.role().equals("system") && i > 0)) {
                out.append("<|im_start|>").append(m.role()).append('\n').append(m.content()).append("<|im_end|>\n");
            } else if (m.role().equals("assistant")) {
                String content = m.content();
                String reasoning = "";
                int close = content.indexOf("</think>");
                if (close >= 0) {
                    // Python: split('</think>')[-1].lstrip('\n') and split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
                    String before = stripNewlines(content.substring(0, close), false, true);
                    int open = before.lastIndexOf("<think>");
                    reasoning = stripNewlines(open >= 0 ? before.substring(open + "<think>".length()) : before, true, false);
                    content = stripNewlines(content.substring(content.lastIndexOf("</think>") + "</think>".length()),
                            true, false);
                }
                out.append("<|im_start|>assistant\n");
                if (i > lastQuery && (i == messages.size() - 1 || !reasoning.isEmpty())) {
                    out.append("<think>\n").append(stripNewlines(reasoning, true, true)).append("\n</think>\n\n")
                            .append(stripNewlines(content, true, false));
                } else {
                    out.append(content);
                }
                out.append("<|im_end|>\n");
            }
        }
        if (addGenerationPrompt) {
            out.append("<|im_start|>assistant\n").append(enableThinking ? "" : "<think>\n\n</think>\n\n");
        }
    }

    /** Python's {@code lstrip('\n')} / {@code rstrip('\n')}: newlines only. */
    private static String stripNewlines(String s, boolean leading, boolean trailing) {
        int start = 0;
        int end = s.length();
        while (leading && start < end && s.charAt(start) == '\n') {
            start++;
        }
        while (trailing && end > start && s.charAt(end - 1) == '\n') {
            end--;
        }
        return s.substring(start, end);
    }

    private void renderLlama2(List<ChatMessage> messages, StringBuilder out) {
        boolean hasSystem = messages.get(0).role().equals("system");
        int first = hasSystem ? 1 : 0;
        requireAlternating(messages, first, "Llama-2 takes one system message, first");
        for (int i = first; i < messages.size(); i++) {
            ChatMessage m = messages.get(i);
            String content = m.content();
            if (i == first && hasSystem) {
                content = "<<SYS>>\n" + messages.get(0).content() + "\n<</SYS>>\n\n" + content;
            }
            content = stripContent ? pythonStrip(content) : content;
            if (m.role().equals("user")) {
                out.append(bosToken).append("[INST] ").append(content).append(" [/INST]");
            } else {
                out.append(' ').append(content).append(' ').append(eosToken);
            }
        }
    }

    private void requireAlternating(List<ChatMessage> messages, int from, String systemRule) {
        for (int i = from; i < messages.size(); i++) {
            String role = messages.get(i).role();
            String expected = (i - from) % 2 == 0 ? "user" : "assistant";
            if (role.equals("system")) {
                throw new IllegalArgumentException(name + ": messages[" + i + "] is a system message; " + systemRule);
            }
            if (!role.equals(expected)) {
                throw new IllegalArgumentException(name + ": messages[" + i + "].role is " + role + " but " + expected
                        + " was expected; conversation roles must alternate user/assistant/user/assistant/...");
            }
        }
    }

    private static void appendLlama3Turn(ChatMessage m, StringBuilder out) {
        out.append("<|start_header_id|>").append(m.role()).append("<|end_header_id|>\n\n")
                .append(pythonStrip(m.content())).append("<|eot_id|>");
    }

    /** Python's {@code str.strip()} (Jinja's {@code trim}): whitespace as Python's {@code isspace} defines it. */
    static String pythonStrip(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && isPythonSpace(s.charAt(start))) {
            start++;
        }
        while (end > start && isPythonSpace(s.charAt(end - 1))) {
            end--;
        }
        return s.substring(start, end);
    }

    private static boolean isPythonSpace(char c) {
        return Character.isWhitespace(c) || Character.isSpaceChar(c) || c == '\u0085';
    }

    /**
     * Renders and encodes: text that carries BOS is encoded without the tokenizer's special
     * tokens, other text with them (so a tokenizer that starts sequences with BOS adds it once).
     * The template's special-token texts ({@code <|im_start|>}, {@code [INST]} where it is a token,
     * ...) are matched as the tokenizer's added tokens.
     */
    public int[] encode(Tokenizer tokenizer, List<ChatMessage> messages, boolean addGenerationPrompt) {
        Objects.requireNonNull(tokenizer, "tokenizer");
        return tokenizer.encode(render(messages, addGenerationPrompt), !rendersBos());
    }

    @Override
    public String toString() {
        return "ChatTemplate{name=" + name + ", bos=" + bosToken + ", eos=" + eosToken + ", rendersBos=" + rendersBos()
                + (defaultSystem != null ? ", defaultSystem=" + defaultSystem : "")
                + (family == Family.LLAMA31 ? ", date=" + (dateString == null ? "today" : dateString) : "")
                + (family == Family.QWEN3 ? ", enableThinking=" + enableThinking : "")
                + ", stopStrings=" + stopStrings() + "}";
    }
}
