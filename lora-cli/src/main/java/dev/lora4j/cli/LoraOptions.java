package dev.lora4j.cli;

import dev.lora4j.lora.LoraConfig;
import dev.lora4j.lora.Target;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;

/**
 * The LoRA setting of a command ({@code @Mixin LoraOptions lora;}), with the library's defaults
 * ({@link LoraConfig#defaults()}): rank 8, alpha 2·rank, dropout 0, on every linear layer of the
 * transformer blocks ({@code all-linear}, PEFT's preset; the output layer excluded).
 *
 * <p>Targets take the presets {@code all-linear} and {@code all} (all-linear plus lm_head), LitGPT's
 * names ({@code query, key, value, projection, mlp, head}), {@code attention} and Hugging Face
 * module names ({@code q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head}, and
 * the other families' {@code qkv_proj, gate_up_proj, query_key_value, dense, dense_h_to_4h,
 * dense_4h_to_h, fc1, fc2}), comma-separated, in any mix. Llama names and groups are mapped onto a
 * model's own module names (e.g. query is qkv_proj on Phi-3), see {@link Target#forModel}.
 */
public final class LoraOptions {

    /** Every accepted --targets name and the Hugging Face modules it selects. */
    static final Map<String, List<String>> TARGET_NAMES = targetNames();

    @Spec(Spec.Target.MIXEE)
    private CommandSpec spec;

    /** The --targets default: PEFT's all-linear, the library's default targets. */
    static final String DEFAULT_TARGETS = "all-linear";

    @Option(names = {"-r", "--rank"}, defaultValue = "" + LoraConfig.DEFAULT_RANK, paramLabel = "R",
            description = "LoRA rank r, the inner dimension of B·A (default: ${DEFAULT-VALUE}).")
    int rank = LoraConfig.DEFAULT_RANK;

    @Option(names = "--alpha", paramLabel = "ALPHA",
            description = "LoRA alpha; the update is scaled by alpha / r (default: 2 × rank, i.e. scaling 2).")
    Double alpha;

    @Option(names = "--dropout", defaultValue = "" + LoraConfig.DEFAULT_DROPOUT, paramLabel = "P",
            description = "Dropout probability on the LoRA branch's input during training (default: ${DEFAULT-VALUE}).")
    double dropout = LoraConfig.DEFAULT_DROPOUT;

    @Option(names = "--targets", split = ",", defaultValue = DEFAULT_TARGETS, paramLabel = "NAME",
            converter = TargetConverter.class,
            description = "Modules to adapt, comma-separated. Presets: all-linear (q, k, v, o, gate, up, down: PEFT's "
                    + "all-linear, the output layer excluded) and all (all-linear plus lm_head; merging then unties a "
                    + "tied head, so the merged model grows). Groups: query, key, value, projection, mlp, head. Or Hugging "
                    + "Face names such as q_proj, down_proj, lm_head (default: ${DEFAULT-VALUE}).")
    List<TargetGroup> targets = new ArrayList<>();

    @Option(names = "--rslora", description = "Rank-stabilized LoRA: scale by alpha / sqrt(r) instead of alpha / r.")
    boolean useRslora;

    /** The Hugging Face module names selected by --targets, in the order given, without repeats. */
    public List<String> targetModules() {
        Set<String> modules = new LinkedHashSet<>();
        for (TargetGroup group : targets) {
            modules.addAll(group.modules());
        }
        return List.copyOf(modules);
    }

    /**
     * The LoRA configuration of these options.
     *
     * @throws picocli.CommandLine.ParameterException naming the option whose value is out of range
     */
    public LoraConfig toLoraConfig() {
        LoraConfig config = OptionErrors.check(spec, "--rank", rank, () -> LoraConfig.rank(rank));
        LoraConfig withRank = config;
        if (alpha != null) {
            config = OptionErrors.check(spec, "--alpha", alpha, () -> withRank.alpha(alpha));
        }
        LoraConfig withAlpha = config;
        config = OptionErrors.check(spec, "--dropout", dropout, () -> withAlpha.dropout(dropout));
        List<String> modules = targetModules();
        if (modules.isEmpty()) {
            throw OptionErrors.invalid(spec, "--targets", "", "name at least one module group, e.g. all-linear or "
                    + "query,value");
        }
        return config.targetModules(modules).useRslora(useRslora);
    }

    @Override
    public String toString() {
        return "LoraOptions(rank=" + rank + ", alpha=" + (alpha != null ? alpha : "2*rank") + ", dropout=" + dropout + ", targets=" + targetModules()
                + ", rslora=" + useRslora + ")";
    }

    private static Map<String, List<String>> targetNames() {
        Map<String, List<String>> names = new TreeMap<>();
        for (Target t : Target.values()) {
            // ALL_LINEAR is written as PEFT writes it: all-linear
            names.put(t.name().toLowerCase(Locale.ROOT).replace('_', '-'), t.moduleSuffixes());
            for (String module : t.moduleSuffixes()) {
                names.put(module, List.of(module));
            }
        }
        for (String module : Target.FAMILY_MODULE_NAMES) {
            names.put(module, List.of(module));
        }
        return names;
    }

    /** The accepted --targets names, presets and groups first, then module names. */
    static String validTargetNames() {
        List<String> groups = new ArrayList<>();
        List<String> modules = new ArrayList<>();
        TARGET_NAMES.forEach((name, selected) -> (selected.size() == 1 && selected.get(0).equals(name) ? modules : groups)
                .add(name));
        return "presets and groups: " + String.join(", ", groups) + "; module names: " + String.join(", ", modules);
    }

    /** One --targets name as given and the Hugging Face module names it selects. */
    record TargetGroup(String name, List<String> modules) {
    }

    /** One --targets name → its Hugging Face module names. */
    static final class TargetConverter implements ITypeConverter<TargetGroup> {
        @Override
        public TargetGroup convert(String value) {
            List<String> modules = TARGET_NAMES.get(value.trim().toLowerCase(Locale.ROOT).replace("all_linear", "all-linear"));
            if (modules == null) {
                throw new TypeConversionException("'" + value + "' is not a LoRA target; valid names are "
                        + validTargetNames());
            }
            return new TargetGroup(value, modules);
        }
    }
}
