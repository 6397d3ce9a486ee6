package vigilsign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// SignHMAC signs an event (any value json.Marshal accepts) with HMAC-SHA256 and returns
// the message to send: the event with its "signature" member, in canonical form.
func SignHMAC(event any, keyID string, secret []byte) ([]byte, error) {
	document, err := fromValue(event)
	if err != nil {
		return nil, err
	}
	return signHMAC(document, keyID, secret)
}

// SignHMACJSON is SignHMAC for an event already written as JSON.
func SignHMACJSON(message []byte, keyID string, secret []byte) ([]byte, error) {
	document, err := parse(message)
	if err != nil {
		return nil, err
	}
	return signHMAC(document, keyID, secret)
}

// SignEd25519 signs an event with the producer's Ed25519 private key.
func SignEd25519(event any, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	document, err := fromValue(event)
	if err != nil {
		return nil, err
	}
	return signEd25519(document, keyID, key), nil
}

// SignEd25519JSON is SignEd25519 for an event already written as JSON.
func SignEd25519JSON(message []byte, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	document, err := parse(message)
	if err != nil {
		return nil, err
	}
	return signEd25519(document, keyID, key), nil
}

func signEd25519(document map[string]any, keyID string, key ed25519.PrivateKey) []byte {
	value := hex.EncodeToString(ed25519.Sign(key, canonicalOf(document)))
	return signed(document, "ed25519", keyID, value)
}

func signHMAC(document map[string]any, keyID string, secret []byte) ([]byte, error) {
	if len(secret) < 16 {
		return nil, errors.New("vigilsign: an HMAC secret is at least 16 bytes (32 random recommended)")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(canonicalOf(document))
	return signed(document, "hmac-sha256", keyID, hex.EncodeToString(mac.Sum(nil))), nil
}

func signed(document map[string]any, alg, keyID, value string) []byte {
	message := make(map[string]any, len(document)+1)
	for key, item := range document {
		message[key] = item
	}
	message["signature"] = map[string]any{"alg": alg, "key_id": keyID, "value": value}
	var out bytes.Buffer
	write(&out, message)
	return out.Bytes()
}

var topicByType = map[string]string{
	"inference": "ai.inference",
	"feedback":  "ai.inference",
	"training":  "ai.training",
	"access":    "ai.access",
}

// Route returns the topic (without the deployment's topic prefix) and the message key
// of a message: principal.id for access events, model_id for the others. Produce with
// the Java client's partitioner (murmur2; librdkafka: partitioner=murmur2_random) so the
// same key lands on the same partition whichever client sent it.
func Route(message []byte) (topic string, key string, err error) {
	document, err := parse(message)
	if err != nil {
		return "", "", err
	}
	kind, _ := document["type"].(string)
	topic, known := topicByType[kind]
	if !known {
		return "", "", fmt.Errorf("vigilsign: unknown event type %q", kind)
	}
	if kind == "access" {
		principal, _ := document["principal"].(map[string]any)
		key, _ = principal["id"].(string)
	} else {
		key, _ = document["model_id"].(string)
	}
	if key == "" {
		return "", "", errors.New("vigilsign: the message key (principal.id or model_id) is missing")
	}
	return topic, key, nil
}
