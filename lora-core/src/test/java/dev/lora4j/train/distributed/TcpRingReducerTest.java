package dev.lora4j.train.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The ring on loopback: sums in both orders over awkward sizes, allGather, and the failures a peer can cause. */
class TcpRingReducerTest {

    private static float[] contribution(int rank, int n) {
        SplittableRandom rng = new SplittableRandom(1000 + rank);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rng.nextGaussian() * Math.pow(10, rng.nextInt(-3, 4)));
        }
        return v;
    }

    @Test
    void rankOrderSumIsTheSequentialSumBitForBitOnEveryRank() throws Exception {
        for (int world : new int[] {1, 2, 3, 4}) {
            for (int n : new int[] {1, 7, 31, 207}) {
                float[] expected = new float[n];
                for (int r = 0; r < world; r++) {
                    float[] c = contribution(r, n);
                    for (int i = 0; i < n; i++) {
                        expected[i] = r == 0 ? c[i] : expected[i] + c[i];
                    }
                }
                List<float[]> got = Workers.values(Workers.run(world, Workers.fast(TcpRingReducer.Order.RANK_ORDER), red -> {
                    float[] v = contribution(red.rank(), n);
                    red.sum(v);
                    return v;
                }));
                for (int r = 0; r < world; r++) {
                    assertArrayEquals(expected, got.get(r), "world " + world + ", n " + n + ", rank " + r);
                }
            }
        }
    }

    @Test
    void ringSumIsTheSameOnEveryRankAndWithinSummationNoise() throws Exception {
        for (int world : new int[] {2, 3, 4}) {
            for (int n : new int[] {1, 7, 31, 207}) {
                double[] exact = new double[n];
                double[] magnitude = new double[n];
                for (int r = 0; r < world; r++) {
                    float[] c = contribution(r, n);
                    for (int i = 0; i < n; i++) {
                        exact[i] += c[i];
                        magnitude[i] += Math.abs(c[i]);
                    }
                }
                List<float[]> got = Workers.values(Workers.run(world, Workers.fast(TcpRingReducer.Order.RING), red -> {
                    float[] v = contribution(red.rank(), n);
                    red.sum(v);
                    return v;
                }));
                for (int r = 1; r < world; r++) {
                    assertArrayEquals(got.get(0), got.get(r), "every rank gets the same bits (world " + world + ")");
                }
                for (int i = 0; i < n; i++) {
                    // N-1 float additions: |error| <= (N-1) u Σ|v|, u = 2^-24
                    double bound = (world - 1) * Math.ulp(1f) / 2 * magnitude[i] * 1.0001;
                    assertTrue(Math.abs(got.get(0)[i] - exact[i]) <= bound, "element " + i + ": " + got.get(0)[i]
                            + " vs exact " + exact[i] + " (bound " + bound + ")");
                }
            }
        }
    }

    @Test
    void allGatherReturnsEveryRanksBytesInRankOrder() throws Exception {
        List<byte[][]> got = Workers.values(Workers.run(3, Workers.fast(TcpRingReducer.Order.RING),
                red -> red.allGather(new byte[] {(byte) red.rank(), 7, (byte) (10 * red.rank())})));
        for (byte[][] all : got) {
            for (int r = 0; r < 3; r++) {
                assertArrayEquals(new byte[] {(byte) r, 7, (byte) (10 * r)}, all[r]);
            }
        }
    }

    @Test
    void aPeerThatStopsFailsTheOthersNamingIt() throws Exception {
        for (TcpRingReducer.Order order : TcpRingReducer.Order.values()) {
            List<Workers.Outcome<float[]>> out = Workers.run(3, Workers.fast(order), red -> {
                float[] v = contribution(red.rank(), 5000);
                red.sum(v);
                if (red.rank() == 2) {
                    throw new IllegalStateException("worker 2 dies"); // its reducer closes, as a dead process's sockets do
                }
                red.sum(v);
                return v;
            });
            assertEquals("worker 2 dies", out.get(2).error().getMessage());
            // each survivor fails naming the neighbour it lost; the first to notice names rank 2
            String m0 = assertInstanceOf(UncheckedIOException.class, out.get(0).error(), order.name()).getMessage();
            String m1 = assertInstanceOf(UncheckedIOException.class, out.get(1).error(), order.name()).getMessage();
            assertTrue(m0.startsWith("rank 0: ") && m1.startsWith("rank 1: "), m0 + " / " + m1);
            assertTrue(m0.contains("rank 2 (/127.0.0.1:") || m1.contains("rank 2 (/127.0.0.1:"), m0 + " / " + m1);
        }
    }

    @Test
    void aPeerThatHangsTimesOutNamingIt() throws Exception {
        TcpRingReducer.Options options = Workers.fast(TcpRingReducer.Order.RING).ioTimeout(Duration.ofMillis(400));
        List<Workers.Outcome<float[]>> out = Workers.run(2, options, red -> {
            float[] v = new float[100];
            if (red.rank() == 1) {
                Thread.sleep(1000); // stuck, connections open
                return v;
            }
            red.sum(v);
            return v;
        });
        assertNull(out.get(1).error());
        String message = out.get(0).error().getMessage();
        assertTrue(message.contains("timed out after PT0.4S") && message.contains("rank 1 (/127.0.0.1:"), message);
    }

    @Test
    void garbageFromAPeerIsAClearError() throws Exception {
        try (ServerSocketChannel mine = TcpRingReducer.listen(new InetSocketAddress("127.0.0.1", 0));
                ServerSocket fake = new ServerSocket(0, 5, java.net.InetAddress.getByName("127.0.0.1"))) {
            List<InetSocketAddress> peers = List.of((InetSocketAddress) mine.socket().getLocalSocketAddress(),
                    new InetSocketAddress("127.0.0.1", fake.getLocalPort()));
            Thread impostor = new Thread(() -> {
                try (Socket s = new Socket("127.0.0.1", peers.get(0).getPort())) {
                    OutputStream o = s.getOutputStream();
                    // a correct hello as rank 1 of 2, then bytes that are not a frame
                    o.write(ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(0x4c34484c).putInt(1).putInt(2).array());
                    o.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
                    o.flush();
                    Thread.sleep(2000);
                } catch (Exception ignored) {
                    // the reducer under test closes first
                }
            });
            impostor.start();
            try (TcpRingReducer red = TcpRingReducer.connect(mine, peers, 0, Workers.fast(TcpRingReducer.Order.RING))) {
                UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> red.sum(new float[64]));
                assertTrue(e.getMessage().contains("rank 1 (/127.0.0.1:" + fake.getLocalPort() + ") sent garbage"),
                        e.getMessage());
                IllegalStateException again = assertThrows(IllegalStateException.class, () -> red.sum(new float[64]));
                assertTrue(again.getMessage().contains("failed earlier"), again.getMessage());
            }
            impostor.interrupt();
            impostor.join();
        }
    }

    @Test
    void aPeerThatNeverStartsIsNamedAfterTheConnectTimeout() {
        try (ServerSocketChannel mine = TcpRingReducer.listen(new InetSocketAddress("127.0.0.1", 0))) {
            // a port that nobody listens on: bind one, note it, close it
            int dead;
            try (ServerSocket s = new ServerSocket(0)) {
                dead = s.getLocalPort();
            }
            List<InetSocketAddress> peers = List.of((InetSocketAddress) mine.socket().getLocalSocketAddress(),
                    new InetSocketAddress("127.0.0.1", dead));
            UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> TcpRingReducer.connect(mine, peers, 0,
                    Workers.fast(TcpRingReducer.Order.RING).connectTimeout(Duration.ofMillis(300))));
            assertTrue(e.getMessage().contains("could not connect to rank 1 (/127.0.0.1:" + dead + ")"), e.getMessage());
        } catch (java.io.IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void badArgumentsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TcpRingReducer.connect(List.of(new InetSocketAddress("127.0.0.1", 1)), 1, TcpRingReducer.Options.defaults()));
        assertEquals("rank must be in [0, 1) for 1 peers, was 1", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TcpRingReducer.Options.defaults().chunkBytes(6));
        assertTrue(e.getMessage().startsWith("chunkBytes must be a positive multiple of 4, was 6"), e.getMessage());
    }
}
