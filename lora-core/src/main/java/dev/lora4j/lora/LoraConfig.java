package dev.lora4j.lora;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.SplittableRandom;
import java.util.TreeSet;
import com.google.re2j.Matcher;
import com.google.re2j.Pattern;
import com.google.re2j.PatternSyntaxException;

/**
 * Immutable LoRA settings (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models",
 * arXiv:2106.09685): which modules get an adapter, their rank r and alpha, the scaling
 * alpha / r applied to B·A (alpha / √r with rank-stabilized LoRA, Kalajdzievski, arXiv:2312.03732),
 * the dropout on the LoRA branch and how A is initialized. Module selection follows PEFT's
 * {@code LoraConfig} so that an {@code adapter_config.json} means the same here as in PEFT.
 *
 * <p>Every option has a default, and every fluent call validates its argument and returns a new
 * config (the receiver is unchanged):
 * <pre>{@code
 * LoraConfig config = LoraConfig.rank(256).alpha(512).dropout(0.05).targets(Target.ALL);
 * Optional<ModuleLora> q = config.resolve("model.layers.3.self_attn.q_proj");
 * }</pre>
 *
 * <p>Defaults (the same for the library and the {@code lora4j} command line; the README's
 * "Defaults" section names the experiment behind each):
 * <ul>
 * <li>rank 8: PEFT's and LitGPT's default, the rank of Raschka's baseline runs;</li>
 * <li>alpha = 2 · rank unless set. PEFT's default is a fixed {@code lora_alpha=8}, which silently
 *     changes the scaling whenever the rank changes; 2 · rank keeps alpha / r = 2, the rule of
 *     thumb of Raschka's rank sweeps (S. Raschka, "Practical Tips for Finetuning LLMs Using
 *     LoRA", 2023; LitGPT's r=8, alpha=16). The derived alpha follows later {@link #withRank}
 *     calls; an explicit {@link #alpha(double)} does not.</li>
 * <li>dropout 0, PEFT's default;</li>
 * <li>targets {@link Target#ALL_LINEAR}: every linear layer of the transformer blocks (q, k, v,
 *     o, gate, up, down), what PEFT's {@code "all-linear"} selects for Llama (the output layer
 *     excluded). Raschka found adapting all layers clearly better than query and value only, and
 *     QLoRA found it necessary to match full fine-tuning (Dettmers et al., arXiv:2305.14314, §4).
 *     {@link Target#ALL} adds lm_head (LitGPT's "all").</li>
 * <li>every layer, no rank or alpha patterns, scaling alpha / r, {@link LoraInit#KAIMING_UNIFORM},
 *     seed 42.</li>
 * </ul>
 *
 * <p>Module names are Hugging Face paths as {@code named_modules()} lists them for a
 * {@code LlamaForCausalLM}: {@code model.layers.3.self_attn.q_proj}, {@code lm_head}. Patterns are
 * RE2 regular expressions (RE2/J), matched in time linear in the name's length, so a pattern with
 * nested repetition such as {@code (([a-z_]|[a-z_.0-9])+)+X} cannot hang as it would under a
 * backtracking engine; the syntax PEFT users write (classes, groups, alternation, anchors) means
 * the same as in Python's {@code re}, and lookaround and backreferences are refused when the
 * pattern is set. The matching rules are PEFT's: a {@link #targetPattern} must match the whole
 * name ({@code re.fullmatch}); a target name matches the whole name or its end after a dot; a
 * rank or alpha pattern key {@code k} matches a name when {@code (.*\.)?(k)$} matches from its
 * start ({@code get_pattern_key}), and the first key in the map's order wins.
 *
 * <p>Equality and {@link #toString()} use effective values: a config whose alpha is derived as
 * 2 · 16 equals one given {@code alpha(32)} at rank 16.
 */
public final class LoraConfig implements java.io.Serializable {
    // Serializable so that a cluster (lora-spark) can ship one config to every worker
    private static final long serialVersionUID = 1L;

