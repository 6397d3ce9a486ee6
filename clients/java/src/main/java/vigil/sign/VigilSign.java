package vigil.sign;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.Arrays;

/**
 * Signs JSON-lines events with HMAC-SHA256 and prints the messages to send, one per line
 * (or, with {@code --canonical}, the canonical forms). The secret is read from
 * {@code VIGIL_SIGNING_SECRET} as the key registry writes it, never from the command line,
 * where other users could read it.
 */
public final class VigilSign {
    private VigilSign() {}

    public static void main(String[] args) throws IOException {
        boolean canonicalOnly = Arrays.asList(args).contains("--canonical");
        int keyAt = Arrays.asList(args).indexOf("--key-id");
        String keyId = keyAt >= 0 && keyAt + 1 < args.length ? args[keyAt + 1] : null;
        if (!canonicalOnly && keyId == null) {
            System.err.println("usage: VIGIL_SIGNING_SECRET=hex:... java vigil.sign.VigilSign --key-id ID < events.jsonl");
            System.exit(2);
        }
        String secretText = System.getenv().getOrDefault("VIGIL_SIGNING_SECRET", "");
        byte[] secret = Signer.decodeSecret(secretText);
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
            if (new String(line, java.nio.charset.StandardCharsets.UTF_8).isBlank()) {
                continue;
            }
            try {
                byte[] result = canonicalOnly
                        ? Canonical.canonicalJson(line)
                        : Signer.signHmacJson(line, keyId, secret);
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
}
