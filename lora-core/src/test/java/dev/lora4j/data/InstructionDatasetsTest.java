package dev.lora4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lora4j.data.InstructionDatasets.Conversations;
import dev.lora4j.testing.Fixtures;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InstructionDatasetsTest {
    @TempDir
    Path dir;

    @Test
    void readsTheAlpacaDemoFixture() throws IOException {
        Path file = Fixtures.require("alpaca").resolve("alpaca_en_demo.json");
        List<InstructionRecord> records = InstructionDatasets.load(file);
        assertEquals(999, records.size());
        assertEquals(412, records.stream().filter(InstructionRecord::hasInput).count());
        assertTrue(records.stream().noneMatch(r -> r.instruction().isEmpty() || r.output().isEmpty()));
    }

    @Test
    void alpacaJsonWithMissingInputAndNullInput() throws IOException {
        Path file = write("a.json", """
                [
                  {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
                  {"instruction": "Translate.", "input": "Hallo", "output": "Hello"},
                  {"instruction": "Say hi.", "output": "Hi"},
                  {"instruction": "Echo.", "input": null, "output": ""}
                ]
                """);
        assertEquals(List.of(new InstructionRecord("Add 2 and 3.", "", "5"), new InstructionRecord("Translate.", "Hallo", "Hello"),
                InstructionRecord.of("Say hi.", "Hi"), InstructionRecord.of("Echo.", "")), InstructionDatasets.load(file));
    }

    @Test
    void jsonLinesAllowBlankLinesAndCrLf() throws IOException {
        Path file = write("a.jsonl", "{\"instruction\":\"A\",\"input\":\"x\",\"output\":\"1\"}\r\n\r\n   \n"
                + "{\"instruction\":\"B\",\"output\":\"2\"}\n");
        assertEquals(List.of(new InstructionRecord("A", "x", "1"), InstructionRecord.of("B", "2")), InstructionDatasets.load(file));
    }

    @Test
    void dollyKeysAreDetected() throws IOException {
        Path file = write("dolly.jsonl", """
                {"instruction": "When did it open?", "context": "The museum opened in 1902.", "response": "1902", "category": "closed_qa"}
                {"instruction": "Name a fruit.", "context": "", "response": "Apple", "category": "brainstorming"}
                """);
        assertEquals(List.of(new InstructionRecord("When did it open?", "The museum opened in 1902.", "1902"),
                InstructionRecord.of("Name a fruit.", "Apple")), InstructionDatasets.load(file));
    }

    @Test
    void limaConversationsFirstTurnByDefaultOrAllTurns() throws IOException {
        Path file = write("lima.json", """
                [
                  {"conversations": ["Hi?", "Hello!"], "source": "stackexchange"},
                  {"conversations": ["Q1", "A1", "Q2", "A2", "Q3"]}
                ]
                """);
        assertEquals(List.of(InstructionRecord.of("Hi?", "Hello!"), InstructionRecord.of("Q1", "A1")), InstructionDatasets.load(file));
        assertEquals(List.of(InstructionRecord.of("Hi?", "Hello!"), InstructionRecord.of("Q1", "A1"), InstructionRecord.of("Q2", "A2")),
                InstructionDatasets.load(file, Conversations.ALL_TURNS));
    }

    @Test
    void csvWithQuotedCommasQuotesAndMultiLineFields() throws IOException {
        Path file = write("a.csv", "instruction,input,output\n"
                + "\"List a, b and c.\",,\"a, b, c\"\n"
                + "\n"
                + "Write a poem.,\"about \"\"rain\"\"\",\"line one\n\nline three\"\n"
                + "Last,x,y");
        assertEquals(List.of(InstructionRecord.of("List a, b and c.", "a, b, c"),
                new InstructionRecord("Write a poem.", "about \"rain\"", "line one\n\nline three"), new InstructionRecord("Last", "x", "y")),
                InstructionDatasets.load(file));
    }

    @Test
    void columnMappingForCsvAndJson() throws IOException {
        Path csv = write("qa.csv", "id,question,answer,notes\n1,What is 2+2?,4,easy\n2,\"Capital of France, please\",Paris,\n");
        assertEquals(List.of(InstructionRecord.of("What is 2+2?", "4"), InstructionRecord.of("Capital of France, please", "Paris")),
                InstructionDatasets.load(csv, ColumnMapping.parse("instruction=question,output=answer")));
        Path json = write("qa.json", "[{\"q\": \"Why?\", \"ctx\": \"Because.\", \"a\": \"So.\"}, {\"q\": \"How?\", \"a\": \"Thus.\"}]");
        assertEquals(List.of(new InstructionRecord("Why?", "Because.", "So."), InstructionRecord.of("How?", "Thus.")),
                InstructionDatasets.load(json, ColumnMapping.parse("instruction=q,input=ctx,output=a")));
    }

    @Test
    void utf8WithBomAndNonAscii() throws IOException {
        Path file = dir.resolve("bom.jsonl");
        Files.write(file, ("\uFEFF{\"instruction\":\"Übersetze: Straße\",\"output\":\"street ✓\"}\n").getBytes(StandardCharsets.UTF_8));
        assertEquals(List.of(InstructionRecord.of("Übersetze: Straße", "street ✓")), InstructionDatasets.load(file));
    }

    // ---- bad input: every message names the file and the line/record ----

    @Test
    void missingFile() {
        Path file = dir.resolve("nope.json");
        assertError(file, file + ": dataset file not found");
    }

    @Test
    void unknownExtension() throws IOException {
        Path file = write("data.txt", "x");
        assertError(file, file + ": unknown dataset format", ".json", ".jsonl", ".csv");
    }

    @Test
    void notUtf8() throws IOException {
        Path file = dir.resolve("latin1.json");
        Files.write(file, "[{\"instruction\": \"a\",\n \"output\": \"caf\u00e9\"}]".getBytes(StandardCharsets.ISO_8859_1));
        assertError(file, file + ": not valid UTF-8: byte 0xE9 at offset 37 (line 2)");
    }

    @Test
    void malformedJsonNamesLineAndColumn() throws IOException {
        Path file = write("bad.json", "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n  {\"instruction\": \"c\" \"output\": \"d\"}\n]");
        assertError(file, file + " record 2: malformed JSON at line 3, column 23", "was expecting comma");
    }

    @Test
    void jsonThatIsNotAnArray() throws IOException {
        Path file = write("lines.json", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\", \"output\": \"d\"}\n");
        assertError(file, file + ": expected a JSON array of records", "name it .jsonl");
        Path nested = write("nested.json", "[{\"instruction\": \"a\", \"output\": \"b\"}, [1, 2]]");
        assertError(nested, nested + " record 2 (line 1): expected a JSON object but found an array");
    }

    @Test
    void duplicateKeyIsMalformed() throws IOException {
        Path file = write("dup.json", "[{\"instruction\": \"a\", \"output\": \"b\", \"output\": \"c\"}]");
        assertError(file, file + " record 1: malformed JSON at line 1", "Duplicate field 'output'");
    }

    @Test
    void malformedJsonLineNamesTheLine() throws IOException {
        Path file = write("bad.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\n\n{\"instruction\":\"c\",\"output\":\"d\"\n");
        assertError(file, file + " line 3 (record 2): malformed JSON at column 32: Unexpected end-of-input", "[line: 1, column: 1]");
        Path twoPerLine = write("two.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"} {\"instruction\":\"c\",\"output\":\"d\"}\n");
        assertError(twoPerLine, twoPerLine + " line 1 (record 1): malformed JSON");
        Path array = write("arr.jsonl", "[1, 2]\n");
        assertError(array, array + " line 1 (record 1): expected a JSON object but found array");
    }

    @Test
    void missingFieldNamesRecordKeysAndSuggestsMapping() throws IOException {
        Path file = write("missing.json", """
                [
                  {"instruction": "a", "output": "b"},
                  {"instruction": "c", "answer": "d"}
                ]
                """);
        assertError(file, file + " record 2 (line 3): missing field \"output\"", "keys [instruction, answer]",
                "\"instruction=instruction,output=answer\"");
        Path jsonl = write("missing.jsonl", "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"prompt\":\"c\",\"output\":\"d\"}\n");
        assertError(jsonl, jsonl + " line 2 (record 2): missing field \"instruction\"", "keys [prompt, output]",
                "\"instruction=prompt,output=output\"");
    }

    @Test
    void unknownLayoutSuggestsMapping() throws IOException {
        Path file = write("qa.jsonl", "{\"question\":\"a\",\"context\":\"x\",\"answer\":\"b\"}\n");
        assertError(file, file + " line 1 (record 1): cannot tell the dataset layout from the keys [question, context, answer]",
                "\"instruction=question,input=context,output=answer\"");
    }

    @Test
    void wrongTypeAndNull() throws IOException {
        Path number = write("num.json", "[{\"instruction\": \"2+2\", \"output\": 4}]");
        assertError(number, number + " record 1 (line 1): field \"output\" must be a string but is a number (4)");
        Path nul = write("null.jsonl", "{\"instruction\": null, \"output\": \"x\"}\n");
        assertError(nul, nul + " line 1 (record 1): field \"instruction\" is null");
        Path conversation = write("conv.json", "[{\"conversations\": \"hi\"}]");
        assertError(conversation, conversation + " record 1 (line 1): field \"conversations\" must be an array of strings");
        Path oneTurn = write("one.json", "[{\"conversations\": [\"hi\", \"ho\"]}, {\"conversations\": [\"alone\"]}]");
        assertError(oneTurn, oneTurn + " record 2 (line 1): \"conversations\" has 1 turn(s)");
        Path nonString = write("turn.json", "[{\"conversations\": [\"hi\", 3]}]");
        assertError(nonString, nonString + " record 1 (line 1): \"conversations\" turn 2 must be a string but is a number");
    }

    @Test
    void emptyDatasets() throws IOException {
        Path emptyArray = write("empty.json", " [ ] ");
        assertError(emptyArray, emptyArray + ": the dataset has no records");
        Path emptyFile = write("empty2.json", "");
        assertError(emptyFile, emptyFile + ": the file is empty");
        Path blankLines = write("empty.jsonl", "\n  \n\n");
        assertError(blankLines, blankLines + ": the dataset has no records");
        Path headerOnly = write("empty.csv", "instruction,input,output\n");
        assertError(headerOnly, headerOnly + ": the dataset has no records (it has only the header row [instruction, input, output])");
    }

    @Test
    void malformedCsvRows() throws IOException {
        Path tooMany = write("many.csv", "instruction,output\na,b\nc,d,e\n");
        assertError(tooMany, tooMany + " record 2: malformed CSV at line 3, column 5", "Too many entries");
        Path tooFew = write("few.csv", "instruction,input,output\na,b,c\nd,e\n");
        assertError(tooFew, tooFew + " record 2: malformed CSV at line 3", "Not enough column values");
        Path unclosed = write("quote.csv", "instruction,output\n\"a,b\n");
        assertError(unclosed, unclosed + " record 1: malformed CSV at line 3", "Missing closing quote");
        Path duplicate = write("dupcol.csv", "instruction,output,output\na,b,c\n");
        assertError(duplicate, duplicate + " line 1: the header names column \"output\" twice");
    }

    @Test
    void mappingNamesAbsentColumnsOrKeys() throws IOException {
        Path csv = write("m.csv", "question,answer\nq,a\n");
        assertError(csv, ColumnMapping.parse("instruction=question,input=context,output=answer"),
                csv + " line 1: the header has no column \"context\"", "[question, answer]");
        Path json = write("m.json", "[{\"q\": \"x\", \"a\": \"y\"}]");
        assertError(json, ColumnMapping.parse("instruction=q,input=contxt,output=a"), json + ": no record has the input key \"contxt\"");
        assertError(json, ColumnMapping.parse("instruction=q,output=answer"), json + " record 1 (line 1): missing field \"answer\"",
                "column mapping \"instruction=q,output=answer\"");
    }

    private Path write(String name, String content) throws IOException {
        return Files.writeString(dir.resolve(name), content, StandardCharsets.UTF_8);
    }

    private static void assertError(Path file, String prefix, String... fragments) {
        assertError(file, null, prefix, fragments);
    }

    private static void assertError(Path file, ColumnMapping mapping, String prefix, String... fragments) {
        DatasetException e = assertThrows(DatasetException.class,
                () -> {
                    if (mapping == null) {
                        InstructionDatasets.load(file);
                    } else {
                        InstructionDatasets.load(file, mapping);
                    }
                });
        assertTrue(e.getMessage().startsWith(prefix), "expected the message to start with\n  " + prefix + "\nbut was\n  " + e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), "expected \"" + fragment + "\" in\n  " + e.getMessage());
        }
    }
}
