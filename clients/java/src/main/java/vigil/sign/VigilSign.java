package vigil.sign;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;

/**
 * Signs JSON-lines events and prints the messages to send, one per line (or, with
 * {@code --canonical}, the canonical forms). It signs with HMAC-SHA256 under the secret in
 * {@code VIGIL_SIGNING_SECRET}, written as the key registry writes it and never taken from
 * the command line, where other users could read it; or, with {@code --private-key FILE},
 * with an Ed25519 private key (PKCS#8 PEM).
 */
public final class VigilSign {
    private VigilSign() {}

    public static void main(String[] args) throws IOException, GeneralSecurityException {
        boolean canonicalOnly = Arrays.asList(args).contains("--canonical");
        int keyAt = Arrays.asList(args).indexOf("--key-id");
        String keyId = keyAt >= 0 && keyAt + 1 < args.length ? args[keyAt + 1] : null;
        if (!canonicalOnly && keyId == null) {
            System.err.println("usage: VIGIL_SIGNING_SECRET=hex:... java vigil.sign.VigilSign --key-id ID < events.jsonl");
            System.exit(2);
        }
        String secretText = System.getenv().getOrDefault("VIGIL_SIGNING_SECRET", "");
        byte[] secret = Signer.decodeSecret(secretText);
        int privateAt = Arrays.asList(args).indexOf("--private-key");
        PrivateKey privateKey = privateAt >= 0 ? readPrivateKey(Path.of(args[privateAt + 1])) : null;
        byte[] input = System.in.readAllBytes();
        OutputStream out = System.out;
        boolean failed = false;
        int number = 0;
        int start = 0;
        while (start < input.length) {
            int end = start;
            while (end < input.length && input[end] != '\n') {
                end++;
            }
            number++;
            int stop = end > start && input[end - 1] == '\r' ? end - 1 : end;
            byte[] line = Arrays.copyOfRange(input, start, stop);
            start = end + 1;
            if (new String(line, StandardCharsets.UTF_8).isBlank()) {
                continue;
            }
            try {
                byte[] result;
                if (canonicalOnly) {
                    result = Canonical.canonicalJson(line);
                } else if (privateKey != null) {
                    result = Signer.signEd25519(Json.parseObject(line), keyId, privateKey);
                } else {
                    result = Signer.signHmacJson(line, keyId, secret);
                }
                ByteArrayOutputStream row = new ByteArrayOutputStream();
                row.write(result);
                row.write('\n');
                out.write(row.toByteArray());
            } catch (IllegalArgumentException e) {
                System.err.println("not signed: line " + number + ": " + e.getMessage());
                failed = true;
            }
        }
        out.flush();
        System.exit(failed ? 1 : 0);
    }

    private static PrivateKey readPrivateKey(Path path) throws IOException, GeneralSecurityException {
        String pem = Files.readString(path, StandardCharsets.US_ASCII)
                .replaceAll("-----(BEGIN|END) PRIVATE KEY-----", "")
                .replaceAll("\\s", "");
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getMimeDecoder().decode(pem));
        return KeyFactory.getInstance("Ed25519").generatePrivate(spec);
    }
}
