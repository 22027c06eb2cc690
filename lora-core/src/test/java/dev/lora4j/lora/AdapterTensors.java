package dev.lora4j.lora;

import dev.lora4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;

/** Test helper: the default adapter's tensors in PEFT order, concatenated, for bit-for-bit comparisons. */
public final class AdapterTensors {
    private AdapterTensors() {
    }

    public static float[] flat(LoraModel lora) {
        List<float[]> parts = new ArrayList<>();
        int n = 0;
        for (Tensor t : lora.peftTensors(LoraModel.DEFAULT_ADAPTER, t -> t).values()) {
            parts.add(t.toFloatArray());
            n += parts.get(parts.size() - 1).length;
        }
        float[] out = new float[n];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
