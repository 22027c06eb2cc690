package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Collections;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class ParallelTest {

    @Test
    void everyIndexOnceAtAwkwardSizesAndGrains() {
        for (int n : new int[] {0, 1, 7, 31, 207, 702, 4096}) {
            for (int grain : new int[] {1, 3, 64, 5000}) {
                AtomicIntegerArray visits = new AtomicIntegerArray(n);
                Parallel.forRange(n, grain, (from, to) -> {
                    assertTrue(0 <= from && (from < to || n == 0) && to <= n, "[" + from + ", " + to + ") in [0, " + n + ")");
                    for (int i = from; i < to; i++) {
                        visits.incrementAndGet(i);
                    }
                });
                for (int i = 0; i < n; i++) {
                    assertEquals(1, visits.get(i), "n " + n + " grain " + grain + " index " + i);
                }
            }
        }
    }

    @Test
    void theCallerWorksAndSmallWorkStaysOnIt() {
        Thread caller = Thread.currentThread();
        Set<Thread> threads = Collections.newSetFromMap(new ConcurrentHashMap<>());
        Parallel.forWork(1000, 10, (from, to) -> threads.add(Thread.currentThread()));
        assertEquals(Set.of(caller), threads, "10 kflop in all is not worth another thread");
        threads.clear();
        AtomicInteger chunks = new AtomicInteger();
        Parallel.forRange(64, 1, (from, to) -> {
            threads.add(Thread.currentThread());
            chunks.incrementAndGet();
        });
        assertTrue(chunks.get() <= 4 * Parallel.parallelism() && chunks.get() >= Math.min(64, Parallel.parallelism()),
                chunks.get() + " chunks for " + Parallel.parallelism() + " threads");
        for (Thread t : threads) {
            assertTrue(t == caller || t.getName().startsWith("lora4j-compute-"), t.getName());
        }
    }

    @Test
    void nestedRangesRunSeriallyOnTheirThread() {
        AtomicIntegerArray visits = new AtomicIntegerArray(32 * 32);
        Parallel.forRange(32, 1, (from, to) -> {
            Thread outer = Thread.currentThread();
            for (int i = from; i < to; i++) {
                int row = i;
                AtomicInteger pieces = new AtomicInteger();
                Parallel.forRange(32, 1, (f, t) -> {
                    assertSame(outer, Thread.currentThread(), "an inner range runs on the thread that started it");
                    pieces.incrementAndGet();
                    for (int j = f; j < t; j++) {
                        visits.incrementAndGet(row * 32 + j);
                    }
                });
                assertEquals(1, pieces.get(), "an inner range is not split");
            }
        });
        for (int i = 0; i < visits.length(); i++) {
            assertEquals(1, visits.get(i));
        }
    }

    @Test
    void aFailingBodyFailsTheCallAndThePoolGoesOn() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Parallel.forRange(100, 1, (f, t) -> {
            if (f <= 50 && 50 < t) {
                throw new IllegalStateException("chunk with 50");
            }
        }));
        assertEquals("chunk with 50", e.getMessage());
        AtomicInteger sum = new AtomicInteger();
        Parallel.forRange(100, 1, (f, t) -> sum.addAndGet(t - f));
        assertEquals(100, sum.get());
    }

    @Test
    void threadsPropertyIsParsedWithAClearError() {
        assertEquals(6, Parallel.parseThreads(null, 6));
        assertEquals(6, Parallel.parseThreads(" ", 6));
        assertEquals(1, Parallel.parseThreads("1", 6));
        assertEquals(3, Parallel.parseThreads(" 3 ", 6));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Parallel.parseThreads("0", 2));
        assertEquals("system property lora4j.threads must be a whole number from 1 to 512, was '0'; set it to the"
                + " number of cores to compute on (default: 2, the available processors)", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Parallel.parseThreads("two", 2));
        assertThrows(IllegalArgumentException.class, () -> Parallel.parseThreads("-1", 2));
        assertThrows(IllegalArgumentException.class, () -> Parallel.forRange(-1, 1, (f, t) -> { }));
        assertThrows(IllegalArgumentException.class, () -> Parallel.forRange(5, 0, (f, t) -> { }));
    }
}
