package dev.lora4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.tokenizer.ChatMessage;
import dev.lora4j.tokenizer.ChatTemplate;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.model.Generator;
import dev.lora4j.model.LlamaModel;
import dev.lora4j.model.ModelLoader;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ChatCommandTest {

    private static CliRun chat(String stdin, String... args) {
        InputStream saved = System.in;
        try {
            System.setIn(new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)));
            List<String> all = new ArrayList<>(List.of("chat", CliRun.ARITH_TINY.toString()));
            all.addAll(List.of(args));
            return CliRun.of(all.toArray(String[]::new));
        } finally {
            System.setIn(saved);
        }
    }

    /** The reply the library gives to this conversation, greedy, as the command streams it. */
    private static Generator.Generation reply(LlamaModel model, HfTokenizer tokenizer, ChatTemplate template,
                                              List<ChatMessage> conversation) {
        return new Generator(model).temperature(0).maxNewTokens(6).tokenizer(tokenizer).stopTokens(Set.of(2))
                .stopStrings(template.stopStrings())
                .generateText(template.encode(tokenizer, conversation, true), piece -> { });
    }

    @Test
    void eachTurnSeesTheEarlierOnesThroughTheTemplate() throws Exception {
        CliRun run = chat("59 minus 38 is\n12 plus 40 is\n/exit\nnever read\n", "--template", "llama2", "-t", "0",
                "--max-new-tokens", "6", "--system", "be brief");
        assertEquals(0, run.exitCode(), run::toString);

        LlamaModel model = ModelLoader.load(CliRun.ARITH_TINY, ModelLoader.Options.defaults());
        HfTokenizer tokenizer = HfTokenizer.load(CliRun.ARITH_TINY);
        ChatTemplate llama2 = ChatTemplate.named("llama2");
        List<ChatMessage> conversation = new ArrayList<>(List.of(ChatMessage.system("be brief"),
                ChatMessage.user("59 minus 38 is")));
        Generator.Generation first = reply(model, tokenizer, llama2, conversation);
        conversation.add(ChatMessage.assistant(first.text().strip()));
        conversation.add(ChatMessage.user("12 plus 40 is"));
        Generator.Generation second = reply(model, tokenizer, llama2, conversation);
        assertTrue(!first.text().isBlank() && !second.text().isBlank(), "the model replied nothing: " + run);
        assertEquals(first.text() + "\n" + second.text() + "\n", run.out());
    }

    @Test
    void resetForgetsTheConversation() {
        CliRun run = chat("59 minus 38 is\n/reset\n59 minus 38 is\n", "--template", "mistral-v0.2", "-t", "0",
                "--max-new-tokens", "5");
        assertEquals(0, run.exitCode(), run::toString);
        String[] replies = run.out().split("\n", -1);
        assertEquals(3, replies.length, run::toString);
        assertTrue(!replies[0].isBlank(), run::toString);
        assertEquals(replies[0], replies[1], "after /reset the same message gets the same greedy reply");
        assertTrue(run.err().contains("conversation cleared"), run::toString);
    }

    @Test
    void aFolderWithoutAChatTemplateAsksForTemplate() {
        CliRun run = chat("hello\n");
        assertEquals(2, run.exitCode(), run::toString);
        assertTrue(run.err().contains("--template"), run::toString);
        CliRun unknown = chat("hello\n", "--template", "vicuna");
        assertEquals(2, unknown.exitCode(), unknown::toString);
        assertTrue(unknown.err().contains("--template") && unknown.err().contains("vicuna"), unknown::toString);
    }
}
