package dev.lora4j.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Rendering against goldens: chat_templates.json holds each family's real chat_template text and
 * what jinja2 (configured as transformers' apply_chat_template) renders for four conversations,
 * with and without the generation prompt (and for Qwen3 with enable_thinking=False);
 * chat_templates.py beside it produced the file.
 */
class ChatTemplateTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static JsonNode goldens;
    private static Map<String, List<ChatMessage>> conversations;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = ChatTemplateTest.class.getResourceAsStream("chat_templates.json")) {
            goldens = JSON.readTree(in);
        }
        conversations = new java.util.HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = goldens.path("conversations").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            List<ChatMessage> messages = new ArrayList<>();
            e.getValue().forEach(m -> messages.add(new ChatMessage(m.path("role").asText(), m.path("content").asText())));
            conversations.put(e.getKey(), messages);
        }
    }

    private static String textOrNull(JsonNode node) {
        return node.isNull() ? null : node.asText();
    }

    /** Every rendering of every family equals jinja2's, through both named() and detection from the real text. */
    @Test
    void rendersExactlyAsJinjaForEveryFamily(@TempDir Path dir) throws IOException {
        int compared = 0;
        for (JsonNode entry : goldens.path("templates")) {
            String name = entry.path("name").asText();
            String bos = textOrNull(entry.path("bos_token"));
            String eos = textOrNull(entry.path("eos_token"));
            Path folder = Files.createDirectories(dir.resolve(name));
            ObjectNode config = JSON.createObjectNode();
            config.put("bos_token", bos);
            config.put("eos_token", eos);
            config.put("chat_template", entry.path("chat_template").asText());
            JSON.writeValue(folder.resolve("tokenizer_config.json").toFile(), config);

            ChatTemplate detected = ChatTemplate.fromTokenizerConfig(folder);
            assertEquals(name, detected.name(), entry.path("model").asText());
            ChatTemplate named = ChatTemplate.named(name).withSpecialTokens(bos, eos);
            for (Iterator<Map.Entry<String, JsonNode>> it = entry.path("rendered").fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> r = it.next();
                String[] key = r.getKey().split("\\+");
                List<ChatMessage> messages = conversations.get(key[0]);
                boolean generationPrompt = key.length > 1;
                boolean noThinking = key.length > 2 && key[2].equals("enable_thinking=false");
                assertEquals(key.length > 2, noThinking, r.getKey());
                for (ChatTemplate base : List.of(detected, named)) {
                    ChatTemplate template = noThinking ? base.withEnableThinking(false) : base;
                    String what = name + " " + r.getKey();
                    if (r.getValue().isObject()) {
                        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                                () -> template.render(messages, generationPrompt), what);
                        assertTrue(e.getMessage().contains("messages[0]") && e.getMessage().contains("system"), e.getMessage());
                    } else {
                        assertEquals(r.getValue().asText(), template.render(messages, generationPrompt), what);
                    }
                    compared++;
                }
            }
        }
        // 14 families x 4 conversations x (without, with generation prompt), plus qwen3's 4 renderings
        // with enable_thinking=false; each through detection and named()
        assertEquals((14 * 4 * 2 + 4) * 2, compared);
    }

    @Test
    void chatTemplateListUsesDefaultEntry(@TempDir Path dir) throws IOException {
        JsonNode llama3 = family("llama3");
        ObjectNode config = JSON.createObjectNode();
        config.put("bos_token", "<|begin_of_text|>");
        config.putArray("chat_template").add(JSON.createObjectNode().put("name", "tool_use").put("template", "{{ x }}"))
                .add(JSON.createObjectNode().put("name", "default").put("template", llama3.path("chat_template").asText()));
        JSON.writeValue(dir.resolve("tokenizer_config.json").toFile(), config);
        assertEquals("llama3", ChatTemplate.fromTokenizerConfig(dir).name());
    }

    private static JsonNode family(String name) {
        for (JsonNode entry : goldens.path("templates")) {
            if (entry.path("name").asText().equals(name)) {
                return entry;
            }
        }
        throw new AssertionError(name);
    }

    @Test
    void unknownOrMissingTemplatesAreRefusedWithTheWayOut(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("tokenizer_config.json");
        Files.writeString(file, "{\"chat_template\": \"{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\\n{% endfor %}\"}");
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.fromTokenizerConfig(dir));
        assertTrue(unknown.getMessage().contains(file.toString()), unknown.getMessage());
        assertTrue(unknown.getMessage().contains("ChatTemplate.named"), unknown.getMessage());
        assertTrue(unknown.getMessage().contains("Llama-2") && unknown.getMessage().contains("qwen2.5"), unknown.getMessage());

        Files.writeString(file, "{\"bos_token\": \"<s>\"}");
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.fromTokenizerConfig(dir));
        assertTrue(none.getMessage().contains("has no chat_template"), none.getMessage());

        assertThrows(java.nio.file.NoSuchFileException.class, () -> ChatTemplate.fromTokenizerConfig(dir.resolve("absent")));
        IllegalArgumentException badName = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.named("vicuna"));
        assertTrue(badName.getMessage().contains("vicuna") && badName.getMessage().contains("llama3.1"), badName.getMessage());
    }

    @Test
    void roleRulesAreEnforced() {
        ChatTemplate llama2 = ChatTemplate.named("llama2");
        IllegalArgumentException twoUsers = assertThrows(IllegalArgumentException.class,
                () -> llama2.render(List.of(ChatMessage.user("a"), ChatMessage.user("b")), true));
        assertTrue(twoUsers.getMessage().contains("messages[1].role is user but assistant was expected"), twoUsers.getMessage());
        IllegalArgumentException lateSystem = assertThrows(IllegalArgumentException.class,
                () -> llama2.render(List.of(ChatMessage.user("a"), ChatMessage.system("b")), true));
        assertTrue(lateSystem.getMessage().contains("messages[1] is a system message"), lateSystem.getMessage());
        IllegalArgumentException assistantFirst = assertThrows(IllegalArgumentException.class,
                () -> ChatTemplate.named("gemma").render(List.of(ChatMessage.assistant("a")), true));
        assertTrue(assistantFirst.getMessage().contains("messages[0].role is assistant but user"), assistantFirst.getMessage());
        IllegalArgumentException tool = assertThrows(IllegalArgumentException.class,
                () -> ChatTemplate.named("chatml").render(List.of(new ChatMessage("tool", "x")), true));
        assertTrue(tool.getMessage().contains("messages[0].role is \"tool\""), tool.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ChatTemplate.named("chatml").render(List.of(), true));
        assertThrows(IllegalStateException.class, () -> ChatTemplate.named("chatml").withDateString("1 Jan 2025"));
    }

    @Test
    void llama31DateCanBeSetAndLlama32UsesToday() {
        List<ChatMessage> chat = List.of(ChatMessage.user("hi"));
        assertTrue(ChatTemplate.named("llama3.1").render(chat, true).contains("Today Date: 26 Jul 2024\n\n<|eot_id|>"));
        assertTrue(ChatTemplate.named("llama3.1").withDateString("01 Jan 2025").render(chat, true).contains("Today Date: 01 Jan 2025\n"));
        String llama32 = family("llama3.1").path("chat_template").asText()
                .replace("{%- set date_string = \"26 Jul 2024\" %}",
                        "{%- if strftime_now is defined %}{%- set date_string = strftime_now(\"%d %b %Y\") %}{%- else %}"
                                + "{%- set date_string = \"26 Jul 2024\" %}{%- endif %}");
        ChatTemplate t = ChatTemplate.fromTemplateText(llama32, "<|begin_of_text|>", "<|eot_id|>", "test");
        assertEquals("llama3.2", t.name());
        String today = java.time.LocalDate.now().format(java.time.format.DateTimeFormatter.ofPattern("dd MMM yyyy", java.util.Locale.ENGLISH));
        assertTrue(t.render(chat, true).contains("Today Date: " + today + "\n"));
    }

    /** Templates that are not Qwen3-0.6B's thinking template must not be taken for plain ChatML. */
    @Test
    void qwen3VariantsAreRefusedNotRenderedAsChatml() {
        String qwen3 = family("qwen3").path("chat_template").asText();
        String variant = qwen3.replace("{%- if loop.index0 > ns.last_query_index %}",
                "{%- if loop.index0 > ns.last_query_index or reasoning_content %}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ChatTemplate.fromTemplateText(variant, null, "<|im_end|>", "Qwen3-variant/tokenizer_config.json"));
        assertTrue(e.getMessage().contains("Qwen3-variant/tokenizer_config.json") && e.getMessage().contains("named(\"qwen3\")"),
                e.getMessage());
        assertThrows(IllegalStateException.class, () -> ChatTemplate.named("gemma3").withEnableThinking(false));
        ChatTemplate off = ChatTemplate.named("qwen3").withEnableThinking(false);
        assertFalse(off.enableThinking());
        assertFalse(off.withSpecialTokens(null, "<|im_end|>").enableThinking(), "withSpecialTokens keeps the switch");
        assertTrue(off.toString().contains("enableThinking=false"), off.toString());
    }

    /**
     * A user message that is a wrapped tool response is not the last query (Qwen3's multi-step rule);
     * the expected text is jinja2's rendering of the real template for these messages.
     */
    @Test
    void qwen3ToolResponseIsNotTheLastQuery() {
        List<ChatMessage> chat = List.of(ChatMessage.user("Q"), ChatMessage.assistant("<think>r</think>A"),
                ChatMessage.user("<tool_response>x</tool_response>"), ChatMessage.assistant("B"));
        assertEquals("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nA<|im_end|>\n"
                        + "<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n"
                        + "<|im_start|>assistant\n<think>\n\n</think>\n\nB<|im_end|>\n",
                ChatTemplate.named("qwen3").render(chat, false));
    }

    @Test
    void stopStringsAndBos() {
        assertEquals(List.of("<|im_end|>"), ChatTemplate.named("qwen3").stopStrings());
        assertEquals(List.of("<end_of_turn>"), ChatTemplate.named("gemma3").stopStrings());
        assertTrue(ChatTemplate.named("gemma3").rendersBos());
        assertFalse(ChatTemplate.named("qwen3").rendersBos());
        assertEquals(List.of("<|im_end|>"), ChatTemplate.named("qwen2.5").stopStrings());
        assertEquals(List.of("<|eot_id|>", "<|eom_id|>"), ChatTemplate.named("llama3.1").stopStrings());
        assertEquals(List.of("</s>"), ChatTemplate.named("llama2").stopStrings());
        assertTrue(ChatTemplate.named("llama2").rendersBos());
        assertFalse(ChatTemplate.named("qwen2.5").rendersBos());
        assertFalse(ChatTemplate.named("zephyr").rendersBos());
        assertTrue(ChatTemplate.named("llama3").toString().contains("rendersBos=true"));
    }

    /** BOS written by the template is not doubled; a template without BOS gets the tokenizer's. */
    @Test
    void encodeAddsBosExactlyOnce() {
        HfTokenizer tokenizer = TokenizerFixtures.tokenizer("tokenizers/llama2");
        List<ChatMessage> chat = List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi"));
        int[] llama2 = ChatTemplate.named("llama2").encode(tokenizer, chat, true);
        assertEquals(1, llama2[0]);
        assertTrue(llama2[1] != 1, "one BOS");
        assertArrayEquals(tokenizer.encode("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]", false), llama2);
        int[] zephyr = ChatTemplate.named("zephyr").encode(tokenizer, chat, true);
        assertEquals(1, zephyr[0]);
        assertArrayEquals(tokenizer.encode("<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n", true), zephyr);
    }
}