    public static final int DEFAULT_RANK = 8;
    public static final double DEFAULT_DROPOUT = 0.0;
    /** {@link Target#ALL_LINEAR}'s modules, as groups. */
    public static final List<Target> DEFAULT_TARGETS =
            List.of(Target.QUERY, Target.KEY, Target.VALUE, Target.PROJECTION, Target.MLP);
    public static final LoraInit DEFAULT_INIT = LoraInit.KAIMING_UNIFORM;
    public static final long DEFAULT_SEED = 42L;

    /** PEFT's rule for finding a layer index when no layers pattern is given: the number after any ".name." segment. */
    private static final Pattern ANY_LAYER_INDEX = Pattern.compile(".*\\.[^.]*\\.(\\d+)\\.");

    private static final LoraConfig DEFAULTS = new LoraConfig(new Draft());

    private final int rank;
    private final Double explicitAlpha;
    private final double dropout;
    private final List<String> targetModules;
    private final String targetPattern;
    private final Map<String, Integer> rankPattern;
    private final Map<String, Double> alphaPattern;
    private final List<Integer> layersToTransform;
    private final List<String> layersPattern;
    private final boolean useRslora;
    private final LoraInit init;
    private final long seed;

    private final Pattern compiledTargetPattern;
    private final List<Pattern> rankKeys;
    private final List<Pattern> alphaKeys;
    private final List<Pattern> layerIndexPatterns;

    private LoraConfig(Draft d) {
        this.rank = d.rank;
        this.explicitAlpha = d.explicitAlpha;
        this.dropout = d.dropout;
        this.targetModules = List.copyOf(d.targetModules);
        this.targetPattern = d.targetPattern;
        this.rankPattern = Collections.unmodifiableMap(new LinkedHashMap<>(d.rankPattern));
        this.alphaPattern = Collections.unmodifiableMap(new LinkedHashMap<>(d.alphaPattern));
        this.layersToTransform = List.copyOf(d.layersToTransform);
        this.layersPattern = List.copyOf(d.layersPattern);
        this.useRslora = d.useRslora;
        this.init = d.init;
        this.seed = d.seed;
        this.compiledTargetPattern = targetPattern == null ? null : Pattern.compile(targetPattern);
        this.rankKeys = compileKeys(rankPattern.keySet());
        this.alphaKeys = compileKeys(alphaPattern.keySet());
        List<Pattern> layerPatterns = new ArrayList<>();
        if (layersPattern.isEmpty()) {
            layerPatterns.add(ANY_LAYER_INDEX);
        } else {
            for (String name : layersPattern) {
                layerPatterns.add(Pattern.compile(".*\\." + name + "\\.(\\d+)\\."));
            }
        }
        this.layerIndexPatterns = List.copyOf(layerPatterns);
    }

    /** A config with every default (see the class documentation). */
    public static LoraConfig defaults() {
        return DEFAULTS;
    }

    /**
     * Static factory: the defaults with this rank, e.g. {@code LoraConfig.rank(16).alpha(32)}. To
     * change the rank of an existing config use {@link #withRank(int)}: calling this method
     * through an instance ignores that instance (javac's {@code -Xlint:static} flags such calls).
     */
    public static LoraConfig rank(int rank) {
        return DEFAULTS.withRank(rank);
    }

    /** This config with another rank r (the inner dimension of B·A). */
    public LoraConfig withRank(int rank) {
        if (rank < 1) {
            throw invalid("rank", ">= 1", rank, "use a positive rank such as 8, 16 or 64");
        }
        Draft d = draft();
        d.rank = rank;
        return new LoraConfig(d);
    }

    /** This config with an explicit alpha; the scaling becomes alpha / r (alpha / √r with rsLoRA). */
    public LoraConfig alpha(double alpha) {
        checkAlpha("alpha", alpha);
        Draft d = draft();
        d.explicitAlpha = alpha;
        return new LoraConfig(d);
    }

    /** This config with another dropout probability on the LoRA branch's input. */
    public LoraConfig dropout(double dropout) {
        if (!(dropout >= 0.0 && dropout < 1.0)) {
            throw invalid("dropout", "in [0, 1)", dropout, "use a probability such as 0.05, or 0 for none");
        }
        Draft d = draft();
        d.dropout = dropout;
        return new LoraConfig(d);
    }

