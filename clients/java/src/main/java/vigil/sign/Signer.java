package vigil.sign;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.Signature;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** Signs events for Vigil and says where to send them (docs/events.md, "Transport"). */
public final class Signer {
    private static final Map<String, String> TOPIC_BY_TYPE = Map.of(
            "inference", "ai.inference",
            "feedback", "ai.inference",
            "training", "ai.training",
            "access", "ai.access");

    private Signer() {}

    /** The message to send: the event with an HMAC-SHA256 {@code signature}, in canonical form. */
    public static byte[] signHmac(Map<String, ?> event, String keyId, byte[] secret) {
        if (secret.length < 16) {
            throw new IllegalArgumentException("an HMAC secret is at least 16 bytes (32 random recommended)");
        }
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            String value = HexFormat.of().formatHex(mac.doFinal(Canonical.canonical(event)));
            return signed(event, "hmac-sha256", keyId, value);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is part of every JDK", e);
        }
    }

    /** {@link #signHmac} for an event already written as JSON (UTF-8). */
    public static byte[] signHmacJson(byte[] message, String keyId, byte[] secret) {
        return signHmac(Json.parseObject(message), keyId, secret);
    }

    /** The message signed with the producer's Ed25519 private key (JDK 15 and later). */
    public static byte[] signEd25519(Map<String, ?> event, String keyId, PrivateKey key)
            throws GeneralSecurityException {
        Signature signature = Signature.getInstance("Ed25519");
        signature.initSign(key);
        signature.update(Canonical.canonical(event));
        return signed(event, "ed25519", keyId, HexFormat.of().formatHex(signature.sign()));
    }

    /**
     * Topic (without the deployment's prefix) and message key: {@code principal.id} for
     * access events, {@code model_id} for the others. The Kafka Java client's default
     * partitioner (murmur2) is the one Vigil's producers agree on.
     */
    public static String[] route(Map<String, ?> event) {
        Object type = event.get("type");
        String topic = TOPIC_BY_TYPE.get(type instanceof String s ? s : "");
        if (topic == null) {
            throw new IllegalArgumentException("unknown event type " + type);
        }
        Object key = event.get("model_id");
        if ("access".equals(type)) {
            key = event.get("principal") instanceof Map<?, ?> principal ? principal.get("id") : null;
        }
        if (!(key instanceof String s) || s.isEmpty()) {
            throw new IllegalArgumentException("the message key (principal.id or model_id) is missing");
        }
        return new String[] {topic, (String) key};
    }

    /** Key material as Vigil's key registry writes it: {@code hex:}, {@code base64:} or UTF-8 text. */
    public static byte[] decodeSecret(String text) {
        if (text.startsWith("hex:")) {
            return HexFormat.of().parseHex(text.substring(4));
        }
        if (text.startsWith("base64:")) {
            return java.util.Base64.getDecoder().decode(text.substring(7));
        }
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] signed(Map<String, ?> event, String alg, String keyId, String value) {
        Map<String, Object> message = new LinkedHashMap<>(event);
        Map<String, Object> signature = new LinkedHashMap<>();
        signature.put("alg", alg);
        signature.put("key_id", keyId);
        signature.put("value", value);
        message.put("signature", signature);
        return Canonical.encode(message);
    }
}
