package dev.lora4j.lora;

import java.util.List;

/**
 * Groups of Llama-family linear layers that LoRA can adapt, by their Hugging Face module names.
 * A module is targeted when its full path ends with {@code "." + suffix} or equals the suffix, as
 * in PEFT's list form of {@code target_modules} (e.g. {@code q_proj} targets
 * {@code model.layers.3.self_attn.q_proj}).
 */
public enum Target {
    QUERY("q_proj"),
    KEY("k_proj"),
    VALUE("v_proj"),
    /** The attention output projection. */
    PROJECTION("o_proj"),
    MLP("gate_proj", "up_proj", "down_proj"),
    /** The output layer (vocabulary projection). */
    HEAD("lm_head"),
    /**
     * Every linear layer of the transformer blocks, not the output layer: what PEFT's
     * {@code target_modules="all-linear"} selects, and {@link LoraConfig}'s default.
     */
    ALL_LINEAR("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    /**
     * Every group above, the output layer included (LitGPT's "all": lora_query … lora_head, as in
     * Raschka's experiments). On a model with tied embeddings a merge then gives lm_head its own
     * weight (tie_word_embeddings false), so the merged model grows by vocab × hidden parameters;
     * use {@link #ALL_LINEAR} to keep the head tied.
     */
    ALL("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head");

    private final List<String> moduleSuffixes;

    Target(String... moduleSuffixes) {
        this.moduleSuffixes = List.of(moduleSuffixes);
    }

    /** The Hugging Face module names of this group, e.g. {@code [gate_proj, up_proj, down_proj]}. */
    public List<String> moduleSuffixes() {
        return moduleSuffixes;
    }
}
