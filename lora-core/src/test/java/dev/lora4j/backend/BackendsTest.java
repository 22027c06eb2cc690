package dev.lora4j.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class BackendsTest {
    private String saved;

    @BeforeEach
    void saveProperty() {
        saved = System.getProperty(Backends.PROPERTY);
    }

    @AfterEach
    void restoreProperty() {
        if (saved == null) {
            System.clearProperty(Backends.PROPERTY);
        } else {
            System.setProperty(Backends.PROPERTY, saved);
        }
    }

    @Test
    void propertySelectsScalar() {
        System.setProperty(Backends.PROPERTY, "scalar");
        assertSame(Backends.scalar(), Backends.selectFromProperty());
        System.setProperty(Backends.PROPERTY, " Scalar ");
        assertSame(Backends.scalar(), Backends.selectFromProperty());
    }

    @Test
    void propertySelectsVectorWhenTheModuleIsPresent() {
        assumeTrue(ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent(),
                "jdk.incubator.vector is not enabled; skipping");
        System.setProperty(Backends.PROPERTY, "vector");
        Backend chosen = Backends.selectFromProperty();
        assertEquals("vector", chosen.name());
        assertSame(Backends.vector().orElseThrow(), chosen);
    }

    @Test
    void vectorRequestWithoutTheModuleExplainsTheFix() {
        assumeTrue(ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty(),
                "jdk.incubator.vector is enabled in this JVM; the refusal cannot be observed");
        System.setProperty(Backends.PROPERTY, "vector");
        IllegalStateException e = assertThrows(IllegalStateException.class, Backends::selectFromProperty);
        assertTrue(e.getMessage().contains("--add-modules jdk.incubator.vector"), e.getMessage());
    }

    @Test
    void unknownNameListsTheChoices() {
        System.setProperty(Backends.PROPERTY, "tpu");
        IllegalStateException e = assertThrows(IllegalStateException.class, Backends::selectFromProperty);
        assertEquals("-Dlora4j.backend=tpu names no backend; available: [scalar, vector, test-refusing, test-delegating]"
                + " (device backends appear when their module, e.g. lora-cuda, is on the class path)", e.getMessage());
    }

    @Test
    void propertySelectsAServiceLoaderProvider() {
        System.setProperty(Backends.PROPERTY, "test-delegating");
        assertEquals("test-delegating", Backends.selectFromProperty().name());
    }

    @Test
    void requestedProviderThatRefusesGivesReasonAndFix() {
        System.setProperty(Backends.PROPERTY, "test-refusing");
        IllegalStateException e = assertThrows(IllegalStateException.class, Backends::selectFromProperty);
        assertEquals("-Dlora4j.backend=test-refusing: that backend cannot start: no test device is attached; fix that,"
                + " or unset lora4j.backend to pick automatically", e.getMessage());
    }

    /** test-refusing (1000) refuses; vector (10) wins when enabled, else test-delegating (5) beats scalar (0). */
    @Test
    void automaticChoiceFollowsPriorityAndSkipsRefusals() {
        System.clearProperty(Backends.PROPERTY);
        Backend chosen = Backends.selectFromProperty();
        assertEquals(Backends.vector().isPresent() ? "vector" : "test-delegating", chosen.name());
        assertSame(Backends.get(), Backends.get());
    }
}