    /** Targets these groups of modules (replacing any earlier targets or target pattern). */
    public LoraConfig targets(Target... targets) {
        Objects.requireNonNull(targets, "targets");
        if (targets.length == 0 || Arrays.asList(targets).contains(null)) {
            throw invalid("targets", "one or more non-null Target values", Arrays.toString(targets),
                    "e.g. targets(Target.ALL) or targets(Target.QUERY, Target.VALUE)");
        }
        List<String> names = new ArrayList<>();
        for (Target t : targets) {
            names.addAll(t.moduleSuffixes());
        }
        return withTargetNames(names);
    }

    /**
     * Targets modules by name, PEFT's list form of {@code target_modules}: a module is targeted
     * when its full name equals a given name or ends with {@code "." + name}. Replaces any earlier
     * targets or target pattern.
     */
    public LoraConfig targetModules(String... names) {
        Objects.requireNonNull(names, "names");
        return targetModules(Arrays.asList(names));
    }

    /** As {@link #targetModules(String...)}. */
    public LoraConfig targetModules(Collection<String> names) {
        Objects.requireNonNull(names, "names");
        List<String> list = new ArrayList<>(names);
        if (list.isEmpty() || list.stream().anyMatch(n -> n == null || n.isBlank())) {
            throw invalid("targetModules", "one or more non-blank module names", quoted(list),
                    "use names such as q_proj or model.layers.0.self_attn.q_proj");
        }
        return withTargetNames(list);
    }

    /**
     * Targets the modules whose full name matches this regular expression as a whole, PEFT's
     * string form of {@code target_modules} ({@code re.fullmatch}), e.g.
     * {@code "model\\.layers\\.[0-3]\\..*\\.(q_proj|v_proj)"}. Replaces any earlier targets.
     * PEFT does not combine a pattern with {@link #layersToTransform}, and neither does this.
     */
    public LoraConfig targetPattern(String regex) {
        if (regex == null || regex.isEmpty()) {
            throw invalid("targetPattern", "a non-empty regular expression", quoted(regex),
                    "e.g. \".*\\\\.(q_proj|v_proj)\"");
        }
        checkRegex("targetPattern", regex, regex);
        if (!layersToTransform.isEmpty()) {
            throw new IllegalArgumentException("targetPattern cannot be combined with layersToTransform "
                    + layersToTransform + " (PEFT applies layers_to_transform only to a list of target names); "
                    + "call allLayers() first, or put the layer numbers into the pattern");
        }
        if (!layersPattern.isEmpty()) {
            throw new IllegalArgumentException("targetPattern cannot be combined with layersPattern "
                    + quoted(layersPattern) + " (PEFT uses layers_pattern only with a list of target names); "
                    + "call clearLayersPattern() first");
        }
        Draft d = draft();
        d.targetModules = List.of();
        d.targetPattern = regex;
        return new LoraConfig(d);
    }

    /**
     * Per-module ranks, PEFT's {@code rank_pattern}: the first key (in the map's iteration order)
     * that matches the module name as {@code re.match(rf"(.*\.)?({key})$", name)} gives the rank;
     * other targeted modules use {@link #rank()}. Keys are regular expressions, so
     * {@code "q_proj"} matches every q_proj and {@code "model.layers.0.self_attn.q_proj"} one
     * module. A module's alpha does not follow its pattern rank: it stays {@link #alpha()} unless
     * {@link #alphaPattern(Map)} says otherwise, as in PEFT.
     */
    public LoraConfig rankPattern(Map<String, Integer> rankPattern) {
        Objects.requireNonNull(rankPattern, "rankPattern");
        LinkedHashMap<String, Integer> copy = new LinkedHashMap<>();
        rankPattern.forEach((key, value) -> {
            checkPatternKey("rankPattern", key);
            if (value == null || value < 1) {
                throw invalid("rankPattern value for '" + key + "'", ">= 1", value, "use a positive rank");
            }
            copy.put(key, value);
        });
        Draft d = draft();
        d.rankPattern = copy;
        return new LoraConfig(d);
    }

