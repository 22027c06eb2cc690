package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A {@link KernelLauncher} over host buffers that runs its launches in the host-emulation driver:
 * upload arrays, queue launches (from {@link Kernels}), {@link #run()}, read the buffers back.
 */
final class HostDevice implements TestDevice {
    private static final int RUN_MINUTES = 5;

    /** A host buffer; its contents are replaced by the driver's output after {@link #run()}. */
    static final class Buf implements TestDevice.Buf {
        final int index;
        byte[] bytes;

        Buf(int index, byte[] bytes) {
            this.index = index;
            this.bytes = bytes;
        }

        @Override
        public long byteSize() {
            return bytes.length;
        }

        @Override
        public byte[] raw() {
            return bytes;
        }
    }

    private final List<Buf> buffers = new ArrayList<>();
    private final List<Launch> launches = new ArrayList<>();
    private final Map<Buf, Boolean> known = new IdentityHashMap<>();

    @Override
    public Buf bytes(byte[] data) {
        Buf b = new Buf(buffers.size(), data.clone());
        buffers.add(b);
        known.put(b, true);
        return b;
    }

    static int bf16Bits(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) {
            return (u >>> 16) | 0x40;
        }
        return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    }

    static float bf16Round(float f) {
        return Float.intBitsToFloat(bf16Bits(f) << 16);
    }

    @Override
    public void launch(Launch launch) {
        for (KernelArgs.Arg a : launch.args().list()) {
            Object v = a.value() instanceof BufferSlice sl ? sl.base() : a.value();
            if (a.kind() == KernelArgs.Kind.POINTER && v != null && !known.containsKey(v)) {
                throw new IllegalArgumentException(launch + ": a buffer that does not belong to this device");
            }
        }
        launches.add(launch);
    }

    /** Runs the queued launches in the driver and loads every buffer's final contents. */
    @Override
    public void run() {
        Path driver = HostEmulation.driver();
        try {
            Path dir = Files.createDirectories(HostEmulation.WORK);
            Path script = Files.createTempFile(dir, "script", ".bin");
            Path output = Files.createTempFile(dir, "output", ".bin");
            try {
                Files.write(script, script());
                Process p = new ProcessBuilder(driver.toString(), script.toString(), output.toString())
                        .redirectErrorStream(true).start();
                byte[] log;
                if (!p.waitFor(RUN_MINUTES, TimeUnit.MINUTES)) {
                    p.destroyForcibly();
                    fail("host emulation did not finish in " + RUN_MINUTES + " minutes: " + launches);
                }
                log = p.getInputStream().readAllBytes();
                if (p.exitValue() != 0) {
                    fail("host emulation failed (exit " + p.exitValue() + "): " + new String(log, StandardCharsets.UTF_8));
                }
                readOutput(Files.readAllBytes(output));
            } finally {
                Files.deleteIfExists(script);
                Files.deleteIfExists(output);
            }
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException("host emulation: " + e, e);
        }
        launches.clear();
    }

    private byte[] script() {
        long size = 8;
        for (Buf b : buffers) {
            size += 8 + b.bytes.length;
        }
        size += 4 + 64L * launches.size() + 24L * launches.stream().mapToInt(l -> l.args().size()).sum();
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(size)).order(ByteOrder.LITTLE_ENDIAN);
        out.put("LCH1".getBytes(StandardCharsets.US_ASCII)).putInt(buffers.size());
        for (Buf b : buffers) {
            out.putLong(b.bytes.length).put(b.bytes);
        }
        out.putInt(launches.size());
        for (Launch l : launches) {
            byte[] name = l.kernel().getBytes(StandardCharsets.US_ASCII);
            out.putInt(name.length).put(name);
            out.putInt(l.gridX()).putInt(l.gridY()).putInt(l.gridZ()).putInt(l.threads()).putInt(1).putInt(1);
            out.putInt(l.args().size());
            for (KernelArgs.Arg a : l.args().list()) {
                out.put((byte) a.kind().letter());
                switch (a.kind()) {
                    case POINTER -> {
                        if (a.value() instanceof BufferSlice sl) {
                            out.putInt(((Buf) sl.base()).index).putLong(sl.offset());
                        } else {
                            out.putInt(a.value() == null ? -1 : ((Buf) a.value()).index).putLong(0);
                        }
                    }
                    case INT -> out.putInt((Integer) a.value());
                    case LONG -> out.putLong((Long) a.value());
                    case FLOAT -> out.putFloat((Float) a.value());
                    case DOUBLE -> out.putDouble((Double) a.value());
                    default -> throw new AssertionError(a.kind());
                }
            }
        }
        return java.util.Arrays.copyOf(out.array(), out.position());
    }

    private void readOutput(byte[] data) {
        ByteBuffer in = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        int n = in.getInt();
        if (n != buffers.size()) {
            fail("driver returned " + n + " buffers for " + buffers.size());
        }
        for (Buf b : buffers) {
            int len = Math.toIntExact(in.getLong());
            b.bytes = new byte[len];
            in.get(b.bytes);
        }
    }
}
