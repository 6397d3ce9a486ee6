package vigil.sign;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A strict JSON reader that keeps each number's literal ({@link JsonNumber}), so that a
 * message is read as Vigil reads it: objects become {@code LinkedHashMap}s (a repeated
 * key keeps its last value), arrays {@code ArrayList}s. Refuses invalid UTF-8, a byte
 * order mark, lone surrogate escapes and trailing data, as Vigil does.
 */
public final class Json {
    private static final Pattern NUMBER = Pattern.compile("-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?");

    /** A number as written in a message, kept as its literal until it is re-serialized. */
    public record JsonNumber(String literal) {}

    private final String text;
    private int at;

    private Json(String text) {
        this.text = text;
    }

    /** Parses a UTF-8 message; the result of a valid message is a {@code Map<String, Object>}. */
    public static Map<String, Object> parseObject(byte[] message) {
        try {
            String text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(message))
                    .toString();
            return parseObject(text);
        } catch (CharacterCodingException e) {
            throw new CanonicalFormException("message is not valid UTF-8");
        }
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text) {
        Json parser = new Json(text);
        parser.space();
        Object value = parser.value();
        parser.space();
        if (parser.at < text.length()) {
            throw parser.fail("data after the JSON value");
        }
        if (!(value instanceof Map)) {
            throw new CanonicalFormException("a message is a JSON object");
        }
        return (Map<String, Object>) value;
    }

    private CanonicalFormException fail(String what) {
        return new CanonicalFormException("invalid JSON at character " + at + ": " + what);
    }

    private void space() {
        while (at < text.length() && " \t\n\r".indexOf(text.charAt(at)) >= 0) {
            at++;
        }
    }

    private Object value() {
        if (at >= text.length()) {
            throw fail("expected a value");
        }
        char c = text.charAt(at);
        if (c == '{') {
            return object();
        }
        if (c == '[') {
            return array();
        }
        if (c == '"') {
            return string();
        }
        if (text.startsWith("true", at)) {
            at += 4;
            return Boolean.TRUE;
        }
        if (text.startsWith("false", at)) {
            at += 5;
            return Boolean.FALSE;
        }
        if (text.startsWith("null", at)) {
            at += 4;
            return null;
        }
        Matcher m = NUMBER.matcher(text).region(at, text.length());
        if (!m.lookingAt()) {
            throw fail("expected a value");
        }
        at = m.end();
        return new JsonNumber(m.group());
    }

    private Map<String, Object> object() {
        Map<String, Object> result = new LinkedHashMap<>();
        at++;
        space();
        if (at < text.length() && text.charAt(at) == '}') {
            at++;
            return result;
        }
        while (true) {
            space();
            if (at >= text.length() || text.charAt(at) != '"') {
                throw fail("expected a key");
            }
            String key = string();
            space();
            expect(':');
            space();
            result.put(key, value());
            space();
            char next = next();
            if (next == '}') {
                return result;
            }
            if (next != ',') {
                throw fail("expected ',' or '}'");
            }
        }
    }

    private List<Object> array() {
        List<Object> result = new ArrayList<>();
        at++;
        space();
        if (at < text.length() && text.charAt(at) == ']') {
            at++;
            return result;
        }
        while (true) {
            space();
            result.add(value());
            space();
            char next = next();
            if (next == ']') {
                return result;
            }
            if (next != ',') {
                throw fail("expected ',' or ']'");
            }
        }
    }

    private String string() {
        StringBuilder out = new StringBuilder();
        at++;
        while (true) {
            char c = next();
            if (c == '"') {
                break;
            }
            if (c < 0x20) {
                throw fail("control character in a string");
            }
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char escape = next();
            switch (escape) {
                case '"', '\\', '/' -> out.append(escape);
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'n' -> out.append('\n');
                case 'r' -> out.append('\r');
                case 't' -> out.append('\t');
                case 'u' -> {
                    int unit = 0;
                    for (int i = 0; i < 4; i++) {
                        int digit = Character.digit(next(), 16);
                        if (digit < 0) {
                            throw fail("bad escape");
                        }
                        unit = unit * 16 + digit;
                    }
                    out.append((char) unit);
                }
                default -> throw fail("bad escape");
            }
        }
        String result = out.toString();
        Canonical.checkSurrogates(result);
        return result;
    }

    private void expect(char wanted) {
        if (next() != wanted) {
            throw fail("expected '" + wanted + "'");
        }
    }

    private char next() {
        if (at >= text.length()) {
            throw fail("unexpected end");
        }
        return text.charAt(at++);
    }
}
