package dev.lora4j.autograd;

import static org.junit.jupiter.api.Assertions.fail;

import dev.lora4j.tensor.Tensor;
import java.util.List;
import java.util.function.Function;

/**
 * Central finite differences against the backward rules. The loss is a random projection of the
 * op's output (so every output element matters), evaluated as float ops but summed in double;
 * step and tolerance are chosen for float32 forward passes.
 */
final class GradCheck {
    private GradCheck() {
    }

    static void check(String what, List<Tensor> inputs, Function<List<Tensor>, Tensor> scalarLoss) {
        check(what, inputs, scalarLoss, 1e-2f, 2e-2);
    }

    static void check(String what, List<Tensor> inputs, Function<List<Tensor>, Tensor> scalarLoss, float step, double tol) {
        for (Tensor in : inputs) {
            in.zeroGrad();
            in.requiresGrad(true);
        }
        Tensor loss = scalarLoss.apply(inputs);
        loss.backward();
        for (int which = 0; which < inputs.size(); which++) {
            Tensor in = inputs.get(which);
            float[] data = in.data();
            float[] analytic = in.grad().toFloatArray();
            double maxErr = 0;
            int worst = -1;
            double worstNum = 0;
            for (int i = 0; i < data.length; i++) {
                float saved = data[i];
                data[i] = saved + step;
                double up;
                double down;
                try (Autograd.Scope ignored = Autograd.noGrad()) {
                    up = scalarLoss.apply(inputs).toFloatArray()[0];
                    data[i] = saved - step;
                    down = scalarLoss.apply(inputs).toFloatArray()[0];
                }
                data[i] = saved;
                double numeric = (up - down) / (2.0 * step);
                double err = Math.abs(numeric - analytic[i]) / Math.max(1.0, Math.abs(numeric));
                if (err > maxErr) {
                    maxErr = err;
                    worst = i;
                    worstNum = numeric;
                }
            }
            if (maxErr > tol) {
                fail(what + ": input " + which + " element " + worst + ": analytic " + analytic[worst] + " vs numeric "
                        + worstNum + " (relative error " + maxErr + " > " + tol + ")");
            }
        }
    }
}