    /**
     * Per-module alphas, PEFT's {@code alpha_pattern}, matched like {@link #rankPattern(Map)};
     * other targeted modules use {@link #alpha()}.
     */
    public LoraConfig alphaPattern(Map<String, ? extends Number> alphaPattern) {
        Objects.requireNonNull(alphaPattern, "alphaPattern");
        LinkedHashMap<String, Double> copy = new LinkedHashMap<>();
        alphaPattern.forEach((key, value) -> {
            checkPatternKey("alphaPattern", key);
            if (value == null) {
                throw invalid("alphaPattern value for '" + key + "'", "a finite number > 0", null, "give an alpha");
            }
            checkAlpha("alphaPattern value for '" + key + "'", value.doubleValue());
            copy.put(key, value.doubleValue());
        });
        Draft d = draft();
        d.alphaPattern = copy;
        return new LoraConfig(d);
    }

    /**
     * Restricts the adapters to these decoder layers (PEFT's {@code layers_to_transform});
     * {@link #allLayers()} undoes it. As in PEFT this filters only modules matched by a name suffix:
     * a module without a layer index (such as {@code lm_head} matched by suffix) is left out, and
     * a module named in full in {@link #targetModules} is always kept.
     */
    public LoraConfig layersToTransform(int... layers) {
        Objects.requireNonNull(layers, "layers");
        TreeSet<Integer> sorted = new TreeSet<>();
        for (int layer : layers) {
            if (layer < 0) {
                throw invalid("layersToTransform", ">= 0", layer, "layer indices count from 0");
            }
            sorted.add(layer);
        }
        if (!sorted.isEmpty() && targetPattern != null) {
            throw new IllegalArgumentException("layersToTransform cannot be combined with targetPattern '"
                    + targetPattern + "' (PEFT applies layers_to_transform only to a list of target names); "
                    + "select modules with targets or targetModules, or put the layer numbers into the pattern");
        }
        Draft d = draft();
        d.layersToTransform = new ArrayList<>(sorted);
        return new LoraConfig(d);
    }

    /** Adapts targeted modules in every layer (the default), undoing {@link #layersToTransform(int...)}. */
    public LoraConfig allLayers() {
        Draft d = draft();
        d.layersToTransform = List.of();
        return new LoraConfig(d);
    }

    /**
     * Names of the module lists whose index {@link #layersToTransform} refers to (PEFT's
     * {@code layers_pattern}, e.g. {@code "layers"}); {@link #clearLayersPattern()} returns to the
     * default, the number after any {@code .name.} segment of the module path.
     */
    public LoraConfig layersPattern(String... names) {
        Objects.requireNonNull(names, "names");
        List<String> list = Arrays.asList(names);
        for (String name : list) {
            if (name == null || name.isBlank()) {
                throw invalid("layersPattern", "non-blank names", quoted(list), "e.g. layersPattern(\"layers\")");
            }
            checkRegex("layersPattern", name, ".*\\." + name + "\\.(\\d+)\\.");
        }
        if (!list.isEmpty() && targetPattern != null) {
            throw new IllegalArgumentException("layersPattern cannot be combined with targetPattern '"
                    + targetPattern + "' (PEFT uses layers_pattern only with a list of target names); "
                    + "select modules with targets or targetModules instead");
        }
        Draft d = draft();
        d.layersPattern = new ArrayList<>(list);
        return new LoraConfig(d);
    }

    /** Finds layer indices after any {@code .name.} segment again (the default). */
    public LoraConfig clearLayersPattern() {
        Draft d = draft();
        d.layersPattern = List.of();
        return new LoraConfig(d);
    }

    /** Rank-stabilized LoRA: scaling alpha / √r instead of alpha / r (arXiv:2312.03732). */
    public LoraConfig useRslora(boolean useRslora) {
        Draft d = draft();
        d.useRslora = useRslora;
        return new LoraConfig(d);
    }

    /** How new adapters draw A (B starts at zero). */
    public LoraConfig init(LoraInit init) {
        if (init == null) {
            throw invalid("init", "non-null", null, "use LoraInit.KAIMING_UNIFORM or LoraInit.GAUSSIAN");
        }
        Draft d = draft();
        d.init = init;
        return new LoraConfig(d);
    }

    /** Seed for new adapters' A matrices; see {@link #randomFor(String)}. */
    public LoraConfig seed(long seed) {
        Draft d = draft();
        d.seed = seed;
        return new LoraConfig(d);
    }

