package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.lora4j.tensor.Tensor;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * The operations of the backend SPI: each one on the vector backend against the scalar reference
 * at awkward sizes (1, 7, 31, 207, 702, 4096), and the backward methods without an autograd test
 * elsewhere (LayerNorm, GeGLU) against finite differences of their forward.
 */
class BackendOpsTest {
    private static final int[] SIZES = {1, 7, 31, 207, 702, 4096};

    private static Backend scalar() {
        return Backends.scalar();
    }

    /** The vector backend, or the scalar one again when the module is absent (then the comparison is trivial). */
    private static Backend vector() {
        return Backends.vector().orElse(Backends.scalar());
    }

    private static Tensor random(SplittableRandom rng, int... shape) {
        return Tensor.normal(rng, 0f, 1f, shape);
    }

    private static Tensor copy(Tensor t) {
        return Tensor.of(t.toFloatArray(), t.shape());
    }

    /** Runs {@code op} on both backends over fresh copies of the same tensors and compares every tensor after. */
    private static void compare(String what, double tol, Tensor[] tensors, OpOnBackend op) {
        Tensor[] a = new Tensor[tensors.length];
        Tensor[] b = new Tensor[tensors.length];
        for (int i = 0; i < tensors.length; i++) {
            a[i] = copy(tensors[i]);
            b[i] = copy(tensors[i]);
        }
        op.run(scalar(), a);
        op.run(vector(), b);
        for (int i = 0; i < tensors.length; i++) {
            float[] want = a[i].toFloatArray();
            float[] got = b[i].toFloatArray();
            for (int j = 0; j < want.length; j++) {
                double err = Math.abs(want[j] - got[j]);
                if (!(err <= tol * Math.max(1, Math.abs(want[j]))) && !(Float.isNaN(want[j]) && Float.isNaN(got[j]))) {
                    fail(what + ": tensor " + i + " element " + j + " of " + want.length + ": scalar " + want[j] + " vs "
                            + vector().name() + " " + got[j]);
                }
            }
        }
    }

    @FunctionalInterface
    private interface OpOnBackend {
        void run(Backend be, Tensor[] t);
    }

    @Test
    void elementwiseOpsMatchTheScalarReference() {
        SplittableRandom rng = new SplittableRandom(1);
        for (int n : SIZES) {
            Tensor x = random(rng, n);
            Tensor y = random(rng, n);
            Tensor z = random(rng, n);
            Tensor out = random(rng, n);
            compare("add n=" + n, 0, new Tensor[] {out, x, y}, (be, t) -> be.add(t[0], t[1], t[2]));
            compare("addScaled n=" + n, 1e-6, new Tensor[] {out, x}, (be, t) -> be.addScaled(t[0], t[1], -0.75f));
            compare("mul n=" + n, 0, new Tensor[] {out, x, y}, (be, t) -> be.mul(t[0], t[1], t[2]));
            compare("addProduct n=" + n, 1e-6, new Tensor[] {out, x, y}, (be, t) -> be.addProduct(t[0], t[1], t[2]));
            compare("scale n=" + n, 0, new Tensor[] {out, x}, (be, t) -> be.scale(t[0], t[1], 1.5f));
            compare("silu n=" + n, 1e-6, new Tensor[] {out, x}, (be, t) -> be.silu(t[0], t[1]));
            compare("siluBackward n=" + n, 1e-6, new Tensor[] {out, y, x}, (be, t) -> be.siluBackward(t[0], t[1], t[2]));
            // SwiGLU's sigmoid is exp-based on both backends (Exp / VectorExp): equal bits
            compare("swiglu n=" + n, 0, new Tensor[] {out, x, y}, (be, t) -> be.swiglu(t[0], t[1], t[2]));
            compare("swigluBackward n=" + n, 0, new Tensor[] {out.detach(), copy(out), z, x, y},
                    (be, t) -> be.swigluBackward(t[0], t[1], t[2], t[3], t[4]));
            for (Gelu kind : Gelu.values()) {
                // the tanh form is exp-based on both backends (Exp / VectorExp): equal bits
                double tol = kind == Gelu.TANH ? 0 : 1e-6;
                compare("gelu " + kind + " n=" + n, tol, new Tensor[] {out, x}, (be, t) -> be.gelu(t[0], t[1], kind));
                compare("geluBackward " + kind + " n=" + n, tol, new Tensor[] {copy(out), y, x},
                        (be, t) -> be.geluBackward(t[0], t[1], t[2], kind));
                compare("geglu " + kind + " n=" + n, tol, new Tensor[] {out, x, y}, (be, t) -> be.geglu(t[0], t[1], t[2], kind));
                compare("gegluBackward " + kind + " n=" + n, tol, new Tensor[] {copy(out), copy(out), z, x, y},
                        (be, t) -> be.gegluBackward(t[0], t[1], t[2], t[3], t[4], kind));
            }
            Tensor wide = Tensor.normal(rng, 0f, 40f, n);
            compare("softCap n=" + n, 1e-6, new Tensor[] {out, wide}, (be, t) -> be.softCap(t[0], t[1], 30f));
            compare("softCapBackward n=" + n, 1e-6, new Tensor[] {copy(out), y, z},
                    (be, t) -> be.softCapBackward(t[0], t[1], t[2], 1.5f));
            compare("dropout n=" + n, 0, new Tensor[] {out, x}, (be, t) -> be.dropout(t[0], t[1], 0.3f, 77L + n));
            assertEquals(scalar().sumOfSquares(x), vector().sumOfSquares(x), 1e-9 * n, "sumOfSquares n=" + n);
            assertEquals(scalar().sum(x), vector().sum(x), 1e-9 * n, "sum n=" + n);
        }
    }

