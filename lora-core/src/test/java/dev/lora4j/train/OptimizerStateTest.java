package dev.lora4j.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.io.SafetensorsFile;
import dev.lora4j.tensor.DType;
import dev.lora4j.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Optimizer state saved by parameter name and restored exactly, with checks that name what differs. */
class OptimizerStateTest {
    @TempDir
    Path tmp;

    private static Tensor param(float... v) {
        return Tensor.of(v.clone(), v.length).requiresGrad(true);
    }

    private static void grad(Tensor p, float scale) {
        float[] g = new float[(int) p.numel()];
        for (int i = 0; i < g.length; i++) {
            g[i] = scale * (i + 1) - 0.3f * i * i;
        }
        p.setGrad(Tensor.of(g, p.shape()));
    }

    /** Runs 2 steps, saves, runs 2 more; a copy restored from the file must take the same 2 steps. */
    private void roundTrip(String what, java.util.function.Function<List<Tensor>, Optimizer> make) throws IOException {
        Tensor a = param(0.5f, -1f, 2f);
        Tensor late = param(1f, 1f);
        Optimizer opt = make.apply(List.of(a, late));
        grad(a, 1f);
        opt.step();
        grad(a, -0.5f);
        opt.step(); // `late` never had a gradient: AdamW step 0, SGD no buffer
        Path file = tmp.resolve(what + ".safetensors");
        opt.saveState(file, List.of("a", "late"));
        Tensor a2 = param(a.toFloatArray());
        Tensor late2 = param(late.toFloatArray());
        Optimizer copy = make.apply(List.of(late2, a2)); // another order: matched by name
        copy.loadState(file, List.of("late", "a"));
        assertEquals(2, copy.stepCount());
        for (float s : new float[] {0.25f, 2f}) {
            grad(a, s);
            grad(late, -s);
            grad(a2, s);
            grad(late2, -s);
            opt.step();
            copy.step();
            assertArrayEquals(a.toFloatArray(), a2.toFloatArray(), what);
            assertArrayEquals(late.toFloatArray(), late2.toFloatArray(), what);
        }
    }

    @Test
    void adamWAndSgdContinueExactlyAfterARoundTrip() throws IOException {
        roundTrip("adamw", ps -> new AdamW(ps, 0.01, 0.9, 0.99, 1e-8, 0.1));
        roundTrip("sgd", ps -> new Sgd(ps, 0.1, 0.9, 0, 0.01, true));
    }

    @Test
    void fileUsesTorchBufferNames() throws IOException {
        Tensor a = param(1f, 2f);
        AdamW adam = new AdamW(List.of(a), 0.01, 0.0);
        grad(a, 1f);
        adam.step();
        Path file = tmp.resolve("adam.safetensors");
        adam.saveState(file, List.of("w"));
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(Set.of("w.exp_avg", "w.exp_avg_sq", "w.step"), f.names());
            assertEquals(DType.I64, f.info("w.step").dtype());
            assertArrayEquals(new long[] {1}, f.longs("w.step"));
            assertArrayEquals(adam.moments(0)[0], f.f32("w.exp_avg").toFloatArray());
            assertEquals("AdamW", f.metadata().get("optimizer"));
            assertEquals("0.999", f.metadata().get("beta2"));
        }
        Sgd sgd = new Sgd(List.of(a), 0.1, 0.5, 0);
        sgd.saveState(tmp.resolve("fresh.safetensors"), List.of("w"));
        grad(a, 1f);
        sgd.step();
        sgd.saveState(tmp.resolve("sgd.safetensors"), List.of("w"));
        try (SafetensorsFile fresh = SafetensorsFile.open(tmp.resolve("fresh.safetensors"));
                SafetensorsFile f = SafetensorsFile.open(tmp.resolve("sgd.safetensors"))) {
            assertEquals(Set.of(), fresh.names(), "no buffer before the first step, as in torch");
            assertEquals(Set.of("w.momentum_buffer"), f.names());
        }
    }

    @Test
    void restoreRejectsMismatchesNamingThem() throws IOException {
        Tensor a = param(1f, 2f, 3f);
        AdamW adam = new AdamW(List.of(a), 0.01, 0.9, 0.999, 1e-8, 0.01);
        grad(a, 1f);
        adam.step();
        Path file = tmp.resolve("adam.safetensors");
        adam.saveState(file, List.of("w"));

        assertFails(() -> new AdamW(List.of(param(1f, 2f, 3f)), 0.01, 0.8, 0.999, 1e-8, 0.01), file, List.of("w"),
                "beta1 (file 0.9, this optimizer 0.8)");
        assertFails(() -> new AdamW(List.of(param(1f, 2f, 3f)), 0.01, 0.9, 0.999, 1e-8, 0.0), file, List.of("w"),
                "weight_decay");
        assertFails(() -> new Sgd(List.of(param(1f, 2f, 3f)), 0.1, 0.9, 0.01), file, List.of("w"),
                "optimizer AdamW", "SGD");
        assertFails(() -> new AdamW(List.of(param(1f, 2f)), 0.01, 0.01), file, List.of("w"), "w.exp_avg", "[3]", "[2]");
        assertFails(() -> new AdamW(List.of(param(1f, 2f, 3f)), 0.01, 0.01), file, List.of("v"), "'v.exp_avg' is missing");
        assertFails(() -> new AdamW(List.of(param(1f, 2f, 3f), param(1f)), 0.01, 0.01), file, List.of("w", "u"),
                "'u.exp_avg' is missing");
        Tensor b = param(1f, 2f, 3f);
        AdamW two = new AdamW(List.of(a, b), 0.01, 0.01);
        Path twoFile = tmp.resolve("two.safetensors");
        two.saveState(twoFile, List.of("w", "x"));
        assertFails(() -> new AdamW(List.of(param(1f, 2f, 3f)), 0.01, 0.01), twoFile, List.of("w"),
                "3 entries belong to no parameter", "'x.");
        IllegalArgumentException names = assertThrows(IllegalArgumentException.class,
                () -> two.saveState(tmp.resolve("bad.safetensors"), List.of("w", "w")));
        assertTrue(names.getMessage().contains("unique"), names.getMessage());

        // a failed restore changes nothing
        AdamW untouched = new AdamW(List.of(param(1f, 2f, 3f)), 0.01, 0.01);
        assertThrows(IllegalArgumentException.class, () -> untouched.loadState(twoFile, List.of("w")));
        assertEquals(0, untouched.stepCount());
        assertArrayEquals(new float[3], untouched.moments(0)[0]);
    }

    private static void assertFails(Supplier<Optimizer> make, Path file, List<String> names, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> make.get().loadState(file, names));
        for (String f : fragments) {
            assertTrue(e.getMessage().contains(f), "'" + e.getMessage() + "' should mention " + f);
        }
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    }
}