    public int rank() {
        return rank;
    }

    /** The explicit alpha, or 2 · {@link #rank()} when none was set. */
    public double alpha() {
        return explicitAlpha != null ? explicitAlpha : 2.0 * rank;
    }

    public double dropout() {
        return dropout;
    }

    /** The target names, sorted; empty when a {@link #targetPattern()} selects the modules. */
    public List<String> targetModules() {
        return targetModules;
    }

    public Optional<String> targetPattern() {
        return Optional.ofNullable(targetPattern);
    }

    /** The rank pattern in matching order. */
    public Map<String, Integer> rankPattern() {
        return rankPattern;
    }

    /** The alpha pattern in matching order. */
    public Map<String, Double> alphaPattern() {
        return alphaPattern;
    }

    /** The selected layer indices, sorted; empty means every layer. */
    public List<Integer> layersToTransform() {
        return layersToTransform;
    }

    public List<String> layersPattern() {
        return layersPattern;
    }

    public boolean useRslora() {
        return useRslora;
    }

    public LoraInit init() {
        return init;
    }

    public long seed() {
        return seed;
    }

    /** The factor on B·A: alpha / rank, or alpha / √rank with {@link #useRslora()}. */
    public double scaling(int rank, double alpha) {
        if (rank < 1) {
            throw invalid("rank", ">= 1", rank, "pass the module's LoRA rank");
        }
        return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
    }

    /** Whether this config puts an adapter on the module with this full name. */
    public boolean isTargeted(String moduleName) {
        Objects.requireNonNull(moduleName, "moduleName");
        if (compiledTargetPattern != null) {
            return compiledTargetPattern.matcher(moduleName).matches();
        }
        if (targetModules.contains(moduleName)) {
            return true;
        }
        if (targetModules.stream().noneMatch(t -> moduleName.endsWith("." + t))) {
            return false;
        }
        if (layersToTransform.isEmpty()) {
            return true;
        }
        OptionalInt layer = layerIndex(moduleName);
        return layer.isPresent() && layersToTransform.contains(layer.getAsInt());
    }

    /** The adapter settings of this module, or empty when it gets no adapter. */
    public Optional<ModuleLora> resolve(String moduleName) {
        if (!isTargeted(moduleName)) {
            return Optional.empty();
        }
        int r = firstMatch(rankKeys, rankPattern.values(), moduleName).orElse(rank);
        double a = firstMatch(alphaKeys, alphaPattern.values(), moduleName).orElse(alpha());
        return Optional.of(new ModuleLora(r, a, scaling(r, a), dropout));
    }

    /** The names, in the given order, of the modules that get an adapter. */
    public List<String> selectModules(Collection<String> moduleNames) {
        List<String> selected = new ArrayList<>();
        for (String name : moduleNames) {
            if (isTargeted(name)) {
                selected.add(name);
            }
        }
        return selected;
    }

    /**
     * Checks this config against a model's module names (pass the linear layers, e.g.
     * {@code model.layers.0.self_attn.q_proj} and {@code lm_head}) and returns, in the given
     * order, the modules that get an adapter. Fails when a target name or the target pattern
     * matches no module, when {@link #layersToTransform} leaves nothing selected, or when a rank or
     * alpha pattern key matches no adapted module: each of these is a typo PEFT would ignore or
     * report only later.
     */
    public List<String> validateAgainst(Collection<String> moduleNames) {
        List<String> names = List.copyOf(moduleNames);
        if (names.isEmpty()) {
            throw new IllegalArgumentException("moduleNames must list the model's modules, was []; "
                    + "pass the names of its linear layers such as model.layers.0.self_attn.q_proj");
        }
        if (targetPattern == null) {
            for (String target : targetModules) {
                if (names.stream().noneMatch(n -> n.equals(target) || n.endsWith("." + target))) {
                    throw new IllegalArgumentException("targets: no module of the model matches '" + target
                            + "' (modules are named like " + examples(names) + ")");
                }
            }
        } else if (names.stream().noneMatch(n -> compiledTargetPattern.matcher(n).matches())) {
            throw new IllegalArgumentException("targetPattern: no module of the model matches '" + targetPattern
                    + "' (modules are named like " + examples(names) + ")");
        }
        List<String> selected = selectModules(names);
        if (selected.isEmpty()) {
            TreeSet<Integer> layers = new TreeSet<>();
            names.forEach(n -> layerIndex(n).ifPresent(layers::add));
            throw new IllegalArgumentException("layersToTransform: " + layersToTransform
                    + " selects none of the targeted modules (the model's layers are "
                    + (layers.isEmpty() ? "not numbered" : "numbered " + layers.first() + " to " + layers.last())
                    + "); choose indices within that range");
        }
        checkPatternKeysUsed("rankPattern", rankPattern.keySet(), rankKeys, selected);
        checkPatternKeysUsed("alphaPattern", alphaPattern.keySet(), alphaKeys, selected);
        return selected;
    }

