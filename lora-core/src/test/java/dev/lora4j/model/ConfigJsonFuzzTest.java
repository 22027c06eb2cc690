package dev.lora4j.model;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;

/**
 * Fuzzes config.json parsing: any text must parse into a valid {@link LlamaConfig} or fail with
 * an {@link IllegalArgumentException}; a parsed config must survive a JSON round trip and report
 * its parameter count without overflow. Seeds: {@code ConfigJsonFuzzTestInputs/configJson/}.
 */
class ConfigJsonFuzzTest {

    @FuzzTest(maxDuration = "3m")
    void configJson(byte[] data) {
        LlamaConfig config;
        try {
            config = LlamaConfig.parse(new String(data, StandardCharsets.UTF_8), "config.json");
        } catch (IllegalArgumentException expected) {
            return;
        }
        LlamaConfig back = LlamaConfig.parse(config.toJson(), "round trip");
        if (!back.toJson().equals(config.toJson())) {
            throw new AssertionError("config.json round trip changed " + config.toJson() + " into " + back.toJson());
        }
        if (config.numHiddenLayers() > LlamaConfig.MAX_LAYERS || config.vocabSize() > LlamaConfig.MAX_VOCAB_SIZE) {
            throw new AssertionError("bounds not enforced: " + config.toJson());
        }
    }
}
