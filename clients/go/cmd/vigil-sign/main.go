// Command vigil-sign signs JSON-lines events and prints the messages to send, one per
// line (or, with -canonical, the canonical forms). It signs with HMAC-SHA256 under the
// secret in VIGIL_SIGNING_SECRET, written as the key registry writes it (hex:...,
// base64:... or text) and never taken from the command line, where other users could
// read it; or, with -private-key FILE, with an Ed25519 private key (PKCS#8 PEM).
package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"vigilsign"
)

func main() {
	keyID := flag.String("key-id", "", "key id of the registry key to sign with")
	canonical := flag.Bool("canonical", false, "print canonical forms instead of signed messages")
	privateKeyFile := flag.String("private-key", "", "Ed25519 private key (PKCS#8 PEM) to sign with")
	flag.Parse()
	secret, err := decodeSecret(os.Getenv("VIGIL_SIGNING_SECRET"))
	if err != nil || (*keyID == "" && !*canonical) {
		fmt.Fprintln(os.Stderr, "usage: VIGIL_SIGNING_SECRET=hex:... vigil-sign -key-id ID < events.jsonl")
		fmt.Fprintln(os.Stderr, "       vigil-sign -key-id ID -private-key key.pem < events.jsonl")
		os.Exit(2)
	}
	var privateKey ed25519.PrivateKey
	if *privateKeyFile != "" {
		if privateKey, err = readPrivateKey(*privateKeyFile); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *privateKeyFile, err)
			os.Exit(2)
		}
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
		switch {
		case *canonical:
			result, err = vigilsign.CanonicalJSON(line)
		case privateKey != nil:
			result, err = vigilsign.SignEd25519JSON(line, *keyID, privateKey)
		default:
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

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(text)
	if block == nil {
		return nil, errors.New("not a PEM file")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	private, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 private key")
	}
	return private, nil
}
