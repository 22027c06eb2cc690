package dev.lora4j.lora;

import dev.lora4j.model.Architecture;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * Groups of linear layers that LoRA can adapt, by their Hugging Face module names in the Llama
 * family. A module is targeted when its full path ends with {@code "." + suffix} or equals the
 * suffix, as in PEFT's list form of {@code target_modules} (e.g. {@code q_proj} targets
 * {@code model.layers.3.self_attn.q_proj}).
 *
 * <p>Other families name the same roles differently; {@link #forModel} maps the Llama names onto
 * them when an adapter is created ({@code model.config().architecture().moduleNameFor}):
 * <table>
 *   <caption>Llama names per family</caption>
 *   <tr><th>family</th><th>q/k/v_proj</th><th>o_proj</th><th>gate/up_proj</th><th>down_proj</th></tr>
 *   <tr><td>llama, mistral, qwen2, qwen3, gemma2, gemma3</td><td>q/k/v_proj</td><td>o_proj</td><td>gate/up_proj</td><td>down_proj</td></tr>
 *   <tr><td>phi3</td><td>qkv_proj</td><td>o_proj</td><td>gate_up_proj</td><td>down_proj</td></tr>
 *   <tr><td>phi</td><td>q/k/v_proj</td><td>dense</td><td>fc1</td><td>fc2</td></tr>
 *   <tr><td>falcon</td><td>query_key_value</td><td>dense</td><td>dense_h_to_4h</td><td>dense_4h_to_h</td></tr>
 * </table>
 * A fused module carries one adapter over its whole output, as PEFT adapts it, so on Phi-3 or
 * Falcon {@link #QUERY} alone adapts keys and values too.
 */
public enum Target {
    QUERY("q_proj"),
    KEY("k_proj"),
    VALUE("v_proj"),
    /** The attention output projection. */
    PROJECTION("o_proj"),
    MLP("gate_proj", "up_proj", "down_proj"),
    /** Every attention projection: queries, keys, values and the output. */
    ATTENTION("q_proj", "k_proj", "v_proj", "o_proj"),
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

    /**
     * The module names of the other families for the roles above (see the table), which
     * {@code target_modules} may name directly.
     */
    public static final List<String> FAMILY_MODULE_NAMES = List.of("qkv_proj", "gate_up_proj", "query_key_value", "dense",
            "dense_h_to_4h", "dense_4h_to_h", "fc1", "fc2");

    private final List<String> moduleSuffixes;

    Target(String... moduleSuffixes) {
        this.moduleSuffixes = List.of(moduleSuffixes);
    }

    /** The Hugging Face module names of this group, e.g. {@code [gate_proj, up_proj, down_proj]}. */
    public List<String> moduleSuffixes() {
        return moduleSuffixes;
    }

    /**
     * {@code config} with each target name that matches no module of the model replaced by the
     * family's name for the same role ({@link Architecture#moduleNameFor}); names that match, and
     * target patterns, are kept. Returns {@code config} itself when nothing changes.
     */
    public static LoraConfig forModel(LoraConfig config, Architecture architecture, Collection<String> moduleNames) {
        if (config.targetPattern().isPresent()) {
            return config;
        }
        List<String> mapped = new ArrayList<>();
        boolean changed = false;
        for (String name : config.targetModules()) {
            boolean present = moduleNames.stream().anyMatch(m -> m.equals(name) || m.endsWith("." + name));
            String family = present ? name : architecture.moduleNameFor(name);
            changed |= !family.equals(name);
            mapped.add(family);
        }
        return changed ? config.targetModules(mapped) : config;
    }
}
