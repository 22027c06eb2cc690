package dev.lora4j.cuda;

import static dev.lora4j.cuda.CudaDriver.check;

import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUctx_st;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * One GPU through the driver API: its primary context (shared with any other CUDA user in the
 * process), one stream on which every launch and copy runs in order, the kernel modules loaded
 * from the PTX resources with {@code cuModuleLoadData} (sm_90 PTX on compute capability 9.x and
 * above, else the sm_80 PTX, which the driver JIT-compiles for 8.x GPUs), and a
 * {@link CachingAllocator}. Every call makes the context current on the calling thread first.
 * The stream is a blocking one, so the synchronous copies ({@code cuMemcpyHtoD/DtoH}) are ordered
 * after the launches before them.
 */
public final class CudaContext implements DeviceRuntime {
    /** Oldest compute capability the kernels run on (BF16 tensor-core wmma). */
    public static final int MIN_MAJOR = 8;

    private final int device;
    private final String name;
    private final int major;
    private final int minor;
    private final long totalMemory;
    private final CUctx_st context = new CUctx_st();
    private final CUstream_st stream = new CUstream_st();
    private final Map<String, CUmod_st> modules = new HashMap<>();
    private final Map<String, CUfunc_st> functions = new HashMap<>();
    private final CachingAllocator allocator;
    private boolean closed;

