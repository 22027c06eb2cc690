package dev.lora4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Every launch that {@link Kernels} builds matches the ABI of the committed PTX, for sm_80 and
 * sm_90: the kernel exists in its module, takes as many parameters as the launch passes, and each
 * parameter has the launch argument's width and class (.u64 for pointers and long long, .u32 for
 * int, .f32, .f64) — what cuLaunchKernel relies on, since it copies each slot by the kernel's
 * parameter size. Also checks that every PTX entry is covered by some launch, and the block size
 * against the kernel's .maxntid (__launch_bounds__).
 */
class PtxSignatureTest {
    private static final Pattern ENTRY = Pattern.compile("\\.entry\\s+(\\w+)\\(([^)]*)\\)\\s*\\.maxntid\\s+(\\d+)", Pattern.DOTALL);
    private static final Pattern PARAM = Pattern.compile("\\.param\\s+\\.(\\w+)\\s+\\w+");

    private record Big(long byteSize) implements KernelBuffer {
    }

    static List<Launch> everyLaunch() {
        KernelBuffer b = new Big(1L << 40);
        FrozenWeight.Quant4 q4 = new FrozenWeight.Quant4(b, b, null, null, null, 0f, b, 64, 0, 64 * 64);
        FrozenWeight.Quant4 q4dq = new FrozenWeight.Quant4(b, null, b, b, b, 0.1f, b, 64, 256, 64 * 64);
        FrozenWeight.Bf16 bf = new FrozenWeight.Bf16(b, 64 * 64);
        List<Launch> all = new ArrayList<>();
        all.add(Kernels.matmulF32(b, b, b, 64, 64, 64, 64, 64, 64, false, true, 1f, 0f));
        all.add(Kernels.matmulBf16(b, b, b, 64, 64, 64, 64, 64, 64, true, false, 1f, 0f));
        all.add(Kernels.dequant4(b, q4, false));
        all.add(Kernels.dequant4(b, q4dq, true));
        all.add(Kernels.gemm4(b, b, q4dq, 64, 64, 64, true, 1f, 0f));
        all.addAll(Kernels.loraForward(b, b, b, bf, b, b, 64, 64, 64, 8, 2f));
        all.addAll(Kernels.loraForward(b, b, b, q4, b, b, 64, 64, 64, 8, 2f));
        all.addAll(Kernels.loraBackward(b, b, b, b, b, b, b, q4dq, b, b, 64, 64, 64, 8, 2f));
        all.add(Kernels.rmsNormForward(b, b, b, b, 4, 64, 1e-5f));
        all.addAll(Kernels.rmsNormBackward(b, b, b, b, b, b, 4, 64));
        all.add(Kernels.rope(b, b, b, b, 1, 4, 2, 64, 0, false));
        all.add(Kernels.swigluForward(b, b, b, 100));
        all.add(Kernels.swigluBackward(b, b, b, b, b, 100));
        all.add(Kernels.embedding(b, b, false, b, 4, 64, 100));
        all.add(Kernels.embedding(b, b, true, b, 4, 64, 100));
        all.add(Kernels.embeddingBackward(b, b, b, 4, 64, 100));
        all.add(Kernels.attentionForward(b, b, b, b, b, 1, 16, 4, 2, 64, 0));
        all.addAll(Kernels.attentionBackward(b, b, b, b, b, b, b, b, b, b, 1, 16, 4, 2, 64, 0));
        all.addAll(Kernels.crossEntropyForward(b, b, b, b, b, b, 4, 100));
        all.add(Kernels.crossEntropyBackward(b, b, b, b, b, b, 4, 100));
        all.add(Kernels.frozenLinear(b, b, q4, 64, 64, 64, true, 0f));
        all.add(Kernels.crossEntropyRows(b, b, b, b, 4, 100));
        all.add(Kernels.crossEntropyMean(b, b, b, b, 4));
        all.add(Kernels.add(b, b, b, 100));
        all.add(Kernels.fill(b, 0f, 100));
        all.add(Kernels.random(b, false, 1f, 1, 100));
        all.add(Kernels.random(b, true, 1f, 1, 100));
        all.add(Kernels.randomBytes(b, 1, 100));
        all.add(Kernels.adamW(b, b, b, b, 100, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1));
        all.add(Kernels.adamW(b, b, b, b, 100, 0.99f, 0.9f, 0.999f, 0.1f, 0.001f, 1e-3f, 0.03, 1e-8));
        // ops.cu: the rest of the Backend SPI
        all.add(Kernels.rmsNormForward(b, b, b, b, 4, 64, 1e-5f, 1f));
        all.addAll(Kernels.rmsNormBackward(b, b, b, b, b, 1f, b, 4, 64));
        all.add(Kernels.sgd(b, b, b, 100, 0.1f, 0.9f, 1f, 0f, true, false));
        all.add(Kernels.strided(b, new int[] {1, 8}, b, true, new int[] {8, 1}, 0f, new int[] {8, 8}));
        all.add(Kernels.strided(b, new int[] {1}, null, false, null, 2f, new int[] {8}));
        for (Kernels.Ew op : Kernels.Ew.values()) {
            all.add(Kernels.elementwise(op, b, b, b, 100, 0.5f, 0));
        }
        all.add(Kernels.gluBackward(b, b, b, b, b, 100, 0));
        all.add(Kernels.addRow(b, b, b, 4, 64));
        all.add(Kernels.sumRows(b, b, 4, 64));
        all.addAll(Kernels.reduce(b, b, b, b, 100, Kernels.Reduction.WEIGHTED_SUM));
        all.add(Kernels.softmax(b, b, 4, 100));
        all.add(Kernels.softmaxBackward(b, b, b, 4, 100));
        all.add(Kernels.crossEntropyBackward(b, b, b, b, 4, 100, -100, 0.5f, false));
        all.add(Kernels.ropePartial(b, b, b, b, 1, 4, 2, 64, 32, 0, false));
        all.add(Kernels.layerNormForward(b, b, b, b, b, b, 4, 64, 1e-5f));
        all.addAll(Kernels.layerNormBackward(b, b, b, b, b, b, b, b, 4, 64));
        all.add(Kernels.attentionForward(b, b, b, b, b, 1, 16, 4, 2, 64, 0, 0.5f));
        return all;
    }

