package dev.lora4j.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

class QuantMapsTest {

    private static float[] fixtureNf4() throws Exception {
        JsonNode code = TestFixtures.nf4Reference().get("nf4_code");
        float[] out = new float[code.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) code.get(i).asDouble();
        }
        return out;
    }

    @Test
    void nf4DerivedFromNormalQuantilesMatchesBitsandbytesWithinOneUlp() throws Exception {
        float[] published = fixtureNf4();
        float[] derived = QuantMaps.deriveNf4();
        assertEquals(16, published.length);
        for (int i = 0; i < 16; i++) {
            int ulps = Math.abs(Float.floatToIntBits(derived[i]) - Float.floatToIntBits(published[i]));
            int index = i;
            assertTrue(ulps <= 1, () -> "code " + index + ": derived " + derived[index] + " vs published " + published[index]
                    + " (" + ulps + " ulps)");
        }
    }

    @Test
    void nf4TableIsThePublishedOne() throws Exception {
        assertArrayEquals(fixtureNf4(), QuantMaps.nf4());
        assertArrayEquals(fixtureNf4(), QuantType.NF4.code());
    }

    @Test
    void normalMapHas256SortedValuesWithZerosInTheMiddle() {
        float[] map = QuantMaps.createNormalMap(QuantMaps.NF4_OFFSET, true);
        assertEquals(256, map.length);
        for (int i = 1; i < 256; i++) {
            assertTrue(map[i - 1] <= map[i], "sorted at " + i);
        }
        assertEquals(-1f, map[0]);
        assertEquals(1f, map[255]);
        for (int i = 7; i < 248; i++) {
            assertEquals(0f, map[i], "padding zero at " + i);
        }
        float[] symmetric = QuantMaps.createNormalMap(QuantMaps.NF4_OFFSET, false);
        for (int i = 0; i < 7; i++) {
            assertEquals(-symmetric[255 - i], symmetric[i], "without the extra value the map is symmetric");
        }
    }

    @Test
    void fp4TableIsSignMagnitudeOverTwelve() {
        float[] fp4 = QuantMaps.fp4();
        float[] magnitudes = {0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f};
        for (int i = 0; i < 8; i++) {
            assertEquals(magnitudes[i] / 12f, fp4[i]);
            assertEquals(-(magnitudes[i] / 12f), fp4[i + 8]);
        }
        assertEquals(Float.floatToIntBits(-0f), Float.floatToIntBits(fp4[8]), "code 8 is negative zero");
        assertEquals(1f, fp4[3]);
        assertEquals(-1f, fp4[11]);
    }

    @Test
    void dynamicMapIsBitsandbytesSignedEightBitMap() {
        float[] map = QuantMaps.dynamicSigned();
        assertEquals(256, map.length);
        for (int i = 1; i < 256; i++) {
            assertTrue(map[i - 1] < map[i], "strictly increasing at " + i);
        }
        // 127 negative values, zero, 127 positive values below one, and one
        assertEquals(0f, map[127]);
        assertEquals(1f, map[255]);
        for (int i = 0; i < 127; i++) {
            assertEquals(-map[254 - i], map[i], "symmetric at " + i);
        }
        // the largest decade holds 64 midpoints of linspace(0.1, 1, 65): (0.1 + 0.1140625)/2 .. (0.9859375 + 1)/2
        assertEquals(0.99296874f, map[254]);
        assertEquals(0.10703125f, map[254 - 63], 1e-7f);
        // the smallest values are 1e-6 times the midpoint of linspace(0.1, 1, 2)
        assertEquals(0.55f * 1e-6f, map[128], 1e-12f);
    }

    @Test
    void torchLinspaceCountsDownFromTheEndInItsSecondHalf() {
        float[] v = QuantMaps.torchLinspace(0f, 1f, 5);
        assertArrayEquals(new float[] {0f, 0.25f, 0.5f, 0.75f, 1f}, v);
        float[] w = QuantMaps.torchLinspace(0.9677083f, 0.5f, 9);
        assertEquals(0.5f, w[8]);
        assertEquals(0.9677083f, w[0]);
    }
}