    @Test
    void rowOpsMatchTheScalarReference() {
        SplittableRandom rng = new SplittableRandom(2);
        for (int c : SIZES) {
            int rows = c >= 702 ? 3 : 5;
            Tensor x = random(rng, rows, c);
            Tensor dy = random(rng, rows, c);
            Tensor w = random(rng, c);
            Tensor bias = random(rng, c);
            Tensor y = Tensor.zeros(rows, c);
            Tensor stat = Tensor.zeros(rows);
            Tensor stat2 = Tensor.zeros(rows);
            compare("rmsNorm C=" + c, 1e-5, new Tensor[] {y, stat, x, w}, (be, t) -> be.rmsNorm(t[0], t[1], t[2], t[3], 1e-5f));
            Tensor rstd = Tensor.zeros(rows);
            scalar().rmsNorm(Tensor.zeros(rows, c), rstd, x, w, 1e-5f);
            compare("rmsNormBackward C=" + c, 1e-5, new Tensor[] {random(rng, rows, c), random(rng, c), dy, x, w, rstd},
                    (be, t) -> be.rmsNormBackward(t[0], t[1], t[2], t[3], t[4], t[5]));
            compare("rmsNorm (1 + w) C=" + c, 1e-5, new Tensor[] {y, stat, x, w},
                    (be, t) -> be.rmsNorm(t[0], t[1], t[2], t[3], 1f, 1e-5f));
            compare("rmsNormBackward (1 + w) C=" + c, 1e-5, new Tensor[] {random(rng, rows, c), random(rng, c), dy, x, w, rstd},
                    (be, t) -> be.rmsNormBackward(t[0], t[1], t[2], t[3], t[4], 1f, t[5]));
            compare("layerNormBackward C=" + c, 1e-5,
                    new Tensor[] {random(rng, rows, c), random(rng, c), random(rng, c), dy, x, w, stat, stat2},
                    (be, t) -> {
                        be.layerNorm(Tensor.zeros(rows, c), t[6], t[7], t[4], t[5], bias, 1e-5f);
                        be.layerNormBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]);
                    });
            compare("layerNorm C=" + c, 1e-5, new Tensor[] {y, stat, stat2, x, w, bias},
                    (be, t) -> be.layerNorm(t[0], t[1], t[2], t[3], t[4], t[5], 1e-5f));
            compare("addRowVector C=" + c, 0, new Tensor[] {y, x, bias}, (be, t) -> be.addRowVector(t[0], t[1], t[2]));
            compare("sumRows C=" + c, 1e-6, new Tensor[] {random(rng, c), x}, (be, t) -> be.sumRows(t[0], t[1]));
            compare("softmax V=" + c, 1e-6, new Tensor[] {y, x}, (be, t) -> be.softmax(t[0], t[1]));
        }
    }

    @Test
    void crossEntropyMatchesTheScalarReferenceAcrossVocabularyChunks() {
        SplittableRandom rng = new SplittableRandom(3);
        for (int v : new int[] {1, 7, 31, 207, 702, 4096, 5003}) {
            int rows = 4;
            Tensor z = Tensor.normal(rng, 0f, 3f, rows, v);
            int[] labels = {v - 1, -100, 0, v / 2};
            Tensor lseA = Tensor.zeros(rows);
            Tensor lseB = Tensor.zeros(rows);
            double a = scalar().crossEntropy(lseA, z, labels, -100);
            double b = vector().crossEntropy(lseB, z, labels, -100);
            // every exp is Exp's or its bit-identical vector twin, summed in the same order: equal bits
            assertEquals(a, b, 0, "crossEntropy V=" + v);
            assertArrayEquals(lseA.toFloatArray(), lseB.toFloatArray(), 0f, "crossEntropy lse V=" + v);
            // the same loss straight from the definition, in double
            float[] zs = z.toFloatArray();
            double want = 0;
            for (int r = 0; r < rows; r++) {
                if (labels[r] == -100) {
                    continue;
                }
                double sum = 0;
                for (int i = 0; i < v; i++) {
                    sum += Math.exp(zs[r * v + i]);
                }
                want += Math.log(sum) - zs[r * v + labels[r]];
            }
            assertEquals(want, a, 1e-5 * Math.max(1, Math.abs(want)), "crossEntropy against its definition, V=" + v);
            compare("crossEntropyBackward V=" + v, 0, new Tensor[] {random(rng, rows, v), z, lseA},
                    (be, t) -> be.crossEntropyBackward(t[0], t[1], t[2], labels, -100, 0.25f));
        }
    }

    @Test
    void ropeMatchesTheScalarReferenceAndInvertsItself() {
        SplittableRandom rng = new SplittableRandom(4);
        for (int pairs : new int[] {1, 7, 31, 64}) {
            int d = 2 * pairs + 4;
            int rotary = 2 * pairs;
            Tensor x = random(rng, 2, 5, 3, d);
            Tensor cos = random(rng, 12, pairs);
            Tensor sin = random(rng, 12, pairs);
            compare("rope D=" + d, 1e-6, new Tensor[] {Tensor.zeros(2, 5, 3, d), x, cos, sin},
                    (be, t) -> be.rope(t[0], t[1], t[2], t[3], rotary, 4, false));
            // with a true rotation table, the inverse undoes the rotation
            float[] c = new float[12 * pairs];
            float[] s = new float[12 * pairs];
            for (int i = 0; i < c.length; i++) {
                c[i] = (float) Math.cos(0.3 * i);
                s[i] = (float) Math.sin(0.3 * i);
            }
            Tensor rotated = Tensor.zeros(2, 5, 3, d);
            Tensor back = Tensor.zeros(2, 5, 3, d);
            vector().rope(rotated, x, Tensor.of(c, 12, pairs), Tensor.of(s, 12, pairs), rotary, 4, false);
            vector().rope(back, rotated, Tensor.of(c, 12, pairs), Tensor.of(s, 12, pairs), rotary, 4, true);
            assertArrayEquals(x.toFloatArray(), back.toFloatArray(), 1e-5f, "rope then inverse rope, D=" + d);
        }
    }

    @Test
    void optimizerUpdatesMatchTheScalarReference() {
        SplittableRandom rng = new SplittableRandom(5);
        AdamWStep step = new AdamWStep(1 - 3e-4f * 0.01f, 0.9f, 0.999f, (float) (1 - 0.9), (float) (1 - 0.999),
                (float) (3e-4 / (1 - Math.pow(0.9, 3))), Math.sqrt(1 - Math.pow(0.999, 3)), 1e-8);
        for (int n : SIZES) {
            Tensor v = Tensor.uniform(rng, 0f, 0.01f, n);
            compare("adamW n=" + n, 1e-6, new Tensor[] {random(rng, n), random(rng, n), random(rng, n), v},
                    (be, t) -> be.adamW(t[0], t[1], t[2], t[3], step));
            compare("sgd n=" + n, 1e-6, new Tensor[] {random(rng, n), random(rng, n), random(rng, n)},
                    (be, t) -> be.sgd(t[0], t[1], t[2], 0.1f, 0.9f, 1f, 0.01f, true, false));
        }
    }

    @Test
    void loraLinearMatchesItsUnfusedDefinition() {
        SplittableRandom rng = new SplittableRandom(6);
        int rows = 7, in = 31, out = 13, r = 4;
        Tensor x = random(rng, rows, in);
        Tensor w = random(rng, out, in);
        Tensor bias = random(rng, out);
        Tensor a = random(rng, r, in);
        Tensor b = random(rng, out, r);
        for (Backend be : new Backend[] {scalar(), vector()}) {
            Tensor y = Tensor.zeros(rows, out);
            Tensor xa = Tensor.zeros(rows, r);
            be.loraLinear(y, xa, x, w, bias, x, a, b, 2f);
            float[] xs = x.toFloatArray(), ws = w.toFloatArray(), as = a.toFloatArray(), bs = b.toFloatArray();
            for (int i = 0; i < rows; i++) {
                for (int o = 0; o < out; o++) {
                    double want = bias.get(o);
                    for (int k = 0; k < in; k++) {
                        want += (double) xs[i * in + k] * ws[o * in + k];
                    }
                    for (int q = 0; q < r; q++) {
                        double xaq = 0;
                        for (int k = 0; k < in; k++) {
                            xaq += (double) xs[i * in + k] * as[q * in + k];
                        }
                        want += 2 * xaq * bs[o * r + q];
                    }
                    assertEquals(want, y.get(i, o), 1e-4 * Math.max(1, Math.abs(want)), be.name() + " y[" + i + "," + o + "]");
                }
            }
        }
    }

    /** Numeric derivative of Σ proj ⊙ f(x) against the backward's dX, in the manner of GradCheck. */
    private static void finiteDifference(String what, Tensor x, Function<Tensor, Tensor> forward, Tensor proj,
                                         Consumer<Tensor> backwardInto) {
        Tensor dx = Tensor.zeros(x.shape());
        backwardInto.accept(dx);
        float[] data = x.data();
        float[] p = proj.toFloatArray();
        for (int i = 0; i < data.length; i++) {
            float saved = data[i];
            data[i] = saved + 1e-2f;
            double up = dotWith(forward.apply(x), p);
            data[i] = saved - 1e-2f;
            double down = dotWith(forward.apply(x), p);
            data[i] = saved;
            double numeric = (up - down) / 2e-2;
            double analytic = dx.toFloatArray()[i];
            assertEquals(numeric, analytic, 2e-2 * Math.max(1, Math.abs(numeric)), what + " element " + i);
        }
    }

    private static double dotWith(Tensor t, float[] p) {
        float[] v = t.toFloatArray();
        double s = 0;
        for (int i = 0; i < v.length; i++) {
            s += (double) v[i] * p[i];
        }
        return s;
    }

    @Test
    void layerNormAndGegluBackwardAgreeWithFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(7);
        for (Backend be : new Backend[] {scalar(), vector()}) {
            int rows = 3, c = 7;
            Tensor x = random(rng, rows, c);
            Tensor w = random(rng, c);
            Tensor b = random(rng, c);
            Tensor proj = random(rng, rows, c);
            Function<Tensor, Tensor> ln = in -> {
                Tensor y = Tensor.zeros(rows, c);
                be.layerNorm(y, Tensor.zeros(rows), Tensor.zeros(rows), in, w, b, 1e-5f);
                return y;
            };
            Tensor mean = Tensor.zeros(rows);
            Tensor rstd = Tensor.zeros(rows);
            be.layerNorm(Tensor.zeros(rows, c), mean, rstd, x, w, b, 1e-5f);
            finiteDifference(be.name() + " layerNorm dX", x, ln, proj,
                    dx -> be.layerNormBackward(dx, null, null, proj, x, w, mean, rstd));
            Tensor dw = Tensor.zeros(c);
            Tensor db = Tensor.zeros(c);
            be.layerNormBackward(null, dw, db, proj, x, w, mean, rstd);
            finiteDifference(be.name() + " layerNorm dW", w, in -> {
                Tensor y = Tensor.zeros(rows, c);
                be.layerNorm(y, Tensor.zeros(rows), Tensor.zeros(rows), x, in, b, 1e-5f);
                return y;
            }, proj, into -> be.addScaled(into, dw, 1f));
            finiteDifference(be.name() + " layerNorm dB", b, in -> {
                Tensor y = Tensor.zeros(rows, c);
                be.layerNorm(y, Tensor.zeros(rows), Tensor.zeros(rows), x, w, in, 1e-5f);
                return y;
            }, proj, into -> be.addScaled(into, db, 1f));

            Tensor gate = random(rng, 2, 9);
            Tensor up = random(rng, 2, 9);
            Tensor dh = random(rng, 2, 9);
            finiteDifference(be.name() + " geglu dGate", gate, in -> {
                Tensor h = Tensor.zeros(2, 9);
                be.geglu(h, in, up, Gelu.TANH);
                return h;
            }, dh, dg -> be.gegluBackward(dg, null, dh, gate, up, Gelu.TANH));
            finiteDifference(be.name() + " geglu dUp", up, in -> {
                Tensor h = Tensor.zeros(2, 9);
                be.geglu(h, gate, in, Gelu.TANH);
                return h;
            }, dh, du -> be.gegluBackward(null, du, dh, gate, up, Gelu.TANH));
        }
    }

    @Test
    void geluIsPyTorchsTanhApproximation() {
        // torch.nn.functional.gelu(x, approximate="tanh") = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), evaluated in double
        float[] x = {-3f, -0.5f, 0.1f, 1f, 2.5f};
        float[] want = {-0.0036374f, -0.1542860f, 0.0539828f, 0.8411920f, 2.4849157f};
        Tensor h = Tensor.zeros(5);
        for (Backend be : new Backend[] {scalar(), vector()}) {
            be.geglu(h, Tensor.of(x, 5), Tensor.full(1f, 5), Gelu.TANH);
            assertArrayEquals(want, h.toFloatArray(), 2e-6f, be.name() + " geglu");
            be.gelu(h, Tensor.of(x, 5), Gelu.TANH);
            assertArrayEquals(want, h.toFloatArray(), 2e-6f, be.name() + " gelu");
        }
    }

    @Test
    void dropoutKeepsAboutOneMinusPAndIsAFunctionOfSeedAndIndex() {
        int n = 100_000;
        Tensor ones = Tensor.full(1f, n);
        Tensor out = Tensor.zeros(n);
        vector().dropout(out, ones, 0.25f, 42L);
        float[] o = out.toFloatArray();
        int kept = 0;
        for (float v : o) {
            if (v != 0f) {
                assertEquals(1f / 0.75f, v, 0f);
                kept++;
            }
        }
        assertEquals(0.75, kept / (double) n, 0.01);
        Tensor again = Tensor.zeros(n);
        scalar().dropout(again, ones, 0.25f, 42L);
        assertArrayEquals(o, again.toFloatArray(), 0f);
        Tensor other = Tensor.zeros(n);
        scalar().dropout(other, ones, 0.25f, 43L);
        assertTrue(!java.util.Arrays.equals(o, other.toFloatArray()), "another seed draws another mask");
    }

    @Test
    void anArenaHandsBackTheSameBuffersNextStep() {
        Backend be = vector();
        Tensor first;
        Tensor second;
        try (Arena arena = be.openArena()) {
            first = be.zeros(300, 257);
            second = be.empty(5000);
            assertTrue(arena.bytesHandedOut() >= 4L * (300 * 257 + 5000));
        }
        try (Arena ignored = be.openArena()) {
            Tensor again = be.zeros(300, 257);
            Tensor againSecond = be.empty(4999); // the same size bucket
            assertSame(((dev.lora4j.tensor.FloatStorage) first.storage()).array(),
                    ((dev.lora4j.tensor.FloatStorage) again.storage()).array(), "a buffer of the same size is reused");
            assertSame(((dev.lora4j.tensor.FloatStorage) second.storage()).array(),
                    ((dev.lora4j.tensor.FloatStorage) againSecond.storage()).array(), "a buffer of the same bucket is reused");
            for (float v : again.toFloatArray()) {
                assertEquals(0f, v);
            }
            assertEquals(4999, againSecond.numel());
        }
        // outside an arena nothing is pooled
        Tensor plain = be.zeros(300, 257);
        assertNotSame(((dev.lora4j.tensor.FloatStorage) first.storage()).array(),
                ((dev.lora4j.tensor.FloatStorage) plain.storage()).array());
    }

    @Test
    void aReleasedBufferIsHandedOutAgainInTheSameArenaAndOnlyOnce() {
        Backend be = vector();
        try (Arena ignored = be.openArena()) {
            Tensor a = be.empty(12_345);
            float[] array = ((dev.lora4j.tensor.FloatStorage) a.storage()).array();
            be.release(a);
            be.release(a); // a second release must not put it in the pool twice
            Tensor b = be.empty(12_345);
            Tensor c = be.empty(12_345);
            assertSame(array, ((dev.lora4j.tensor.FloatStorage) b.storage()).array());
            assertNotSame(array, ((dev.lora4j.tensor.FloatStorage) c.storage()).array());
        }
    }

    @Test
    void arenasCloseInnermostFirst() {
        Backend be = scalar();
        Arena outer = be.openArena();
        Arena inner = be.openArena();
        IllegalStateException e = assertThrows(IllegalStateException.class, outer::close);
        assertTrue(e.getMessage().contains("innermost first"), e.getMessage());
        inner.close();
        outer.close();
    }

    @Test
    void sizeBucketsWasteAtMostAQuarter() {
        for (int n : new int[] {1, 4096, 4097, 5000, 65536, 65537, 100_000, 1 << 24}) {
            int b = HeapPool.bucket(n);
            assertTrue(b >= n && b <= n + n / 4 + 1, n + " -> " + b);
        }
    }
}
