package dev.lora4j.autograd;

import dev.lora4j.backend.Backend;
import dev.lora4j.tensor.Tensor;

/**
 * Row lookup: out[n] = table[ids[n]]. The table may be any storage (a frozen BF16 embedding is
 * widened row by row). Backward scatters: dTable[ids[n]] += dOut[n] (only when the table is
 * trainable).
 */
public final class Embedding {
    private Embedding() {
    }

    /** @return [ids.length, C] for a table [V, C] */
    public static Tensor lookup(Tensor table, int[] ids) {
        int vocab = table.dim(0);
        int c = table.dim(1);
        for (int n = 0; n < ids.length; n++) {
            int id = ids[n];
            if (id < 0 || id >= vocab) {
                throw new IllegalArgumentException("embedding: token id " + id + " at position " + n
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        Backend be = Autograd.backendFor("embedding", table);
        Tensor out = be.empty(ids.length, c);
        be.gather(out, table, ids);
        return Autograd.record(out, "embedding", new Tensor[] {table}, dOut -> be.scatterAdd(table.gradBuffer(), dOut, ids));
    }
}
