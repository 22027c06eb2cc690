package dev.lora4j.gguf;

import dev.lora4j.tokenizer.HfTokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * An Ollama {@code Modelfile} for a GGUF export: {@code FROM} the model (or base) GGUF,
 * {@code ADAPTER} the LoRA GGUF if there is one, and a {@code PARAMETER stop} for every special
 * token the chat template writes (e.g. {@code <|im_end|>}, {@code <|eot_id|>}, {@code </s>}) other
 * than BOS, or for EOS when there is no template. Ollama takes the chat template itself from the
 * GGUF's {@code tokenizer.chat_template}. Run it with
 * <pre>
 * ollama create my-model -f Modelfile
 * ollama run my-model
 * </pre>
 * Paths are written relative to the Modelfile's folder ({@code ./model.gguf}) when the GGUF lies in
 * or below it, else absolute.
 */
public final class OllamaModelfile {
    private OllamaModelfile() {
    }

    /** The Modelfile text; {@code adapter} may be null. */
    public static String text(Path modelfileDir, Path from, Path adapter, String chatTemplate, HfTokenizer tokenizer) {
        StringBuilder sb = new StringBuilder();
        sb.append("# written by lora4j: ollama create NAME -f Modelfile && ollama run NAME\n");
        sb.append("FROM ").append(relative(modelfileDir, from)).append('\n');
        if (adapter != null) {
            sb.append("ADAPTER ").append(relative(modelfileDir, adapter)).append('\n');
        }
        for (String stop : stopTokens(chatTemplate, tokenizer)) {
            sb.append("PARAMETER stop \"").append(stop.replace("\\", "\\\\").replace("\"", "\\\"")).append("\"\n");
        }
        return sb.toString();
    }

    /** Writes {@code Modelfile} into {@code dir}; returns its path. */
    public static Path write(Path dir, Path from, Path adapter, String chatTemplate, HfTokenizer tokenizer) {
        Path file = dir.resolve("Modelfile");
        try {
            Files.createDirectories(dir);
            Files.writeString(file, text(dir, from, adapter, chatTemplate, tokenizer), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + file + ": " + e.getMessage(), e);
        }
        return file;
    }

    /** Special tokens (other than BOS) that the template writes; EOS alone without a template. */
    static Set<String> stopTokens(String chatTemplate, HfTokenizer tokenizer) {
        Set<String> stops = new LinkedHashSet<>();
        int bos = tokenizer.bosId().orElse(-1);
        if (chatTemplate != null) {
            for (int id = 0; id < tokenizer.vocabSize(); id++) {
                if (id != bos && tokenizer.isSpecial(id)) {
                    String token;
                    try {
                        token = tokenizer.token(id);
                    } catch (IllegalArgumentException unused) {
                        continue;
                    }
                    if (chatTemplate.contains(token)) {
                        stops.add(token);
                    }
                }
            }
            if (tokenizer.eosId().isPresent() && chatTemplate.contains("eos_token")) {
                stops.add(tokenizer.token(tokenizer.eosId().getAsInt()));
            }
        }
        if (stops.isEmpty() && tokenizer.eosId().isPresent()) {
            stops.add(tokenizer.token(tokenizer.eosId().getAsInt()));
        }
        return stops;
    }

    private static String relative(Path dir, Path file) {
        Path d = dir.toAbsolutePath().normalize();
        Path f = file.toAbsolutePath().normalize();
        if (f.startsWith(d)) {
            return "./" + d.relativize(f).toString().replace('\\', '/');
        }
        return f.toString();
    }
}
