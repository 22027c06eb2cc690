package dev.lora4j.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class LoraConfigTest {

    /** The linear layers of a Llama with this many layers, as named_modules() lists them. */
    static List<String> llamaLinearModules(int layers) {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            for (String p : List.of("q_proj", "k_proj", "v_proj", "o_proj")) {
                names.add("model.layers." + i + ".self_attn." + p);
            }
            for (String p : List.of("gate_proj", "up_proj", "down_proj")) {
                names.add("model.layers." + i + ".mlp." + p);
            }
        }
        names.add("lm_head");
        return names;
    }

    private static String message(Executable call) {
        return assertThrows(IllegalArgumentException.class, call).getMessage();
    }

    @Test
    void targetsKnowTheirHuggingFaceNames() {
        assertEquals(List.of("q_proj"), Target.QUERY.moduleSuffixes());
        assertEquals(List.of("o_proj"), Target.PROJECTION.moduleSuffixes());
        assertEquals(List.of("gate_proj", "up_proj", "down_proj"), Target.MLP.moduleSuffixes());
        assertEquals(List.of("lm_head"), Target.HEAD.moduleSuffixes());
        List<String> union = new ArrayList<>();
        for (Target t : Target.values()) {
            if (t != Target.ALL && t != Target.ALL_LINEAR) {
                union.addAll(t.moduleSuffixes());
            }
        }
        // ATTENTION repeats the query, key, value and projection names: ALL lists each once
        List<String> all = Target.ALL.moduleSuffixes();
        assertEquals(List.copyOf(new java.util.LinkedHashSet<>(union)), all);
        assertEquals(List.of("q_proj", "k_proj", "v_proj", "o_proj"), Target.ATTENTION.moduleSuffixes());
        assertEquals("lm_head", all.get(all.size() - 1));
        assertEquals(all.subList(0, all.size() - 1), Target.ALL_LINEAR.moduleSuffixes(),
                "all-linear is ALL without the output layer, as PEFT's all-linear");
    }

    @Test
    void theDefaultTargetsAreThePeftAllLinearPreset() {
        assertEquals(LoraConfig.defaults(), LoraConfig.defaults().targets(Target.ALL_LINEAR));
        assertFalse(LoraConfig.defaults().targetModules().contains("lm_head"));
    }

    @Test
    void defaultsAreSetUpFront() {
        LoraConfig c = LoraConfig.defaults();
        assertEquals(8, c.rank());
        assertEquals(16.0, c.alpha());
        assertEquals(0.0, c.dropout());
        assertEquals(List.of("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"),
                c.targetModules());
        assertEquals(Optional.empty(), c.targetPattern());
        assertEquals(List.of(), c.layersToTransform());
        assertTrue(c.rankPattern().isEmpty() && c.alphaPattern().isEmpty());
        assertFalse(c.useRslora());
        assertEquals(LoraInit.KAIMING_UNIFORM, c.init());
        assertEquals(42L, c.seed());
        assertEquals("LoraConfig{rank=8, alpha=16.0 (2 * rank), scaling=2.0, dropout=0.0, targetModules=[down_proj, "
                + "gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj], layersToTransform=all, layersPattern=any, "
                + "rankPattern={}, alphaPattern={}, useRslora=false, init=KAIMING_UNIFORM, seed=42}", c.toString());
    }

    @Test
    void fluentCallsCopyAndLeaveTheReceiverUnchanged() {
        LoraConfig base = LoraConfig.rank(256);
        LoraConfig tuned = base.alpha(512).dropout(0.05).targets(Target.ALL);
        assertEquals(256, base.rank());
        assertEquals(512.0, base.alpha(), "derived 2 * rank");
        assertEquals(0.0, base.dropout());
        assertEquals(7, base.targetModules().size());
        assertEquals(8, tuned.targetModules().size());
        assertEquals(0.05, tuned.dropout());
        assertEquals(2.0, tuned.scaling(tuned.rank(), tuned.alpha()));
        assertSame(LoraConfig.defaults(), LoraConfig.defaults());
    }

    @Test
    void derivedAlphaFollowsTheRankButAnExplicitOneStays() {
        assertEquals(32.0, LoraConfig.defaults().withRank(16).alpha());
        assertEquals(8.0, LoraConfig.defaults().alpha(8).withRank(16).alpha());
        assertEquals(LoraConfig.rank(16), LoraConfig.rank(16).alpha(32), "equality uses effective values");
        assertTrue(LoraConfig.rank(16).alpha(8).toString().contains("alpha=8.0, scaling=0.5"));
    }

    @Test
    void everyStepValidatesWithParameterRuleValueAndFix() {
        assertEquals("rank must be >= 1, was 0; use a positive rank such as 8, 16 or 64",
                message(() -> LoraConfig.rank(0)));
        assertEquals("dropout must be in [0, 1), was 1.5; use a probability such as 0.05, or 0 for none",
                message(() -> LoraConfig.defaults().dropout(1.5)));
        assertTrue(message(() -> LoraConfig.defaults().dropout(Double.NaN)).startsWith("dropout must be in [0, 1), was NaN"));
        assertEquals("alpha must be a finite number > 0, was -1.0; a common choice is 2 * rank, e.g. 16 for rank 8",
                message(() -> LoraConfig.defaults().alpha(-1)));
        assertTrue(message(() -> LoraConfig.defaults().targets()).startsWith("targets must be one or more non-null Target values, was []"));
        assertTrue(message(() -> LoraConfig.defaults().targetModules("q_proj", " "))
                .startsWith("targetModules must be one or more non-blank module names, was ['q_proj', ' ']"));
        assertTrue(message(() -> LoraConfig.defaults().targetPattern("(q_proj"))
                .startsWith("targetPattern must be a valid RE2 regular expression, was '(q_proj' (missing closing )"));
        assertEquals("rankPattern value for 'q_proj' must be >= 1, was 0; use a positive rank",
                message(() -> LoraConfig.defaults().rankPattern(Map.of("q_proj", 0))));
        assertTrue(message(() -> LoraConfig.defaults().rankPattern(Map.of("q_proj[", 4)))
                .startsWith("rankPattern key must be a valid RE2 regular expression, was 'q_proj['"));
        assertTrue(message(() -> LoraConfig.defaults().alphaPattern(Map.of("v_proj", Double.POSITIVE_INFINITY)))
                .startsWith("alphaPattern value for 'v_proj' must be a finite number > 0, was Infinity"));
        assertEquals("layersToTransform must be >= 0, was -1; layer indices count from 0",
                message(() -> LoraConfig.defaults().layersToTransform(0, -1)));
        assertTrue(message(() -> LoraConfig.defaults().init(null)).startsWith("init must be non-null"));
        assertEquals("targetPattern cannot be combined with layersToTransform [0, 1] (PEFT applies layers_to_transform "
                        + "only to a list of target names); call allLayers() first, or put the layer numbers into the "
                        + "pattern",
                message(() -> LoraConfig.defaults().layersToTransform(1, 0).targetPattern(".*q_proj")));
        assertTrue(message(() -> LoraConfig.defaults().targetPattern(".*q_proj").layersToTransform(0))
                .startsWith("layersToTransform cannot be combined with targetPattern '.*q_proj'"));
        assertEquals(List.of(), LoraConfig.defaults().layersToTransform(1).allLayers().targetPattern(".*")
                .layersToTransform(), "clearing the layers first allows a pattern");
    }

    @Test
    void listTargetsMatchExactNamesAndDottedSuffixesLikePeft() {
        LoraConfig c = LoraConfig.defaults().targets(Target.QUERY, Target.HEAD);
        assertTrue(c.isTargeted("model.layers.3.self_attn.q_proj"));
        assertTrue(c.isTargeted("lm_head"));
        assertTrue(c.isTargeted("q_proj"), "an exact name matches");
        assertFalse(c.isTargeted("model.layers.3.self_attn.xq_proj"), "a suffix must follow a dot");
        assertFalse(c.isTargeted("model.layers.3.self_attn.q_proj.base_layer"));
        assertFalse(c.isTargeted("model.layers.3.self_attn.k_proj"));
        assertEquals(Optional.empty(), c.resolve("model.layers.3.mlp.up_proj"));
    }

    @Test
    void layersToTransformFiltersSuffixMatchesOnlyAsPeftDoes() {
        LoraConfig c = LoraConfig.defaults().targets(Target.ALL).layersToTransform(1, 3);
        List<String> selected = c.selectModules(llamaLinearModules(4));
        assertEquals(15, selected.size());
        assertEquals("lm_head", selected.get(14), "named in full by Target.HEAD, so the layer filter does not apply");
        assertTrue(selected.subList(0, 14).stream()
                .allMatch(n -> n.startsWith("model.layers.1.") || n.startsWith("model.layers.3.")));
        assertFalse(c.isTargeted("model.layers.13.self_attn.q_proj"));
        assertFalse(c.isTargeted("model.vision.lm_head"), "a suffix match without a layer index is dropped");
        assertTrue(c.allLayers().isTargeted("model.vision.lm_head"));
        LoraConfig exact = LoraConfig.defaults().targetModules("lm_head", "q_proj").layersToTransform(0);
        assertTrue(exact.isTargeted("lm_head"), "a full-name match bypasses the layer filter");
        assertTrue(exact.isTargeted("model.layers.0.self_attn.q_proj"));
        assertFalse(exact.isTargeted("model.layers.1.self_attn.q_proj"));
        LoraConfig named = LoraConfig.defaults().targets(Target.QUERY).layersPattern("blocks").layersToTransform(0);
        assertFalse(named.isTargeted("model.layers.0.self_attn.q_proj"), "only the named module list counts");
        assertTrue(named.isTargeted("model.blocks.0.attn.q_proj"));
    }

    @Test
    void targetPatternIsAFullMatchAgainstTheWholeName() {
        LoraConfig c = LoraConfig.defaults().targetPattern("model\\.layers\\.[01]\\..*\\.(q_proj|v_proj)");
        assertEquals(List.of(), c.targetModules());
        assertEquals(List.of("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"), c.selectModules(llamaLinearModules(4)));
        assertFalse(LoraConfig.defaults().targetPattern("q_proj").isTargeted("model.layers.0.self_attn.q_proj"));
        LoraConfig back = c.targets(Target.VALUE);
        assertEquals(Optional.empty(), back.targetPattern(), "a later target list replaces the pattern");
    }

    @Test
    void rankAndAlphaPatternsUseTheFirstKeyMatchingTheEndOfTheName() {
        Map<String, Integer> ranks = new LinkedHashMap<>();
        ranks.put("layers.0.self_attn.q_proj", 32);
        ranks.put("q_proj", 4);
        ranks.put("mlp\\.(up|down)_proj", 12);
        LoraConfig c = LoraConfig.rank(8).alpha(16).targets(Target.ALL).rankPattern(ranks)
                .alphaPattern(Map.of("lm_head", 3));
        assertEquals(new ModuleLora(32, 16.0, 0.5, 0.0), c.resolve("model.layers.0.self_attn.q_proj").orElseThrow());
        assertEquals(new ModuleLora(4, 16.0, 4.0, 0.0), c.resolve("model.layers.10.self_attn.q_proj").orElseThrow(),
                "layers.0 must not match layers.10: the key starts after a dot");
        assertEquals(12, c.resolve("model.layers.2.mlp.up_proj").orElseThrow().rank());
        assertEquals(8, c.resolve("model.layers.2.mlp.gate_proj").orElseThrow().rank());
        assertEquals(new ModuleLora(8, 3.0, 0.375, 0.0), c.resolve("lm_head").orElseThrow());

        Map<String, Integer> reversed = new LinkedHashMap<>();
        reversed.put("q_proj", 4);
        reversed.put("layers.0.self_attn.q_proj", 32);
        assertEquals(4, c.rankPattern(reversed).resolve("model.layers.0.self_attn.q_proj").orElseThrow().rank(),
                "insertion order decides, as in PEFT");
        assertNotEquals(c.rankPattern(reversed), c, "the same keys in another order are another config");
    }

    @Test
    void scalingIsAlphaOverRankOrOverRootRankWithRslora() {
        LoraConfig c = LoraConfig.rank(16).alpha(32);
        assertEquals(2.0, c.scaling(16, 32));
        assertEquals(8.0, c.useRslora(true).scaling(16, 32));
        assertEquals(new ModuleLora(16, 32.0, 8.0, 0.1),
                c.useRslora(true).dropout(0.1).resolve("model.layers.0.mlp.down_proj").orElseThrow());
        assertTrue(message(() -> c.scaling(0, 1)).startsWith("rank must be >= 1, was 0"));
    }

    @Test
    void validateAgainstNamesTheUnmatchedTarget() {
        List<String> modules = llamaLinearModules(2);
        assertEquals("targets: no module of the model matches 'qkv_proj' (modules are named like "
                        + "model.layers.0.self_attn.q_proj, model.layers.0.self_attn.k_proj, "
                        + "model.layers.0.self_attn.v_proj, ...)",
                message(() -> LoraConfig.defaults().targetModules("q_proj", "qkv_proj").validateAgainst(modules)));
        assertTrue(message(() -> LoraConfig.defaults().targetPattern(".*\\.c_attn").validateAgainst(modules))
                .startsWith("targetPattern: no module of the model matches '.*\\.c_attn'"));
        assertEquals("layersToTransform: [5, 7] selects none of the targeted modules (the model's layers are numbered "
                        + "0 to 1); choose indices within that range",
                message(() -> LoraConfig.defaults().layersToTransform(7, 5).validateAgainst(modules)));
        assertTrue(message(() -> LoraConfig.defaults().targets(Target.QUERY).rankPattern(Map.of("v_proj", 4))
                .validateAgainst(modules)).startsWith("rankPattern: key 'v_proj' matches none of the adapted modules"));
        assertTrue(message(() -> LoraConfig.defaults().validateAgainst(List.of())).startsWith("moduleNames must list"));
        assertEquals(15, LoraConfig.defaults().targets(Target.ALL).validateAgainst(modules).size());
    }

    @Test
    void equalityCoversEveryOption() {
        LoraConfig a = LoraConfig.rank(4).alpha(8).dropout(0.1).targets(Target.ALL).layersToTransform(0)
                .rankPattern(Map.of("q_proj", 2)).alphaPattern(Map.of("q_proj", 1)).useRslora(true)
                .init(LoraInit.GAUSSIAN).seed(7);
        LoraConfig b = LoraConfig.defaults().targetModules("v_proj", "lm_head", "q_proj", "k_proj", "o_proj",
                "gate_proj", "up_proj", "down_proj", "q_proj").alphaPattern(Map.of("q_proj", 1.0f)).withRank(4).alpha(8)
                .dropout(0.1).layersToTransform(0, 0).rankPattern(Map.of("q_proj", 2)).useRslora(true)
                .init(LoraInit.GAUSSIAN).seed(7);
        assertEquals(a, b);
        assertEquals(a.hashCode(), b.hashCode());
        assertEquals(a.toString(), b.toString());
        assertNotEquals(a, a.seed(8));
        assertNotEquals(a, a.init(LoraInit.KAIMING_UNIFORM));
        assertNotEquals(a, a.useRslora(false));
        assertNotEquals(a, a.allLayers());
        assertNotEquals(a, a.layersPattern("layers"));
        assertEquals(a, a.layersPattern("layers").clearLayersPattern());
        assertNotEquals(a, a.dropout(0.2));
        assertNotEquals(a, a.targets(Target.QUERY));
    }

    @Test
    void perModuleRandomnessDependsOnSeedAndNameOnly() {
        LoraConfig c = LoraConfig.defaults();
        long first = c.randomFor("model.layers.0.self_attn.q_proj").nextLong();
        assertEquals(first, c.randomFor("model.layers.0.self_attn.q_proj").nextLong());
        assertEquals(first, LoraConfig.rank(64).randomFor("model.layers.0.self_attn.q_proj").nextLong());
        assertNotEquals(first, c.randomFor("model.layers.0.self_attn.k_proj").nextLong());
        assertNotEquals(first, c.seed(43).randomFor("model.layers.0.self_attn.q_proj").nextLong());
    }
}
