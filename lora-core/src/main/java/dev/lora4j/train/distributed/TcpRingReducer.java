package dev.lora4j.train.distributed;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * A ring of N workers over TCP (java.nio): worker r connects to r+1 and accepts r-1 (mod N), then
 * every collective operation moves framed, chunked messages around that ring.
 *
 * <p>{@link #sum} has two summation orders ({@link Order}):
 * <ul>
 *   <li>{@link Order#RING}: reduce-scatter + all-gather (each of N segments is summed on its way
 *       round the ring, then passed on); each link carries 2(N-1)/N of the vector, the
 *       bandwidth-optimal schedule. Segment k is summed as (((v[k] + v[k+1]) + v[k+2]) + ...) in
 *       ring order starting at rank k, so the rounding differs from segment to segment.
 *   <li>{@link Order#RANK_ORDER}: a pipelined chain 0 → 1 → ... → N-1 adds the contributions in
 *       rank order, ((v[0] + v[1]) + v[2]) + ..., and the last rank passes the result on round
 *       the ring. Each link carries up to 2x the vector; the result does not depend on how the
 *       vector is cut into segments or chunks, which makes it reproducible with
 *       {@code Trainer} gradient accumulation (see the README's data-parallel section).
 * </ul>
 * In both orders every worker ends with the same bits (each element is summed once and copied).
 *
 * <p>Bootstrap: {@link #connect(List, int, Options)} binds this worker's own entry of the peer list;
 * a cluster manager that hands out ports afterwards (e.g. bind to port 0, then exchange addresses)
 * binds with {@link #listen} and passes the bound channel to {@link #connect(ServerSocketChannel,
 * List, int, Options)}. Connecting retries until {@link Options#connectTimeout}; an operation in
 * which a peer sends nothing (or reads nothing) for {@link Options#ioTimeout}, closes its
 * connection, or sends bytes that are not a frame of this protocol fails with an
 * {@link UncheckedIOException} naming the peer's rank and address. After a failure the reducer
 * is broken: later calls fail at once.
 *
 * <p>Not thread-safe: one thread per worker calls it.
 */
public final class TcpRingReducer implements GradientReducer {
    /** How {@link #sum} orders the N additions of each element. */
    public enum Order {
        RING,
        RANK_ORDER
    }

    /**
     * Connection settings.
     *
     * @param connectTimeout how long to keep trying to reach the next worker and to wait for the previous one
     * @param ioTimeout how long an operation waits for a peer to send or read anything
     * @param chunkBytes largest payload of one frame (a multiple of 4)
     * @param order the summation order of {@link #sum}
     */
    public record Options(Duration connectTimeout, Duration ioTimeout, int chunkBytes, Order order) {
        public Options {
            Objects.requireNonNull(order, "order must be RING or RANK_ORDER");
            if (connectTimeout == null || connectTimeout.isNegative() || connectTimeout.isZero()) {
                throw new IllegalArgumentException("connectTimeout must be > 0, was " + connectTimeout + "; e.g. PT60S");
            }
            if (ioTimeout == null || ioTimeout.isNegative() || ioTimeout.isZero()) {
                throw new IllegalArgumentException("ioTimeout must be > 0, was " + ioTimeout + "; e.g. PT120S");
            }
            if (chunkBytes < 4 || chunkBytes % 4 != 0) {
                throw new IllegalArgumentException("chunkBytes must be a positive multiple of 4, was " + chunkBytes
                        + "; e.g. 1048576");
            }
        }

        /** 60 s to connect, 120 s per operation, 1 MiB frames, rank order. */
        public static Options defaults() {
            return new Options(Duration.ofSeconds(60), Duration.ofSeconds(120), 1 << 20, Order.RANK_ORDER);
        }

        public Options connectTimeout(Duration value) {
            return new Options(value, ioTimeout, chunkBytes, order);
        }

        public Options ioTimeout(Duration value) {
            return new Options(connectTimeout, value, chunkBytes, order);
        }

        public Options chunkBytes(int value) {
            return new Options(connectTimeout, ioTimeout, value, order);
        }

        public Options order(Order value) {
            return new Options(connectTimeout, ioTimeout, chunkBytes, value);
        }
    }

    private static final int FRAME_MAGIC = 0x4c345244; // "L4RD"
    private static final int HELLO_MAGIC = 0x4c34484c; // "L4HL"
    private static final int HEADER = 12; // magic, sequence number, payload bytes

    private final int rank;
    private final int world;
    private final List<InetSocketAddress> peers;
    private final Options options;
    private final ServerSocketChannel server;
    private SocketChannel toNext;
    private SocketChannel fromPrev;
    private Selector selector;
    private SelectionKey nextKey;
    private SelectionKey prevKey;
    private final ByteBuffer sendBuf;
    private final ByteBuffer recvBuf;
    private int sendSeq;
    private int recvSeq;
    private String broken;

    /** Binds a listening channel, e.g. to port 0 before the workers exchange their addresses. */
    public static ServerSocketChannel listen(InetSocketAddress address) {
        try {
            ServerSocketChannel s = ServerSocketChannel.open();
            s.bind(address, 64);
            return s;
        } catch (IOException e) {
            throw new UncheckedIOException("TcpRingReducer: cannot listen on " + address + ": " + e.getMessage()
                    + "; choose a free port", e);
        }
    }

    /** Binds {@code peers.get(rank)} and joins the ring; returns when both neighbours are connected. */
    public static TcpRingReducer connect(List<InetSocketAddress> peers, int rank, Options options) {
        checkPeers(peers, rank);
        return connect(peers.size() == 1 ? null : listen(peers.get(rank)), peers, rank, options);
    }

    /**
     * Joins the ring with a channel already bound to this worker's address; the reducer closes it.
     * {@code peers.get(r)} is where worker r listens.
     */
    public static TcpRingReducer connect(ServerSocketChannel server, List<InetSocketAddress> peers, int rank,
            Options options) {
        checkPeers(peers, rank);
        Objects.requireNonNull(options, "options");
        TcpRingReducer r = new TcpRingReducer(server, List.copyOf(peers), rank, options);
        try {
            r.join();
        } catch (RuntimeException e) {
            r.close();
            throw e;
        }
        return r;
    }

    private static void checkPeers(List<InetSocketAddress> peers, int rank) {
        if (peers == null || peers.isEmpty()) {
            throw new IllegalArgumentException("peers must list one host:port per worker, was " + peers);
        }
        if (rank < 0 || rank >= peers.size()) {
            throw new IllegalArgumentException("rank must be in [0, " + peers.size() + ") for " + peers.size()
                    + " peers, was " + rank);
        }
    }

    private TcpRingReducer(ServerSocketChannel server, List<InetSocketAddress> peers, int rank, Options options) {
        this.server = server;
        this.peers = peers;
        this.rank = rank;
        this.world = peers.size();
        this.options = options;
        this.sendBuf = ByteBuffer.allocateDirect(HEADER + options.chunkBytes()).order(ByteOrder.LITTLE_ENDIAN);
        this.recvBuf = ByteBuffer.allocateDirect(HEADER + options.chunkBytes()).order(ByteOrder.LITTLE_ENDIAN);
    }

    private int next() {
        return (rank + 1) % world;
    }

    private int prev() {
        return (rank + world - 1) % world;
    }

    private String peer(int r) {
        return "rank " + r + " (" + peers.get(r) + ")";
    }

    private void join() {
        if (world == 1) {
            return;
        }
        long deadline = System.nanoTime() + options.connectTimeout().toNanos();
        try {
            IOException last = null;
            while (toNext == null) {
                SocketChannel ch = SocketChannel.open();
                try {
                    ch.socket().connect(peers.get(next()), (int) Math.max(1, remainingMillis(deadline)));
                    toNext = ch;
                } catch (IOException e) {
                    ch.close();
                    last = e;
                    if (remainingMillis(deadline) <= 0) {
                        throw new UncheckedIOException("rank " + rank + " could not connect to " + peer(next()) + " within "
                                + options.connectTimeout() + ": " + e.getMessage() + "; check the peer list and that every "
                                + "worker started", e);
                    }
                    sleep(20);
                }
            }
            toNext.setOption(StandardSocketOptions.TCP_NODELAY, true);
            selector = Selector.open();
            server.configureBlocking(false);
            SelectionKey acceptKey = server.register(selector, SelectionKey.OP_ACCEPT);
            while (fromPrev == null) {
                fromPrev = server.accept();
                if (fromPrev == null) {
                    long wait = remainingMillis(deadline);
                    if (wait <= 0 || selector.select(wait) == 0 && remainingMillis(deadline) <= 0) {
                        throw new UncheckedIOException(new IOException("rank " + rank + " (" + peers.get(rank) + "): "
                                + peer(prev()) + " did not connect within " + options.connectTimeout()
                                + "; check that it started with the same peer list"));
                    }
                    selector.selectedKeys().clear();
                }
            }
            acceptKey.cancel();
            selector.selectNow();
            fromPrev.setOption(StandardSocketOptions.TCP_NODELAY, true);
            toNext.configureBlocking(false);
            fromPrev.configureBlocking(false);
            nextKey = toNext.register(selector, 0);
            prevKey = fromPrev.register(selector, 0);
            // hello: each side says who it is, so that a wrong peer list fails here and not in a sum
            sendBuf.clear();
            sendBuf.putInt(HELLO_MAGIC).putInt(rank).putInt(world).flip();
            recvBuf.clear().limit(HEADER);
            exchange(sendBuf, recvBuf, "connecting");
            int magic = recvBuf.getInt(0);
            int theirRank = recvBuf.getInt(4);
            int theirWorld = recvBuf.getInt(8);
            if (magic != HELLO_MAGIC || theirRank != prev() || theirWorld != world) {
                throw new UncheckedIOException(new IOException("rank " + rank + ": the worker connected from "
                        + fromPrev.getRemoteAddress() + " is not " + peer(prev()) + " of " + world + " (it says "
                        + (magic != HELLO_MAGIC ? "nothing of this protocol: magic 0x" + Integer.toHexString(magic)
                        : "rank " + theirRank + " of " + theirWorld) + "); give every worker the same peer list"));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("rank " + rank + ": joining the ring failed: " + e.getMessage(), e);
        }
    }

    private static long remainingMillis(long deadlineNanos) {
        return (deadlineNanos - System.nanoTime()) / 1_000_000;
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while connecting the ring", e);
        }
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return world;
    }

    public Options options() {
        return options;
    }

    @Override
    public void sum(float[] values) {
        if (world == 1) {
            return;
        }
        run(() -> {
            if (options.order() == Order.RING) {
                ringSum(values);
            } else {
                chainSum(values);
            }
        });
    }

    @Override
    public byte[][] allGather(byte[] mine) {
        byte[][] out = new byte[world][];
        out[rank] = mine.clone();
        if (world == 1) {
            return out;
        }
        run(() -> {
            ByteBuffer send = ByteBuffer.allocate(HEADER + mine.length).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer recv = ByteBuffer.allocate(HEADER + mine.length).order(ByteOrder.LITTLE_ENDIAN);
            for (int s = 0; s < world - 1; s++) {
                byte[] block = out[Math.floorMod(rank - s, world)];
                send.clear();
                send.putInt(FRAME_MAGIC).putInt(sendSeq++).putInt(block.length).put(block).flip();
                recv.clear();
                exchange(send, recv, "allGather");
                byte[] got = new byte[mine.length];
                recv.position(HEADER);
                recv.get(got);
                out[Math.floorMod(rank - s - 1, world)] = got;
            }
        });
        return out;
    }

    private interface Io {
        void run() throws IOException;
    }

    private void run(Io op) {
        if (broken != null) {
            throw new IllegalStateException("rank " + rank + ": the reducer failed earlier (" + broken + "); start a new one");
        }
        try {
            op.run();
        } catch (IOException e) {
            broken = e.getMessage();
            throw new UncheckedIOException(e.getMessage(), e);
        } catch (RuntimeException e) {
            broken = e.getMessage();
            throw e;
        }
    }

    // ---------------------------------------------------------------- sums

    private long segStart(int k, int n) {
        return (long) k * n / world;
    }

    /** Reduce-scatter, then all-gather: after step s of the first phase rank r holds s+2 contributions of segment r-s-1. */
    private void ringSum(float[] v) throws IOException {
        for (int s = 0; s < world - 1; s++) {
            transfer(v, Math.floorMod(rank - s, world), Math.floorMod(rank - s - 1, world), true);
        }
        for (int s = 0; s < world - 1; s++) {
            transfer(v, Math.floorMod(rank - s + 1, world), Math.floorMod(rank - s, world), false);
        }
    }

    /** Sends segment {@code sendSeg} to the next rank while receiving {@code recvSeg} from the previous one, chunk by chunk. */
    private void transfer(float[] v, int sendSeg, int recvSeg, boolean add) throws IOException {
        int sendFrom = (int) segStart(sendSeg, v.length);
        int sendLen = (int) segStart(sendSeg + 1, v.length) - sendFrom;
        int recvFrom = (int) segStart(recvSeg, v.length);
        int recvLen = (int) segStart(recvSeg + 1, v.length) - recvFrom;
        int chunk = options.chunkBytes() / 4;
        int chunks = Math.max(1, Math.max((sendLen + chunk - 1) / chunk, (recvLen + chunk - 1) / chunk));
        for (int c = 0; c < chunks; c++) {
            int so = Math.min(sendLen, c * chunk);
            int ro = Math.min(recvLen, c * chunk);
            frame(v, sendFrom + so, Math.min(chunk, sendLen - so));
            receive(v, recvFrom + ro, Math.min(chunk, recvLen - ro), add, true);
        }
    }

    /** Rank order: partial sums travel 0 → 1 → ... → N-1, then the result goes N-1 → 0 → ... → N-2. */
    private void chainSum(float[] v) throws IOException {
        int chunk = options.chunkBytes() / 4;
        int chunks = Math.max(1, (v.length + chunk - 1) / chunk);
        for (int c = 0; c < chunks; c++) {
            int from = Math.min(v.length, c * chunk);
            int len = Math.min(chunk, v.length - from);
            if (rank > 0) {
                receive(v, from, len, true, false);
            }
            if (rank < world - 1) {
                frame(v, from, len);
                exchange(sendBuf, null, "sum");
            }
        }
        for (int c = 0; c < chunks; c++) {
            int from = Math.min(v.length, c * chunk);
            int len = Math.min(chunk, v.length - from);
            if (rank != world - 1) {
                receive(v, from, len, false, false);
            }
            if (rank != world - 2) {
                frame(v, from, len);
                exchange(sendBuf, null, "sum");
            }
        }
    }

    /** Fills {@link #sendBuf} with one frame of {@code v[from, from + len)}. */
    private void frame(float[] v, int from, int len) {
        sendBuf.clear();
        sendBuf.putInt(FRAME_MAGIC).putInt(sendSeq++).putInt(len * 4);
        sendBuf.asFloatBuffer().put(v, from, len);
        sendBuf.position(HEADER + len * 4).flip();
    }

    /**
     * Receives one frame of {@code len} floats into {@code v[from, ...)}, added or copied; with
     * {@code alsoSend} it sends the frame in {@link #sendBuf} at the same time (both neighbours
     * send and receive at once in the ring, so neither may wait for the other).
     */
    private void receive(float[] v, int from, int len, boolean add, boolean alsoSend) throws IOException {
        recvBuf.clear().limit(HEADER + len * 4);
        exchange(alsoSend ? sendBuf : null, recvBuf, "sum");
        FloatBuffer got = recvBuf.position(HEADER).slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        if (add) {
            for (int i = 0; i < len; i++) {
                v[from + i] = got.get(i) + v[from + i];
            }
        } else {
            got.get(v, from, len);
        }
    }

    // ---------------------------------------------------------------- transport

    /**
     * Writes {@code send} to the next rank and fills {@code recv} from the previous one, whichever
     * can progress, until both are done; fails when neither moves for the I/O timeout.
     */
    private void exchange(ByteBuffer send, ByteBuffer recv, String what) throws IOException {
        long timeout = options.ioTimeout().toMillis();
        boolean headerChecked = recv == null || "connecting".equals(what);
        while ((send != null && send.hasRemaining()) || (recv != null && recv.hasRemaining())) {
            boolean progress = false;
            if (send != null && send.hasRemaining()) {
                try {
                    progress |= toNext.write(send) > 0;
                } catch (IOException e) {
                    throw new IOException("rank " + rank + ": sending to " + peer(next()) + " failed during " + what + ": "
                            + e.getMessage() + " (the worker stopped or the network failed)", e);
                }
            }
            if (recv != null && recv.hasRemaining()) {
                int n;
                try {
                    n = fromPrev.read(recv);
                } catch (IOException e) {
                    throw new IOException("rank " + rank + ": receiving from " + peer(prev()) + " failed during " + what
                            + ": " + e.getMessage() + " (the worker stopped or the network failed)", e);
                }
                if (n < 0) {
                    throw new IOException("rank " + rank + ": " + peer(prev()) + " closed the connection during " + what
                            + " (after " + recv.position() + " of " + recv.limit() + " bytes of a message); that worker "
                            + "stopped: see its error");
                }
                progress |= n > 0;
                if (!headerChecked && recv.position() >= HEADER) {
                    checkHeader(recv);
                    headerChecked = true;
                }
            }
            if (!progress) {
                nextKey.interestOps(send != null && send.hasRemaining() ? SelectionKey.OP_WRITE : 0);
                prevKey.interestOps(recv != null && recv.hasRemaining() ? SelectionKey.OP_READ : 0);
                int ready = selector.select(timeout);
                selector.selectedKeys().clear();
                if (ready == 0) {
                    String who = recv != null && recv.hasRemaining()
                            ? "nothing arrived from " + peer(prev()) + " (" + recv.position() + " of " + recv.limit()
                                    + " bytes of a message)"
                            : peer(next()) + " read nothing of what this worker sends";
                    throw new IOException("rank " + rank + ": timed out after " + options.ioTimeout() + " during " + what
                            + ": " + who + "; that worker is stuck or gone (raise ioTimeout if steps are that slow)");
                }
            }
        }
        if (!headerChecked) {
            checkHeader(recv);
        }
    }

    private void checkHeader(ByteBuffer recv) throws IOException {
        int magic = recv.getInt(0);
        int seq = recv.getInt(4);
        int bytes = recv.getInt(8);
        if (magic != FRAME_MAGIC) {
            throw new IOException("rank " + rank + ": " + peer(prev()) + " sent garbage: a frame starts with 0x"
                    + Integer.toHexString(FRAME_MAGIC) + " but read 0x" + Integer.toHexString(magic)
                    + "; is another program connected to this port?");
        }
        if (seq != recvSeq) {
            throw new IOException("rank " + rank + ": " + peer(prev()) + " is out of step: frame " + seq + " arrived where "
                    + recvSeq + " was expected; every worker must make the same calls in the same order");
        }
        if (bytes != recv.limit() - HEADER) {
            throw new IOException("rank " + rank + ": " + peer(prev()) + " sent a frame of " + bytes + " bytes where "
                    + (recv.limit() - HEADER) + " were expected; every worker must train the same trainable tensors "
                    + "(same model, LoRA targets and rank)");
        }
        recvSeq++;
    }

    @Override
    public void close() {
        broken = broken != null ? broken : "closed";
        for (AutoCloseable c : new AutoCloseable[] {toNext, fromPrev, selector, server}) {
            if (c != null) {
                try {
                    c.close();
                } catch (Exception ignored) {
                    // closing is best effort: the peers see the connection end either way
                }
            }
        }
    }

    @Override
    public String toString() {
        return "TcpRingReducer(rank " + rank + " of " + world + ", " + options + ")";
    }
}
