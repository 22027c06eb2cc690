package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.backend.Backends;
import dev.lora4j.tensor.Device;
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

    /**
     * Enables graph recording on this thread until the returned scope is closed, even inside
     * {@link #noGrad()} or a backward pass (activation checkpointing recomputes a block with it).
     */
    public static Scope enableGrad() {
        int[] depth = NO_GRAD_DEPTH.get();
        int saved = depth[0];
        depth[0] = 0;
        return () -> depth[0] = saved;
    }

    private static final ThreadLocal<SeedTape> TAPE = new ThreadLocal<>();

    /**
     * The seed of a random op (dropout) from {@code rng}: drawn from it normally; recorded while
     * {@link #recordSeeds()} is open, and replayed (without touching rng) under {@link #replaySeeds},
     * so that a recomputed block draws exactly the masks of its first run.
     */
    public static long nextSeed(java.util.SplittableRandom rng) {
        SeedTape tape = TAPE.get();
        if (tape == null) {
            return rng.nextLong();
        }
        if (tape.replay) {
            if (tape.position >= tape.seeds.size()) {
                throw new IllegalStateException("a recomputed block drew more random seeds (" + (tape.position + 1)
                        + ") than its first run (" + tape.seeds.size() + "); the block must be deterministic");
            }
            return tape.seeds.get(tape.position++);
        }
        long seed = rng.nextLong();
        tape.seeds.add(seed);
        return seed;
    }

    /** Records the seeds drawn through {@link #nextSeed} on this thread until closed. */
    public static SeedTape recordSeeds() {
        SeedTape tape = new SeedTape(new ArrayList<>(), false, TAPE.get());
        TAPE.set(tape);
        return tape;
    }

    /** Replays {@code recorded}'s seeds through {@link #nextSeed} on this thread until closed. */
    public static SeedTape replaySeeds(SeedTape recorded) {
        SeedTape tape = new SeedTape(recorded.seeds, true, TAPE.get());
        TAPE.set(tape);
        return tape;
    }

    /** Seeds of one recorded or replayed region. */
    public static final class SeedTape implements AutoCloseable {
        private final List<Long> seeds;
        private final boolean replay;
        private final SeedTape parent;
        private int position;

        private SeedTape(List<Long> seeds, boolean replay, SeedTape parent) {
            this.seeds = seeds;
            this.replay = replay;
            this.parent = parent;
        }

        @Override
        public void close() {
            TAPE.set(parent);
        }
    }

    private static final ThreadLocal<int[]> RECOMPUTABLE_DEPTH = ThreadLocal.withInitial(() -> new int[1]);

    /**
     * Disables graph recording like {@link #noGrad()}, for a forward pass that will be recomputed
     * with the graph later (activation checkpointing): {@link #isTraining()} stays true, so
     * training-only behaviour such as dropout happens the same way in both passes.
     */
    public static Scope noGradForRecompute() {
        Scope noGrad = noGrad();
        int[] depth = RECOMPUTABLE_DEPTH.get();
        depth[0]++;
        return () -> {
            depth[0]--;
            noGrad.close();
        };
    }

    /** True while training: gradients are recorded, or a checkpointed block runs its first forward. */
    public static boolean isTraining() {
        return isGradEnabled() || RECOMPUTABLE_DEPTH.get()[0] > 0;
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
     * (contiguous), which is then added to the input's gradient (or becomes it: a view's gradient
     * belongs to the view's node alone, so it is handed over without a copy).
     */
    public static Tensor viewOf(Tensor input, Tensor view, String name, UnaryOperator<Tensor> toInputGrad) {
        if (view == input) {
            return view;
        }
        return record(view, name, new Tensor[] {input}, dOut -> accumulateOwned(input, toInputGrad.apply(dOut)));
    }

    /**
     * The backend of the inputs' common device.
     *
     * @throws IllegalArgumentException when the inputs live on different devices, naming both
     */
    public static Backend backendFor(String op, Tensor... inputs) {
        Device device = null;
        Tensor first = null;
        for (Tensor t : inputs) {
            if (t == null) {
                continue;
            }
            if (device == null) {
                device = t.device();
                first = t;
            } else if (t.device() != device) {
                throw new IllegalArgumentException(op + ": " + describe(first) + " is on " + device + " but " + describe(t)
                        + " is on " + t.device() + "; move one with Tensor.to(Device." + device + ") or Tensor.to(Device."
                        + t.device() + ")");
            }
        }
        return Backends.forDevice(device == null ? Device.CPU : device);
    }

    private static String describe(Tensor t) {
        return t.name() != null ? "'" + t.name() + "' " + Arrays.toString(t.shape()) : "a tensor " + Arrays.toString(t.shape());
    }

    /** grad(input) += g, for g of the input's numel (any layout). */
    public static void accumulate(Tensor input, Tensor g) {
        if (!input.requiresGrad()) {
            return;
        }
        checkGradient(input, g);
        Tensor gc = g.contiguous();
        if (input.grad() == null && gc != g && !input.isLeaf()) {
            input.setGrad(gc);
            return;
        }
        Tensor buffer = input.gradBuffer();
        backendFor("accumulate", buffer, gc).addScaled(buffer, gc, 1f);
    }

    /**
     * grad(input) += g where g was made for this input alone (nothing else holds it): an
     * intermediate input without a gradient yet takes g itself instead of a copy; otherwise g is
     * added to the input's gradient and, being dead, goes back to the step arena at once.
     */
    public static void accumulateOwned(Tensor input, Tensor g) {
        if (!input.requiresGrad()) {
            return;
        }
        checkGradient(input, g);
        if (input.grad() == null && !input.isLeaf() && g.isContiguous() && g.dtype() == input.dtype()) {
            input.setGrad(Arrays.equals(g.shape(), input.shape()) ? g : new Tensor(g.storage(), input.shape(),
                    Tensor.contiguousStrides(input.shape()), g.offset()));
            return;
        }
        accumulate(input, g);
        if (input.grad() == null || input.grad().storage() != g.storage()) {
            g.backend().release(g);
        }
    }

    private static void checkGradient(Tensor input, Tensor g) {
        if (g.numel() != input.numel()) {
            throw new IllegalStateException("gradient of shape " + Arrays.toString(g.shape()) + " for input "
                    + Arrays.toString(input.shape()));
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
        Tensor seed = loss.backend().empty(loss.shape());
        loss.backend().fill(seed, 1f);
        backward(loss, seed);
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
            releaseUnlessAdopted(g, fn.inputs());
        }
    }

    /**
     * A node's gradient is dead once its rule has run, unless the rule handed it (or a view of it)
     * to an input as that input's gradient: then it goes back to the step arena at once.
     */
    private static void releaseUnlessAdopted(Tensor g, Tensor[] inputs) {
        for (Tensor in : inputs) {
            if (in != null && in.grad() != null && in.grad().storage() == g.storage()) {
                return;
            }
        }
        g.backend().release(g);
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
