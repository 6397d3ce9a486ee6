// Command vigil-sign signs JSON-lines events with HMAC-SHA256 and prints the messages
// to send, one per line (or, with -canonical, the canonical forms). The secret is read
// from VIGIL_SIGNING_SECRET as the key registry writes it (hex:..., base64:... or text),
// never from the command line, where other users could read it.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"

	"vigilsign"
)

func main() {
	keyID := flag.String("key-id", "", "key id of the registry key to sign with")
	canonical := flag.Bool("canonical", false, "print canonical forms instead of signed messages")
	flag.Parse()
	secret, err := decodeSecret(os.Getenv("VIGIL_SIGNING_SECRET"))
	if err != nil || (*keyID == "" && !*canonical) {
		fmt.Fprintln(os.Stderr, "usage: VIGIL_SIGNING_SECRET=hex:... vigil-sign -key-id ID < events.jsonl")
		os.Exit(2)
	}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	failed := false
	for number := 1; scanner.Scan(); number++ {
		line := scanner.Bytes()
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		var result []byte
		if *canonical {
			result, err = vigilsign.CanonicalJSON(line)
		} else {
			result, err = vigilsign.SignHMACJSON(line, *keyID, secret)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "not signed: line %d: %v\n", number, err)
			failed = true
			continue
		}
		out.Write(result)
		out.WriteByte('\n')
	}
	if failed {
		out.Flush()
		os.Exit(1)
	}
}

func decodeSecret(text string) ([]byte, error) {
	switch {
	case strings.HasPrefix(text, "hex:"):
		return hex.DecodeString(text[4:])
	case strings.HasPrefix(text, "base64:"):
		return base64.StdEncoding.DecodeString(text[7:])
	}
	return []byte(text), nil
}