    private CudaContext(int ordinal) {
        CudaDriver.load();
        int[] count = new int[1];
        check(cudart.cuDeviceGetCount(count), "cuDeviceGetCount");
        if (count[0] == 0) {
            throw new UnsupportedOperationException("the NVIDIA driver is installed but reports no CUDA device");
        }
        if (ordinal < 0 || ordinal >= count[0]) {
            throw new IllegalArgumentException("CUDA device " + ordinal + " does not exist; devices are 0.." + (count[0] - 1));
        }
        int[] dev = new int[1];
        check(cudart.cuDeviceGet(dev, ordinal), "cuDeviceGet(" + ordinal + ")");
        this.device = dev[0];
        int[] v = new int[1];
        check(cudart.cuDeviceGetAttribute(v, cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device), "cuDeviceGetAttribute(major)");
        this.major = v[0];
        check(cudart.cuDeviceGetAttribute(v, cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device), "cuDeviceGetAttribute(minor)");
        this.minor = v[0];
        byte[] nameBytes = new byte[256];
        check(cudart.cuDeviceGetName(nameBytes, nameBytes.length, device), "cuDeviceGetName");
        String n = new String(nameBytes, java.nio.charset.StandardCharsets.UTF_8);
        this.name = n.indexOf(0) >= 0 ? n.substring(0, n.indexOf(0)) : n;
        try (SizeTPointer total = new SizeTPointer(1)) {
            check(cudart.cuDeviceTotalMem(total, device), "cuDeviceTotalMem");
            this.totalMemory = total.get();
        }
        if (major < MIN_MAJOR) {
            throw new UnsupportedOperationException(name + " has compute capability " + major + "." + minor
                    + "; the lora4j kernels need " + MIN_MAJOR + ".0 or newer (Ampere: BF16 tensor cores)");
        }
        check(cudart.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain(" + ordinal + ")");
        makeCurrent();
        check(cudart.cuStreamCreate(stream, cudart.CU_STREAM_DEFAULT), "cuStreamCreate");
        this.allocator = new CachingAllocator(this);
    }

    /** Opens device {@code ordinal}; throws UnsupportedOperationException with the reason when it cannot run the kernels. */
    public static CudaContext open(int ordinal) {
        return new CudaContext(ordinal);
    }

    void makeCurrent() {
        if (closed) {
            throw new IllegalStateException("the CUDA context of " + name + " is closed");
        }
        check(cudart.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    public String deviceName() {
        return name;
    }

    public String computeCapability() {
        return major + "." + minor;
    }

    public long totalMemory() {
        return totalMemory;
    }

    public CachingAllocator allocator() {
        return allocator;
    }

    CUstream_st stream() {
        return stream;
    }

    /** The PTX resource for a module on this device. */
    String ptxResource(String module) {
        return "ptx/sm_" + (major >= 9 ? "90" : "80") + "/" + module + ".ptx";
    }

    private synchronized CUfunc_st function(String module, String kernel) {
        String key = module + "." + kernel;
        CUfunc_st f = functions.get(key);
        if (f != null) {
            return f;
        }
        CUmod_st mod = modules.get(module);
        if (mod == null) {
            String resource = ptxResource(module);
            byte[] ptx;
            try (InputStream in = CudaContext.class.getResourceAsStream(resource)) {
                if (in == null) {
                    throw new IllegalStateException("PTX resource " + resource + " is missing from the lora-cuda jar; rebuild lora-cuda");
                }
                ptx = in.readAllBytes();
            } catch (IOException e) {
                throw new IllegalStateException("cannot read PTX resource " + resource + ": " + e, e);
            }
            mod = new CUmod_st();
            try (BytePointer image = new BytePointer(ptx.length + 1)) {
                image.put(ptx).put(ptx.length, (byte) 0); // cuModuleLoadData takes NUL-terminated PTX text
                check(cudart.cuModuleLoadData(mod, image), "cuModuleLoadData(" + resource + ")");
            }
            modules.put(module, mod);
        }
        f = new CUfunc_st();
        check(cudart.cuModuleGetFunction(f, mod, kernel), "cuModuleGetFunction(" + key + ")");
        functions.put(key, f);
        return f;
    }

    @Override
    public void launch(Launch l) {
        makeCurrent();
        CUfunc_st f = function(l.module(), l.kernel());
        try (KernelParams params = new KernelParams(l.args(), this::addressOf)) {
            check(cudart.cuLaunchKernel(f, l.gridX(), l.gridY(), l.gridZ(), l.threads(), 1, 1, 0, stream, params.array(), null),
                    "cuLaunchKernel(" + l + ")");
        }
    }

    private long addressOf(KernelBuffer b) {
        return DeviceRuntime.addressOf(b);
    }

    // ------------------------------------------------------------------ copies

    public CudaBuffer upload(float[] data, int offset, int count) {
        CudaBuffer buf = allocator.allocate(4L * count);
        try (FloatPointer host = new FloatPointer(count)) {
            host.put(data, offset, count);
            copyIn(buf, host, 4L * count);
        }
        return buf;
    }

    public CudaBuffer upload(byte[] data) {
        CudaBuffer buf = allocator.allocate(data.length);
        try (BytePointer host = new BytePointer(data)) {
            copyIn(buf, host, data.length);
        }
        return buf;
    }

    public CudaBuffer upload(int[] data) {
        CudaBuffer buf = allocator.allocate(4L * data.length);
        try (IntPointer host = new IntPointer(data)) {
            copyIn(buf, host, 4L * data.length);
        }
        return buf;
    }

    private void copyIn(CudaBuffer buf, Pointer host, long bytes) {
        makeCurrent();
        if (bytes > 0) {
            check(cudart.cuMemcpyHtoD(buf.address(), host, bytes), "cuMemcpyHtoD(" + bytes + " bytes)");
        }
    }

    /** Copies {@code count} floats from the buffer into {@code dst[offset..]}; waits for the launches before it. */
    public void download(CudaBuffer buf, float[] dst, int offset, int count) {
        makeCurrent();
        try (FloatPointer host = new FloatPointer(count)) {
            check(cudart.cuMemcpyDtoH(host, buf.address(), 4L * count), "cuMemcpyDtoH(" + 4L * count + " bytes)");
            host.get(dst, offset, count);
        }
    }

    // ------------------------------------------------------------------ DeviceRuntime

    @Override
    public String describe() {
        return toString();
    }

    @Override
    public long allocate(long bytes) {
        makeCurrent();
        try (LongPointer p = new LongPointer(1)) {
            check(cudart.cuMemAlloc(p, Math.max(bytes, 1)), "cuMemAlloc(" + bytes + " bytes)");
            return p.get();
        }
    }

    @Override
    public void free(long address) {
        makeCurrent();
        check(cudart.cuMemFree(address), "cuMemFree(0x" + Long.toHexString(address) + ")");
    }

    @Override
    public void upload(long address, byte[] src, int offset, int count) {
        makeCurrent();
        if (count > 0) {
            try (BytePointer host = new BytePointer(count)) {
                host.put(src, offset, count);
                check(cudart.cuMemcpyHtoD(address, host, count), "cuMemcpyHtoD(" + count + " bytes)");
            }
        }
    }

    @Override
    public void download(long address, byte[] dst, int offset, int count) {
        makeCurrent();
        if (count > 0) {
            try (BytePointer host = new BytePointer(count)) {
                check(cudart.cuMemcpyDtoH(host, address, count), "cuMemcpyDtoH(" + count + " bytes)");
                host.get(dst, offset, count);
            }
        }
    }

    @Override
    public void copy(long dstAddress, long srcAddress, long bytes) {
        makeCurrent();
        if (bytes > 0) {
            check(cudart.cuMemcpyDtoDAsync(dstAddress, srcAddress, bytes, stream), "cuMemcpyDtoDAsync(" + bytes + " bytes)");
        }
    }

    @Override
    public void synchronize() {
        makeCurrent();
        check(cudart.cuStreamSynchronize(stream), "cuStreamSynchronize");
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        makeCurrent();
        allocator.close();
        for (CUmod_st m : modules.values()) {
            check(cudart.cuModuleUnload(m), "cuModuleUnload");
        }
        check(cudart.cuStreamDestroy(stream), "cuStreamDestroy");
        check(cudart.cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease");
        closed = true;
    }

    @Override
    public String toString() {
        return name + " (compute capability " + major + "." + minor + ", " + totalMemory / (1 << 20) + " MiB)";
    }
}
