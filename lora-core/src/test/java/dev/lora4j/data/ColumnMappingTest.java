package dev.lora4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class ColumnMappingTest {

    @Test
    void parsesAllFieldsAndRoundTrips() {
        ColumnMapping m = ColumnMapping.parse(" instruction = question , input=context,output=answer");
        assertEquals(new ColumnMapping("question", "context", "answer"), m);
        assertEquals("instruction=question,input=context,output=answer", m.toString());
        assertEquals(m, ColumnMapping.parse(m.toString()));
    }

    @Test
    void inputIsOptional() {
        ColumnMapping m = ColumnMapping.parse("output=a,instruction=q");
        assertNull(m.input());
        assertTrue(m.inputKey().isEmpty());
        assertEquals("instruction=q,output=a", m.toString());
    }

    @Test
    void rejectsBadSpecsNamingTheProblem() {
        assertMessage("instruction=q", "does not map output");
        assertMessage("instruction=q,answer=a", "unknown field \"answer\"");
        assertMessage("instruction=q,output=a,output=b", "output is mapped twice");
        assertMessage("instruction=q,output=", "output has no source key");
        assertMessage("instruction=q,output", "entry \"output\" is not field=sourceKey");
        assertMessage("  ", "column mapping is empty");
    }

    private static void assertMessage(String spec, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ColumnMapping.parse(spec));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }
}
