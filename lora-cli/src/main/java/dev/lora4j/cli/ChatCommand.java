package dev.lora4j.cli;

import dev.lora4j.tokenizer.ChatMessage;
import dev.lora4j.tokenizer.ChatTemplate;
import dev.lora4j.tokenizer.HfTokenizer;
import dev.lora4j.model.Generator;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code lora4j chat}: a conversation with the model (and adapters) through its chat template.
 * Each line on standard input is a user message; the reply streams to standard output. The
 * conversation is kept, so each turn sees the earlier ones; when it no longer fits the context,
 * the oldest exchanges are dropped (and a log line says so). {@code /reset} starts over,
 * {@code /exit} or the end of input ends the session.
 */
@Command(name = "chat", mixinStandardHelpOptions = true,
        description = "Chat with the model through its chat template, one user message per input line.",
        footer = {"", "The template comes from the model's tokenizer_config.json, or --template NAME.",
            "Example: lora4j chat models/TinyLlama-1.1B-Chat --adapter my-adapter --temperature 0.7"})
public final class ChatCommand implements Callable<Integer> {
    private static final Logger LOG = LoggerFactory.getLogger(ChatCommand.class);

    @Spec
    private CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Mixin
    DeviceOptions deviceOptions;

    @Mixin
    SamplingOptions sampling;

    @Option(names = "--template", paramLabel = "NAME",
            description = "Chat format when the model folder has none or another is wanted: one of "
                    + "llama2, llama3, llama3.1, chatml, qwen2, qwen2.5, smollm2, mistral-v0.1, mistral-v0.2, zephyr, "
                    + "gemma, phi3.")
    String templateName;

    @Option(names = "--system", paramLabel = "TEXT", description = "A system message that opens the conversation.")
    String system;

    @Option(names = "--no-history", description = "Answer each message on its own, without the earlier turns.")
    boolean noHistory;

    @Override
    public Integer call() {
        dev.lora4j.tensor.Device computeDevice = deviceOptions.resolve(spec);
        HfTokenizer tokenizer = modelOptions.tokenizer();
        ChatTemplate template = template();
        ModelOptions.LoadedModel loaded = modelOptions.load(computeDevice);
        Set<Integer> stopTokens = ModelOptions.stopTokens(loaded, tokenizer);
        Generator generator = sampling.configure(new Generator(loaded.model())).tokenizer(tokenizer)
                .stopTokens(stopTokens).stopStrings(template.stopStrings());
        int context = loaded.model().config().maxPositionEmbeddings();
        LOG.info("chat template {}; stop strings {}, stop tokens {}; context {} tokens", template.name(),
                template.stopStrings(), stopTokens, context);

        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        List<ChatMessage> history = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        err.print(">> ");
        err.flush();
        for (String line = readLine(in); line != null; line = readLine(in)) {
            String message = line.strip();
            if (message.equals("/exit")) {
                break;
            }
            if (message.equals("/reset")) {
                history.clear();
                err.println("(conversation cleared)");
            } else if (!message.isEmpty()) {
                history.add(ChatMessage.user(message));
                int[] prompt = fitPrompt(template, tokenizer, history, context - sampling.maxNewTokens());
                if (prompt == null) {
                    err.println("(the message is too long: it does not fit the context of " + context + " tokens with "
                            + "--max-new-tokens " + sampling.maxNewTokens() + "; shorten it or lower --max-new-tokens)");
                    history.clear();
                } else {
                    long start = System.nanoTime();
                    Generator.Generation reply = generator.generateText(prompt, piece -> {
                        out.print(piece);
                        out.flush();
                    });
                    out.println();
                    out.flush();
                    double seconds = (System.nanoTime() - start) / 1e9;
                    LOG.info(String.format(Locale.ROOT, "%d prompt tokens, %d new in %.2f s (%.1f tokens/s), stopped: %s",
                            prompt.length, reply.tokens().length, seconds, reply.tokens().length / Math.max(seconds, 1e-9),
                            reply.stopReason()));
                    history.add(ChatMessage.assistant(reply.text().strip()));
                    if (noHistory) {
                        history.clear();
                    }
                }
            }
            err.print(">> ");
            err.flush();
        }
        err.println();
        err.flush();
        return 0;
    }

    /**
     * The encoded conversation with a generation prompt, dropping the oldest user/assistant
     * exchanges until it has at most {@code budget} tokens; null when even the last message alone
     * is too long.
     */
    private int[] fitPrompt(ChatTemplate template, HfTokenizer tokenizer, List<ChatMessage> history, int budget) {
        int dropped = 0;
        while (true) {
            int[] ids = template.encode(tokenizer, withSystem(history), true);
            if (ids.length <= budget) {
                if (dropped > 0) {
                    LOG.info("dropped the {} oldest exchange(s) to fit the context", dropped);
                }
                return ids;
            }
            if (history.size() < 3) {
                return null;
            }
            history.subList(0, 2).clear();
            dropped++;
        }
    }

    private List<ChatMessage> withSystem(List<ChatMessage> history) {
        if (system == null || system.isBlank()) {
            return history;
        }
        List<ChatMessage> all = new ArrayList<>(history.size() + 1);
        all.add(ChatMessage.system(system));
        all.addAll(history);
        return all;
    }

    private ChatTemplate template() {
        if (templateName != null) {
            return OptionErrors.check(spec, "--template", templateName, () -> ChatTemplate.named(templateName));
        }
        if (modelOptions.isGguf()) {
            try {
                return modelOptions.ggufChatTemplate();
            } catch (IllegalArgumentException e) {
                throw OptionErrors.usage(spec, e.getMessage() + " (on the command line: --template NAME)");
            }
        }
        try {
            return ChatTemplate.fromTokenizerConfig(modelOptions.folder());
        } catch (NoSuchFileException e) {
            throw OptionErrors.usage(spec, modelOptions.folder() + " has no tokenizer_config.json with a chat template; "
                    + "choose the format with --template NAME, one of " + ChatTemplate.NAMES);
        } catch (IllegalArgumentException e) {
            throw OptionErrors.usage(spec, e.getMessage() + " (on the command line: --template NAME)");
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + modelOptions.folder().resolve("tokenizer_config.json") + ": "
                    + e.getMessage(), e);
        }
    }

    private static String readLine(BufferedReader in) {
        try {
            return in.readLine();
        } catch (IOException e) {
            throw new UncheckedIOException("reading standard input: " + e.getMessage(), e);
        }
    }
}
