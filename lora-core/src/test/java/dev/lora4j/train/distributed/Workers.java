package dev.lora4j.train.distributed;

import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** N workers as threads of this JVM, joined in a loopback ring. */
final class Workers {
    interface Job<T> {
        T run(TcpRingReducer reducer) throws Exception;
    }

    /** What each worker returned, or threw. */
    record Outcome<T>(T value, Throwable error) {
    }

    private Workers() {
    }

    static TcpRingReducer.Options fast(TcpRingReducer.Order order) {
        return TcpRingReducer.Options.defaults().connectTimeout(java.time.Duration.ofSeconds(10))
                .ioTimeout(java.time.Duration.ofSeconds(5)).chunkBytes(256).order(order);
    }

    /** Runs {@code job} on every rank; each reducer is closed when its job ends (as a process's sockets are). */
    static <T> List<Outcome<T>> run(int n, TcpRingReducer.Options options, Job<T> job) throws InterruptedException {
        List<ServerSocketChannel> servers = new ArrayList<>();
        List<InetSocketAddress> peers = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            ServerSocketChannel s = TcpRingReducer.listen(new InetSocketAddress("127.0.0.1", 0));
            servers.add(s);
            peers.add((InetSocketAddress) s.socket().getLocalSocketAddress());
        }
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (TcpRingReducer reducer = TcpRingReducer.connect(servers.get(rank), peers, rank, options)) {
                        return job.run(reducer);
                    }
                }));
            }
            List<Outcome<T>> out = new ArrayList<>();
            for (Future<T> f : futures) {
                try {
                    out.add(new Outcome<>(f.get(60, TimeUnit.SECONDS), null));
                } catch (ExecutionException e) {
                    out.add(new Outcome<>(null, e.getCause()));
                } catch (TimeoutException e) {
                    throw new AssertionError("a worker hung for 60 s", e);
                }
            }
            return out;
        } finally {
            pool.shutdownNow();
            pool.awaitTermination(10, TimeUnit.SECONDS);
        }
    }

    static <T> List<T> values(List<Outcome<T>> outcomes) {
        List<T> out = new ArrayList<>();
        for (int r = 0; r < outcomes.size(); r++) {
            if (outcomes.get(r).error() != null) {
                throw new AssertionError("rank " + r + " failed", outcomes.get(r).error());
            }
            out.add(outcomes.get(r).value());
        }
        return out;
    }
}
