package vigil.sign;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The Java helper against the shared vectors and Java's own pitfalls, with the JDK alone:
 * {@code java vigil.sign.CanonicalTest clients/testdata/vectors.json} exits 1 on a failure.
 */
public final class CanonicalTest {
    private static final List<String> failures = new ArrayList<>();

    private CanonicalTest() {}

    public static void main(String[] args) throws Exception {
        Map<String, Object> vectors = Json.parseObject(Files.readAllBytes(Path.of(args[0])));
        byte[] secret = HexFormat.of().parseHex((String) vectors.get("secret_hex"));
        String keyId = (String) vectors.get("key_id");
        int checks = 0;
        for (Object item : (List<?>) vectors.get("valid")) {
            Map<?, ?> vector = (Map<?, ?>) item;
            String name = (String) vector.get("name");
            byte[] message = ((String) vector.get("message")).getBytes(StandardCharsets.UTF_8);
            String expected = (String) vector.get("canonical");
            check(name + ": canonical form", utf8(Canonical.canonicalJson(message)), expected);
            byte[] signed = Signer.signHmacJson(message, keyId, secret);
            Map<?, ?> signature = (Map<?, ?>) Json.parseObject(signed).get("signature");
            check(name + ": signature", (String) signature.get("value"), (String) vector.get("hmac_sha256"));
            check(name + ": signed message reads back", utf8(Canonical.canonicalJson(signed)), expected);
            checks += 3;
        }
        for (Object item : (List<?>) vectors.get("invalid")) {
            Map<?, ?> vector = (Map<?, ?>) item;
            byte[] message = ((String) vector.get("message")).getBytes(StandardCharsets.UTF_8);
            refused((String) vector.get("name"), () -> Canonical.canonicalJson(message), "lone surrogate");
            checks++;
        }
        checks += javaValues(secret);
        checks += refusals();
        checks += floats();
        checks += ed25519();
        if (!failures.isEmpty()) {
            failures.forEach(System.err::println);
            System.err.println(failures.size() + " of " + checks + " checks failed");
            System.exit(1);
        }
        System.out.println(checks + " checks passed");
    }

