package dev.lora4j.lora;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Fuzzes adapter_config.json parsing and the matching of its patterns: any text must parse or
 * fail with an {@link IllegalArgumentException}; the patterns of a parsed config (target_modules
 * regex, rank_pattern, alpha_pattern) must then match module names without hanging or throwing.
 * Seeds: {@code AdapterConfigFuzzTestInputs/adapterConfig/}.
 */
class AdapterConfigFuzzTest {
    private static final List<String> MODULES = List.of("model.layers.0.self_attn.q_proj", "model.layers.31.mlp.down_proj",
            "model.layers.7.self_attn.v_proj", "lm_head", "model.embed_tokens",
            "model.layers.1234567890123.self_attn.o_proj_" + "a".repeat(200));

    @FuzzTest(maxDuration = "3m")
    void adapterConfig(byte[] data) {
        AdapterConfigJson config;
        try {
            config = AdapterConfigJson.parse(new String(data, StandardCharsets.UTF_8), "adapter_config.json");
        } catch (IllegalArgumentException expected) {
            return;
        }
        for (String module : MODULES) {
            config.lora().resolve(module);
        }
        // The file lists rank_pattern / alpha_pattern keys sorted, as PEFT's json.dumps(sort_keys=True) does, so a
        // round trip may reorder them (a fuzzing finding, PEFT-compatible); what is written must read back the same.
        AdapterConfigJson back = AdapterConfigJson.parse(config.toJson(), "round trip");
        if (!back.toJson().equals(config.toJson())) {
            throw new AssertionError("adapter_config.json round trip changed " + config.toJson() + " into " + back.toJson());
        }
    }
}
