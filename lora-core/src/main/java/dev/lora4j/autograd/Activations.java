package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Gelu;
import dev.lora4j.tensor.Tensor;
import java.util.Arrays;
import java.util.Locale;

/**
 * The GELU activations of the non-Llama families and the gated GeGLU MLP (forms and derivatives
 * in {@link Gelu}; kernels {@link Backend#gelu}, {@link Backend#geglu} and their backwards).
 * GeGLU (Gemma): h = gelu(gate) ⊙ up; dgate = dh ⊙ up ⊙ gelu'(gate), dup = dh ⊙ gelu(gate).
 * Forward saves its inputs.
 */
public final class Activations {
    private Activations() {
    }

    /** gelu(x), element-wise. */
    public static Tensor gelu(Tensor a, Gelu kind) {
        Backend be = Autograd.backendFor("gelu", a);
        Tensor x = a.contiguous().detach();
        Tensor out = be.empty(a.shape());
        be.gelu(out, x, kind);
        return Autograd.record(out, "gelu_" + kind.name().toLowerCase(Locale.ROOT), new Tensor[] {a},
                dOut -> be.geluBackward(a.gradBuffer(), dOut, x, kind));
    }

    /** gelu(gate) ⊙ up (same shapes): Gemma's gated MLP. */
    public static Tensor geglu(Tensor gate, Tensor up, Gelu kind) {
        if (!Arrays.equals(gate.shape(), up.shape())) {
            throw new IllegalArgumentException("geglu: shapes differ, gate " + Arrays.toString(gate.shape()) + " vs up "
                    + Arrays.toString(up.shape()));
        }
        Backend be = Autograd.backendFor("geglu", gate, up);
        Tensor g = gate.contiguous().detach();
        Tensor u = up.contiguous().detach();
        Tensor h = be.empty(gate.shape());
        be.geglu(h, g, u, kind);
        return Autograd.record(h, "geglu", new Tensor[] {gate, up}, dOut -> be.gegluBackward(
                gate.requiresGrad() ? gate.gradBuffer() : null, up.requiresGrad() ? up.gradBuffer() : null, dOut, g, u, kind));
    }
}
