package vigil.sign;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Vigil's canonical form (docs/events.md, "Signing"), byte for byte, with the JDK alone.
 *
 * <p>Vigil parses each message and serializes it again to get the bytes a signature covers:
 * keys sorted by code point at every level, no whitespace, UTF-8 with only '"', '\' and
 * control characters escaped, and numbers as its parser reads them (an integer literal
 * stays an integer, anything else is a 64-bit float in shortest form). Java's defaults
 * differ on each point: {@code String.compareTo} orders UTF-16 units (U+E000..U+FFFF sort
 * after characters beyond U+FFFF), {@code Double.toString} writes {@code 1.0E21} and
 * {@code 1.0E-4} and, before JDK 19, sometimes more digits than the shortest. The message
 * is written by the same code as the canonical form, so what is sent reads back as exactly
 * the values that were signed.
 *
 * <p>Values: {@code Map<String, ?>}, {@code Collection}, {@code String}, {@code Boolean},
 * {@code null}, integers ({@code Byte}, {@code Short}, {@code Integer}, {@code Long},
 * {@code BigInteger} within -2^63 .. 2^64-1), {@code Double}/{@code Float} (always written
 * as floats), {@code BigDecimal} (read as Vigil reads its decimal text) and
 * {@link Json.JsonNumber}.
 */
public final class Canonical {
    private static final BigInteger INT_MIN = BigInteger.valueOf(Long.MIN_VALUE);
    private static final BigInteger UINT_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);
    private static final Comparator<String> BY_CODE_POINT = (a, b) -> {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    };

    private Canonical() {}

    /** Canonical bytes of an event, without its {@code signature} member. */
    public static byte[] canonical(Map<String, ?> event) {
        Map<String, Object> unsigned = new LinkedHashMap<>(event);
        unsigned.remove("signature");
        return encode(unsigned);
    }

    /** Canonical bytes of a JSON message (UTF-8), read as Vigil reads it. */
    public static byte[] canonicalJson(byte[] message) {
        return canonical(Json.parseObject(message));
    }

    /** Compact JSON in canonical form: the message as well as the signed bytes. */
    public static byte[] encode(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    /**
     * A double as Vigil writes it: the shortest digits that read back as the same value,
     * plain while the decimal point falls within the first 16 digit positions and at most
     * four zeros follow it ({@code 0.00001}, {@code 1000000000000000.0}), in exponent
     * notation otherwise ({@code 1e+16}, {@code 1e-6}, {@code 1.5e-7}).
     */
    public static String formatFloat(double value) {
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            throw new CanonicalFormException(value + " is not a finite number");
        }
        if (value == 0) {
            return (1 / value < 0) ? "-0.0" : "0.0";
        }
        String sign = value < 0 ? "-" : "";
        BigDecimal shortest = shortest(Math.abs(value));
        String digits = shortest.unscaledValue().toString();
        int count = digits.length();
        int point = count - shortest.scale();
        if (count <= point && point <= 16) {
            return sign + digits + "0".repeat(point - count) + ".0";
        }
        if (0 < point && point <= 16) {
            return sign + digits.substring(0, point) + "." + digits.substring(point);
        }
        if (-5 < point && point <= 0) {
            return sign + "0." + "0".repeat(-point) + digits;
        }
        int exponent = point - 1;
        String written = count == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return sign + written + (exponent > 0 ? "e+" : "e-") + Math.abs(exponent);
    }

    /** The shortest decimal that reads back as {@code value} (> 0), nearest to it; no trailing zeros. */
    private static BigDecimal shortest(double value) {
        BigDecimal exact = new BigDecimal(value);
        for (int precision = 1; precision <= 17; precision++) {
            BigDecimal down = exact.round(new MathContext(precision, RoundingMode.FLOOR));
            BigDecimal up = exact.round(new MathContext(precision, RoundingMode.CEILING));
            boolean downReads = down.doubleValue() == value;
            boolean upReads = up.doubleValue() == value;
            if (downReads || upReads) {
                BigDecimal chosen;
                if (downReads && upReads) {
                    int closer = exact.subtract(down).compareTo(up.subtract(exact));
                    chosen = closer < 0 ? down : closer > 0 ? up
                            : exact.round(new MathContext(precision, RoundingMode.HALF_EVEN));
                } else {
                    chosen = downReads ? down : up;
                }
                return chosen.stripTrailingZeros();
            }
        }
        throw new AssertionError("17 digits always read back: " + value);
    }

    /** Refuses a lone surrogate: it cannot be UTF-8, and Vigil rejects it. */
    static void checkSurrogates(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new CanonicalFormException(
                        String.format("lone surrogate U+%04X in a string: not valid Unicode", (int) c));
            }
        }
    }

    private static void write(Object value, StringBuilder out) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof Boolean b) {
            out.append(b ? "true" : "false");
        } else if (value instanceof String s) {
            quote(s, out);
        } else if (value instanceof Json.JsonNumber n) {
            out.append(literal(n.literal()));
        } else if (value instanceof Byte || value instanceof Short || value instanceof Integer || value instanceof Long) {
            out.append(((Number) value).longValue());
        } else if (value instanceof BigInteger i) {
            out.append(integer(i));
        } else if (value instanceof Double || value instanceof Float) {
            out.append(formatFloat(((Number) value).doubleValue()));
        } else if (value instanceof BigDecimal d) {
            out.append(literal(d.toString()));
        } else if (value instanceof Map<?, ?> map) {
            writeObject(map, out);
        } else if (value instanceof Collection<?> items) {
            out.append('[');
            boolean first = true;
            for (Object item : items) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                write(item, out);
            }
            out.append(']');
        } else {
            throw new CanonicalFormException(value.getClass().getName() + " is not a JSON value");
        }
    }

    private static void writeObject(Map<?, ?> map, StringBuilder out) {
        List<String> keys = new ArrayList<>();
        for (Object key : map.keySet()) {
            if (!(key instanceof String s)) {
                throw new CanonicalFormException("key " + key + " is not a string");
            }
            keys.add(s);
        }
        keys.sort(BY_CODE_POINT);
        out.append('{');
        for (int i = 0; i < keys.size(); i++) {
            if (i > 0) {
                out.append(',');
            }
            quote(keys.get(i), out);
            out.append(':');
            write(map.get(keys.get(i)), out);
        }
        out.append('}');
    }

    /** A literal as Vigil re-serializes it: integers within -2^63 .. 2^64-1 stay integers. */
    private static String literal(String text) {
        if (text.indexOf('.') < 0 && text.indexOf('e') < 0 && text.indexOf('E') < 0) {
            BigInteger value = new BigInteger(text);
            if (value.compareTo(INT_MIN) >= 0 && value.compareTo(UINT_MAX) <= 0) {
                return value.toString();
            }
        }
        return formatFloat(Double.parseDouble(text));
    }

    private static String integer(BigInteger value) {
        if (value.compareTo(INT_MIN) < 0 || value.compareTo(UINT_MAX) > 0) {
            throw new CanonicalFormException("integer " + value + " is beyond 64 bits; Vigil would read it as a float");
        }
        return value.toString();
    }

    private static void quote(String text, StringBuilder out) {
        checkSurrogates(text);
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