    private static String ptx(String arch, String module) throws IOException {
        try (InputStream in = CudaContext.class.getResourceAsStream("ptx/" + arch + "/" + module + ".ptx")) {
            assertNotNull(in, "PTX resource ptx/" + arch + "/" + module + ".ptx");
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII);
        }
    }

    private static String ptxType(KernelArgs.Kind kind) {
        return switch (kind) {
            case POINTER, LONG -> "u64";
            case INT -> "u32";
            case FLOAT -> "f32";
            case DOUBLE -> "f64";
        };
    }

    @Test
    void launchesMatchTheCompiledKernels() throws IOException {
        for (String arch : new String[] {"sm_80", "sm_90"}) {
            Set<String> covered = new HashSet<>();
            Set<String> modules = new HashSet<>();
            for (Launch l : everyLaunch()) {
                modules.add(l.module());
                Matcher m = ENTRY.matcher(ptx(arch, l.module()));
                boolean found = false;
                while (m.find()) {
                    if (!m.group(1).equals(l.kernel())) {
                        continue;
                    }
                    found = true;
                    List<String> params = new ArrayList<>();
                    Matcher p = PARAM.matcher(m.group(2));
                    while (p.find()) {
                        params.add(p.group(1));
                    }
                    List<KernelArgs.Arg> args = l.args().list();
                    assertEquals(params.size(), args.size(), arch + " " + l.kernel() + ": parameter count");
                    for (int i = 0; i < args.size(); i++) {
                        assertEquals(params.get(i), ptxType(args.get(i).kind()), arch + " " + l.kernel() + " parameter " + i);
                    }
                    assertTrue(l.threads() <= Integer.parseInt(m.group(3)), l.kernel() + ": block exceeds __launch_bounds__");
                    covered.add(l.kernel());
                }
                assertTrue(found, arch + ": no entry " + l.kernel() + " in module " + l.module());
            }
            for (String module : modules) {
                Matcher m = ENTRY.matcher(ptx(arch, module));
                while (m.find()) {
                    assertTrue(covered.contains(m.group(1)), arch + ": kernel " + m.group(1) + " has no launch in Kernels");
                }
            }
        }
    }
}