    private static int javaValues(byte[] secret) throws Exception {
        Map<String, Object> client = new LinkedHashMap<>();
        client.put("user_agent", "a<b>&c \u2028 Zürich 😀");
        client.put("ip", "10.0.0.1");
        Map<String, Object> features = new LinkedHashMap<>();
        features.put("big", 1e21);
        features.put("tenth", 0.1);
        features.put("small", 0.0001);
        features.put("neg", -0.0);
        features.put("whole", 8.0);
        features.put("seven", 1.23456785E7);
        features.put("max", Long.MAX_VALUE);
        features.put("min", Long.MIN_VALUE);
        features.put("wide", new BigInteger("18446744073709551615"));
        features.put("decimal", new java.math.BigDecimal("42.50"));
        Map<String, Object> segment = new LinkedHashMap<>();
        segment.put("😀", "astral");
        segment.put("\uFFFF", "bmp");
        Map<String, Object> event = new LinkedHashMap<>();
        event.put("type", "access");
        event.put("event_id", "e<1>&2");
        event.put("client", client);
        event.put("features", features);
        event.put("segment", segment);
        event.put("roles", List.of("a", "b"));
        event.put("signature", "ignored");
        String expected = "{\"client\":{\"ip\":\"10.0.0.1\",\"user_agent\":\"a<b>&c \u2028 Zürich 😀\"},"
                + "\"event_id\":\"e<1>&2\",\"features\":{\"big\":1e+21,\"decimal\":42.5,"
                + "\"max\":9223372036854775807,\"min\":-9223372036854775808,\"neg\":-0.0,\"seven\":12345678.5,"
                + "\"small\":0.0001,\"tenth\":0.1,\"whole\":8.0,\"wide\":18446744073709551615},"
                + "\"roles\":[\"a\",\"b\"],\"segment\":{\"\uFFFF\":\"bmp\",\"😀\":\"astral\"},\"type\":\"access\"}";
        check("Java values", utf8(Canonical.canonical(event)), expected);
        // The pitfalls: String.compareTo orders UTF-16 units, Double.toString uses E notation.
        check("String.compareTo pitfall", Boolean.toString("😀".compareTo("\uFFFF") < 0), "true");
        check("Double.toString pitfall", Double.toString(1.23456785E7) + " " + Double.toString(1e-4), "1.23456785E7 1.0E-4");
        byte[] message = Signer.signHmac(event, "k", secret);
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(secret, "HmacSHA256"));
        String value = HexFormat.of().formatHex(mac.doFinal(expected.getBytes(StandardCharsets.UTF_8)));
        Map<?, ?> signature = (Map<?, ?>) Json.parseObject(message).get("signature");
        check("signature of Java values", (String) signature.get("value"), value);
        check("route", String.join(" ", Signer.route(Map.of("type", "access", "principal", Map.of("id", "bob")))),
                "ai.access bob");
        check("route", String.join(" ", Signer.route(Map.of("type", "feedback", "model_id", "m<&>"))),
                "ai.inference m<&>");
        return 7;
    }

    private static int refusals() {
        String[] bad = {"{\"x\":1e400}", "{\"x\":1} {}", "[1]", "{\"x\":01}", "{\"x\":\"\u0001\"}", "{\"x\":NaN}",
            "\uFEFF{}", "{\"x\":\"\\u12\"}", "{\"x\":\"\\u+123\"}"};
        for (String message : bad) {
            refused(message, () -> Canonical.canonicalJson(message.getBytes(StandardCharsets.UTF_8)), "");
        }
        refused("invalid UTF-8", () -> Canonical.canonicalJson(new byte[] {'{', '"', (byte) 0xff, '"', ':', '1', '}'}),
                "UTF-8");
        refused("NaN", () -> Canonical.canonical(Map.of("x", Double.NaN)), "not a finite number");
        refused("wide integer", () -> Canonical.canonical(Map.of("x", BigInteger.ONE.shiftLeft(64))), "beyond 64 bits");
        refused("lone surrogate value", () -> Canonical.canonical(Map.of("x", "\uD800")), "lone surrogate U+D800");
        refused("short secret", () -> Signer.signHmac(Map.of(), "k", new byte[5]), "at least 16 bytes");
        refused("access without principal", () -> Signer.route(Map.of("type", "access", "principal", 42)), "message key");
        return bad.length + 6;
    }

    private static int floats() {
        Map<Double, String> cases = Map.of(1e21, "1e+21", -0.0, "-0.0", 0.1, "0.1", 1e16, "1e+16",
                1e15, "1000000000000000.0", 0.00001, "0.00001", 5e-324, "5e-324", 2.0E-3, "0.002",
                1.0E23, "1e+23", 2.82879384806159E17, "2.82879384806159e+17");
        cases.forEach((value, written) -> check("float " + value, Canonical.formatFloat(value), written));
        Random random = new Random(7);
        for (int i = 0; i < 20000; i++) {
            double value = Double.longBitsToDouble(random.nextLong());
            if (!Double.isNaN(value) && !Double.isInfinite(value)
                    && Double.parseDouble(Canonical.formatFloat(value)) != value) {
                failures.add("float " + value + " does not read back from " + Canonical.formatFloat(value));
            }
        }
        return cases.size() + 1;
    }

    private static int ed25519() throws Exception {
        KeyPair pair = KeyPairGenerator.getInstance("Ed25519").generateKeyPair();
        Map<String, Object> event = Map.of("type", "training", "model_id", "m");
        byte[] message = Signer.signEd25519(event, "ed", pair.getPrivate());
        Map<?, ?> signature = (Map<?, ?>) Json.parseObject(message).get("signature");
        Signature verifier = Signature.getInstance("Ed25519");
        verifier.initVerify(pair.getPublic());
        verifier.update(Canonical.canonicalJson(message));
        boolean ok = verifier.verify(HexFormat.of().parseHex((String) signature.get("value")));
        check("Ed25519 signature verifies", Boolean.toString(ok), "true");
        return 1;
    }

    private static void check(String what, String got, String expected) {
        if (!got.equals(expected)) {
            failures.add(what + "\n   got: " + got + "\n  want: " + expected);
        }
    }

    private static void refused(String what, Runnable action, String reason) {
        try {
            action.run();
            failures.add(what + ": accepted");
        } catch (IllegalArgumentException e) {
            if (!e.getMessage().contains(reason)) {
                failures.add(what + ": refused for another reason: " + e.getMessage());
            }
        }
    }

    private static String utf8(byte[] bytes) {
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
