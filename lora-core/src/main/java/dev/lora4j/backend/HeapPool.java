package dev.lora4j.backend;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The heap buffers of the CPU backends: float arrays in size buckets, handed out to arenas and
 * taken back when an arena closes. Buckets are exact up to {@value #EXACT_UP_TO} floats and four
 * per octave above (1, 1.25, 1.5, 1.75 times a power of two), so a buffer wastes at most a fifth of
 * its length and sequences of slightly different lengths share buffers. Reused arrays stay
 * resident, so a steady-state step neither allocates nor faults in fresh pages.
 *
 * <p>The pool keeps at most twice the most any one arena has held in idle buffers; to take back
 * what an arena returns beyond that it drops the oldest idle buffers of other sizes, leaving them
 * to the garbage collector, so that buffers of earlier, differently shaped steps do not crowd out
 * those of the current one. Thread-safe.
 */
final class HeapPool {
    static final int EXACT_UP_TO = 4096;
    static final HeapPool SHARED = new HeapPool();

    private final Map<Integer, ArrayDeque<float[]>> free = new HashMap<>();
    private long idleBytes;
    private long largestArenaBytes;
    private long created;
    private long reused;
    /** Bytes of buffers handed out to open arenas and not yet given back. */
    private long liveBytes;
    /** The most {@link #liveBytes} has been since start or the last {@link #resetPeak()}. */
    private long peakLiveBytes;
    private static final ThreadLocal<HeapArena> CURRENT = new ThreadLocal<>();

    /** Capacity of the bucket that holds {@code n} floats. */
    static int bucket(int n) {
        if (n <= EXACT_UP_TO) {
            return n;
        }
        int high = Integer.highestOneBit(n);
        int quarter = high >>> 2;
        long size = high + (long) quarter * ((n - high + quarter - 1) / quarter);
        return (int) Math.min(size, Integer.MAX_VALUE - 8);
    }

    synchronized float[] take(int n) {
        int capacity = bucket(n);
        ArrayDeque<float[]> list = free.get(capacity);
        float[] a = list == null ? null : list.pollLast();
        if (a != null) {
            idleBytes -= 4L * a.length;
            reused++;
            handedOut(a.length);
            return a;
        }
        created++;
        handedOut(capacity);
        return null;
    }

    private void handedOut(int floats) {
        liveBytes += 4L * floats;
        peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
    }

    /**
     * The high-water mark of bytes held by open arenas at once (activations, their gradients and
     * scratch of one step) since start or the last {@link #resetPeak()}: what a memory plan's
     * activation row predicts.
     */
    synchronized long peakLiveBytes() {
        return peakLiveBytes;
    }

    synchronized long liveBytes() {
        return liveBytes;
    }

    /** Starts a new high-water mark from the bytes live now. */
    synchronized void resetPeak() {
        peakLiveBytes = liveBytes;
    }

    synchronized void give(List<float[]> arrays, long arenaBytes) {
        largestArenaBytes = Math.max(largestArenaBytes, arenaBytes);
        long limit = 2 * largestArenaBytes;
        for (float[] a : arrays) {
            liveBytes -= 4L * a.length;
            if (4L * a.length > limit) {
                continue;
            }
            makeRoom(4L * a.length, limit);
            free.computeIfAbsent(a.length, k -> new ArrayDeque<>()).addLast(a);
            idleBytes += 4L * a.length;
        }
    }

    /**
     * Drops the oldest idle buffers of other sizes until {@code bytes} more fit under the limit:
     * the buffers a step has just given back are the ones the next step asks for, while sizes of
     * earlier, differently shaped steps may never come back.
     */
    private void makeRoom(long bytes, long limit) {
        var buckets = free.entrySet().iterator();
        while (idleBytes + bytes > limit && buckets.hasNext()) {
            ArrayDeque<float[]> list = buckets.next().getValue();
            while (idleBytes + bytes > limit && !list.isEmpty()) {
                idleBytes -= 4L * list.pollFirst().length;
            }
            if (list.isEmpty()) {
                buckets.remove();
            }
        }
    }

    synchronized void giveOne(float[] a, long arenaBytes) {
        largestArenaBytes = Math.max(largestArenaBytes, arenaBytes);
        liveBytes -= 4L * a.length;
        free.computeIfAbsent(a.length, k -> new ArrayDeque<>()).addLast(a);
        idleBytes += 4L * a.length;
    }

    synchronized long idleBytes() {
        return idleBytes;
    }

    /** Buffers created because no idle one fitted, and buffers handed out again, since start. */
    synchronized long[] counts() {
        return new long[] {created, reused};
    }

    /** The innermost arena open on this thread, or null. */
    static HeapArena current() {
        return CURRENT.get();
    }

    HeapArena open() {
        HeapArena arena = new HeapArena(this, CURRENT.get());
        CURRENT.set(arena);
        return arena;
    }

    /** The buffers one arena handed out. */
    static final class HeapArena implements Arena {
        private final HeapPool pool;
        private final HeapArena parent;
        private final Thread owner = Thread.currentThread();
        private final List<float[]> handedOut = new ArrayList<>();
        private long bytes;
        private boolean closed;

        HeapArena(HeapPool pool, HeapArena parent) {
            this.pool = pool;
            this.parent = parent;
        }

        /** A buffer of at least n floats (contents unspecified), owned by this arena until it closes. */
        float[] allocate(int n) {
            float[] a = pool.take(n);
            if (a == null) {
                a = new float[bucket(n)];
            }
            handedOut.add(a);
            bytes += 4L * a.length;
            return a;
        }

        /**
         * Gives a dead buffer back to the pool before the arena closes, if this arena handed it out
         * and has not taken it back already (searched from the newest: gradients die young).
         */
        void release(float[] a) {
            for (int i = handedOut.size() - 1; i >= 0; i--) {
                if (handedOut.get(i) == a) {
                    int last = handedOut.size() - 1;
                    handedOut.set(i, handedOut.get(last));
                    handedOut.remove(last);
                    pool.giveOne(a, bytes);
                    return;
                }
            }
        }

        @Override
        public long bytesHandedOut() {
            return bytes;
        }

        @Override
        public void close() {
            if (closed) {
                return;
            }
            if (Thread.currentThread() != owner) {
                throw new IllegalStateException("an arena must be closed on the thread that opened it (" + owner.getName()
                        + "), not on " + Thread.currentThread().getName());
            }
            if (CURRENT.get() != this) {
                throw new IllegalStateException("arenas must be closed innermost first");
            }
            closed = true;
            CURRENT.set(parent);
            pool.give(handedOut, bytes);
            handedOut.clear();
        }
    }
}
