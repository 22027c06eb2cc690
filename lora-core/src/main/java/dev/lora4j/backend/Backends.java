package dev.lora4j.backend;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import dev.lora4j.tensor.Device;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The process-wide compute backend, chosen once on first use (in the manner of Lucene's
 * {@code VectorizationProvider}).
 *
 * <p>Selection: if the system property {@value #PROPERTY} names a backend ({@code scalar},
 * {@code vector}, or the {@link BackendProvider#name()} of a provider on the class path), that
 * backend is used, and an {@link IllegalStateException} explains why when it cannot be. Otherwise
 * candidates are tried by descending priority: {@link java.util.ServiceLoader} providers with their
 * own {@link BackendProvider#priority()}, then the Vector API backend (priority
 * {@value #VECTOR_PRIORITY}, available when the JVM runs with
 * {@code --add-modules jdk.incubator.vector}) and the scalar backend ({@value #SCALAR_PRIORITY}),
 * which always works. A candidate that refuses is logged with its reason.
 *
 * <p>{@code VectorBackend} is loaded reflectively, and only when the module is in the boot layer,
 * so that the scalar path never links {@code jdk.incubator.vector}.
 */
public final class Backends {
    /** System property naming the backend to use. */
    public static final String PROPERTY = "lora4j.backend";
    static final int VECTOR_PRIORITY = 10;
    static final int SCALAR_PRIORITY = 0;
    static final String VECTOR_MODULE = "jdk.incubator.vector";
    private static final String VECTOR_CLASS = "dev.lora4j.backend.VectorBackend";
    private static final Logger LOG = LoggerFactory.getLogger(Backends.class);

    private Backends() {
    }

    private static final class Chosen {
        static final Backend INSTANCE = selectFromProperty();
    }

    private static final class Scalar {
        static final Backend INSTANCE = new ScalarBackend();
    }

    private static final class Vector {
        static final Optional<Backend> INSTANCE;
        static final String UNAVAILABLE_REASON;

        static {
            Backend backend = null;
            String reason = null;
            try {
                backend = loadVectorBackend();
            } catch (UnsupportedOperationException e) {
                reason = e.getMessage();
            }
            INSTANCE = Optional.ofNullable(backend);
            UNAVAILABLE_REASON = reason;
        }
    }

    /** The backend of this process; the first call selects it (see the class comment). */
    public static Backend get() {
        return Chosen.INSTANCE;
    }

    /**
     * The backend that computes on {@code device}: the process backend ({@link #get()}) when it is
     * on that device; for the CPU otherwise the Vector API backend if enabled, else the scalar one;
     * for another device the first provider whose backend is on it. Tensors dispatch their
     * operations here, so a model on the CPU keeps working when a device backend is selected.
     *
     * @throws IllegalStateException when no backend for the device is available, naming the fix
     */
    public static Backend forDevice(Device device) {
        Backend chosen = get();
        if (chosen.device() == device) {
            return chosen;
        }
        if (device == Device.CPU) {
            return vector().orElse(scalar());
        }
        return BY_DEVICE.computeIfAbsent(device, Backends::deviceBackend);
    }

    private static final Map<Device, Backend> BY_DEVICE = new ConcurrentHashMap<>();

    private static Backend deviceBackend(Device device) {
        List<String> refusals = new ArrayList<>();
        for (BackendProvider p : providers()) {
            try {
                Backend b = p.create();
                if (b.device() == device) {
                    return b;
                }
            } catch (RuntimeException | LinkageError e) {
                refusals.add(p.name() + ": " + e.getMessage());
            }
        }
        throw new IllegalStateException("no backend computes on " + device + (refusals.isEmpty() ? "" : " (" + refusals
                + ")") + "; put the module of a " + device + " backend (e.g. lora-cuda) on the class path, or keep the"
                + " tensors on the CPU");
    }

    /** The plain-Java backend (always available). */
    public static Backend scalar() {
        return Scalar.INSTANCE;
    }

    /** The Vector API backend, if the JVM was started with {@code --add-modules jdk.incubator.vector}. */
    public static Optional<Backend> vector() {
        return Vector.INSTANCE;
    }

    /** Applies the selection rules to the current value of {@value #PROPERTY}. Not cached. */
    static Backend selectFromProperty() {
        return select(System.getProperty(PROPERTY));
    }

    /** Applies the selection rules for a requested name (null or blank: automatic). Not cached. */
    static Backend select(String requested) {
        List<BackendProvider> providers = providers();
        if (requested != null && !requested.isBlank()) {
            return explicit(requested.trim().toLowerCase(Locale.ROOT), providers);
        }
        List<Candidate> candidates = new ArrayList<>();
        for (BackendProvider p : providers) {
            candidates.add(new Candidate(p.name(), p.priority(), p::create));
        }
        candidates.add(new Candidate("vector", VECTOR_PRIORITY, Backends::requireVector));
        candidates.add(new Candidate("scalar", SCALAR_PRIORITY, Backends::scalar));
        candidates.sort(Comparator.comparingInt(Candidate::priority).reversed());
        for (Candidate candidate : candidates) {
            try {
                Backend backend = candidate.factory().create();
                LOG.debug("lora4j compute backend: {}", backend);
                return backend;
            } catch (UnsupportedOperationException e) {
                if (candidate.name().equals("vector") && Vector.UNAVAILABLE_REASON == null) {
                    LOG.warn("The Vector API is not enabled; pass --add-modules " + VECTOR_MODULE
                            + " to the JVM to enable it (lora4j falls back to slower kernels)");
                } else {
                    LOG.info("lora4j backend '{}' is unavailable: {}", candidate.name(), e.getMessage());
                }
            } catch (RuntimeException | LinkageError e) { // a broken optional provider must not stop the CPU path
                LOG.info("lora4j backend '{}' failed to start: {}", candidate.name(), e.toString());
            }
        }
        throw new AssertionError("the scalar backend cannot refuse");
    }

    private static Backend explicit(String name, List<BackendProvider> providers) {
        switch (name) {
            case "scalar":
                return scalar();
            case "vector":
                try {
                    return requireVector();
                } catch (UnsupportedOperationException e) {
                    throw new IllegalStateException("-D" + PROPERTY + "=vector: " + e.getMessage()
                            + "; or choose -D" + PROPERTY + "=scalar", e);
                }
            default:
                break;
        }
        List<String> known = new ArrayList<>(List.of("scalar", "vector"));
        for (BackendProvider p : providers) {
            if (p.name().equalsIgnoreCase(name)) {
                try {
                    return p.create();
                } catch (RuntimeException | LinkageError e) {
                    String reason = e instanceof UnsupportedOperationException ? e.getMessage() : e.toString();
                    throw new IllegalStateException("-D" + PROPERTY + "=" + name + ": that backend cannot start: "
                            + reason + "; fix that, or unset " + PROPERTY + " to pick automatically", e);
                }
            }
            known.add(p.name());
        }
        throw new IllegalStateException("-D" + PROPERTY + "=" + name + " names no backend; available: " + known
                + " (device backends appear when their module, e.g. lora-cuda, is on the class path)");
    }

    private static Backend requireVector() {
        return vector().orElseThrow(() -> new UnsupportedOperationException(Vector.UNAVAILABLE_REASON != null
                ? Vector.UNAVAILABLE_REASON
                : "the module " + VECTOR_MODULE + " is not enabled; start the JVM with --add-modules " + VECTOR_MODULE));
    }

    private static Backend loadVectorBackend() {
        if (ModuleLayer.boot().findModule(VECTOR_MODULE).isEmpty()) {
            return null;
        }
        try {
            Class<?> type = Class.forName(VECTOR_CLASS, true, Backends.class.getClassLoader());
            return (Backend) MethodHandles.lookup().findConstructor(type, MethodType.methodType(void.class)).invoke();
        } catch (UnsupportedOperationException e) {
            throw e;
        } catch (ClassNotFoundException | LinkageError e) {
            throw new UnsupportedOperationException(VECTOR_CLASS + " cannot be loaded (" + e + "); the lora-core jar is"
                    + " incomplete or was built without the vector source set");
        } catch (Throwable e) {
            throw new UnsupportedOperationException("the vector backend failed to start: " + e, e);
        }
    }

    private static List<BackendProvider> providers() {
        List<BackendProvider> found = new ArrayList<>();
        ServiceLoader<BackendProvider> loader = ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader());
        for (var it = loader.iterator(); ; ) {
            try {
                if (!it.hasNext()) {
                    break;
                }
                found.add(it.next());
            } catch (ServiceConfigurationError e) {
                LOG.info("lora4j backend provider skipped: {}", e.getMessage());
            }
        }
        return found;
    }

    @FunctionalInterface
    private interface Factory {
        Backend create();
    }

    private record Candidate(String name, int priority, Factory factory) {
    }
}
