package dev.lora4j.backend;

/**
 * The two GELU forms of the non-Llama families (Hendrycks and Gimpel 2016), chosen per model by
 * its {@code hidden_act}:
 * <ul>
 *   <li>{@link #TANH} (transformers' {@code gelu_new}, {@code gelu_pytorch_tanh}; phi-1.5, Gemma):
 *       gelu(x) = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), computed as x·σ(2u) (the same
 *       value, since ½(1 + tanh u) = σ(2u)); gelu'(x) = σ(2u) + x·σ(2u)(1 − σ(2u))·2u'(x).</li>
 *   <li>{@link #ERF} ({@code gelu}; Falcon): gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2));
 *       gelu'(x) = Φ(x) + x·φ(x), φ the standard normal density.</li>
 * </ul>
 */
public enum Gelu {
    TANH, ERF
}
