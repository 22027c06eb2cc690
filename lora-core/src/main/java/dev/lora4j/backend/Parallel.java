package dev.lora4j.backend;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * lora4j's one compute pool: {@value #PROPERTY} threads in all (default: the available
 * processors), the calling thread being one of them, so that on 2 cores both cores work and
 * no thread is idle while another waits.
 *
 * <p>A range is cut into chunks whose boundaries depend only on (n, grain, threads); chunks are
 * claimed by whichever thread is free, so each index is visited exactly once and results do not
 * depend on scheduling as long as bodies write disjoint outputs. Work below one grain, or below
 * {@link #MIN_TASK_WORK} flops per task for {@link #forWork}, runs on the calling thread, so small
 * tensors pay no hand-off.
 *
 * <p>No nested parallelism: a range started from inside a body (a matrix product inside an
 * attention head, say), or while another thread's range holds the pool, runs serially on the
 * calling thread.
 */
public final class Parallel {
    /** System property: the number of threads lora4j computes on, the caller included. */
    public static final String PROPERTY = "lora4j.threads";
    /**
     * Least work, in floating-point operations, worth handing to another thread: waking a parked
     * thread costs some tens of microseconds, a few million flops at the speed of a core.
     */
    public static final long MIN_TASK_WORK = 1L << 22;
    /** Chunks per thread, so that a thread slowed by other processes leaves work to the others. */
    private static final int CHUNKS_PER_THREAD = 4;
    private static final int MAX_THREADS = 512;

    private Parallel() {
    }

    /** A body over the half-open range [from, to). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    /** The number of threads ranges are split over, the caller included ({@value #PROPERTY}). */
    public static int parallelism() {
        return Pool.get().threads;
    }

    /** Runs {@code body} over [0, n) in chunks of at least {@code grain} indices. */
    public static void forRange(int n, int grain, RangeBody body) {
        if (n < 0 || grain < 1) {
            throw new IllegalArgumentException("forRange: n (" + n + ") must be >= 0 and grain (" + grain + ") >= 1");
        }
        Pool pool = Pool.get();
        if (n <= grain || pool.threads == 1) {
            body.run(0, n);
            return;
        }
        int chunks = (int) Math.min((long) pool.threads * CHUNKS_PER_THREAD, (n + (long) grain - 1) / grain);
        pool.run(n, chunks, body);
    }

    /**
     * Runs {@code body} over [0, n), where one index costs about {@code workPerIndex} flops:
     * chunks carry at least {@link #MIN_TASK_WORK} flops each, so a small product stays on the
     * calling thread.
     */
    public static void forWork(int n, double workPerIndex, RangeBody body) {
        int grain = (int) Math.min(Integer.MAX_VALUE, Math.max(1, Math.ceil(MIN_TASK_WORK / Math.max(workPerIndex, 1))));
        forRange(n, grain, body);
    }

    /** Parses a {@value #PROPERTY} value; null or blank means the available processors. */
    static int parseThreads(String value, int processors) {
        if (value == null || value.isBlank()) {
            return Math.max(1, processors);
        }
        int threads;
        try {
            threads = Integer.parseInt(value.trim());
        } catch (NumberFormatException e) {
            threads = -1;
        }
        if (threads < 1 || threads > MAX_THREADS) {
            throw new IllegalArgumentException("system property " + PROPERTY + " must be a whole number from 1 to "
                    + MAX_THREADS + ", was '" + value + "'; set it to the number of cores to compute on (default: "
                    + processors + ", the available processors)");
        }
        return threads;
    }

    /** The pool's worker threads and the one range they are working on. */
    private static final class Pool {
        private static volatile Pool instance;
        private static volatile IllegalArgumentException error;

        final int threads;
        private final Worker[] workers;
        /** Held by the thread whose range the workers are on; others run serially. */
        private final ReentrantLock owner = new ReentrantLock();
        /** The range in progress, published to workers; workers remember the last one they saw. */
        volatile Job job;

        private Pool(int threads) {
            this.threads = threads;
            this.workers = new Worker[threads - 1];
            for (int i = 0; i < workers.length; i++) {
                workers[i] = new Worker(this, i + 1);
                workers[i].start();
            }
        }

        static Pool get() {
            Pool p = instance;
            if (p != null) {
                return p;
            }
            synchronized (Pool.class) {
                if (instance == null) {
                    if (error == null) {
                        try {
                            instance = new Pool(parseThreads(System.getProperty(PROPERTY),
                                    Runtime.getRuntime().availableProcessors()));
                            return instance;
                        } catch (IllegalArgumentException e) {
                            error = e;
                        }
                    }
                    throw new IllegalArgumentException(error.getMessage(), error);
                }
                return instance;
            }
        }

        void run(int n, int chunks, RangeBody body) {
            if (Worker.NESTED.get()[0] || !owner.tryLock()) {
                body.run(0, n);
                return;
            }
            boolean[] nested = Worker.NESTED.get();
            nested[0] = true;
            try {
                Job j = new Job(n, chunks, body, Thread.currentThread());
                job = j;
                for (Worker w : workers) {
                    LockSupport.unpark(w);
                }
                j.work();
                j.awaitCompletion();
                job = null;
                j.rethrow();
            } finally {
                nested[0] = false;
                owner.unlock();
            }
        }
    }

    /** One range: chunks claimed in order by whichever thread is free. */
    private static final class Job {
        final int n;
        final int chunks;
        final RangeBody body;
        final Thread caller;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger finished = new AtomicInteger();
        volatile Throwable failure;

        Job(int n, int chunks, RangeBody body, Thread caller) {
            this.n = n;
            this.chunks = chunks;
            this.body = body;
            this.caller = caller;
        }

        void work() {
            for (int c; (c = next.getAndIncrement()) < chunks; ) {
                try {
                    if (failure == null) {
                        body.run((int) ((long) n * c / chunks), (int) ((long) n * (c + 1) / chunks));
                    }
                } catch (Throwable t) {
                    if (failure == null) {
                        failure = t;
                    }
                } finally {
                    if (finished.incrementAndGet() == chunks) {
                        LockSupport.unpark(caller);
                    }
                }
            }
        }

        void awaitCompletion() {
            while (finished.get() < chunks) {
                LockSupport.park(this);
            }
        }

        void rethrow() {
            Throwable t = failure;
            if (t instanceof RuntimeException e) {
                throw e;
            }
            if (t instanceof Error e) {
                throw e;
            }
            if (t != null) {
                throw new IllegalStateException(t);
            }
        }
    }

    private static final class Worker extends Thread {
        /** Whether this thread is inside a range already (element 0; an array to avoid boxing). */
        static final ThreadLocal<boolean[]> NESTED = ThreadLocal.withInitial(() -> new boolean[1]);
        private final Pool pool;

        Worker(Pool pool, int index) {
            super("lora4j-compute-" + index);
            this.pool = pool;
            setDaemon(true);
        }

        @Override
        public void run() {
            NESTED.get()[0] = true;
            Job seen = null;
            while (true) {
                Job j = pool.job;
                if (j != null && j != seen) {
                    seen = j;
                    j.work();
                } else {
                    LockSupport.park(pool);
                }
            }
        }
    }
}
