package dev.lora4j.cuda;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A {@link DeviceRuntime} whose device is the g++ host emulation of the kernels running as one
 * long-lived child process ({@code driver --serve -}, see src/test/cuda-host/driver.cpp): buffers
 * are allocated in the child and stay there between operations, launches run there in order, and
 * only {@link #upload}/{@link #download} move bytes across the pipe, as a GPU's copies would. The
 * child checks every pointer against its live allocations and every argument kind against the C
 * signature; a failure ends it, and the next call reports its stderr.
 */
final class EmulatedRuntime implements DeviceRuntime {
    private final Process process;
    private final OutputStream out;
    private final DataInputStream in;
    private final ByteBuffer scratch = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
    private long launches;
    private boolean closed;

    EmulatedRuntime(Path driver) {
        try {
            process = new ProcessBuilder(driver.toString(), "--serve", "-").redirectError(ProcessBuilder.Redirect.PIPE).start();
        } catch (IOException e) {
            throw new UnsupportedOperationException("cannot start the CUDA host emulation " + driver + ": " + e, e);
        }
        out = new BufferedOutputStream(process.getOutputStream(), 1 << 16);
        in = new DataInputStream(new BufferedInputStream(process.getInputStream(), 1 << 16));
        Runtime.getRuntime().addShutdownHook(new Thread(process::destroyForcibly));
    }

    /** Kernel launches run so far. */
    synchronized long launches() {
        return launches;
    }

    @Override
    public String describe() {
        return "CUDA host emulation (pid " + process.pid() + ")";
    }

    private void send(byte op, long... values) throws IOException {
        scratch.clear();
        scratch.put(op);
        for (long v : values) {
            scratch.putLong(v);
        }
        out.write(scratch.array(), 0, scratch.position());
    }

    private long readLong() throws IOException {
        byte[] b = new byte[8];
        in.readFully(b);
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    private RuntimeException failure(IOException e) {
        String err = "";
        try {
            process.waitFor(5, java.util.concurrent.TimeUnit.SECONDS);
            InputStream es = process.getErrorStream();
            err = new String(es.readAllBytes(), StandardCharsets.UTF_8).trim();
        } catch (IOException | InterruptedException ignored) {
            // report what we have
        }
        return new IllegalStateException("CUDA host emulation failed" + (process.isAlive() ? "" : " (exit "
                + process.exitValue() + ")") + ": " + (err.isEmpty() ? e.toString() : err), e);
    }

    @Override
    public synchronized long allocate(long bytes) {
        try {
            send((byte) 'A', bytes);
            out.flush();
            return readLong();
        } catch (IOException e) {
            throw failure(e);
        }
    }

    @Override
    public synchronized void free(long address) {
        if (closed) {
            return;
        }
        try {
            send((byte) 'F', address);
        } catch (IOException e) {
            throw failure(e);
        }
    }

    @Override
    public synchronized void upload(long address, byte[] src, int offset, int count) {
        try {
            send((byte) 'U', address, count);
            out.write(src, offset, count);
        } catch (IOException e) {
            throw failure(e);
        }
    }

    @Override
    public synchronized void download(long address, byte[] dst, int offset, int count) {
        try {
            send((byte) 'D', address, count);
            out.flush();
            in.readFully(dst, offset, count);
        } catch (IOException e) {
            throw failure(e);
        }
    }

    @Override
    public synchronized void copy(long dstAddress, long srcAddress, long bytes) {
        try {
            send((byte) 'C', dstAddress, srcAddress, bytes);
        } catch (IOException e) {
            throw failure(e);
        }
    }

    @Override
    public synchronized void launch(Launch l) {
        byte[] name = l.kernel().getBytes(StandardCharsets.US_ASCII);
        ByteBuffer b = ByteBuffer.allocate(64 + name.length + 16 * l.args().size()).order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 'L').putInt(name.length).put(name);
        b.putInt(l.gridX()).putInt(l.gridY()).putInt(l.gridZ()).putInt(l.threads()).putInt(1).putInt(1);
        b.putInt(l.args().size());
        for (KernelArgs.Arg a : l.args().list()) {
            b.put((byte) a.kind().letter());
            switch (a.kind()) {
                case POINTER -> b.putLong(a.value() == null ? 0 : DeviceRuntime.addressOf((KernelBuffer) a.value()));
                case INT -> b.putInt((Integer) a.value());
                case LONG -> b.putLong((Long) a.value());
                case FLOAT -> b.putFloat((Float) a.value());
                case DOUBLE -> b.putDouble((Double) a.value());
                default -> throw new AssertionError(a.kind());
            }
        }
        try {
            out.write(b.array(), 0, b.position());
            launches++;
        } catch (IOException e) {
            throw failure(e);
        }
    }

    @Override
    public synchronized void synchronize() {
        try {
            out.write('S');
            out.flush();
            if (in.readByte() != 'k') {
                throw new IllegalStateException("CUDA host emulation: unexpected reply to synchronize");
            }
        } catch (IOException e) {
            throw failure(e);
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            out.write('Q');
            out.flush();
        } catch (IOException ignored) {
            // the child is gone already
        }
        process.destroy();
    }
}