    /**
     * A random source for the A matrix of this module, derived from {@link #seed()} and the
     * module name so that each module's draws do not depend on the order adapters are created.
     */
    public SplittableRandom randomFor(String moduleName) {
        Objects.requireNonNull(moduleName, "moduleName");
        long hash = 0xcbf29ce484222325L; // FNV-1a 64
        for (byte b : moduleName.getBytes(StandardCharsets.UTF_8)) {
            hash = (hash ^ (b & 0xff)) * 0x100000001b3L;
        }
        return new SplittableRandom(seed ^ hash);
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        if (!(o instanceof LoraConfig)) {
            return false;
        }
        LoraConfig c = (LoraConfig) o;
        return rank == c.rank
                && Double.compare(alpha(), c.alpha()) == 0
                && Double.compare(dropout, c.dropout) == 0
                && targetModules.equals(c.targetModules)
                && Objects.equals(targetPattern, c.targetPattern)
                && List.copyOf(rankPattern.entrySet()).equals(List.copyOf(c.rankPattern.entrySet()))
                && List.copyOf(alphaPattern.entrySet()).equals(List.copyOf(c.alphaPattern.entrySet()))
                && layersToTransform.equals(c.layersToTransform)
                && layersPattern.equals(c.layersPattern)
                && useRslora == c.useRslora
                && init == c.init
                && seed == c.seed;
    }

    @Override
    public int hashCode() {
        return Objects.hash(rank, alpha(), dropout, targetModules, targetPattern, List.copyOf(rankPattern.entrySet()),
                List.copyOf(alphaPattern.entrySet()), layersToTransform, layersPattern, useRslora, init, seed);
    }

    @Override
    public String toString() {
        return "LoraConfig{rank=" + rank
                + ", alpha=" + alpha() + (explicitAlpha == null ? " (2 * rank)" : "")
                + ", scaling=" + scaling(rank, alpha())
                + ", dropout=" + dropout
                + (targetPattern == null ? ", targetModules=" + targetModules : ", targetPattern='" + targetPattern + "'")
                + ", layersToTransform=" + (layersToTransform.isEmpty() ? "all" : layersToTransform.toString())
                + ", layersPattern=" + (layersPattern.isEmpty() ? "any" : layersPattern.toString())
                + ", rankPattern=" + rankPattern
                + ", alphaPattern=" + alphaPattern
                + ", useRslora=" + useRslora
                + ", init=" + init
                + ", seed=" + seed + "}";
    }

    private LoraConfig withTargetNames(List<String> names) {
        Draft d = draft();
        d.targetModules = new ArrayList<>(new TreeSet<>(names));
        d.targetPattern = null;
        return new LoraConfig(d);
    }

    private OptionalInt layerIndex(String moduleName) {
        for (Pattern p : layerIndexPatterns) {
            Matcher m = p.matcher(moduleName);
            if (m.lookingAt()) {
                try {
                    return OptionalInt.of(Integer.parseInt(m.group(1)));
                } catch (NumberFormatException tooLarge) {
                    return OptionalInt.empty();
                }
            }
        }
        return OptionalInt.empty();
    }

    private static <T> Optional<T> firstMatch(List<Pattern> keys, Collection<T> values, String moduleName) {
        int i = 0;
        for (T value : values) {
            if (keys.get(i++).matcher(moduleName).lookingAt()) {
                return Optional.of(value);
            }
        }
        return Optional.empty();
    }

