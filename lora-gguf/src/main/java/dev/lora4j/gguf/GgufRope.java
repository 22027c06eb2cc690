package dev.lora4j.gguf;

import dev.lora4j.model.LlamaConfig;
import dev.lora4j.model.LlamaConfig.RopeScaling;
import java.nio.file.Path;

/**
 * RoPE frequency scaling in GGUF, both ways, as llama.cpp writes and reads it:
 *
 * <ul>
 *   <li>{@code linear} (Hugging Face {@code rope_scaling {"rope_type": "linear", "factor": f}}):
 *       the keys {@code <arch>.rope.scaling.type} = "linear" and {@code <arch>.rope.scaling.factor} = f;
 *       llama.cpp multiplies every angle by 1/f.</li>
 *   <li>{@code llama3} (Llama 3.1/3.2): no key, but a tensor {@code rope_freqs.weight} (F32, one
 *       factor per rotated frequency, rotary_dim/2 of them) computed by the converter from
 *       factor, low_freq_factor, high_freq_factor and original_max_position_embeddings: 1 for
 *       wavelengths below original/high_freq_factor, factor above original/low_freq_factor, and
 *       1/((1−s)/factor + s) in between, s = (original/wavelength − low)/(high − low). llama.cpp
 *       divides frequency i by factor i (its llama graph; the other architectures lora4j writes
 *       have no rope_freqs tensor). The llama3 parameters themselves are not stored, so a file read
 *       back carries the factors ({@link RopeScaling#frequencyFactors(double[])}).</li>
 * </ul>
 */
final class GgufRope {
    /** llama.cpp's tensor of per-frequency divisors (LLM_TENSOR_ROPE_FREQS). */
    static final String ROPE_FREQS = "rope_freqs.weight";

    private GgufRope() {
    }

    /**
     * Writes the RoPE scaling of {@code c}: the linear keys, or the {@link #ROPE_FREQS} tensor for
     * llama3 and frequency-factor scaling; refuses what the architecture cannot carry.
     */
    static void write(GgufWriter w, GgufArchitecture arch, LlamaConfig c) {
        RopeScaling s = c.ropeScaling();
        if (s == null) {
            return;
        }
        String a = arch.name();
        if (s.type().equals("linear")) {
            w.putString(a + ".rope.scaling.type", "linear");
            w.putF32(a + ".rope.scaling.factor", s.factor());
            return;
        }
        if (!a.equals("llama")) {
            throw new IllegalArgumentException(c.modelType() + ": rope_scaling type '" + s.type() + "' is written to GGUF as "
                    + "a rope_freqs tensor, which llama.cpp reads only for the llama architecture, not " + a
                    + "; it cannot be exported");
        }
        double[] factors = factors(c);
        float[] values = new float[factors.length];
        for (int i = 0; i < factors.length; i++) {
            values[i] = (float) factors[i];
        }
        w.addF32(ROPE_FREQS, new int[] {values.length}, values);
    }

    /**
     * The rotary_dim/2 frequency divisors of a llama3 or frequency-factor scaling, as
     * {@code convert_hf_to_gguf.py} computes them for llama3 (base frequencies 1/θ^(2i/D) in float32).
     */
    static double[] factors(LlamaConfig c) {
        RopeScaling s = c.ropeScaling();
        if (s.type().equals(RopeScaling.FREQUENCY_FACTORS)) {
            return s.frequencyFactors().stream().mapToDouble(Double::doubleValue).toArray();
        }
        if (!s.type().equals("llama3")) {
            throw new IllegalArgumentException("rope_scaling type '" + s.type() + "' has no GGUF frequency factors");
        }
        int dim = c.rotaryDim();
        double factor = s.factor();
        double low = s.lowFreqFactor();
        double high = s.highFreqFactor();
        double original = s.originalMaxPositionEmbeddings();
        double lowFreqWavelen = original / low;
        double highFreqWavelen = original / high;
        double[] out = new double[dim / 2];
        for (int i = 0; i < out.length; i++) {
            double freq = (float) (1.0 / Math.pow(c.ropeTheta(), (2.0 * i) / dim));
            double wavelen = 2 * Math.PI / freq;
            if (wavelen < highFreqWavelen) {
                out[i] = 1;
            } else if (wavelen > lowFreqWavelen) {
                out[i] = factor;
            } else {
                double smooth = (original / wavelen - low) / (high - low);
                out[i] = 1 / ((1 - smooth) / factor + smooth);
            }
        }
        return out;
    }

    /**
     * The scaling a GGUF file describes for the llama-shaped loader: the linear keys, or its
     * {@link #ROPE_FREQS} tensor as frequency factors (null when it has neither, or when every factor
     * is 1). A rope_freqs tensor together with a scaling type other than linear/none is refused.
     */
    static RopeScaling read(GgufFile f, GgufArchitecture arch, int rotaryDim) {
        String key = arch.name() + ".rope.scaling.type";
        String type = f.string(key, "linear"); // llama.cpp's default; without a factor it scales nothing
        Path path = f.path();
        RopeScaling linear = null;
        if (type.equals("linear")) {
            double factor = f.number(arch.name() + ".rope.scaling.factor", f.number(arch.name() + ".rope.scale_linear", 0));
            linear = factor == 0 || factor == 1 ? null : RopeScaling.linear(factor);
        } else if (!type.equals("none")) {
            throw new IllegalArgumentException(path + ": " + key + " \"" + type + "\" is not supported by lora4j's GGUF "
                    + "loader; it reads \"linear\", \"none\" and Llama-3.1-style scaling (a rope_freqs tensor)");
        }
        if (!f.contains(ROPE_FREQS)) {
            return linear;
        }
        if (!arch.name().equals("llama")) {
            throw new IllegalArgumentException(path + ": has " + ROPE_FREQS + " (Llama-3.1-style RoPE scaling), which "
                    + "llama.cpp reads only for the llama architecture, not " + arch.name());
        }
        if (linear != null) {
            throw new IllegalArgumentException(path + ": has both " + ROPE_FREQS + " and linear rope scaling (factor "
                    + linear.factor() + "); lora4j reads one RoPE scaling at a time");
        }
        GgufTensorInfo info = f.info(ROPE_FREQS);
        if (info.shape().length != 1 || info.shape()[0] != rotaryDim / 2) {
            throw new IllegalArgumentException(path + ": tensor " + ROPE_FREQS + " has shape "
                    + java.util.Arrays.toString(info.shape()) + ", but rope.dimension_count " + rotaryDim + " needs ["
                    + rotaryDim / 2 + "]");
        }
        float[] v = f.floats(ROPE_FREQS);
        double[] factors = new double[v.length];
        boolean all1 = true;
        for (int i = 0; i < v.length; i++) {
            if (!(v[i] > 0) || Float.isInfinite(v[i])) {
                throw new IllegalArgumentException(path + ": " + ROPE_FREQS + "[" + i + "] is " + v[i]
                        + "; RoPE frequency factors must be finite and > 0");
            }
            factors[i] = v[i];
            all1 &= v[i] == 1f;
        }
        return all1 ? null : RopeScaling.frequencyFactors(factors);
    }
}
