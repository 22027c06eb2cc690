package dev.lora4j.autograd;

import dev.lora4j.tensor.Tensor;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * Reverse-mode automatic differentiation over the graph that ops record while gradients are
 * enabled. {@link #noGrad()} turns recording off for the current thread (inference, evaluation,
 * optimizer updates).
 */
public final class Autograd {
    private static final ThreadLocal<int[]> NO_GRAD_DEPTH = ThreadLocal.withInitial(() -> new int[1]);

    private Autograd() {
    }

    /** Disables graph recording on this thread until the returned scope is closed. */
    public static Scope noGrad() {
        int[] depth = NO_GRAD_DEPTH.get();
        depth[0]++;
        return () -> depth[0]--;
    }

    /** True when ops should record their backward rules. */
    public static boolean isGradEnabled() {
        return NO_GRAD_DEPTH.get()[0] == 0;
    }

    /** True when an op over these inputs must record a graph node. */
    public static boolean needsGrad(Tensor... inputs) {
        if (!isGradEnabled()) {
            return false;
        }
        for (Tensor t : inputs) {
            if (t != null && t.requiresGrad()) {
                return true;
            }
        }
        return false;
    }

    /** Attaches a backward rule to {@code out} if any input needs a gradient. Returns out. */
    public static Tensor record(Tensor out, String name, Tensor[] inputs, BackwardRule rule) {
        if (needsGrad(inputs)) {
            out.setGradFn(new GradFn() {
                @Override
                public String name() {
                    return name;
                }

                @Override
                public Tensor[] inputs() {
                    return inputs;
                }

                @Override
                public void backward(Tensor dOut) {
                    rule.backward(dOut);
                }
            });
        }
        return out;
    }

    /**
     * Records a view op: {@code toInputGrad} maps the view's gradient to one of the input's shape
     * (contiguous), which is then added to the input's gradient.
     */
    public static Tensor viewOf(Tensor input, Tensor view, String name, UnaryOperator<Tensor> toInputGrad) {
        if (view == input) {
            return view;
        }
        return record(view, name, new Tensor[] {input}, dOut -> accumulate(input, toInputGrad.apply(dOut)));
    }

    /** grad(input) += g, for a contiguous F32 g of the input's shape. */
    public static void accumulate(Tensor input, Tensor g) {
        if (!input.requiresGrad()) {
            return;
        }
        Tensor gc = g.contiguous();
        if (input.grad() == null && gc != g) {
            input.setGrad(gc);
            return;
        }
        float[] src = gc.data();
        int srcOff = gc.intOffset();
        Tensor buffer = input.gradBuffer();
        float[] dst = buffer.data();
        int n = Math.toIntExact(buffer.numel());
        if (gc.numel() != n) {
            throw new IllegalStateException("gradient of shape " + Arrays.toString(gc.shape()) + " for input "
                    + Arrays.toString(input.shape()));
        }
        for (int i = 0; i < n; i++) {
            dst[i] += src[srcOff + i];
        }
    }

    /**
     * Back-propagates from a scalar {@code loss} (seeded with 1). Leaf gradients accumulate;
     * intermediate gradients and the recorded graph are released as each node is processed.
     */
    public static void backward(Tensor loss) {
        if (loss.numel() != 1) {
            throw new IllegalArgumentException("backward() needs a scalar loss, got shape " + Arrays.toString(loss.shape()));
        }
        backward(loss, Tensor.full(1f, loss.shape()));
    }

    /** Back-propagates {@code seed} = d(something)/d(root) through the graph below root. */
    public static void backward(Tensor root, Tensor seed) {
        if (!root.requiresGrad()) {
            throw new IllegalStateException("backward(): " + root + " does not require grad; no trainable parameter "
                    + "contributed to it (were all parameters frozen, or was it computed under noGrad()?)");
        }
        List<Tensor> order = topologicalOrder(root);
        if (root.isLeaf()) {
            accumulate(root, seed);
            return;
        }
        root.setGrad(seed.contiguous());
        for (Tensor node : order) {
            GradFn fn = node.gradFn();
            Tensor g = node.grad();
            node.setGradFn(null);
            node.setGrad(null);
            if (fn == null || g == null) {
                continue;
            }
            try (Scope ignored = noGrad()) {
                fn.backward(g);
            }
        }
    }

    /** Non-leaf nodes reachable from root, each after every node that consumes it. */
    private static List<Tensor> topologicalOrder(Tensor root) {
        List<Tensor> postOrder = new ArrayList<>();
        Map<Tensor, Boolean> visited = new IdentityHashMap<>();
        ArrayDeque<Object[]> stack = new ArrayDeque<>();
        stack.push(new Object[] {root, Boolean.FALSE});
        while (!stack.isEmpty()) {
            Object[] frame = stack.pop();
            Tensor t = (Tensor) frame[0];
            if ((Boolean) frame[1]) {
                postOrder.add(t);
                continue;
            }
            if (t.gradFn() == null || visited.containsKey(t)) {
                continue;
            }
            visited.put(t, true);
            stack.push(new Object[] {t, Boolean.TRUE});
            for (Tensor in : t.gradFn().inputs()) {
                if (in != null && in.gradFn() != null && !visited.containsKey(in)) {
                    stack.push(new Object[] {in, Boolean.FALSE});
                }
            }
        }
        Collections.reverse(postOrder);
        return postOrder;
    }

    /** A backward rule as a lambda. */
    @FunctionalInterface
    public interface BackwardRule {
        void backward(Tensor dOut);
    }

    /** A no-grad region; close it to restore recording. */
    public interface Scope extends AutoCloseable {
        @Override
        void close();
    }
}