    private static void checkPatternKeysUsed(String parameter, Collection<String> keys, List<Pattern> compiled,
            List<String> selected) {
        int i = 0;
        for (String key : keys) {
            Pattern p = compiled.get(i++);
            if (selected.stream().noneMatch(n -> p.matcher(n).lookingAt())) {
                throw new IllegalArgumentException(parameter + ": key '" + key
                        + "' matches none of the adapted modules (they are named like " + examples(selected)
                        + "); keys match a whole name or its end after a dot, e.g. 'q_proj' or 'layers.0.self_attn.q_proj'");
            }
        }
    }

    private static List<Pattern> compileKeys(Collection<String> keys) {
        List<Pattern> compiled = new ArrayList<>();
        for (String key : keys) {
            compiled.add(Pattern.compile(keyRegex(key)));
        }
        return List.copyOf(compiled);
    }

    /** PEFT's get_pattern_key: {@code re.match(rf"(.*\.)?({key})$", name)}, used with lookingAt. */
    private static String keyRegex(String key) {
        return "(.*\\.)?(" + key + ")$";
    }

    private static void checkPatternKey(String parameter, String key) {
        if (key == null || key.isEmpty()) {
            throw invalid(parameter + " key", "a non-empty regular expression", quoted(key),
                    "use a module name or its ending, e.g. 'q_proj'");
        }
        checkRegex(parameter + " key", key, keyRegex(key));
    }

    private static void checkRegex(String parameter, String shown, String regex) {
        try {
            Pattern.compile(regex);
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException(parameter + " must be a valid RE2 regular expression, was '" + shown
                    + "' (" + e.getDescription() + " in " + regex + "); escape literal characters such as ( [ . with a"
                    + " backslash; lookaround and backreferences are not supported (patterns are matched in linear time)", e);
        }
    }

    private static void checkAlpha(String parameter, double alpha) {
        if (!(alpha > 0.0 && Double.isFinite(alpha))) {
            throw invalid(parameter, "a finite number > 0", alpha, "a common choice is 2 * rank, e.g. 16 for rank 8");
        }
    }

    private static IllegalArgumentException invalid(String parameter, String rule, Object value, String fix) {
        return new IllegalArgumentException(parameter + " must be " + rule + ", was " + value + "; " + fix);
    }

    private static String quoted(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof Collection) {
            List<String> parts = new ArrayList<>();
            for (Object o : (Collection<?>) value) {
                parts.add(o == null ? "null" : "'" + o + "'");
            }
            return parts.toString();
        }
        return "'" + value + "'";
    }

    private static String examples(List<String> names) {
        int shown = Math.min(3, names.size());
        String list = String.join(", ", names.subList(0, shown));
        return names.size() > shown ? list + ", ..." : list;
    }

    private Draft draft() {
        Draft d = new Draft();
        d.rank = rank;
        d.explicitAlpha = explicitAlpha;
        d.dropout = dropout;
        d.targetModules = targetModules;
        d.targetPattern = targetPattern;
        d.rankPattern = rankPattern;
        d.alphaPattern = alphaPattern;
        d.layersToTransform = layersToTransform;
        d.layersPattern = layersPattern;
        d.useRslora = useRslora;
        d.init = init;
        d.seed = seed;
        return d;
    }

    /** The mutable state one fluent call edits before it becomes a new config. */
    private static final class Draft {
        int rank = DEFAULT_RANK;
        Double explicitAlpha;
        double dropout = DEFAULT_DROPOUT;
        List<String> targetModules = defaultTargetNames();
        String targetPattern;
        Map<String, Integer> rankPattern = Map.of();
        Map<String, Double> alphaPattern = Map.of();
        List<Integer> layersToTransform = List.of();
        List<String> layersPattern = List.of();
        boolean useRslora;
        LoraInit init = DEFAULT_INIT;
        long seed = DEFAULT_SEED;

        private static List<String> defaultTargetNames() {
            TreeSet<String> names = new TreeSet<>();
            DEFAULT_TARGETS.forEach(t -> names.addAll(t.moduleSuffixes()));
            return new ArrayList<>(names);
        }
    }
}
